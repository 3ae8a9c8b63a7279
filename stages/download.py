"""Stage `download`: materialise the dataset ``data.name`` under data/raw.

Every dataset lands in the Speech Commands layout (see ``audioclf.datasets``): class folders
of clips, optional ``_background_noise_/`` and the dataset's own split lists.

- ``synthetic`` (default): spoken commands generated offline with espeak-ng; nothing is
  downloaded, and the same params give byte-identical files.
- ``speech_commands``: the official archive (cached outside the repository, verified).
- ``fsdd``: the Free Spoken Digit Dataset, downloaded or from a local copy.
- ``folder``: any folder of class folders. ``timit_gender``: a local TIMIT copy.

data/raw appears only when the dataset is complete: an interrupted run leaves nothing.

Reads:  the dataset's source (nothing for synthetic)
Writes: data/raw/<class>/*.wav, data/raw/_background_noise_/*.wav, data/raw/*_list.txt
Params: data.name, data.download
"""

from __future__ import annotations

from pathlib import Path

from audioclf.atomic import atomic_dir
from audioclf.config import load_params, parse, section
from audioclf.datasets import module
from audioclf.stagetimer import StageTimer

OUT = Path("data/raw")


def main() -> None:
    timer = StageTimer("download")
    params = load_params()
    dataset = module(section(params, "data.name"))
    cfg = parse(dataset.Config, section(params, "data.download"), "data.download")
    with atomic_dir(OUT) as tmp:
        done = dataset.materialise(cfg, tmp, progress=True)
    timer.summary(done.read, f"{done.wrote} to {OUT}", done.notes)


if __name__ == "__main__":
    main()
