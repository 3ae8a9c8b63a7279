"""Speaker-disjoint splits and the label sets of keyword-spotting tasks.

``which_set`` is the rule of TensorFlow's speech_commands example (input_data.py): the
speaker (by default the part of the file name before ``_nohash_``) is hashed, so every clip of
a speaker lands in the same split, and adding new clips never moves old ones between splits.
Other datasets name the speaker differently; ``speaker_of`` takes a regular expression whose
first group is the speaker (e.g. ``^\\d+_([a-z]+)_`` for ``7_george_12.wav``).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioclf.layout import SILENCE, UNKNOWN

MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, as in TensorFlow's example
NOHASH = r"^(.+?)_nohash_"  # Speech Commands: <speaker>_nohash_<n>.wav


def speaker_of(filename: str, pattern: str = NOHASH) -> str:
    """The speaker id in a file name: ``pattern``'s first group, searched in the name without
    its folder and extension; the whole stem when it does not match (a speaker of its own).

    ``"yes/3c4aa5ef_nohash_0.wav"`` -> ``"3c4aa5ef"``.
    """
    stem = filename.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    match = re.search(pattern, stem)
    return match.group(1) if match else stem


def position(speaker: str, salt: str = "") -> float:
    """Where a speaker's hash falls in [0, 100]: TensorFlow's rule on the speaker id, or on
    ``salt/speaker`` with a salt (a different, equally stable draw; "" is the plain rule)."""
    key = f"{salt}/{speaker}" if salt else speaker
    hashed = hashlib.sha1(key.encode("utf-8")).hexdigest()
    return (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)


def split_at(percentage: float, validation_percentage: float, testing_percentage: float) -> str:
    """The split of a hash position: [0, v) validation, [v, v + t) test, the rest train."""
    if percentage < validation_percentage:
        return "validation"
    if percentage < testing_percentage + validation_percentage:
        return "test"
    return "train"


def which_set(
    filename: str,
    validation_percentage: float,
    testing_percentage: float,
    pattern: str = NOHASH,
    salt: str = "",
) -> str:
    """'train', 'validation' or 'test' for a clip, stable across dataset growth."""
    at = position(speaker_of(filename, pattern), salt)
    return split_at(at, validation_percentage, testing_percentage)


def distance(percentage: float, split: str, validation_percentage: float, testing_percentage):
    """How far a hash position is from ``split``'s range (0 inside it)."""
    v, t = validation_percentage, testing_percentage
    lo, hi = {"validation": (0.0, v), "test": (v, v + t), "train": (v + t, 100.0)}[split]
    return max(lo - percentage, percentage - hi, 0.0)


@dataclass(frozen=True)
class Move:
    """A speaker taken out of its hash split so that ``to`` holds the classes ``labels``."""

    speaker: str
    hashed: str  # the split the hash rule gave
    to: str
    labels: tuple[str, ...]  # the classes ``to`` lacked and now holds (sorted)


class Uncoverable(ValueError):
    """No speaker-disjoint split puts ``label`` in ``split``; ``counts``: its speakers per split."""

    def __init__(self, label: str, split: str, counts: dict[str, int]) -> None:
        self.label, self.split, self.counts = label, split, counts
        super().__init__(f"class {label!r} cannot be put in split {split!r}")


