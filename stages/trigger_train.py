"""Stage `trigger_train`: fit the trigger-word network (trigger.model) on the synthetic
clips, per-step labels from their events, and export the detector.

Reads:  data/trigger/synth/info.json (sample rate, clip length),
        data/trigger/synth/{train,validation}/clips.npy, events.jsonl
Writes: data/trigger/round0/model.keras    the best epoch (lowest validation loss) on features
                                           (load with compile=False outside training)
        data/trigger/round0/detector.keras, detector.json   the same taking the raw wave
                                           (audioclf.trigger.export; load_detector)
        data/trigger/round0/history.csv    per-epoch loss, per-step accuracy, AUC, precision,
                                           recall (train and val_), learning rate, seconds
        data/trigger/round0/summary.json   params, epochs, best epoch and its val metrics, time
        data/trigger/round0/run.json       the MLflow run started here (trigger_evaluate ends it)
        (round 0 of hard-negative mining: trigger_finetune writes the final data/trigger/model/)
        the MLflow run (experiment trigger.experiment): params model.*, train.*,
        data.label_seconds, provenance tags, each epoch's metrics as it ends.
Params: trigger.model, trigger.train, trigger.data.label_seconds (labels),
        trigger.experiment (MLflow).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from audioclf import tracking
from audioclf.atomic import atomic_files
from audioclf.config import convert, load_params, parse, section
from audioclf.stagetimer import StageTimer
from audioclf.tfimport import import_tensorflow
from audioclf.threads import configure as configure_threads
from audioclf.training import make_deterministic
from audioclf.trigger.labels import step_labels
from audioclf.trigger.models import STREAMABLE, ModelConfig, build, geometry, parse_model
from audioclf.trigger.training import (
    TriggerTrainConfig,
    augmented_features,
    features,
    fit,
    positive_weight,
    summary,
    with_normalization,
    write_history,
)

SYNTH = Path("data/trigger/synth")
OUT = Path("data/trigger/round0")  # round 0: trigger_mine and trigger_finetune go on from it


def load_split(split: str) -> tuple[np.ndarray, list[list[dict]]]:
    """(clips memory-mapped (n, samples) float32, each clip's events) of one split."""
    clips = np.load(SYNTH / split / "clips.npy", mmap_mode="r")
    lines = (SYNTH / split / "events.jsonl").read_text().splitlines()
    events = [json.loads(line)["events"] for line in lines if line.strip()]
    if len(events) != len(clips):
        raise ValueError(
            f"{SYNTH / split}: {len(clips)} clips but {len(events)} lines in events.jsonl; "
            "re-run `dvc repro trigger/dvc.yaml -s trigger_synth`"
        )
    return clips, events


def train(
    model_cfg: ModelConfig,
    cfg: TriggerTrainConfig,
    label_seconds: float,
    info: dict,
    splits: dict[str, tuple[np.ndarray, list[list[dict]]]],
    out: Path,
    on_epoch=None,
) -> dict:
    """Features, labels, fit, export: everything the stage writes, into ``out``; a summary."""
    from audioclf.trigger import export

    make_deterministic(cfg.seed)
    geo = geometry(model_cfg, int(info["sample_rate"]))
    feature_cfg = model_cfg.feature_config()
    data = {}
    for split, (clips, events) in splits.items():
        x = features(clips, feature_cfg, geo.sample_rate, geo.pad_samples)
        n_steps = geo.n_steps(clips.shape[1])
        times = geo.first_step_seconds + geo.step_seconds * np.arange(n_steps)
        y = np.stack([step_labels(e, times, label_seconds) for e in events])
        data[split] = (x, y)
    if cfg.augment.active:  # copies of the training clips, labelled as their originals
        x, y = data["train"]
        x_aug = augmented_features(
            splits["train"][0], cfg.augment, feature_cfg, geo.sample_rate, geo.pad_samples
        )
        data["train"] = (np.concatenate([x, x_aug]), np.tile(y, (1 + cfg.augment.copies, 1)))
    x_train, y_train = data["train"]
    weight = positive_weight(cfg, y_train)
    body = build(model_cfg, geo.bins)
    model = with_normalization(body, x_train)
    n_out = model(x_train[:1], training=False).shape[1]
    if n_out != y_train.shape[1]:  # the step times would be wrong
        raise AssertionError(f"{model_cfg.name}: {n_out} steps for {y_train.shape[1]} labels")
    print(
        f"[trigger_train] {model_cfg.name}: {len(x_train)} training clips, "
        f"({cfg.augment.copies} augmented copies each: {cfg.augment.name}), "
        f"{len(data['validation'][0])} validation; features {x_train.shape[1:]}, "
        f"{y_train.shape[1]} steps of {geo.step_seconds * 1000:.0f} ms; "
        f"{y_train.mean():.4f} of steps positive, positive weight {weight:.3g}"
    )
    start = time.perf_counter()
    model, history = fit(
        model, data["train"], data["validation"], cfg, weight, out / "model.keras", on_epoch
    )
    done = summary(model, model_cfg.name, history, time.perf_counter() - start)
    done |= {"positive_fraction": float(y_train.mean()), "positive_weight": weight}
    write_history(out / "history.csv", history)
    (out / "summary.json").write_text(json.dumps(done, indent=2) + "\n")
    detector = export.build(model, model_cfg.features, geo)
    export.save(
        detector, out, model_cfg.name, geo, info["clip_seconds"], STREAMABLE[model_cfg.name]
    )
    return done


def main() -> None:
    timer = StageTimer("trigger_train")
    params = load_params()
    model_cfg = parse_model(section(params, "trigger.model"))
    cfg = parse(TriggerTrainConfig, section(params, "trigger.train"), "trigger.train")
    label_seconds = convert(
        float, section(params, "trigger.data.label_seconds"), "trigger.data.label_seconds"
    )
    info = json.loads((SYNTH / "info.json").read_text())
    splits = {split: load_split(split) for split in ("train", "validation")}
    threads = configure_threads(cfg.threads)  # before TensorFlow runs an op
    print(f"[trigger_train] {threads.intra} intra-op / {threads.inter} inter-op threads")
    import_tensorflow()
    logged = {
        "model": section(params, "trigger.model"),
        "train": section(params, "trigger.train"),
        "data": {"label_seconds": label_seconds},
    }
    run_id = tracking.start_run(section(params, "trigger.experiment"), logged, tracking.run_tags())
    with tracking.ends_on_error(run_id), atomic_files(OUT) as tmp:
        tracking.write_run_file(tmp, run_id)
        done = train(
            model_cfg, cfg, label_seconds, info, splits, tmp, tracking.epoch_logger(run_id)
        )
    tracking.hand_over(run_id)  # trigger_evaluate finishes the run
    timer.summary(
        f"{len(splits['train'][0])} training + {len(splits['validation'][0])} validation clips",
        f"{OUT}/detector.keras (best epoch {done['best_epoch']} of {done['epochs_run']}, "
        f"val_loss {done['best_val_loss']:.4f}, val_auc {done['best_val_auc']:.4f}, "
        f"{done['train_seconds']:.0f} s); MLflow run {run_id}",
    )


if __name__ == "__main__":
    main()
