"""DS-CNN, the depthwise-separable CNN of "Hello Edge: Keyword Spotting on Microcontrollers"
(Zhang et al., 2017), small variant.

A 10x4 convolution with stride 2 (time x frequency), then ``blocks`` depthwise-separable
blocks: 3x3 depthwise conv + batch norm + ReLU, 1x1 pointwise conv + batch norm + ReLU; global
average pooling, dropout, softmax. Few parameters and multiplies per clip.
"""

from __future__ import annotations

from audioclf.models import BN_MOMENTUM

INPUT = "spectrogram"  # (frames, bins)


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    filters: int = 64,
    blocks: int = 4,
    dropout: float = 0.2,
):  # -> keras.Model
    import keras
    from keras import layers

    if filters < 1 or blocks < 0:
        raise ValueError("filters: must be >= 1; blocks: must be >= 0")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: must be in [0, 1), got {dropout}")

    def bn(**kwargs):
        # momentum: see BN_MOMENTUM in audioclf.models (why not Keras' 0.99)
        return layers.BatchNormalization(momentum=BN_MOMENTUM, **kwargs)

    inputs = keras.Input(shape=tuple(input_shape), name="spectrogram")  # (frames, bins)
    x = layers.Reshape((*input_shape, 1))(inputs)
    x = layers.Conv2D(filters, (10, 4), strides=2, padding="same", use_bias=False)(x)
    x = bn()(x)
    x = layers.ReLU()(x)
    for i in range(blocks):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"ds{i}_dw")(x)
        x = bn(name=f"ds{i}_dw_bn")(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"ds{i}_pw")(x)
        x = bn(name=f"ds{i}_pw_bn")(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")
