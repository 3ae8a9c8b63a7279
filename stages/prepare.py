"""Stage `prepare`: raw clips -> fixed-length clips at the target rate, labelled and split.

Streams: clips are read in both cores' worker processes and appended to the outputs as they
come, so memory stays at a few batches whatever the size of the dataset.

Reads:  data/raw/ (Speech Commands layout: <class>/<file>.wav, optional _background_noise_/
        and the optional split lists validation_list.txt / testing_list.txt)
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
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from audioclf.atomic import atomic_dir
from audioclf.audio_io import AudioError
from audioclf.clips import AUDIO_SUFFIXES, Loaded, load_audio, load_chunk
from audioclf.config import ConfigError, check, load_params, parse, section
from audioclf.mixing import colored_noise
from audioclf.npystream import NpyWriter
from audioclf.parallel import ordered_map
from audioclf.report import StageTimer
from audioclf.splits import (
    NOHASH,
    SILENCE,
    SPLITS,
    UNKNOWN,
    class_names,
    extra_count,
    listed_set,
    read_list,
    shuffled,
    silence_windows,
    speaker_of,
    split_bounds,
    which_set,
)

RAW = Path("data/raw")
CHUNK_FILES = 256  # files per worker task; each writes its clips to a .npy chunk (64 KB/clip)
PARALLEL_CHUNKS = 16  # fewer chunks (< 4,096 files) load in this process: workers' start-up
# costs more than they save on a small job
OUT = Path("data/prepared")
NOISE_DIR = "_background_noise_"
LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}


@dataclass(frozen=True)
class PrepareConfig:
    sample_rate: int = 16000  # Hz, every clip is resampled to this
    clip_seconds: float = 1.0  # clips are padded/cropped (or chopped) to this length
    # The class folders that are classes; the others become _unknown_. null: every folder
    # is a class (no _unknown_), e.g. all 35 words of Speech Commands v0.02.
    commands: tuple[str, ...] | None = (
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
    # hash: speakers hashed into splits (TensorFlow's rule); lists: the dataset's own
    # validation_list.txt / testing_list.txt in data/raw (unlisted clips train).
    split: Literal["hash", "lists"] = "hash"
    speaker_pattern: str = NOHASH  # regex on the file name; group 1 is the speaker
    # Recordings longer than a clip: crop (keep the centre) or chop (every clip-long window).
    long_clips: Literal["crop", "chop"] = "crop"
    validation_percentage: float = 10.0  # % of speakers (by hash) in validation
    testing_percentage: float = 10.0  # % of speakers (by hash) in test
    silence_percentage: float = 10.0  # silence clips per 100 command clips, per split; 0: none
    unknown_percentage: float = 10.0  # unknown-word clips per 100 command clips; 0: none
    seed: int = 59185

    def __post_init__(self) -> None:
        check(
            self.sample_rate >= 1000, "sample_rate", f"must be >= 1000 Hz, got {self.sample_rate}"
        )
        check(self.clip_seconds > 0, "clip_seconds", f"must be > 0 s, got {self.clip_seconds}")
        if self.commands is not None:
            check(len(self.commands) >= 1, "commands", "list at least one class folder or null")
            check(len(set(self.commands)) == len(self.commands), "commands", "has duplicate words")
            check(
                all(isinstance(c, str) and c and "/" not in c for c in self.commands),
                "commands",
                f"must be folder names (quote yes/no/on/off and digits in YAML), got "
                f"{list(self.commands)}",
            )
        try:
            groups = re.compile(self.speaker_pattern).groups
        except re.error as err:
            raise ConfigError(f"speaker_pattern: not a regular expression ({err})") from None
        check(
            groups >= 1,
            "speaker_pattern",
            f"needs a group around the speaker id, e.g. '^(.+?)_nohash_', got "
            f"{self.speaker_pattern!r}",
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

    @property
    def has_unknown(self) -> bool:
        return self.commands is not None and self.unknown_percentage > 0

    @property
    def has_silence(self) -> bool:
        return self.silence_percentage > 0


@dataclass(frozen=True)
class Row:
    split: str
    label: str
    path: str  # relative to data/raw
    speaker: str
    source: str  # the folder word (@ start s for a chopped window), or the noise window


@dataclass
class Scan:
    rows: list[Row]  # clips, split not yet assigned
    noise: list[str]  # background-noise recordings
    classes: list[str]
    report: list[tuple[str, str, str]]  # (path, action, reason)
    ignored: int  # clips of folders that are not classes (no _unknown_ class)


def scan(raw: Path, cfg: PrepareConfig) -> Scan:
    """Find the clips and noise recordings in ``raw``; refuse a dataset that cannot work."""
    if not raw.is_dir():
        raise FileNotFoundError(f"{raw}: not found; run the `download` stage first (dvc repro)")
    rows, noise, report, ignored = [], [], [], 0
    # os.scandir and plain strings: at 100k files, pathlib's objects cost seconds.
    folders = sorted(e.name for e in os.scandir(raw) if e.is_dir() and e.name[0] != ".")
    words = []
    for folder in folders:
        files = sorted(e.name for e in os.scandir(raw / folder) if e.is_file())
        audio = [f for f in files if os.path.splitext(f)[1].lower() in AUDIO_SUFFIXES]
        for name in files:
            suffix = os.path.splitext(name)[1]
            if suffix.lower() not in AUDIO_SUFFIXES:
                reason = f"not an audio file ({suffix or 'no suffix'})"
                report.append((f"{folder}/{name}", "skipped", reason))
        if folder == NOISE_DIR:
            noise += [f"{folder}/{name}" for name in audio]
            continue
        if not audio:
            report.append((folder + "/", "skipped", "class folder holds no audio files"))
            continue
        if cfg.commands is None or folder in cfg.commands:
            label = folder
            words.append(label)
        elif cfg.has_unknown:
            label = UNKNOWN
        else:
            ignored += len(audio)
            continue
        for name in audio:
            speaker = speaker_of(name, cfg.speaker_pattern)
            rows.append(Row("", label, f"{folder}/{name}", speaker, folder))
    if not rows:
        raise FileNotFoundError(
            f"{raw}: no audio clips in any class folder (expected <class>/<file>.wav; "
            f"suffixes read: {', '.join(AUDIO_SUFFIXES)})"
        )
    commands = list(cfg.commands) if cfg.commands is not None else words
    missing = [c for c in commands if c not in words]
    if missing:
        raise FileNotFoundError(
            f"{raw}: no audio clips for command(s) {', '.join(missing)}; each command in "
            "data.prepare.commands needs a folder of clips of that name "
            f"(folders found: {', '.join(folders) or 'none'})"
        )
    classes = class_names(commands, cfg.has_silence, cfg.has_unknown)
    return Scan(rows, noise, classes, report, ignored)


def assign(rows: list[Row], cfg: PrepareConfig, raw: Path = RAW) -> dict[str, list[Row]]:
    """Put each row in its split: {split: rows with the split filled in}."""
    if cfg.split == "lists":
        listed = {}
        for split, name in LISTS.items():
            if not (raw / name).is_file():
                raise FileNotFoundError(
                    f"{raw / name}: missing, and data.prepare.split is 'lists'. This dataset has "
                    "no official split lists: set data.prepare.split: hash"
                )
            listed[split] = read_list(raw / name)
        rule = lambda r: listed_set(r.path, listed["validation"], listed["test"])  # noqa: E731
    else:
        rule = lambda r: which_set(  # noqa: E731
            r.path, cfg.validation_percentage, cfg.testing_percentage, cfg.speaker_pattern
        )
    out: dict[str, list[Row]] = {s: [] for s in SPLITS}
    for r in rows:
        split = rule(r)
        out[split].append(replace(r, split=split))
    return out


def record(report: list, path: str, result: Loaded | AudioError) -> bool:
    """Add a skipped or converted file to the report; True if the audio is usable."""
    if isinstance(result, AudioError):
        report.append((path, "skipped", result.reason))
        return False
    if result.notes:
        report.append((path, "converted", "; ".join(result.notes)))
    return True


class Output:
    """The split arrays, appended to as clips arrive; labels and manifest kept in memory."""

    def __init__(self, folder: Path, n_samples: int, sample_rate: int, classes: list[str]) -> None:
        self.classes = classes
        self.n_samples = n_samples
        self.sample_rate = sample_rate
        self.writers = {
            s: NpyWriter(folder / f"{s}_x.npy", np.float32, (n_samples,)) for s in SPLITS
        }
        self.rows: dict[str, list[Row]] = {s: [] for s in SPLITS}

    def add(self, row: Row, waves: np.ndarray) -> None:
        """Append (k, n_samples) clips of one file."""
        self.writers[row.split].append(waves)
        self.add_rows(row, len(waves))

    def add_rows(self, row: Row, count: int) -> None:
        """The manifest rows of a file's ``count`` clips (their waves are appended to
        ``writers[row.split]`` by the caller): chopped windows get their start in source."""
        if count == 1:
            self.rows[row.split].append(row)
            return
        for k in range(count):
            start = k * self.n_samples / self.sample_rate
            self.rows[row.split].append(replace(row, source=f"{row.source}@{start:.3f}s"))

    def close(self, folder: Path) -> None:
        for w in self.writers.values():
            w.close()
        with (folder / "manifest.csv").open("w", newline="") as f:
            manifest = csv.writer(f)
            manifest.writerow(["split", "index", "label", "path", "speaker", "source"])
            for split in SPLITS:
                ids = [self.classes.index(r.label) for r in self.rows[split]]
                np.save(folder / f"{split}_y.npy", np.asarray(ids, dtype=np.int32))
                for i, r in enumerate(self.rows[split]):
                    manifest.writerow([split, i, r.label, r.path, r.speaker, r.source])


def main() -> None:
    timer = StageTimer("prepare")
    cfg = parse(PrepareConfig, section(load_params(), "data.prepare"), "data.prepare")
    rng = np.random.default_rng(cfg.seed)
    n = cfg.clip_samples

    found = scan(RAW, cfg)
    report, classes = found.report, found.classes
    by_split = assign(found.rows, cfg)
    words = [r for s in SPLITS for r in by_split[s] if r.label != UNKNOWN]
    with atomic_dir(OUT) as tmp:
        out = Output(tmp, n, cfg.sample_rate, classes)

        def load(todo: list[Row], desc: str, cap: int | None = None) -> None:
            """Load ``todo`` into the output, in order; with ``cap``, stop each split at
            that many clips (a chopped file may give several)."""
            chunks = [
                rows[i : i + CHUNK_FILES]
                for split in SPLITS
                if (rows := [r for r in todo if r.split == split])
                for i in range(0, len(rows), CHUNK_FILES)
            ]
            (tmp / ".chunks").mkdir(exist_ok=True)
            tasks = [
                (
                    tmp / ".chunks" / f"{k}.npy",
                    [(RAW / r.path, cfg.sample_rate, n, cfg.long_clips) for r in rows],
                )
                for k, rows in enumerate(chunks)
            ]
            results = ordered_map(load_chunk, tasks, None, min_items=PARALLEL_CHUNKS)
            with tqdm(total=len(todo), desc=desc, unit="clip", disable=None) as bar:
                for rows, (path, _), loaded in zip(chunks, tasks, results):
                    runs: list[list[int]] = []  # [first, count] row ranges of the chunk to keep
                    first = 0  # row of the chunk file where this file's clips start
                    for row, result in zip(rows, loaded):
                        if isinstance(result, AudioError):
                            report.append((row.path, "skipped", result.reason))
                            continue
                        k, notes = result
                        keep = k if cap is None else max(0, min(k, cap - len(out.rows[row.split])))
                        if keep:
                            if notes:
                                report.append((row.path, "converted", "; ".join(notes)))
                            out.add_rows(row, keep)
                            if runs and sum(runs[-1]) == first:
                                runs[-1][1] += keep
                            else:
                                runs.append([first, keep])
                        first += k
                    for start, count in runs:  # one kernel copy per run, usually the chunk
                        out.writers[rows[0].split].append_rows_of(path, start, count)
                    path.unlink()
                    bar.update(len(rows))

        load(words, "prepare: commands")
        if cfg.has_unknown:
            # A seeded random pick per split, sized on the command clips actually kept; a
            # pick that fails to load is replaced by the next candidate.
            for split in SPLITS:
                want = extra_count(len(out.rows[split]), cfg.unknown_percentage)
                queue = shuffled(
                    sorted(
                        (r for r in by_split[split] if r.label == UNKNOWN), key=lambda r: r.path
                    ),
                    rng,
                )
                cap = len(out.rows[split]) + want
                while len(out.rows[split]) < cap and queue:
                    take = cap - len(out.rows[split])
                    batch, queue = queue[:take], queue[take:]
                    load(batch, f"prepare: unknown ({split})", cap)

        noise = load_noise(found.noise, cfg.sample_rate, report)
        generated = not noise
        if generated:
            # Augmentation and the corrupted test sets need noise; a dataset without
            # recordings of its own (FSDD, most folders) gets seeded coloured noise.
            noise = generated_noise(cfg.sample_rate, cfg.seed)
        bounds = {
            p: split_bounds(len(w), cfg.validation_percentage, cfg.testing_percentage)
            for p, w in noise.items()
        }
        if cfg.has_silence:
            if generated:
                raise ConfigError(
                    f"data.prepare.silence_percentage: {cfg.silence_percentage} needs background-"
                    f"noise recordings in {RAW / NOISE_DIR}/ and there are none; set it to 0 "
                    "for a task without a _silence_ class"
                )
            for split in SPLITS:
                n_words = sum(r.label not in (UNKNOWN, SILENCE) for r in out.rows[split])
                segments = {p: b[split] for p, b in bounds.items()}
                for row, wave in silence(noise, segments, split, n_words, cfg, rng):
                    out.add(row, wave[None])

        _check_classes(out.rows, classes, report)
        (tmp / ".chunks").rmdir()
        out.close(tmp)
        for split in SPLITS:
            np.savez(
                tmp / f"noise_{split}.npz",
                **{Path(p).stem: w[slice(*bounds[p][split])] for p, w in noise.items()},
            )
        info = {"classes": classes, "sample_rate": cfg.sample_rate, "clip_samples": n}
        (tmp / "labels.json").write_text(json.dumps(info, indent=2) + "\n")
        with (tmp / "report.csv").open("w", newline="") as f:
            csv.writer(f).writerows([("path", "action", "reason"), *report])

    skipped = sum(a == "skipped" for _, a, _ in report)
    converted = sum(a == "converted" for _, a, _ in report)
    shown = 0
    for path, action, reason in sorted(report):
        if action == "skipped" and shown < 20:
            print(f"[prepare] skipped {RAW / path}: {reason}")
            shown += 1
    if skipped > shown:
        print(f"[prepare] ... and {skipped - shown} more skipped (see {OUT}/report.csv)")
    counts = " / ".join(f"{s} {len(out.rows[s])}" for s in SPLITS)
    ignored = f", {found.ignored} clips of non-class folders ignored" if found.ignored else ""
    if generated:
        ignored += f"; no {NOISE_DIR} recordings: generated {', '.join(GENERATED_NOISE)} noise"
    timer.summary(
        f"{len(found.rows)} clips + {len(found.noise)} noise recordings from {RAW}",
        f"{counts} clips of {len(classes)} classes to {OUT} ({cfg.split} split)",
        f"{converted} converted, {skipped} skipped (see {OUT}/report.csv){ignored}",
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


GENERATED_NOISE = ("white", "pink", "brown")
GENERATED_NOISE_SECONDS = 60.0


def generated_noise(sample_rate: int, seed: int) -> dict[str, np.ndarray]:
    """White, pink and brown noise recordings of 60 s at -20 dBFS RMS, seeded by ``seed``."""
    rng = np.random.default_rng([seed, 1])
    n = int(GENERATED_NOISE_SECONDS * sample_rate)
    return {f"generated_{kind}.wav": 0.1 * colored_noise(kind, n, rng) for kind in GENERATED_NOISE}


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
