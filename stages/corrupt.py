"""Stage `corrupt`: the corrupted test suite, generated once and shared by every model.

Each set of ``evaluate.corruptions`` (type x named severity) spoils every clean test clip in
one frozen way; what is drawn per clip is seeded by (``evaluate.corruption_seed``, set, clip)
and recorded. Additive noise uses only the test part of each noise recording, which training
never sees. Stored as float16 waves: half the size of float32 with a 66 dB per-sample SNR, and
unlike int16 it keeps the peaks above full scale that reverb or a pitch shift can produce.

Reads:  data/prepared/test_x.npy, noise_test.npz, labels.json
Writes: data/corrupted/<type>_<severity>.npy  float16 (clips, samples) at the prepared rate
        data/corrupted/sets.json              set name -> type, severity, arguments
        data/corrupted/applied.jsonl          per set and clip: the parameters applied
Params: evaluate.corruptions, evaluate.corruption_seed
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from audioclf.atomic import atomic_dir
from audioclf.augment import write_noise_wavs
from audioclf.config import convert, load_params, section
from audioclf.corruption import Corrupter, build, parse_corruptions
from audioclf.parallel import ordered_map
from audioclf.report import StageTimer

PREPARED = Path("data/prepared")
OUT = Path("data/corrupted")


def main() -> None:
    timer = StageTimer("corrupt")
    params = load_params()
    sets = parse_corruptions(section(params, "evaluate.corruptions"))
    seed = convert(int, section(params, "evaluate.corruption_seed"), "evaluate.corruption_seed")
    rate = json.loads((PREPARED / "labels.json").read_text())["sample_rate"]
    waves = np.load(PREPARED / "test_x.npy", mmap_mode="r")
    with np.load(PREPARED / "noise_test.npz") as z:
        noises = {k: z[k] for k in z.files}

    with tempfile.TemporaryDirectory() as noise_dir, atomic_dir(OUT) as tmp:
        noise_files = write_noise_wavs(noises, rate, Path(noise_dir))
        for s in sets:
            build(s, noise_files)  # a bad argument fails before the work starts
        worker = Corrupter(sets, noise_files, rate, seed)
        outs = [
            np.lib.format.open_memmap(
                tmp / f"{s.name}.npy", mode="w+", dtype=np.float16, shape=waves.shape
            )
            for s in sets
        ]
        items = [(k, i, waves[i]) for k in range(len(sets)) for i in range(len(waves))]
        with (tmp / "applied.jsonl").open("w") as log:
            for (k, i, _), (wave, applied) in zip(
                items, ordered_map(worker, items, "corrupt: test sets")
            ):
                outs[k][i] = wave
                log.write(json.dumps(applied) + "\n")
        for out in outs:
            out.flush()
        del outs  # closes the memory maps before the folder is renamed into place
        (tmp / "sets.json").write_text(
            json.dumps({s.name: asdict(s) for s in sets}, indent=2) + "\n"
        )
    timer.summary(
        f"{len(waves)} test clips, {len(noises)} noise recordings (test parts)",
        f"{len(sets)} corrupted sets to {OUT}: {', '.join(s.name for s in sets)}",
        f"seed {seed}",
    )


if __name__ == "__main__":
    main()
