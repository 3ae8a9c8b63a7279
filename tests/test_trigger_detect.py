"""Detection and metrics of the trigger task on hand-made score sequences (pure NumPy)."""

from __future__ import annotations

import numpy as np
import pytest

from audioclf.config import ConfigError, parse
from audioclf.trigger.detection import DetectConfig, Event, StreamDetector, detect, smooth
from audioclf.trigger.metrics import (
    Counts,
    Scored,
    Trigger,
    clip_metrics,
    condition_metrics,
    det_curve,
    det_png,
    fa_per_hour,
    match,
    operating_points,
    resolvable,
    step_accuracy,
    sweep_thresholds,
    triggers_of,
    write_det_csv,
)

STEP = 0.04  # s per step, as the trigger models


def grid(n: int) -> np.ndarray:
    """Step times (s): step i ends at 0.04 (i + 1)."""
    return STEP * (np.arange(n) + 1)


def cfg(k: int = 1, threshold: float = 0.5, refractory: float = 0.0) -> DetectConfig:
    return DetectConfig(smooth_steps=k, threshold=threshold, refractory_seconds=refractory)


# --- config ------------------------------------------------------------------------------


def test_detect_config_parses_and_names_the_bad_key() -> None:
    c = parse(DetectConfig, {"smooth_steps": 3, "threshold": 0.7}, "trigger.detect")
    assert (c.smooth_steps, c.threshold, c.refractory_seconds) == (3, 0.7, 1.0)
    with pytest.raises(ConfigError, match=r"trigger.detect.smooth_steps: must be >= 1, got 0"):
        parse(DetectConfig, {"smooth_steps": 0}, "trigger.detect")
    with pytest.raises(ConfigError, match=r"trigger.detect.threshold: must be in \[0, 1\]"):
        parse(DetectConfig, {"threshold": 1.5}, "trigger.detect")
    with pytest.raises(ConfigError, match=r"trigger.detect.refractory_seconds: must be >= 0"):
        parse(DetectConfig, {"refractory_seconds": -1}, "trigger.detect")
    with pytest.raises(ConfigError, match=r"trigger.detect.treshold: unknown option"):
        parse(DetectConfig, {"treshold": 0.5}, "trigger.detect")


# --- smoothing, threshold, refractory -----------------------------------------------------


