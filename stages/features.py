"""Stage `features`: the spectrogram cache, computed once per data + features params.

The fixed transforms (log-mel, STFT, log-spectrogram, MFCC, wave) run in NumPy/SciPy in one
thread per core, without importing TensorFlow (``audioclf.features.compute``); a pretrained
backbone (choi2017, trained) runs in TensorFlow.

Reads:  data/prepared/{train,validation,test}_x.npy, labels.json
Writes: data/features/{train,validation,test}_x.npy  float32 (clips, frames, bins),
        memory-mappable; labels stay in data/prepared/*_y.npy. Streams: read and written
        batch by batch, so memory stays bounded at any dataset size.
        data/features/info.json  features config, shape, prepared and input sample rates, the
        backbone (name, weights sha256, layers, embedding size) for a pretrained one
Params: features
"""

from __future__ import annotations

import json
from pathlib import Path

from audioclf.atomic import atomic_files
from audioclf.config import load_params, section, to_dict
from audioclf.features import input_rate, output_shape, parse_features, write_npy
from audioclf.layout import SPLITS
from audioclf.npystream import shape_of
from audioclf.stagetimer import StageTimer

PREPARED = Path("data/prepared")
OUT = Path("data/features")


def main() -> None:
    timer = StageTimer("features")
    cfg = parse_features(section(load_params(), "features"))
    info = json.loads((PREPARED / "labels.json").read_text())
    rate = info["sample_rate"]
    shape = output_shape(cfg, rate, info["clip_samples"])

    total = 0
    with atomic_files(OUT) as tmp:
        for split in SPLITS:
            # Read and written batch by batch: memory stays bounded at any dataset size.
            source = PREPARED / f"{split}_x.npy"
            write_npy(tmp / f"{split}_x.npy", source, cfg, rate, f"features: {split}")
            total += shape_of(source)[0][0]
        meta = {
            "features": to_dict(cfg),
            "shape": list(shape),  # (frames, bins) per clip
            "prepared_rate": rate,  # Hz of data/prepared
            "prepared_samples": info["clip_samples"],
            "input_rate": input_rate(cfg, rate),  # Hz of the waves the transform sees
            "backbone": cfg.backbone(),  # the pretrained network, if any (logged to MLflow)
        }
        (tmp / "info.json").write_text(json.dumps(meta, indent=2) + "\n")
    timer.summary(
        f"{total} clips from {PREPARED}",
        f"{cfg.type} features {shape[0]} frames x {shape[1]} bins to {OUT}",
    )


if __name__ == "__main__":
    main()
