"""Turn any readable WAV into a fixed-length mono clip at the target rate.

What can be converted is converted and noted (mixed down, resampled, cropped, padded); what
cannot is refused with a reason. ``prepare`` lists both kinds in its report.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from audioclf.audio_io import AudioError, read_wav


@dataclass(frozen=True)
class Loaded:
    wave: np.ndarray  # float32 (n_samples,) at the target rate
    notes: tuple[str, ...]  # what was changed, e.g. "resampled 48000->16000 Hz"


def check_riff(path: Path) -> None:
    """Refuse a WAV whose data chunk is shorter than its header declares (a cut-off copy).

    libsndfile quietly reads what is there; a keyword cut off midway is bad training data.
    """
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # not RIFF/WAVE: leave it to libsndfile to accept or refuse
        size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise AudioError(path, f"truncated (no data chunk in {size} bytes)")
            tag, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if tag == b"data":
                have = size - f.tell()
                if have < length:
                    raise AudioError(
                        path,
                        f"truncated (header declares {length} bytes of audio, file holds {have})",
                    )
                return
            f.seek(length + (length & 1), 1)  # chunks are padded to even sizes


def to_mono(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) by averaging the channels."""
    return frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]


def resample(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling (libsoxr, 'HQ'); a no-op when the rates match."""
    if rate_in == rate_out:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave, rate_in, rate_out, quality="HQ").astype(np.float32)


def fit_length(wave: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad at the end or crop the centre to exactly ``n_samples``.

    Centre crop keeps a word that sits in the middle of a long recording.
    """
    if len(wave) >= n_samples:
        start = (len(wave) - n_samples) // 2
        return wave[start : start + n_samples]
    return np.pad(wave, (0, n_samples - len(wave)))


def load_audio(path: str | Path, sample_rate: int) -> Loaded:
    """Read ``path`` as mono at ``sample_rate``, any length; AudioError names the file."""
    path = Path(path)
    if path.is_file() and path.stat().st_size > 0:
        check_riff(path)
    frames, rate = read_wav(path)
    notes = []
    if frames.shape[1] > 1:
        notes.append(f"mixed down from {frames.shape[1]} channels")
    wave = to_mono(frames)
    if rate != sample_rate:
        notes.append(f"resampled {rate}->{sample_rate} Hz")
        wave = resample(wave, rate, sample_rate)
    return Loaded(wave, tuple(notes))


def load_clip(path: str | Path, sample_rate: int, n_samples: int) -> Loaded:
    """``load_audio`` then pad or crop to exactly ``n_samples``."""
    loaded = load_audio(path, sample_rate)
    wave, notes = loaded.wave, list(loaded.notes)
    if len(wave) > n_samples:
        notes.append(f"cropped {len(wave) / sample_rate:.3f} s to {n_samples / sample_rate:.3f} s")
    elif len(wave) < n_samples:
        notes.append(f"padded {len(wave) / sample_rate:.3f} s to {n_samples / sample_rate:.3f} s")
    return Loaded(fit_length(wave, n_samples), tuple(notes))


def try_load_clip(args: tuple[str | Path, int, int]) -> Loaded | AudioError:
    """``load_clip(path, sample_rate, n_samples)`` returning the error instead of raising it.

    For ``parallel.ordered_map``: one bad file is reported and skipped, the rest go on.
    """
    path, sample_rate, n_samples = args
    try:
        return load_clip(path, sample_rate, n_samples)
    except AudioError as err:
        return err
