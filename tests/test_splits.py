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


# --- salt and cover: every class in every split --------------------------------------------

# Ten speakers, two classes: the plain hash (10 % / 10 %) puts f4 and m5 in test, m3 alone in
# validation (positions: f3 26.46, f0 33.99, f2 73.29, f1 79.04; m3 5.12).
FEMALE = ("f0", "f1", "f2", "f3", "f4")
MALE = ("m0", "m1", "m2", "m3", "m5")


def ten_speakers() -> dict[str, tuple[float, frozenset[str]]]:
    return {
        s: (splits.position(s), frozenset({"female" if s[0] == "f" else "male"}))
        for s in FEMALE + MALE
    }


def test_empty_salt_is_the_plain_rule_and_a_salt_is_another_stable_draw() -> None:
    names = [f"{i:08x}_nohash_0.wav" for i in range(200)]
    plain = [splits.which_set(n, 10, 10) for n in names]
    assert [splits.which_set(n, 10, 10, salt="") for n in names] == plain
    salted = [splits.which_set(n, 10, 10, salt="2") for n in names]
    assert salted != plain and salted == [splits.which_set(n, 10, 10, salt="2") for n in names]
    key = int(hashlib.sha1(b"2/00000007").hexdigest(), 16) % (2**27)
    assert splits.position("00000007", "2") == key * (100.0 / (2**27 - 1))


def test_cover_moves_nothing_when_the_hash_holds_every_class() -> None:
    speakers = {f"{i:08x}": (splits.position(f"{i:08x}"), frozenset({"a", "b"})) for i in range(60)}
    split_of, moves = splits.cover(speakers, 10, 10)
    assert moves == []
    assert split_of == {s: splits.split_at(at, 10, 10) for s, (at, _) in speakers.items()}


def test_cover_moves_the_speaker_nearest_the_split_that_lacks_a_class() -> None:
    speakers = ten_speakers()
    plain = {s: splits.split_at(at, 10, 10) for s, (at, _) in speakers.items()}
    assert [s for s in plain if plain[s] == "validation"] == ["m3"]  # no female there
    split_of, moves = splits.cover(speakers, 10, 10)
    assert moves == [splits.Move("f3", "train", "validation", ("female",))]
    assert split_of == plain | {"f3": "validation"}
    for split in SPLITS:
        assert {next(iter(speakers[s][1])) for s in split_of if split_of[s] == split} == {
            "female",
            "male",
        }
    # Stable when data is added: more speakers whose hash already covers nothing new
    # (train) leave the split as it was.
    more = speakers | {f"f{i}": (splits.position(f"f{i}"), frozenset({"female"})) for i in (6, 7)}
    assert {splits.split_at(more[s][0], 10, 10) for s in ("f6", "f7")} == {"train"}
    assert splits.cover(more, 10, 10)[1] == moves


def test_cover_names_the_class_split_and_counts_when_it_cannot() -> None:
    speakers = {s: v for s, v in ten_speakers().items() if s not in ("f0", "f1", "f2", "f3")}
    with pytest.raises(splits.Uncoverable) as info:
        splits.cover(speakers, 10, 10)  # one female speaker (f4, test) for three splits
    err = info.value
    assert (err.label, err.split, err.counts) == (
        "female",
        "train",
        {"train": 0, "validation": 0, "test": 1},
    )


def _rows(spec: dict[str, dict[str, int]]) -> list:
    """Train rows: {label: {speaker: recordings}}, in a scrambled order."""
    from audioclf.manifest import Row

    rows = [
        Row("train", label, f"{label}/{sp}_nohash_{k}.wav", sp, label)
        for label, speakers in spec.items()
        for sp, count in speakers.items()
        for k in range(count)
    ]
    return [rows[i] for i in np.random.default_rng(7).permutation(len(rows))]


def test_few_shot_keeps_at_most_n_per_class_whole_speakers_first_reproducibly() -> None:
    from collections import Counter

    from audioclf.layout import SILENCE, UNKNOWN
    from audioclf.manifest import Row, few_shot

    spec = {
        "yes": {f"s{i:02d}": 1 + i % 4 for i in range(20)},  # 50 clips, 20 speakers
        "no": {"a": 3, "b": 3, "c": 2},  # 8: fewer than n, all kept
    }
    words = _rows(spec)
    # As prepare writes a split: the commands, then the unknown and silence picks.
    extras = [Row("train", UNKNOWN, f"bed/u{i}_nohash_0.wav", f"u{i}", "bed") for i in range(6)]
    extras += [Row("train", SILENCE, "noise.wav", "", f"noise@{i}") for i in range(6)]
    rows = words + extras

    def labels(kept: list[int]) -> Counter:
        return Counter(rows[i].label for i in kept)

    kept = few_shot(rows, 10, 1, 10.0, 20.0)
    assert kept == sorted(kept)
    # 18 commands kept: 10 % unknown -> 2, 20 % silence -> 4 (the first ones: random picks).
    assert labels(kept) == {"yes": 10, "no": 8, UNKNOWN: 2, SILENCE: 4}
    assert [rows[i] for i in kept if rows[i].label == SILENCE] == extras[6:10]
    # Whole speakers first: at most one speaker of "yes" is partly kept.
    per_speaker = Counter(rows[i].speaker for i in kept if rows[i].label == "yes")
    assert len([sp for sp, n in per_speaker.items() if n < spec["yes"][sp]]) <= 1
    # Reproducible, independent of the row order and of the other classes; another seed
    # picks other speakers.
    paths = {rows[i].path for i in kept if rows[i].label == "yes"}
    backwards = rows[::-1]
    assert {backwards[i].path for i in few_shot(backwards, 10, 1, 10.0, 20.0)} >= paths
    yes_only = [r for r in words if r.label == "yes"]
    assert {yes_only[i].path for i in few_shot(yes_only, 10, 1, 0, 0)} == paths
    assert {yes_only[i].path for i in few_shot(yes_only, 10, 2, 0, 0)} != paths
    assert len(few_shot(yes_only, 1000, 1, 0, 0)) == len(yes_only)


def test_max_train_per_class_is_checked() -> None:
    from audioclf.config import ConfigError, parse
    from audioclf.manifest import PrepareConfig

    assert parse(PrepareConfig, {"max_train_per_class": 5}, "data.prepare").max_train_per_class == 5
    with pytest.raises(ConfigError, match=r"data.prepare.max_train_per_class: must be null .* 0"):
        parse(PrepareConfig, {"max_train_per_class": 0}, "data.prepare")


def test_a_numeric_salt_from_the_command_line_is_its_text() -> None:
    """`-S data.prepare.split_salt=1` (the README's command) reaches the schema as the int 1."""
    from audioclf.config import parse
    from audioclf.manifest import PrepareConfig

    assert parse(PrepareConfig, {"split_salt": 1}, "data.prepare").split_salt == "1"
    assert parse(PrepareConfig, {"split_salt": "1"}, "data.prepare").split_salt == "1"
