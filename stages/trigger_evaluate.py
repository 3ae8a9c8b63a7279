"""Stage `trigger_evaluate`: the trigger detector on the test clips and the negative audio,
clean and corrupted; the DET curve; the MLflow run trigger_train started, finished.

The detector is the exported one (data/trigger/model/detector.keras: raw wave in), run as
users run it: test clips scored whole (a 10-s clip is exactly one streaming window, so the
same scores), the negative audio streamed in blocks of ``chunk_seconds`` through
``streaming.stream_scores``, and both through ``detection`` (smoothing, threshold,
refractory). Each condition corrupts the clips and the negative audio with
``audioclf.corruption`` (noise from data/trigger/synth/noise/, held out from training; room
reverb), seeded per set and clip.

Reads:  data/trigger/synth/ (info.json, test/clips.npy, test/events.jsonl, negative.wav,
        noise/*.wav); data/trigger/model/ (the final detector, trigger_finetune's:
        detector.keras + .json, history.csv, summary.json with the mining figures, run.json:
        the MLflow run trigger_train started)
Writes: reports/trigger/metrics.json  (DVC metrics) at the detector's threshold, per condition
                                      (clean, <type>_<severity>): FRR, FA/h, false accepts,
                                      precision, recall, F1, latency median / p95, and FRR @
                                      0 FA and @ each resolvable FA/h target (with its
                                      threshold); the clean per-step accuracy; training figures
        reports/trigger/det.csv       the DET curve: condition x threshold -> FRR, FA/h, ...
        reports/trigger/det.png       the same, a line per condition
        the MLflow run (experiment trigger.experiment), ended FINISHED: params data.*,
        model.*, train.*, detect.*, evaluate.*, mine.*; metrics <condition>/<metric> and
        per_step_accuracy; metrics.json, det.csv, det.png, params.yaml and the model folder
        (model/); when trigger_train was restored from DVC's run cache, a new run tagged
        restored_from=<its run>, with the training history copied, as the root's evaluate
Params: trigger.detect, trigger.evaluate, trigger.data (label_seconds; logged), trigger.model,
        trigger.train and trigger.mine (logged), trigger.experiment
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from audioclf import tracking
from audioclf.atomic import atomic_file, write_json
from audioclf.config import convert, flatten, load_params, parse, section
from audioclf.corruption import CorruptedSet, corrupter, parse_corruptions, set_key
from audioclf.stagetimer import StageTimer
from audioclf.trigger.detection import DetectConfig
from audioclf.trigger.labels import step_labels
from audioclf.trigger.metrics import (
    EvaluateConfig,
    Scored,
    condition_metrics,
    det_curve,
    det_png,
    fa_per_hour,
    operating_points,
    resolvable,
    step_accuracy,
    sweep_thresholds,
    triggers_of,
    write_det_csv,
)

SYNTH = Path("data/trigger/synth")
MODEL = Path("data/trigger/model")
REPORTS = Path("reports/trigger")
CLEAN = "clean"
# The sections logged to MLflow with the run (as trigger_train names them: data.*, model.*).
LOGGED_SECTIONS = (
    "trigger.data",
    "trigger.model",
    "trigger.train",
    "trigger.detect",
    "trigger.evaluate",
    "trigger.mine",
)
# What metrics.json takes from trigger_train's summary.json.
TRAINED = ("train_seconds", "seconds_per_epoch", "epochs_run", "best_epoch", "trainable_params",
           "mined_clips", "mine_false_accepts", "mine_fa_per_hour", "finetune_epochs",
           "finetune_seconds")  # fmt: skip


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv's columns (per epoch), less the epoch number and empty columns."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in rows[0] if k != "epoch" and rows[0][k] != ""}


def read_events(path: Path, n_clips: int) -> list[list[dict]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) != n_clips:
        raise ValueError(
            f"{path}: {len(lines)} lines for {n_clips} clips; re-run "
            "`dvc repro trigger/dvc.yaml -s trigger_synth`"
        )
    return [json.loads(line)["events"] for line in lines]


def conditions(
    sets: list[CorruptedSet], noise_files: list[Path], rate: int, seed: int, clips, negative
) -> Iterator[tuple[str, Iterator[np.ndarray], np.ndarray]]:
    """(name, its test clips one by one, its negative audio) for clean and each set. Clip
    ``i`` of set ``s`` draws from (seed, set, i), the negative audio from (seed, set, 1, 0)."""
    yield CLEAN, (np.asarray(c) for c in clips), negative
    worker = corrupter(sets, noise_files, rate)  # a bad argument fails here
    for k, s in enumerate(sets):
        key = (seed, set_key(s.name))
        spoiled = (worker.apply(k, (*key, i), np.asarray(c))[0] for i, c in enumerate(clips))
        yield s.name, spoiled, worker.apply(k, (*key, 1, 0), negative)[0]


def score(detector, clips: Iterator[np.ndarray], negative: np.ndarray, cfg: EvaluateConfig):
    """((clips, steps) scores, negative step times, negative scores): clips in batches, the
    negative audio streamed in blocks of ``cfg.chunk_seconds``."""
    from audioclf.trigger.streaming import stream_scores

    batches, batch = [], []
    for clip in clips:
        batch.append(clip)
        if len(batch) == cfg.batch_size:
            batches.append(detector.scores(np.stack(batch), cfg.batch_size))
            batch = []
    if batch:
        batches.append(detector.scores(np.stack(batch), cfg.batch_size))
    block = max(1, int(round(cfg.chunk_seconds * detector.sample_rate)))
    chunks = (negative[i : i + block] for i in range(0, len(negative), block))
    parts = list(stream_scores(detector, chunks))
    times = np.concatenate([t for t, _ in parts])
    return np.concatenate(batches), times, np.concatenate([s for _, s in parts])


def evaluate(
    detector, detect_cfg: DetectConfig, cfg: EvaluateConfig, label_seconds: float
) -> tuple[dict, dict[str, list[dict]], tuple[str, str]]:
    """(metrics.json's content, the DET rows per condition, (the FA/h targets the negative
    audio resolves, those it does not) as text)."""
    info = json.loads((SYNTH / "info.json").read_text())
    rate = int(info["sample_rate"])
    if rate != detector.sample_rate:
        raise ValueError(
            f"{SYNTH}/info.json: sample_rate {rate} but the detector takes "
            f"{detector.sample_rate} Hz; re-run `dvc repro trigger/dvc.yaml`"
        )
    clips = np.load(SYNTH / "test" / "clips.npy", mmap_mode="r")  # float32 (clips, samples)
    events = read_events(SYNTH / "test" / "events.jsonl", len(clips))
    triggers = [triggers_of(e) for e in events]
    negative, negative_rate = sf.read(SYNTH / "negative.wav", dtype="float32")
    if negative.ndim != 1 or negative_rate != rate:
        raise ValueError(f"{SYNTH}/negative.wav: expected mono at {rate} Hz")
    negative_seconds = len(negative) / rate
    noise_files = sorted((SYNTH / "noise").glob("*.wav"))
    sets = parse_corruptions(cfg.corruptions, "trigger.evaluate.corruptions")
    targets, unresolved = resolvable(cfg.fa_per_hour, negative_seconds)
    thresholds = sweep_thresholds(cfg.det_points, [detect_cfg.threshold])

    metrics: dict = {
        "threshold": detect_cfg.threshold,
        "test_clips": len(clips),
        "test_triggers": sum(map(len, triggers)),
        "negative_seconds": negative_seconds,
        "fa_resolution_per_hour": fa_per_hour(1, negative_seconds),
    }
    curves = {}
    for name, spoiled, neg in conditions(
        sets, noise_files, rate, cfg.corruption_seed, clips, negative
    ):
        clip_scores, neg_times, neg_scores = score(detector, spoiled, neg, cfg)
        times = detector.step_times(clip_scores.shape[1])
        scored = Scored(times, clip_scores, triggers, neg_times, neg_scores, negative_seconds)
        curves[name] = det_curve(scored, detect_cfg, cfg.tolerance_seconds, thresholds)
        metrics[name] = condition_metrics(scored, detect_cfg, cfg.tolerance_seconds)
        metrics[name] |= operating_points(curves[name], targets)
        if name == CLEAN:  # the reference's number, beside the others
            labels = np.stack([step_labels(e, times, label_seconds) for e in events])
            metrics["per_step_accuracy"] = step_accuracy(clip_scores, labels)
        c = metrics[name]
        print(
            f"[trigger_evaluate] {name}: FRR {show(c['frr'])}, FA/h {c['fa_per_hour']:.2f} "
            f"({c['false_accepts']} in {negative_seconds:.0f} s), F1 {show(c['f1'])}",
            flush=True,
        )
    trained = json.loads((MODEL / "summary.json").read_text())
    metrics |= {k: trained[k] for k in TRAINED if k in trained}
    return metrics, curves, (listed(targets), listed(unresolved))


def listed(values: list[float]) -> str:
    return ", ".join(f"{x:g}" for x in values) or "none"


def show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def write_reports(metrics: dict, curves: dict, title: str, negative_seconds: float, thr: float):
    REPORTS.mkdir(parents=True, exist_ok=True)
    write_json(REPORTS / "metrics.json", metrics)
    with atomic_file(REPORTS / "det.csv") as tmp:
        write_det_csv(curves, tmp)
    with atomic_file(REPORTS / "det.png") as tmp:
        det_png(curves, tmp, title, negative_seconds, thr)


def scalars(metrics: dict) -> dict[str, float]:
    """metrics.json's numbers as MLflow metrics: ``<condition>/<metric>``, the rest by name."""
    flat = {}
    for key, value in metrics.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v):
                flat[key if sub is None else f"{key}/{sub}"] = float(v)
    return flat


