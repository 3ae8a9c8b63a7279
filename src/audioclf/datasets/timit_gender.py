"""Speaker gender on TIMIT (Garofolo et al. 1993, LDC93S1): 630 speakers, 6,300 utterances.

TIMIT is licensed by the LDC and cannot be downloaded here: ``path`` points to a local copy
(``TRAIN/``, ``TEST/`` and ``DOC/SPKRINFO.TXT``, in upper or lower case). Labels come from
``SPKRINFO.TXT`` (sex M/F per speaker); the test split is TIMIT's own test speakers (its
``Use`` column, TST), validation a hash of the training speakers. Speaker-disjoint throughout.

Utterances (NIST SPHERE ``.WAV``, or RIFF copies such as ``SA1.WAV.wav``) are converted to
16-bit WAV as ``data/raw/{female,male}/<speaker>_nohash_<utterance>.wav``; ``prepare`` pads
or crops them to ``data.prepare.clip_seconds``. About 70 % of the speakers are male, so
``evaluate`` reports balanced accuracy beside accuracy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from audioclf.audio_io import AudioError, read_wav, write_wav
from audioclf.clips import to_mono
from audioclf.config import check
from audioclf.datasets import Materialised, local_path, write_list
from audioclf.parallel import ordered_map
from audioclf.splits import which_set

LABELS = {"F": "female", "M": "male"}


@dataclass(frozen=True)
class Config:
    path: str  # the TIMIT root (holds TRAIN/, TEST/, DOC/); relative: repository root
    validation_percentage: float = 10.0  # % of the training speakers (by hash) in validation

    def __post_init__(self) -> None:
        v = self.validation_percentage
        check(0 <= v < 100, "validation_percentage", f"must be in [0, 100), got {v}")


@dataclass(frozen=True)
class Speaker:
    sex: str  # "F" or "M"
    use: str  # "TRN" or "TST"


def child(folder: Path, name: str) -> Path | None:
    """``folder/name`` in whatever case the copy uses."""
    for p in folder.iterdir():
        if p.name.lower() == name.lower():
            return p
    return None


def read_spkrinfo(path: Path) -> dict[str, Speaker]:
    """SPKRINFO.TXT: ``ID Sex DR Use ...`` per line, ';' comments -> {"ABC0": Speaker}."""
    speakers = {}
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = line.split()
        if (
            len(fields) < 4
            or fields[1].upper() not in LABELS
            or fields[3].upper()
            not in (
                "TRN",
                "TST",
            )
        ):
            raise ValueError(
                f"{path}:{n}: expected 'ID Sex(M/F) DR Use(TRN/TST) ...', got {line!r}"
            )
        speakers[fields[0].upper()] = Speaker(fields[1].upper(), fields[3].upper())
    if not speakers:
        raise ValueError(f"{path}: no speakers listed")
    return speakers


def convert(job: tuple[Path, Path]) -> str | None:
    """Read one utterance (SPHERE or RIFF), write it as 16-bit WAV; the error text if bad."""
    source, target = job
    try:
        frames, rate = read_wav(source)
    except AudioError as err:
        return err.reason
    target.parent.mkdir(parents=True, exist_ok=True)
    write_wav(target, to_mono(frames), rate)
    return None


def materialise(cfg: Config, out: Path, progress: bool = True) -> Materialised:
    root = local_path(cfg.path, "data.download.path", "TIMIT root folder")
    doc = child(root, "DOC")
    info = child(doc, "SPKRINFO.TXT") if doc else None
    if info is None:
        raise FileNotFoundError(
            f"{root}: no DOC/SPKRINFO.TXT; data.download.path must be the TIMIT root"
        )
    speakers = read_spkrinfo(info)
    jobs, lists, skipped = [], {"validation": [], "test": []}, []
    seen: set[tuple[str, str]] = set()
    for part in ("TRAIN", "TEST"):
        folder = child(root, part)
        if folder is None:
            raise FileNotFoundError(
                f"{root}: no {part}/ folder; data.download.path must be the TIMIT root"
            )
        for wav in sorted(folder.rglob("*")):
            if not (wav.is_file() and re.search(r"\.wav$", wav.name, re.I)):
                continue
            spk_dir, utt = wav.parent.name.upper(), wav.name.split(".")[0].upper()
            spk = spk_dir[1:]  # folder = sex letter + speaker id, e.g. MABC0
            if spk not in speakers:
                skipped.append(f"{wav}: speaker {spk_dir} is not in {info.name}")
                continue
            if (spk_dir, utt) in seen:  # SA1.WAV and a converted SA1.WAV.wav copy
                continue
            seen.add((spk_dir, utt))
            s = speakers[spk]
            rel = f"{LABELS[s.sex]}/{spk_dir}_nohash_{utt}.wav"
            jobs.append((wav, out / rel))
            if s.use == "TST":
                lists["test"].append(rel)
            elif which_set(spk_dir + "_nohash_", cfg.validation_percentage, 0) == "validation":
                lists["validation"].append(rel)
    if not jobs:
        raise FileNotFoundError(f"{root}: no utterances (*.WAV) under TRAIN/ or TEST/")
    errors = list(ordered_map(convert, jobs, desc="timit: converting"))
    bad = {str(t.relative_to(out)) for (s, t), e in zip(jobs, errors) if e}
    skipped += [f"{s}: {e}" for (s, _), e in zip(jobs, errors) if e]
    listed = {
        s: write_list(out, s, [p for p in paths if p not in bad]) for s, paths in lists.items()
    }
    for line in skipped:
        print(f"[download] skipped {line}")
    used = {t.name.split("_nohash_")[0] for (_, t), e in zip(jobs, errors) if not e}
    return Materialised(
        str(root),
        f"{len(jobs) - len(bad)} utterances of {len(used)} speakers "
        f"({sum(s.sex == 'F' for s in speakers.values())} F / "
        f"{sum(s.sex == 'M' for s in speakers.values())} M listed); "
        f"test {listed['test']} / validation {listed['validation']} listed",
        f"{len(skipped)} skipped",
    )
