"""The corrupted test suite: each corruption does what it says, seeded and frozen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audioclf.config import ConfigError
from audioclf.corruption import corrupter, parse_corruptions, set_key
from tests.helpers import RATE, noise_file, sine


def peak_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * RATE / len(wave))


def corrupt(type_: str, args: dict, wave: np.ndarray, files=(), clip: int = 0):
    (s,) = parse_corruptions({type_: {"x": args}})
    key = (7, set_key(s.name), clip)
    out, applied = corrupter([s], list(files), RATE).apply(0, key, wave)
    assert out.dtype == np.float32 and out.shape == wave.shape
    again, _ = corrupter([s], list(files), RATE).apply(0, key, wave)
    assert np.array_equal(out, again)  # frozen and seeded: the same every time
    assert set(applied) == {type_}
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
        corrupter([s], [], RATE)
    (s,) = parse_corruptions({"noise": {"snr0": {"snr_db": 0.0}}})
    with pytest.raises(ConfigError, match=r"evaluate.corruptions.noise.snr0: noise needs noise"):
        corrupter([s], [], RATE)
