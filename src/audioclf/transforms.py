"""Seeded chains of waveform transforms: what augmentation and the corrupted test suite share.

A transform follows audiomentations' protocol: ``t(samples, sample_rate=rate) -> samples`` for
float32 (samples,) and, after each call, ``t.parameters``: ``should_apply`` and what it drew.
Transforms are made by named factories in a :class:`Registry` (``augment.TRANSFORMS`` for
training, ``corruption.CORRUPTIONS`` for the test suite); a factory's keyword arguments are the
settings found in params, checked against its signature before any work.

audiomentations draws from Python's and NumPy's global generators and takes no generator
argument, so :func:`seeded` reseeds both from a key (e.g. seed, copy, clip) before each clip:
a clip's result depends only on that key, never on the order, chunking or process the work
ran in. :class:`ChainWorker` is the picklable worker that runs chains that way in any process.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioclf.config import ConfigError, convert, parse_kwargs


@dataclass(frozen=True)
class Audiomentations:
    """A factory for an audiomentations class with some arguments fixed by us.

    ``noise_files_as`` names the class's argument that takes the noise recordings (e.g.
    ``sounds_path``), which come from the data, not from params.
    """

    class_name: str
    fixed: dict[str, Any] = field(default_factory=dict)
    noise_files_as: str | None = None

    def target(self) -> type:
        import audiomentations

        return getattr(audiomentations, self.class_name)

    def __call__(self, noise_files: Sequence[Path] = (), **settings: Any):
        if self.noise_files_as:
            settings[self.noise_files_as] = [str(p) for p in noise_files]
        return self.target()(**settings, **self.fixed)


@dataclass(frozen=True)
class Entry:
    factory: Callable[..., Any]  # (**settings[, noise_files]) -> transform
    needs_noise: bool  # it takes the noise recordings (``noise_files``)


class Registry:
    """Named transform factories, e.g. ``TRANSFORMS.register("gain", Audiomentations("Gain"))``
    or, for one of our own, as a decorator::

        @CORRUPTIONS.register("speed")
        def speed(factor: float): ...

    A factory's parameters (less ``noise_files``) are the settings allowed under its name in
    params; annotated ones are converted to their type, audiomentations' are passed as given.
    """

    def __init__(self, what: str) -> None:
        self.what = what  # "transform" or "corruption", for messages
        self.entries: dict[str, Entry] = {}

    def register(self, name: str, factory: Callable[..., Any] | None = None):
        def add(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self.entries:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            if isinstance(factory, Audiomentations):  # its class is imported when used
                needs = factory.noise_files_as is not None
            else:
                needs = "noise_files" in inspect.signature(factory).parameters
            self.entries[name] = Entry(factory, needs)
            return factory

        return add(factory) if factory is not None else add

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return list(self.entries)

    @staticmethod
    def _signed(factory: Callable[..., Any]) -> Callable[..., Any]:
        """What carries the settings' signature: the audiomentations class's constructor."""
        return factory.target().__init__ if isinstance(factory, Audiomentations) else factory

    def check(self, name: str, settings: Any, key: str) -> dict[str, Any]:
        """``settings`` (found at ``key``) validated for ``name``'s factory; ranges given as
        ``min_x``/``max_x`` must be in order, and ``p`` (a probability) in [0, 1]."""
        if name not in self.entries:
            raise ConfigError(f"{key}: unknown {self.what}. Known: {', '.join(self.entries)}")
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{key}: expected a mapping of settings, got {settings!r}")
        factory = self.entries[name].factory
        signed = self._signed(factory)
        foreign = isinstance(factory, Audiomentations)
        skip = ("noise_files", *(factory.fixed if foreign else ()))
        if foreign and factory.noise_files_as:
            skip += (factory.noise_files_as,)
        checked = parse_kwargs(
            signed,
            settings,
            key,
            skip=skip,
            unknown=(
                f"not an argument of audiomentations.{factory.class_name}"
                if foreign
                else "unknown argument"
            ),
            typed=not foreign,
        )
        for k, v in checked.items():
            if not isinstance(v, int | float | str | bool):
                raise ConfigError(f"{key}.{k}: expected a number, string or boolean, got {v!r}")
        # audiomentations does not check every range; an inverted one is refused here.
        params = inspect.signature(signed).parameters
        given = {k: p.default for k, p in params.items() if p.default is not p.empty} | checked
        for k, low in given.items():
            high = given.get("max_" + k.removeprefix("min_"))
            numbers = isinstance(low, int | float) and isinstance(high, int | float)
            if k.startswith("min_") and numbers and low > high:
                raise ConfigError(f"{key}.{k}: {low} is above max_{k[4:]} ({high}); set min <= max")
        if "p" in given:
            p = convert(float, given["p"], f"{key}.p")
            if not 0 <= p <= 1:
                raise ConfigError(f"{key}.p: must be in [0, 1], got {p}")
        return checked

    def build(self, name: str, settings: Mapping[str, Any], key: str, noise_files: Sequence[Path]):
        """The transform ``name`` made with ``settings``; a setting its maker refuses fails
        naming ``key``."""
        entry = self.entries[name]
        kwargs = self.check(name, settings, key)
        if entry.needs_noise:
            if not noise_files:
                raise ConfigError(
                    f"{key}: {name} needs noise recordings and the dataset has none; "
                    f"leave the {self.what} out"
                )
            kwargs["noise_files"] = list(noise_files)
        try:
            return entry.factory(**kwargs)
        except (ConfigError, ValueError, AssertionError, TypeError) as err:
            raise ConfigError(f"{key}: {err}") from None


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
        raise RuntimeError(f"transform chain changed the clip length {wave.shape} -> {out.shape}")
    return out.astype(np.float32, copy=False), applied


@dataclass(frozen=True)
class Chain:
    """Transforms of one registry to run in order: ``names[i]`` made with ``settings[i]``,
    found in params at ``keys[i]``; ``labels[i]`` names it in the record of what it drew."""

    registry: Registry
    names: tuple[str, ...]
    settings: tuple[Mapping[str, Any], ...]
    keys: tuple[str, ...]
    labels: tuple[str, ...]

    def build(self, noise_files: Sequence[Path]) -> list:
        return [
            self.registry.build(n, s, k, noise_files)
            for n, s, k in zip(self.names, self.settings, self.keys)
        ]


@dataclass
class ChainWorker:
    """Picklable worker: runs one of ``chains`` on a clip, seeded by a key.

    Each process builds the chains once, on first use. A clip is given as an array, or as its
    index in the .npy ``source`` (read from a memory map, so a worker task carries no audio).
    """

    chains: list[Chain]
    noise_files: list[Path]
    sample_rate: int
    source: Path | None = None
    _built: dict[int, list] = field(default_factory=dict)
    _waves: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_built": {}, "_waves": None}  # each process builds its own

    def apply(
        self, k: int, key: tuple[int, ...], clip: int | np.ndarray
    ) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
        """Chain ``k`` on ``clip`` under ``seeded(*key)``: (wave, what each transform drew)."""
        if k not in self._built:
            self._built[k] = self.chains[k].build(self.noise_files)
        if isinstance(clip, int | np.integer):
            if self._waves is None:
                self._waves = np.load(self.source, mmap_mode="r")
            clip = np.asarray(self._waves[clip])
        with seeded(*key):
            return apply_chain(self._built[k], self.chains[k].labels, clip, self.sample_rate)

    def row(self, item: tuple[int, tuple[int, ...], int, dict[str, Any]]):
        """For ``npystream.map_rows``: (chain, seed key, clip index, record head) -> (the wave
        as one row, the record: the head, then what each transform drew)."""
        k, key, clip, head = item
        wave, applied = self.apply(k, key, clip)
        return wave[None], {**head, **applied}


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