def test_smoothing_is_a_causal_moving_average_over_the_steps_seen() -> None:
    x = np.array([0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    s = smooth(x, 3)
    assert s.dtype == np.float64 and s.shape == x.shape
    # first steps: the mean of what was seen; then the last 3
    np.testing.assert_allclose(s, [0, 1 / 2, 2 / 3, 1, 2 / 3, 1 / 3, 0])
    np.testing.assert_array_equal(smooth(x, 1), x)


def test_threshold_is_on_the_smoothed_score_and_events_carry_it() -> None:
    # One step at 1.0 among zeros: k = 1 fires on it; k = 4 averages it to 0.25 < 0.5.
    x = np.zeros(20)
    x[10] = 1.0
    t = grid(20)
    assert detect(t, x, cfg(k=1)) == [Event(float(t[10]), 1.0)]
    assert detect(t, x, cfg(k=4)) == []
    # Two steps high: k = 4 reaches 0.5 at the second one (>= fires).
    x[11] = 1.0  # active at steps 11, 12 and 13 (mean 0.5): one event within a period
    assert detect(t, x, cfg(k=4, refractory=1.0)) == [Event(float(t[11]), 0.5)]
    assert detect(t, x, cfg(k=4, threshold=0.51, refractory=1.0)) == []


def test_refractory_period_keeps_one_event_per_period() -> None:
    t = grid(100)  # 4 s
    x = np.zeros(100)
    x[10:20] = 0.9  # one word: 10 active steps (0.4 s)
    x[40:42] = 0.9  # 1.2 s after the first active step
    x[50:52] = 0.9  # 1.6 s after
    every = [*range(10, 20), 40, 41, 50, 51]  # no refractory: every active step fires
    assert [e.time for e in detect(t, x, cfg())] == pytest.approx(t[every])
    assert [e.time for e in detect(t, x, cfg(refractory=1.0))] == pytest.approx([t[10], t[40]])
    assert [e.time for e in detect(t, x, cfg(refractory=1.5))] == pytest.approx([t[10], t[50]])
    # A score stuck high fires once per period.
    stuck = np.ones(100)
    times = [e.time for e in detect(t, stuck, cfg(refractory=1.0))]
    assert times == pytest.approx([0.04, 1.04, 2.04, 3.04])


def test_exactly_at_the_refractory_period_fires_again() -> None:
    t = np.array([0.5, 1.0, 1.5, 2.0])
    x = np.ones(4)
    assert [e.time for e in detect(t, x, cfg(refractory=0.5))] == [0.5, 1.0, 1.5, 2.0]
    assert [e.time for e in detect(t, x, cfg(refractory=0.51))] == [0.5, 1.5]


def test_bad_sequences_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="must increase strictly"):
        detect(np.array([0.1, 0.1]), np.array([0.0, 1.0]), cfg())
    with pytest.raises(ValueError, match="one length"):
        detect(np.array([0.1, 0.2]), np.array([1.0]), cfg())
    with pytest.raises(ValueError, match="NaN"):
        detect(np.array([0.1, 0.2]), np.array([np.nan, 1.0]), cfg())
    stream = StreamDetector(cfg())
    stream.feed(np.array([0.1, 0.2]), np.zeros(2))
    with pytest.raises(ValueError, match="across chunks"):
        stream.feed(np.array([0.2, 0.3]), np.zeros(2))
    assert stream.feed(np.zeros(0), np.zeros(0)) == []


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_streaming_gives_exactly_the_batch_events_wherever_chunks_end(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 3000
    t = grid(n)
    # Noisy scores with bursts: many threshold crossings, events near chunk ends.
    bursts = np.convolve(rng.random(n) < 0.02, np.ones(8))[:n] > 0  # 8+ steps each
    x = np.clip(rng.normal(0.2, 0.2, n) + bursts * 0.5, 0, 1)
    c = cfg(k=k, threshold=0.45, refractory=0.3)
    batch = detect(t, x, c)
    assert len(batch) > 20
    for trial in range(20):
        cuts = np.sort(rng.choice(np.arange(1, n), size=int(rng.integers(1, 200)), replace=False))
        if trial == 0:
            cuts = np.arange(1, n)  # one step per chunk
        stream = StreamDetector(c)
        events = []
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, n]):
            events += stream.feed(t[a:b], x[a:b])
        assert events == batch  # same times and smoothed scores, bit for bit


def test_fewer_events_at_a_higher_threshold_on_any_stream() -> None:
    rng = np.random.default_rng(3)
    t = grid(5000)
    x = rng.random(5000)
    counts = [len(detect(t, x, cfg(k=3, threshold=thr, refractory=0.5)))
              for thr in np.linspace(0, 1, 51)]  # fmt: skip
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert counts[0] > counts[-1]


# --- matching: FRR, precision / recall / F1, latency ---------------------------------------


def test_a_trigger_is_found_by_an_event_between_its_start_and_end_plus_tolerance() -> None:
    trig = [Trigger(2.0, 2.6)]
    for time, found in ((1.99, 0), (2.0, 1), (2.3, 1), (3.1, 1), (3.11, 0)):
        c = match([Event(time, 0.9)], trig, tolerance=0.5)
        assert (c.triggers, c.found, c.events) == (1, found, 1)


