"""Training-set augmentation on waveforms: background-noise mixing and time shift.

Pure functions of (clip, noise, seeded generator). Each augmented copy records the parameters
actually applied, so a run can be audited and replayed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audioclf.config import check
from audioclf.mixing import mix_at_snr


@dataclass(frozen=True)
class AugmentConfig:
    name: str = "none"  # label shown in MLflow and the comparison table
    copies: int = 0  # augmented copies per training clip, added to the clean ones; 0 = off
    noise_probability: float = 0.8  # chance a copy gets background noise
    snr_db: tuple[float, float] = (0.0, 20.0)  # signal-to-noise range (dB), uniform
    shift_ms: float = 100.0  # time shift, uniform in [-shift_ms, +shift_ms]
    seed: int = 1234

    def __post_init__(self) -> None:
        check(self.copies >= 0, "copies", f"must be >= 0, got {self.copies}")
        check(
            0 <= self.noise_probability <= 1,
            "noise_probability",
            f"must be in [0, 1], got {self.noise_probability}",
        )
        check(self.snr_db[0] <= self.snr_db[1], "snr_db", f"needs [low, high], got {self.snr_db}")
        check(self.shift_ms >= 0, "shift_ms", f"must be >= 0 ms, got {self.shift_ms}")


@dataclass(frozen=True)
class Applied:
    """What one augmented copy got; ``noise`` is "" when no noise was mixed in."""

    source_index: int
    shift_samples: int
    noise: str
    noise_start: int
    snr_db: float


def time_shift(wave: np.ndarray, shift: int) -> np.ndarray:
    """Shift right by ``shift`` samples (left if negative), filling with zeros; same length."""
    out = np.zeros_like(wave)
    if shift >= 0:
        out[shift:] = wave[: len(wave) - shift]
    else:
        out[:shift] = wave[-shift:]
    return out


def augment_clip(
    wave: np.ndarray,
    index: int,
    noises: dict[str, np.ndarray],
    cfg: AugmentConfig,
    sample_rate: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, Applied]:
    """One augmented copy of ``wave`` (float32, (samples,)) and the parameters applied."""
    max_shift = int(round(cfg.shift_ms * sample_rate / 1000))
    shift = int(rng.integers(-max_shift, max_shift + 1)) if max_shift else 0
    out = time_shift(wave, shift)
    usable = sorted(k for k, v in noises.items() if len(v) >= len(wave))
    if usable and rng.uniform() < cfg.noise_probability:
        name = usable[int(rng.integers(len(usable)))]
        start = int(rng.integers(0, len(noises[name]) - len(wave) + 1))
        snr = float(rng.uniform(*cfg.snr_db))
        out = mix_at_snr(out, noises[name][start : start + len(wave)], snr)
        return np.clip(out, -1.0, 1.0), Applied(index, shift, name, start, snr)
    return out, Applied(index, shift, "", 0, float("nan"))


def augment_set(
    waves: np.ndarray, noises: dict[str, np.ndarray], cfg: AugmentConfig, sample_rate: int
) -> tuple[np.ndarray, np.ndarray, list[Applied]]:
    """``cfg.copies`` copies of each clip: (copies*clips, samples) waves, source rows, params.

    Each copy's generator is seeded from (seed, copy, clip), so the result does not depend
    on the order or chunking of the work.
    """
    out = np.empty((cfg.copies * len(waves), waves.shape[1]), dtype=np.float32)
    sources = np.empty(cfg.copies * len(waves), dtype=np.int64)
    applied = []
    k = 0
    for copy in range(cfg.copies):
        for i in range(len(waves)):
            rng = np.random.default_rng([cfg.seed, copy, i])
            out[k], a = augment_clip(waves[i], i, noises, cfg, sample_rate, rng)
            sources[k] = i
            applied.append(a)
            k += 1
    return out, sources, applied
