"""Per-step labels of a clip from its recorded events.

The detector emits one score per output step; step i stands for the time ``step_times[i]``
(s from the clip start; see audioclf.trigger.export.Detector.step_times). A step is labelled 1
during the ``label_seconds`` that follow the end of each trigger word, as the reference
labels the 50 output steps (of 1375 per 10 s, i.e. 0.36 s) after "activate": the network
learns to fire just after the word has been heard in full, never before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def step_labels(
    events: Iterable[Mapping[str, Any]], step_times: np.ndarray, label_seconds: float
) -> np.ndarray:
    """uint8 array shaped like ``step_times``: 1 at step time t iff some event of kind
    "trigger" has ``end < t <= end + label_seconds`` (all in s); 0 elsewhere.

    ``events``: a clip's events as written to events.jsonl (dicts with "kind" and "end" at
    least); other kinds ("negative") never give a 1.
    """
    if not label_seconds > 0:
        raise ValueError(f"label_seconds: must be > 0 s, got {label_seconds}")
    times = np.asarray(step_times, dtype=np.float64)
    labels = np.zeros(times.shape, dtype=np.uint8)
    for event in events:
        if event["kind"] != "trigger":
            continue
        end = float(event["end"])
        labels[(times > end) & (times <= end + label_seconds)] = 1
    return labels
