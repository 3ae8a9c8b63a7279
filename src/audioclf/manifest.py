"""What ``prepare`` makes of data/raw: the schema of ``data.prepare``, the clips found in the
raw layout (``audioclf.layout``) with their class and speaker, their split, and the writer of
the split arrays and the manifest.

Splits are speaker-disjoint: by hashing the speaker id (the rule of TensorFlow's
speech_commands example, ``audioclf.splits.which_set``: adding data never moves a speaker), or
by the dataset's own split lists.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from audioclf.audio_io import AudioError
from audioclf.clips import Loaded
from audioclf.config import ConfigError, check
from audioclf.layout import AUDIO_SUFFIXES, LISTS, NOISE_DIR, SILENCE, SPLITS, UNKNOWN
from audioclf.npystream import NpyWriter
from audioclf.splits import (
    NOHASH,
    class_names,
    extra_count,
    listed_set,
    read_list,
    silence_windows,
    speaker_of,
    which_set,
)


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
    # Few-shot: keep at most this many training clips per class (``few_shot``); null: all.
    # Validation and test are untouched.
    max_train_per_class: int | None = None

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
        check(
            self.max_train_per_class is None or self.max_train_per_class >= 1,
            "max_train_per_class",
            f"must be null (every clip) or >= 1, got {self.max_train_per_class}",
        )

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


def assign(rows: list[Row], cfg: PrepareConfig, raw: Path) -> dict[str, list[Row]]:
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


def few_shot(
    rows: list[Row], n: int, seed: int, unknown_percentage: float, silence_percentage: float
) -> list[int]:
    """The indices (ascending) of ``rows`` (one split's clips, as written) that a few-shot
    run keeps: at most ``n`` clips per class, speaker-aware, then as many ``_unknown_`` and
    ``_silence_`` clips as prepare would pick for the commands kept (the first ones: they
    were drawn at random).

    Per class, speakers in a seeded random order are taken whole while they fit in ``n``;
    then, if the class is still short, the remaining speakers' clips fill it in the same
    order. The pick depends only on ``seed``, the class and its rows (not on the other
    classes or the order of ``rows``), so the same params give the same clips.
    """
    by_class: dict[str, dict[str, list[int]]] = {}
    for i, r in enumerate(rows):
        if r.label not in (UNKNOWN, SILENCE):
            by_class.setdefault(r.label, {}).setdefault(r.speaker, []).append(i)
    keep: list[int] = []
    for label, speakers in sorted(by_class.items()):
        # A generator per class, seeded from the seed and the class name's bytes.
        rng = np.random.default_rng([seed, *label.encode()])
        names = sorted(speakers)
        order = [names[k] for k in rng.permutation(len(names))]
        taken: list[int] = []
        for speaker in order:
            if len(taken) + len(speakers[speaker]) <= n:
                taken += speakers[speaker]
        chosen = set(taken)
        rest = [i for sp in order for i in sorted(speakers[sp], key=lambda i: rows[i].path)]
        taken += [i for i in rest if i not in chosen][: n - len(taken)]
        keep += taken
    words = len(keep)
    for label, percentage in ((UNKNOWN, unknown_percentage), (SILENCE, silence_percentage)):
        extra = [i for i, r in enumerate(rows) if r.label == label]
        keep += extra[: extra_count(words, percentage)]
    return sorted(keep)


def record(report: list, path: str, result: Loaded | AudioError) -> bool:
    """Add a skipped or converted file to the report; True if the audio is usable."""
    if isinstance(result, AudioError):
        report.append((path, "skipped", result.reason))
        return False
    if result.notes:
        report.append((path, "converted", "; ".join(result.notes)))
    return True


class SplitWriter:
    """The split arrays, appended to as clips arrive; labels and manifest kept in memory."""

    def __init__(self, folder: Path, n_samples: int, sample_rate: int, classes: list[str]) -> None:
        self.folder = folder
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

    def keep(self, split: str, indices: list[int]) -> None:
        """Keep only the clips ``indices`` (ascending) of ``split``, rewriting its array; no
        clip can be added to it afterwards."""
        self.writers[split].close()
        path = self.folder / f"{split}_x.npy"
        kept = path.with_name(f"{split}_x.kept.npy")
        x = np.load(path, mmap_mode="r")
        with NpyWriter(kept, np.float32, (self.n_samples,)) as out:
            for i in range(0, len(indices), 1024):  # bounded memory
                out.append(np.asarray(x[indices[i : i + 1024]]))
        del x
        os.replace(kept, path)
        self.rows[split] = [self.rows[split][i] for i in indices]

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


def check_classes(kept: dict[str, list[Row]], classes: list[str], report: list) -> None:
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
