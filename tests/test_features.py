"""Feature types: shapes, dtype and values on generated signals."""

from __future__ import annotations

import numpy as np
import pytest

from audioclf.config import ConfigError
from audioclf.features import (
    Choi2017Config,
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
from tests.helpers import RATE, shared_file, sine
from tests.httpserver import LoopbackServer


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


def test_choi2017_config_errors_name_the_key() -> None:
    assert Choi2017Config().output_shape(RATE, 12000) == (1, 160)
    assert Choi2017Config(layers=(4, 5)).output_shape(RATE, 12000) == (1, 64)
    with pytest.raises(ConfigError, match=r"features.sample_rate: must be 12000"):
        parse_features({"type": "choi2017", "sample_rate": 16000})
    with pytest.raises(
        ConfigError, match=r"features.layers: a non-empty subset of \[1, 2, 3, 4, 5\]"
    ):
        parse_features({"type": "choi2017", "layers": [0, 1]})
    with pytest.raises(ConfigError, match=r"features.fit"):
        parse_features({"type": "choi2017", "fit": "loop"})


@pytest.fixture(scope="module")
def choi2017_features(tmp_path_factory):
    """The choi2017 features config with its weights served from ../shared on loopback."""
    weights = shared_file("pretrained/choi2017_keras2/model_best.hdf5")
    cache = tmp_path_factory.mktemp("cache")
    with LoopbackServer(weights.parent) as server:
        yield {"type": "choi2017", "weights_url": server.url(weights.name), "cache_dir": str(cache)}


def speechlike_clips(n: int = 3) -> np.ndarray:
    """(n, 1 s at 16 kHz): tones of different pitch and level under a little noise."""
    rng = np.random.default_rng(5)
    tones = [sine(300 * (i + 1), amp=0.1 + 0.3 * i) for i in range(n)]
    return (np.stack(tones) + 0.01 * rng.standard_normal((n, RATE))).astype(np.float32)


def test_choi2017_features_are_the_embedding_of_the_resampled_tiled_clip(
    choi2017_features,
) -> None:
    from audioclf import choi2017

    waves = speechlike_clips()
    cfg = parse_features(choi2017_features)
    assert output_shape(cfg, RATE, RATE) == (1, 160)
    out = np.concatenate(list(compute(waves, cfg, RATE, batch_size=2)))
    assert out.shape == (3, 1, 160) and out.dtype == np.float32

    # By hand: 16 kHz -> 12 kHz (12,000 samples), repeated 7 times (84,000 >= 81,920).
    tagger = choi2017.build_tagger()
    choi2017.load_weights(tagger, choi2017.weights_file(cache=choi2017_features["cache_dir"]))
    clips = np.tile(resample_clips(waves, RATE, 12000), (1, 7))
    assert choi2017.fitted_samples(12000, "tile") == clips.shape[1] == 84000
    expected = np.asarray(choi2017.embedding_model(tagger)(clips))
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-5, atol=1e-5)

    padded = parse_features({**choi2017_features, "fit": "pad", "layers": [5]})
    out_pad = np.concatenate(list(compute(waves, padded, RATE)))
    assert out_pad.shape == (3, 1, 32)
    assert np.abs(out_pad[:, 0] - out[:, 0, 128:]).max() > 1e-3  # zeros are not repeats


def test_the_exported_model_takes_the_raw_wave_with_the_backbone_inside(
    choi2017_features, tmp_path
) -> None:
    import shutil

    from audioclf import export
    from audioclf.models import mlp
    from audioclf.training import with_normalization

    waves = speechlike_clips()
    cfg = parse_features(choi2017_features)
    cached = np.concatenate(list(compute(waves, cfg, RATE)))
    head = with_normalization(mlp.build((1, 160), 3, units=(8,)), cached)
    model = export.build(head, choi2017_features, RATE, RATE)
    assert model.input_shape == (None, 12000)  # the 1-s clip at the backbone's 12 kHz
    export.save(model, tmp_path, ["a", "b", "c"], "mlp")
    shutil.rmtree(choi2017_features["cache_dir"])  # loading needs no weights file

    loaded = export.load(tmp_path)
    raw = resample_clips(waves, RATE, loaded.sample_rate)
    np.testing.assert_allclose(
        export.predict(loaded.model, raw), head.predict(cached, verbose=0), rtol=1e-5, atol=1e-6
    )
