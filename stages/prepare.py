"""Stage `prepare`: raw clips -> fixed-length clips at the target rate, labelled and split.

Streams: clips are read in a thread per core (reading and converting samples release the
GIL; threads need no start-up and no copies between processes) and appended to the outputs as
they come, so memory stays at a few batches whatever the size of the dataset. What a clip's class,
speaker and split are is ``audioclf.manifest``'s business; this stage loads and writes.

Reads:  data/raw/ (``audioclf.layout``: <class>/<file>.wav, optional _background_noise_/
        and the optional split lists validation_list.txt / testing_list.txt)
Writes: data/prepared/{train,validation,test}_x.npy  float32 (clips, samples)
        data/prepared/{train,validation,test}_y.npy  int32 (clips,) label ids
        data/prepared/manifest.csv   split, index, label, path, speaker, source
        data/prepared/labels.json    class names, sample rate, clip length
        data/prepared/noise_{split}.npz  each noise recording's part for that split
        data/prepared/report.csv     every file converted or skipped, every folder ignored and
                                     every speaker moved out of its hash split, with the reason
Params: data.prepare
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audioclf.atomic import atomic_files
from audioclf.audio_io import AudioError
from audioclf.clips import load_audio, load_rows
from audioclf.config import ConfigError, load_params, parse, section
from audioclf.layout import NOISE_DIR, SILENCE, SPLITS, UNKNOWN
from audioclf.manifest import (
    PrepareConfig,
    Row,
    SplitWriter,
    assign,
    check_classes,
    few_shot,
    record,
    scan,
    silence,
)
from audioclf.mixing import GENERATED_NOISE, generated_noise
from audioclf.parallel import thread_map
from audioclf.splits import extra_count, shuffled, split_bounds
from audioclf.stagetimer import StageTimer

RAW = Path("data/raw")
OUT = Path("data/prepared")
LOAD_PART = 32  # files per thread task: 1 MB of 1-s 16 kHz clips


@dataclass
class Prepared:
    """What ``prepare`` did, for the summary."""

    found: int  # clips found in class folders
    noise_found: int  # noise recordings found
    ignored: int  # clips of folders that are not classes
    moved: int  # speakers moved out of their hash split so that every split has every class
    generated_noise: bool  # no noise recordings: generated ones were used
    counts: dict[str, int]  # clips written per split
    per_class: dict[str, list[int]]  # clips written per class: [train, validation, test]
    classes: list[str]
    report: list[tuple[str, str, str]]  # (path, "converted"/"skipped", reason)
    few_shot_left_out: int = 0  # training clips left out by max_train_per_class


def load_part(jobs: list[tuple[str, int, int, str]]) -> list:
    """``load_rows`` on each job: one thread task (reading a file and converting its samples
    run in C with the GIL released, so both cores' threads work)."""
    return [load_rows(job) for job in jobs]


def load(
    out: SplitWriter, todo: list[Row], cfg: PrepareConfig, report: list, desc: str, cap=None
) -> None:
    """Load ``todo`` into ``out``, in order; with ``cap``, stop each split at that many clips
    (a chopped file may give several)."""
    jobs = [(f"{RAW}/{r.path}", cfg.sample_rate, cfg.clip_samples, cfg.long_clips) for r in todo]
    parts = (jobs[i : i + LOAD_PART] for i in range(0, len(jobs), LOAD_PART))
    results = (r for part in thread_map(load_part, parts) for r in part)
    with tqdm(total=len(todo), desc=desc, unit="clip", disable=None, mininterval=1.0) as bar:
        for row, (rows, notes) in zip(todo, results):
            bar.update()
            if isinstance(notes, AudioError):
                report.append((row.path, "skipped", notes.reason))
                continue
            keep = (
                len(rows) if cap is None else max(0, min(len(rows), cap - len(out.rows[row.split])))
            )
            if keep:
                if notes:
                    report.append((row.path, "converted", "; ".join(notes)))
                out.add(row, rows[:keep])


def add_unknown(
    out: SplitWriter, by_split: dict[str, list[Row]], cfg: PrepareConfig, report: list, rng
) -> None:
    """A seeded random pick of unknown-word clips per split, sized on the command clips
    kept; a pick that fails to load is replaced by the next candidate."""
    for split in SPLITS:
        n_words = sum(r.label not in (UNKNOWN, SILENCE) for r in out.rows[split])
        want = extra_count(n_words, cfg.unknown_percentage)
        queue = shuffled(
            sorted((r for r in by_split[split] if r.label == UNKNOWN), key=lambda r: r.path), rng
        )
        cap = len(out.rows[split]) + want
        while len(out.rows[split]) < cap and queue:
            take = cap - len(out.rows[split])
            batch, queue = queue[:take], queue[take:]
            load(out, batch, cfg, report, f"prepare: unknown ({split})", cap)


def load_noise(paths: list[str], sample_rate: int, report: list) -> dict[str, np.ndarray]:
    """Each noise recording whole, mono at ``sample_rate``; unreadable ones are reported."""
    noise = {}
    for path in paths:
        try:
            result = load_audio(RAW / path, sample_rate)
        except AudioError as err:
            result = err
        if record(report, path, result):
            noise[path] = result.wave
    return noise


def add_silence(out: SplitWriter, noise: dict, bounds: dict, generated: bool, cfg, rng) -> None:
    """Silence clips: windows of each split's part of the noise recordings."""
    if generated:
        raise ConfigError(
            f"data.prepare.silence_percentage: {cfg.silence_percentage} needs background-"
            f"noise recordings in {RAW / NOISE_DIR}/ and there are none; set it to 0 "
            f"(a {SILENCE}/ folder of clips is the {SILENCE} class either way)"
        )
    for split in SPLITS:
        n_words = sum(r.label not in (UNKNOWN, SILENCE) for r in out.rows[split])
        segments = {p: b[split] for p, b in bounds.items()}
        for row, wave in silence(noise, segments, split, n_words, cfg, rng):
            out.add(row, wave[None])


def keep_few_shot(out: SplitWriter, cfg: PrepareConfig) -> int:
    """Few-shot (``max_train_per_class``): a seeded, speaker-aware pick of the training clips,
    made after everything is drawn as in a full run, so validation and test (and their random
    silence and unknown picks) are exactly the full run's. Returns the clips left out."""
    if cfg.max_train_per_class is None:
        return 0
    unknown = cfg.unknown_percentage if cfg.has_unknown else 0.0
    rows = out.rows["train"]
    keep = few_shot(rows, cfg.max_train_per_class, cfg.seed, unknown, cfg.silence_percentage)
    out.keep("train", keep)
    return len(rows) - len(keep)


def prepare(cfg: PrepareConfig, tmp: Path) -> Prepared:
    """Everything the stage writes, into the empty folder ``tmp``."""
    rng = np.random.default_rng(cfg.seed)
    found = scan(RAW, cfg)
    report, classes = found.report, found.classes
    by_split, moves = assign(found.rows, cfg, RAW)
    for m in moves:
        held = f"class {m.labels[0]}" if len(m.labels) == 1 else f"classes {', '.join(m.labels)}"
        why = f"hash split {m.hashed}, moved to {m.to} so that {m.to} holds {held}"
        report.append((f"speaker {m.speaker}", "moved", why))
    out = SplitWriter(tmp, cfg.clip_samples, cfg.sample_rate, classes)
    # Every clip of a class folder; the unknown pool's (other words) are picked below.
    pool = UNKNOWN if cfg.has_unknown else None
    words = [r for s in SPLITS for r in by_split[s] if r.label != pool]
    load(out, words, cfg, report, "prepare: commands")
    if cfg.has_unknown:
        add_unknown(out, by_split, cfg, report, rng)

    noise = load_noise(found.noise, cfg.sample_rate, report)
    generated = not noise
    if generated:  # augmentation and the corrupted test sets need noise
        noise = generated_noise(cfg.sample_rate, cfg.seed)
    bounds = {
        p: split_bounds(len(w), cfg.validation_percentage, cfg.testing_percentage)
        for p, w in noise.items()
    }
    if cfg.has_silence:
        add_silence(out, noise, bounds, generated, cfg, rng)
    left_out = keep_few_shot(out, cfg)
    check_classes(out.rows, classes, report, cfg)
    out.close(tmp)
    for split in SPLITS:
        parts = {Path(p).stem: w[slice(*bounds[p][split])] for p, w in noise.items()}
        np.savez(tmp / f"noise_{split}.npz", **parts)
    info = {"classes": classes, "sample_rate": cfg.sample_rate, "clip_samples": cfg.clip_samples}
    (tmp / "labels.json").write_text(json.dumps(info, indent=2) + "\n")
    with (tmp / "report.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("path", "action", "reason"), *report])
    counts = {s: len(out.rows[s]) for s in SPLITS}
    n = Counter((s, r.label) for s in SPLITS for r in out.rows[s])
    per_class = {c: [n[s, c] for s in SPLITS] for c in classes}
    return Prepared(
        len(found.rows),
        len(found.noise),
        found.ignored,
        len(moves),
        generated,
        counts,
        per_class,
        classes,
        report,
        left_out,
    )


def main() -> None:
    timer = StageTimer("prepare")
    cfg = parse(PrepareConfig, section(load_params(), "data.prepare"), "data.prepare")
    with atomic_files(OUT) as tmp:
        done = prepare(cfg, tmp)

    skipped = sorted(r for r in done.report if r[1] == "skipped")
    for path, _, reason in skipped[:20]:
        print(f"[prepare] skipped {RAW / path}: {reason}")
    if len(skipped) > 20:
        print(f"[prepare] ... and {len(skipped) - 20} more skipped (see {OUT}/report.csv)")
    for path, action, reason in done.report:
        if action in ("ignored", "moved", "incomplete"):
            print(
                f"[prepare] {action} {path if action != 'ignored' else f'{RAW}/{path}'}: {reason}"
            )
    print(
        "[prepare] clips per class (train/validation/test): "
        + ", ".join(f"{c} {'/'.join(map(str, n))}" for c, n in done.per_class.items())
    )
    converted = sum(a == "converted" for _, a, _ in done.report)
    notes = f", {done.ignored} clips of non-class folders ignored" if done.ignored else ""
    if done.moved:
        notes += f", {done.moved} speakers moved so that every split holds every class"
    if cfg.max_train_per_class is not None:
        notes += (
            f"; few-shot: at most {cfg.max_train_per_class} training clips per class, "
            f"{done.few_shot_left_out} training clips left out"
        )
    if done.generated_noise:
        notes += f"; no {NOISE_DIR} recordings: generated {', '.join(GENERATED_NOISE)} noise"
    timer.summary(
        f"{done.found} clips + {done.noise_found} noise recordings from {RAW}",
        " / ".join(f"{s} {n}" for s, n in done.counts.items())
        + f" clips of {len(done.classes)} classes to {OUT} ({cfg.split} split)",
        f"{converted} converted, {len(skipped)} skipped (see {OUT}/report.csv){notes}",
    )


if __name__ == "__main__":
    main()
