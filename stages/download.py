"""Stage `download`: materialise the raw dataset under data/raw.

For ``data.name: synthetic`` (the default) nothing is downloaded: spoken commands are
generated offline with espeak-ng, deterministically (same params -> byte-identical files).

Reads:  nothing (synthetic)
Writes: data/raw/<word>/<speaker>_nohash_<n>.wav, data/raw/_background_noise_/*.wav
Params: data.name, data.download
"""

from __future__ import annotations

from pathlib import Path

from audioclf.atomic import atomic_dir
from audioclf.config import ConfigError, load_params, parse, section
from audioclf.report import StageTimer
from audioclf.synth import SyntheticConfig, generate

OUT = Path("data/raw")
DATASETS = ("synthetic",)


def main() -> None:
    timer = StageTimer("download")
    params = load_params()
    name = section(params, "data.name")
    if name not in DATASETS:
        raise ConfigError(
            f"data.name: unknown dataset {name!r}. Available: {', '.join(DATASETS)} "
            "(pick one with `dvc exp run -S data=<name>`)"
        )
    cfg = parse(SyntheticConfig, section(params, "data.download"), "data.download")
    with atomic_dir(OUT) as tmp:
        s = generate(cfg, tmp, progress=True)
    timer.summary(
        "nothing (synthetic dataset, generated offline with espeak-ng)",
        f"{s.clips} clips of {len(s.clips_per_word)} words by {s.speakers} speakers and "
        f"{len(s.noise_files)} background-noise recordings to {OUT}",
        f"{s.noisy_fraction:.0%} of clips noisy, median SNR {s.snr_db_median:.1f} dB",
    )


if __name__ == "__main__":
    main()
