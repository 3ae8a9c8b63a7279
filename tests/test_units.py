"""Unit tests on generated signals: exact values, dtype and shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioclf import atomic, clips, evaluation, splits
from audioclf.audio_io import AudioError, read_wav, write_wav
from audioclf.augment import AugmentConfig, Augmenter, build_chain
from audioclf.config import ConfigError, flatten, parse
from audioclf.corruption import Corrupter, build, parse_corruptions
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
from audioclf.mixing import mix_at_snr

RATE = 16000


def sine(freq: float, n: int = RATE, rate: int = RATE, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


# --- audio I/O and clip conversion --------------------------------------------------------


def test_wav_round_trip_is_16_bit_exact(tmp_path: Path) -> None:
    wave = sine(1000.0, 1600)
    write_wav(tmp_path / "a.wav", wave, RATE)
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == RATE and back.dtype == np.float32 and back.shape == (1600, 1)
    assert np.max(np.abs(back[:, 0] - wave)) <= 1 / 32767


def test_fit_length_pads_end_and_crops_centre() -> None:
    wave = np.arange(10, dtype=np.float32)
    assert clips.fit_length(wave, 14).tolist() == list(range(10)) + [0, 0, 0, 0]
    assert clips.fit_length(wave, 4).tolist() == [3, 4, 5, 6]


def test_stereo_8bit_48k_long_file_is_converted_with_notes(tmp_path: Path) -> None:
    stereo = np.stack([sine(440, 96000, 48000), sine(440, 96000, 48000)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 48000, subtype="PCM_U8")
    loaded = clips.load_clip(tmp_path / "s.wav", RATE, RATE)
    assert loaded.wave.shape == (RATE,) and loaded.wave.dtype == np.float32
    assert loaded.notes == (
        "mixed down from 2 channels",
        "resampled 48000->16000 Hz",
        "cropped 2.000 s to 1.000 s",
    )
    # 440 Hz survives resampling: the spectral peak is at 440 Hz (1 Hz bins).
    assert np.argmax(np.abs(np.fft.rfft(loaded.wave))) == 440


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", r"empty file \(0 bytes\)"),
        (b"this is not audio at all, just text" * 10, "not readable as audio"),
    ],
)
def test_unreadable_files_raise_audio_error_naming_the_file(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=reason) as err:
        clips.load_clip(path, RATE, RATE)
    assert str(path) in str(err.value)


def test_audio_error_survives_pickling_with_path_and_reason() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(AudioError("a/b.wav", "empty file (0 bytes)")))
    assert (err.path, err.reason, str(err)) == (
        "a/b.wav",
        "empty file (0 bytes)",
        "a/b.wav: empty file (0 bytes)",
    )


def test_truncated_wav_is_refused(tmp_path: Path) -> None:
    write_wav(tmp_path / "t.wav", sine(440), RATE)
    data = (tmp_path / "t.wav").read_bytes()
    (tmp_path / "t.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"truncated \(header declares 32000 bytes"):
        clips.load_clip(tmp_path / "t.wav", RATE, RATE)


# --- splits and labels --------------------------------------------------------------------


def test_which_set_matches_tensorflow_rule_and_keeps_speakers_together() -> None:
    # Values computed with TensorFlow's speech_commands input_data.which_set (10 %, 10 %).
    names = [f"{i:08x}_nohash_{k}.wav" for i in range(300) for k in range(3)]
    sets = [splits.which_set(n, 10, 10) for n in names]
    for i in range(300):
        assert len(set(sets[3 * i : 3 * i + 3])) == 1  # a speaker never straddles splits
    counts = {s: sets.count(s) / 3 for s in splits.SPLITS}
    assert 200 <= counts["train"] <= 280 and counts["validation"] > 10 and counts["test"] > 10
    assert splits.speaker_of("yes/3c4aa5ef_nohash_12.wav") == "3c4aa5ef"


def test_which_set_exact_hash() -> None:
    import hashlib

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


# --- features -----------------------------------------------------------------------------


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


# --- augmentation -------------------------------------------------------------------------


def test_mix_at_snr_gives_the_requested_snr() -> None:
    rng = np.random.default_rng(1)
    signal = sine(500)
    noise = rng.standard_normal(RATE).astype(np.float32)
    for snr in (-5.0, 0.0, 10.0, 20.0):
        mixed = mix_at_snr(signal, noise, snr)
        added = mixed.astype(np.float64) - signal
        got = 10 * np.log10(np.mean(signal.astype(np.float64) ** 2) / np.mean(added**2))
        assert mixed.dtype == np.float32 and abs(got - snr) < 1e-3


def noise_file(tmp_path: Path, seconds: float = 3.0, name: str = "white") -> Path:
    path = tmp_path / f"{name}.wav"
    rng = np.random.default_rng(2)
    sf.write(path, 0.1 * rng.standard_normal(int(seconds * RATE)), RATE, subtype="FLOAT")
    return path


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
    first = [Augmenter(cfg, files, RATE)(it) for it in items]
    again = [Augmenter(cfg, files, RATE)(it) for it in reversed(items)][::-1]  # other order
    for (a, pa), (b, pb), (copy, index, wave) in zip(first, again, items):
        assert a.dtype == np.float32 and a.shape == (RATE,)
        assert np.array_equal(a, b) and pa == pb and not np.array_equal(a, wave)
        assert (pa["copy"], pa["source_index"]) == (copy, index)
        assert set(pa) == {"copy", "source_index", *cfg.chain}  # p = 1: every one fired
        assert pa["background_noise"]["noise_file_path"] == "white"  # the file's stem
        assert 5.0 <= pa["background_noise"]["snr_db"] <= 15.0
        json.dumps(pa)  # recorded as JSON lines
    assert not np.array_equal(first[0][0], first[2][0])  # two copies of a clip differ
    # p = 0: nothing fires, the clip is unchanged
    out, applied = Augmenter(every_transform(p=0.0), files, RATE)((0, 0, waves[0]))
    assert np.array_equal(out, waves[0]) and set(applied) == {"copy", "source_index"}


def test_background_noise_is_mixed_at_the_drawn_snr(tmp_path: Path) -> None:
    cfg = AugmentConfig(
        copies=1,
        chain=("background_noise",),
        transforms={"background_noise": {"p": 1.0, "min_snr_db": 10.0, "max_snr_db": 10.0}},
    )
    clean = sine(500)
    out, applied = Augmenter(cfg, [noise_file(tmp_path)], RATE)((0, 3, clean))
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
        build_chain(noisy, [])


# --- corrupted test suite -----------------------------------------------------------------


def peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * RATE / len(wave))


def corrupt(type_: str, args: dict, wave: np.ndarray, files=(), clip: int = 0):
    (s,) = parse_corruptions({type_: {"x": args}})
    out, applied = Corrupter([s], list(files), RATE, seed=7)((0, clip, wave))
    assert out.dtype == np.float32 and out.shape == wave.shape
    again, _ = Corrupter([s], list(files), RATE, seed=7)((0, clip, wave))
    assert np.array_equal(out, again)  # frozen and seeded: the same every time
    assert applied["set"] == f"{type_}_x" and applied["clip"] == clip
    return out, applied[type_]


def test_corruptions_do_exactly_what_they_say(tmp_path: Path) -> None:
    tone = sine(500)
    out, p = corrupt("speed", {"factor": 1.2}, tone)
    assert abs(peak_hz(out[4000:12000]) - 600) < 3 and p["factor"] == 1.2
    out, p = corrupt("pitch", {"semitones": 2.0}, tone)
    assert abs(peak_hz(out) - 500 * 2 ** (2 / 12)) < 3 and p["num_semitones"] == 2.0
    low, high = sine(100), sine(1000)
    out_low, _ = corrupt("telephone", {}, low)
    out_high, p = corrupt("telephone", {}, high)
    assert np.std(out_low[4000:]) < 0.05 * np.std(low) and (p["low_hz"], p["high_hz"]) == (
        300,
        3400,
    )
    assert 0.8 < np.std(out_high[4000:]) / np.std(high) < 1.1
    ramp = np.linspace(0, 1, RATE, dtype=np.float32)
    out, p = corrupt("shift", {"seconds": 0.25}, ramp)
    n = int(0.25 * RATE)
    expected = np.r_[np.zeros(n), ramp[:-n]] if p["seconds"] > 0 else np.r_[ramp[n:], np.zeros(n)]
    assert abs(p["seconds"]) == 0.25 and np.allclose(out, expected, atol=0.02)
    signs = {corrupt("shift", {"seconds": 0.25}, ramp, clip=c)[1]["seconds"] for c in range(16)}
    assert signs == {0.25, -0.25}  # the direction is drawn per clip
    out, p = corrupt("clipping", {"percentile": 20}, tone)
    assert np.abs(out).max() < 0.99 * np.abs(tone).max() and p["percentile_threshold"] == 20
    out, p = corrupt("reverb", {"rt60": 0.6}, tone)
    assert p["target_rt60"] == 0.6 and not np.allclose(out, tone)
    out, p = corrupt("noise", {"snr_db": 0.0}, tone, [noise_file(tmp_path)])
    added = out.astype(np.float64) - tone
    assert abs(10 * np.log10(np.mean(tone.astype(np.float64) ** 2) / np.mean(added**2))) < 0.01


def test_corruption_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"evaluate.corruptions.blur: unknown corruption"):
        parse_corruptions({"blur": {"mild": {}}})
    with pytest.raises(ConfigError, match=r"evaluate.corruptions.noise.snr10.snr_db: required"):
        parse_corruptions({"noise": {"snr10": {}}})
    with pytest.raises(ConfigError, match=r"evaluate.corruptions.speed: expected named severities"):
        parse_corruptions({"speed": [0.8, 1.2]})
    (s,) = parse_corruptions({"speed": {"silly": {"factor": 9.0}}})
    with pytest.raises(ConfigError, match=r"evaluate.corruptions.speed.silly: speed factor must"):
        build(s, [])


def test_spec_augment_masks_in_training_only_and_survives_saving(tmp_path: Path) -> None:
    import keras

    from audioclf.specaugment import SpecAugment

    layer = SpecAugment(freq_masks=2, freq_width=6, time_masks=2, time_width=12, seed=3)
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


# --- metrics, config, atomic writes -------------------------------------------------------


def test_confusion_and_per_class_accuracy_exact() -> None:
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2])
    cm = evaluation.confusion_matrix(y_true, y_pred, 4)
    assert cm.tolist() == [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    acc = evaluation.per_class_accuracy(cm)
    assert acc[:3].tolist() == [0.5, 2 / 3, 1.0] and np.isnan(acc[3])
    probs = np.eye(4)[y_pred] * 0.9 + 0.025
    s = evaluation.summarize(probs, y_true, ["a", "b", "c", "d"])
    assert s["accuracy"] == pytest.approx(4 / 6) and s["per_class_accuracy"]["d"] is None


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


def test_atomic_writes_leave_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic.atomic_dir(tmp_path / "out") as tmp:
        (tmp / "half.npy").write_bytes(b"xx")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    atomic.write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_model_builder_refuses_bad_hyperparameters_by_name() -> None:
    from audioclf.models import spec_cnn2d

    with pytest.raises(ConfigError, match=r"model.dropout: must be in \[0, 1\), got 1.5"):
        spec_cnn2d.build((98, 40), 12, dropout=1.5)
    with pytest.raises(ConfigError, match=r"model.filters: list at least one"):
        spec_cnn2d.build((98, 40), 12, filters=())
    model = spec_cnn2d.build((98, 40), 12, filters=(4, 8))
    assert model.output_shape == (None, 12)


# --- comparison table ---------------------------------------------------------------------


def test_comparison_table_is_best_first_with_corrupted_columns_when_present() -> None:
    import pandas as pd

    from audioclf.comparison import markdown, table

    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "start_time": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
            "tags.mlflow.runName": ["old", "mid", "new"],
            "params.data.name": ["synthetic", "synthetic", "fsdd"],
            "params.model.name": ["spec_cnn2d", "light_cnn", "wave_cnn1d"],
            "params.features.type": ["logmel", "logspec", "wave"],
            "params.features.sample_rate": ["None", "8000", "8000"],
            "params.augment.name": ["none", "noise_shift", "noise_shift"],
            "metrics.trainable_params": [72796.0, 313854.0, 457452.0],
            "metrics.train_seconds": [180.3, 60.0, 600.0],
            "metrics.seconds_per_epoch": [9.0, 3.0, 30.0],
            "metrics.epochs_run": [20.0, 20.0, 20.0],
            "metrics.best_val_accuracy": [0.875, 0.8, 0.9],
            "metrics.test_accuracy": [0.8917, 0.85, 0.8917],
            "metrics.test_balanced_accuracy": [0.89, None, 0.88],  # older runs lack it
            "metrics.test/acc_clean": [0.8917, None, 0.8917],  # = test_accuracy: no column
            "metrics.test/acc_speed_slow": [0.7, None, 0.8],
            "metrics.test/acc_noise_snr10": [0.5, None, 0.6],
            "metrics.test/acc_corrupted_mean": [0.6, None, 0.7],
        }
    )
    df = table(runs)
    assert list(df["run"]) == ["new", "old", "mid"]  # ties: newer first
    assert list(df["features"]) == ["wave 8k", "logmel", "logspec 8k"]
    assert list(df.columns)[-6:] == [
        "clean",
        "balanced",
        "noise_snr10",
        "speed_slow",
        "corrupted_mean",
        "run_id",
    ]
    md = markdown(df).splitlines()
    assert md[0].startswith("| run | data | model | features | augment | trainable_params |")
    assert md[2] == (
        "| new | fsdd | wave_cnn1d | wave 8k | noise_shift | 457,452 | 600 | 30.0 | 20 | 0.9000 "
        "| 0.8917 | 0.8800 | 0.6000 | 0.8000 | 0.7000 |"
    )
    assert md[4].endswith("| 0.8500 |  |  |  |  |")  # no corrupted-test values for that run
    assert table(pd.DataFrame()).empty


# --- models and their inputs --------------------------------------------------------------


def test_a_spectrogram_model_refuses_wave_features_naming_the_options(tmp_path: Path) -> None:
    from audioclf.models import check_input, parse_model

    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "raw.yaml").write_text("type: wave\n")
    (tmp_path / "features" / "mel.yaml").write_text("type: logmel\n")
    model = parse_model({"name": "ds_cnn"})
    assert model.input == "spectrogram"
    check_input(model, "mfcc", tmp_path)  # any spectrogram type fits
    with pytest.raises(ConfigError, match=r"takes a spectrogram .* Pick `-S features=mel`"):
        check_input(model, "wave", tmp_path)
    wave = parse_model({"name": "wave_cnn1d"})
    with pytest.raises(ConfigError, match=r"takes a raw waveform .* Pick `-S features=raw`"):
        check_input(wave, "logmel", tmp_path)


# --- the predict command ------------------------------------------------------------------


def test_predict_names_a_missing_path_or_model_and_exits_2(tmp_path: Path, capsys) -> None:
    from audioclf.cli import main

    assert main(["predict", str(tmp_path / "nope")]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err
    assert main(["predict", str(tmp_path)]) == 2
    assert "no .wav files in this folder or below" in capsys.readouterr().err
    write_wav(tmp_path / "a.wav", sine(440), RATE)
    assert main(["predict", str(tmp_path), "--model", str(tmp_path / "m")]) == 2
    assert "inference.keras: no exported model there" in capsys.readouterr().err


# --- streaming .npy ----------------------------------------------------------------------


def test_npy_writer_appends_rows_into_a_file_np_save_would_write(tmp_path: Path) -> None:
    from audioclf.npystream import NpyWriter, iter_rows

    x = np.random.default_rng(0).standard_normal((10, 7)).astype(np.float32)
    np.save(tmp_path / "ref.npy", x)
    with NpyWriter(tmp_path / "out.npy", np.float32, (7,)) as w:
        w.append(x[:3])
        w.append(x[3:].astype(np.float64))  # converted to the file's dtype
    assert (tmp_path / "out.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    batches = list(iter_rows(tmp_path / "out.npy", 4))
    assert [b.shape for b in batches] == [(4, 7), (4, 7), (2, 7)]
    assert all(b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), x)
    with NpyWriter(tmp_path / "bad.npy", np.float32, (7,)) as w, pytest.raises(ValueError):
        w.append(np.zeros((2, 6)))


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_npy_writer_copies_rows_of_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    import os

    from audioclf.npystream import NpyWriter

    if not kernel_copy:  # as on macOS, which has no copy_file_range
        monkeypatch.delattr(os, "copy_file_range")
    x = np.arange(40, dtype=np.float32).reshape(8, 5)
    np.save(tmp_path / "chunk.npy", x)
    with NpyWriter(tmp_path / "out.npy", np.float32, (5,)) as w:
        w.append(x[:1] * -1)
        w.append_rows_of(tmp_path / "chunk.npy", 2, 3)
        w.append_rows_of(tmp_path / "chunk.npy", 7, 1)
        w.append(x[:1] * -2)
        with pytest.raises(ValueError, match="out of 8"):
            w.append_rows_of(tmp_path / "chunk.npy", 6, 3)
    out = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(out, np.concatenate([-x[:1], x[2:5], x[7:8], -2 * x[:1]]))
