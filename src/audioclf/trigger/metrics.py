"""Trigger-word metrics: what a user of a wake word cares about, from detection events.

Definitions (docs/trigger.md), for the events of ``audioclf.trigger.detection``:

- **FRR** (false reject rate): the fraction of spoken triggers in the test clips that no event
  finds. A trigger spoken from ``start`` to ``end`` (s) is *found* when an event lies in
  ``[start, end + tolerance]``.
- **FA/h** (false accepts per hour): events on the trigger-free negative audio divided by its
  duration in hours. Its resolution is one false accept in that audio: ``1 / hours`` (12 FA/h
  for 5 minutes); a smaller non-zero rate cannot be measured on it.
- **DET curve**: FRR against FA/h as the threshold sweeps (smoothing and refractory period
  fixed). FA/h never rises with the threshold (see detection's module docstring).
- **FRR @ X FA/h** (an operating point): the lowest FRR of the swept thresholds whose FA/h is
  at most X, with that threshold (FRR 1 when every swept threshold fires more often: only
  switching the detector off gets there). Only points with ``X >= 1 / hours`` are resolved
  by the negative audio; ``frr_at_0fa`` is the lowest FRR with no false accept at all.
- **Latency**: for each found trigger, the time of the first event in its window minus the
  trigger's end (s; negative when it fires before the word ends); median and 95th percentile.
- **Event precision / recall / F1** on the test clips: events are matched to triggers in time
  order, each event to the earliest trigger not yet matched whose window holds it; a matched
  event is a true positive, any other event a false positive. Recall = 1 - FRR.
- **Per-step accuracy**: the fraction of output steps where ``score >= 0.5`` equals the step
  label (the reference's number; most steps are 0, so it says little).

Pure NumPy, except the DET image (matplotlib, as audioclf.plots) and the CSV (pandas-free).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioclf.config import check
from audioclf.trigger.detection import DetectConfig, Event, fire, smooth

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Trigger:
    start: float  # s from the clip start: the spoken word (silence trimmed)
    end: float


def triggers_of(events: Sequence[dict]) -> list[Trigger]:
    """The triggers among one clip's recorded events (``events.jsonl``: kind "trigger")."""
    return [Trigger(float(e["start"]), float(e["end"])) for e in events if e["kind"] == "trigger"]


@dataclass
class Counts:
    """Matching tallies, summed over clips."""

    triggers: int = 0  # spoken triggers
    found: int = 0  # triggers with an event in their window (= true positive events)
    events: int = 0  # events on the clips
    latencies: list[float] = field(default_factory=list)  # s, one per found trigger

    def add(self, other: Counts) -> None:
        self.triggers += other.triggers
        self.found += other.found
        self.events += other.events
        self.latencies += other.latencies


def match(events: Sequence[Event], triggers: Sequence[Trigger], tolerance: float) -> Counts:
    """Events of one clip against its triggers (see the module docstring)."""
    matched = [False] * len(triggers)
    latencies = []
    for event in sorted(events, key=lambda e: e.time):
        for k, trig in enumerate(triggers):
            if not matched[k] and trig.start <= event.time <= trig.end + tolerance:
                matched[k] = True
                latencies.append(event.time - trig.end)
                break
    return Counts(len(triggers), sum(matched), len(events), latencies)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def clip_metrics(counts: Counts) -> dict[str, float | int | None]:
    """FRR, precision, recall, F1, latency median and p95 (s), and the counts behind them;
    None where undefined (no triggers, no events, nothing found)."""
    recall = _ratio(counts.found, counts.triggers)
    precision = _ratio(counts.found, counts.events)
    f1 = None  # undefined without triggers; 0 when none is found (even with no events)
    if recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if counts.found else 0.0
    lat = np.asarray(counts.latencies)
    return {
        "frr": None if recall is None else 1.0 - recall,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "latency_median_s": float(np.median(lat)) if len(lat) else None,
        "latency_p95_s": float(np.percentile(lat, 95)) if len(lat) else None,
        "triggers": counts.triggers,
        "found": counts.found,
        "events": counts.events,
    }


def fa_per_hour(false_accepts: int, seconds: float) -> float:
    """Events on trigger-free audio of ``seconds`` per hour."""
    if seconds <= 0:
        raise ValueError(f"negative audio: its duration must be > 0 s, got {seconds}")
    return false_accepts * SECONDS_PER_HOUR / seconds


