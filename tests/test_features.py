"""Feature types: shapes, dtype and values on generated signals."""

from __future__ import annotations

import numpy as np
import pytest

from audioclf.config import ConfigError
from audioclf.features import (
    LogMelConfig,
    LogSpecConfig,
    MfccConfig,
    StftConfig,
    WaveConfig,
    compute,
    output_shape,
    parse_features,
    resample_clips,
)
from tests.helpers import RATE, sine


@pytest.mark.parametrize(
    ("cfg", "shape"),
    [
        (LogMelConfig(), (98, 40)),
        (StftConfig(), (98, 257)),
        (LogSpecConfig(), (99, 257)),
        (MfccConfig(), (98, 13)),
        (WaveConfig(), (16000, 1)),
        (WaveConfig(sample_rate=8000), (8000, 1)),
        # The Kaggle light-weight CNN's input (conf/features/logspec8k.yaml).
        (LogSpecConfig(sample_rate=8000, n_fft=160), (99, 81)),
    ],
)
def test_feature_shapes_and_dtype(cfg, shape) -> None:
    assert output_shape(cfg, RATE, RATE) == shape
    out = np.concatenate(list(compute(np.stack([sine(1000), sine(3000)]), cfg, RATE)))
    assert out.shape == (2, *shape) and out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_resampling_keeps_a_tone_and_gives_the_exact_length() -> None:
    waves = np.stack([sine(1000), sine(2500)])
    out = resample_clips(waves, RATE, 8000)
    assert out.shape == (2, 8000) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out[1]))  # 1 Hz bins over 1 s
    assert spectrum.argmax() == 2500
    np.testing.assert_allclose(np.sqrt(np.mean(out[0, 500:-500] ** 2)), 0.5 / np.sqrt(2), rtol=1e-2)
    np.testing.assert_array_equal(resample_clips(waves, RATE, RATE), waves)


def test_wave_features_are_the_resampled_clip_itself() -> None:
    waves = np.stack([sine(440), sine(880)])
    out = np.concatenate(list(compute(waves, WaveConfig(sample_rate=8000), RATE)))
    np.testing.assert_array_equal(out[..., 0], resample_clips(waves, RATE, 8000))
    with pytest.raises(ConfigError, match=r"features.sample_rate: must be null .* or >= 1000 Hz"):
        parse_features({"type": "wave", "sample_rate": 100})


def test_stft_peak_is_at_the_sine_frequency() -> None:
    cfg = StftConfig(window_ms=32.0, hop_ms=16.0)  # 512-sample window, 31.25 Hz bins
    out = np.concatenate(list(compute(sine(1000)[None], cfg, RATE)))
    assert np.all(out[0].argmax(axis=1) == 32)  # 1000 Hz / 31.25 Hz


def test_logmel_is_log_offset_on_silence_and_batches_agree() -> None:
    cfg = LogMelConfig()
    silent = np.zeros((3, RATE), dtype=np.float32)
    out = np.concatenate(list(compute(silent, cfg, RATE, batch_size=2)))
    np.testing.assert_allclose(out, np.log(np.float32(cfg.log_offset)), rtol=1e-6)
    waves = np.stack([sine(f) for f in (300, 700, 1500)])
    one = np.concatenate(list(compute(waves, cfg, RATE, batch_size=1)))
    three = np.concatenate(list(compute(waves, cfg, RATE, batch_size=3)))
    np.testing.assert_allclose(one, three, rtol=1e-5, atol=1e-5)


def test_features_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"features.type: unknown feature type 'mel'.*logmel"):
        parse_features({"type": "mel"})
    with pytest.raises(ConfigError, match=r"features.n_mfcc: unknown option"):
        parse_features({"type": "logmel", "n_mfcc": 13})
    with pytest.raises(ConfigError, match=r"features.n_mfcc: must be between 1 and n_mels"):
        parse_features({"type": "mfcc", "n_mels": 10, "n_mfcc": 20})
    with pytest.raises(ConfigError, match=r"features.hop_ms: expected a number, got 'x'"):
        parse_features({"type": "stft", "hop_ms": "x"})
