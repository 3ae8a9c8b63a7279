"""Training-set augmentation: a named chain of waveform transforms, mostly audiomentations'.

``TRANSFORMS`` maps our names to transform factories (``audioclf.transforms.Registry``): the
audiomentations classes with the arguments we fix, and any transform of our own registered the
same way. The settings of every transform (probability ``p`` and ranges, the factory's own
keyword arguments) live in ``augment.transforms``; ``augment.chain`` says which of them run, in
that order. SpecAugment is not here: it masks spectrograms inside the model while it trains
(``audioclf.specaugment``); its settings are ``augment.spec_augment``.

Every copy is seeded by (seed, copy, clip) (``audioclf.transforms.seeded``): a copy's result
depends only on those numbers, never on the order, chunking or process the work ran in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioclf.config import check
from audioclf.specaugment import SpecAugmentConfig
from audioclf.transforms import Audiomentations, Chain, ChainWorker, Registry

TRANSFORMS = Registry("transform")
# The arguments we fix keep every transform length-preserving and its ranges in physical units.
TRANSFORMS.register(
    "time_stretch", Audiomentations("TimeStretch", {"leave_length_unchanged": True})
)
TRANSFORMS.register("pitch_shift", Audiomentations("PitchShift"))
TRANSFORMS.register("shift", Audiomentations("Shift", {"shift_unit": "seconds", "rollover": False}))
TRANSFORMS.register(
    "reverb",
    Audiomentations(
        "RoomSimulator",
        {"calculation_mode": "rt60", "use_ray_tracing": False, "leave_length_unchanged": True},
    ),
)
TRANSFORMS.register("band_pass", Audiomentations("BandPassFilter"))
TRANSFORMS.register("gain", Audiomentations("Gain"))
# The training part of the noise recordings.
TRANSFORMS.register(
    "background_noise", Audiomentations("AddBackgroundNoise", noise_files_as="sounds_path")
)
TRANSFORMS.register("gaussian_noise", Audiomentations("AddGaussianSNR"))


@dataclass(frozen=True)
class AugmentConfig:
    name: str = "none"  # label shown in MLflow and the comparison table
    copies: int = 0  # augmented copies per training clip, added to the clean ones; 0 = off
    seed: int = 1234
    chain: tuple[str, ...] = ()  # transforms applied to each copy, in this order
    transforms: dict[str, dict[str, Any]] = field(default_factory=dict)  # settings by name
    spec_augment: SpecAugmentConfig = SpecAugmentConfig()

    def __post_init__(self) -> None:
        check(self.copies >= 0, "copies", f"must be >= 0, got {self.copies}")
        check(
            not self.chain or self.copies > 0,
            "copies",
            f"is 0, so the chain {list(self.chain)} would never run; set copies >= 1",
        )
        for name in self.chain:
            check(
                name in TRANSFORMS,
                "chain",
                f"unknown transform {name!r}. Known: {', '.join(TRANSFORMS.names())}",
            )
            check(
                name in self.transforms,
                "chain",
                f"{name!r} has no settings under augment.transforms.{name}",
            )
        for name, settings in self.transforms.items():
            # Every listed setting is valid, chained or not.
            TRANSFORMS.check(name, settings, f"augment.transforms.{name}")


def chain(cfg: AugmentConfig) -> Chain:
    """The configured chain (built in each process that runs it)."""
    return Chain(
        TRANSFORMS,
        cfg.chain,
        tuple(cfg.transforms[n] for n in cfg.chain),
        tuple(f"augment.transforms.{n}" for n in cfg.chain),
        cfg.chain,
    )


def augmenter(
    cfg: AugmentConfig, noise_files: list[Path], sample_rate: int, source: Path | None = None
) -> ChainWorker:
    """The worker that makes copy ``c`` of clip ``i``: ``.apply(0, (cfg.seed, c, i), clip)``;
    a setting audiomentations refuses fails here, before the work starts."""
    worker = ChainWorker([chain(cfg)], list(noise_files), sample_rate, source)
    worker.chains[0].build(noise_files)
    return worker
