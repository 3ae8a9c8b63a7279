"""Clips per second of each augmentation transform, each augment option's chain, and each
corrupted test set, on this machine, in one process.

Clips are the default dataset's prepared training clips (``data/prepared``: run ``dvc repro``
first), 1 s at 16 kHz; noise is the training part of its noise recordings. Every transform
runs at p = 1 so each clip pays for it. The baseline, measured in the same run, is the
feature cache's own work per clip: the default log-mel features (``features`` stage), so a
ratio of 0.5 means "twice as slow as computing the clip's features". One process, except the
rows "the stage's way": the stage spreads the work over the cores this process may use
(``audioclf.fanout``), worker start-up included. Each figure is the best of three timed passes
after a warm-up pass.

    python benchmarks/augment_throughput.py [--clips 400] [--stage-clips 1600]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from audioclf.augment import TRANSFORMS, AugmentConfig, augmenter
from audioclf.config import parse
from audioclf.corruption import corrupter, parse_corruptions
from audioclf.fanout import map_rows
from audioclf.features import compute, parse_features
from audioclf.parallel import n_workers
from audioclf.transforms import write_noise_wavs

ROOT = Path(__file__).resolve().parents[1]
PREPARED = ROOT / "data/prepared"


def composed(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return OmegaConf.to_container(compose("config", list(overrides)), resolve=True)


def rate_of(fn, n: int, repeats: int = 3) -> float:
    """Clips per second of ``fn()``, which processes ``n`` clips: the best of ``repeats``
    timed calls after one warm-up call (the least disturbed by other work)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=400, help="clips per measurement")
    parser.add_argument(
        "--stage-clips",
        type=int,
        default=1600,
        help="clips for the stage rows (process start-up is amortised over them)",
    )
    args = parser.parse_args()
    if not (PREPARED / "train_x.npy").is_file():
        raise SystemExit(f"{PREPARED}/train_x.npy not found: run `dvc repro` first")
    info = json.loads((PREPARED / "labels.json").read_text())
    rate = info["sample_rate"]
    all_waves = np.load(PREPARED / "train_x.npy", mmap_mode="r")
    waves = np.array(all_waves[: args.clips])
    n = len(waves)
    stage_pairs = [(0, i) for i in range(min(args.stage_clips, len(all_waves)))]
    with np.load(PREPARED / "noise_train.npz") as z:
        noises = {k: z[k] for k in z.files}
    defaults = composed()
    feats = parse_features(defaults["features"])
    rows: list[tuple[str, float]] = []

    def features() -> None:
        for _ in compute(waves, feats, rate):
            pass

    baseline = rate_of(features, n)
    print(f"{n} clips of {waves.shape[1] / rate:g} s at {rate} Hz, one process")
    print(f"baseline: {feats.type} features {baseline:,.0f} clips/s\n")
    print("| work | clips/s | × features |\n|---|---:|---:|")
    print(f"| {feats.type} features (baseline) | {baseline:,.0f} | 1.00 |")

    with tempfile.TemporaryDirectory() as tmp:
        files = write_noise_wavs(noises, rate, Path(tmp))
        heavy = composed("augment=heavy")["augment"]

        def chain_rate(cfg: AugmentConfig) -> float:
            worker = augmenter(cfg, files, rate)
            return rate_of(lambda: [worker.apply(0, (0, 0, i), w) for i, w in enumerate(waves)], n)

        for name in TRANSFORMS.names():
            one = {**heavy, "name": name, "chain": [name]}
            one["transforms"] = {**heavy["transforms"], name: {**heavy["transforms"][name], "p": 1}}
            rows.append((f"transform {name}", chain_rate(parse(AugmentConfig, one, "augment"))))
        for option in ("light", "heavy"):
            cfg = parse(AugmentConfig, composed(f"augment={option}")["augment"], "augment")
            rows.append((f"chain {option} (its p values)", chain_rate(cfg)))
            worker = augmenter(cfg, files, rate, PREPARED / "train_x.npy")

            def stage(w=worker) -> None:
                # The stage's way: chunks of 256 clips, each written by a worker to a file.
                items = [(0, (0, c, i), i, {}) for c, i in stage_pairs]
                shape = (all_waves.shape[1],)
                for _, _, path in map_rows(w.row, items, Path(tmp), np.float32, shape, min_items=1):
                    path.unlink()

            rows.append(
                (
                    f"chain {option}, {n_workers()} processes, {len(stage_pairs)} clips in "
                    "chunks of 256 (the stage's way from 8,192 clips, worker start-up included)",
                    rate_of(stage, len(stage_pairs), repeats=1),
                )
            )

        # (The stage mixes the test part of the noise; the cost is the same.)
        sets = parse_corruptions(defaults["evaluate"]["corruptions"])
        worker = corrupter(sets, files, rate)
        for k, s in enumerate(sets):
            speed = rate_of(
                lambda k=k: [worker.apply(k, (0, k, i), w) for i, w in enumerate(waves)], n
            )
            rows.append((f"corruption {s.name}", speed))

    for name, r in rows:
        print(f"| {name} | {r:,.0f} | {r / baseline:.2f} |")


if __name__ == "__main__":
    main()
