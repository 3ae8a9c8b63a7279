"""Trigger-word models: geometry, exported detector, streaming, training (tiny, generated)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from audioclf.config import ConfigError
from audioclf.trigger.models import StreamCnnConfig, geometry, parse_model

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
RATE = 16000
CLIP = 2 * RATE  # 2-s clips: 50 steps of 40 ms

TINY = {
    "conv_gru": {"name": "conv_gru", "conv_filters": 8, "gru_units": 8},
    "stream_cnn": {"name": "stream_cnn", "front_filters": 8, "filters": 8, "dilations": [1, 2]},
}


def tone(seconds: float, hz: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t) * np.hanning(len(t))).astype(np.float32)


def make_clips(n: int, seed: int) -> tuple[np.ndarray, list[list[dict]]]:
    """Clips as data/trigger/synth's: a rising two-tone "trigger" (0.3 s) and a 700 Hz
    "negative" (0.3 s) at random non-overlapping places over noise; events in seconds."""
    rng = np.random.default_rng(seed)
    trigger = np.concatenate([tone(0.15, 1500), tone(0.15, 3000)])
    negative = tone(0.3, 700)
    clips = (0.02 * rng.standard_normal((n, CLIP))).astype(np.float32)
    events = []
    for i in range(n):
        kinds = rng.permutation(["trigger", "negative"])
        starts = [rng.uniform(0.05, 0.6), rng.uniform(1.0, 1.6)]
        clip_events = []
        for kind, start in zip(kinds, starts):
            word = trigger if kind == "trigger" else negative
            s = int(start * RATE)
            clips[i, s : s + len(word)] += word
            clip_events.append({"kind": str(kind), "word": str(kind), "speaker": "x",
                                "start": s / RATE, "end": (s + len(word)) / RATE})  # fmt: skip
        events.append(clip_events)
    return clips, events


def labels_of(events: list[dict], times: np.ndarray, label_seconds: float) -> np.ndarray:
    """The contract's definition (audioclf.trigger.labels.step_labels): 1 iff some trigger
    has end < t <= end + label_seconds."""
    y = np.zeros(len(times), np.uint8)
    for e in events:
        if e["kind"] == "trigger":
            y |= (times > e["end"]) & (times <= e["end"] + label_seconds)
    return y


@pytest.fixture(scope="module")
def keras():
    from audioclf.tfimport import import_tensorflow

    import_tensorflow()
    import keras

    return keras


# --- config -----------------------------------------------------------------------------


def test_a_bad_key_or_value_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"trigger\.model\.gru_unit: unknown option"):
        parse_model({"name": "conv_gru", "gru_unit": 8})
    with pytest.raises(ConfigError, match=r"trigger\.model\.name: unknown trigger model 'gru'"):
        parse_model({"name": "gru"})
    with pytest.raises(ConfigError, match=r"trigger\.model\.dilations: must all be >= 1"):
        parse_model({"name": "stream_cnn", "dilations": [1, 0]})
    with pytest.raises(ConfigError, match=r"trigger\.model\.features\.type: must be a spectro"):
        parse_model({"name": "stream_cnn", "features": {"type": "wave"}})


def test_the_default_geometry_is_40_ms_steps_250_per_10_s_clip() -> None:
    conv = geometry(parse_model({"name": "conv_gru"}), RATE)
    assert (conv.step_samples, conv.receptive_samples, conv.bins) == (640, 2640, 40)
    assert conv.n_steps(10 * RATE) == 250 and conv.first_step_seconds == 0.04
    cnn = geometry(StreamCnnConfig(), RATE)
    assert cnn.receptive_samples == 124 * 160 + 400  # 125 frames: 1.265 s


# --- the networks and the exported detector ---------------------------------------------


def trained_like(name: str, keras, seed: int = 0):
    """The tiny model with normalisation, as training builds it, and its geometry."""
    from audioclf.features import parse_features
    from audioclf.trigger.models import build
    from audioclf.trigger.training import features, with_normalization

    keras.utils.set_random_seed(seed)
    cfg = parse_model(TINY[name])
    geo = geometry(cfg, RATE)
    clips, _ = make_clips(4, seed)
    x = features(clips, parse_features(cfg.features), RATE, geo.pad_samples)
    return cfg, geo, with_normalization(build(cfg, geo.bins), x), x


@pytest.mark.parametrize("name", list(TINY))
def test_output_steps_match_the_geometry_and_step_times(name: str, keras, tmp_path) -> None:
    from audioclf.trigger import export

    cfg, geo, model, x = trained_like(name, keras)
    scores = np.asarray(model(x, training=False))
    assert scores.dtype == np.float32 and scores.shape == (4, geo.n_steps(CLIP)) == (4, 50)
    assert np.all((scores >= 0) & (scores <= 1))
    export.save(
        export.build(model, cfg.features, geo), tmp_path, name, geo, 2.0, name != "conv_gru"
    )
    det = export.load_detector(tmp_path)
    # Step i ends at sample S (i + 1): the detector's step times are the geometry's.
    np.testing.assert_allclose(det.step_times(50), 0.04 * np.arange(1, 51))
    assert det.scores(np.zeros((2, 5 * 640 + 300), np.float32)).shape == (2, 5)
    assert det.streamable == (name == "stream_cnn") and det.clip_samples == CLIP


@pytest.mark.parametrize("name", list(TINY))
def test_the_exported_detector_scores_the_wave_as_the_training_model(name, keras, tmp_path):
    from audioclf.trigger import export

    cfg, geo, model, _ = trained_like(name, keras)
    model.save(tmp_path / "model.keras")
    export.save(export.build(model, cfg.features, geo), tmp_path, name, geo, 2.0, True)
    det = export.load_detector(tmp_path / "detector.keras")
    clips, _ = make_clips(3, seed=7)  # new clips: features computed again, in the detector
    from audioclf.features import parse_features
    from audioclf.trigger.training import features

    x = features(clips, parse_features(cfg.features), RATE, geo.pad_samples)
    expected = np.asarray(keras.models.load_model(tmp_path / "model.keras")(x, training=False))
    got = det.scores(clips)
    assert got.dtype == np.float32 and got.shape == (3, 50)
    np.testing.assert_allclose(got, expected, atol=1e-5)


# --- streaming --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detectors(keras, tmp_path_factory) -> dict:
    from audioclf.trigger import export

    out = {}
    for name in TINY:
        cfg, geo, model, _ = trained_like(name, keras, seed=3)
        folder = tmp_path_factory.mktemp(name)
        export.save(export.build(model, cfg.features, geo), folder, name, geo, 2.0,
                    name == "stream_cnn")  # fmt: skip
        out[name] = export.load_detector(folder)
    return out


def long_signal(seconds: float, seed: int = 5) -> np.ndarray:
    clips, _ = make_clips(int(np.ceil(seconds / 2)), seed)
    return clips.reshape(-1)[: int(seconds * RATE)]


def chunked(signal: np.ndarray, sizes: list[int]):
    i, k = 0, 0
    while i < len(signal):
        yield signal[i : i + sizes[k % len(sizes)]]
        i += sizes[k % len(sizes)]
        k += 1


def collect(stream) -> tuple[np.ndarray, np.ndarray]:
    parts = list(stream)
    return np.concatenate([t for t, _ in parts]), np.concatenate([s for _, s in parts])


def test_stream_cnn_streams_exactly_as_scoring_the_whole_signal(detectors) -> None:
    from audioclf.trigger.streaming import stream_scores

    det = detectors["stream_cnn"]
    signal = long_signal(7.3)
    whole = det.scores(signal[None])[0]  # (7.3 s // 40 ms,) = 182 steps
    # Chunks of odd sizes, some shorter than a step, some longer than the receptive field.
    times, scores = collect(stream_scores(det, chunked(signal, [100, 5000, 333, 17000, 640])))
    assert scores.dtype == np.float32 and len(scores) == len(whole) == 182
    np.testing.assert_allclose(times, det.step_times(182))
    np.testing.assert_allclose(scores, whole, atol=1e-5)


def test_conv_gru_streams_in_windows_and_agrees_with_each_window(detectors) -> None:
    from audioclf.trigger.streaming import stream_scores

    det = detectors["conv_gru"]  # 2-s windows of 50 steps, hop 1 s = 25 steps
    signal = long_signal(6.5)
    times, scores = collect(stream_scores(det, chunked(signal, [3000, 700, 12000])))
    n = len(signal) // 640  # every complete step, once, in order
    assert len(scores) == n and scores.dtype == np.float32
    np.testing.assert_allclose(times, det.step_times(n))
    # The first window gives its 50 steps as the whole clip does.
    np.testing.assert_allclose(scores[:50], det.scores(signal[None, :CLIP])[0], atol=1e-5)
    # Window k (starting k s in) gives its last 25 steps, scored as that clip alone.
    for k in range(1, 5):
        window = det.scores(signal[None, k * RATE : k * RATE + CLIP])[0]
        np.testing.assert_allclose(scores[25 * k + 25 : 25 * k + 50], window[25:], atol=1e-5)
    # The last steps (6.0-6.5 s) come from a window completed with zeros: causal, so equal
    # to that window scored with the zeros.
    tail = np.concatenate([signal[5 * RATE :], np.zeros(CLIP - len(signal[5 * RATE :]))])
    np.testing.assert_allclose(scores[150:], det.scores(tail[None].astype(np.float32))[0][25:37],
                               atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("name", list(TINY))
def test_streaming_memory_stays_bounded(detectors, name) -> None:
    """A long stream of 0.5-s chunks: the state never grows past a window plus a chunk."""
    from audioclf.trigger import streaming

    det = detectors[name]
    sizes = []
    original = np.concatenate

    def watch(arrays, *args, **kwargs):
        out = original(arrays, *args, **kwargs)
        if out.ndim == 1:
            sizes.append(len(out))
        return out

    chunks = (np.zeros(RATE // 2, np.float32) for _ in range(120))  # 60 s
    streaming.np.concatenate = watch  # the state buffers are built with np.concatenate
    try:
        n = sum(len(s) for _, s in streaming.stream_scores(det, chunks))
    finally:
        streaming.np.concatenate = original
    assert n == 60 * RATE // 640
    bound = (CLIP if name == "conv_gru" else det.receptive_samples) + RATE // 2 + 640
    assert max(sizes) <= bound


# --- training ---------------------------------------------------------------------------


def tiny_fit(name: str, tmp_path, epochs: int = 6):
    from audioclf.features import parse_features
    from audioclf.training import make_deterministic
    from audioclf.trigger.models import build
    from audioclf.trigger.training import TriggerTrainConfig, features, fit, with_normalization

    cfg = TriggerTrainConfig(epochs=epochs, batch_size=8, learning_rate=5e-3, patience=epochs,
                             positive_weight=None, seed=1)  # fmt: skip
    make_deterministic(cfg.seed)
    model_cfg = parse_model(TINY[name])
    geo = geometry(model_cfg, RATE)
    data = []
    for n, seed in ((48, 0), (16, 1)):
        clips, events = make_clips(n, seed)
        x = features(clips, parse_features(model_cfg.features), RATE, geo.pad_samples)
        times = geo.first_step_seconds + geo.step_seconds * np.arange(geo.n_steps(CLIP))
        data.append((x, np.stack([labels_of(e, times, 0.3) for e in events])))
    model = with_normalization(build(model_cfg, geo.bins), data[0][0])
    from audioclf.trigger.training import positive_weight

    weight = positive_weight(cfg, data[0][1])
    return fit(model, data[0], data[1], cfg, weight, tmp_path / "model.keras")


def test_a_tiny_training_run_learns_and_is_reproducible(keras, tmp_path) -> None:
    start = time.perf_counter()
    model, history = tiny_fit("stream_cnn", tmp_path / "a")
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert min(history["val_loss"]) < history["val_loss"][0]
    assert max(history["val_auc"]) > 0.8  # the trigger's steps score above the others
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir(exist_ok=True)
    again, history_again = tiny_fit("stream_cnn", tmp_path / "b")
    assert history_again["loss"] == history["loss"]
    for w1, w2 in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(w1, w2)
    assert time.perf_counter() - start < 120


def test_augmented_copies_are_seeded_and_refuse_transforms_that_move_events() -> None:
    from audioclf.config import parse
    from audioclf.trigger.training import TriggerTrainConfig, augmented

    settings = {"gain": {"p": 1.0, "min_gain_db": -6.0, "max_gain_db": 6.0},
                "gaussian_noise": {"p": 1.0, "min_snr_db": 10.0, "max_snr_db": 20.0}}  # fmt: skip
    aug = {"copies": 2, "chain": ["gain", "gaussian_noise"], "transforms": settings}
    cfg = parse(TriggerTrainConfig, {"augment": aug}, "trigger.train").augment
    clips, _ = make_clips(3, seed=0)
    copies = list(augmented(clips, cfg, RATE))
    assert len(copies) == 6 and all(c.dtype == np.float32 and c.shape == (CLIP,) for c in copies)
    assert not np.allclose(copies[0], clips[0]) and not np.allclose(copies[0], copies[3])
    again = list(augmented(clips[[0]], cfg, RATE))  # copy 0 of clip 0 alone: the same draws
    np.testing.assert_array_equal(again[0], copies[0])
    with pytest.raises(ConfigError, match=r"trigger\.train\.augment\.chain: 'shift' is not one"):
        parse(TriggerTrainConfig, {"augment": {**aug, "chain": ["shift"]}}, "trigger.train")
    with pytest.raises(ConfigError, match=r"trigger\.train\.augment\.copies: is 0"):
        parse(TriggerTrainConfig, {"augment": {**aug, "copies": 0}}, "trigger.train")


# --- the stage --------------------------------------------------------------------------


def write_synth(root, sizes: dict[str, int]) -> None:
    """data/trigger/synth/ in the contract's format (2-s clips at 16 kHz)."""
    import json

    synth = root / "data/trigger/synth"
    for k, (split, n) in enumerate(sizes.items()):
        clips, events = make_clips(n, seed=10 + k)
        (synth / split).mkdir(parents=True)
        np.save(synth / split / "clips.npy", clips)
        lines = [json.dumps({"clip": i, "events": e}) for i, e in enumerate(events)]
        (synth / split / "events.jsonl").write_text("\n".join(lines) + "\n")
    info = {
        "sample_rate": RATE,
        "clip_seconds": CLIP / RATE,
        "word": "trigger",
        "splits": sizes,
        "speakers": {s: ["x"] for s in sizes},
        "negative_seconds": 0,
    }
    (synth / "info.json").write_text(json.dumps(info))


