"""Detect the trigger in a long recording, block by block, with bounded memory.

What ``audioclf detect long.wav`` runs: the file is read in blocks (soundfile), mixed down to
mono and resampled to the detector's rate as a stream (libsoxr), scored by
``audioclf.trigger.streaming.stream_scores`` and turned into events by
``audioclf.trigger.detection.StreamDetector``: the detector evaluation measures
(stages/trigger_evaluate.py streams the negative audio through the same two).

With ``chime``, the recording (mono, at the detector's rate) is written again with a short
chime added at each event, as the course does. A stretch of audio is written once the scores
of every step in it are known (no later event can fall there), so the writer holds only the
samples the detector has not scored yet: at most a window of the detector plus a block.

Memory is bounded by the block and the detector's window, whatever the file's length; an
hour-long file is never loaded whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audioclf.audio_io import AudioError
from audioclf.trigger.detection import DetectConfig, Event, StreamDetector

CHIME_SECONDS = 0.25


def audio_blocks(
    path: str | Path, rate: int, block_seconds: float = 1.0
) -> tuple[Any, Iterator[np.ndarray]]:
    """(the file's ``soundfile.info``, an iterator of its mono float32 blocks at ``rate``):
    each block read from ``block_seconds`` of the file, channels averaged, resampled on the
    fly when the file's rate differs. AudioError, naming the file, when it is not readable audio."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(path, f"not readable as audio ({err})") from None
    if info.frames == 0:
        raise AudioError(path, "contains no audio frames")
    block = max(1, int(round(block_seconds * info.samplerate)))

    def blocks() -> Iterator[np.ndarray]:
        import soxr

        resampler = (
            soxr.ResampleStream(info.samplerate, rate, 1, dtype="float32", quality="HQ")
            if info.samplerate != rate
            else None
        )
        with sf.SoundFile(str(path)) as f:
            for frames in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                mono = frames.mean(axis=1, dtype=np.float32)  # (block,)
                out = mono if resampler is None else resampler.resample_chunk(mono)
                if len(out):
                    yield out
        if resampler is not None:  # what the resampler still holds
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield tail

    return info, blocks()


def chime(rate: int, seconds: float = CHIME_SECONDS) -> np.ndarray:
    """Two rising tones (880 then 1320 Hz) under a Hann envelope, peak 0.5: float32 (n,)."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    freq = np.where(t < seconds / 2, 880.0, 1320.0)
    return (0.5 * np.hanning(n) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


class ChimeWriter:
    """Writes the stream to a 16-bit WAV with a chime at each event, a stretch at a time."""

    def __init__(self, path: str | Path, rate: int) -> None:
        self.rate = rate
        self.chime = chime(rate)
        self.file = sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16")
        self.pending = np.zeros(0, np.float32)  # samples read, not written
        self.written = 0  # samples written
        self.chimes: list[int] = []  # start samples of chimes not yet wholly written

    def audio(self, samples: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, samples])

    def event(self, seconds: float) -> None:
        self.chimes.append(int(round(seconds * self.rate)))

    def flush(self, upto_seconds: float | None = None) -> None:
        """Write the samples before ``upto_seconds`` (all with None) with their chimes."""
        end = self.written + len(self.pending)
        if upto_seconds is not None:
            end = min(end, int(upto_seconds * self.rate))
        if end <= self.written:
            return
        out = self.pending[: end - self.written].copy()
        for start in self.chimes:
            a, b = max(start, self.written), min(start + len(self.chime), end)
            if a < b:
                out[a - self.written : b - self.written] += self.chime[a - start : b - start]
        self.file.write(np.clip(out, -1.0, 1.0))
        self.pending = self.pending[end - self.written :]
        self.written = end
        self.chimes = [s for s in self.chimes if s + len(self.chime) > end]

    def close(self) -> None:
        self.flush()
        self.file.close()


@dataclass
class Listened:
    """What a run over a file gave, once it is done."""

    seconds: float  # audio duration at the detector's rate
    wall_seconds: float  # reading, scoring, detecting and writing
    events: int

    @property
    def real_time_factor(self) -> float:
        """Processing time / audio time: below 1 is faster than real time."""
        return self.wall_seconds / self.seconds if self.seconds else float("nan")


def listen(
    detector,
    blocks: Iterator[np.ndarray],
    cfg: DetectConfig,
    chime_path: str | Path | None = None,
    done: Listened | None = None,
) -> Iterator[Event]:
    """Events of the stream ``blocks`` (mono float32 at ``detector.sample_rate``) as they are
    found; ``done`` (if given) is filled in at the end. With ``chime_path``, the stream is
    written there with a chime at each event."""
    from audioclf.trigger.streaming import stream_scores

    start = time.perf_counter()
    writer = ChimeWriter(chime_path, detector.sample_rate) if chime_path else None
    samples = 0

    def read() -> Iterator[np.ndarray]:
        nonlocal samples
        for block in blocks:
            samples += len(block)
            if writer is not None:
                writer.audio(block)
            yield block

    stream = StreamDetector(cfg)
    events = 0
    try:
        for times, scores in stream_scores(detector, read()):
            for event in stream.feed(times, scores):
                events += 1
                if writer is not None:
                    writer.event(event.time)
                yield event
            if writer is not None:  # every step up to times[-1] is scored: final up to there
                writer.flush(float(times[-1]))
    finally:
        if writer is not None:
            writer.close()
    if done is not None:
        done.seconds = samples / detector.sample_rate
        done.wall_seconds = time.perf_counter() - start
        done.events = events
