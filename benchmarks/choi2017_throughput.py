"""Clips per second of the choi2017 embedding cache beside the log-mel cache, and the fit time
of the linear classifiers on the embeddings, on this machine, in one process.

Both caches run ``audioclf.features.compute`` as the ``features`` stage does (resampling to
12 kHz and tiling to 81,920 samples included for choi2017), on the same clips: the default
dataset's prepared training clips when ``data/prepared`` exists (``dvc repro`` first), else
generated 1-s 16 kHz clips (three tone classes in noise), said in the output. The baseline is
the default log-mel features; the ratio is embedding clips/s over log-mel clips/s. Each rate is
the best of three timed passes after a warm-up pass. The weights come from the download cache
(``$AUDIOCLF_CACHE``), downloaded once if missing (``--weights-url`` names a mirror).

    python benchmarks/choi2017_throughput.py [--clips 256] [--weights-url URL]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from audioclf import linear
from audioclf.features import compute, parse_features
from audioclf.models import build_model, parse_model

ROOT = Path(__file__).resolve().parents[1]
PREPARED = ROOT / "data/prepared"


def composed(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return OmegaConf.to_container(compose("config", list(overrides)), resolve=True)


def best_seconds(fn, repeats: int = 3) -> float:
    """The least disturbed of ``repeats`` timed calls of ``fn()`` after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def clips(n: int) -> tuple[np.ndarray, np.ndarray, int, str]:
    """(waves, labels, sample rate, where they came from)."""
    if (PREPARED / "train_x.npy").is_file():
        info = json.loads((PREPARED / "labels.json").read_text())
        x = np.array(np.load(PREPARED / "train_x.npy", mmap_mode="r")[:n])
        y = np.load(PREPARED / "train_y.npy")[:n]
        return x, y, info["sample_rate"], f"{len(x)} prepared clips from {PREPARED}"
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    y = np.arange(n) % 3
    freqs = np.array([300.0, 900.0, 2000.0])[y] * rng.uniform(0.9, 1.1, n)
    x = 0.3 * np.sin(2 * np.pi * freqs[:, None] * t) + 0.05 * rng.standard_normal((n, 16000))
    return x.astype(np.float32), y, 16000, f"{n} generated 1-s 16 kHz clips (no data/prepared)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=256, help="clips per measurement")
    parser.add_argument("--weights-url", default=None, help="a mirror of the choi2017 weights")
    args = parser.parse_args()
    waves, labels, rate, source = clips(args.clips)
    n = len(waves)
    logmel = parse_features(composed()["features"])
    choi = parse_features(
        {**composed("features=choi2017")["features"], "weights_url": args.weights_url}
    )
    compute(waves[:1], choi, rate).__next__()  # downloads the weights once, if missing

    def cache(cfg) -> np.ndarray:
        return np.concatenate(list(compute(waves, cfg, rate)))

    print(f"{source}; best of 3 after a warm-up")
    base = n / best_seconds(lambda: cache(logmel))
    embed = n / best_seconds(lambda: cache(choi))
    print(f"log-mel cache (baseline):   {base:9.1f} clips/s")
    print(f"choi2017 embedding cache:   {embed:9.1f} clips/s  ({embed / base:.4f} x log-mel)")

    x = cache(choi)
    half = n // 2
    classes = int(labels.max()) + 1
    for name in ("logreg", "linear_svm"):
        cfg = parse_model(composed(f"model={name}")["model"])
        fits = []  # the scikit-learn fit alone (history's epoch_seconds), not the scoring
        for _ in range(4):
            estimator = build_model(cfg, x.shape[1:], classes)
            _, history = linear.fit(
                estimator, name, (x[:half], labels[:half]), (x[half:], labels[half:]), classes, 0
            )
            fits.append(history["epoch_seconds"][0])
        seconds = min(fits[1:])
        print(
            f"{name} fit on {half} embeddings ({classes} classes): {seconds:.4f} s, "
            f"{seconds / (half / embed):.4f} x the time to embed those clips; "
            f"validation accuracy {history['val_accuracy'][0]:.3f}"
        )


if __name__ == "__main__":
    main()
