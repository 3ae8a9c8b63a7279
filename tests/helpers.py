"""Shared test helpers: generated signals and a tiny dataset in the Speech Commands layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from audioclf.audio_io import write_wav

RATE = 16000  # Hz of the generated clips
COMMANDS = ("yes", "no", "up")


def sine(freq: float, n: int = RATE, rate: int = RATE, amp: float = 0.5) -> np.ndarray:
    """A pure tone: float32 (n,)."""
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def noise_file(folder: Path, seconds: float = 3.0, name: str = "white") -> Path:
    """A float WAV of white noise at RMS 0.1, seeded: ``folder``/<name>.wav."""
    path = folder / f"{name}.wav"
    rng = np.random.default_rng(2)
    sf.write(path, 0.1 * rng.standard_normal(int(seconds * RATE)), RATE, subtype="FLOAT")
    return path


def tone_clip(freq: float, rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A short tone burst at a random place in the clip plus a little noise: float32 (samples,)."""
    n = int(rate * seconds)
    t = np.arange(n) / rate
    env = np.zeros(n)
    start = int(rng.integers(0, n // 2))
    env[start : start + n // 3] = np.hanning(len(env[start : start + n // 3]))
    wave = 0.5 * env * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
    return wave.astype(np.float32)


def make_raw(root: Path, speakers: int = 12, rate: int = RATE) -> Path:
    """Raw folder: commands yes/no/up as tones, two unknown words, two noise recordings."""
    rng = np.random.default_rng(0)
    freqs = {"yes": 440.0, "no": 880.0, "up": 1320.0, "bed": 660.0, "cat": 990.0}
    for word, freq in freqs.items():
        (root / word).mkdir(parents=True, exist_ok=True)
        for s in range(speakers):
            speaker = f"{s:08x}"
            write_wav(
                root / word / f"{speaker}_nohash_0.wav", tone_clip(freq, rate, 1.0, rng), rate
            )
    noise = root / "_background_noise_"
    noise.mkdir(parents=True, exist_ok=True)
    for name in ("white", "hum"):
        n = rate * 12
        if name == "white":
            wave = 0.1 * rng.standard_normal(n)
        else:
            wave = 0.1 * np.sin(2 * np.pi * 50 * np.arange(n) / rate)
        write_wav(noise / f"{name}.wav", wave.astype(np.float32), rate)
    return root


def shared_file(relative: str) -> Path:
    """A file under the shared test data (``$AUDIOCLF_SHARED``, default the repository's
    ``../shared``). Skips the test when it is missing, or fails when AUDIOCLF_REQUIRE_SHARED=1
    (set where the shared folder must be present)."""
    import os

    import pytest

    root = Path(
        os.environ.get("AUDIOCLF_SHARED") or Path(__file__).resolve().parents[1] / ".." / "shared"
    )
    path = root / relative
    if not path.is_file():
        message = f"{path}: shared test data not found (set AUDIOCLF_SHARED to its folder)"
        if os.environ.get("AUDIOCLF_REQUIRE_SHARED") == "1":
            pytest.fail(message + " (AUDIOCLF_REQUIRE_SHARED=1: it must be here)")
        pytest.skip(message)
    return path


# A dvc.lock with the outputs prepare and features had as folders (tracking and UI tests).
DVC_LOCK = """schema: '2.0'
stages:
  prepare:
    outs:
    - path: data/prepared
      hash: md5
      md5: 0123456789abcdef0123456789abcdef.dir
  features:
    outs:
    - path: data/features
      hash: md5
      md5: fedcba9876543210fedcba9876543210.dir
"""
