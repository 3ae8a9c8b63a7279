"""The built-in synthetic spoken-command dataset (espeak-ng, generated offline; the default)."""

from __future__ import annotations

from pathlib import Path

from audioclf.datasets import Materialised
from audioclf.synth import SyntheticConfig as Config
from audioclf.synth import generate

__all__ = ["Config", "materialise"]


def materialise(cfg: Config, out: Path, progress: bool = True) -> Materialised:
    s = generate(cfg, out, progress=progress)
    return Materialised(
        "nothing (synthetic dataset, generated offline with espeak-ng)",
        f"{s.clips} clips of {len(s.clips_per_word)} words by {s.speakers} speakers and "
        f"{len(s.noise_files)} background-noise recordings",
        f"{s.noisy_fraction:.0%} of clips noisy, median SNR {s.snr_db_median:.1f} dB",
    )
