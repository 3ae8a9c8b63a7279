"""Stage `augment`: augmented copies of the training clips, as features.

Offline augmentation: ``augment.copies`` noisy, shifted copies of every training clip are
made once, turned into features with the same code as the cache, and stored; training adds
them to the clean clips. Noise comes only from the training part of each noise recording.

Reads:  data/prepared/train_x.npy, train_y.npy, noise_train.npz, labels.json
Writes: data/augmented/train_x.npy  float32 (copies*clips, frames, bins)
        data/augmented/train_y.npy  int32 (copies*clips,)
        data/augmented/applied.csv  source index, shift (samples), noise, noise start, SNR (dB)
Params: augment, features
"""

from __future__ import annotations

import csv
import json
from dataclasses import astuple, fields
from pathlib import Path

import numpy as np

from audioclf.atomic import atomic_dir
from audioclf.augment import Applied, AugmentConfig, augment_set
from audioclf.config import load_params, parse, section
from audioclf.features import output_shape, parse_features, write_npy
from audioclf.report import StageTimer

PREPARED = Path("data/prepared")
OUT = Path("data/augmented")


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

    augmented, sources, applied = augment_set(waves, noises, cfg, rate)
    with atomic_dir(OUT) as tmp:
        write_npy(tmp / "train_x.npy", augmented, feats, rate, "augment: features")
        np.save(tmp / "train_y.npy", labels[sources].astype(np.int32))
        with (tmp / "applied.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow([fl.name for fl in fields(Applied)])
            w.writerows(astuple(a) for a in applied)
    noisy = sum(bool(a.noise) for a in applied)
    timer.summary(
        f"{len(waves)} training clips, {len(noises)} noise recordings",
        f"{len(augmented)} augmented clips ({noisy} with noise) as {feats.type} features to {OUT}",
        f"augment={cfg.name}",
    )


if __name__ == "__main__":
    main()
