"""The NumPy feature backend (``audioclf.spectral``, ``numpy_transform``) against TensorFlow's
``tf.signal`` transform that the exported model runs: same numbers to float32 rounding, same
predictions, and the features stage never imports TensorFlow for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from audioclf import spectral
from audioclf.features import compute, parse_features, resample_clips
from audioclf.tfimport import import_tensorflow
from tests.helpers import RATE, sine

ROOT = Path(__file__).resolve().parents[1]
# The fixed transforms: every conf/features option with a NumPy twin, plus odd sizes.
OPTIONS = ["logmel", "logspec", "logspec8k", "stft", "mfcc", "wave8k"]
ODD = [
    {"type": "stft", "window_ms": 25.0625, "hop_ms": 7.0},  # 401-sample window (odd)
    {"type": "logmel", "sample_rate": 22050, "n_mels": 64, "fmin": 0.0, "fmax": 11025.0},
    {"type": "mfcc", "sample_rate": 8000, "n_mels": 20, "n_mfcc": 20},
    {"type": "wave"},
]


def option(name: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / "features" / f"{name}.yaml").read_text())


def clips(n: int = 6) -> np.ndarray:
    """float32 (n, 1 s at 16 kHz): tones at different pitch and level under a little noise,
    one silent clip and one of loud noise."""
    rng = np.random.default_rng(5)
    tones = [sine(300 * (i + 1), amp=0.1 + 0.2 * i) for i in range(n - 2)]
    waves = np.stack([*tones, np.zeros(RATE), 0.5 * rng.standard_normal(RATE)])
    waves[: n - 2] += 0.01 * rng.standard_normal((n - 2, RATE))
    return waves.astype(np.float32)


def float64_reference(cfg, waves: np.ndarray) -> np.ndarray:
    """The features computed in float64 (NumPy's FFT, the textbook periodic Hann window)."""
    rate = cfg.sample_rate or RATE
    x = resample_clips(waves, RATE, rate).astype(np.float64)
    f = cfg.framing(rate)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(f.frame_length) / f.frame_length)
    framed = np.lib.stride_tricks.sliding_window_view(x, f.frame_length, axis=-1)
    mag = np.abs(np.fft.rfft(framed[:, :: f.frame_step] * window, n=f.fft_length, axis=-1))
    if cfg.type == "logspec":
        return np.log(mag + cfg.eps)
    matrix = spectral.mel_matrix(cfg.n_mels, f.fft_length // 2 + 1, rate, cfg.fmin, rate / 2)
    return np.log(mag**2 @ matrix.astype(np.float64) + cfg.log_offset)


@pytest.mark.parametrize("length", [1, 2, 3, 160, 200, 400, 401, 512])
def test_hann_window_is_tensorflows(length: int) -> None:
    tf = import_tensorflow()
    ours = spectral.hann_window(length)
    assert ours.shape == (length,) and ours.dtype == np.float32
    # Both compute cos in float32; their cos implementations differ by at most 1 ulp of 1.
    np.testing.assert_allclose(ours, tf.signal.hann_window(length).numpy(), rtol=0, atol=1.2e-7)


@pytest.mark.parametrize(
    "args",
    [
        (40, 257, 16000, 20.0, 8000.0),  # the default logmel
        (40, 81, 8000, 20.0, 4000.0),
        (64, 513, 22050, 0.0, 11025.0),
        (10, 129, 16000, 300.0, 5000.0),
    ],
)
def test_mel_matrix_is_tensorflows(args: tuple) -> None:
    tf = import_tensorflow()
    ours = spectral.mel_matrix(*args)
    theirs = tf.signal.linear_to_mel_weight_matrix(*args).numpy()
    assert ours.shape == theirs.shape == (args[1], args[0]) and ours.dtype == np.float32
    # Mel values near 2,800 carry float32 steps of 2.4e-4; a 1-ulp difference in the logs
    # (NumPy's vs Eigen's) moves a triangle's slope by up to ~1e-5 of its peak.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=3e-5)
    assert np.array_equal(ours[0], np.zeros(args[0]))  # no weight on DC, as TensorFlow


@pytest.mark.parametrize("cfg", OPTIONS + ODD, ids=lambda c: c if isinstance(c, str) else c["type"])
def test_numpy_features_are_tensorflows_to_float32_rounding(cfg) -> None:
    cfg = parse_features(option(cfg) if isinstance(cfg, str) else cfg)
    waves = clips()
    ours = np.concatenate(list(compute(waves, cfg, RATE)))
    theirs = np.concatenate(list(compute(waves, cfg, RATE, backend="tensorflow")))
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.float32
    if cfg.type == "wave":
        np.testing.assert_array_equal(ours, theirs)
        return
    if cfg.type == "stft":
        # FFTs in float32 differ by rounding relative to each frame's energy.
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 * theirs.max())
        return
    if cfg.type == "mfcc":
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-5 * np.abs(theirs).max())
        return
    # Logs of magnitudes: where a bin is near zero (the stop band after resampling, a silent
    # clip) the log magnifies float32 rounding, in TensorFlow's numbers as much as in ours.
    # So: equal in the linear domain to float32 rounding, and no further than TensorFlow's
    # own from the same features computed in float64.
    lin_ours, lin_theirs = np.exp(ours), np.exp(theirs)
    scale = lin_theirs.reshape(len(waves), -1).max(axis=1)[:, None, None]
    excess = np.abs(lin_ours - lin_theirs) - (2e-5 * lin_theirs + 1e-6 * scale)
    assert excess.max() <= 0, f"off by {excess.max()} beyond float32 rounding"
    reference = float64_reference(cfg, waves)
    err_ours, err_theirs = np.abs(ours - reference), np.abs(theirs - reference)
    assert err_ours.mean() <= 1.5 * err_theirs.mean() + 1e-7
    assert err_ours.max() <= 1.5 * err_theirs.max() + 1e-6


