"""Conv1D front end + two GRU layers: the trigger-word network, adapted to classification.

Conv1D (196 filters, kernel 15, stride 4) over spectrogram frames with batch norm, ReLU and
dropout shortens the sequence 4x; two GRU(128) layers, each followed by dropout and batch norm,
read it; the second returns only its last state, which the softmax layer classifies (the
original predicts a label per time step instead).
"""

from __future__ import annotations

from audioclf.models import BN_MOMENTUM

INPUT = "spectrogram"  # (frames, bins)


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    conv_filters: int = 196,
    conv_kernel: int = 15,
    conv_stride: int = 4,
    gru_units: int = 128,
    dropout: float = 0.3,
):  # -> keras.Model
    import keras
    from keras import layers

    if min(conv_filters, conv_kernel, conv_stride, gru_units) < 1:
        raise ValueError("conv_filters, conv_kernel, conv_stride, gru_units: must be >= 1")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=tuple(input_shape), name="spectrogram")  # (frames, bins)
    x = layers.Conv1D(conv_filters, conv_kernel, strides=conv_stride, padding="same")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.GRU(gru_units, return_sequences=True, name="gru0")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.GRU(gru_units, name="gru1")(x)  # last state only
    x = layers.Dropout(dropout)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="crnn")