def test_clip_metrics_on_hand_made_events() -> None:
    total = Counts()
    # clip 1: two triggers, both found (latencies 0.2 and -0.1), one false event at 0.5
    total.add(
        match(
            [Event(0.5, 0.9), Event(3.2, 0.8), Event(6.9, 0.7)],
            [Trigger(2.5, 3.0), Trigger(6.0, 7.0)],
            tolerance=1.0,
        )
    )
    # clip 2: one trigger missed (the event is after end + tolerance); two events on it
    # count once: the second is a false positive
    total.add(match([Event(9.5, 0.9)], [Trigger(8.0, 8.4)], tolerance=1.0))
    total.add(match([Event(1.1, 0.9), Event(1.5, 0.9)], [Trigger(0.5, 1.0)], tolerance=1.0))
    m = clip_metrics(total)
    assert (m["triggers"], m["found"], m["events"]) == (4, 3, 6)
    assert m["frr"] == pytest.approx(0.25)
    assert m["recall"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    lat = sorted([0.2, -0.1, 0.1])
    assert m["latency_median_s"] == pytest.approx(0.1)
    assert m["latency_p95_s"] == pytest.approx(np.percentile(lat, 95))


def test_undefined_metrics_are_none_not_zero() -> None:
    m = clip_metrics(match([], [Trigger(1.0, 1.5)], 0.5))
    assert (m["frr"], m["precision"], m["f1"], m["latency_median_s"]) == (1.0, None, 0.0, None)
    m = clip_metrics(match([Event(1.0, 0.9)], [], 0.5))
    assert (m["frr"], m["recall"], m["precision"], m["f1"]) == (None, None, 0.0, None)


def test_triggers_of_keeps_only_the_trigger_events() -> None:
    events = [
        {"kind": "negative", "word": "banana", "speaker": "a", "start": 0.5, "end": 1.0},
        {"kind": "trigger", "word": "activate", "speaker": "a", "start": 2.0, "end": 2.7},
    ]
    assert triggers_of(events) == [Trigger(2.0, 2.7)]


# --- false accepts per hour, DET curve, operating points ------------------------------------


def test_fa_per_hour_counts_events_on_negative_audio_with_a_planted_trigger() -> None:
    # 10 minutes of "negative audio" scores at 40 ms steps: low noise, one trigger-like burst
    # planted at 300 s (a false accept) and a single-step spike that smoothing removes.
    rng = np.random.default_rng(0)
    n = int(600 / STEP)
    t = grid(n)
    x = rng.uniform(0.0, 0.2, n)
    at = int(300 / STEP)
    x[at : at + 12] = 0.95  # ~0.5 s high, as after a spoken trigger
    x[int(100 / STEP)] = 1.0  # one step: smoothed over 5 -> 0.2 + ... < 0.5
    events = detect(t, x, cfg(k=5, threshold=0.5, refractory=1.0))
    assert len(events) == 1
    assert t[at] <= events[0].time <= t[at + 12]
    assert fa_per_hour(len(events), 600.0) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="duration"):
        fa_per_hour(1, 0.0)


def test_operating_points_resolved_by_the_negative_audio() -> None:
    # 5 minutes: one false accept is 12 FA/h; below that only 0 can be measured.
    ok, not_ok = resolvable([0.5, 1, 2, 5, 10, 12, 20, 50], 300.0)
    assert ok == [12, 20, 50]
    assert not_ok == [0.5, 1, 2, 5, 10]


def scored_task(rng: np.random.Generator, n_clips: int = 40) -> Scored:
    """Clips of 10 s with one trigger each and a detector whose score rises after the trigger
    end by a clip-dependent amount; negative audio of 5 min with random confusions."""
    t = grid(250)
    scores = rng.uniform(0, 0.3, (n_clips, 250))
    triggers = []
    for i in range(n_clips):
        start = rng.uniform(1, 7)
        end = start + 0.7
        i0 = int(end / STEP)
        scores[i, i0 : i0 + 12] = rng.uniform(0.3, 1.0)  # weaker or stronger detections
        triggers.append([Trigger(start, end)])
    neg_n = int(300 / STEP)
    neg = rng.uniform(0, 0.3, neg_n)
    for j in rng.choice(neg_n - 20, 30, replace=False):
        neg[j : j + 10] = rng.uniform(0.3, 0.9)  # confusable words
    return Scored(t, scores, triggers, grid(neg_n), neg, 300.0)


