"""scikit-learn LinearSVC on a pretrained backbone's embedding. Fitted by ``audioclf.linear``,
exported as a Dense softmax of its one-vs-rest margins (argmax = LinearSVC's prediction; the
values are not calibrated probabilities)."""

from __future__ import annotations

INPUT = "embedding"  # (1, size)
KIND = "sklearn"  # build returns an unfitted scikit-learn estimator, not a Keras model


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    C: float = 1.0,  # noqa: N803  (scikit-learn's name): inverse L2 strength
    max_iter: int = 10000,
):  # -> sklearn.svm.LinearSVC
    from sklearn.svm import LinearSVC

    if not C > 0:
        raise ValueError(f"C: must be > 0 (inverse regularisation strength), got {C}")
    if max_iter < 1:
        raise ValueError(f"max_iter: must be >= 1, got {max_iter}")
    return LinearSVC(C=C, max_iter=max_iter)
