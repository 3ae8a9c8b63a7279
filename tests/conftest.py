"""Shared fixtures: a tiny dataset in the Speech Commands layout, made of generated signals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from audioclf.audio_io import write_wav

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COMMANDS = ("yes", "no", "up")


def tone_clip(freq: float, rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A short tone burst at a random place in the clip plus a little noise: float32 (samples,)."""
    n = int(rate * seconds)
    t = np.arange(n) / rate
    env = np.zeros(n)
    start = int(rng.integers(0, n // 2))
    env[start : start + n // 3] = np.hanning(len(env[start : start + n // 3]))
    wave = 0.5 * env * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
    return wave.astype(np.float32)


def make_raw(root: Path, speakers: int = 12, rate: int = 16000) -> Path:
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


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    return make_raw(tmp_path / "data" / "raw")
