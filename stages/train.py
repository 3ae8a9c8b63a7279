"""Stage `train`: fit the configured Keras model on the cached features.

Reads:  data/features/{train,validation}_x.npy, data/features/info.json,
        data/prepared/{train,validation}_y.npy, data/prepared/labels.json,
        data/augmented/train_{x,y}.npy (added to the clean set)
Writes: data/model/model.keras   the best epoch (lowest validation loss), normalisation included;
                                 takes cached features
        data/model/inference.keras, inference.json   the same model taking the raw waveform
                                 (features computed inside; see audioclf.export)
        data/model/history.csv   per-epoch loss, accuracy, val_loss, val_accuracy, seconds
        data/model/summary.json  trainable params, epochs run, best epoch, train time
Params: model, train, augment.spec_augment and augment.seed (SpecAugment masks in training)
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from audioclf.atomic import atomic_dir
from audioclf.augment import SpecAugmentConfig
from audioclf.config import ConfigError, convert, load_params, parse, section
from audioclf.models import check_input, get_builder, parse_model
from audioclf.report import StageTimer
from audioclf.tf import tensorflow
from audioclf.training import TrainConfig, fit, make_deterministic, with_normalization

FEATURES = Path("data/features")
PREPARED = Path("data/prepared")
AUGMENTED = Path("data/augmented")
OUT = Path("data/model")


def main() -> None:
    timer = StageTimer("train")
    params = load_params()
    model_cfg = parse_model(section(params, "model"))
    cfg = parse(TrainConfig, section(params, "train"), "train")
    spec_augment = parse(
        SpecAugmentConfig, section(params, "augment.spec_augment"), "augment.spec_augment"
    )
    augment_seed = convert(int, section(params, "augment.seed"), "augment.seed")
    classes = json.loads((PREPARED / "labels.json").read_text())["classes"]
    info = json.loads((FEATURES / "info.json").read_text())
    check_input(model_cfg, info["features"]["type"])
    if spec_augment.active and model_cfg.input == "wave":
        raise ConfigError(
            f"augment.spec_augment: model {model_cfg.name!r} takes a raw waveform and "
            "SpecAugment masks a spectrogram. Pick an augment option without it "
            "(e.g. `-S augment=light`) or set augment.spec_augment.freq_masks=0 and time_masks=0"
        )
    shape = tuple(info["shape"])  # (frames, bins)

    # Build first: a hyperparameter the builder refuses fails before any data is loaded.
    make_deterministic(cfg.seed)
    tensorflow()  # quiet, then Keras on its TensorFlow backend
    import keras

    from audioclf import export

    body = get_builder(model_cfg.name)(shape, len(classes), **model_cfg.hparams)

    x_clean = np.load(FEATURES / "train_x.npy", mmap_mode="r")
    x_aug = np.load(AUGMENTED / "train_x.npy", mmap_mode="r")
    x_train = np.concatenate([x_clean, x_aug]) if len(x_aug) else np.asarray(x_clean)
    y_train = np.concatenate(
        [np.load(PREPARED / "train_y.npy"), np.load(AUGMENTED / "train_y.npy")]
    )
    x_val = np.asarray(np.load(FEATURES / "validation_x.npy", mmap_mode="r"))
    y_val = np.load(PREPARED / "validation_y.npy")
    model = with_normalization(body, x_train, spec_augment, augment_seed)
    masks = f", SpecAugment {asdict(spec_augment)}" if spec_augment.active else ""
    print(
        f"[train] {model_cfg.name}: {_trainable(model):,} trainable params; "
        f"{len(x_train)} training clips ({len(x_aug)} augmented){masks}, {len(x_val)} validation"
    )
    epoch_times: list[float] = []
    timing = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda *_: epoch_times.append(time.perf_counter()),
        on_epoch_end=lambda *_: epoch_times.__setitem__(-1, time.perf_counter() - epoch_times[-1]),
    )
    with atomic_dir(OUT) as tmp:
        start = time.perf_counter()
        model, history = fit(
            model,
            (x_train, y_train),
            (x_val, y_val),
            len(classes),
            cfg,
            tmp / "model.keras",
            extra_callbacks=[timing],
        )
        train_seconds = time.perf_counter() - start
        history["epoch_seconds"] = epoch_times
        epochs = len(history["loss"])
        best = int(np.argmin(history["val_loss"]))
        with (tmp / "history.csv").open("w", newline="") as f:
            w = csv.writer(f)
            keys = ["loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"]
            w.writerow(["epoch", *keys])
            for e in range(epochs):
                w.writerow([e + 1, *(f"{history[k][e]:.6g}" for k in keys)])
        summary = {
            "model": model_cfg.name,
            "trainable_params": _trainable(model),
            "epochs_run": epochs,
            "best_epoch": best + 1,
            "best_val_loss": float(history["val_loss"][best]),
            "best_val_accuracy": float(history["val_accuracy"][best]),
            "train_seconds": round(train_seconds, 3),
            "seconds_per_epoch": round(float(np.mean(epoch_times)), 3),
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        wave_model = export.build(
            model, info["features"], info["prepared_rate"], info["prepared_samples"]
        )
        export.save(wave_model, tmp, classes, model_cfg.name)
    timer.summary(
        f"{len(x_train)} training + {len(x_val)} validation feature clips",
        f"{OUT}/model.keras (best epoch {best + 1} of {epochs}, "
        f"val_accuracy {summary['best_val_accuracy']:.4f})",
    )


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


if __name__ == "__main__":
    main()
