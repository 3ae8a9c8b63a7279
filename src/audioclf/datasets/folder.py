"""Any labelled folder of recordings: one sub-folder per class, files directly inside.

``path/<class>/<file>.wav`` (any rate, channel count, length; also FLAC/OGG/AIFF) is copied to
``data/raw/<class>/``, as are the Speech Commands / Kaggle layout's extras: the noise
recordings of ``path/_background_noise_/`` (or of ``noise_path``, which then wins) and the split
lists ``validation_list.txt`` / ``testing_list.txt`` at the root (for ``data.prepare.split:
lists``); ``_silence_/`` and ``_unknown_/`` are class folders like any other. What is not
audio, hidden, nested deeper or an empty class folder is reported and skipped. ``prepare``
then resamples, mixes down, pads/crops or chops (``data.prepare.long_clips``), finds the
speaker with ``data.prepare.speaker_pattern`` and splits by speaker hash or by the lists.

The folder is read when the ``download`` stage runs: after changing its contents, re-run it
with ``dvc repro -f -s download`` (DVC does not watch folders outside the repository).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from audioclf.datasets import Materialised, copy_file, local_path
from audioclf.layout import AUDIO_SUFFIXES, LISTS, NOISE_DIR


@dataclass(frozen=True)
class Config:
    path: str  # the folder of class folders; relative paths start at the repository root
    # A folder of background-noise recordings; null: path/_background_noise_/ if there is one.
    noise_path: str | None = None


def audio_files(folder: Path, skipped: list[str]) -> list[Path]:
    """The audio files directly in ``folder``; everything else goes to ``skipped``."""
    found = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            skipped.append(f"{p}: nested folder (only files directly in a class folder count)")
        elif p.suffix.lower() not in AUDIO_SUFFIXES:
            skipped.append(f"{p}: not an audio file ({p.suffix or 'no suffix'})")
        else:
            found.append(p)
    return found


def materialise(cfg: Config, out: Path, progress: bool = True) -> Materialised:
    root = local_path(cfg.path, "data.download.path", "folder of class folders")
    skipped: list[str] = []
    jobs: list[tuple[Path, Path]] = []
    classes, lists = [], []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.name in LISTS.values() and entry.is_file():
            lists.append(entry)  # the user's own split, for data.prepare.split: lists
            continue
        if not entry.is_dir():
            skipped.append(f"{entry}: a file outside any class folder")
            continue
        if entry.name == NOISE_DIR:
            if cfg.noise_path is not None:
                skipped.append(f"{entry}: data.download.noise_path is set and used instead")
            continue
        files = audio_files(entry, skipped)
        if not files:
            skipped.append(f"{entry}: empty class folder (no audio files), class left out")
            continue
        classes.append(entry.name)
        jobs += [(f, out / entry.name / f.name) for f in files]
    if not jobs:
        raise FileNotFoundError(
            f"data.download.path: {root} holds no class folder with audio files "
            f"(expected <class>/<file> with a suffix in {', '.join(AUDIO_SUFFIXES)})"
        )
    noise = []
    if cfg.noise_path is not None:
        noise_root = local_path(cfg.noise_path, "data.download.noise_path", "noise folder")
        noise = audio_files(noise_root, skipped)
        if not noise:
            raise FileNotFoundError(f"data.download.noise_path: {noise_root} holds no audio files")
    elif (root / NOISE_DIR).is_dir():
        noise = audio_files(root / NOISE_DIR, skipped)
        if not noise:
            skipped.append(f"{root / NOISE_DIR}: no audio files, no noise recordings")
    jobs += [(f, out / NOISE_DIR / f.name) for f in noise]
    jobs += [(f, out / f.name) for f in lists]
    for source, target in tqdm(jobs, desc="folder: copying", unit="file", disable=not progress):
        copy_file(source, target)
    for line in skipped:
        print(f"[download] skipped {line}")
    return Materialised(
        f"{root}",
        f"{len(jobs) - len(noise) - len(lists)} files of {len(classes)} classes"
        + (f", {len(noise)} noise recordings" if noise else "")
        + (f", the split lists {', '.join(f.name for f in lists)}" if lists else ""),
        f"{len(skipped)} entries skipped" + (" (listed above)" if skipped else ""),
    )
