"""What ``prepare`` makes of data/raw: the schema of ``data.prepare``, the clips found in the
raw layout (``audioclf.layout``) with their class and speaker, their split, and the writer of
the split arrays and the manifest.

Splits are speaker-disjoint: by hashing the speaker id (the rule of TensorFlow's
speech_commands example, ``audioclf.splits.which_set``: adding data never moves a speaker;
``split_salt`` draws another such split), then moving the fewest speakers needed for every
class to be in every split (``audioclf.splits.cover``; none move when the hash already does
it); or by the dataset's own split lists.

Nothing is dropped silently: a class folder is a class, the ``_unknown_`` pick's pool, or
reported as ignored with the key that changes it; ``_silence_/`` and ``_unknown_/`` folders of
clips are those classes; every class ends up with clips in every split, or the stage stops.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
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
    Move,
    Uncoverable,
    class_names,
    cover,
    extra_count,
    listed_set,
    position,
    read_list,
    silence_windows,
    speaker_of,
    split_at,
)

SPECIAL = (SILENCE, UNKNOWN, NOISE_DIR)  # folder names with a meaning of their own
# The hash rule is taken to be broken (not unlucky) for a split that should get at least this
# many speakers and gets at most an eighth of them: a chance below 0.3 % for a fair hash
# (binomial, worst case over speaker counts and percentages).
SKEW_MIN_EXPECTED = 8


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
    # split: hash only. "": TensorFlow's rule exactly; any other text hashes "<salt>/<speaker>",
    # another stable split (re-splits a folder that is itself one split of a hash split). A
    # number is taken as its text: `-S data.prepare.split_salt=1` reaches here as the int 1.
    split_salt: str | int = ""
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
        object.__setattr__(self, "split_salt", str(self.split_salt))
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
            special = [c for c in self.commands if c in SPECIAL]
            check(
                not special,
                "commands",
                f"lists {', '.join(special)}, which are not commands: a {SILENCE}/ or "
                f"{UNKNOWN}/ folder of clips is that class either way ({UNKNOWN}/ joins the "
                f"unknown pick when unknown_percentage > 0), {NOISE_DIR}/ holds noise recordings",
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
    ignored: int  # clips of folders that are not classes (no _unknown_ class), reported


def ignored_reason(n: int) -> str:
    return (
        f"{n} clips not used: the folder is not in data.prepare.commands and "
        "data.prepare.unknown_percentage is 0. List it in commands to make it a class, set "
        f"unknown_percentage > 0 to pick {UNKNOWN} clips from it, or commands: null to make "
        "every folder a class"
    )


def scan(raw: Path, cfg: PrepareConfig) -> Scan:
    """Find the clips and noise recordings in ``raw``; refuse a dataset that cannot work."""
    if not raw.is_dir():
        raise FileNotFoundError(f"{raw}: not found; run the `download` stage first (dvc repro)")
    rows, noise, report, ignored = [], [], [], 0
    # os.scandir and plain strings: at 100k files, pathlib's objects cost seconds.
    folders = sorted(e.name for e in os.scandir(raw) if e.is_dir() and e.name[0] != ".")
    words, special = [], set()
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
        if folder in (SILENCE, UNKNOWN) and (folder == SILENCE or cfg.commands is None):
            label = folder  # clips of that class: all of them, whatever the percentages
            special.add(folder)
        elif cfg.commands is None or folder in cfg.commands:
            label = folder
            words.append(label)
        elif cfg.has_unknown:
            label = UNKNOWN  # the pool the unknown pick draws from
        else:
            ignored += len(audio)
            report.append((folder + "/", "ignored", ignored_reason(len(audio))))
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
    if cfg.has_unknown and not any(r.label == UNKNOWN for r in rows):
        raise ConfigError(
            f"data.prepare.unknown_percentage: {cfg.unknown_percentage} asks for {UNKNOWN} "
            f"clips, but no folder outside data.prepare.commands holds any (folders found: "
            f"{', '.join(folders)}); add folders of other words or set it to 0"
        )
    has_silence = cfg.has_silence or SILENCE in special
    classes = class_names(commands, has_silence, cfg.has_unknown or UNKNOWN in special)
    return Scan(rows, noise, classes, report, ignored)


def assign(
    rows: list[Row], cfg: PrepareConfig, raw: Path
) -> tuple[dict[str, list[Row]], list[Move]]:
    """Put each row in its split: ({split: rows with the split filled in}, speakers moved so
    that every split holds every class; split: hash only)."""
    moves: list[Move] = []
    if cfg.split == "lists":
        listed = {}
        for split, name in LISTS.items():
            if not (raw / name).is_file():
                raise FileNotFoundError(
                    f"{raw / name}: missing, and data.prepare.split is 'lists'. Put the "
                    f"dataset's own {' and '.join(LISTS.values())} (clip paths relative to the "
                    "data folder, one per line) at its root, or set data.prepare.split: hash"
                )
            listed[split] = read_list(raw / name)
        split_of = {r.path: listed_set(r.path, listed["validation"], listed["test"]) for r in rows}
        rule = lambda r: split_of[r.path]  # noqa: E731
    else:
        speaker_split, moves = hash_split(rows, cfg)
        rule = lambda r: speaker_split[r.speaker]  # noqa: E731
    out: dict[str, list[Row]] = {s: [] for s in SPLITS}
    for r in rows:
        split = rule(r)
        out[split].append(replace(r, split=split))
    return out, moves


WAY_OUT = (
    "If the folder is itself one split of a dataset split by this hash (Speech Commands' "
    "test set is exactly the speakers hashing into one range), re-split it with "
    "data.prepare.split_salt (any text, e.g. `-S data.prepare.split_salt=1`), or give "
    "your own split: validation_list.txt / testing_list.txt at the folder's root and "
    "data.prepare.split: lists"
)


def hash_split(rows: list[Row], cfg: PrepareConfig) -> tuple[dict[str, str], list[Move]]:
    """{speaker: split} by the (salted) hash, with the moves that make every split hold every
    class; a clear error when the hash is skewed or a class has too few speakers."""
    labels: dict[str, set[str]] = {}
    for r in rows:
        labels.setdefault(r.speaker, set()).add(r.label)
    speakers = {s: (position(s, cfg.split_salt), frozenset(ls)) for s, ls in labels.items()}
    v, t = cfg.validation_percentage, cfg.testing_percentage
    share = {"train": 100 - v - t, "validation": v, "test": t}
    got = Counter(split_at(at, v, t) for at, _ in speakers.values())
    for split in SPLITS:
        expected = len(speakers) * share[split] / 100
        if expected >= SKEW_MIN_EXPECTED and got[split] <= expected / 8:
            salt = f" with data.prepare.split_salt {cfg.split_salt!r}" if cfg.split_salt else ""
            raise ValueError(
                f"the speaker hash{salt} puts {got[split]} of {len(speakers)} speakers in "
                f"{split!r} (train {got['train']}, validation {got['validation']}, test "
                f"{got['test']}), where about {expected:.0f} were expected: the speakers' "
                f"ids are not spread by the hash. {WAY_OUT}"
            )
    try:  # a split given 0 % stays empty (and check_classes says so)
        return cover(speakers, v, t, tuple(s for s in SPLITS if share[s] > 0))
    except Uncoverable as err:
        counts = ", ".join(f"{s} {n}" for s, n in err.counts.items())
        raise ValueError(
            f"class {err.label!r} cannot be in split {err.split!r}: it has "
            f"{sum(err.counts.values())} speaker(s) ({counts}) and no speaker can move to "
            f"{err.split!r} without leaving a class out of its own split. A speaker-disjoint "
            f"split needs at least 3 speakers of each class: add recordings of more speakers, "
            f"check data.prepare.speaker_pattern ({cfg.speaker_pattern!r} finds "
            f"{len(speakers)} speakers in all), or give split lists (data.prepare.split: "
            "lists)"
        ) from None


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


def check_classes(
    kept: dict[str, list[Row]], classes: list[str], report: list, cfg: PrepareConfig
) -> list[str]:
    """Never drop a class silently: every class of labels.json needs training clips, and
    clips in validation and test. A hash split lacking one there is an error (``hash_split``
    covered them: its clips could not be read); the user's own lists are taken as given, with
    a warning (returned, and in the report), and ``train`` refuses an incomplete validation
    set unless told to."""
    skipped = f"{sum(a == 'skipped' for _, a, _ in report)} files skipped; see the report"
    for split in SPLITS:
        if not kept[split]:
            raise ValueError(
                f"split {split!r} is empty: too few speakers for data.prepare."
                f"validation_percentage / testing_percentage, or too many files skipped "
                f"({skipped}). {WAY_OUT}"
            )
    counts = Counter((r.split, r.label) for s in SPLITS for r in kept[s])
    lost = [c for c in classes if not counts["train", c]]
    if lost:
        raise ValueError(
            f"no usable training clips left for class(es) {', '.join(lost)} ({skipped}; "
            f"clips per split: {per_split(counts, lost)}). {WAY_OUT}"
        )
    warnings = []
    for split in ("validation", "test"):
        lost = [c for c in classes if not counts[split, c]]
        if not lost:
            continue
        if cfg.split == "hash":
            raise ValueError(
                f"split {split!r} has no usable clips of class(es) {', '.join(lost)}: the "
                f"speaker split put some there but none could be read ({skipped}; clips per "
                f"split: {per_split(counts, lost)}). Fix or replace those files"
            )
        why = f"no clips of class(es) {', '.join(lost)} (the split lists put none there)"
        report.append((split, "incomplete", why))
        warnings.append(f"{split} has {why}")
    return warnings


def per_split(counts: Counter, labels: list[str]) -> str:
    return "; ".join(f"{c}: " + ", ".join(f"{s} {counts[s, c]}" for s in SPLITS) for c in labels)
