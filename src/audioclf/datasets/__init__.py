"""Datasets: each module materialises one dataset under data/raw in the layout of
``audioclf.layout`` (the Speech Commands one), which ``prepare`` reads.

A dataset module defines ``Config`` (the typed schema of ``data.download``) and
``materialise(cfg, out, progress) -> Materialised``, which fills the empty folder ``out`` (the
``download`` stage renames it to data/raw only when it is complete). Datasets are found like
models: adding one is a module here plus ``conf/data/<name>.yaml``, nothing else.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from audioclf.config import ConfigError, repo_root
from audioclf.download import cache_dir  # noqa: F401  (datasets use it from here)
from audioclf.layout import LISTS


@dataclass(frozen=True)
class Materialised:
    """What ``materialise`` did, for the stage's one-line summary."""

    read: str  # where the data came from
    wrote: str  # what is now in data/raw
    notes: str = ""  # skipped files, verification, ...


def available() -> list[str]:
    """Names of the dataset modules in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def module(name: str) -> ModuleType:
    """The module of dataset ``name`` (``data.name``); a clear error for an unknown one."""
    if name not in available():
        raise ConfigError(
            f"data.name: unknown dataset {name!r}. Available: {', '.join(available())} "
            "(pick one with `dvc exp run -S data=<name>`)"
        )
    return importlib.import_module(f"audioclf.datasets.{name}")


def local_path(value: str, key: str, what: str = "folder") -> Path:
    """A user-given path, relative ones taken from the repository root; it must exist."""
    if value == "???":  # conf/data/*.yaml's "required" marker, composed as is when unset
        raise ConfigError(f"{key}: required; set it with `dvc exp run -S {key}=<{what}>`")
    path = Path(os.path.expanduser(value))
    path = path if path.is_absolute() else repo_root() / path
    if not path.exists():
        raise FileNotFoundError(f"{key}: {value!r} ({path}) does not exist; set it to the {what}")
    if "folder" in what and not path.is_dir():  # every caller's `what` names a folder
        raise NotADirectoryError(f"{key}: {value!r} ({path}) is a file, not a folder")
    return path


def copy_file(source: Path, target: Path) -> None:
    """Copy one file (never a hard link: DVC makes its cache read-only, which would change
    the user's original through a shared inode)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def write_list(out: Path, split: str, paths: Iterable[str]) -> int:
    """Write the split list ``LISTS[split]`` (sorted paths relative to ``out``)."""
    paths = sorted(paths)
    (out / LISTS[split]).write_text("".join(f"{p}\n" for p in paths))
    return len(paths)
