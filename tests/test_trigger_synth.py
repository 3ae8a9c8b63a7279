"""Trigger-word data: per-step labels, synthesis of clips and negative audio, the folder
option. Tiny configs, generated signals; seconds, not minutes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from audioclf.audio_io import write_wav
from audioclf.config import ConfigError, parse
from audioclf.layout import NOISE_DIR
from audioclf.splits import which_set
from audioclf.trigger.labels import step_labels
from audioclf.trigger.synthesis import SynthesisConfig, place, split_speakers, synthetic_sources

ROOT = Path(__file__).resolve().parents[1]


def ev(kind: str, start: float, end: float) -> dict:
    return {"kind": kind, "word": "w", "speaker": "s", "start": start, "end": end}


# --- labels ---------------------------------------------------------------------------------


def test_labels_are_one_after_each_trigger_end_for_label_seconds() -> None:
    times = np.arange(1, 11) * 0.1  # 0.1 ... 1.0 s
    labels = step_labels([ev("trigger", 0.1, 0.25)], times, 0.3)
    # end < t <= end + 0.3: 0.3, 0.4, 0.5 (0.55 is past the window)
    assert labels.dtype == np.uint8 and labels.shape == times.shape
    assert labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]


def test_label_window_is_open_at_the_end_and_closed_after_label_seconds() -> None:
    times = np.array([0.5, 0.75, 1.0, 1.25])  # exact in binary
    labels = step_labels([ev("trigger", 0.0, 0.5)], times, 0.5)
    assert labels.tolist() == [0, 1, 1, 0]  # t = end: 0; t = end + label_seconds: 1


def test_negative_events_give_no_label_and_triggers_add_up() -> None:
    times = np.arange(20) * 0.25
    events = [ev("negative", 0.0, 0.5), ev("trigger", 1.0, 1.5), ev("trigger", 3.0, 3.5)]
    labels = step_labels(events, times, 0.5)
    assert np.flatnonzero(labels).tolist() == [7, 8, 15, 16]  # 1.75, 2.0, 3.75, 4.0 s
    assert step_labels(events[:1], times, 0.5).sum() == 0


def test_labels_keep_the_shape_of_step_times() -> None:
    times = np.arange(12, dtype=np.float32).reshape(3, 4) * 0.04
    labels = step_labels([ev("trigger", 0.0, 0.05)], times, 0.1)
    assert labels.shape == (3, 4) and labels.dtype == np.uint8
    assert np.flatnonzero(labels).tolist() == [2, 3]  # 0.08, 0.12 s; 0.16 is past 0.15


def test_label_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="label_seconds: must be > 0"):
        step_labels([], np.zeros(3), 0.0)


# --- synthesis ------------------------------------------------------------------------------

TINY = {
    "clip_seconds": 4.0,
    "clips": {"train": 6, "validation": 3, "test": 3},
    "triggers_per_clip": [0, 2],
    "negatives_per_clip": [0, 1],
    "speakers": {"train": 2, "validation": 1, "test": 1},
    "negative_words": ["banana", "window"],
    "trigger_takes": 2,
    "negative_takes": 1,
    "background_kinds": ["pink", "babble"],
    "bank_seconds": 3.0,
    "noise_kinds": ["white", "babble"],
    "noise_seconds": 1.0,
    "negative_minutes": 0.15,  # 9 s: two whole segments and a shorter one
    "mine_minutes": 0.1,  # 6 s: one whole segment and a shorter one
}


def tiny(**changes: object) -> dict:
    return {**TINY, **changes}


def run_stage(tmp_path: Path, data: dict, name: str = "run") -> Path:
    """stages.trigger_synth's main in a temp repo with ``trigger.data`` = ``data``."""
    from stages import trigger_synth

    repo = tmp_path / name
    repo.mkdir()
    (repo / "params.yaml").write_text(yaml.safe_dump({"trigger": {"data": data}}))
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        trigger_synth.main()
    finally:
        os.chdir(cwd)
    return repo / "data/trigger/synth"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_stage(tmp_path_factory.mktemp("synth"), {"name": "synthetic", **TINY})


def records(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / split / "events.jsonl").read_text().splitlines()]