def resolvable(targets: Sequence[float], seconds: float) -> tuple[list[float], list[float]]:
    """(the FA/h targets the negative audio resolves, those it does not): a target is
    resolved when at least one false accept fits under it, ``X >= 3600 / seconds``."""
    floor = fa_per_hour(1, seconds)
    ok = sorted(x for x in targets if x >= floor * (1 - 1e-12))
    return ok, sorted(x for x in targets if x not in ok)


def step_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of steps where ``scores >= 0.5`` equals ``labels`` (same shape)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    return float(np.mean((scores >= 0.5) == (labels > 0)))


# --- one condition (clean or corrupted): scores of the clips and of the negative audio ----


@dataclass(frozen=True)
class Scored:
    """What the detector gave on one condition's audio."""

    clip_times: np.ndarray  # (steps,) s: the step times of every test clip
    clip_scores: np.ndarray  # (clips, steps) raw per-step scores
    clip_triggers: list[list[Trigger]]  # per clip
    negative_times: np.ndarray  # (steps,) s of the negative audio's stream
    negative_scores: np.ndarray  # (steps,) its raw scores
    negative_seconds: float  # its duration


def _smoothed(scored: Scored, smooth_steps: int) -> tuple[list[np.ndarray], np.ndarray]:
    clips = [smooth(s, smooth_steps) for s in scored.clip_scores]
    return clips, smooth(scored.negative_scores, smooth_steps)


def _at(
    scored: Scored,
    clips: list[np.ndarray],
    negative: np.ndarray,
    threshold: float,
    refractory: float,
    tolerance: float,
) -> tuple[Counts, int]:
    """(the clips' matching counts, false accepts on the negative audio) at ``threshold``;
    each clip is a stream of its own (detector state reset)."""
    counts = Counts()
    for smoothed, triggers in zip(clips, scored.clip_triggers):
        events, _ = fire(scored.clip_times, smoothed, threshold, refractory)
        counts.add(match(events, triggers, tolerance))
    false_accepts, _ = fire(scored.negative_times, negative, threshold, refractory)
    return counts, len(false_accepts)


def condition_metrics(scored: Scored, cfg: DetectConfig, tolerance: float) -> dict:
    """The metrics at the detector's threshold: FRR, FA/h (and the false accepts behind it),
    precision, recall, F1, latency."""
    clips, negative = _smoothed(scored, cfg.smooth_steps)
    counts, fa = _at(scored, clips, negative, cfg.threshold, cfg.refractory_seconds, tolerance)
    return {
        **clip_metrics(counts),
        "fa_per_hour": fa_per_hour(fa, scored.negative_seconds),
        "false_accepts": fa,
    }


def sweep_thresholds(points: int, extra: Sequence[float] = ()) -> np.ndarray:
    """``points`` evenly spaced in [0, 1], the tail 0.995, 0.999, 0.9999 (a confident
    detector's low-FA end) and ``extra`` (the chosen threshold): sorted, unique."""
    grid = np.concatenate([np.linspace(0.0, 1.0, points), [0.995, 0.999, 0.9999], extra])
    return np.unique(np.round(grid, 10))


def det_curve(
    scored: Scored, cfg: DetectConfig, tolerance: float, thresholds: np.ndarray
) -> list[dict]:
    """One row per threshold (ascending): threshold, frr, fa_per_hour, false_accepts,
    precision, recall, f1."""
    clips, negative = _smoothed(scored, cfg.smooth_steps)
    rows = []
    for thr in thresholds:
        counts, fa = _at(scored, clips, negative, float(thr), cfg.refractory_seconds, tolerance)
        m = clip_metrics(counts)
        rows.append(
            {
                "threshold": float(thr),
                "frr": m["frr"],
                "fa_per_hour": fa_per_hour(fa, scored.negative_seconds),
                "false_accepts": fa,
                "precision": m["precision"],
                "recall": m["recall"],
                "f1": m["f1"],
            }
        )
    return rows


def fa_key(target: float) -> str:
    """``frr_at_<X>fa``: 20 -> "frr_at_20fa", 0.5 -> "frr_at_0.5fa" (FA/h)."""
    return f"frr_at_{target:g}fa"


