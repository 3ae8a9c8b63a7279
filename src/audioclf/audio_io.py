"""Reading and writing WAV clips.

Clips are float32 arrays in [-1, 1], shape (samples,), mono. Files on disk are 16-bit PCM
WAV (the Speech Commands format). Reading goes through libsndfile (soundfile), which handles
8/16/24/32-bit PCM and float WAVs; stereo is mixed down by the caller that asked for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


class AudioError(ValueError):
    """A file that cannot be used as audio; the message says which file and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason  # for reports that list the path separately

    def __reduce__(self):
        # Rebuilt from (path, reason), not from the message: it travels back from the
        # worker processes of the prepare stage, and a failed unpickling hangs the pool.
        return (AudioError, (self.path, self.reason))


def write_wav(path: str | Path, wave: np.ndarray, sample_rate: int) -> None:
    """Write a mono float clip as 16-bit PCM, clipped to [-1, 1] first (beyond, PCM wraps)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"{path}: expected a mono clip of shape (samples,), got {wave.shape}")
    pcm = np.round(np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)
    sf.write(str(path), pcm, int(sample_rate), subtype="PCM_16", format="WAV")


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 (frames, channels) plus its sample rate.

    Raises AudioError (naming the file) for empty, truncated or non-audio files.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise AudioError(path, f"cannot read ({err.strerror})") from None
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(path, f"not readable as audio ({err})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "contains no audio frames (truncated?)")
    if not np.all(np.isfinite(data)):
        raise AudioError(path, "contains NaN or infinite samples")
    return data, int(rate)
