"""Real recordings as the trigger task's source: a Speech-Commands-like folder.

    path/<word>/<speaker>_nohash_<n>.wav     one folder per word
    path/_background_noise_/*.wav            long background recordings

The folder ``word`` gives the triggers, every other word folder (or those listed in
``negative_words``) the negatives, ``_background_noise_`` the backgrounds. Speakers are
hashed into train / validation / test by the classifier's rule (audioclf.splits.which_set,
the part of the name before ``_nohash_``; ``split_salt`` draws another, equally stable,
split), so no speaker is in two splits, and a split without a trigger speaker is an error
naming the percentage to change. Each background
recording is cut in time into four disjoint parts: train, validation, test, and the held-out
noise of the corrupted conditions (noise/*.wav). Each recording is read as mono at
``sample_rate``, its silence trimmed (``trim_threshold`` x its peak) and its peak set to 1;
files that cannot be read, or are silent, are skipped and listed in report.csv, never
dropped without a word. The clips are then mixed as for the synthetic source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from audioclf.audio_io import AudioError
from audioclf.clips import load_audio
from audioclf.config import ConfigError, check, repo_root
from audioclf.layout import NOISE_DIR
from audioclf.parallel import ordered_map
from audioclf.splits import which_set
from audioclf.trigger.synthesis import SPLITS, SceneConfig, Sources, Utterance


@dataclass(frozen=True)
class FolderConfig(SceneConfig):
    """Schema of ``trigger.data`` for ``name: folder``; defaults in the YAML too."""

    name: Literal["folder"] = "folder"
    path: str = ""  # the folder (relative: to the repository root)
    word: str = "right"  # the trigger: the name of its folder
    negative_words: tuple[str, ...] = ()  # negative word folders; empty: every other folder
    validation_percentage: float = 10.0  # of speakers (by hash) in validation
    testing_percentage: float = 10.0  # of speakers (by hash) in test
    split_salt: str = ""  # "": TensorFlow's hash rule; any text: another draw (see below)
    trim_threshold: float = 0.1  # a word's extent: samples above this x its peak
    # Fractions of every background recording's length (in this order after train's part).
    background_validation: float = 0.15
    background_test: float = 0.15
    background_noise: float = 0.15  # the held-out part, written to noise/

    def __post_init__(self) -> None:
        super().__post_init__()
        check(bool(self.path), "path", "set the folder: -S trigger.data.path=/path/to/folder")
        check(bool(self.word), "word", "set the trigger word's folder: -S trigger.data.word=right")
        check(
            self.word not in self.negative_words,
            "negative_words",
            f"must not hold the trigger word {self.word!r}",
        )
        v, t = self.validation_percentage, self.testing_percentage
        check(
            v > 0 and t > 0 and v + t < 100,
            "testing_percentage",
            f"validation_percentage and testing_percentage must be > 0 with a sum < 100, "
            f"got {v} and {t}",
        )
        check(
            0.0 < self.trim_threshold < 1.0,
            "trim_threshold",
            f"must be in (0, 1), got {self.trim_threshold}",
        )
        parts = (self.background_validation, self.background_test, self.background_noise)
        check(
            all(p > 0 for p in parts) and sum(parts) < 1,
            "background_noise",
            "background_validation, background_test and background_noise must be > 0 with a "
            f"sum < 1 (the rest is train's), got {list(parts)}",
        )

    @property
    def folder(self) -> Path:
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else repo_root() / path


def trim(wave: np.ndarray, threshold: float) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``threshold`` x the peak (the word's extent)."""
    loud = np.flatnonzero(np.abs(wave) > threshold * np.max(np.abs(wave), initial=0.0))
    return wave[loud[0] : loud[-1] + 1] if loud.size else wave[:0]


def _read(args: tuple[Path, int, float]) -> np.ndarray | str:
    """A recording trimmed and at peak 1 (float32 (n,)), or why it cannot be used."""
    path, sample_rate, threshold = args
    try:
        wave = load_audio(path, sample_rate).wave
    except AudioError as err:
        return err.reason
    wave = trim(wave, threshold)
    if wave.size == 0 or not np.max(np.abs(wave)) > 0:
        return "silent (no sample above zero)"
    return (wave / np.max(np.abs(wave))).astype(np.float32)


