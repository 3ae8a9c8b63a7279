"""Stage `trigger_finetune`: the next round of training with the mined hard negatives, and
the final detector (audioclf.trigger.mining says why it continues round 0's training).

The round-0 network (trigger_train's model.keras) trains ``trigger.mine.epochs`` more epochs
on the training clips (labels from their events; ``trigger.mine.train_clips``: all, or a
seeded subset of that many) plus every mined clip (labels all 0), Adam with cosine decay from
``trigger.mine.learning_rate``, the loss of round 0 (its positive weight), the epoch with the
lowest validation loss kept.
With mining off (``trigger.mine.epochs`` 0) the round-0 files are copied unchanged, without
TensorFlow.

Reads:  data/trigger/round0/ (model.keras, detector.keras + .json, history.csv, summary.json,
        run.json), data/trigger/mined/ (clips.npy, summary.json),
        data/trigger/synth/ (info.json, {train,validation}/clips.npy, events.jsonl)
Writes: data/trigger/model/detector.keras, detector.json, model.keras   the final detector
                                    (round 0's, byte for byte, when mining is off)
        data/trigger/model/history.csv, run.json     round 0's (trigger_evaluate reads them)
        data/trigger/model/summary.json   round 0's, plus mined_clips, mine_false_accepts,
                                          mine_fa_per_hour, finetune_epochs, finetune_seconds
        data/trigger/model/finetune_history.csv   per-epoch figures of this round (when on)
        (the folder is replaced whole: nothing of an earlier run stays)
        the MLflow run trigger_train started (while it awaits evaluation): params mine.*,
        metrics mine/<figure> (mine/mined_clips, mine/mine_fa_per_hour, ...) and this
        round's epochs as finetune/<metric>
Params: trigger.mine, trigger.model (features, geometry), trigger.data.label_seconds
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from audioclf import tracking
from audioclf.atomic import atomic_dir
from audioclf.config import convert, flatten, load_params, parse, section
from audioclf.stagetimer import StageTimer
from audioclf.trigger.labels import step_labels
from audioclf.trigger.mining import MineConfig, subset, with_hard_negatives
from audioclf.trigger.models import STREAMABLE, ModelConfig, geometry, parse_model
from audioclf.trigger.training import TriggerTrainConfig, features, fit, write_history

SYNTH = Path("data/trigger/synth")
ROUND0 = Path("data/trigger/round0")
MINED = Path("data/trigger/mined")
OUT = Path("data/trigger/model")
LOGGED_SECTIONS = ("trigger.mine",)  # logged to the live MLflow run as mine.*
COPIED = ("model.keras", "detector.keras", "detector.json", "history.csv", tracking.RUN_FILE)


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


def finetune(
    model_cfg: ModelConfig,
    cfg: MineConfig,
    label_seconds: float,
    info: dict,
    weight: float,
    mined: np.ndarray,
    out: Path,
    on_epoch=None,
) -> dict:
    """Continue round 0's training on the training subset plus ``mined`` (n, samples)
    float32, export the detector into ``out``; this round's figures."""
    import keras

    from audioclf.training import make_deterministic
    from audioclf.trigger import export

    make_deterministic(cfg.seed)
    geo = geometry(model_cfg, int(info["sample_rate"]))
    feature_cfg = model_cfg.feature_config()
    n_steps = geo.n_steps(int(round(info["clip_seconds"] * geo.sample_rate)))
    times = geo.first_step_seconds + geo.step_seconds * np.arange(n_steps)

    def featurize(clips, events, rows):  # -> (x (n, frames, bins), y (n, steps) uint8)
        x = [
            features(np.asarray(clips[rows[i : i + 64]]), feature_cfg, geo.sample_rate,
                     geo.pad_samples)
            for i in range(0, len(rows), 64)
        ]  # fmt: skip
        y = np.stack([step_labels(events[r], times, label_seconds) for r in rows])
        return np.concatenate(x), y

    train_clips, train_events = load_split("train")
    rows = subset(len(train_clips), cfg.train_clips, cfg.seed)
    x, y = featurize(train_clips, train_events, rows)
    if len(mined):
        x_mined = features(mined, feature_cfg, geo.sample_rate, geo.pad_samples)
        x, y = with_hard_negatives(x, y, x_mined)
    val_clips, val_events = load_split("validation")
    validation = featurize(val_clips, val_events, np.arange(len(val_clips)))
    model = keras.models.load_model(ROUND0 / "model.keras", compile=False)
    schedule = TriggerTrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        patience=cfg.epochs,  # every epoch runs; the best validation loss is kept
        positive_weight=weight,
        seed=cfg.seed,
    )
    print(
        f"[trigger_finetune] {model_cfg.name}: {len(rows)} training + {len(mined)} mined "
        f"clips ({y.mean():.4f} of steps positive), {len(validation[0])} validation, "
        f"{cfg.epochs} epochs from learning rate {cfg.learning_rate:g}",
        flush=True,
    )
    start = time.perf_counter()
    model, history = fit(model, (x, y), validation, schedule, weight, out / "model.keras", on_epoch)
    seconds = time.perf_counter() - start
    write_history(out / "finetune_history.csv", history)
    detector = export.build(model, model_cfg.features, geo)
    export.save(
        detector, out, model_cfg.name, geo, info["clip_seconds"], STREAMABLE[model_cfg.name]
    )
    best = int(np.argmin(history["val_loss"]))
    return {
        "finetune_epochs": len(history["loss"]),
        "finetune_best_epoch": best + 1,
        "finetune_best_val_loss": float(history["val_loss"][best]),
        "finetune_train_clips": int(len(rows)),
        "finetune_seconds": round(seconds, 3),
    }


