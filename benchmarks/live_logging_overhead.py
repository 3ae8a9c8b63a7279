"""Overhead of live MLflow logging: seconds per epoch with and without the per-epoch callback.

The default model (spec_cnn2d at its default size, from params.yaml) trains through
``audioclf.training.fit`` (the train stage's own code: early stopping, checkpoint, timer) on
generated log-mel-shaped features (clips x 98 frames x 40 bins, 12 classes), so no pipeline
data is needed. The baseline (no live logging) and the live run (each epoch logged to a real
SQLite store in a temporary folder, with the store lock, as the train stage does) run as
``--pairs`` pairs in one process after a warm-up fit, in ABBA order (baseline-live, then
live-baseline, ...), so a slow drift of the machine's load falls on both kinds alike; each
fit's wall time is divided by its epochs. Printed: each pair's ratio live/baseline and their
median (the headline: on a shared machine a pair's two fits, run back to back, see similar
load, while fits minutes apart do not), the median seconds per epoch of each kind, and the time
of the logging call itself as a share of the baseline epoch.

    python benchmarks/live_logging_overhead.py [--clips 1024] [--epochs 2] [--pairs 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from audioclf.models import build_model, parse_model
from audioclf.tfimport import import_tensorflow
from audioclf.training import TrainConfig, fit, make_deterministic, with_normalization

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (98, 40)  # 1 s at a 10 ms hop, 40 mel bands: the default features
CLASSES = 12


def one_fit(x, y, cfg: TrainConfig, work: Path, on_epoch) -> float:
    """Seconds per epoch of one fit from a fresh model (same seed every time)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    make_deterministic(cfg.seed)
    body = build_model(parse_model(params["model"]), SHAPE, CLASSES)
    model = with_normalization(body, x)
    split = len(x) * 4 // 5
    start = time.perf_counter()
    fit(model, (x[:split], y[:split]), (x[split:], y[split:]), CLASSES, cfg, work / "m.keras",
        on_epoch)  # fmt: skip
    return (time.perf_counter() - start) / cfg.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed fit")
    parser.add_argument("--pairs", type=int, default=6, help="(baseline, live) pairs, ABBA")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.clips, *SHAPE)).astype(np.float32)
    y = rng.integers(0, CLASSES, args.clips).astype(np.int32)
    # patience > epochs: every fit runs all its epochs.
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, patience=args.epochs + 1)
    import_tensorflow()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        from audioclf import tracking

        run_id = tracking.start_run("benchmark", {}, {"git_commit": "benchmark"})
        logger = tracking.epoch_logger(run_id)
        log_seconds: list[float] = []

        def live(epoch, values) -> None:  # the train stage's callback, timed
            start = time.perf_counter()
            logger(epoch, values)
            log_seconds.append(time.perf_counter() - start)

        one_fit(x, y, TrainConfig(epochs=1, batch_size=64), work, None)  # warm-up: tracing
        seconds: dict[str, list[float]] = {"baseline": [], "live": []}
        callbacks = {"baseline": None, "live": live}
        for pair in range(args.pairs):
            order = ("baseline", "live") if pair % 2 == 0 else ("live", "baseline")
            for kind in order:
                seconds[kind].append(one_fit(x, y, cfg, work, callbacks[kind]))
        logged = len(tracking.client().get_metric_history(run_id, "loss"))
        tracking.end_run(run_id, "FINISHED")

    base, with_live = (statistics.median(seconds[k]) for k in ("baseline", "live"))
    ratios = [live / b for live, b in zip(seconds["live"], seconds["baseline"], strict=True)]
    print(f"{args.clips} clips, {args.epochs} epochs per fit, {args.pairs} pairs in ABBA order")
    for kind, values in seconds.items():
        print(f"{kind}: {' '.join(f'{v:.3f}' for v in values)} s/epoch")
    print(f"epochs logged live: {logged}")
    cost = statistics.median(log_seconds)
    print(
        f"one epoch's live log call: median {cost * 1000:.1f} ms (max {max(log_seconds) * 1000:.1f}"
        f" ms) = {cost / base * 100:.3f} % of a baseline epoch"
    )
    print(f"median s/epoch: baseline {base:.3f}, live logging {with_live:.3f}")
    print(f"per-pair ratios live/baseline: {' '.join(f'{r:.4f}' for r in ratios)}")
    ratio = statistics.median(ratios)
    print(f"median per-pair ratio live/baseline: {ratio:.4f} ({(ratio - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()
