"""Lineage: which data a run saw, by the hashes DVC recorded in ``dvc.lock``.

DVC writes a stage's entry in ``dvc.lock`` as soon as the stage has run (or was found up to
date), so when ``train`` starts, the outputs of ``prepare``, ``features`` and ``augment`` of
this very pipeline run are there with their hashes; when ``evaluate`` starts, ``train``'s and
``corrupt``'s are too. A folder's hash is DVC's ``<md5>.dir`` (36 characters), the same string
``dvc exp show`` and the DVC cache use, so a digest in MLflow finds the data in DVC.

Pure functions of the file's text: no DVC import, nothing written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

LOCK = Path("dvc.lock")


def out_hashes(lock: Path = LOCK) -> dict[str, str]:
    """Every stage output in ``lock`` -> its md5 (``<md5>.dir`` for a folder); {} without a
    lock file (a stage run by hand, outside DVC)."""
    if not lock.is_file():
        return {}
    data = yaml.safe_load(lock.read_text()) or {}
    hashes = {}
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("md5"):
                hashes[out["path"]] = out["md5"]
    return hashes | folder_hashes(hashes)


def folder_hashes(hashes: dict[str, str]) -> dict[str, str]:
    """For each folder whose files are outputs one by one (``data/prepared``: prepare declares
    each file so that no stage depends on a file inside a folder output), the hash DVC would
    give the folder: ``<md5>.dir``, the md5 of its listing as DVC writes one (a JSON list of
    ``{"md5", "relpath"}`` sorted by path). So the digest is the one an earlier dvc.lock gave
    the same folder, and the same files always give the same digest."""
    files: dict[str, list[dict[str, str]]] = {}
    for path, md5 in hashes.items():
        folder, _, name = path.rpartition("/")
        if folder and folder not in hashes and not md5.endswith(".dir"):
            files.setdefault(folder, []).append({"md5": md5, "relpath": name})
    return {
        folder: hashlib.md5(
            json.dumps(sorted(entries, key=lambda e: e["relpath"]), sort_keys=True).encode()
        ).hexdigest()
        + ".dir"
        for folder, entries in files.items()
    }


@dataclass(frozen=True)
class DatasetInput:
    """One MLflow dataset input: ``<data.name>:<part>``, its DVC hash as the digest."""

    name: str  # e.g. "speech_commands:train"
    path: str  # the DVC output it lives in, e.g. "data/prepared"
    context: str  # MLflow's input context: train, validation, test
    digest: str  # the DVC md5 of ``path``


# What each stage saw: (part, DVC output, context). The prepared splits are one DVC output
# (data/prepared) and so share its digest; each gets a dataset of its own name and context.
TRAINING_INPUTS = (
    ("train", "data/prepared", "train"),
    ("validation", "data/prepared", "validation"),
    ("features", "data/features", "train"),
    ("augmented", "data/augmented", "train"),
)
EVALUATION_INPUTS = (
    ("test", "data/prepared", "test"),
    ("features", "data/features", "test"),
    ("corrupted", "data/corrupted", "test"),
)


def dataset_inputs(
    data_name: str, parts: tuple[tuple[str, str, str], ...], hashes: dict[str, str]
) -> tuple[list[DatasetInput], list[str]]:
    """The inputs whose output has a hash in ``hashes``, and the outputs that have none."""
    found, missing = [], []
    for part, path, context in parts:
        if path in hashes:
            found.append(DatasetInput(f"{data_name}:{part}", path, context, hashes[path]))
        elif path not in missing:
            missing.append(path)
    return found, missing


# Run tags: the DVC hash of each output a run depends on.
HASH_TAGS = {
    "data/prepared": "dvc.data_md5",
    "data/features": "dvc.features_md5",
    "data/augmented": "dvc.augmented_md5",
    "data/corrupted": "dvc.corrupted_md5",
    "data/model": "dvc.model_md5",
}


def hash_tags(hashes: dict[str, str]) -> dict[str, str]:
    return {tag: hashes[path] for path, tag in HASH_TAGS.items() if path in hashes}
