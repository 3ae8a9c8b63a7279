"""Training-set augmentation: a named chain of audiomentations waveform transforms.

The transforms themselves are audiomentations' (``TRANSFORMS`` maps our names to its classes);
this module only builds the chain from params, seeds it per clip and records what each copy
got. The settings of every transform (probability ``p`` and ranges, audiomentations' own
keyword arguments) live in ``augment.transforms``; ``augment.chain`` says which of them run, in
that order. SpecAugment is not here: it masks spectrograms inside the model while it trains
(``audioclf.specaugment``); its settings are ``augment.spec_augment``.

audiomentations draws from Python's and NumPy's global generators and takes no generator
argument, so ``seeded`` reseeds both from (seed, copy, clip) before each clip: a copy's result
depends only on those numbers, never on the order, chunking or process the work ran in.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioclf.config import ConfigError, check, convert, parse_kwargs

# Our name -> (audiomentations class name, arguments we fix). The fixed ones keep every
# transform length-preserving and ranges in physical units.
TRANSFORMS: dict[str, tuple[str, dict[str, Any]]] = {
    "time_stretch": ("TimeStretch", {"leave_length_unchanged": True}),
    "pitch_shift": ("PitchShift", {}),
    "shift": ("Shift", {"shift_unit": "seconds", "rollover": False}),
    "reverb": (
        "RoomSimulator",
        {"calculation_mode": "rt60", "use_ray_tracing": False, "leave_length_unchanged": True},
    ),
    "band_pass": ("BandPassFilter", {}),
    "gain": ("Gain", {}),
    "background_noise": ("AddBackgroundNoise", {}),  # + sounds_path: the noise recordings
    "gaussian_noise": ("AddGaussianSNR", {}),
}
NEEDS_NOISE = "background_noise"


@dataclass(frozen=True)
class SpecAugmentConfig:
    """Time and frequency masks on the (standardised) spectrogram, in training only."""

    freq_masks: int = 0  # masks per clip along the frequency axis; 0 = none
    freq_width: int = 0  # each one's width, uniform in [0, freq_width] bins
    time_masks: int = 0  # masks per clip along the time axis
    time_width: int = 0  # each one's width, uniform in [0, time_width] frames

    def __post_init__(self) -> None:
        for name in ("freq_masks", "freq_width", "time_masks", "time_width"):
            check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        return bool(self.freq_masks * self.freq_width or self.time_masks * self.time_width)


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
                f"unknown transform {name!r}. Known: {', '.join(TRANSFORMS)}",
            )
            check(
                name in self.transforms,
                "chain",
                f"{name!r} has no settings under augment.transforms.{name}",
            )
        for name, settings in self.transforms.items():
            transform_kwargs(name, settings)  # every listed setting is valid, chained or not


def transform_class(name: str) -> type:
    import audiomentations

    return getattr(audiomentations, TRANSFORMS[name][0])


def transform_kwargs(name: str, settings: Any) -> dict[str, Any]:
    """Validate ``augment.transforms.<name>`` against the audiomentations constructor."""
    key = f"augment.transforms.{name}"
    if name not in TRANSFORMS:
        raise ConfigError(f"{key}: unknown transform. Known: {', '.join(TRANSFORMS)}")
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{key}: expected a mapping of settings, got {settings!r}")
    cls_name, fixed = TRANSFORMS[name]
    init = transform_class(name).__init__
    parse_kwargs(  # the keys only: values go to audiomentations as they are
        init,
        settings,
        key,
        skip=("sounds_path", *fixed),
        unknown=f"not an argument of audiomentations.{cls_name}",
        typed=False,
    )
    for k, v in settings.items():
        if not isinstance(v, int | float | str | bool):
            raise ConfigError(f"{key}.{k}: expected a number, string or boolean, got {v!r}")
    # audiomentations does not check every range; an inverted one is refused here.
    params = inspect.signature(init).parameters
    given = {k: p.default for k, p in params.items() if p.default is not p.empty} | dict(settings)
    for k, low in given.items():
        high = given.get("max_" + k.removeprefix("min_"))
        numbers = isinstance(low, int | float) and isinstance(high, int | float)
        if k.startswith("min_") and numbers and low > high:
            raise ConfigError(f"{key}.{k}: {low} is above max_{k[4:]} ({high}); set min <= max")
    p = convert(float, settings.get("p", 0.5), f"{key}.p")
    if not 0 <= p <= 1:
        raise ConfigError(f"{key}.p: must be in [0, 1], got {p}")
    return {**settings, **fixed}


def build_chain(cfg: AugmentConfig, noise_files: list[Path]):  # -> list of transforms
    """The configured transforms, constructed (audiomentations validates the ranges)."""
    chain = []
    for name in cfg.chain:
        kwargs = transform_kwargs(name, cfg.transforms[name])
        if name == NEEDS_NOISE:
            if not noise_files:
                raise ConfigError(
                    f"augment.chain: {name} needs noise recordings and the dataset has none; "
                    "drop it from the chain or pick another augment option"
                )
            kwargs["sounds_path"] = [str(p) for p in noise_files]
        try:
            chain.append(transform_class(name)(**kwargs))
        except (ValueError, AssertionError, TypeError) as err:
            raise ConfigError(f"augment.transforms.{name}: {err}") from None
    return chain


@contextmanager
def seeded(*key: int):
    """Seed Python's and NumPy's global generators from ``key`` for the block, then restore."""
    # The legacy global NumPy generator is the one audiomentations draws from.
    state = random.getstate(), np.random.get_state()  # noqa: NPY002
    entropy = np.random.SeedSequence([int(k) for k in key]).generate_state(2)
    random.seed(int(entropy[0]))
    np.random.seed(int(entropy[1]))  # noqa: NPY002
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])  # noqa: NPY002


def plain(value: Any) -> Any:
    """A transform's parameter as JSON-able data (paths by file stem, numpy scalars as floats)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return Path(value).stem
    return value


