"""Stage `train`: fit the configured Keras model (or linear scikit-learn classifier, turned
into a Dense softmax by audioclf.linear) on the cached features.

Reads:  data/features/{train,validation}_x.npy, data/features/info.json,
        data/prepared/{train,validation}_y.npy, data/prepared/labels.json,
        data/augmented/train_{x,y}.npy (added to the clean set)
Writes: data/model/model.keras   the best epoch (lowest validation loss), normalisation included;
                                 takes cached features
        data/model/inference.keras, inference.json   the same model taking the raw waveform
                                 (features computed inside; see audioclf.export)
        data/model/history.csv   per-epoch loss, accuracy, val_loss, val_accuracy, seconds
        data/model/summary.json  trainable params, epochs run, best epoch, train time
        data/model/run.json      the id of the MLflow run started here (evaluate continues it)
        the MLflow run: these params, provenance tags, the training dataset inputs (DVC
        hashes from dvc.lock), then each epoch's metrics as it ends (audioclf.tracking)
Threads: audioclf.threads (train.threads, AUDIOCLF_WORKERS, AUDIOCLF_THREADS).
Params: model, train, augment.spec_augment and augment.seed (SpecAugment masks in training);
        evaluate.experiment and data.name (where the run goes, what its datasets are called).
        Refuses a validation set without some class (train.allow_incomplete_validation).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from audioclf import linear, tracking
from audioclf.atomic import atomic_files
from audioclf.config import ConfigError, convert, load_params, parse, section
from audioclf.lineage import TRAINING_INPUTS
from audioclf.models import ModelConfig, build_model, check_input, parse_model
from audioclf.specaugment import SpecAugmentConfig
from audioclf.stagetimer import StageTimer
from audioclf.tfimport import import_tensorflow
from audioclf.threads import configure as configure_threads
from audioclf.training import (
    TrainConfig,
    check_precision,
    check_validation,
    fit,
    float32_output,
    make_deterministic,
    precision,
    summary,
    trainable_params,
    with_normalization,
    write_history,
)

FEATURES = Path("data/features")
PREPARED = Path("data/prepared")
AUGMENTED = Path("data/augmented")
OUT = Path("data/model")


def load_training_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x, y) train: the clean clips, then their augmented copies; (x, y) validation)."""
    x_clean = np.load(FEATURES / "train_x.npy", mmap_mode="r")
    x_aug = np.load(AUGMENTED / "train_x.npy", mmap_mode="r")
    x_train = np.concatenate([x_clean, x_aug]) if len(x_aug) else np.asarray(x_clean)
    y_train = np.concatenate(
        [np.load(PREPARED / "train_y.npy"), np.load(AUGMENTED / "train_y.npy")]
    )
    x_val = np.asarray(np.load(FEATURES / "validation_x.npy", mmap_mode="r"))
    return (x_train, y_train), (x_val, np.load(PREPARED / "validation_y.npy"))


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    spec_augment: SpecAugmentConfig,
    augment_seed: int,
    classes: list[str],
    info: dict,
    out: Path,
    on_epoch=None,
) -> dict:
    """Fit the model and write everything the stage writes into ``out``; the summary."""
    # Build first: a hyperparameter the builder refuses fails before any data is loaded.
    make_deterministic(cfg.seed, ops=not cfg.jit_compile)  # XLA: seeded, not bit-exact
    with precision(cfg.mixed_precision):  # float16 compute (GPU only; checked in main)
        body = build_model(model_cfg, tuple(info["shape"]), len(classes))
    if cfg.mixed_precision and model_cfg.kind != "sklearn":
        body = float32_output(body)
    (x_train, y_train), validation = load_training_data()
    n_augmented = len(x_train) - len(np.load(PREPARED / "train_y.npy", mmap_mode="r"))
    start = time.perf_counter()
    if model_cfg.kind == "sklearn":  # body: an unfitted estimator; fitted, a Dense softmax
        print(f"[train] {model_cfg.name}: {body!r} on {len(x_train)} clips ({n_augmented} aug.)")
        model, history = linear.fit(
            body, model_cfg.name, (x_train, y_train), validation, len(classes), cfg.seed
        )
        model.save(out / "model.keras")
    else:
        model = with_normalization(body, x_train, spec_augment, augment_seed)
        masks = f", SpecAugment {asdict(spec_augment)}" if spec_augment.active else ""
        print(
            f"[train] {model_cfg.name}: {trainable_params(model):,} trainable params; "
            f"{len(x_train)} training clips ({n_augmented} augmented){masks}, "
            f"{len(validation[0])} validation"
        )
        model, history = fit(
            model, (x_train, y_train), validation, len(classes), cfg, out / "model.keras", on_epoch
        )
    done = summary(model, model_cfg.name, history, time.perf_counter() - start)
    write_history(out / "history.csv", history)
    (out / "summary.json").write_text(json.dumps(done, indent=2) + "\n")
    done |= {"clips": len(x_train), "validation_clips": len(validation[0])}  # for the summary

    from audioclf import export

    wave_model = export.build(
        model, info["features"], info["prepared_rate"], info["prepared_samples"]
    )
    export.save(wave_model, out, classes, model_cfg.name)
    return done


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
    missing = check_validation(
        np.load(PREPARED / "validation_y.npy"), classes, cfg.allow_incomplete_validation
    )
    if missing:
        print(f"[train] validation has no clips of {', '.join(missing)} (allowed by the config)")
    info = json.loads((FEATURES / "info.json").read_text())
    check_input(model_cfg, info["features"]["type"])
    if spec_augment.active and model_cfg.input != "spectrogram":
        raise ConfigError(
            f"augment.spec_augment: model {model_cfg.name!r} takes "
            f"{dict(wave='a raw waveform', embedding='an embedding').get(model_cfg.input)} and "
            "SpecAugment masks a spectrogram. Pick an augment option without it "
            "(e.g. `-S augment=light`) or set augment.spec_augment.freq_masks=0 and time_masks=0"
        )
    threads = configure_threads(cfg.threads)  # before TensorFlow runs an op
    print(f"[train] {threads.intra} intra-op / {threads.inter} inter-op threads")
    import_tensorflow()  # quiet, then Keras on its TensorFlow backend
    check_precision(cfg)
    logged = {
        "model": section(params, "model"),
        "train": section(params, "train"),
        "augment": {"spec_augment": asdict(spec_augment), "seed": augment_seed},
    }
    run_id = tracking.start_run(section(params, "evaluate.experiment"), logged, tracking.run_tags())
    with tracking.ends_on_error(run_id), atomic_files(OUT) as tmp:
        tracking.log_lineage(
            run_id, section(params, "data.name"), TRAINING_INPUTS, Path("params.yaml")
        )
        tracking.write_run_file(tmp, run_id)
        done = train(
            model_cfg, cfg, spec_augment, augment_seed, classes, info, tmp,
            tracking.epoch_logger(run_id),
        )  # fmt: skip
    tracking.hand_over(run_id)  # evaluate continues the run
    timer.summary(
        f"{done['clips']} training + {done['validation_clips']} validation feature clips",
        f"{OUT}/model.keras (best epoch {done['best_epoch']} of {done['epochs_run']}, "
        f"val_accuracy {done['best_val_accuracy']:.4f}); MLflow run {run_id}",
    )


if __name__ == "__main__":
    main()
