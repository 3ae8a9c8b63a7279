"""Epoch time fed from the memory-mapped feature cache vs the same arrays in memory, in one run.

train (stages/train.py, load_training_data) opens data/features/train_x.npy and
data/augmented/train_x.npy with ``np.load(mmap_mode="r")`` and concatenates them (with
augmentation, the default) or hands the memmap itself to Keras (``augment=none``). This
script writes generated float32 features of the default shape (log-mel 98 x 40) to a temporary
folder as those two files, then for the default model (spec_cnn2d) and the fastest
(spec_cnn1d, benchmarks/epoch_time.py / docs/models.md) fits three copies of the model:

- memory: both files read fully (``np.load`` without mmap) and concatenated: the baseline;
- mmap + concat: train's path with augmented copies;
- mmap direct: the clean file's memmap passed to ``fit`` as is (train's path without them).

Each copy has one untimed warm-up epoch (tracing); then ``--rounds`` rounds time one epoch of
each copy in turn (interleaved, so a busy shared machine slows all alike) and the median is
reported. The files are fresh in the page cache, as they are after `features` wrote them.

    python benchmarks/epoch_feed.py [--clips 3504] [--rounds 3] [--models spec_cnn2d,spec_cnn1d]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from audioclf.models import get_builder, parse_model
from audioclf.tfimport import import_tensorflow
from audioclf.training import TrainConfig, make_deterministic, with_normalization

MODELS = ("spec_cnn2d", "spec_cnn1d")  # default; fastest per epoch (docs/models.md)
SHAPE = (98, 40)  # conf/features/logmel.yaml on 1 s at 16 kHz: frames x mel bands
CLASSES = 12


def model_params(name: str) -> dict:
    import yaml

    conf = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / f"conf/model/{name}.yaml").read_text()
    )
    return conf.get("model", conf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3504, help="per epoch, clean + augmented")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    import_tensorflow()
    import keras

    rng = np.random.default_rng(0)
    half = args.clips // 2
    y = rng.integers(0, CLASSES, size=2 * half).astype(np.int32)
    onehot = keras.utils.to_categorical(y, CLASSES)
    cfg = TrainConfig()
    with tempfile.TemporaryDirectory() as tmp:
        clean, aug = Path(tmp, "train_x.npy"), Path(tmp, "aug_train_x.npy")
        for path in (clean, aug):
            np.save(path, rng.normal(size=(half, *SHAPE)).astype(np.float32))
        start = time.perf_counter()
        memory = np.concatenate([np.load(clean), np.load(aug)])
        load_memory = time.perf_counter() - start
        start = time.perf_counter()
        mmap_concat = np.concatenate([np.load(clean, mmap_mode="r"), np.load(aug, mmap_mode="r")])
        load_mmap = time.perf_counter() - start
        mmap_direct = np.load(clean, mmap_mode="r")
        feeds = {
            "memory": (memory, onehot),
            "mmap + concat": (mmap_concat, onehot),
            "mmap direct": (mmap_direct, onehot[:half]),
        }
        print(
            f"{len(memory)} clips {SHAPE} float32 ({memory.nbytes / 2**20:.0f} MiB); load "
            f"{load_memory:.2f} s in memory, {load_mmap:.2f} s mmap + concat; "
            f"{len(os.sched_getaffinity(0))} cores; 'mmap direct' has half the clips "
            "(no augmented copies), its time is doubled to compare",
            flush=True,
        )
        rows = []
        for name in args.models.split(","):
            hparams = parse_model(model_params(name)).hparams
            models = {}
            for feed, (x, t) in feeds.items():
                make_deterministic(cfg.seed)
                body = get_builder(name)(SHAPE, CLASSES, **hparams)
                model = with_normalization(body, memory)
                model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                              loss="categorical_crossentropy")  # fmt: skip
                model.fit(x, t, batch_size=cfg.batch_size, epochs=1, verbose=0)  # warm-up
                models[feed] = model
            times: dict[str, list[float]] = {feed: [] for feed in feeds}
            for _ in range(args.rounds):
                for feed, (x, t) in feeds.items():
                    start = time.perf_counter()
                    models[feed].fit(x, t, batch_size=cfg.batch_size, epochs=1, verbose=0)
                    scale = len(memory) / len(x)
                    times[feed].append((time.perf_counter() - start) * scale)
            for feed in feeds:
                rows.append((name, feed, float(np.median(times[feed]))))
                print(f"{name} {feed}: {[round(s, 2) for s in times[feed]]} s", flush=True)
    print("| model | feed | s/epoch (median) | x memory |")
    print("|---|---|---:|---:|")
    for name, feed, seconds in rows:
        base = next(s for n, f, s in rows if n == name and f == "memory")
        print(f"| {name} | {feed} | {seconds:.2f} | {seconds / base:.3f} |")


if __name__ == "__main__":
    main()
