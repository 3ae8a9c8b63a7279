"""Training augmentation: the seeded transform chain, its settings, SpecAugment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audioclf.augment import AugmentConfig, augmenter
from audioclf.config import ConfigError, flatten, parse
from audioclf.mixing import mix_at_snr
from tests.helpers import RATE, noise_file, sine


def test_mix_at_snr_gives_the_requested_snr() -> None:
    rng = np.random.default_rng(1)
    signal = sine(500)
    noise = rng.standard_normal(RATE).astype(np.float32)
    for snr in (-5.0, 0.0, 10.0, 20.0):
        mixed = mix_at_snr(signal, noise, snr)
        added = mixed.astype(np.float64) - signal
        got = 10 * np.log10(np.mean(signal.astype(np.float64) ** 2) / np.mean(added**2))
        assert mixed.dtype == np.float32 and abs(got - snr) < 1e-3


def every_transform(p: float = 1.0) -> AugmentConfig:
    settings = {
        "time_stretch": {"min_rate": 0.9, "max_rate": 1.1},
        "pitch_shift": {"min_semitones": -2.0, "max_semitones": 2.0},
        "shift": {"min_shift": -0.1, "max_shift": 0.1},
        "reverb": {"min_target_rt60": 0.3, "max_target_rt60": 0.5},
        "band_pass": {},
        "gain": {"min_gain_db": -6.0, "max_gain_db": 6.0},
        "background_noise": {"min_snr_db": 5.0, "max_snr_db": 15.0},
        "gaussian_noise": {},
    }
    return AugmentConfig(
        name="all",
        copies=2,
        chain=tuple(settings),
        transforms={k: {**v, "p": p} for k, v in settings.items()},
    )


def test_augment_chain_is_seeded_per_clip_and_records_what_it_applied(tmp_path: Path) -> None:
    cfg = every_transform()
    files = [noise_file(tmp_path)]
    waves = [sine(f) for f in (300, 600)]
    items = [(c, i, waves[i]) for c in range(2) for i in range(2)]

    def run(worker, item):
        c, i, wave = item
        return worker.apply(0, (cfg.seed, c, i), wave)

    first = [run(augmenter(cfg, files, RATE), it) for it in items]
    again = [run(augmenter(cfg, files, RATE), it) for it in reversed(items)][::-1]  # other order
    for (a, pa), (b, pb), (_, _, wave) in zip(first, again, items):
        assert a.dtype == np.float32 and a.shape == (RATE,)
        assert np.array_equal(a, b) and pa == pb and not np.array_equal(a, wave)
        assert set(pa) == set(cfg.chain)  # p = 1: every one fired
        assert pa["background_noise"]["noise_file_path"] == "white"  # the file's stem
        assert 5.0 <= pa["background_noise"]["snr_db"] <= 15.0
        json.dumps(pa)  # recorded as JSON lines
    assert not np.array_equal(first[0][0], first[2][0])  # two copies of a clip differ
    # p = 0: nothing fires, the clip is unchanged
    out, applied = augmenter(every_transform(p=0.0), files, RATE).apply(0, (1, 0, 0), waves[0])
    assert np.array_equal(out, waves[0]) and applied == {}


def test_background_noise_is_mixed_at_the_drawn_snr(tmp_path: Path) -> None:
    cfg = AugmentConfig(
        copies=1,
        chain=("background_noise",),
        transforms={"background_noise": {"p": 1.0, "min_snr_db": 10.0, "max_snr_db": 10.0}},
    )
    clean = sine(500)
    out, applied = augmenter(cfg, [noise_file(tmp_path)], RATE).apply(0, (cfg.seed, 0, 3), clean)
    added = out.astype(np.float64) - clean
    snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(added**2))
    assert applied["background_noise"]["snr_db"] == 10.0 and abs(snr - 10.0) < 0.01


def test_augment_settings_are_checked_against_audiomentations(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"augment.transforms.gain.max_db: not an argument of "):
        parse(AugmentConfig, {"transforms": {"gain": {"max_db": 3}}}, "augment")
    with pytest.raises(ConfigError, match=r"augment.chain: unknown transform 'warp'. Known: "):
        parse(AugmentConfig, {"copies": 1, "chain": ["warp"]}, "augment")
    with pytest.raises(ConfigError, match=r"augment.chain: 'gain' has no settings under"):
        parse(AugmentConfig, {"copies": 1, "chain": ["gain"]}, "augment")
    with pytest.raises(ConfigError, match=r"gain.min_gain_db: 20.0 is above max_gain_db \(12.0"):
        parse(AugmentConfig, {"transforms": {"gain": {"min_gain_db": 20.0}}}, "augment")
    noisy = AugmentConfig(
        copies=1, chain=("background_noise",), transforms=every_transform().transforms
    )
    with pytest.raises(ConfigError, match=r"background_noise needs noise recordings"):
        augmenter(noisy, [], RATE)


def test_parse_rejects_unknown_and_mistyped_keys() -> None:
    with pytest.raises(
        ConfigError, match=r"augment.copy: unknown option. Allowed options: .*copies"
    ):
        parse(AugmentConfig, {"copy": 1}, "augment")
    with pytest.raises(ConfigError, match=r"augment.copies: expected an integer, got 1.5"):
        parse(AugmentConfig, {"copies": 1.5}, "augment")
    with pytest.raises(ConfigError, match=r"augment.spec_augment.freq_masks: expected an int"):
        parse(AugmentConfig, {"spec_augment": {"freq_masks": "two"}}, "augment")
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": [1, 2], "d": "x"}


def test_spec_augment_masks_in_training_only_and_survives_saving(tmp_path: Path) -> None:
    import keras

    from audioclf.specaugment import layer_class

    layer = layer_class()(freq_masks=2, freq_width=6, time_masks=2, time_width=12, seed=3)
    x = np.ones((64, 98, 40), dtype=np.float32)
    y = np.asarray(layer(x, training=True))
    assert y.shape == x.shape and y.dtype == np.float32
    assert set(np.unique(y)) <= {0.0, 1.0}
    masked_frames = (y == 0).all(axis=2).sum(axis=1)  # whole rows = time masks
    masked_bins = (y == 0).all(axis=1).sum(axis=1)  # whole columns = frequency masks
    assert masked_frames.max() <= 24 and masked_bins.max() <= 12
    assert masked_frames.mean() > 3 and masked_bins.mean() > 1  # masks are drawn, per clip
    assert len({tuple(r) for r in (y == 0).all(axis=2)}) > 32
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    model = keras.Sequential([keras.Input((98, 40)), layer, keras.layers.GlobalAveragePooling1D()])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].get_config()["time_width"] == 12
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