def test_synthesis_writes_the_contracts_files(synth: Path) -> None:
    info = json.loads((synth / "info.json").read_text())
    assert info["sample_rate"] == 16000 and info["clip_seconds"] == 4.0
    assert info["word"] == "activate"
    assert info["splits"] == {"train": 6, "validation": 3, "test": 3}
    assert info["negative_seconds"] == 9.0
    speakers = info["speakers"]
    assert [len(speakers[s]) for s in ("train", "validation", "test")] == [2, 1, 1]
    assert len({s for v in speakers.values() for s in v}) == 4  # disjoint
    for split, n in info["splits"].items():
        clips = np.load(synth / split / "clips.npy")
        assert clips.dtype == np.float32 and clips.shape == (n, 64000)
        assert np.all(np.abs(clips) <= 1.0) and np.all(np.isfinite(clips))
        recs = records(synth, split)
        assert [r["clip"] for r in recs] == list(range(n))
        for r in recs:
            assert {e["speaker"] for e in r["events"]} <= set(speakers[split])
    wave, rate = sf.read(synth / "negative.wav", dtype="float32")
    assert rate == 16000 and wave.shape == (9 * 16000,)
    assert sf.info(synth / "negative.wav").subtype == "FLOAT"
    assert sorted(p.name for p in (synth / "noise").iterdir()) == ["babble_1.wav", "white_0.wav"]
    assert (synth / "report.csv").read_text() == "path,reason\n"


def test_events_never_overlap_and_lie_inside_the_clip(synth: Path) -> None:
    gap = 0.2
    for split in ("train", "validation", "test"):
        for r in records(synth, split):
            spans = [(e["start"], e["end"]) for e in r["events"]]
            assert spans == sorted(spans)
            assert all(0 <= s < e <= 4.0 for s, e in spans)
            assert all(b[0] - a[1] >= gap - 1e-9 for a, b in zip(spans, spans[1:]))
            kinds = [e["kind"] for e in r["events"]]
            assert kinds.count("trigger") <= 2 and kinds.count("negative") <= 1


def test_events_mark_where_the_words_are(synth: Path) -> None:
    """Audio is louder inside the events than just outside them (the words are where the
    events say); the clip's background alone sits at the recorded SNR below the words."""
    clips = np.load(synth / "train" / "clips.npy")
    louder = 0
    words = 0
    for r, clip in zip(records(synth, "train"), clips):
        for e in r["events"]:
            s, t = int(round(e["start"] * 16000)), int(round(e["end"] * 16000))
            inside = np.mean(clip[s:t] ** 2)
            outside = np.mean(np.concatenate([clip[max(0, s - 1600) : s], clip[t : t + 1600]]) ** 2)
            words += 1
            louder += inside > outside
    assert words > 0 and louder == words


def test_labels_from_the_recorded_events_match_the_event_ends(synth: Path) -> None:
    """Per step, by the definition (a loop over floats, not numpy); and each trigger inside the
    clip gives 12 or 13 positive steps of 40 ms (0.5 s / 0.04 s = 12.5)."""
    times = 0.04 * np.arange(1, 101)  # B's steps: 40 ms, 100 per 4 s
    triggers = 0
    for r in records(synth, "train") + records(synth, "test"):
        ends = [e["end"] for e in r["events"] if e["kind"] == "trigger"]
        labels = step_labels(r["events"], times, 0.5)
        expected = [int(any(end < t <= end + 0.5 for end in ends)) for t in times.tolist()]
        assert labels.tolist() == expected
        for end in ends:
            triggers += 1
            window = (times > end) & (times <= end + 0.5)
            assert labels[window].all() and window.sum() in ((12, 13) if end < 3.5 else range(14))
    assert triggers > 0


def test_the_negative_audio_has_no_trigger(synth: Path) -> None:
    events = [json.loads(line) for line in (synth / "negative.jsonl").read_text().splitlines()]
    assert events and all(e["kind"] == "negative" for e in events)
    assert all(e["word"] in ("banana", "window") for e in events)
    spans = [(e["start"], e["end"]) for e in events]
    assert spans == sorted(spans) and all(b[0] > a[1] for a, b in zip(spans, spans[1:]))
    assert spans[-1][1] <= 9.0
    info = json.loads((synth / "info.json").read_text())
    assert set(e["speaker"] for e in events) <= set(info["speakers"]["test"])


