"""Speaker-disjoint splits, label sets and silence windows."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from audioclf import splits
from audioclf.layout import SPLITS


def test_which_set_matches_tensorflow_rule_and_keeps_speakers_together() -> None:
    # Values computed with TensorFlow's speech_commands input_data.which_set (10 %, 10 %).
    names = [f"{i:08x}_nohash_{k}.wav" for i in range(300) for k in range(3)]
    sets = [splits.which_set(n, 10, 10) for n in names]
    for i in range(300):
        assert len(set(sets[3 * i : 3 * i + 3])) == 1  # a speaker never straddles splits
    counts = {s: sets.count(s) / 3 for s in SPLITS}
    assert 200 <= counts["train"] <= 280 and counts["validation"] > 10 and counts["test"] > 10
    assert splits.speaker_of("yes/3c4aa5ef_nohash_12.wav") == "3c4aa5ef"


def test_which_set_exact_hash() -> None:

    h = int(hashlib.sha1(b"0000abcd").hexdigest(), 16) % (2**27) * (100.0 / (2**27 - 1))
    expected = "validation" if h < 10 else "test" if h < 20 else "train"
    assert splits.which_set("0000abcd_nohash_0.wav", 10, 10) == expected


def test_class_names_and_extra_counts() -> None:
    assert splits.class_names(("yes", "no")) == ["_silence_", "_unknown_", "yes", "no"]
    assert splits.extra_count(95, 10) == 10  # ceil(9.5)
    assert splits.extra_count(0, 10) == 0


def test_split_bounds_cover_recording_without_overlap() -> None:
    b = splits.split_bounds(1000, 10, 20)
    assert b == {"train": (0, 700), "validation": (700, 800), "test": (800, 1000)}


def test_silence_windows_stay_inside_their_segment() -> None:
    rng = np.random.default_rng(0)
    w = splits.silence_windows({"a": (100, 300), "b": (0, 50)}, 20, 100, rng)
    assert len(w) == 20 and {x.name for x in w} == {"a"}
    assert all(100 <= x.start <= 200 and 0 <= x.gain < 1 for x in w)
    with pytest.raises(ValueError, match="silence_percentage: 0"):
        splits.silence_windows({"b": (0, 50)}, 1, 100, rng)
