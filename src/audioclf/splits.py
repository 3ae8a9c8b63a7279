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


def which_set(
    filename: str,
    validation_percentage: float,
    testing_percentage: float,
    pattern: str = NOHASH,
) -> str:
    """'train', 'validation' or 'test' for a clip, stable across dataset growth."""
    hashed = hashlib.sha1(speaker_of(filename, pattern).encode("utf-8")).hexdigest()
    percentage = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < testing_percentage + validation_percentage:
        return "test"
    return "train"


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
