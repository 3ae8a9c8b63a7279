"""Stage `prepare`: raw clips -> fixed-length clips at the target rate, labelled and split.

Reads:  data/raw/ (Speech Commands layout: <word>/<speaker>_nohash_<n>.wav and
        _background_noise_/*.wav)
Writes: data/prepared/{train,validation,test}_x.npy  float32 (clips, samples)
        data/prepared/{train,validation,test}_y.npy  int32 (clips,) label ids
        data/prepared/manifest.csv   split, index, label, path, speaker, source
        data/prepared/labels.json    class names, sample rate, clip length
        data/prepared/noise_{split}.npz  each noise recording's part for that split
        data/prepared/report.csv     every file converted or skipped, with the reason
Params: data.prepare
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioclf.atomic import atomic_dir
from audioclf.audio_io import AudioError
from audioclf.clips import Loaded, load_audio, try_load_clip
from audioclf.config import ConfigError, check, load_params, parse, section
from audioclf.parallel import ordered_map
from audioclf.report import StageTimer
from audioclf.splits import (
    SILENCE,
    SPLITS,
    UNKNOWN,
    class_names,
    extra_count,
    shuffled,
    silence_windows,
    speaker_of,
    split_bounds,
    which_set,
)

RAW = Path("data/raw")
OUT = Path("data/prepared")
NOISE_DIR = "_background_noise_"


@dataclass(frozen=True)
class PrepareConfig:
    sample_rate: int = 16000  # Hz, every clip is resampled to this
    clip_seconds: float = 1.0  # clips are padded or cropped to this length
    commands: tuple[str, ...] = (
        "yes",
        "no",
        "up",
        "down",
        "left",
        "right",
        "on",
        "off",
        "stop",
        "go",
    )
    validation_percentage: float = 10.0  # % of speakers (by hash) in validation
    testing_percentage: float = 10.0  # % of speakers (by hash) in test
    silence_percentage: float = 10.0  # silence clips per 100 command clips, per split
    unknown_percentage: float = 10.0  # unknown-word clips per 100 command clips, per split
    seed: int = 59185

    def __post_init__(self) -> None:
        check(
            self.sample_rate >= 1000, "sample_rate", f"must be >= 1000 Hz, got {self.sample_rate}"
        )
        check(self.clip_seconds > 0, "clip_seconds", f"must be > 0 s, got {self.clip_seconds}")
        check(len(self.commands) >= 1, "commands", "list at least one command word")
        check(len(set(self.commands)) == len(self.commands), "commands", "has duplicate words")
        check(
            all(isinstance(c, str) and c and "/" not in c for c in self.commands),
            "commands",
            f"must be folder names (quote yes/no/on/off in YAML), got {list(self.commands)}",
        )
        for name in ("validation_percentage", "testing_percentage"):
            value = getattr(self, name)
            check(0 <= value < 100, name, f"must be in [0, 100), got {value}")
        check(
            self.validation_percentage + self.testing_percentage < 100,
            "testing_percentage",
            "validation_percentage + testing_percentage must leave some data for training",
        )
        for name in ("silence_percentage", "unknown_percentage"):
            value = getattr(self, name)
            check(0 <= value <= 1000, name, f"must be in [0, 1000], got {value}")

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))


@dataclass(frozen=True)
class Row:
    split: str
    label: str
    path: str  # relative to data/raw
    speaker: str
    source: str  # the folder word, or the noise window for silence


def scan(raw: Path, commands: tuple[str, ...]) -> tuple[list[Row], list[str], list[tuple]]:
    """Find word clips and noise recordings; (rows without split, noise paths, report rows)."""
    if not raw.is_dir():
        raise FileNotFoundError(f"{raw}: not found; run the `download` stage first (dvc repro)")
    rows, noise, report = [], [], []
    for folder in sorted(p for p in raw.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.is_file())
        for path in files:
            rel = path.relative_to(raw).as_posix()
            if path.suffix.lower() != ".wav":
                report.append((rel, "skipped", "not a .wav file"))
            elif folder.name == NOISE_DIR:
                noise.append(rel)
            else:
                label = folder.name if folder.name in commands else UNKNOWN
                rows.append(Row("", label, rel, speaker_of(path.name), folder.name))
    missing = [c for c in commands if not any(r.label == c for r in rows)]
    if missing:
        raise FileNotFoundError(
            f"{raw}: no .wav clips for command(s) {', '.join(missing)}; each command in "
            "data.prepare.commands needs a folder of clips of that name"
        )
    return rows, noise, report


def assign(rows: list[Row], cfg: PrepareConfig) -> dict[str, list[Row]]:
    """Hash-split the rows by speaker: {split: rows with the split filled in}."""
    out: dict[str, list[Row]] = {s: [] for s in SPLITS}
    for r in rows:
        split = which_set(r.path, cfg.validation_percentage, cfg.testing_percentage)
        out[split].append(Row(split, r.label, r.path, r.speaker, r.source))
    return out


def record(report: list, path: str, result: Loaded | AudioError) -> bool:
    """Add a skipped or converted file to the report; True if the audio is usable."""
    if isinstance(result, AudioError):
        report.append((path, "skipped", result.reason))
        return False
    if result.notes:
        report.append((path, "converted", "; ".join(result.notes)))
    return True


def main() -> None:
    timer = StageTimer("prepare")
    cfg = parse(PrepareConfig, section(load_params(), "data.prepare"), "data.prepare")
    rng = np.random.default_rng(cfg.seed)
    n = cfg.clip_samples

    rows, noise_paths, report = scan(RAW, cfg.commands)
    waves: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    kept: dict[str, list[Row]] = {s: [] for s in SPLITS}

    def load(todo: list[Row], desc: str) -> None:
        jobs = [(RAW / r.path, cfg.sample_rate, n) for r in todo]
        for row, result in zip(todo, ordered_map(try_load_clip, jobs, desc=desc)):
            if record(report, row.path, result):
                waves[row.split].append(result.wave)
                kept[row.split].append(row)

    by_split = assign(rows, cfg)
    load([r for s in SPLITS for r in by_split[s] if r.label != UNKNOWN], "prepare: commands")
    # Unknown clips: a seeded random pick per split, sized on the command clips actually
    # kept; a pick that fails to load is replaced by the next candidate.
    for split in SPLITS:
        want = extra_count(len(kept[split]), cfg.unknown_percentage)
        queue = shuffled(
            sorted((r for r in by_split[split] if r.label == UNKNOWN), key=lambda r: r.path), rng
        )
        have = 0
        while have < want and queue:
            batch, queue = queue[: want - have], queue[want - have :]
            before = len(kept[split])
            load(batch, f"prepare: unknown ({split})")
            have += len(kept[split]) - before

    noise = load_noise(noise_paths, cfg.sample_rate, report)
    bounds = {
        p: split_bounds(len(w), cfg.validation_percentage, cfg.testing_percentage)
        for p, w in noise.items()
    }
    for split in SPLITS:
        n_words = sum(r.label not in (UNKNOWN, SILENCE) for r in kept[split])
        segments = {p: b[split] for p, b in bounds.items()}
        for row, wave in silence(noise, segments, split, n_words, cfg, rng):
            kept[split].append(row)
            waves[split].append(wave)

    classes = class_names(cfg.commands)
    _check_classes(kept, classes, report)
    with atomic_dir(OUT) as tmp:
        manifest = csv.writer(buf := io.StringIO())
        manifest.writerow(["split", "index", "label", "path", "speaker", "source"])
        for split in SPLITS:
            np.save(tmp / f"{split}_x.npy", np.stack(waves[split]).astype(np.float32))
            ids = [classes.index(r.label) for r in kept[split]]
            np.save(tmp / f"{split}_y.npy", np.asarray(ids, dtype=np.int32))
            for i, r in enumerate(kept[split]):
                manifest.writerow([split, i, r.label, r.path, r.speaker, r.source])
            np.savez(
                tmp / f"noise_{split}.npz",
                **{Path(p).stem: w[slice(*bounds[p][split])] for p, w in noise.items()},
            )
        (tmp / "manifest.csv").write_text(buf.getvalue())
        info = {"classes": classes, "sample_rate": cfg.sample_rate, "clip_samples": n}
        (tmp / "labels.json").write_text(json.dumps(info, indent=2) + "\n")
        with (tmp / "report.csv").open("w", newline="") as f:
            csv.writer(f).writerows([("path", "action", "reason"), *report])

    skipped = sum(a == "skipped" for _, a, _ in report)
    converted = sum(a == "converted" for _, a, _ in report)
    for path, action, reason in sorted(report):
        if action == "skipped":
            print(f"[prepare] skipped {RAW / path}: {reason}")
    counts = " / ".join(f"{s} {len(kept[s])}" for s in SPLITS)
    timer.summary(
        f"{len(rows)} clips + {len(noise_paths)} noise recordings from {RAW}",
        f"{counts} clips of {len(classes)} classes to {OUT}",
        f"{converted} converted, {skipped} skipped (see {OUT}/report.csv)",
    )


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


def silence(
    noise: dict[str, np.ndarray],
    segments: dict[str, tuple[int, int]],
    split: str,
    n_words: int,
    cfg: PrepareConfig,
    rng: np.random.Generator,
) -> list[tuple[Row, np.ndarray]]:
    """The split's silence clips: random windows of its part of each noise recording."""
    n = cfg.clip_samples
    try:
        windows = silence_windows(segments, extra_count(n_words, cfg.silence_percentage), n, rng)
    except ValueError as err:
        raise ConfigError(f"data.prepare.silence_percentage: {err}") from None
    out = []
    for w in windows:
        source = f"{w.name}@{w.start / cfg.sample_rate:.3f}s*{w.gain:.3f}"
        wave = noise[w.name][w.start : w.start + n] * np.float32(w.gain)
        out.append((Row(split, SILENCE, w.name, "", source), wave))
    return out


def _check_classes(kept: dict[str, list[Row]], classes: list[str], report: list) -> None:
    """Never drop a class silently: every command needs training clips, every split clips."""
    for split in SPLITS:
        if not kept[split]:
            raise ValueError(
                f"split {split!r} is empty: too few speakers for data.prepare."
                "validation_percentage / testing_percentage (or too many files skipped, "
                "see the report)"
            )
    have = {r.label for r in kept["train"]}
    lost = [c for c in classes if c not in have and c != UNKNOWN and c != SILENCE]
    if lost:
        raise ValueError(
            f"no usable training clips left for class(es) {', '.join(lost)} "
            f"({sum(a == 'skipped' for _, a, _ in report)} files skipped; see the report)"
        )


if __name__ == "__main__":
    main()
