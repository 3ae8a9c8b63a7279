"""Stage `augment`: augmented copies of the training clips, as features.

Offline augmentation: ``augment.copies`` copies of every training clip go through the
``augment.chain`` of audiomentations transforms once; the copies are turned into features with
the same code as the cache and stored, and training adds them to the clean clips. Background
noise comes only from the training part of each noise recording.

Reads:  data/prepared/train_x.npy, train_y.npy, noise_train.npz, labels.json
Writes: data/augmented/train_x.npy    float32 (copies*clips, frames, bins)
        data/augmented/train_y.npy    int32 (copies*clips,)
        data/augmented/applied.jsonl  per copy: copy, source clip, and each transform that
                                      fired with the parameters it drew
Params: augment, features
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audioclf.atomic import atomic_dir
from audioclf.augment import (
    AugmentConfig,
    Augmenter,
    augment_chunk,
    build_chain,
    write_noise_wavs,
)
from audioclf.config import load_params, parse, section
from audioclf.features import output_shape, parse_features, write_npy
from audioclf.npystream import NpyWriter
from audioclf.parallel import ordered_map
from audioclf.report import StageTimer

PREPARED = Path("data/prepared")
OUT = Path("data/augmented")
CHUNK = 256  # clips per worker task; each writes its augmented clips to a .npy chunk
# Fewer chunks (< 8,192 clips) run in this process. Measured (benchmarks/augment_throughput.py,
# 1,600 clips): 2 workers' start-up (each imports audiomentations, librosa, numba) costs about
# 4 s, the `light` chain 0.3 ms and `heavy` 7 ms per clip in one process.
PARALLEL_CHUNKS = 32


def main() -> None:
    timer = StageTimer("augment")
    params = load_params()
    cfg = parse(AugmentConfig, section(params, "augment"), "augment")
    feats = parse_features(section(params, "features"))
    info = json.loads((PREPARED / "labels.json").read_text())
    rate = info["sample_rate"]
    output_shape(feats, rate, info["clip_samples"])  # a window that does not fit fails now

    waves = np.load(PREPARED / "train_x.npy", mmap_mode="r")
    labels = np.load(PREPARED / "train_y.npy")
    with np.load(PREPARED / "noise_train.npz") as z:
        noises = {k: z[k] for k in z.files}

    n = cfg.copies * len(waves)
    sources = np.tile(np.arange(len(waves)), cfg.copies)
    fired: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as noise_dir, atomic_dir(OUT) as tmp:
        noise_files = write_noise_wavs(noises, rate, Path(noise_dir))
        build_chain(cfg, noise_files)  # a bad setting fails before the work starts
        pairs = [(c, i) for c in range(cfg.copies) for i in range(len(waves))]
        worker = Augmenter(cfg, noise_files, rate)
        (tmp / ".chunks").mkdir()
        tasks = [
            (worker, PREPARED / "train_x.npy", tmp / ".chunks" / f"{k}.npy", pairs[k : k + CHUNK])
            for k in range(0, len(pairs), CHUNK)
        ]
        # The augmented waves go to a scratch file as they come, then to features batch by
        # batch: memory stays bounded at any dataset size.
        scratch = tmp / ".waves.npy"
        results = ordered_map(augment_chunk, tasks, None, min_items=PARALLEL_CHUNKS)
        with (
            (tmp / "applied.jsonl").open("w") as log,
            NpyWriter(scratch, np.float32, waves.shape[1:]) as augmented,
            tqdm(total=len(pairs), desc="augment: transforms", unit="clip", disable=None) as bar,
        ):
            for (_, _, chunk, items), records in zip(tasks, results):
                augmented.append_rows_of(chunk, 0, len(items))
                chunk.unlink()
                for applied in records:
                    fired.update(t for t in applied if t not in ("copy", "source_index"))
                    log.write(json.dumps(applied) + "\n")
                bar.update(len(items))
        (tmp / ".chunks").rmdir()
        write_npy(tmp / "train_x.npy", scratch, feats, rate, "augment: features")
        scratch.unlink()
        np.save(tmp / "train_y.npy", labels[sources].astype(np.int32))
    counts = ", ".join(f"{t} {fired[t]}" for t in cfg.chain) or "no transforms"
    timer.summary(
        f"{len(waves)} training clips, {len(noises)} noise recordings",
        f"{n} augmented clips ({counts}) as {feats.type} features to {OUT}",
        f"augment={cfg.name}",
    )


if __name__ == "__main__":
    main()
