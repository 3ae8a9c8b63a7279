"""Unit tests for the synthetic dataset generator, on tiny configs (a few seconds in all)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from scipy import signal

from audioclf import mixing
from audioclf.config import ConfigError, parse
from audioclf.datasets import synthetic as synth
from audioclf.datasets.synthetic import SyntheticConfig
from audioclf.mixing import mix_at_snr

CONF = Path(__file__).resolve().parents[1] / "conf" / "data" / "synthetic.yaml"


def tiny(**overrides) -> SyntheticConfig:
    """A config that generates in well under a second: 2 speakers, 3 words, short noises."""
    values = dict(
        speakers=2,
        commands=("yes", "no"),
        unknown_words=("bed",),
        repetitions=2,
        unknown_repetitions=1,
        background_kinds=("pink", "babble"),
        background_seconds=1.0,
        babble_talkers=(2, 2),
        babble_bank_seconds=2.0,
    )
    values.update(overrides)
    return parse(SyntheticConfig, values, "data.download")


# ----------------------------------------------------------------------------- config


def test_yaml_defaults_match_the_schema_defaults():
    params = yaml.safe_load(CONF.read_text())
    assert params["name"] == "synthetic"
    download = params["download"]
    assert set(download) == {f.name for f in dataclasses.fields(SyntheticConfig)}
    assert parse(SyntheticConfig, download, "data.download") == SyntheticConfig()
    # YAML 1.1 reads bare yes/no/on/off as booleans; the file must quote them.
    assert download["commands"] == params["prepare"]["commands"] == list(SyntheticConfig.commands)


@pytest.mark.parametrize(
    ("values", "key", "hint"),
    [
        ({"speakers": 0}, "data.download.speakers", ">= 1"),
        ({"snr_db": [30.0, 0.0]}, "data.download.snr_db", "low <= high"),
        ({"rate_wpm": [20, 100]}, "data.download.rate_wpm", "80 <= low"),
        ({"accents": ["en-mars"]}, "data.download.accents", "en-gb-scotland"),
        ({"variants": ["m99"]}, "data.download.variants", "klatt"),
        ({"babble_accents": ["de", "en-us"]}, "data.download.babble_accents", "en-us"),
        ({"noise_probability": 1.5}, "data.download.noise_probability", "[0, 1]"),
        ({"noise_kinds": ["grey"]}, "data.download.noise_kinds[0]", "pink"),
        ({"commands": [True, "no"]}, "data.download.commands[0]", "expected a string"),
        ({"unknown_words": ["yes"]}, "data.download.unknown_words", "twice"),
        ({"lowpass_hz": [300.0, 3000.0]}, "data.download.lowpass_hz", "high-pass"),
        ({"speekers": 3}, "data.download.speekers", "unknown option"),
    ],
)
def test_bad_values_name_the_key(values, key, hint):
    with pytest.raises(ConfigError) as err:
        parse(SyntheticConfig, values, "data.download")
    assert str(err.value).startswith(key)
    assert hint in str(err.value)


# ---------------------------------------------------------------------------- speakers


def test_speakers_are_reproducible_and_well_formed():
    cfg = tiny(speakers=20)
    people = synth.speakers(cfg)
    assert people == synth.speakers(cfg)
    assert [s.index for s in people] == list(range(20))
    assert len({s.id for s in people}) == 20
    for s in people:
        assert re.fullmatch(r"[0-9a-f]{8}", s.id)
        assert s.accent in cfg.accents and s.variant in cfg.variants
        assert cfg.rate_wpm[0] <= s.rate_wpm <= cfg.rate_wpm[1]
        assert cfg.gain_dbfs[0] <= s.gain_dbfs <= cfg.gain_dbfs[1]
    # Speaker i does not depend on how many speakers there are.
    assert synth.speakers(tiny(speakers=3)) == people[:3]
    assert synth.speakers(tiny(speakers=3, seed=2))[0].id != people[0].id


# ------------------------------------------------------------------------------ signals


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "blue", "violet"])
def test_colored_noise_has_the_exact_spectral_slope(kind):
    n = 2**16
    noise = mixing.colored_noise(kind, n, np.random.default_rng(0))
    assert noise.dtype == np.float32 and noise.shape == (n,)
    assert np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-5)
    # Slope of log power vs log frequency over 60 Hz .. 6 kHz (at 16 kHz), periodogram
    # averaged over 1024-sample segments.
    freqs, power = signal.welch(noise, fs=16000, nperseg=1024)
    band = (freqs >= 60) & (freqs <= 6000)
    slope = np.polyfit(np.log10(freqs[band]), np.log10(power[band]), 1)[0]
    assert slope == pytest.approx(mixing.SPECTRAL_EXPONENT[kind], abs=0.1)


def test_colored_noise_rejects_unknown_colour():
    with pytest.raises(ValueError, match="grey.*pink"):
        mixing.colored_noise("grey", 100, np.random.default_rng(0))


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 7.5, 30.0])
def test_mix_at_snr_is_exact(snr_db):
    rng = np.random.default_rng(1)
    speech = (0.3 * rng.standard_normal(8000)).astype(np.float32)
    noise = rng.standard_normal(8000).astype(np.float32)
    mixed = mix_at_snr(speech, noise, snr_db)
    assert mixed.dtype == np.float32 and mixed.shape == (8000,)
    added = mixed.astype(np.float64) - speech
    measured = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(added**2))
    assert measured == pytest.approx(snr_db, abs=1e-3)


def test_mix_at_snr_with_the_speech_power_of_a_word_only():
    clip = np.zeros(16000, np.float32)
    clip[4000:8000] = 0.5 * np.sin(np.arange(4000) * 0.1)
    word_power = float(np.mean(clip[4000:8000].astype(np.float64) ** 2))
    noise = np.random.default_rng(2).standard_normal(16000).astype(np.float32)
    mixed = mix_at_snr(clip, noise, 3.0, signal_power=word_power)
    added = mixed.astype(np.float64) - clip
    assert 10 * np.log10(word_power / np.mean(added**2)) == pytest.approx(3.0, abs=1e-3)


def test_babble_is_speechlike_noise():
    cfg = tiny()
    wave = synth.babble(cfg, 16000, np.random.default_rng(3))
    assert wave.dtype == np.float32 and wave.shape == (16000,)
    assert np.sqrt(np.mean(wave.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    np.testing.assert_array_equal(wave, synth.babble(cfg, 16000, np.random.default_rng(3)))


def test_render_utterance_format_and_determinism():
    cfg = tiny(noise_probability=1.0, channel_probability=1.0)
    speaker = synth.speakers(cfg)[0]
    clip, info = synth.render_utterance(cfg, speaker, "yes", 0)
    assert clip.dtype == np.float32 and clip.shape == (16000,)
    assert np.max(np.abs(clip)) <= 0.99
    assert info.noise_kind in cfg.noise_kinds
    assert cfg.snr_db[0] <= info.snr_db <= cfg.snr_db[1]
    assert 0.1 < info.speech_seconds < 1.5
    again, _ = synth.render_utterance(cfg, speaker, "yes", 0)
    np.testing.assert_array_equal(clip, again)
    other, _ = synth.render_utterance(cfg, speaker, "yes", 1)
    assert not np.array_equal(clip, other)  # repetitions differ


def test_render_utterance_without_degradation_is_clean_and_centred():
    cfg = tiny(degrade=False)
    speaker = synth.speakers(cfg)[1]
    clip, info = synth.render_utterance(cfg, speaker, "no", 0)
    assert info.noise_kind == "" and np.isnan(info.snr_db)
    loud = np.flatnonzero(clip)
    lead, tail = loud[0], clip.size - 1 - loud[-1]
    assert abs(lead - tail) <= 1  # centred
    peak_db = 20 * np.log10(np.max(np.abs(clip)))
    assert peak_db == pytest.approx(min(speaker.gain_dbfs, -0.5), abs=1e-3)


# ------------------------------------------------------------------------------ dataset


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.wav"))}


def test_generate_writes_speech_commands_layout(tmp_path):
    cfg = tiny()
    summary = synth.generate(cfg, tmp_path / "raw", progress=False, workers=1)
    root = tmp_path / "raw"
    assert sorted(p.name for p in root.iterdir()) == ["_background_noise_", "bed", "no", "yes"]
    assert summary.clips_per_word == {"yes": 4, "no": 4, "bed": 2}
    assert summary.clips == 10 and summary.speakers == 2
    ids = {s.id for s in synth.speakers(cfg)}
    for word, count in summary.clips_per_word.items():
        files = sorted((root / word).iterdir())
        assert len(files) == count
        for f in files:
            m = re.fullmatch(r"([0-9a-f]{8})_nohash_(\d+)\.wav", f.name)
            assert m and m.group(1) in ids
            info = sf.info(f)
            assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)
            assert info.subtype == "PCM_16"
    noise_files = sorted(p.name for p in (root / synth.NOISE_DIR).iterdir())
    assert noise_files == sorted(summary.noise_files) == ["babble_noise.wav", "pink_noise.wav"]
    for name in noise_files:
        wave, rate = sf.read(root / synth.NOISE_DIR / name, dtype="float32")
        assert rate == 16000 and wave.shape == (16000,)
        rms_db = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2))
        assert rms_db == pytest.approx(cfg.background_rms_dbfs, abs=0.1)


def test_generate_is_byte_identical_whatever_the_worker_count(tmp_path):
    cfg = tiny()
    synth.generate(cfg, tmp_path / "a", progress=False, workers=1)
    synth.generate(cfg, tmp_path / "b", progress=False, workers=2)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert len(a) == 12 and a == b
    synth.generate(tiny(seed=7), tmp_path / "c", progress=False, workers=1)
    assert _tree(tmp_path / "c")["yes/" + synth.clip_name(synth.speakers(tiny(seed=7))[0], 0)]


def test_generate_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "stale.wav").write_bytes(b"")
    with pytest.raises(FileExistsError, match="not empty"):
        synth.generate(tiny(), tmp_path, progress=False, workers=1)
