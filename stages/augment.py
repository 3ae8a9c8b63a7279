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

from audioclf.atomic import atomic_dir
from audioclf.augment import AugmentConfig, augmenter
from audioclf.config import load_params, parse, section
from audioclf.fanout import map_rows, route_rows
from audioclf.features import output_shape, parse_features, write_npy
from audioclf.npystream import NpyWriter
from audioclf.stagetimer import StageTimer
from audioclf.transforms import write_noise_wavs

PREPARED = Path("data/prepared")
OUT = Path("data/augmented")
# Fewer clips run in this process. Measured (benchmarks/augment_throughput.py, 1,600 clips):
# 2 workers' start-up (each imports audiomentations, librosa, numba) costs about 4 s, the
# `light` chain 0.3 ms and `heavy` 7 ms per clip in one process.
PARALLEL_FROM = 8192


def augment_waves(
    cfg: AugmentConfig, source: Path, noise_files: list[Path], rate: int, folder: Path
) -> Counter[str]:
    """``cfg.copies`` augmented copies of every clip of the .npy ``source`` (copy-major) into
    ``folder``/.waves.npy, and what each copy got into ``folder``/applied.jsonl; returns how
    often each transform fired."""
    n_clips, n_samples = np.load(source, mmap_mode="r").shape
    worker = augmenter(cfg, noise_files, rate, source)  # a bad setting fails now
    items = [
        (0, (cfg.seed, c, i), i, {"copy": c, "source_index": i})
        for c in range(cfg.copies)
        for i in range(n_clips)
    ]
    fired: Counter[str] = Counter()
    # The augmented waves go to a scratch file as they come, then to features batch by
    # batch: memory stays bounded at any dataset size.
    with (
        (folder / "applied.jsonl").open("w") as log,
        NpyWriter(folder / ".waves.npy", np.float32, (n_samples,)) as waves,
    ):
        for _, done, path in map_rows(
            worker.row,
            items,
            folder,
            np.float32,
            (n_samples,),
            desc="augment: transforms",
            min_items=PARALLEL_FROM,
        ):
            route_rows(path, [(k, waves, k) for k, _ in done])
            path.unlink()
            for _, applied in done:
                fired.update(t for t in applied if t not in ("copy", "source_index"))
                log.write(json.dumps(applied) + "\n")
    return fired


def main() -> None:
    timer = StageTimer("augment")
    params = load_params()
    cfg = parse(AugmentConfig, section(params, "augment"), "augment")
    feats = parse_features(section(params, "features"))
    info = json.loads((PREPARED / "labels.json").read_text())
    rate = info["sample_rate"]
    output_shape(feats, rate, info["clip_samples"])  # a window that does not fit fails now
    labels = np.load(PREPARED / "train_y.npy")
    with np.load(PREPARED / "noise_train.npz") as z:
        noises = {k: z[k] for k in z.files}

    with tempfile.TemporaryDirectory() as noise_dir, atomic_dir(OUT) as tmp:
        noise_files = write_noise_wavs(noises, rate, Path(noise_dir))
        fired = augment_waves(cfg, PREPARED / "train_x.npy", noise_files, rate, tmp)
        write_npy(tmp / "train_x.npy", tmp / ".waves.npy", feats, rate, "augment: features")
        (tmp / ".waves.npy").unlink()
        np.save(tmp / "train_y.npy", np.tile(labels, cfg.copies).astype(np.int32))
    counts = ", ".join(f"{t} {fired[t]}" for t in cfg.chain) or "no transforms"
    timer.summary(
        f"{len(labels)} training clips, {len(noises)} noise recordings",
        f"{cfg.copies * len(labels)} augmented clips ({counts}) as {feats.type} features to {OUT}",
        f"augment={cfg.name}",
    )


if __name__ == "__main__":
    main()
