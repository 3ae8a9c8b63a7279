"""Train a trigger-word network on clips: features, per-step labels, a weighted loss, early
stopping on validation loss; seeded and deterministic.

Shapes: waves (clips, samples) float32 at the data's rate; features (clips, frames, bins)
float32 of the waves with the detector's ``pad_samples`` zeros in front (so the network sees
exactly what the exported detector computes); labels (clips, steps) uint8 from
``audioclf.trigger.labels.step_labels`` at the model's step times.

Class imbalance: a trigger labels ``label_seconds`` (0.5 s: ~12 of 250 steps) after its end,
so most steps are 0 (about 7 % positive with ~1.5 triggers per clip). The loss is binary
cross-entropy with the positive steps weighted ``positive_weight`` (a number, or null = the
training labels' negative/positive ratio, which balances the classes). Weighting shifts the
scores up, not their order; the threshold is chosen downstream on the DET curve.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioclf.config import check
from audioclf.tfimport import import_tensorflow

# The root's transforms (audioclf.augment.TRANSFORMS) that keep every event where it was, so
# the recorded events still label the copy: no time stretch, pitch shift (its resampling
# moves nothing but audiomentations may change the length) or shift; no background_noise
# (the synthetic data's noise/ is held out for evaluation).
LABEL_SAFE = ("gain", "band_pass", "reverb", "gaussian_noise")


@dataclass(frozen=True)
class TriggerAugmentConfig:
    """Augmented copies of the training clips, made once before training (their events, so
    their labels, are the clean clip's), added to the clean ones."""

    name: str = "none"  # label shown in MLflow and the comparison table
    copies: int = 0  # per training clip; 0 = off
    seed: int = 1234  # copy c of clip i draws from (seed, c, i)
    chain: tuple[str, ...] = ()  # transforms applied to each copy, in order
    transforms: dict[str, dict[str, Any]] = field(default_factory=dict)  # settings by name

    def __post_init__(self) -> None:
        from audioclf.augment import TRANSFORMS

        check(self.copies >= 0, "copies", f"must be >= 0, got {self.copies}")
        check(
            not self.chain or self.copies > 0,
            "copies",
            f"is 0, so the chain {list(self.chain)} would never run; set copies >= 1",
        )
        for name in self.chain:
            check(
                name in LABEL_SAFE,
                "chain",
                f"{name!r} is not one of the transforms that keep the events in place "
                f"({', '.join(LABEL_SAFE)})",
            )
            check(name in self.transforms, "chain", f"{name!r} has no settings under transforms")
        for name, settings in self.transforms.items():
            TRANSFORMS.check(name, settings, f"transforms.{name}")

    @property
    def active(self) -> bool:
        return self.copies > 0 and bool(self.chain)


@dataclass(frozen=True)
class TriggerTrainConfig:
    epochs: int = 10  # upper bound; early stopping may end sooner
    batch_size: int = 32
    learning_rate: float = 2e-3  # peak of the cosine decay schedule (Adam)
    patience: int = 3  # epochs without a lower validation loss before stopping
    positive_weight: float | None = 5.0  # loss weight of a positive step; null = neg/pos
    seed: int = 42
    threads: int | None = None  # TensorFlow/BLAS threads; null = audioclf.threads' plan
    augment: TriggerAugmentConfig = TriggerAugmentConfig()

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        check(self.patience >= 1, "patience", f"must be >= 1, got {self.patience}")
        check(
            self.positive_weight is None or self.positive_weight > 0,
            "positive_weight",
            f"must be > 0 or null (negative/positive ratio), got {self.positive_weight}",
        )
        check(
            self.threads is None or self.threads >= 1,
            "threads",
            f"must be >= 1 or null (automatic), got {self.threads}",
        )


def positive_weight(cfg: TriggerTrainConfig, labels: np.ndarray) -> float:
    """The weight of a positive step: the config's, or negatives / positives of ``labels``."""
    if cfg.positive_weight is not None:
        return cfg.positive_weight
    positives = int(labels.sum())
    if positives == 0:
        raise ValueError(
            "trigger.train.positive_weight: null asks for the negative/positive ratio, but the "
            "training labels have no positive step (no trigger in the training clips?)"
        )
    return float((labels.size - positives) / positives)


def features(
    waves: np.ndarray, feature_cfg, sample_rate: int, pad_samples: int, batch: int = 64
) -> np.ndarray:
    """(clips, samples) at ``sample_rate`` -> (clips, frames, bins) float32 features of the
    waves with ``pad_samples`` zeros in front, in batches (``waves`` may be a memory map: the
    features of 1,000 10-s clips at 40 bins are 160 MB, their waves 640 MB)."""
    from audioclf.features import make_transform

    tf = import_tensorflow()
    transform = tf.function(make_transform(feature_cfg, sample_rate), reduce_retracing=True)
    out = []
    for i in range(0, len(waves), batch):
        block = np.asarray(waves[i : i + batch], dtype=np.float32)
        block = np.pad(block, [(0, 0), (pad_samples, 0)])
        out.append(transform(tf.constant(block)).numpy())
    return np.concatenate(out)


def augmented(clips: np.ndarray, cfg: TriggerAugmentConfig, sample_rate: int):
    """Yield ``cfg.copies`` augmented copies of each clip, copy by copy, clip by clip:
    float32 (samples,); copy ``c`` of clip ``i`` seeded by (seed, c, i)."""
    from audioclf.augment import TRANSFORMS
    from audioclf.transforms import Chain, ChainWorker

    chain = Chain(
        TRANSFORMS,
        cfg.chain,
        tuple(cfg.transforms[n] for n in cfg.chain),
        tuple(f"trigger.train.augment.transforms.{n}" for n in cfg.chain),
        cfg.chain,
    )
    worker = ChainWorker([chain], [], sample_rate)
    for c in range(cfg.copies):
        for i in range(len(clips)):
            yield worker.apply(0, (cfg.seed, c, i), np.asarray(clips[i]))[0]


def augmented_features(
    clips: np.ndarray, cfg: TriggerAugmentConfig, feature_cfg, sample_rate: int, pad: int
) -> np.ndarray:
    """(copies x clips, frames, bins) features of the augmented copies (copy-major), made 64
    waves at a time so the copies' waves are never all in memory."""
    out, block = [], []
    for wave in augmented(clips, cfg, sample_rate):
        block.append(wave)
        if len(block) == 64:
            out.append(features(np.stack(block), feature_cfg, sample_rate, pad))
            block = []
    if block:
        out.append(features(np.stack(block), feature_cfg, sample_rate, pad))
    return np.concatenate(out)


def with_normalization(body, x_train: np.ndarray):  # -> keras.Model
    """Per-bin standardisation with the training features' statistics, then ``body``."""
    import keras

    mean = x_train.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)  # (bins,)
    var = x_train.var(axis=(0, 1), dtype=np.float64).astype(np.float32)
    inputs = keras.Input(shape=(None, x_train.shape[-1]), name="features")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=var, name="standardize")(inputs)
    return keras.Model(inputs, body(x), name=body.name)


