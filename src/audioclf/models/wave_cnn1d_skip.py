"""wave_cnn1d with concatenation skip connections between blocks.

Each block's input is concatenated to its output before the pooling, so later blocks and the
classifier see the earlier, finer-grained features too (DenseNet-style): the channel count
after block i is the sum of the widths so far plus the input's one channel.
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
        y = layers.Conv1D(width, kernel_size, padding="same", use_bias=False, name=f"conv{i}")(x)
        y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(y)
        y = layers.ReLU()(y)
        x = layers.Concatenate(name=f"skip{i}")([x, y])  # (time, channels so far + width)
        x = layers.MaxPooling1D(pool_size, padding="same", name=f"pool{i}")(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(dense, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="wave_cnn1d_skip")
