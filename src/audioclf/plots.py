"""Images for reports and MLflow: confusion matrix, training curves and the few-shot learning
curve (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def confusion_png(cm: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix with the counts written in each cell."""
    plt = _pyplot()
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = 1.0 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def curves_png(history: dict[str, list[float]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch, training and validation side by side."""
    plt = _pyplot()
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[metric], label="train", marker=".")
        ax.plot(epochs, history[f"val_{metric}"], label="validation", marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def learning_curve_png(curve, path: Path, title: str) -> None:
    """Test accuracy against training recordings per class, a line per series: ``curve`` is
    ``comparison.learning_curve``'s DataFrame. The x axis is ordered by N with "all" last,
    evenly spaced (N = 5, 10, 20, 50, all)."""
    plt = _pyplot()
    ticks = sorted(set(zip(curve["n_value"], curve["n"])))
    position = {label: i for i, (_, label) in enumerate(ticks)}
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for series, points in curve.groupby("series", sort=True):
        xs = [position[n] for n in points["n"]]
        ax.plot(xs, points["accuracy"], marker="o", label=series)
    if ticks:
        ax.set_xticks(range(len(ticks)), [label for _, label in ticks])
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("training recordings per class (data.prepare.max_train_per_class)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
