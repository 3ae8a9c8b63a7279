"""The corrupted test suite: the clean test clips spoiled in named, frozen ways.

``evaluate.corruptions`` maps a corruption type to its severities, each a name and the
type's arguments: ``noise: {snr10: {snr_db: 10}}`` is the set ``noise_snr10``, reported as
``test/acc_noise_snr10``. Every argument is frozen (a severity is one value, not a range); what
is still drawn per clip (which noise recording and where in it, the direction of a shift) comes
from (``evaluate.corruption_seed``, set name, clip index) and is recorded, so the suite is the
same for every model and every run.

Each corruption type is a factory registered in ``CORRUPTIONS`` (``audioclf.transforms``),
the way training transforms are: adding one is a decorated function here. Most are
audiomentations transforms with min = max; ``speed`` (tempo and pitch together, like playing a
tape faster) is not in audiomentations and is a resample here.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audioclf.clips import fit_length, resample
from audioclf.config import ConfigError
from audioclf.transforms import Chain, ChainWorker, Registry

CORRUPTIONS = Registry("corruption")


class Speed:
    """Play the clip ``factor`` times as fast (pitch moves with it), then pad/crop the centre."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.parameters: dict[str, Any] = {}

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        # Resampling to rate/factor and playing back at rate speeds up by factor.
        out = resample(samples, sample_rate, int(round(sample_rate / self.factor)))
        self.parameters = {"should_apply": True, "factor": self.factor}
        return fit_length(out, len(samples))


class SignedShift:
    """Shift by exactly ``seconds``, earlier or later (drawn per clip), zero-filled."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.parameters: dict[str, Any] = {}

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        from audiomentations import Shift

        # Seeded per clip by the caller (``augment.seeded``), like audiomentations' own draws.
        s = self.seconds if random.random() < 0.5 else -self.seconds
        shift = Shift(min_shift=s, max_shift=s, shift_unit="seconds", rollover=False, p=1.0)
        out = shift(samples, sample_rate=sample_rate)
        self.parameters = {"should_apply": True, "seconds": s}
        return out


class Series:
    """Several audiomentations transforms in a row, reported as one set of ``parameters``."""

    def __init__(self, transforms: list, parameters: dict[str, Any]) -> None:
        self.transforms = transforms
        self.parameters = {"should_apply": True, **parameters}

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        for t in self.transforms:
            samples = t(samples, sample_rate=sample_rate)
        return samples


@CORRUPTIONS.register("noise")
def noise(snr_db: float, noise_files: list[Path]):
    """Held-out background noise (the test part of the noise recordings) at ``snr_db``."""
    from audiomentations import AddBackgroundNoise

    files = [str(p) for p in noise_files]
    return AddBackgroundNoise(files, min_snr_db=snr_db, max_snr_db=snr_db, p=1.0)


@CORRUPTIONS.register("speed")
def speed(factor: float):
    if not 0.25 <= factor <= 4:
        raise ConfigError(f"speed factor must be in [0.25, 4], got {factor}")
    return Speed(factor)


@CORRUPTIONS.register("pitch")
def pitch(semitones: float):
    from audiomentations import PitchShift

    return PitchShift(min_semitones=semitones, max_semitones=semitones, p=1.0)


@CORRUPTIONS.register("shift")
def shift(seconds: float):
    if seconds <= 0:
        raise ConfigError(f"shift seconds must be > 0, got {seconds}")
    return SignedShift(seconds)


@CORRUPTIONS.register("telephone")
def telephone(low_hz: float = 300.0, high_hz: float = 3400.0):
    """The telephone band: 4th-order high-pass at ``low_hz`` and low-pass at ``high_hz``."""
    from audiomentations import HighPassFilter, LowPassFilter

    if not 0 < low_hz < high_hz:
        raise ConfigError(f"telephone needs 0 < low_hz < high_hz, got {low_hz}, {high_hz}")
    return Series(
        [
            HighPassFilter(low_hz, low_hz, min_rolloff=24, max_rolloff=24, p=1.0),
            LowPassFilter(high_hz, high_hz, min_rolloff=24, max_rolloff=24, p=1.0),
        ],
        {"low_hz": low_hz, "high_hz": high_hz},
    )


@CORRUPTIONS.register("clipping")
def clipping(percentile: int):
    """Clip the loudest ``percentile`` % of samples (half at each sign)."""
    from audiomentations import ClippingDistortion

    return ClippingDistortion(percentile, percentile, p=1.0)


@CORRUPTIONS.register("reverb")
def reverb(rt60: float):
    """A 5 x 4 x 3 m room with reverberation time ``rt60`` (s); talker 1 m from the mic."""
    from audiomentations import RoomSimulator

    room = {"size_x": 5.0, "size_y": 4.0, "size_z": 3.0, "target_rt60": rt60}
    place = {"source_x": 2.0, "source_y": 2.0, "source_z": 1.5, "mic_distance": 1.0}
    place |= {"mic_azimuth": 0.0, "mic_elevation": 0.0}
    return RoomSimulator(
        **{f"{m}_{k}": v for k, v in (room | place).items() for m in ("min", "max")},
        calculation_mode="rt60",
        use_ray_tracing=False,
        leave_length_unchanged=True,
        p=1.0,
    )


@dataclass(frozen=True)
class CorruptedSet:
    name: str  # "<type>_<severity>", the metric suffix
    type: str
    severity: str
    params: dict[str, Any]


def parse_corruptions(data: Any, key: str = "evaluate.corruptions") -> list[CorruptedSet]:
    """Validate ``evaluate.corruptions`` (type -> severity -> arguments) into sets."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{key}: expected a mapping of corruption types, got {data!r}")
    sets = []
    for type_, severities in data.items():
        if type_ not in CORRUPTIONS:
            known = ", ".join(CORRUPTIONS.names())
            raise ConfigError(f"{key}.{type_}: unknown corruption. Known: {known}")
        if not isinstance(severities, Mapping) or not severities:
            raise ConfigError(
                f"{key}.{type_}: expected named severities, e.g. {{mild: {{...}}}}, "
                f"got {severities!r}"
            )
        for severity, args in severities.items():
            sub = f"{key}.{type_}.{severity}"
            if not str(severity).isidentifier():
                raise ConfigError(f"{sub}: a severity name must be letters, digits and _")
            if not isinstance(args, Mapping):
                raise ConfigError(f"{sub}: expected a mapping of arguments, got {args!r}")
            params = CORRUPTIONS.check(type_, args, sub)
            sets.append(CorruptedSet(f"{type_}_{severity}", type_, str(severity), params))
    return sets


def set_key(name: str) -> int:
    """A stable number for a set's name: adding or removing a set never changes another."""
    return zlib.crc32(name.encode())


def corrupter(
    sets: list[CorruptedSet], noise_files: list[Path], sample_rate: int, source: Path | None = None
) -> ChainWorker:
    """The worker that spoils clip ``i`` for set ``k``: ``.apply(k, (seed, set_key(name), i),
    clip)``. Every set is built once here: a bad argument fails before the work starts."""
    chains = [
        Chain(
            CORRUPTIONS,
            (s.type,),
            (s.params,),
            (f"evaluate.corruptions.{s.type}.{s.severity}",),
            (s.type,),
        )
        for s in sets
    ]
    for c in chains:
        c.build(noise_files)
    return ChainWorker(chains, list(noise_files), sample_rate, source)
