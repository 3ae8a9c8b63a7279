"""Conv1D over spectrogram frames: the frequency bins are the input channels.

Blocks of Conv1D (batch norm, ReLU, dropout) with 2x max pooling between them, convolving
along time only; then global average pooling and the softmax classifier. Cheaper than a 2D CNN
because every filter spans all bins at once.
"""

from __future__ import annotations

from audioclf.models import BN_MOMENTUM

INPUT = "spectrogram"  # (frames, bins)


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    filters: tuple[int, ...] = (64, 128, 256),
    kernel_size: int = 5,
    dropout: float = 0.3,
):  # -> keras.Model
    import keras
    from keras import layers

    if not filters:
        raise ValueError("filters: list at least one block width, e.g. [64, 128, 256]")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=tuple(input_shape), name="spectrogram")  # (frames, bins)
    x = inputs
    for i, width in enumerate(filters):
        x = layers.Conv1D(width, kernel_size, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i}")(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(dropout)(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling1D(2, padding="same", name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="spec_cnn1d")
