"""Score an audio stream chunk by chunk with bounded memory.

``stream_scores(detector, chunks)`` yields, for each chunk, ``(times, scores)``: the steps
that chunk completes (float64 seconds from the stream start at which each step ends, and
their float32 scores), in order, each step once. Memory is bounded by the chunk size and the
detector's geometry, never by the stream's length. Two ways, by the detector's
``streamable``:

- **Exact (stream_cnn).** Every layer is causal with a finite receptive field ``R`` samples
  and a step of ``S``: the state is the last ``R - S`` samples not yet consumed (at most
  ``R + S`` samples plus one chunk), starting as the ``R - S`` zeros the detector pads in
  front of a wave. Each chunk runs the unpadded model over that state plus the new samples
  (``Detector.unpadded_scores``), so the scores equal scoring the whole signal at once (to
  float rounding; tested within 1e-5). The price is recomputing ``R`` samples per call
  (1.27 s at the defaults): feed chunks of a second or more.
- **Windows (conv_gru).** Its GRUs are causal but their state runs from the clip start, and
  the model was only trained on clips of ``clip_seconds`` from a zero state; carried over an
  hour it would run far outside what it was trained on. So it scores overlapping windows of
  clip length (``W`` samples, a multiple of ``S``) every ``hop`` samples (default half a
  clip, a multiple of ``S``), each window from a fresh state exactly as a training clip.
  The first window gives all its steps; every later one gives only its last ``hop / S``
  steps (those not given yet), which have seen at least ``W - hop`` samples of context (5 s at
  the defaults). This is the approximation: a step's score equals the score the model gives
  inside that window (tested), not the score of one pass over the whole stream, which the
  model never saw in training. As the model is causal, a step's score never needs samples
  after its end, so at the end of the stream the last window is completed with zeros and
  every complete step is given. Latency: a step comes out when its window is full, up to
  ``hop`` after it ends (CNN: at once). Memory: one window plus one chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

# The most samples one model call scores (exact mode), so a huge chunk does not make a huge
# tensor: 30 s at 16 kHz.
MAX_CALL_SAMPLES = 480_000


def stream_scores(
    detector, chunks: Iterable[np.ndarray], hop_seconds: float | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(times, scores) of the steps each chunk completes; ``detector`` an
    ``audioclf.trigger.export.Detector``; ``chunks`` 1-D float32 arrays at its sample rate.
    ``hop_seconds``: the window hop of a non-streamable detector (default half a clip)."""
    if detector.streamable:
        yield from _exact(detector, chunks)
    else:
        yield from _windows(detector, chunks, hop_seconds)


def _chunks(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    for i, chunk in enumerate(chunks):
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"chunk {i}: expected 1-D mono samples, got shape {chunk.shape}")
        yield chunk


def _exact(detector, chunks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    S, R = detector.step_samples, detector.receptive_samples
    state = np.zeros(R - S, np.float32)  # the padding zeros, then the unconsumed samples
    done = 0  # steps given so far
    for chunk in _chunks(chunks):
        state = np.concatenate([state, chunk])
        n = 0 if len(state) < R else 1 + (len(state) - R) // S  # steps now complete
        if n == 0:
            continue
        parts = []
        per_call = max(1, (MAX_CALL_SAMPLES - R) // S + 1)
        for first in range(0, n, per_call):
            k = min(per_call, n - first)
            parts.append(detector.unpadded_scores(state[None, first * S : (k - 1) * S + R])[0])
        scores = np.concatenate(parts)
        yield detector.step_times(done + n)[done:], scores
        done += n
        state = state[n * S :].copy()  # drop what no later step reads


def _windows(
    detector, chunks: Iterable[np.ndarray], hop_seconds: float | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    S = detector.step_samples
    n = detector.clip_samples // S  # steps per window
    W = n * S  # window samples
    hop = W // 2 if hop_seconds is None else int(round(hop_seconds * detector.sample_rate))
    hop = max(S, hop // S * S)
    if hop > W:
        raise ValueError(f"hop_seconds: {hop_seconds} s is longer than a clip ({W} samples)")
    buf = np.zeros(0, np.float32)  # samples from window start `start` on
    start = 0  # samples, on the step grid
    done = 0  # steps given so far
    total = 0  # samples seen

    def emit(window: np.ndarray, upto: int):
        """The window's steps not given yet and ending by sample ``upto``."""
        nonlocal done
        last = min(start // S + n, upto // S)  # exclusive global step index
        if last <= done:
            return None
        scores = detector.scores(window[None])[0]
        out = scores[done - start // S : last - start // S]
        times = detector.step_times(last)[done:]
        done = last
        return times, out

    for chunk in _chunks(chunks):
        buf = np.concatenate([buf, chunk])
        total += len(chunk)
        while len(buf) >= W:
            got = emit(buf[:W], total)
            if got is not None:
                yield got
            buf = buf[hop:].copy()
            start += hop
    if total > done * S and len(buf):  # the last, partial window: complete it with zeros
        window = np.concatenate([buf, np.zeros(W - len(buf), np.float32)])
        got = emit(window, total)
        if got is not None:
            yield got
