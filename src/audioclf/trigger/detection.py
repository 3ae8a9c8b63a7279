"""Per-step trigger scores -> detection events: smoothing, threshold, refractory period.

The one detector that evaluation (stages/trigger_evaluate.py) and the command line
(``audioclf detect``) both run, so what is measured is what users get. Pure NumPy.

Given step times ``t_i`` (s, increasing) and raw scores ``x_i`` (the network's per-step
sigmoid outputs):

1. **Smoothing** (causal moving average over ``k = smooth_steps`` steps):
   ``s_i = (x_{i-k+1} + ... + x_i) / min(k, i + 1)``: at the stream start the mean of the steps
   seen so far. It never looks ahead, so a stream can be smoothed as it comes.
2. **Threshold**: step ``i`` is *active* when ``s_i >= threshold``.
3. **Refractory period**: an event fires at the first active step, and then at each active
   step at least ``refractory_seconds`` after the previous event: ``t_i - t_last >=
   refractory_seconds``. One spoken trigger raises the score for a fraction of a second and
   gives one event when the period is longer than that; a score stuck above the threshold
   fires once per period (each is a false activation a user would hear).

An event is ``Event(time, score)``: the step's time (s) and its smoothed score.

Why this rule rather than "fire on each upward crossing": it makes the number of events on
any stream non-increasing in the threshold (the events are the greedy, hence largest,
subset of active steps spaced by the period; raising the threshold shrinks the active set),
so false accepts per hour fall monotonically along the DET curve's threshold sweep. With
crossings, a higher threshold can split one active stretch into two and add an event.

:class:`StreamDetector` does the same chunk by chunk (state: the last ``k - 1`` raw scores,
how many steps were seen, the last event's time), and :func:`detect` is it fed one chunk,
so both give exactly the same events wherever the chunk boundaries fall (tested): each
smoothed value is summed in the same order from the same numbers either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audioclf.config import check


@dataclass(frozen=True)
class DetectConfig:
    """``trigger.detect`` (conf/trigger/detect/default.yaml)."""

    name: str = "default"  # label of this option in params and MLflow
    smooth_steps: int = 5  # k: moving average over this many steps (1 = no smoothing)
    threshold: float = 0.5  # on the smoothed score, in [0, 1]
    refractory_seconds: float = 1.0  # no second event within this time of the previous one

    def __post_init__(self) -> None:
        check(self.smooth_steps >= 1, "smooth_steps", f"must be >= 1, got {self.smooth_steps}")
        check(
            0.0 <= self.threshold <= 1.0,
            "threshold",
            f"must be in [0, 1] (scores are sigmoid outputs), got {self.threshold}",
        )
        check(
            self.refractory_seconds >= 0.0,
            "refractory_seconds",
            f"must be >= 0, got {self.refractory_seconds}",
        )


@dataclass(frozen=True)
class Event:
    time: float  # s from the stream (or clip) start: the step at which the event fired
    score: float  # the smoothed score there


class StreamDetector:
    """Events from (times, scores) fed chunk by chunk; the same as :func:`detect` on the
    whole sequence. Memory: ``smooth_steps - 1`` scores, whatever the stream's length."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self._history = np.zeros(cfg.smooth_steps - 1)  # the last k - 1 raw scores (0 before)
        self._seen = 0  # steps fed so far
        self._last_time = -np.inf  # the last step's time: times must increase
        self._last_event = -np.inf  # time of the last event

    def feed(self, times: np.ndarray, scores: np.ndarray) -> list[Event]:
        """The events among these steps. ``times`` (n,) s, increasing, after every step fed
        before; ``scores`` (n,) raw per-step scores."""
        times = np.asarray(times, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        if times.ndim != 1 or times.shape != scores.shape:
            raise ValueError(
                f"times and scores: expected two 1-D arrays of one length, got shapes "
                f"{times.shape} and {scores.shape}"
            )
        n = len(times)
        if n == 0:
            return []
        if times[0] <= self._last_time or np.any(np.diff(times) <= 0):
            raise ValueError(
                "times: must increase strictly, across chunks too (each step once, in order)"
            )
        if not np.all(np.isfinite(scores)):
            raise ValueError("scores: contain NaN or infinite values")
        smoothed = self._smooth(scores)
        events, self._last_event = fire(
            times, smoothed, self.cfg.threshold, self.cfg.refractory_seconds, self._last_event
        )
        self._last_time = times[-1]
        return events

    def _smooth(self, scores: np.ndarray) -> np.ndarray:
        """(n,) causal moving averages; advances the history."""
        k, n = self.cfg.smooth_steps, len(scores)
        window = np.concatenate([self._history, scores])  # (k - 1 + n,)
        total = np.zeros(n)
        for j in range(k):  # s_i sums x_{i-k+1} .. x_i in this order, however chunked
            total += window[j : j + n]
        counts = np.minimum(k, self._seen + 1 + np.arange(n))
        if k > 1:
            self._history = window[-(k - 1) :].copy()
        self._seen += n
        return total / counts


def fire(
    times: np.ndarray,
    smoothed: np.ndarray,
    threshold: float,
    refractory_seconds: float,
    last_event: float = -np.inf,
) -> tuple[list[Event], float]:
    """Steps 2 and 3 on smoothed scores: (the events, the last event's time). ``last_event``
    is the previous event's time (s; ``-inf``: none yet). The threshold sweep of the DET
    curve calls this on scores smoothed once."""
    active = np.flatnonzero(smoothed >= threshold)
    active_times = times[active]
    events = []
    j = 0  # the next active step that may fire
    while j < len(active):
        if active_times[j] - last_event < refractory_seconds:
            # Skip to the first active step out of the period (a loop per event, not per
            # step); from 1 ns early, then the exact comparison above, whatever the rounding.
            early = last_event + refractory_seconds - 1e-9
            j = max(j + 1, int(np.searchsorted(active_times, early, "left")))
            continue
        i = active[j]
        events.append(Event(float(times[i]), float(smoothed[i])))
        last_event = float(times[i])
        j += 1
    return events, last_event


def smooth(scores: np.ndarray, smooth_steps: int) -> np.ndarray:
    """The causal moving average of a whole sequence: (n,) float64."""
    detector = StreamDetector(DetectConfig(smooth_steps=smooth_steps))
    return detector._smooth(np.asarray(scores, dtype=np.float64))


def detect(times: np.ndarray, scores: np.ndarray, cfg: DetectConfig) -> list[Event]:
    """Events of one whole sequence (a clip, or a stream already scored): see the module."""
    return StreamDetector(cfg).feed(times, scores)