def mine_events(out: Path) -> list[dict]:
    """The mining audio's events (data/trigger/mining beside ``out``, data/trigger/synth)."""
    text = (out.parent / "mining" / "mine.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_the_mining_audio_is_trigger_free_and_from_training_speakers_only(synth: Path) -> None:
    """mine.wav (hard-negative mining) never holds a validation or test voice, nor a
    trigger; it is mixed on its own random stream, so it is not the negative audio's start."""
    info = json.loads((synth / "info.json").read_text())
    mining = synth.parent / "mining"
    about = json.loads((mining / "info.json").read_text())
    wave, rate = sf.read(mining / "mine.wav", dtype="float32")
    assert rate == 16000 and wave.shape == (6 * 16000,) and about["mine_seconds"] == 6.0
    assert sf.info(mining / "mine.wav").subtype == "FLOAT"
    assert about["speakers"] == info["speakers"]["train"] and about["clip_seconds"] == 4.0
    events = mine_events(synth)
    assert events and about["mine_words"] == len(events)
    assert all(e["kind"] == "negative" for e in events)
    assert {e["speaker"] for e in events} <= set(info["speakers"]["train"])
    spans = [(e["start"], e["end"]) for e in events]
    assert spans == sorted(spans) and all(b[0] > a[1] for a, b in zip(spans, spans[1:]))
    assert spans[-1][1] <= 6.0
    negative, _ = sf.read(synth / "negative.wav", dtype="float32")
    assert not np.array_equal(wave, negative[: wave.size])
    # The words are where the events say (louder than the 0.1 s around them).
    for e in events:
        s, t = int(round(e["start"] * 16000)), int(round(e["end"] * 16000))
        around = np.concatenate([wave[max(0, s - 1600) : s], wave[t : t + 1600]])
        assert np.mean(wave[s:t] ** 2) > np.mean(around**2)


def same_files(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_reruns_are_byte_identical(synth: Path, tmp_path: Path) -> None:
    again = run_stage(tmp_path, {"name": "synthetic", **TINY})
    same_files(synth, again)
    same_files(synth.parent / "mining", again.parent / "mining")


def test_more_mining_audio_leaves_the_training_and_test_data_as_they_were(
    synth: Path, tmp_path: Path
) -> None:
    """data/trigger/synth does not change with mine_minutes, so DVC does not retrain round 0;
    the mining audio gets longer, its start unchanged."""
    longer = run_stage(tmp_path, {"name": "synthetic", **tiny(mine_minutes=0.2)})
    same_files(synth, longer)
    short, _ = sf.read(synth.parent / "mining/mine.wav", dtype="float32")
    long, _ = sf.read(longer.parent / "mining/mine.wav", dtype="float32")
    assert long.shape == (12 * 16000,) and np.array_equal(long[: 4 * 16000], short[: 4 * 16000])


def test_more_workers_give_the_same_sources() -> None:
    cfg = parse(SynthesisConfig, tiny(clips={"train": 1, "validation": 1, "test": 1}), "k")
    one, noise_one = synthetic_sources(cfg, progress=False, workers=1)
    two, noise_two = synthetic_sources(cfg, progress=False, workers=2)
    for split in one:
        a, b = one[split], two[split]
        assert [u.wave.tobytes() for u in a.all] == [u.wave.tobytes() for u in b.all]
        assert a.speakers == b.speakers
    assert [w.tobytes() for _, w in noise_one] == [w.tobytes() for _, w in noise_two]


def test_validation_and_test_voices_are_held_out() -> None:
    cfg = parse(SynthesisConfig, {"speakers": {"train": 30, "validation": 8, "test": 8}}, "k")
    people = split_speakers(cfg)
    voices = {s: {p.voice for p in people[s]} for s in people}
    assert not voices["train"] & voices["validation"]
    assert not (voices["train"] | voices["validation"]) & voices["test"]
    assert [len(people[s]) for s in ("train", "validation", "test")] == [30, 8, 8]


def test_placement_is_exact_and_refuses_what_does_not_fit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = list(rng.integers(1, 50, size=rng.integers(0, 5)))
        offsets = place(lengths, 300, 7, rng)
        ends = [o + n for o, n in zip(offsets, lengths)]
        assert all(o >= 0 for o in offsets) and all(e <= 300 for e in ends)
        assert all(b - a >= 7 for a, b in zip(ends, offsets[1:]))
    assert place([100, 100, 100], 302, 1, rng) == [0, 101, 202]
    with pytest.raises(ValueError, match="do not fit"):
        place([100, 100, 100], 301, 1, rng)


def test_words_that_do_not_fit_fail_naming_the_keys(tmp_path: Path) -> None:
    data = {"name": "synthetic", **tiny(clip_seconds=1.0, triggers_per_clip=[3, 3])}
    with pytest.raises(ValueError, match="lower triggers_per_clip / negatives_per_clip"):
        run_stage(tmp_path, data)
    assert not (tmp_path / "run/data/trigger/synth").exists()  # nothing half-written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clips": {"train": 5, "test": 1}}, r"trigger.data.clips: give the clips of exactly"),
        ({"triggers_per_clip": [0, 0]}, r"trigger.data.triggers_per_clip: the high end"),
        ({"negative_words": ["activate"]}, r"trigger.data.negative_words: must not hold"),
        ({"snr_db": [10, 0]}, r"trigger.data.snr_db: must be \[low, high\]"),
        ({"label_seconds": 0}, r"trigger.data.label_seconds: must be in \(0, 5\]"),
        ({"nosie_kinds": ["white"]}, r"trigger.data.nosie_kinds: unknown option"),
        ({"mine_minutes": 0.05}, r"trigger.data.mine_minutes: must be in \[clip_seconds / 60"),
    ],
)
def test_bad_values_fail_naming_the_key(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(SynthesisConfig, {**TINY, **change}, "trigger.data")


def test_the_default_config_validates() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = parse(SynthesisConfig, params["trigger"]["data"], "trigger.data")
    assert cfg.word == "activate" and cfg.clip_samples == 160000
    assert cfg.label_seconds == 0.5 and cfg.negative_minutes == 5.0


# --- the folder option ----------------------------------------------------------------------


def hashed_speakers(split: str, n: int, salt: str = "") -> list[str]:
    """``n`` speaker ids that audioclf.splits puts in ``split`` (10 % / 10 %)."""
    out, i = [], 0
    while len(out) < n:
        name = f"{salt}{i:08x}"
        if which_set(f"x/{name}_nohash_0.wav", 10.0, 10.0) == split:
            out.append(name)
        i += 1
    return out


def tone_word(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A 1-s recording: a tone burst of ``seconds`` in quiet noise (a stand-in word)."""
    wave = 0.001 * rng.standard_normal(16000)
    n = int(seconds * 16000)
    start = int(rng.integers(0, 16000 - n))
    t = np.arange(n) / 16000
    wave[start : start + n] += 0.5 * np.sin(2 * np.pi * rng.uniform(200, 800) * t)
    return wave.astype(np.float32)


def make_folder(root: Path, test_speakers: int = 1) -> Path:
    """A Speech-Commands-like folder: right/ (trigger), left/ and up/ (negatives), noise,
    one unreadable file; speakers hashed into every split (test: ``test_speakers``)."""
    rng = np.random.default_rng(5)
    speakers = hashed_speakers("train", 3) + hashed_speakers("validation", 1)
    speakers += hashed_speakers("test", test_speakers)
    for word, seconds in (("right", 0.5), ("left", 0.4), ("up", 0.3)):
        (root / word).mkdir(parents=True)
        for s in speakers:
            write_wav(root / word / f"{s}_nohash_0.wav", tone_word(rng, seconds), 16000)
    (root / "left" / "deadbeef_nohash_1.wav").write_bytes(b"RIFF not really a wav")
    (root / NOISE_DIR).mkdir()
    write_wav(root / NOISE_DIR / "hum.wav", 0.1 * rng.standard_normal(16000 * 20), 16000)
    return root


FOLDER = {
    k: v
    for k, v in TINY.items()
    if k in ("clip_seconds", "clips", "negative_minutes", "mine_minutes")
}


def test_the_folder_option_gives_the_same_outputs_from_real_recordings(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "sc")
    data = {"name": "folder", "path": str(root), "word": "right", **FOLDER}
    out = run_stage(tmp_path, data)
    info = json.loads((out / "info.json").read_text())
    assert info["word"] == "right" and info["source"] == "folder"
    assert [len(info["speakers"][s]) for s in ("train", "validation", "test")] == [3, 1, 1]
    assert info["skipped"] == 1
    report = (out / "report.csv").read_text().splitlines()
    assert report[0] == "path,reason" and report[1].startswith("left/deadbeef_nohash_1.wav,")
    assert len(report) == 2
    for split in ("train", "validation", "test"):
        clips = np.load(out / split / "clips.npy")
        assert clips.dtype == np.float32 and clips.shape == (info["splits"][split], 64000)
        for r in records(out, split):
            for e in r["events"]:
                assert (
                    e["word"] == "right" if e["kind"] == "trigger" else e["word"] in ("left", "up")
                )
                # the trimmed tone: 0.5 s, 0.4 s or 0.3 s long (+- a sample)
                assert (
                    abs(e["end"] - e["start"] - {"right": 0.5, "left": 0.4, "up": 0.3}[e["word"]])
                    < 1e-3
                )
                assert e["speaker"] in info["speakers"][split]
            assert r["background"] == "hum"
    assert sorted(p.name for p in (out / "noise").iterdir()) == ["hum.wav"]
    events = [json.loads(line) for line in (out / "negative.jsonl").read_text().splitlines()]
    assert all(e["kind"] == "negative" for e in events)
    # The mining audio: the train split's negatives only, over its part of the backgrounds.
    mined = mine_events(out)
    assert mined and all(e["kind"] == "negative" for e in mined)
    assert {e["speaker"] for e in mined} <= set(info["speakers"]["train"])
    assert sf.info(out.parent / "mining/mine.wav").frames == 6 * 16000


def test_a_split_without_a_trigger_speaker_fails_naming_the_key(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "sc", test_speakers=0)
    data = {"name": "folder", "path": str(root), "word": "right", **FOLDER}
    with pytest.raises(ConfigError, match=r"trigger.data.testing_percentage: no trigger recording"):
        run_stage(tmp_path, data)


def test_a_missing_word_folder_fails_listing_the_folders(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "sc")
    data = {"name": "folder", "path": str(root), "word": "activate", **FOLDER}
    with pytest.raises(
        ConfigError, match=r"trigger.data.word: no folder 'activate'.*left, right, up"
    ):
        run_stage(tmp_path, data)


def test_split_salt_draws_another_speaker_split(tmp_path: Path) -> None:
    """A folder whose speakers the plain rule puts in train and validation only (as
    speech_commands_v001_subset): it fails; with split_salt every split gets its speakers."""
    rng = np.random.default_rng(6)

    def split(name: str, salt: str) -> str:
        return which_set(f"x/{name}_nohash_0.wav", 10.0, 10.0, salt=salt)

    speakers, i = [], 0
    for wanted in ("train", "train", "validation", "test"):
        while split(name := f"{i:08x}", "s") != wanted or split(name, "") == "test":
            i += 1
        speakers.append(name)
        i += 1
    root = tmp_path / "sc"
    for word in ("right", "left"):
        (root / word).mkdir(parents=True)
        for s in speakers:
            write_wav(root / word / f"{s}_nohash_0.wav", tone_word(rng, 0.4), 16000)
    (root / NOISE_DIR).mkdir()
    write_wav(root / NOISE_DIR / "hum.wav", 0.1 * rng.standard_normal(16000 * 20), 16000)
    data = {"name": "folder", "path": str(root), "word": "right", **FOLDER}
    with pytest.raises(ConfigError, match=r"testing_percentage: .*split_salt"):
        run_stage(tmp_path, data, "plain")
    out = run_stage(tmp_path, {**data, "split_salt": "s"}, "salted")
    info = json.loads((out / "info.json").read_text())
    assert info["speakers"] == {
        "train": sorted(speakers[:2]),
        "validation": [speakers[2]],
        "test": [speakers[3]],
    }
