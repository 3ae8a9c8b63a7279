"""The light-weight CNN of the TensorFlow Speech Recognition Challenge Kaggle kernels.

Batch norm on the input; Conv 8-8 (2x2) / pool, Conv 16-16 (3x3) / pool, Conv 32 (3x3) /
pool, each pool followed by dropout; flatten; Dense 128 twice, each with batch norm; softmax.
Written for the 8 kHz log-spectrogram (20 ms window, 10 ms step): 99 frames x 81 bins.
"""

from __future__ import annotations

from audioclf.config import ConfigError
from audioclf.models import BN_MOMENTUM

INPUT = "spectrogram"  # (frames, bins)


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    dropout: float = 0.2,
    dense: int = 128,
):  # -> keras.Model
    import keras
    from keras import layers

    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
    if dense < 1:
        raise ValueError(f"dense: must be >= 1, got {dense}")
    frames, bins = input_shape
    if min(frames, bins) < 22:
        raise ConfigError(
            f"features: light_cnn needs at least 22 frames x 22 bins, got {frames} x {bins}; "
            "use `-S features=logspec8k`"
        )
    inputs = keras.Input(shape=tuple(input_shape), name="spectrogram")  # (frames, bins)
    x = layers.Reshape((frames, bins, 1))(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    for i, (widths, kernel) in enumerate((((8, 8), 2), ((16, 16), 3), ((32,), 3))):
        for j, width in enumerate(widths):
            x = layers.Conv2D(width, kernel, activation="relu", name=f"block{i}_conv{j}")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Dropout(dropout)(x)
    x = layers.Flatten()(x)
    for i in range(2):
        x = layers.Dense(dense, activation="relu", name=f"dense{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dense{i}_bn")(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="light_cnn")
