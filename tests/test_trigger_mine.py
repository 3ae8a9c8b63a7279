"""Hard-negative mining, by layer: the config group, the pure helpers (which false accepts
are kept, where their windows fall, the next round's labels), then the trigger_mine and
trigger_finetune stages on generated audio with a hand-built detector whose false accepts
are known (tone bursts planted at known times), and the disabled path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from audioclf.config import ConfigError, parse
from audioclf.trigger.detection import Event
from audioclf.trigger.mining import (
    MineConfig,
    keep,
    nearest_word,
    place_windows,
    subset,
    with_hard_negatives,
)
from tests.test_config import composed
from tests.test_trigger_e2e import BURST, burst_wave

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
CLIP = 10 * RATE  # the hand-built detector's clip (detector.json: clip_seconds 10)

# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["default", "none"])
def test_every_mine_option_composes_and_validates(option: str) -> None:
    mine = composed([f"trigger/mine={option}"])["trigger"]["mine"]
    cfg = parse(MineConfig, mine, "trigger.mine")
    assert cfg.name == option
    assert cfg.enabled is (option == "default")
    assert composed()["trigger"]["mine"]["name"] == "default"  # on by default


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threshold": 1.5}, r"trigger.mine.threshold: must be in \[0, 1\]"),
        ({"epochs": -1}, r"trigger.mine.epochs: must be >= 0 \(0 = mining off\)"),
        ({"max_clips": 0}, r"trigger.mine.max_clips: must be >= 1"),
        ({"train_clips": 0}, r"trigger.mine.train_clips: must be >= 1 or null"),
        ({"treshold": 0.2}, r"trigger.mine.treshold: unknown option"),
    ],
)
def test_bad_mine_values_fail_naming_the_key(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(MineConfig, change, "trigger.mine")


# --- pure helpers ----------------------------------------------------------------------------


def test_keep_takes_the_highest_scores_in_time_order() -> None:
    events = [Event(1.0, 0.6), Event(3.0, 0.9), Event(5.0, 0.6), Event(7.0, 0.8)]
    assert keep(events, 10) == [0, 1, 2, 3]
    assert keep(events, 2) == [1, 3]
    assert keep(events, 3) == [0, 1, 3]  # equal scores: the earlier


def test_windows_hold_the_false_accept_in_their_last_half_inside_the_audio() -> None:
    times = [0.5, 7.0, 30.0, 59.9]
    starts = place_windows(times, [0, 1, 2, 3], 60 * RATE, CLIP, RATE, seed=3)
    assert all(isinstance(s, int) for s in starts)
    for t, s in zip(times, starts):
        assert 0 <= s <= 60 * RATE - CLIP
        at = round(t * RATE)
        assert s < at <= s + CLIP  # the step's end lies inside the window
        if CLIP // 2 <= at <= 60 * RATE - CLIP // 2:  # not moved at an edge
            assert at - s >= CLIP // 2
    assert starts[0] == 0  # 0.5 s: the window starts at the audio's start
    assert starts == place_windows(times, [0, 1, 2, 3], 60 * RATE, CLIP, RATE, seed=3)
    assert starts != place_windows(times, [0, 1, 2, 3], 60 * RATE, CLIP, RATE, seed=4)
    # A window depends on its false accept's key, not on the others kept.
    assert place_windows([30.0], [2], 60 * RATE, CLIP, RATE, seed=3) == [starts[2]]
    with pytest.raises(ValueError, match="raise trigger.data.mine_minutes"):
        place_windows([1.0], [0], CLIP - 1, CLIP, RATE, seed=3)


def test_nearest_word_is_the_word_that_just_ended() -> None:
    words = [{"word": "actor", "start": 1.0, "end": 1.6}, {"word": "vacate", "start": 3.0,
             "end": 3.7}]  # fmt: skip
    assert nearest_word(words, 1.5) == "actor"  # during the word
    assert nearest_word(words, 2.9) == "actor"
    assert nearest_word(words, 3.9) == "vacate"
    assert nearest_word(words, 0.5) is None and nearest_word(words, 5.5) is None


def test_subset_is_seeded_sorted_and_without_repeats() -> None:
    rows = subset(100, 30, seed=7)
    assert rows.dtype == np.int64 and rows.shape == (30,)
    assert np.all(np.diff(rows) > 0) and rows.max() < 100
    assert np.array_equal(rows, subset(100, 30, seed=7))
    assert not np.array_equal(rows, subset(100, 30, seed=8))
    assert np.array_equal(subset(5, None, 7), np.arange(5))
    assert np.array_equal(subset(5, 9, 7), np.arange(5))


def test_mined_clips_are_labelled_all_zero() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 100, 40)).astype(np.float32)
    y = (rng.random((4, 25)) < 0.3).astype(np.uint8)
    mined = rng.standard_normal((3, 100, 40)).astype(np.float32)
    x2, y2 = with_hard_negatives(x, y, mined)
    assert x2.shape == (7, 100, 40) and x2.dtype == np.float32
    assert y2.shape == (7, 25) and y2.dtype == np.uint8
    assert np.array_equal(x2[4:], mined) and np.array_equal(y2[:4], y)
    assert not y2[4:].any()
    with pytest.raises(ValueError, match="training-clip length"):
        with_hard_negatives(x, y, mined[:, :50])


# --- the stages ------------------------------------------------------------------------------

# Planted in 60 s of quiet noise: loud 0.6-s tone bursts (the hand-built detector's score ~1
# while they last: false accepts at any threshold), medium ones (its per-step score ~0.3:
# found only below the detection threshold, as mining is meant to) and quiet ones (~0.01).
LOUD = [(4.0, "activity"), (21.3, "captivate"), (57.5, "actor")]
MEDIUM = [(33.0, "motivate")]
QUIET = [(12.0, "banana"), (45.0, "window")]
AMPLITUDE = {"loud": 0.5, "medium": 0.09, "quiet": 0.02}


def make_mining_repo(root: Path, mine: dict) -> Path:
    """A repository as trigger_train leaves it: params.yaml (``trigger.mine`` updated with
    ``mine``), data/trigger/mining/ (info.json, mine.wav, mine.jsonl) and round 0's
    detector."""
    from stages.trigger_synth import write_float_wav
    from tests.test_trigger_detect import energy_detector

    params = composed()
    params["trigger"]["mine"] |= mine
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    mining = root / "data/trigger/mining"
    mining.mkdir(parents=True)
    bursts = [(t, AMPLITUDE[k]) for k, ws in (("loud", LOUD), ("medium", MEDIUM),
              ("quiet", QUIET)) for t, _ in ws]  # fmt: skip
    write_float_wav(mining / "mine.wav", burst_wave(60.0, bursts, np.random.default_rng(1)), RATE)
    words = sorted(LOUD + MEDIUM + QUIET)
    lines = [{"kind": "negative", "word": w, "speaker": "s1", "start": t, "end": t + BURST}
             for t, w in words]  # fmt: skip
    (mining / "mine.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    info = {"sample_rate": RATE, "clip_seconds": 10.0, "mine_seconds": 60.0}
    (mining / "info.json").write_text(json.dumps(info))
    round0 = energy_detector(root / "data/trigger/round0")
    (round0 / "history.csv").write_text("epoch,loss,val_loss\n1,0.5,0.6\n")
    summary = {"model": "energy", "train_seconds": 1.0, "epochs_run": 1, "best_epoch": 1,
               "positive_weight": 5.0}  # fmt: skip
    (round0 / "summary.json").write_text(json.dumps(summary))
    (round0 / "model.keras").write_bytes((round0 / "detector.keras").read_bytes())
    return root


def run_main(repo: Path, module: str) -> None:
    import importlib

    cwd = os.getcwd()
    os.chdir(repo)
    try:
        importlib.import_module(f"stages.{module}").main()
    finally:
        os.chdir(cwd)


def mined(repo: Path) -> tuple[np.ndarray, list[dict], dict]:
    out = repo / "data/trigger/mined"
    records = [json.loads(line) for line in (out / "mined.jsonl").read_text().splitlines()]
    return np.load(out / "clips.npy"), records, json.loads((out / "summary.json").read_text())


def test_mining_finds_the_planted_false_accepts_and_cuts_exactly_their_clips(tmp_path) -> None:
    import soundfile as sf

    repo = make_mining_repo(tmp_path / "a", {"threshold": 0.25, "seed": 11})
    run_main(repo, "trigger_mine")
    clips, records, summary = mined(repo)
    planted = sorted(LOUD + MEDIUM)  # the quiet bursts stay below the threshold
    assert summary["enabled"] is True and summary["threshold"] == 0.25
    assert summary["false_accepts"] == summary["clips"] == len(planted) == len(records)
    assert summary["mine_seconds"] == 60.0
    assert summary["fa_per_hour"] == pytest.approx(len(planted) * 60.0)
    assert clips.dtype == np.float32 and clips.shape == (len(planted), CLIP)
    wave, _ = sf.read(repo / "data/trigger/mining/mine.wav", dtype="float32")
    for i, (r, (start, word)) in enumerate(zip(records, planted)):
        # Smoothed over 5 steps of 40 ms, it fires a few steps into the 0.6-s burst.
        assert start < r["time"] <= start + BURST, (r, start)
        assert (r["clip"], r["false_accept"], r["word"], r["source"]) == (i, i, word, "mine.wav")
        first = round(r["start"] * RATE)
        assert np.array_equal(clips[i], wave[first : first + CLIP])  # exactly that window
        assert r["offset"] == pytest.approx(r["time"] - r["start"])
        assert 0 < r["offset"] <= 10.0
        if 5.0 <= r["time"] <= 55.0:  # not moved at an edge: in the clip's last half
            assert r["offset"] >= 5.0
        assert 0.0 <= r["score"] <= 1.0
    # The medium burst is found only because the mining threshold is below detection's.
    medium = [r for r in records if r["word"] == "motivate"]
    assert len(medium) == 1 and medium[0]["score"] < 0.5

    # Same params, byte-identical outputs.
    again = make_mining_repo(tmp_path / "b", {"threshold": 0.25, "seed": 11})
    run_main(again, "trigger_mine")
    for name in ("clips.npy", "mined.jsonl", "summary.json"):
        a = (repo / "data/trigger/mined" / name).read_bytes()
        assert a == (again / "data/trigger/mined" / name).read_bytes(), name

    # At most 2 clips: the 2 highest-scoring false accepts, with the same windows.
    two = make_mining_repo(tmp_path / "c", {"threshold": 0.25, "seed": 11, "max_clips": 2})
    run_main(two, "trigger_mine")
    clips2, records2, summary2 = mined(two)
    assert (summary2["false_accepts"], summary2["clips"]) == (len(planted), 2)
    top = sorted(sorted(range(len(records)), key=lambda i: -records[i]["score"])[:2])
    assert [r["false_accept"] for r in records2] == top
    assert np.array_equal(clips2, clips[top])


def stage_in_subprocess(repo: Path, module: str) -> str:
    """Run a stage as DVC does (a fresh process); its stdout, then whether TensorFlow was
    imported."""
    code = (
        "import runpy, sys; "
        f"runpy.run_module('stages.{module}', run_name='__main__'); "
        "print('tensorflow imported:', 'tensorflow' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{repo}/m.db"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_with_mining_off_the_final_model_is_round_0s_without_tensorflow(tmp_path) -> None:
    repo = make_mining_repo(tmp_path / "off", {"epochs": 0})
    out = stage_in_subprocess(repo, "trigger_mine")
    assert "mining off" in out and "tensorflow imported: False" in out
    clips, records, summary = mined(repo)
    assert clips.shape == (0, CLIP) and clips.dtype == np.float32 and records == []
    assert summary["enabled"] is False and summary["clips"] == 0

    out = stage_in_subprocess(repo, "trigger_finetune")
    assert "round 0's detector unchanged" in out and "tensorflow imported: False" in out
    round0, final = repo / "data/trigger/round0", repo / "data/trigger/model"
    for name in ("detector.keras", "detector.json", "model.keras", "history.csv"):
        assert (final / name).read_bytes() == (round0 / name).read_bytes(), name
    summary = json.loads((final / "summary.json").read_text())
    assert summary["mined_clips"] == 0 and summary["finetune_epochs"] == 0
    assert summary["model"] == "energy" and summary["positive_weight"] == 5.0  # round 0's