def live_run(run_id: str | None) -> str | None:
    """``run_id`` if it is trigger_train's run still awaiting evaluation in this store (a
    training restored from DVC's run cache points to a finished one: evaluate logs then)."""
    if run_id is None:
        return None
    with tracking.store_lock(), contextlib.suppress(Exception):
        run = tracking.client().get_run(run_id)
        if run.info.status == "RUNNING" and run.data.tags.get(tracking.PHASE) == "trained":
            return run_id
    return None


def logged_sections(params: dict) -> dict:
    return {key.removeprefix("trigger."): section(params, key) for key in LOGGED_SECTIONS}


def log_round(run_id: str, params: dict, figures: dict) -> None:
    """Params ``LOGGED_SECTIONS`` (mine.*) and this round's figures on the live run."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    values = {k: v for k, v in figures.items() if isinstance(v, int | float) and v is not None}
    with tracking.store_lock():
        c = tracking.client()
        logged = c.get_run(run_id).data.params
        params = [
            Param(k, str(v))
            for k, v in sorted(flatten(logged_sections(params)).items())
            if k not in logged
        ]
        metrics = [Metric(f"mine/{k}", float(v), now, 0) for k, v in sorted(values.items())]
        c.log_batch(run_id, metrics=metrics, params=params)


def main() -> None:
    timer = StageTimer("trigger_finetune")
    params = load_params()
    cfg = parse(MineConfig, section(params, "trigger.mine"), "trigger.mine")
    model_cfg = parse_model(section(params, "trigger.model"))
    label_seconds = convert(
        float, section(params, "trigger.data.label_seconds"), "trigger.data.label_seconds"
    )
    round0 = json.loads((ROUND0 / "summary.json").read_text())
    mined_summary = json.loads((MINED / "summary.json").read_text())
    mined = np.load(MINED / "clips.npy", mmap_mode="r")
    figures = {
        "mined_clips": int(len(mined)),
        "mine_false_accepts": mined_summary["false_accepts"],
        "mine_fa_per_hour": mined_summary["fa_per_hour"],
        "finetune_epochs": 0,
    }
    run_id = live_run(tracking.read_run_file(ROUND0))
    if not cfg.enabled or not len(mined):  # round 0 is the final model: copy it
        why = "mining off" if not cfg.enabled else "no false accept was mined"
        with atomic_dir(OUT) as tmp:
            for name in COPIED:
                if (ROUND0 / name).is_file():
                    shutil.copyfile(ROUND0 / name, tmp / name)
            (tmp / "summary.json").write_text(json.dumps(round0 | figures, indent=2) + "\n")
        if run_id:
            log_round(run_id, params, figures)
        timer.summary(str(ROUND0), f"{OUT}: round 0's detector unchanged", why)
        return
    info = json.loads((SYNTH / "info.json").read_text())
    if mined.shape[1] != int(round(info["clip_seconds"] * info["sample_rate"])):
        raise ValueError(
            f"{MINED}/clips.npy: clips of {mined.shape[1]} samples; re-run trigger_mine"
        )
    from audioclf.threads import configure as configure_threads

    configure_threads(None)  # before TensorFlow runs an op
    log_epoch = None
    if run_id:
        epoch_logger = tracking.epoch_logger(run_id)

        def log_epoch(epoch, values):
            epoch_logger(epoch, {f"finetune/{k}": v for k, v in values.items()})

    with tracking.ends_on_error(run_id) if run_id else contextlib.nullcontext():
        with atomic_dir(OUT) as tmp:
            for name in ("history.csv", tracking.RUN_FILE):
                if (ROUND0 / name).is_file():
                    shutil.copyfile(ROUND0 / name, tmp / name)
            figures |= finetune(
                model_cfg,
                cfg,
                label_seconds,
                info,
                float(round0["positive_weight"]),
                np.asarray(mined),
                tmp,
                log_epoch,
            )
            (tmp / "summary.json").write_text(json.dumps(round0 | figures, indent=2) + "\n")
        if run_id:
            log_round(run_id, params, figures)
    timer.summary(
        f"{ROUND0}, {figures['mined_clips']} mined clips "
        f"({figures['mine_fa_per_hour']:.1f} FA/h on the mining audio)",
        f"{OUT}/detector.keras (best epoch {figures['finetune_best_epoch']} of "
        f"{figures['finetune_epochs']}, val_loss {figures['finetune_best_val_loss']:.4f}, "
        f"{figures['finetune_seconds']:.0f} s)",
        f"MLflow run {run_id or 'none live: trigger_evaluate logs the figures'}",
    )


if __name__ == "__main__":
    main()
