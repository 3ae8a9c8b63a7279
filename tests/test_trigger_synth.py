"""Trigger-word data: per-step labels, synthesis of clips and negative audio, the folder
option. Tiny configs, generated signals; seconds, not minutes."""

from __future__ import annotations

import numpy as np
import pytest

from audioclf.trigger.labels import step_labels


def ev(kind: str, start: float, end: float) -> dict:
    return {"kind": kind, "word": "w", "speaker": "s", "start": start, "end": end}


# --- labels ---------------------------------------------------------------------------------


def test_labels_are_one_after_each_trigger_end_for_label_seconds() -> None:
    times = np.arange(1, 11) * 0.1  # 0.1 ... 1.0 s
    labels = step_labels([ev("trigger", 0.1, 0.25)], times, 0.3)
    # end < t <= end + 0.3: 0.3, 0.4, 0.5 (0.55 is past the window)
    assert labels.dtype == np.uint8 and labels.shape == times.shape
    assert labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]


def test_label_window_is_open_at_the_end_and_closed_after_label_seconds() -> None:
    times = np.array([0.5, 0.75, 1.0, 1.25])  # exact in binary
    labels = step_labels([ev("trigger", 0.0, 0.5)], times, 0.5)
    assert labels.tolist() == [0, 1, 1, 0]  # t = end: 0; t = end + label_seconds: 1


def test_negative_events_give_no_label_and_triggers_add_up() -> None:
    times = np.arange(20) * 0.25
    events = [ev("negative", 0.0, 0.5), ev("trigger", 1.0, 1.5), ev("trigger", 3.0, 3.5)]
    labels = step_labels(events, times, 0.5)
    assert np.flatnonzero(labels).tolist() == [7, 8, 15, 16]  # 1.75, 2.0, 3.75, 4.0 s
    assert step_labels(events[:1], times, 0.5).sum() == 0


def test_labels_keep_the_shape_of_step_times() -> None:
    times = np.arange(12, dtype=np.float32).reshape(3, 4) * 0.04
    labels = step_labels([ev("trigger", 0.0, 0.05)], times, 0.1)
    assert labels.shape == (3, 4) and labels.dtype == np.uint8
    assert np.flatnonzero(labels).tolist() == [2, 3]  # 0.08, 0.12 s; 0.16 is past 0.15


def test_label_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="label_seconds: must be > 0"):
        step_labels([], np.zeros(3), 0.0)
