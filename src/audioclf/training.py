"""Compile and fit a Keras model: seeded, deterministic, early-stopped on validation loss;
time each epoch and write the history.

Shapes: features (clips, frames, bins) float32, labels (clips,) int32 class ids.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from audioclf.config import check
from audioclf.specaugment import SpecAugmentConfig
from audioclf.tfimport import import_tensorflow


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20  # upper bound; early stopping usually ends sooner
    batch_size: int = 64
    learning_rate: float = 3e-3  # peak rate of the cosine schedule
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 0.0  # adamw only
    label_smoothing: float = 0.0
    patience: int = 5  # epochs without a better validation loss before stopping
    seed: int = 42

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(
            0 <= self.label_smoothing < 1,
            "label_smoothing",
            f"must be in [0, 1), got {self.label_smoothing}",
        )
        check(self.patience >= 1, "patience", f"must be >= 1, got {self.patience}")
        check(
            self.optimizer == "adamw" or self.weight_decay == 0,
            "weight_decay",
            "only applies to optimizer: adamw",
        )


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels."""
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def with_normalization(
    body, x_train: np.ndarray, spec_augment: SpecAugmentConfig | None = None, seed: int = 0
):  # -> keras.Model
    """Prepend per-bin standardisation with statistics of the training features, then
    SpecAugment when ``spec_augment`` is active (masks fill with 0 = the bin's mean).

    The statistics are stored in the model, so it needs no separate preprocessing file.
    """
    import keras

    from audioclf.specaugment import layer_class

    mean = x_train.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)  # (bins,)
    var = x_train.var(axis=(0, 1), dtype=np.float64).astype(np.float32)
    inputs = keras.Input(shape=x_train.shape[1:], name="features")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=var, name="standardize")(inputs)
    if spec_augment is not None and spec_augment.active:
        x = layer_class()(**asdict(spec_augment), seed=seed, name="spec_augment")(x)
    return keras.Model(inputs, body(x), name=body.name)


def fit(
    model,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    cfg: TrainConfig,
    checkpoint: Path,
    on_epoch: Callable[[int, Mapping[str, float]], None] | None = None,
):  # -> (keras.Model with the best weights, history dict of per-epoch lists)
    """Train with early stopping; the best epoch (lowest validation loss) is saved and kept.
    The history has per-epoch ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
    ``learning_rate`` and ``epoch_seconds``. ``on_epoch(epoch, values)`` (1-based epoch, the
    history's values for it) is called as each epoch ends: live tracking."""
    import keras

    steps = cfg.epochs * int(np.ceil(len(train[0]) / cfg.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=steps)
    optimizer = {
        "adam": lambda: keras.optimizers.Adam(schedule),
        "adamw": lambda: keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        "sgd": lambda: keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True),
    }[cfg.optimizer]()
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"],
    )
    onehot = lambda y: keras.utils.to_categorical(y, num_classes)  # noqa: E731
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.patience, restore_best_weights=True
        ),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True),
        timer := epoch_timer(on_epoch),
    ]
    history = model.fit(
        train[0],
        onehot(train[1]),
        validation_data=(validation[0], onehot(validation[1])),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=2,
    )
    from audioclf.specaugment import layer_class

    layer_class()  # registered for loading
    return keras.models.load_model(checkpoint), {**history.history, **timer.history}


def epoch_timer(
    on_epoch: Callable[[int, Mapping[str, float]], None] | None = None,
):  # -> keras.callbacks.Callback
    """A callback that records each epoch's wall time in ``.history["epoch_seconds"]`` and the
    learning rate it ended with in ``.history["learning_rate"]``, then passes the epoch's
    logs and both to ``on_epoch`` (1-based epoch)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.history: dict[str, list[float]] = {"epoch_seconds": [], "learning_rate": []}

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            # Timed before anything is logged: the figure is the epoch's own time.
            seconds = time.perf_counter() - self._start
            # The schedule's rate at the optimizer's current step (Keras 3: a property).
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.history["epoch_seconds"].append(seconds)
            self.history["learning_rate"].append(rate)
            if on_epoch is not None:
                values = {k: float(v) for k, v in (logs or {}).items() if k in HISTORY}
                on_epoch(epoch + 1, values | {"epoch_seconds": seconds, "learning_rate": rate})

    return EpochTimer()


HISTORY = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds")


def write_history(path: Path, history: dict[str, list[float]]) -> None:
    """history.csv: one row per epoch (1-based) with the ``HISTORY`` columns, 6 digits."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", *HISTORY])
        for e in range(len(history["loss"])):
            w.writerow([e + 1, *(f"{history[k][e]:.6g}" for k in HISTORY)])


def trainable_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def summary(
    model, name: str, history: dict[str, list[float]], train_seconds: float
) -> dict[str, float | int | str]:
    """summary.json: trainable params, epochs run, the best epoch and its validation scores,
    train time and mean seconds per epoch."""
    best = int(np.argmin(history["val_loss"]))
    return {
        "model": name,
        "trainable_params": trainable_params(model),
        "epochs_run": len(history["loss"]),
        "best_epoch": best + 1,
        "best_val_loss": float(history["val_loss"][best]),
        "best_val_accuracy": float(history["val_accuracy"][best]),
        "train_seconds": round(train_seconds, 3),
        "seconds_per_epoch": round(float(np.mean(history["epoch_seconds"])), 3),
    }
