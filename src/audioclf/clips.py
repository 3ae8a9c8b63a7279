"""Turn any readable WAV into a fixed-length mono clip at the target rate.

What can be converted is converted and noted (mixed down, resampled, cropped, padded, a float
file beyond full scale scaled to peak 1); what cannot is refused with a reason. ``prepare``
lists both kinds in its report.
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
    wave: np.ndarray  # float32 (samples,) at the target rate
    notes: tuple[str, ...]  # what was changed, e.g. "resampled 48000->16000 Hz"


@dataclass(frozen=True)
class Windows:
    clips: np.ndarray  # float32 (clips, n_samples): one file as clip-long rows
    notes: tuple[str, ...]  # what was changed, e.g. "chopped 3.000 s into 3 clips"


@dataclass(frozen=True)
class Pcm16:
    """Where the samples of a plain 16-bit PCM RIFF/WAVE file are: read them with NumPy."""

    rate: int
    channels: int
    offset: int  # bytes from the start of the file to the first sample
    frames: int


def check_riff(path: str | Path, data: bytes) -> Pcm16 | None:
    """Refuse a WAV whose data chunk is shorter than its header declares (a cut-off copy);
    return where its samples are if it is plain 16-bit PCM (the Speech Commands format).
    ``data`` is the whole file ``path``.

    libsndfile quietly reads what is there; a keyword cut off midway is bad training data.
    The PCM16 layout lets ``load_audio`` take the samples straight from the bytes it read:
    libsndfile gives the same numbers (int16 / 32768) at several times the cost per 1-s clip.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None  # not RIFF/WAVE: leave it to libsndfile to accept or refuse
    fmt, at, size = None, 12, len(data)
    while True:
        if size - at < 8:
            raise AudioError(path, f"truncated (no data chunk in {size} bytes)")
        tag, length = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        at += 8
        if tag == b"fmt " and length >= 16 and size - at >= 16:
            fmt = struct.unpack_from("<HHIIHH", data, at)  # tag, channels, rate, _, _, bits
        elif tag == b"data":
            have = size - at
            if have < length:
                raise AudioError(
                    path, f"truncated (header declares {length} bytes of audio, file holds {have})"
                )
            if fmt is None or fmt[0] != 1 or fmt[5] != 16 or fmt[1] < 1 or fmt[2] < 1:
                return None  # not plain PCM16: libsndfile reads it
            return Pcm16(fmt[2], fmt[1], at, length // (2 * fmt[1]))
        at += length + (length & 1)  # chunks are padded to even sizes


def read_pcm16(path: str | Path, data: bytes, where: Pcm16) -> np.ndarray:
    """float32 (frames, channels) in [-1, 1) from a plain PCM16 file's bytes ``data``, as
    libsndfile scales."""
    if where.frames == 0:
        raise AudioError(path, "contains no audio frames (truncated?)")
    count = where.frames * where.channels
    pcm = np.frombuffer(data, dtype="<i2", count=count, offset=where.offset)
    return (pcm.astype(np.float32) * np.float32(1 / 32768)).reshape(-1, where.channels)


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
    try:
        with open(path, "rb") as f:  # one read: a 1-s 16 kHz clip is 32 KB
            data = f.read()
    except OSError:
        data = b""  # missing, a folder, unreadable: read_wav says which
    pcm16 = check_riff(path, data) if data else None
    if pcm16 is not None:
        frames, rate = read_pcm16(path, data, pcm16), pcm16.rate
    else:
        del data
        frames, rate = read_wav(path)
    notes = []
    peak = 0.0 if pcm16 else float(np.max(np.abs(frames)))  # float files may exceed 1 (PCM not)
    if peak > 1.0:
        # Scaled, not clipped (that would flatten most of a clip far beyond 1) nor kept (it
        # would be louder than any other clip, and mixing and WAV writing assume [-1, 1]).
        frames = frames * np.float32(1.0 / peak)
        notes.append(f"samples beyond full scale (peak {peak:.3f}): scaled by 1/{peak:.3f}")
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


def chop(wave: np.ndarray, n_samples: int) -> np.ndarray:
    """Cut a recording into consecutive ``n_samples`` windows: (windows, n_samples).

    A last part of at least half a window is kept, zero-padded; a recording shorter than one
    window gives one padded window.
    """
    k = max(1, len(wave) // n_samples + (len(wave) % n_samples >= n_samples / 2))
    out = np.zeros((k, n_samples), dtype=np.float32)
    flat = wave[: k * n_samples]
    out.reshape(-1)[: len(flat)] = flat
    return out


def load_windows(path: str | Path, sample_rate: int, n_samples: int, mode: str) -> Windows:
    """A file as rows of exactly ``n_samples``: (1, n) padded/cropped (``mode="crop"``) or
    (windows, n) chopped (``mode="chop"``)."""
    if mode == "crop":
        loaded = load_clip(path, sample_rate, n_samples)
        return Windows(loaded.wave[None], loaded.notes)
    loaded = load_audio(path, sample_rate)
    windows = chop(loaded.wave, n_samples)
    notes = list(loaded.notes)
    if len(windows) > 1:
        notes.append(f"chopped {len(loaded.wave) / sample_rate:.3f} s into {len(windows)} clips")
    elif len(loaded.wave) < n_samples:
        notes.append(
            f"padded {len(loaded.wave) / sample_rate:.3f} s to {n_samples / sample_rate:.3f} s"
        )
    return Windows(windows, tuple(notes))


def load_rows(
    args: tuple[str | Path, int, int, str],
) -> tuple[np.ndarray | None, tuple[str, ...] | AudioError]:
    """``load_windows(path, sample_rate, n_samples, mode)`` as (rows, notes), or (None, the
    AudioError): for ``npystream.map_rows``, so one bad file is reported and the rest go on."""
    try:
        loaded = load_windows(*args)
    except AudioError as err:
        return None, err
    return loaded.clips, loaded.notes
