"""scikit-learn LogisticRegression on a pretrained backbone's embedding (the Choi et al. 2017
transfer-learning reference). Fitted by ``audioclf.linear``, exported as a Dense softmax."""

from __future__ import annotations

INPUT = "embedding"  # (1, size)
KIND = "sklearn"  # build returns an unfitted scikit-learn estimator, not a Keras model


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    C: float = 1.0,  # noqa: N803  (scikit-learn's name): inverse L2 strength
    max_iter: int = 1000,
):  # -> sklearn.linear_model.LogisticRegression
    from sklearn.linear_model import LogisticRegression

    if not C > 0:
        raise ValueError(f"C: must be > 0 (inverse regularisation strength), got {C}")
    if max_iter < 1:
        raise ValueError(f"max_iter: must be >= 1, got {max_iter}")
    return LogisticRegression(C=C, max_iter=max_iter)