def weighted_bce(weight: float):  # -> keras loss
    """Binary cross-entropy per step, positives weighted ``weight``; mean over steps."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="audioclf.trigger")
    class WeightedBCE(keras.losses.Loss):
        def __init__(self, positive_weight: float = 1.0, **kwargs) -> None:
            super().__init__(**kwargs)
            self.positive_weight = float(positive_weight)

        def call(self, y_true, y_pred):
            y_true = ops.cast(y_true, y_pred.dtype)
            p = ops.clip(y_pred, 1e-7, 1 - 1e-7)
            loss = -(self.positive_weight * y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p))
            return ops.mean(loss, axis=-1)

        def get_config(self):
            return {**super().get_config(), "positive_weight": self.positive_weight}

    return WeightedBCE(weight, name="weighted_bce")


METRICS = ("loss", "accuracy", "auc", "precision", "recall")  # per step; val_ too


def fit(
    model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    cfg: TriggerTrainConfig,
    weight: float,
    checkpoint: Path,
    on_epoch: Callable[[int, Mapping[str, float]], None] | None = None,
):  # -> (keras.Model with the best epoch's weights, history of per-epoch lists)
    """Adam with cosine decay; stop after ``patience`` epochs without a lower validation loss
    and keep the best epoch (saved to ``checkpoint``). History: ``METRICS`` and their
    ``val_`` forms (per-step accuracy, ROC AUC, precision and recall at 0.5), plus
    ``learning_rate`` and ``epoch_seconds``; ``on_epoch(epoch, values)`` as each ends."""
    import keras

    steps = cfg.epochs * int(np.ceil(len(train[0]) / cfg.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=weighted_bce(weight),
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(name="auc"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
        ],
    )
    timer = EpochLog(on_epoch)
    history = model.fit(
        train[0],
        train[1].astype(np.float32),
        validation_data=(validation[0], validation[1].astype(np.float32)),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        shuffle=True,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.patience, restore_best_weights=True
            ),
            keras.callbacks.ModelCheckpoint(
                str(checkpoint), monitor="val_loss", save_best_only=True
            ),
            timer,
        ],
        verbose=2,
    )
    return keras.models.load_model(checkpoint), {**history.history, **timer.history}


def _epoch_log_class():
    import keras

    class EpochLog(keras.callbacks.Callback):
        """Each epoch's wall time and final learning rate; passes the epoch's values on."""

        def __init__(self, on_epoch=None) -> None:
            super().__init__()
            self.on_epoch = on_epoch
            self.history: dict[str, list[float]] = {"learning_rate": [], "epoch_seconds": []}

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            seconds = time.perf_counter() - self._start  # before anything is logged
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.history["epoch_seconds"].append(seconds)
            self.history["learning_rate"].append(rate)
            if self.on_epoch is not None:
                values = {k: float(v) for k, v in (logs or {}).items() if k in HISTORY}
                self.on_epoch(epoch + 1, values | {"epoch_seconds": seconds, "learning_rate": rate})

    return EpochLog


def EpochLog(on_epoch=None):  # noqa: N802 - a callback instance, its class made lazily
    return _epoch_log_class()(on_epoch)


HISTORY = (*METRICS, *(f"val_{m}" for m in METRICS), "learning_rate", "epoch_seconds")


def write_history(path: Path, history: Mapping[str, list[float]]) -> None:
    """history.csv: one row per epoch (1-based), the ``HISTORY`` columns, 6 digits."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", *HISTORY])
        for e in range(len(history["loss"])):
            w.writerow([e + 1, *(f"{history[k][e]:.6g}" if k in history else "" for k in HISTORY)])


def summary(model, name: str, history: Mapping[str, list[float]], seconds: float) -> dict:
    """summary.json: params, epochs run, the best epoch and its validation metrics, time."""
    best = int(np.argmin(history["val_loss"]))
    return {
        "model": name,
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "epochs_run": len(history["loss"]),
        "best_epoch": best + 1,
        **{f"best_val_{m}": float(history[f"val_{m}"][best]) for m in METRICS},
        "train_seconds": round(seconds, 3),
        "seconds_per_epoch": round(float(np.mean(history["epoch_seconds"])), 3),
    }