def cover(
    speakers: dict[str, tuple[float, frozenset[str]]],
    validation_percentage: float,
    testing_percentage: float,
    splits: tuple[str, ...] = ("train", "validation", "test"),
) -> tuple[dict[str, str], list[Move]]:
    """Speaker -> split by the hash rule, then the fewest moves that put every class in every
    split: {speaker: split}, the moves made.

    ``speakers`` maps each speaker to (its hash position, the classes it has clips of). For
    each split (train first) and class (sorted) the hash leaves out, the speaker of that class
    whose position is nearest the split's range moves there, among those whose own split keeps
    another speaker of each of their classes (so a pair once covered stays covered). Nothing
    moves when the hash already covers every pair, so the plain rule's splits are kept as
    they are; adding data moves a speaker only where the cover changes (a new speaker of the
    class hashes into the split, and the moved one goes back, or is nearer and moves instead).
    ``Uncoverable`` when no speaker can move (too few speakers of the class).
    """
    v, t = validation_percentage, testing_percentage
    split_of = {s: split_at(at, v, t) for s, (at, _) in speakers.items()}
    count = {split: {} for split in splits}  # speakers per (split, class)
    for s, (_, labels) in speakers.items():
        for label in labels:
            count[split_of[s]][label] = count[split_of[s]].get(label, 0) + 1
    labels = sorted({label for _, ls in speakers.values() for label in ls})
    moves = []
    for split in splits:
        for label in labels:
            if count[split].get(label):
                continue
            donors = [
                s
                for s in sorted(speakers)
                if label in speakers[s][1]
                and split_of[s] != split
                and all(count[split_of[s]][k] >= 2 for k in speakers[s][1])
            ]
            if not donors:
                have = {x: count[x].get(label, 0) for x in splits}
                raise Uncoverable(label, split, have)
            pick = min(donors, key=lambda s: (distance(speakers[s][0], split, v, t), s))
            gained = tuple(sorted(k for k in speakers[pick][1] if not count[split].get(k)))
            for k in speakers[pick][1]:
                count[split_of[pick]][k] -= 1
                count[split][k] = count[split].get(k, 0) + 1
            moves.append(Move(pick, split_at(speakers[pick][0], v, t), split, gained))
            split_of[pick] = split
    return split_of, moves


def class_names(
    commands: tuple[str, ...] | list[str], silence: bool = True, unknown: bool = True
) -> list[str]:
    """Label ids: silence, unknown (each when the task has it), then the commands in order.

    With both, 0 is silence and 1 unknown, as in TensorFlow's example.
    """
    return [*([SILENCE] if silence else []), *([UNKNOWN] if unknown else []), *commands]


def read_list(path: str | Path) -> set[str]:
    """The clip paths in a Speech Commands split list (``validation_list.txt``): one path
    relative to the dataset folder per line, e.g. ``right/bb05582b_nohash_3.wav``."""
    with open(path, encoding="utf-8") as f:
        return {line.strip().replace("\\", "/") for line in f if line.strip()}


def listed_set(path: str, validation: set[str], testing: set[str]) -> str:
    """'train', 'validation' or 'test' for a clip by the official lists (unlisted: train)."""
    if path in testing:
        return "test"
    if path in validation:
        return "validation"
    return "train"


def extra_count(n_word_clips: int, percentage: float) -> int:
    """How many silence (or unknown) clips go with ``n_word_clips`` command clips."""
    return int(math.ceil(n_word_clips * percentage / 100))


def shuffled(items: list, rng: np.random.Generator) -> list:
    """``items`` in a seeded random order (the order unknown-word clips are picked in)."""
    return [items[i] for i in rng.permutation(len(items))]


@dataclass(frozen=True)
class Window:
    """A silence clip: ``n`` samples of noise recording ``name`` from ``start``, times ``gain``."""

    name: str
    start: int
    gain: float


def split_bounds(n_samples: int, validation_percentage: float, testing_percentage: float):
    """Cut one noise recording in time: [train | validation | test] sample ranges.

    Splitting each recording (rather than hashing whole files) keeps every noise type in
    every split while no sample is shared between splits.
    """
    n_val = int(n_samples * validation_percentage / 100)
    n_test = int(n_samples * testing_percentage / 100)
    n_train = n_samples - n_val - n_test
    return {
        "train": (0, n_train),
        "validation": (n_train, n_train + n_val),
        "test": (n_train + n_val, n_samples),
    }


def silence_windows(
    segments: dict[str, tuple[int, int]], n: int, clip_samples: int, rng: np.random.Generator
) -> list[Window]:
    """``n`` random clip-long windows inside the given (start, end) segments of each recording.

    The gain is uniform in [0, 1), as TensorFlow's example scales its silence by a random
    background volume, so silence ranges from near-digital silence to full-level noise.
    """
    usable = {k: (a, b) for k, (a, b) in sorted(segments.items()) if b - a >= clip_samples}
    if n and not usable:
        raise ValueError(
            f"no background-noise segment is at least {clip_samples} samples long; "
            "add longer recordings or set data.prepare.silence_percentage: 0"
        )
    names = list(usable)
    windows = []
    for _ in range(n):
        name = names[int(rng.integers(len(names)))]
        a, b = usable[name]
        start = int(rng.integers(a, b - clip_samples + 1))
        windows.append(Window(name, start, float(rng.uniform(0.0, 1.0))))
    return windows
