"""A VGG-style 2D CNN on a (frames, bins) spectrogram.

Blocks of two 3x3 convolutions (batch norm, ReLU) and 2x2 max pooling, then global average
pooling, dropout and a softmax layer. Global pooling keeps the parameter count independent of
the clip length and makes the model tolerant to where in the clip the word sits.
"""

from __future__ import annotations

from audioclf.models import BN_MOMENTUM

INPUT = "spectrogram"  # (frames, bins)


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    filters: tuple[int, ...] = (16, 32, 64),
    kernel_size: int = 3,
    dropout: float = 0.3,
    l2: float = 1e-4,
):  # -> keras.Model
    import keras
    from keras import layers

    if not filters:
        raise ValueError("filters: list at least one block width, e.g. [32, 64, 128]")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
    reg = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input(shape=tuple(input_shape), name="spectrogram")  # (frames, bins)
    x = layers.Reshape((*input_shape, 1))(inputs)  # one input channel
    for i, width in enumerate(filters):
        for j in range(2):
            x = layers.Conv2D(
                width,
                kernel_size,
                padding="same",
                use_bias=False,
                kernel_regularizer=reg,
                name=f"block{i}_conv{j}",
            )(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn{j}")(x)
            x = layers.ReLU()(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg)(x)
    return keras.Model(inputs, outputs, name="spec_cnn2d")
