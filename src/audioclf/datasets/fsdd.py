"""Free Spoken Digit Dataset (Jackson et al.): 3,000 recordings of the digits 0-9 by 6
speakers, 8 kHz mono, 0.14-2.28 s; CC BY-SA 4.0.

Files are ``<digit>_<speaker>_<index>.wav``. The dataset's own split is by index: 0-4 test,
5-49 train; validation (which it does not define) takes indices 5-9 here. Written as
``data/raw/<digit>/`` with the split lists, so ``prepare`` uses ``split: lists``.

Source: the public repository's archive at a pinned commit, or a local copy (``path``: a
folder with the recordings anywhere below it, e.g. ``recordings/`` or ``<digit>/`` folders).
GitHub's archives are generated on demand and their bytes (so their sha256) are not promised
to stay the same, so the recordings themselves are verified instead: ``recordings_sha256`` is
the sha256 of the sorted lines ``<file name> <sha256 of the file>``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from audioclf.config import check
from audioclf.datasets import Materialised, cache_dir, copy_file, local_path, write_list

COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"  # v1.0.10-27: 3,000 recordings, 6 speakers
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{COMMIT}.tar.gz"
RECORDINGS_SHA256 = "dbd573d7cafe79c4b49f65718115e1304e24e067fa39eff18a660dc6cb9c360f"
NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


@dataclass(frozen=True)
class Config:
    url: str = URL
    path: str | None = None  # a local copy instead of the download (relative: repo root)
    sha256: str | None = None  # of the archive, if you have recorded it
    recordings_sha256: str | None = RECORDINGS_SHA256  # null: accept any recordings
    test_indices: tuple[int, int] = (0, 4)  # inclusive index range of the test split
    validation_indices: tuple[int, int] = (5, 9)  # inclusive index range of validation
    cache_dir: str | None = None  # null: $AUDIOCLF_CACHE or ~/.cache/audioclf
    retries: int = 3

    def __post_init__(self) -> None:
        for key in ("test_indices", "validation_indices"):
            a, b = getattr(self, key)
            check(0 <= a <= b, key, f"must be [first, last] with 0 <= first <= last, got {[a, b]}")
        (a, b), (c, d) = self.test_indices, self.validation_indices
        check(b < c or d < a, "validation_indices", "overlaps test_indices")
        check(self.retries >= 1, "retries", f"must be >= 1, got {self.retries}")


def content_sha256(files: list[Path]) -> str:
    """sha256 of the sorted ``<name> <sha256>`` lines of ``files`` (independent of layout)."""
    lines = sorted(f"{f.name} {hashlib.sha256(f.read_bytes()).hexdigest()}\n" for f in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def materialise(cfg: Config, out: Path, progress: bool = True) -> Materialised:
    if cfg.path is not None:
        source = local_path(cfg.path, "data.download.path", "folder with the FSDD recordings")
        read = str(source)
    else:
        from audioclf.download import extract, fetch

        archive = fetch(
            cfg.url,
            cache_dir(cfg.cache_dir),
            sha256=cfg.sha256,
            size=None,
            filename=f"fsdd-{Path(cfg.url).name}",
            retries=cfg.retries,
            progress=progress,
        )
        source = extract(archive, out / ".archive", progress=progress)
        read = f"{cfg.url} (cached at {archive})"

    recordings, skipped = [], 0
    for f in sorted(source.rglob("*.wav")):
        if NAME.match(f.name):
            recordings.append(f)
        else:
            skipped += 1
            print(f"[download] skipped {f}: not named <digit>_<speaker>_<index>.wav")
    if not recordings:
        raise FileNotFoundError(f"{source}: no FSDD recordings (<digit>_<speaker>_<index>.wav)")
    names = [f.name for f in recordings]
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: the same recording name appears in two folders")
    if cfg.recordings_sha256 is not None:
        actual = content_sha256(recordings)
        if actual != cfg.recordings_sha256:
            raise ValueError(
                f"{source}: the {len(recordings)} recordings do not match the recorded FSDD "
                f"release (content sha256 {actual}, expected {cfg.recordings_sha256}). Use an "
                "unmodified copy, or set data.download.recordings_sha256: null to accept these"
            )
    splits: dict[str, list[str]] = {"validation": [], "test": []}
    for f in recordings:
        digit, _, index = NAME.match(f.name).groups()
        rel = f"{digit}/{f.name}"
        copy_file(f, out / rel)
        for split, (a, b) in (("test", cfg.test_indices), ("validation", cfg.validation_indices)):
            if a <= int(index) <= b:
                splits[split].append(rel)
    shutil.rmtree(out / ".archive", ignore_errors=True)
    for split, paths in splits.items():
        write_list(out, split, paths)
    speakers = {NAME.match(n).group(2) for n in names}
    verified = "recordings verified" if cfg.recordings_sha256 else "recordings not verified"
    return Materialised(
        read,
        f"{len(recordings)} recordings of {len({n[0] for n in names})} digits by "
        f"{len(speakers)} speakers; test {len(splits['test'])} / validation "
        f"{len(splits['validation'])} listed",
        f"{verified}; {skipped} other .wav files skipped",
    )
