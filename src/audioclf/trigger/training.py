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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioclf.config import check
from audioclf.tfimport import import_tensorflow


@dataclass(frozen=True)
class TriggerTrainConfig:
    epochs: int = 12  # upper bound; early stopping may end sooner
    batch_size: int = 32
    learning_rate: float = 2e-3  # peak of the cosine decay schedule (Adam)
    patience: int = 3  # epochs without a lower validation loss before stopping
    positive_weight: float | None = 5.0  # loss weight of a positive step; null = neg/pos
    seed: int = 42
    threads: int | None = None  # TensorFlow/BLAS threads; null = audioclf.threads' plan

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