def folder_sources(
    cfg: FolderConfig, progress: bool = True, workers: int | None = None
) -> tuple[dict[str, Sources], list[tuple[str, np.ndarray]], list[tuple[str, str]]]:
    """Each split's Sources, the held-out noise ([(file name, float32 RMS 1)]) and the files
    skipped ([(path relative to the folder, reason)])."""
    root = cfg.folder
    if not root.is_dir():
        raise ConfigError(f"trigger.data.path: {root} is not a folder")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    if cfg.word not in folders:
        raise ConfigError(
            f"trigger.data.word: no folder {cfg.word!r} in {root}. "
            f"Word folders: {', '.join(folders)}"
        )
    negatives = list(cfg.negative_words) or [w for w in folders if w != cfg.word]
    missing = [w for w in negatives if w not in folders]
    if missing:
        raise ConfigError(f"trigger.data.negative_words: no folder {missing} in {root}")
    files = [
        (kind, word, path)
        for kind, words in (("trigger", [cfg.word]), ("negative", negatives))
        for word in words
        for path in sorted((root / word).glob("*.wav"))
    ]
    noise_files = sorted((root / NOISE_DIR).glob("*.wav"))
    if not noise_files:
        raise ConfigError(f"trigger.data.path: no background recordings in {root / NOISE_DIR}")
    args = [(p, cfg.sample_rate, cfg.trim_threshold) for _, _, p in files]
    args += [(p, cfg.sample_rate, 1e-9) for p in noise_files]  # backgrounds: nothing trimmed
    waves = list(
        ordered_map(_read, args, "trigger_synth: read" if progress else None, workers, unit="file")
    )
    skipped = [
        (p.relative_to(root).as_posix(), w)
        for (_, _, p), w in zip([*files, *[(None, None, p) for p in noise_files]], waves)
        if isinstance(w, str)
    ]

    v, t = cfg.validation_percentage, cfg.testing_percentage
    by_split: dict[str, list[Utterance]] = {s: [] for s in SPLITS}
    for (kind, word, path), wave in zip(files, waves):
        if isinstance(wave, str):
            continue
        name = f"{word}/{path.name}"
        speaker = path.stem.split("_nohash_")[0]
        by_split[which_set(name, v, t, salt=cfg.split_salt)].append(
            Utterance(kind, word, speaker, wave)
        )
    for split in SPLITS:
        kinds = {u.kind for u in by_split[split]}
        for kind, key in (("trigger", "word"), ("negative", "negative_words")):
            if kind not in kinds:
                key = {"validation": "validation_percentage", "test": "testing_percentage"}.get(
                    split, key
                )
                counts = {
                    s: len({u.speaker for u in by_split[s] if u.kind == kind}) for s in SPLITS
                }
                raise ConfigError(
                    f"trigger.data.{key}: no {kind} recording's speaker hashes into {split} "
                    f"(speakers of {kind}s per split: {counts}); raise {key}, or set "
                    "trigger.data.split_salt to any text for another draw (a folder made of "
                    "one split of a dataset, as Speech Commands' train + validation speakers, "
                    "has none of its test speakers by the plain rule), or use more speakers"
                )

    backgrounds: dict[str, list[tuple[str, np.ndarray]]] = {s: [] for s in SPLITS}
    noise = []
    fractions = (cfg.background_validation, cfg.background_test, cfg.background_noise)
    for path, wave in zip(noise_files, waves[len(files) :]):
        if isinstance(wave, str):
            continue
        n = wave.size
        sizes = [int(n * f) for f in fractions]
        edges = np.cumsum([n - sum(sizes), *sizes])  # train | validation | test | noise
        parts = np.split(wave, edges[:-1])
        for split, part in zip([*SPLITS, "noise"], parts):
            rms = float(np.sqrt(np.mean(part.astype(np.float64) ** 2))) if part.size else 0.0
            if rms < 1e-6:  # silent part: useless as background, say so
                skipped.append((f"{NOISE_DIR}/{path.name} ({split} part)", "silent or empty part"))
                continue
            part = (part / rms).astype(np.float32)
            if split == "noise":
                noise.append((path.name, part))
            else:
                backgrounds[split].append((path.stem, part))
    for split in SPLITS:
        if not backgrounds[split]:
            raise ConfigError(
                f"trigger.data.path: no usable background recording for {split} in "
                f"{root / NOISE_DIR} (see the skipped files: {skipped})"
            )
    sources = {
        split: Sources(
            triggers=[u for u in by_split[split] if u.kind == "trigger"],
            negatives=[u for u in by_split[split] if u.kind == "negative"],
            backgrounds=backgrounds[split],
            speakers=sorted({u.speaker for u in by_split[split]}),
        )
        for split in SPLITS
    }
    return sources, noise, skipped