@pytest.mark.parametrize("name", ["logmel", "logspec8k", "mfcc"])
def test_a_model_and_the_exported_model_predict_the_same_from_both(name: str) -> None:
    """A small seeded network (random weights, so classes are close calls) picks the same class
    from the NumPy features as from TensorFlow's, and the exported model (the TensorFlow
    transform inside it, from the raw clips) agrees with it on every clip: evaluate's
    ``export_agreement`` is 1.0."""
    import_tensorflow()
    import keras

    from audioclf import export

    features = option(name)
    cfg = parse_features(features)
    rng = np.random.default_rng(3)
    waves = np.concatenate([clips(), (0.2 * rng.standard_normal((26, RATE))).astype(np.float32)])
    ours = np.concatenate(list(compute(waves, cfg, RATE)))
    theirs = np.concatenate(list(compute(waves, cfg, RATE, backend="tensorflow")))
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(ours.shape[1:]),
            keras.layers.Reshape((*ours.shape[1:], 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(12, activation="softmax"),
        ]
    )
    p_ours = model.predict(ours, verbose=0)
    p_theirs = model.predict(theirs, verbose=0)
    assert np.array_equal(p_ours.argmax(axis=1), p_theirs.argmax(axis=1))
    np.testing.assert_allclose(p_ours, p_theirs, rtol=1e-4, atol=1e-6)
    exported = export.build(model, features, RATE, RATE)
    rate = cfg.sample_rate or RATE
    p_wave = export.predict(exported, resample_clips(waves, RATE, rate))
    assert float(np.mean(p_wave.argmax(axis=1) == p_ours.argmax(axis=1))) == 1.0


def test_threads_and_batches_do_not_change_the_numbers() -> None:
    cfg = parse_features(option("logmel"))
    waves = np.concatenate([clips()] * 30)  # 180 clips: several parts of 64
    one = np.concatenate(list(compute(waves, cfg, RATE, batch_size=50, threads=1)))
    two = np.concatenate(list(compute(waves, cfg, RATE, batch_size=256, threads=2)))
    assert one.shape == (180, 98, 40)
    np.testing.assert_array_equal(one, two)


def test_clip_by_clip_resampling_is_resampling_them_together() -> None:
    import soxr

    waves = clips()
    together = soxr.resample(np.ascontiguousarray(waves.T), RATE, 8000, quality="HQ").T
    np.testing.assert_array_equal(resample_clips(waves, RATE, 8000), together)


@pytest.mark.parametrize("name", ["logspec8k", "logmel"])
def test_the_features_stage_does_not_import_tensorflow(tmp_path: Path, name: str) -> None:
    """``python -m stages.features`` on a tiny prepared dataset, in its own process: the
    cache is written and TensorFlow was never imported."""
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir(parents=True)
    for split, n in (("train", 5), ("validation", 2), ("test", 3)):
        np.save(prepared / f"{split}_x.npy", clips(n))
    info = {"classes": ["a", "b"], "sample_rate": RATE, "clip_samples": RATE}
    (prepared / "labels.json").write_text(json.dumps(info))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"features": option(name)}))
    check = (
        "import runpy, sys; runpy.run_module('stages.features', run_name='__main__'); "
        "print('tensorflow imported:', 'tensorflow' in sys.modules)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "tensorflow imported: False" in done.stdout
    x = np.load(tmp_path / "data" / "features" / "test_x.npy")
    shape = {"logspec8k": (99, 81), "logmel": (98, 40)}[name]
    assert x.shape == (3, *shape) and x.dtype == np.float32