def test_det_curve_is_monotonic_and_ends_right(tmp_path) -> None:
    scored = scored_task(np.random.default_rng(1))
    c = cfg(k=5, threshold=0.5, refractory=1.0)
    thresholds = sweep_thresholds(51, [0.5])
    assert thresholds[0] == 0 and thresholds[-1] == 1 and np.all(np.diff(thresholds) > 0)
    rows = det_curve(scored, c, 1.0, thresholds)
    frr = np.array([r["frr"] for r in rows])
    fah = np.array([r["fa_per_hour"] for r in rows])
    assert np.all(np.diff(fah) <= 0)  # fewer false accepts as the threshold rises
    assert np.all(np.diff(frr) >= 0)  # more rejects
    assert frr[0] == 0 and fah[0] > 0 and frr[-1] == 1 and fah[-1] == 0
    # the row at the chosen threshold is what condition_metrics reports
    at = next(r for r in rows if r["threshold"] == 0.5)
    m = condition_metrics(scored, c, 1.0)
    assert (m["frr"], m["fa_per_hour"], m["f1"]) == (at["frr"], at["fa_per_hour"], at["f1"])
    points = operating_points(rows, [12.0, 60.0])
    for target in (0.0, 12.0, 60.0):
        key = f"frr_at_{target:g}fa"
        best = min(r["frr"] for r in rows if r["fa_per_hour"] <= target)
        assert points[key] == best
        chosen = next(r for r in rows if r["threshold"] == points[key.replace("frr", "threshold")])
        assert chosen["fa_per_hour"] <= target and chosen["frr"] == best
    assert points["frr_at_0fa"] >= points["frr_at_12fa"] >= points["frr_at_60fa"]
    # A stuck detector fires at every threshold: only switching it off gives 0 FA.
    stuck = [dict(r, fa_per_hour=24.0) for r in rows]
    assert operating_points(stuck, [12.0]) == {
        "frr_at_0fa": 1.0, "threshold_at_0fa": None, "frr_at_12fa": 1.0,
        "threshold_at_12fa": None,
    }  # fmt: skip

    curves = {"clean": rows, "noise_snr0": rows[::2]}
    write_det_csv(curves, tmp_path / "det.csv")
    lines = (tmp_path / "det.csv").read_text().splitlines()
    assert lines[0] == "condition,threshold,frr,fa_per_hour,false_accepts,precision,recall,f1"
    assert len(lines) == 1 + len(rows) + len(rows[::2])
    det_png(curves, tmp_path / "det.png", "test", 300.0, 0.5)
    assert (tmp_path / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_step_accuracy_is_the_references_per_step_number() -> None:
    labels = np.zeros((2, 10), np.uint8)
    labels[0, 3:5] = 1
    scores = np.zeros((2, 10), np.float32)
    assert step_accuracy(scores, labels) == pytest.approx(18 / 20)  # all-zero: 90 %
    scores[0, 3:5] = 0.5
    assert step_accuracy(scores, labels) == 1.0
    with pytest.raises(ValueError, match="shape"):
        step_accuracy(scores, labels[:1])


# --- `audioclf detect` on a long WAV ---------------------------------------------------------

DETECTOR_RATE = 16000
STEP_SAMPLES = 640  # 40 ms


def energy_detector(folder):
    """A real Keras detector saved as trigger_train saves one (detector.keras + .json), made
    by hand: each 40-ms step's score is sigmoid(1000 * mean power - 5), so a loud tone burst
    (the planted "trigger", power 0.125) scores ~1 and quiet noise (power 1e-4) ~0.01.
    Streamable (each step sees only its own samples), so stream_scores runs it exactly."""
    import json

    import keras

    from audioclf.trigger.export import LeftPad

    wave = keras.Input(shape=(None,))
    frames = keras.layers.Reshape((-1, STEP_SAMPLES))(wave)
    power = keras.layers.Multiply()([frames, frames])
    dense = keras.layers.Dense(1, activation="sigmoid")
    score = keras.layers.Reshape((-1,))(dense(power))
    dense.set_weights([np.full((STEP_SAMPLES, 1), 1000.0 / STEP_SAMPLES), np.array([-5.0])])
    unpadded = keras.Model(wave, score, name="unpadded")
    padded = keras.Input(shape=(None,))
    model = keras.Model(padded, unpadded(LeftPad(0)(padded)), name="energy_detector")
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "detector.keras")
    meta = {
        "model": "energy",
        "sample_rate": DETECTOR_RATE,
        "clip_seconds": 10.0,
        "step_seconds": STEP_SAMPLES / DETECTOR_RATE,
        "first_step_seconds": STEP_SAMPLES / DETECTOR_RATE,
        "streamable": True,
        "step_samples": STEP_SAMPLES,
        "receptive_samples": STEP_SAMPLES,
        "pad_samples": 0,
    }
    (folder / "detector.json").write_text(json.dumps(meta))
    return folder


