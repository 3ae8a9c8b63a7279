"""Hard-negative mining: Mycroft Precise's incremental training, as two reproducible stages.

Round 0 is the detector trigger_train exports (data/trigger/round0/). ``trigger_mine`` runs it
over ``mine.wav`` (trigger-free audio made from the *training* speakers and backgrounds only,
never a validation or test voice or the held-out noise) exactly as ``audioclf detect`` runs
(``audioclf.trigger.listen.listen``: block-by-block reading, ``stream_scores``,
``StreamDetector``), at the mining threshold ``trigger.mine.threshold`` with the detection's
smoothing and refractory period. Every event there is a false accept (the audio holds no
trigger). Each becomes a hard-negative training clip: a clip-length window of ``mine.wav``
that holds the false accept's step in its last half (placement uniform, seeded per false
accept), so the clip has the context that made the detector fire, as streaming gave it;
its labels are all 0. ``trigger_finetune`` then continues training the round-0 network on
the training clips (all by default, or a seeded subset) plus the mined clips, and exports the
final detector (data/trigger/model/), which trigger_evaluate measures and ``audioclf detect``
uses.

Continued rather than retrained: retraining from scratch costs the whole of trigger_train
again (its 10 epochs took 262 s of fitting, 356 s in all, of the default run's 10 minutes on
2 loaded cores); 2 epochs from round 0 at a lower learning rate cost about 45 s of fitting,
and start from a detector that already finds the trigger. The training clips keep positives
in every batch, so the network is not taught to say 0 everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from audioclf.config import check
from audioclf.trigger.detection import DetectConfig, Event


@dataclass(frozen=True)
class MineConfig:
    """``trigger.mine`` (conf/trigger/mine/): mining and the next round's training."""

    name: str = "default"  # label of this option in params and MLflow
    threshold: float = 0.3  # mining threshold on the smoothed score (detect's is the default 0.5)
    max_clips: int = 500  # most hard-negative clips kept (the highest-scoring false accepts)
    seed: int = 7  # window placement and the training subset
    epochs: int = 2  # of continued training; 0 = mining off: the final model is round 0's
    learning_rate: float = 5e-4  # peak of the cosine decay (Adam), below training's
    batch_size: int = 32
    train_clips: int | None = None  # training clips mixed with the mined ones; None = all

    def __post_init__(self) -> None:
        check(
            0.0 <= self.threshold <= 1.0,
            "threshold",
            f"must be in [0, 1] (a smoothed sigmoid score), got {self.threshold}",
        )
        check(self.max_clips >= 1, "max_clips", f"must be >= 1, got {self.max_clips}")
        check(self.epochs >= 0, "epochs", f"must be >= 0 (0 = mining off), got {self.epochs}")
        check(self.learning_rate > 0, "learning_rate", f"must be > 0, got {self.learning_rate}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(
            self.train_clips is None or self.train_clips >= 1,
            "train_clips",
            f"must be >= 1 or null (every training clip), got {self.train_clips}",
        )

    @property
    def enabled(self) -> bool:
        return self.epochs > 0


def mining_detect_config(detect: DetectConfig, cfg: MineConfig) -> DetectConfig:
    """The detection users get (smoothing, refractory period), at the mining threshold."""
    return replace(detect, threshold=cfg.threshold)


def false_accepts(detector, blocks, detect: DetectConfig) -> list[Event]:
    """Every event of the stream ``blocks`` (mono float32 at the detector's rate, trigger-free
    audio), found by the code ``audioclf detect`` runs."""
    from audioclf.trigger.listen import listen

    return list(listen(detector, blocks, detect))


def keep(events: list[Event], max_clips: int) -> list[int]:
    """Indices of the events kept, in time order: all, or the ``max_clips`` highest scores
    (the hardest negatives; on equal scores the earlier)."""
    if len(events) <= max_clips:
        return list(range(len(events)))
    order = sorted(range(len(events)), key=lambda i: (-events[i].score, i))
    return sorted(order[:max_clips])


def place_windows(
    times: list[float], keys: list[int], n_samples: int, clip_samples: int, rate: int, seed: int
) -> list[int]:
    """Start sample of each false accept's window (``clip_samples`` long, inside the
    recording of ``n_samples``). The event at ``t`` s ends its step at sample ``round(t *
    rate)``, which falls ``p`` samples into its window, ``p`` uniform in [clip / 2, clip]
    from ``default_rng([seed, key])``, ``key`` the event's index among all the false accepts
    (so a window does not depend on how many are kept); a window that would pass an end of
    the recording is moved inside it."""
    if n_samples < clip_samples:
        raise ValueError(
            f"the mining audio ({n_samples} samples) is shorter than a clip ({clip_samples}); "
            "raise trigger.data.mine_minutes"
        )
    starts = []
    for t, key in zip(times, keys, strict=True):
        rng = np.random.default_rng([seed, key])
        at = int(round(t * rate))
        p = int(rng.integers(clip_samples // 2, clip_samples + 1))
        starts.append(int(np.clip(at - p, 0, n_samples - clip_samples)))
    return starts


def nearest_word(events: list[dict], t: float, within: float = 1.5) -> str | None:
    """The word of ``mine.jsonl``'s ``events`` that ended last at or before ``t`` s, if it
    ended at most ``within`` s before (the likely cause of a false accept at ``t``)."""
    before = [e for e in events if e["start"] <= t and t - within <= e["end"]]
    return max(before, key=lambda e: e["end"])["word"] if before else None


def subset(n: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` of ``n`` training clips drawn without replacement (all
    with None or size >= n): int64 (size,)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 1]).choice(n, size, replace=False))


def with_hard_negatives(
    x: np.ndarray, y: np.ndarray, x_mined: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The next round's training set: the training clips' features ``x`` (n, frames, bins)
    and labels ``y`` (n, steps), then the mined clips' features (m, frames, bins) with
    labels all 0 (the mining audio holds no trigger): (n + m, frames, bins), (n + m, steps)
    of ``y``'s dtype."""
    if x_mined.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"mined clips' features {x_mined.shape[1:]} differ from the training clips' "
            f"{x.shape[1:]}: the mined clips must be training-clip length"
        )
    zeros = np.zeros((len(x_mined), y.shape[1]), y.dtype)
    return np.concatenate([x, x_mined.astype(x.dtype)]), np.concatenate([y, zeros])
