"""Compile and fit a Keras model: seeded, deterministic, early-stopped on validation loss;
time each epoch and write the history.

Shapes: features (clips, frames, bins) float32, labels (clips,) int32 class ids.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from audioclf.config import ConfigError, check
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
    # The best epoch is picked on validation loss: on a validation set without some class,
    # a model that never answers that class can win. false: refuse to train on one.
    allow_incomplete_validation: bool = False
    # GPU options, off by default (see docs/gpu.md). mixed_precision: float16 compute with
    # float32 weights and a float32 softmax; needs a GPU (on a CPU float16 is slower and
    # changes the numbers, so it is refused). jit_compile: XLA-compile the train step.
    mixed_precision: bool = False
    jit_compile: bool = False
    # TensorFlow intra-op and BLAS threads of this process; null = the cores it may use divided
    # by the training workers running at once (audioclf.threads; AUDIOCLF_WORKERS).
    threads: int | None = None

    def __post_init__(self) -> None:
        check(
            self.threads is None or self.threads >= 1,
            "threads",
            f"must be >= 1 or null (automatic), got {self.threads}",
        )
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


def check_validation(y_val: np.ndarray, classes: list[str], allowed: bool) -> list[str]:
    """The classes with no validation clip; an error naming them unless ``allowed``."""
    missing = [c for i, c in enumerate(classes) if not np.any(y_val == i)]
    if missing and not allowed:
        raise ValueError(
            f"the validation set has no clips of class(es) {', '.join(missing)} "
            f"({len(y_val)} clips of {len(classes) - len(missing)} of {len(classes)} classes): "
            "early stopping would pick the epoch on the other classes only, and a model that "
            "never answers the missing ones can win. Re-split (data.prepare; see "
            "data/prepared/report.csv), or set train.allow_incomplete_validation: true to "
            "train anyway"
        )
    return missing


def make_deterministic(seed: int, ops: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels unless
    not ``ops``: Keras refuses XLA (``jit_compile``) while op determinism is on, so an XLA run
    is seeded but not bit-reproducible."""
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    if ops:
        tf.config.experimental.enable_op_determinism()
    else:  # process-wide; only the private module can turn it off again
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()


def check_precision(cfg: TrainConfig) -> None:
    """Refuse ``mixed_precision`` without a GPU, naming the key (before any data is loaded)."""
    tf = import_tensorflow()

    if cfg.mixed_precision and not tf.config.list_physical_devices("GPU"):
        raise ConfigError(
            "train.mixed_precision: true needs a GPU and TensorFlow sees none (float16 on a CPU "
            "is slower and changes the results). Set train.mixed_precision: false, or install "
            "the GPU build (docs/gpu.md) and check `tf.config.list_physical_devices('GPU')`"
        )


@contextmanager
def precision(mixed: bool):
    """Build layers under the ``mixed_float16`` policy when ``mixed``; restores the policy."""
    import keras

    before = keras.mixed_precision.dtype_policy()
    if mixed:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(before)


def float32_output(model):  # -> keras.Model
    """The model with its last layer (the softmax Dense of every builder) computing in float32,
    so the probabilities and the loss stay float32 under mixed precision; other models as is."""
    last = model.layers[-1]
    if last.dtype_policy.compute_dtype != "float32":
        last.dtype_policy = "float32"
    return model


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
        jit_compile=cfg.jit_compile,
    )
    if cfg.jit_compile and not model.jit_compile:  # Keras fell back with a mere warning
        raise ConfigError(
            f"train.jit_compile: true, but Keras cannot XLA-compile model {model.name!r} "
            "(a layer without XLA support, or op determinism on: see make_deterministic). "
            "Set train.jit_compile: false"
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
    """history.csv: one row per epoch (1-based) with the ``HISTORY`` columns, 6 digits; a
    column the fit has no values for (a scikit-learn classifier has no learning rate) is
    left empty."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", *HISTORY])
        for e in range(len(history["loss"])):
            w.writerow([e + 1, *(f"{history[k][e]:.6g}" if k in history else "" for k in HISTORY)])


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