def operating_points(rows: list[dict], targets: Sequence[float]) -> dict[str, float | None]:
    """For 0 and each target X (FA/h): the lowest FRR of the DET rows with FA/h <= X, and its
    threshold (the highest of equal FRR): ``frr_at_<X>fa`` and ``threshold_at_<X>fa``. When
    even the highest swept threshold fires on the negative audio, the point is the detector
    switched off: FRR 1, threshold None (above every score)."""
    out: dict[str, float | None] = {}
    defined = [r for r in rows if r["frr"] is not None]
    for target in [0.0, *targets]:
        fitting = [r for r in defined if r["fa_per_hour"] <= target]
        best = min(fitting, key=lambda r: (r["frr"], -r["threshold"]), default=None)
        key = fa_key(target)
        out[key] = best["frr"] if best else (1.0 if defined else None)
        out[key.replace("frr_", "threshold_", 1)] = best["threshold"] if best else None
    return out


# --- the DET curve's files --------------------------------------------------------------

DET_COLUMNS = (
    "condition",
    "threshold",
    "frr",
    "fa_per_hour",
    "false_accepts",
    "precision",
    "recall",
    "f1",
)


def write_det_csv(curves: dict[str, list[dict]], path: Path) -> None:
    """``curves``: condition -> det_curve rows; one CSV, a row per condition and threshold
    (empty cells for undefined values)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(DET_COLUMNS)
        for condition, rows in curves.items():
            for r in rows:
                values = [condition] + [r[c] for c in DET_COLUMNS[1:]]
                w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)
                            for v in values])  # fmt: skip


def det_png(
    curves: dict[str, list[dict]],
    path: Path,
    title: str,
    negative_seconds: float,
    chosen: float,
) -> None:
    """FRR (%) against FA/h, a line per condition; x on a symmetric log scale that is linear
    below the resolution (one false accept in the negative audio), so 0 FA/h shows; the
    chosen threshold marked on each line."""
    from audioclf.plots import _pyplot

    plt = _pyplot()
    floor = fa_per_hour(1, negative_seconds)
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    for condition, rows in curves.items():
        pts = [(r["fa_per_hour"], 100 * r["frr"]) for r in rows if r["frr"] is not None]
        if not pts:
            continue
        x, y = zip(*pts)
        (line,) = ax.plot(x, y, marker=".", markersize=3, label=condition)
        at = min(rows, key=lambda r: abs(r["threshold"] - chosen))
        if at["frr"] is not None:
            ax.plot(at["fa_per_hour"], 100 * at["frr"], "o", color=line.get_color(), ms=7,
                    mfc="none")  # fmt: skip
    ax.set_xscale("symlog", linthresh=floor)
    ax.axvline(floor, color="grey", lw=0.8, ls=":", label=f"resolution {floor:g} FA/h")
    ax.set_xlabel("false accepts per hour (negative audio)")
    ax.set_ylabel("false reject rate (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, title=f"o: threshold {chosen:g}", title_fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def finite(value: float | None) -> bool:
    """A metric worth logging: a number, not None or NaN."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


# --- the evaluation's params ---------------------------------------------------------------


@dataclass(frozen=True)
class EvaluateConfig:
    """``trigger.evaluate`` (conf/trigger/evaluate/default.yaml)."""

    name: str = "default"
    batch_size: int = 32  # test clips per scoring batch
    tolerance_seconds: float = 1.0  # a trigger is found by an event in [start, end + this]
    chunk_seconds: float = 1.0  # blocks the negative audio is streamed in (as the CLI)
    det_points: int = 101  # evenly spaced thresholds in [0, 1] for the DET curve
    fa_per_hour: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    corruption_seed: int = 2024
    # type -> severity -> arguments, as the classifier's evaluate.corruptions
    corruptions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(
            self.tolerance_seconds >= 0,
            "tolerance_seconds",
            f"must be >= 0, got {self.tolerance_seconds}",
        )
        check(self.chunk_seconds > 0, "chunk_seconds", f"must be > 0, got {self.chunk_seconds}")
        check(self.det_points >= 2, "det_points", f"must be >= 2, got {self.det_points}")
        check(
            all(x > 0 for x in self.fa_per_hour),
            "fa_per_hour",
            f"each must be > 0 (0 FA/h is always reported), got {list(self.fa_per_hour)}",
        )
