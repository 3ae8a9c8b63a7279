"""Seconds per training epoch of every model, on this machine, on the default dataset.

Each model is built from its composed config (``conf/model/<name>.yaml`` with the features
it selects), its features are computed from ``data/prepared/train_x.npy`` (run ``dvc repro``
first), and the set is doubled to the size training sees by default (clean clips + one
augmented copy each). One warm-up epoch (graph tracing) is not counted; the next ``--epochs``
are timed. The baseline is the default model, spec_cnn2d, measured in the same run.

    python benchmarks/epoch_time.py [--epochs 2] [--models a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from audioclf.features import compute, parse_features
from audioclf.models import available, get_builder, parse_model
from audioclf.tfimport import import_tensorflow
from audioclf.training import TrainConfig, make_deterministic, with_normalization

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "spec_cnn2d"


def composed(model: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return OmegaConf.to_container(compose("config", [f"model={model}"]), resolve=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per model")
    parser.add_argument("--models", default=",".join(available()))
    args = parser.parse_args()
    models = args.models.split(",")
    if BASELINE not in models:
        models.insert(0, BASELINE)

    prepared = ROOT / "data/prepared"
    rate = json.loads((prepared / "labels.json").read_text())["sample_rate"]
    waves = np.load(prepared / "train_x.npy", mmap_mode="r")
    labels = np.load(prepared / "train_y.npy")
    import_tensorflow()
    import keras

    cache: dict[str, np.ndarray] = {}
    rows = []
    for name in models:
        params = composed(name)
        feats = parse_features(params["features"])
        key = json.dumps(params["features"], sort_keys=True)
        if key not in cache:
            x = np.concatenate(list(compute(waves, feats, rate)))
            cache[key] = np.concatenate([x, x])  # clean + one augmented copy's worth
        x = cache[key]
        y = keras.utils.to_categorical(np.concatenate([labels, labels]), int(labels.max()) + 1)
        model_cfg = parse_model(params["model"])
        train = TrainConfig(**params["train"])
        make_deterministic(train.seed)
        body = get_builder(name)(x.shape[1:], y.shape[1], **model_cfg.hparams)
        model = with_normalization(body, x)
        model.compile(
            optimizer=keras.optimizers.Adam(train.learning_rate), loss="categorical_crossentropy"
        )
        model.fit(x, y, batch_size=train.batch_size, epochs=1, verbose=0)  # warm-up: tracing
        start = time.perf_counter()
        model.fit(x, y, batch_size=train.batch_size, epochs=args.epochs, verbose=0)
        seconds = (time.perf_counter() - start) / args.epochs
        params_n = int(sum(np.prod(w.shape) for w in model.trainable_weights))
        rows.append((name, feats.type, params_n, seconds))
        print(f"{name}: {seconds:.1f} s/epoch ({len(x)} clips)", flush=True)

    base = next(s for n, _, _, s in rows if n == BASELINE)
    print(f"\n{os.cpu_count()} CPUs; {len(x)} training clips per epoch; baseline {BASELINE}")
    print("| model | features | trainable params | s/epoch | x baseline |")
    print("|---|---|---:|---:|---:|")
    for name, ftype, n, s in sorted(rows, key=lambda r: r[3]):
        print(f"| {name} | {ftype} | {n:,} | {s:.1f} | {s / base:.2f} |")


if __name__ == "__main__":
    main()