def long_wav(path, seconds: float, rate: int, channels: int, triggers: list[float]):
    """Quiet noise (RMS 0.01) with a 0.6-s 1 kHz tone burst (amplitude 0.5) starting at each
    of ``triggers`` (s); written block by block (16-bit PCM). The (start, end) of each."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    block = 10 * rate
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
        for first in range(0, int(seconds * rate), block):
            n = min(block, int(seconds * rate) - first)
            t = (first + np.arange(n)) / rate
            x = 0.01 * rng.standard_normal(n)
            for start in triggers:
                on = (t >= start) & (t < start + 0.6)
                x[on] += 0.5 * np.sin(2 * np.pi * 1000 * t[on])
            f.write(np.repeat(x[:, None], channels, axis=1).astype(np.float32))
    return [Trigger(s, s + 0.6) for s in triggers]


def test_detect_cli_finds_planted_triggers_and_chimes(tmp_path, capsys) -> None:
    import soundfile as sf

    from audioclf.cli import main
    from audioclf.trigger.listen import CHIME_SECONDS, audio_blocks

    model = energy_detector(tmp_path / "model")
    # 44.1 kHz stereo: mixed down and resampled to the detector's 16 kHz as it streams
    triggers = long_wav(tmp_path / "long.wav", 65.0, 44100, 2, [7.3, 21.95, 40.0, 63.9])
    out = tmp_path / "chimed.wav"
    code = main(["detect", str(tmp_path / "long.wav"), "--model", str(model), "--chime",
                 str(out), "--block-seconds", "0.7"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0] == "time_s\tscore"
    found = [tuple(map(float, line.split("\t"))) for line in lines[1:]]
    assert len(found) == len(triggers), captured.out
    tolerance = 0.16  # smoothed over 5 steps, the energy detector fires within 4 steps
    for (time, score), trig in zip(found, triggers):
        assert trig.start <= time <= trig.start + tolerance and 0.5 <= score <= 1.0
    assert "4 detections in 65.0 s" in captured.err
    assert "44100 Hz 2 channels -> 16000 Hz mono" in captured.err
    assert "real-time factor" in captured.err

    # The chimed recording: the resampled mono stream, plus a chime at each detection only.
    _, blocks = audio_blocks(tmp_path / "long.wav", DETECTOR_RATE)
    stream = np.concatenate(list(blocks))
    chimed, rate = sf.read(out, dtype="float32")
    assert rate == DETECTOR_RATE and chimed.ndim == 1 and chimed.shape == stream.shape
    assert abs(len(stream) - 65.0 * DETECTOR_RATE) <= 1
    diff = np.abs(chimed - np.clip(stream, -1, 1))
    in_chime = np.zeros(len(stream), bool)
    for time, _ in found:
        a = int(round(time * DETECTOR_RATE))
        in_chime[a : a + int(CHIME_SECONDS * DETECTOR_RATE)] = True
        assert diff[a : a + int(CHIME_SECONDS * DETECTOR_RATE)].max() > 0.2
    assert diff[~in_chime].max() <= 1.5 / 32767  # 16-bit rounding only


def test_detect_cli_says_what_is_wrong(tmp_path, capsys) -> None:
    from audioclf.cli import main

    (tmp_path / "bad.wav").write_bytes(b"RIFF not audio")
    model = energy_detector(tmp_path / "model")
    assert main(["detect", str(tmp_path / "bad.wav"), "--model", str(model)]) == 2
    assert "bad.wav: not readable as audio" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "bad.wav"), "--model", str(tmp_path)]) == 2
    assert "no trigger detector there" in capsys.readouterr().err
    assert main(["detect", "x.wav", "--model", str(model), "--smooth-steps", "0"]) == 2
    assert "--smooth-steps: must be >= 1, got 0" in capsys.readouterr().err


def test_detect_memory_does_not_grow_with_the_file(tmp_path) -> None:
    """Bounded memory: the peak of Python/NumPy allocations (tracemalloc: every NumPy buffer,
    not TensorFlow's own) while streaming a 40-s and an 8-times longer file through
    listen (with the chimed copy written) is the same, and far below the longer file's
    samples (5.1 M float32 = 20 MB)."""
    import tracemalloc

    from audioclf.trigger.export import load_detector
    from audioclf.trigger.listen import Listened, audio_blocks, listen

    detector = load_detector(energy_detector(tmp_path / "model"))
    c = cfg(k=5, threshold=0.5, refractory=1.0)
    peaks = []
    for seconds in (40.0, 320.0):
        path = tmp_path / f"{seconds:.0f}.wav"
        long_wav(path, seconds, DETECTOR_RATE, 1, [10.0, seconds - 5])
        _, blocks = audio_blocks(path, DETECTOR_RATE)
        done = Listened(0, 0, 0)
        tracemalloc.start()
        events = list(listen(detector, blocks, c, tmp_path / "chimed.wav", done))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(events) == 2 and done.seconds == pytest.approx(seconds)
    assert peaks[1] < 1.2 * peaks[0] + 256_000, peaks
    assert peaks[1] < 5_000_000, peaks


def test_detect_defaults_are_the_composed_config() -> None:
    from pathlib import Path

    import yaml

    from audioclf.config import parse

    conf = yaml.safe_load(Path("conf/trigger/detect/default.yaml").read_text())
    assert parse(DetectConfig, conf, "trigger.detect") == DetectConfig()


# --- the comparison table -------------------------------------------------------------------


def test_comparison_table_puts_the_lowest_frr_at_zero_false_accepts_first() -> None:
    import pandas as pd

    from audioclf.trigger.comparison import markdown, table

    def run(name, model, augment, frr0, frr, start, **extra):
        return {
            "run_id": name, "tags.mlflow.runName": name, "start_time": pd.Timestamp(start),
            "params.data.name": "synthetic", "params.model.name": model,
            "params.train.augment.name": augment, "params.detect.threshold": "0.5",
            "metrics.clean/frr": frr, "metrics.clean/fa_per_hour": 24.0,
            "metrics.clean/frr_at_0fa": frr0, "metrics.clean/frr_at_20fa": frr0 / 2,
            "metrics.clean/f1": 0.9, "metrics.clean/latency_median_s": 0.21,
            "metrics.clean/latency_p95_s": 0.4, "metrics.per_step_accuracy": 0.95,
            "metrics.noise_snr0/frr": 0.5, "metrics.train_seconds": 120.0,
            "params.mine.name": "default", "metrics.mined_clips": 42.0, **extra,
        }  # fmt: skip

    runs = pd.DataFrame(
        [
            run("a", "conv_gru", "none", 0.30, 0.10, "2026-01-01"),
            run("b", "stream_cnn", "heavy", 0.20, 0.15, "2026-01-02"),
            # A run from before mining: no mining param or metric, blank cells.
            run(
                "c",
                "stream_cnn",
                "none",
                0.30,
                0.05,
                "2026-01-03",
                **{"params.mine.name": None, "metrics.mined_clips": None},
            ),
        ]
    )
    df = table(runs)
    assert list(df["run"]) == ["b", "c", "a"]
    assert list(df.columns[:9]) == [
        "run", "data", "model", "augment", "mining", "threshold", "frr", "fa_per_hour", "frr@0fa"
    ]  # fmt: skip
    assert "frr@20fa" in df and "frr_noise_snr0" in df and df["threshold"][0] == 0.5
    md = markdown(df)
    head = "| run | data | model | augment | mining | threshold | frr |"
    assert md.splitlines()[0].startswith(head)
    assert "| b | synthetic | stream_cnn | heavy | default | 0.5 | 0.150 | 24.0 | 0.200 |" in md
    assert "| c | synthetic | stream_cnn | none |  | 0.5 | 0.050 |" in md
    assert md.splitlines()[2].endswith("| 120 | 42 | 0.500 |")  # train_s, mined, noise_snr0
    assert md.splitlines()[3].endswith("| 120 |  | 0.500 |")
    assert table(pd.DataFrame()).empty


def test_composed_detect_and_evaluate_sections_validate_and_name_bad_keys() -> None:
    from audioclf.config import section
    from audioclf.corruption import parse_corruptions
    from audioclf.trigger.metrics import EvaluateConfig
    from tests.test_config import composed

    params = composed()
    parse(DetectConfig, section(params, "trigger.detect"), "trigger.detect")
    cfg = parse(EvaluateConfig, section(params, "trigger.evaluate"), "trigger.evaluate")
    sets = parse_corruptions(cfg.corruptions, "trigger.evaluate.corruptions")
    assert [s.name for s in sets] == ["noise_snr10", "noise_snr0", "reverb_rt06"]
    bad = composed(["trigger.evaluate.fa_per_hour=[0.0,20.0]"])
    with pytest.raises(ConfigError, match=r"trigger.evaluate.fa_per_hour: each must be > 0"):
        parse(EvaluateConfig, section(bad, "trigger.evaluate"), "trigger.evaluate")
    bad = composed(["+trigger.evaluate.corruptions.noise.snr10.snr=10"])
    cfg = parse(EvaluateConfig, section(bad, "trigger.evaluate"), "trigger.evaluate")
    with pytest.raises(ConfigError, match=r"corruptions.noise.snr10.snr: unknown argument"):
        parse_corruptions(cfg.corruptions, "trigger.evaluate.corruptions")
