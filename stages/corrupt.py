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
from audioclf.config import convert, load_params, section
from audioclf.corruption import CorruptedSet, corrupter, parse_corruptions, set_key
from audioclf.fanout import map_rows, route_rows
from audioclf.npystream import NpyWriter
from audioclf.stagetimer import StageTimer
from audioclf.transforms import write_noise_wavs

PREPARED = Path("data/prepared")
OUT = Path("data/corrupted")


def corrupt_sets(
    sets: list[CorruptedSet], source: Path, noise_files: list[Path], rate: int, seed: int, out: Path
) -> None:
    """Every set of every clip of the .npy ``source`` into ``out``/<set>.npy (float16), and
    the parameters applied to each into ``out``/applied.jsonl."""
    n_clips, n_samples = np.load(source, mmap_mode="r").shape
    worker = corrupter(sets, noise_files, rate, source)  # a bad argument fails now
    items = [
        (k, (seed, set_key(s.name), i), i, {"set": s.name, "clip": i})
        for k, s in enumerate(sets)
        for i in range(n_clips)
    ]
    writers = [NpyWriter(out / f"{s.name}.npy", np.float16, (n_samples,)) for s in sets]
    with (out / "applied.jsonl").open("w") as log:
        for chunk, done, path in map_rows(
            worker.row, items, out, np.float16, (n_samples,), desc="corrupt: test sets"
        ):
            route_rows(path, [(n, writers[item[0]], n) for item, (n, _) in zip(chunk, done)])
            path.unlink()
            log.writelines(json.dumps(applied) + "\n" for _, applied in done)
    for w in writers:
        w.close()


def main() -> None:
    timer = StageTimer("corrupt")
    params = load_params()
    sets = parse_corruptions(section(params, "evaluate.corruptions"))
    seed = convert(int, section(params, "evaluate.corruption_seed"), "evaluate.corruption_seed")
    rate = json.loads((PREPARED / "labels.json").read_text())["sample_rate"]
    n_clips = np.load(PREPARED / "test_x.npy", mmap_mode="r").shape[0]
    with np.load(PREPARED / "noise_test.npz") as z:
        noises = {k: z[k] for k in z.files}

    with tempfile.TemporaryDirectory() as noise_dir, atomic_dir(OUT) as tmp:
        noise_files = write_noise_wavs(noises, rate, Path(noise_dir))
        corrupt_sets(sets, PREPARED / "test_x.npy", noise_files, rate, seed, tmp)
        (tmp / "sets.json").write_text(
            json.dumps({s.name: asdict(s) for s in sets}, indent=2) + "\n"
        )
    timer.summary(
        f"{n_clips} test clips, {len(noises)} noise recordings (test parts)",
        f"{len(sets)} corrupted sets to {OUT}: {', '.join(s.name for s in sets)}",
        f"seed {seed}",
    )


if __name__ == "__main__":
    main()
