"""scikit-learn linear classifiers -> Dense softmax (audioclf.linear), on generated embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from audioclf import linear
from audioclf.models import ModelConfig, build_model, parse_model


def blobs(classes: int, n: int = 60, size: int = 20, seed: int = 0):
    """(n * classes, 1, size) float32 embeddings around one random centre per class, labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (classes, size))
    y = np.repeat(np.arange(classes), n)
    x = centres[y] + rng.normal(0, 1.0, (len(y), size)) + 3.0  # off-centre: standardising matters
    return x[:, None, :].astype(np.float32), y.astype(np.int32)


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("name", ["logreg", "linear_svm"])
def test_the_dense_layer_gives_the_estimators_argmax_and_probabilities(name, classes) -> None:
    cfg = parse_model({"name": name})
    assert cfg == ModelConfig(name, "embedding", cfg.hparams, "sklearn")
    x, y = blobs(classes)
    xv, yv = blobs(classes, n=20, seed=1)
    estimator = build_model(cfg, x.shape[1:], classes)
    model, history = linear.fit(estimator, name, (x, y), (xv, yv), classes, seed=0)
    probs = model.predict(xv, verbose=0)
    assert probs.shape == (len(xv), classes) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)

    # The training statistics, as the estimator saw its inputs.
    xs = linear.standardize(xv, x.mean(axis=(0, 1)), x.var(axis=(0, 1)))
    np.testing.assert_array_equal(probs.argmax(axis=1), estimator.predict(xs))
    if name == "logreg":
        expected = estimator.predict_proba(xs)
    else:  # LinearSVC: softmax of its margins ([0, d] with two classes)
        d = estimator.decision_function(xs)
        logits = np.stack([np.zeros_like(d), d], 1) if d.ndim == 1 else d
        expected = np.exp(logits - logits.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
    error = np.abs(probs - expected).max()
    print(f"{name}, {classes} classes: max |keras - sklearn| probability {error:.3g}")
    assert error < 1e-5
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"}
    assert history["val_accuracy"][0] == np.mean(probs.argmax(1) == yv)


def test_a_class_missing_from_training_gets_probability_zero() -> None:
    x, y = blobs(3)
    keep = y != 1
    model, _ = linear.fit(
        build_model(parse_model({"name": "logreg"}), (1, 20), 3),
        "logreg",
        (x[keep], y[keep]),
        (x, y),
        3,
        seed=0,
    )
    assert model.predict(x, verbose=0)[:, 1].max() < 1e-6


def test_bad_hyperparameters_name_the_key() -> None:
    from audioclf.config import ConfigError

    with pytest.raises(ConfigError, match=r"model.C: must be > 0"):
        build_model(parse_model({"name": "linear_svm", "C": 0}), (1, 20), 2)