def test_the_train_stage_writes_the_detector_and_hands_its_run_over(tmp_path, monkeypatch):
    pytest.importorskip("audioclf.trigger.labels")  # helper A's (issue 14)
    import csv
    import importlib
    import json
    import sys

    import mlflow
    import yaml

    sys.path.insert(0, str(ROOT / "tests"))
    from test_config import composed

    params = composed(["trigger/model=stream_cnn"])
    params["trigger"]["model"] |= TINY["stream_cnn"]
    params["trigger"]["train"] |= {"epochs": 2, "batch_size": 8}
    params["trigger"]["data"]["label_seconds"] = 0.3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_synth(tmp_path, {"train": 16, "validation": 8})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    importlib.import_module("stages.trigger_train").main()

    out = tmp_path / "data/trigger/round0"  # round 0: trigger_finetune writes the final model
    written = {"model.keras", "detector.keras", "detector.json", "history.csv", "summary.json"}
    assert {p.name for p in out.iterdir()} >= written | {"run.json"}
    meta = json.loads((out / "detector.json").read_text())
    assert meta["model"] == "stream_cnn" and meta["streamable"] is True
    assert (meta["sample_rate"], meta["clip_seconds"], meta["step_seconds"]) == (RATE, 2.0, 0.04)
    # A new process, which never imported the training code, loads and runs the detector.
    import subprocess

    np.save(tmp_path / "waves.npy", make_clips(2, seed=99)[0])
    code = (
        "import numpy as np; from audioclf.trigger.export import load_detector; "
        f"np.save('scores.npy', load_detector('{out}').scores(np.load('waves.npy')))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    scores = np.load(tmp_path / "scores.npy")
    assert scores.shape == (2, 50) and scores.dtype == np.float32
    from audioclf.trigger.export import load_detector

    np.testing.assert_allclose(load_detector(out).scores(np.load(tmp_path / "waves.npy")), scores)
    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[0]["val_loss"]) > 0 and rows[0]["val_auc"]
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = mlflow.get_run(run_id)
    assert run.info.status == "RUNNING" and run.data.tags["audioclf.phase"] == "trained"
    assert mlflow.get_experiment(run.info.experiment_id).name == "audioclf-trigger"
    assert run.data.params["model.name"] == "stream_cnn" and "train.augment.name" in run.data.params
    assert len(mlflow.MlflowClient().get_metric_history(run_id, "val_loss")) == 2
