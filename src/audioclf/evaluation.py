"""Classification metrics from predicted probabilities (pure NumPy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audioclf.config import check


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = 256  # clips per prediction batch
    experiment: str = "audioclf"  # MLflow experiment the run is logged to
    # The corrupted test suite (stage `corrupt`, schema in audioclf.corruption):
    # type -> severity name -> arguments. Per-clip draws are seeded by corruption_seed.
    corruption_seed: int = 2024
    corruptions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(bool(self.experiment.strip()), "experiment", "must be a non-empty name")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; rows are true labels, columns predictions."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (correct / clips of that class); NaN for a class with no clips."""
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / totals, np.nan)


def cross_entropy(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at 1e-7)."""
    p = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    return float(-np.mean(np.log(p)))


def summarize(probs: np.ndarray, y_true: np.ndarray, classes: list[str]) -> dict:
    """metrics.json content: accuracy, balanced accuracy, loss, per-class accuracy, confusion
    matrix. Balanced accuracy is the mean recall over the classes present in ``y_true``: on an
    imbalanced task (TIMIT is ~70 % male) always answering the majority scores 0.5, not 0.7."""
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    per_class = per_class_accuracy(cm)
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": float(np.nanmean(per_class)),
        "loss": cross_entropy(probs, y_true),
        "per_class_accuracy": {
            c: (None if np.isnan(a) else float(a)) for c, a in zip(classes, per_class)
        },
        "confusion_matrix": cm.tolist(),
    }


def set_accuracies(predicted: Mapping[str, np.ndarray], y_true: np.ndarray) -> dict[str, float]:
    """``test/acc_<set>`` for each set's predicted labels, and their mean as
    ``test/acc_corrupted_mean`` (absent when there are no sets)."""
    acc = {f"test/acc_{name}": float(np.mean(y == y_true)) for name, y in predicted.items()}
    if acc:
        acc["test/acc_corrupted_mean"] = float(np.mean(list(acc.values())))
    return acc
