"""Linear scikit-learn classifiers on cached embeddings, turned into a Keras softmax layer.

A model module with ``KIND = "sklearn"`` (``models/logreg.py``, ``models/linear_svm.py``)
builds an unfitted estimator; ``fit`` standardises the training embeddings (per value, with the
training mean and variance, as ``training.with_normalization`` does for Keras models), fits the
estimator, and returns a Keras model ``Normalization -> Flatten -> Dense(softmax)`` whose Dense
weights are the estimator's coefficients. That model is what the train stage saves and what
``audioclf.export`` wraps, so the exported model still takes the raw waveform and nothing
fitted is pickled: the coefficients live in ``model.keras`` as ordinary weights.

Probabilities: ``LogisticRegression`` (multinomial for 3+ classes) is exactly
``softmax(x W + b)``; with 2 classes its ``sigmoid(d)`` is ``softmax([0, d])``. ``LinearSVC``
has no probabilities: its one-vs-rest margins are used as logits, ``softmax(margins)`` (with 2
classes ``softmax([0, d])``): the argmax is LinearSVC's prediction, the values are not
calibrated probabilities.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

MISSING_LOGIT = -1e4  # bias of a class the training set lacks: probability ~0


def standardize(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """(clips, 1, size) -> (clips, size) float32, as keras.layers.Normalization computes it."""
    std = np.maximum(np.sqrt(var), 1e-7)  # Keras' epsilon floor
    return ((np.asarray(x, np.float32) - mean) / std).reshape(len(x), -1).astype(np.float32)


def dense_weights(estimator, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (size, classes), bias (classes,)) such that softmax(x kernel + bias) is the
    estimator's probability (LogisticRegression) or softmax of its margins (LinearSVC)."""
    coef = np.asarray(estimator.coef_, np.float64)
    intercept = np.asarray(estimator.intercept_, np.float64).reshape(-1)
    seen = [int(c) for c in estimator.classes_]
    kernel = np.zeros((coef.shape[1], num_classes))
    bias = np.full(num_classes, MISSING_LOGIT)
    if len(seen) == 2 and coef.shape[0] == 1:  # binary: one decision d for classes_[1]
        kernel[:, seen[1]] = coef[0]
        bias[seen[0]], bias[seen[1]] = 0.0, intercept[0]
    else:
        for row, c in enumerate(seen):
            kernel[:, c], bias[c] = coef[row], intercept[row]
    return kernel.astype(np.float32), bias.astype(np.float32)


def keras_model(estimator, mean, var, input_shape: tuple[int, ...], num_classes: int, name: str):
    """The fitted estimator as ``Normalization -> Flatten -> Dense(softmax)``."""
    import keras

    kernel, bias = dense_weights(estimator, num_classes)
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=var, name="standardize")(inputs)
    x = keras.layers.Flatten()(x)
    dense = keras.layers.Dense(num_classes, activation="softmax", name="classifier")
    outputs = dense(x)
    dense.set_weights([kernel, bias])
    return keras.Model(inputs, outputs, name=name)


def fit(
    estimator,
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    seed: int,
) -> tuple[Any, dict[str, list[float]]]:
    """Fit ``estimator`` on standardised ``train``; (Keras model, one-row history with the
    log loss and accuracy of the Keras model on train and validation, and the fit seconds)."""
    import keras

    x, y = train
    mean = x.mean(axis=(0, 1), dtype=np.float64).astype(np.float32)  # (size,)
    var = x.var(axis=(0, 1), dtype=np.float64).astype(np.float32)
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)
    start = time.perf_counter()
    estimator.fit(standardize(x, mean, var), np.asarray(y))
    seconds = time.perf_counter() - start
    model = keras_model(estimator, mean, var, x.shape[1:], num_classes, name)

    def scores(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
        probs = model.predict(np.asarray(xs), batch_size=1024, verbose=0)
        loss = keras.losses.sparse_categorical_crossentropy(ys, probs)
        return float(np.mean(loss)), float(np.mean(probs.argmax(axis=1) == ys))

    loss, accuracy = scores(x, y)
    val_loss, val_accuracy = scores(*validation)
    history = {
        "loss": [loss],
        "accuracy": [accuracy],
        "val_loss": [val_loss],
        "val_accuracy": [val_accuracy],
        "epoch_seconds": [seconds],
    }
    return model, history