def main() -> None:
    timer = StageTimer("trigger_evaluate")
    params = load_params()
    detect_cfg = parse(DetectConfig, section(params, "trigger.detect"), "trigger.detect")
    cfg = parse(EvaluateConfig, section(params, "trigger.evaluate"), "trigger.evaluate")
    parse_corruptions(cfg.corruptions, "trigger.evaluate.corruptions")  # fail before work
    label_seconds = convert(
        float, section(params, "trigger.data.label_seconds"), "trigger.data.label_seconds"
    )
    experiment = convert(str, section(params, "trigger.experiment"), "trigger.experiment")
    logged = {key.removeprefix("trigger."): section(params, key) for key in LOGGED_SECTIONS}
    history = read_history(MODEL / "history.csv")
    run_id, restored = tracking.evaluation_run(
        experiment, tracking.read_run_file(MODEL), history, tracking.run_tags()
    )
    with tracking.ends_on_error(run_id):
        from audioclf.trigger.export import load_detector

        detector = load_detector(MODEL)
        metrics, curves, (resolved, unresolved) = evaluate(detector, detect_cfg, cfg, label_seconds)
        clean = metrics[CLEAN]
        title = (
            f"{detector.model_name}: FRR {show(clean['frr'])} at {clean['fa_per_hour']:.1f} "
            f"FA/h (threshold {detect_cfg.threshold:g})"
        )
        write_reports(metrics, curves, title, metrics["negative_seconds"], detect_cfg.threshold)
        flat = flatten(logged) | {
            "evaluate.resolved_fa_per_hour": resolved,
            "evaluate.negative_seconds": metrics["negative_seconds"],
        }
        tracking.log_results(
            run_id,
            flat,
            scalars(metrics),
            [REPORTS / n for n in ("metrics.json", "det.csv", "det.png")] + [Path("params.yaml")],
            MODEL,
        )
    tracking.end_run(run_id, "FINISHED")
    new = f" (new run: training restored from {tracking.read_run_file(MODEL)})" if restored else ""
    timer.summary(
        f"{metrics['test_clips']} test clips ({metrics['test_triggers']} triggers), "
        f"{metrics['negative_seconds']:.0f} s of negative audio, {len(curves)} conditions, "
        f"{MODEL}/detector.keras",
        f"{REPORTS}/metrics.json, det.csv, det.png; MLflow run {run_id}{new}",
        f"clean: FRR {show(clean['frr'])}, FA/h {clean['fa_per_hour']:.2f}, F1 "
        f"{show(clean['f1'])}; FA/h targets resolved: {resolved} (not: {unresolved})",
    )


if __name__ == "__main__":
    main()
