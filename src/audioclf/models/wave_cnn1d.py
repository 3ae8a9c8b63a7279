"""Conv1D on the raw waveform (the reference notebooks' first model).

VGG-like blocks of Conv1D (kernel 9, batch norm, ReLU) with max pooling after each, so the
time axis shrinks 8000 -> 2000 -> 500 -> 125 -> 31 at 8 kHz while the width grows 32 -> 256;
then global max pooling (the word may sit anywhere in the clip), dropout, Dense 256 with batch
norm, dropout and the softmax classifier.
"""

from __future__ import annotations

from audioclf.models import BN_MOMENTUM

INPUT = "wave"  # (samples, 1)


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    filters: tuple[int, ...] = (32, 64, 128, 256),
    kernel_size: int = 9,
    pool_size: int = 4,
    dropout: float = 0.3,
    dense: int = 256,
):  # -> keras.Model
    import keras
    from keras import layers

    if not filters:
        raise ValueError("filters: list at least one block width, e.g. [32, 64, 128, 256]")
    if min(kernel_size, pool_size, dense) < 1:
        raise ValueError("kernel_size, pool_size, dense: must each be >= 1")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=tuple(input_shape), name="wave")  # (samples, 1)
    x = inputs
    for i, width in enumerate(filters):
        x = layers.Conv1D(width, kernel_size, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling1D(pool_size, padding="same", name=f"pool{i}")(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(dense, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="wave_cnn1d")
