"""Google Speech Commands (Warden 2018), versions 0.01 (30 words, 64,727 clips) and 0.02
(35 words, 105,829 clips); CC BY 4.0.

The official archive is downloaded once into the cache folder (progress bar, retries, resume
after an interrupted transfer, size and sha256 checked against the values recorded below),
then extracted safely into data/raw. It already is in the layout ``prepare`` reads, with
``_background_noise_/`` and the official ``validation_list.txt`` / ``testing_list.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from audioclf.config import check
from audioclf.datasets import Materialised, cache_dir
from audioclf.layout import LISTS, NOISE_DIR


@dataclass(frozen=True)
class Release:
    url: str
    size: int  # bytes
    sha256: str


BASE = "https://storage.googleapis.com/download.tensorflow.org/data"
# Sizes as served (Content-Length); sha256 as recorded by TensorFlow Datasets and torchaudio.
RELEASES = {
    "0.01": Release(
        f"{BASE}/speech_commands_v0.01.tar.gz",
        1_489_096_277,
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    ),
    "0.02": Release(
        f"{BASE}/speech_commands_v0.02.tar.gz",
        2_428_923_189,
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
    ),
}


@dataclass(frozen=True)
class Config:
    version: Literal["0.01", "0.02"] = "0.02"
    url: str | None = None  # null: the official archive; set a mirror's URL here
    sha256: str | None = None  # null: the value recorded for the version's official archive
    size: int | None = None  # bytes; null: the recorded value
    cache_dir: str | None = None  # null: $AUDIOCLF_CACHE or ~/.cache/audioclf
    retries: int = 3  # attempts per download; each resumes the previous one's partial file

    def __post_init__(self) -> None:
        check(self.retries >= 1, "retries", f"must be >= 1, got {self.retries}")
        check(
            self.sha256 is None or (len(self.sha256) == 64 and _is_hex(self.sha256)),
            "sha256",
            f"must be 64 hex digits or null, got {self.sha256!r}",
        )
        check(self.size is None or self.size > 0, "size", f"must be > 0 or null, got {self.size}")

    @property
    def release(self) -> Release:
        official = RELEASES[self.version]
        return Release(
            self.url or official.url, self.size or official.size, self.sha256 or official.sha256
        )


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def materialise(cfg: Config, out: Path, progress: bool = True) -> Materialised:
    from audioclf.download import extract, fetch

    release = cfg.release
    name = f"speech_commands_v{cfg.version}.tar.gz"
    archive = fetch(
        release.url,
        cache_dir(cfg.cache_dir),
        sha256=release.sha256,
        size=release.size,
        filename=name,
        retries=cfg.retries,
        progress=progress,
    )
    unpacked = extract(archive, out / ".archive", progress=progress)
    for entry in unpacked.iterdir():
        entry.rename(out / entry.name)
    unpacked.rmdir()
    missing = [n for n in LISTS.values() if not (out / n).is_file()]
    words = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != NOISE_DIR)
    clips = sum(1 for w in words for _ in (out / w).glob("*.wav"))
    notes = f"sha256 {release.sha256[:12]}... verified"
    if missing:
        notes += f"; the archive has no {', '.join(missing)} (use data.prepare.split: hash)"
    return Materialised(
        f"{release.url} ({archive.stat().st_size:,} bytes, cached at {archive})",
        f"{clips} clips of {len(words)} words, {NOISE_DIR}/ and the official split lists",
        notes,
    )
