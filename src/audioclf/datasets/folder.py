"""Any labelled folder of recordings: one sub-folder per class, files directly inside.

``path/<class>/<file>.wav`` (any rate, channel count, length; also FLAC/OGG/AIFF) is copied to
``data/raw/<class>/``; ``noise_path`` (optional) to ``data/raw/_background_noise_/``. What is
not audio, hidden, nested deeper or an empty class folder is reported and skipped. ``prepare``
then resamples, mixes down, pads/crops or chops (``data.prepare.long_clips``), finds the
speaker with ``data.prepare.speaker_pattern`` and hash-splits by speaker.

The folder is read when the ``download`` stage runs: after changing its contents, re-run it
with ``dvc repro -f -s download`` (DVC does not watch folders outside the repository).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from audioclf.datasets import Materialised, copy_file, local_path
from audioclf.layout import AUDIO_SUFFIXES, NOISE_DIR


@dataclass(frozen=True)
class Config:
    path: str  # the folder of class folders; relative paths start at the repository root
    noise_path: str | None = None  # a folder of background-noise recordings, or null


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
    classes = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            skipped.append(f"{entry}: a file outside any class folder")
            continue
        if entry.name == NOISE_DIR:
            skipped.append(f"{entry}: {NOISE_DIR} is taken from data.download.noise_path")
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
        jobs += [(f, out / NOISE_DIR / f.name) for f in noise]
    for source, target in tqdm(jobs, desc="folder: copying", unit="file", disable=not progress):
        copy_file(source, target)
    for line in skipped:
        print(f"[download] skipped {line}")
    return Materialised(
        f"{root}",
        f"{len(jobs) - len(noise)} files of {len(classes)} classes"
        + (f" and {len(noise)} noise recordings" if noise else ""),
        f"{len(skipped)} entries skipped" + (" (listed above)" if skipped else ""),
    )
