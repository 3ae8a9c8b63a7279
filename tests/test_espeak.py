"""Unit tests for the libespeak-ng binding: output format, determinism, voice validation."""

from __future__ import annotations

import numpy as np
import pytest

from audioclf import espeak


def test_synthesize_returns_float32_mono_in_range():
    wave, rate = espeak.synthesize("stop", "en-us+m3", rate_wpm=175, pitch=50, pitch_range=50)
    assert rate == espeak.sample_rate() == 22050
    assert wave.dtype == np.float32
    assert wave.ndim == 1
    # A one-syllable word at 175 wpm lasts a few tenths of a second.
    assert 0.15 < wave.size / rate < 1.0
    assert np.all(np.abs(wave) <= 1.0)
    assert np.sqrt(np.mean(wave**2)) > 0.01  # not silent


def test_same_arguments_give_identical_samples_whatever_came_before():
    args = dict(text="left", voice="en-gb-scotland+f2", rate_wpm=150, pitch=60, pitch_range=70)
    first, _ = espeak.synthesize(**args)
    # espeak-ng keeps state in C globals between utterances; speak something else in between.
    espeak.synthesize("a much longer sentence in between", "en-us+klatt4", rate_wpm=300)
    again, _ = espeak.synthesize(**args)
    np.testing.assert_array_equal(first, again)


def test_seed_changes_only_the_noise_of_breathy_voices():
    a, _ = espeak.synthesize("go", "en+whisper", seed=1)
    b, _ = espeak.synthesize("go", "en+whisper", seed=1)
    c, _ = espeak.synthesize("go", "en+whisper", seed=2)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_parameters_change_the_output():
    slow, _ = espeak.synthesize("marvin", "en-us", rate_wpm=100)
    fast, _ = espeak.synthesize("marvin", "en-us", rate_wpm=300)
    assert slow.size > 1.5 * fast.size
    low, _ = espeak.synthesize("marvin", "en-us", pitch=10)
    high, _ = espeak.synthesize("marvin", "en-us", pitch=90)
    assert not np.array_equal(low[: min(low.size, high.size)], high[: min(low.size, high.size)])


def test_accent_and_variant_lists():
    accents, variants = espeak.accents(), espeak.variants()
    for name in ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "de", "fr"):
        assert name in accents
    for name in ("m1", "m7", "f1", "f5", "klatt", "whisper"):
        assert name in variants
    assert accents == tuple(sorted(accents)) and variants == tuple(sorted(variants))


def test_unknown_accent_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown espeak accent 'en-mars'.*en-gb-scotland"):
        espeak.synthesize("yes", "en-mars+m1")


def test_unknown_variant_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown espeak variant 'm99'.*f1.*m1"):
        espeak.synthesize("yes", "en-us+m99")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"rate_wpm": 10}, "rate_wpm"),
        ({"pitch": 101}, "pitch"),
        ({"pitch_range": -1}, "pitch_range"),
        ({"volume": 500}, "volume"),
        ({"rate_wpm": 1.5}, "rate_wpm"),
    ],
)
def test_out_of_range_parameters_name_the_argument(kwargs, key):
    with pytest.raises(ValueError, match=key):
        espeak.synthesize("yes", "en-us", **kwargs)


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="text"):
        espeak.synthesize("   ", "en-us")


def test_every_variant_is_deterministic():
    # Some variants (Klatt with breath, e.g. "Reed") draw noise from libc's rand(); others
    # from espeak's own generator. Both must be reseeded per call.
    for variant in espeak.variants():
        voice = f"en-us+{variant}"
        first, _ = espeak.synthesize("yes", voice, pitch=40, seed=5)
        espeak.synthesize("stop", voice, seed=6)
        again, _ = espeak.synthesize("yes", voice, pitch=40, seed=5)
        assert first.shape == again.shape and np.array_equal(first, again), voice
