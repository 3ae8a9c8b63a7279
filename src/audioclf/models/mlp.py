"""A small MLP head on a pretrained backbone's embedding (``features=choi2017``).

Dense (ReLU, dropout) layers on the standardised embedding, then the softmax classifier: the
backbone stays frozen (its embeddings are cached by the features stage), only this is trained.
"""

from __future__ import annotations

INPUT = "embedding"  # (1, size)


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    units: tuple[int, ...] = (128,),
    dropout: float = 0.3,
):  # -> keras.Model
    import keras
    from keras import layers

    if any(u < 1 for u in units):
        raise ValueError(f"units: every hidden layer needs >= 1 unit, got {list(units)}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=tuple(input_shape), name="embedding")  # (1, size)
    x = layers.Flatten()(inputs)
    for i, width in enumerate(units):
        x = layers.Dense(width, activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mlp")