def apply_chain(
    chain: list, names: tuple[str, ...], wave: np.ndarray, sample_rate: int
) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Run ``chain`` on ``wave`` (float32, (samples,)); returns the wave and, per transform that
    fired, the parameters it drew. Length is kept (a transform that changes it is an error)."""
    out = np.array(wave, dtype=np.float32)  # a writable copy: some transforms need one
    applied = {}
    for name, transform in zip(names, chain):
        out = transform(out, sample_rate=sample_rate)
        if transform.parameters.get("should_apply"):
            applied[name] = {
                k: plain(v) for k, v in transform.parameters.items() if k != "should_apply"
            }
    if out.shape != wave.shape:
        raise RuntimeError(f"augment chain changed the clip length {wave.shape} -> {out.shape}")
    return out.astype(np.float32, copy=False), applied


@dataclass
class Augmenter:
    """Picklable worker: ``(copy, clip index, wave)`` -> (augmented wave, applied params)."""

    cfg: AugmentConfig
    noise_files: list[Path]
    sample_rate: int
    _chain: list | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_chain": None}  # each process builds its own

    def __call__(self, item: tuple[int, int, np.ndarray]) -> tuple[np.ndarray, dict]:
        copy, index, wave = item
        if self._chain is None:
            self._chain = build_chain(self.cfg, self.noise_files)
        with seeded(self.cfg.seed, copy, index):
            out, applied = apply_chain(self._chain, self.cfg.chain, wave, self.sample_rate)
        return out, {"copy": copy, "source_index": index, **applied}


def augment_chunk(args: tuple[Augmenter, Path, Path, list[tuple[int, int]]]) -> list[dict]:
    """Augment clips of the .npy ``source``, given as (copy, clip index) pairs, and write them
    in order to a new .npy ``target``; returns each copy's applied-parameters record.

    The clips travel through files, not back through the worker pool's pipe: pickling 64 KB
    per clip through it costs more than the ``light`` chain itself.
    """
    from audioclf.npystream import NpyWriter

    worker, source, target, items = args
    waves = np.load(source, mmap_mode="r")
    records = []
    with NpyWriter(target, np.float32, waves.shape[1:]) as out:
        for copy, index in items:
            wave, applied = worker((copy, index, np.asarray(waves[index])))
            out.append(wave[None])
            records.append(applied)
    del waves  # unmaps the source: its pages stop counting in this process
    return records


def write_noise_wavs(
    noises: Mapping[str, np.ndarray], sample_rate: int, folder: Path
) -> list[Path]:
    """Write each noise part as a float WAV in ``folder`` for audiomentations to read (it takes
    files only); the paths, sorted by name."""
    import soundfile as sf

    paths = []
    for name in sorted(noises):
        path = folder / f"{name}.wav"
        sf.write(path, np.asarray(noises[name], dtype=np.float32), sample_rate, subtype="FLOAT")
        paths.append(path)
    return paths
