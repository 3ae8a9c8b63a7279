"""Clips per second and peak memory of the data path (stages `prepare` then `features`) on a
generated corpus of N clips, against the reference notebooks' per-clip loop in the same run.

For each N in ``--clips`` a corpus is written in the Speech Commands layout
(``data/raw/<word>/<8-hex speaker>_nohash_<k>.wav``: the commands of ``data.prepare.commands``
plus 20 other words at 0.7 times a command's clips, as in the real corpus; 16 kHz mono 16-bit
PCM, 90 % of clips 1 s and 10 % 0.5-0.99 s; about N / 30 speakers, so the hash split works;
three 60 s recordings in ``_background_noise_``). The signals are cheap word-like tone bursts
with noise: the stages' cost per clip does not depend on what the clip says.

Our path: ``python -m stages.prepare`` then ``python -m stages.features`` as they run in the
pipeline (their own processes and worker pools, the repository's current ``data.prepare``
and ``features`` params). For each stage: wall time, and the peak RSS of its whole process
tree (the stage plus its workers, summed at each instant, sampled every 50 ms; shared pages
count once per process, so this overstates a little) and the stage process's own
``ru_maxrss``.

Baseline: the per-clip loop of the Kaggle notebooks this project replaces (wavfile.read,
zero-pad / crop to 1 s, ``scipy.signal.resample`` to 8 kHz, a log spectrogram of 20 ms
windows every 10 ms, appended to a Python list), one process, on the first
``--baseline-clips`` raw clips in path order, in a fresh process that also reports how much
its memory grows per 1,000 clips: the notebooks keep every clip's spectrogram in that list,
so all N clips need N times as much.

Rates count clips that come out (``data/prepared``: the command clips plus the unknown-word
and silence clips the split asks for; about half of the raw clips), the unit of work the
baseline's loop also does once per clip. End to end = out clips / (prepare s + features s);
the ratio is that over the baseline's clips/s. Files are read from the page cache in both
(they were just written). Run on an otherwise idle machine: both stages use every core.

    python benchmarks/prepare_throughput.py --clips 10000 100000 [--json results.json]

Disk: 100,000 clips take about 3.2 GB of WAV, 3.3 GB prepared and 0.8 GB of features (a
2,000-clip run, scaled); each N's folder is deleted before the next (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf
import yaml
from scipy import signal
from scipy.io import wavfile

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000  # Hz of the generated clips, as Speech Commands
CLIP = RATE  # samples in a full 1 s clip
# Other words of Speech Commands v2; all are "unknown" to a 10-command task.
OTHER_WORDS = (
    *("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin"),
    *("nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero"),
)
OTHER_WEIGHT = 0.7  # clips per other word / clips per command (v2: ~2,700 vs ~3,850)
SHORT_FRACTION = 0.1  # clips shorter than 1 s, 0.5-0.99 s long
NOISE_SECONDS = 60
CHUNK = 1000  # clips per generation task
BATCH = 250  # clips rendered at once: (250, 3, 16000) float32 is 48 MB
POLL_S = 0.05  # seconds between RSS samples of a running stage
MIB = 2**20


# --- the corpus --------------------------------------------------------------------------


def render(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` word-like 1 s clips, int16 (n, 16000): three harmonics of a random pitch under a
    raised-cosine envelope 0.25-0.55 s long, plus a little noise, at a random level."""
    t = np.arange(CLIP, dtype=np.float32) / RATE  # s, (16000,)
    f0 = rng.uniform(90, 260, (n, 1, 1)).astype(np.float32)  # Hz, pitch
    harmonics = rng.integers(1, 14, (n, 3, 1)).astype(np.float32)
    amps = rng.uniform(0.2, 1.0, (n, 3, 1)).astype(np.float32)
    tones = (amps * np.sin((2 * np.pi) * f0 * harmonics * t)).sum(axis=1)  # (n, 16000)
    onset = rng.uniform(0.0, 0.4, (n, 1)).astype(np.float32)  # s
    length = rng.uniform(0.25, 0.55, (n, 1)).astype(np.float32)  # s
    x = np.clip((t - onset) / length, 0.0, 1.0)
    wave = tones * np.sin(np.pi * x) ** 2
    wave += rng.uniform(0.002, 0.03, (n, 1)).astype(np.float32) * rng.standard_normal(
        (n, CLIP), dtype=np.float32
    )
    peak = np.abs(wave).max(axis=1, keepdims=True) + 1e-6
    wave *= rng.uniform(0.1, 0.9, (n, 1)).astype(np.float32) / peak
    return (wave * 32767).astype(np.int16)


def write_chunk(task: tuple[str, list[str], list[int], int]) -> int:
    """Write one chunk of clips (paths, lengths in samples) with its own seed; clips written."""
    raw, paths, lengths, seed = task
    rng = np.random.default_rng(seed)
    for start in range(0, len(paths), BATCH):
        waves = render(rng, len(paths[start : start + BATCH]))
        for wave, rel, n in zip(
            waves, paths[start : start + BATCH], lengths[start : start + BATCH]
        ):
            write_wav16(os.path.join(raw, rel), wave[:n])
    return len(paths)


def write_wav16(path: str, wave: np.ndarray) -> None:
    """A canonical 44-byte-header PCM WAV, as the corpus's files: 3x faster than sf.write."""
    data = wave.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, RATE, 2 * RATE, 2, 16)  # PCM, mono, byte rate, 16 bit
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt \x10\0\0\0" + fmt
    with open(path, "wb") as f:
        f.write(header + b"data" + struct.pack("<I", len(data)) + data)


def plan(n: int, commands: list[str], seed: int) -> tuple[list[str], list[int]]:
    """Relative paths and lengths (samples) of ``n`` clips, in a seeded random layout."""
    rng = np.random.default_rng(seed)
    words = list(commands) + [w for w in OTHER_WORDS if w not in commands]
    weights = np.array([1.0] * len(commands) + [OTHER_WEIGHT] * (len(words) - len(commands)))
    word = rng.choice(len(words), n, p=weights / weights.sum())
    n_speakers = max(1, round(n / 30))
    ids = rng.choice(2**32, n_speakers, replace=False)
    speaker = rng.integers(0, n_speakers, n)
    # k = how many earlier clips share this (word, speaker): unique names, as in the corpus.
    key = word * n_speakers + speaker
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    group_start = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    rank = np.arange(n) - np.repeat(group_start, np.diff(np.r_[group_start, n]))
    k = np.empty(n, dtype=np.int64)
    k[order] = rank
    short = rng.random(n) < SHORT_FRACTION
    lengths = np.where(short, rng.integers(RATE // 2, int(0.99 * RATE) + 1, n), CLIP)
    paths = [
        f"{words[w]}/{ids[s]:08x}_nohash_{j}.wav" for w, s, j in zip(word, speaker, k.tolist())
    ]
    return paths, lengths.tolist()


def write_noise(folder: Path, seed: int) -> None:
    """Three 60 s noise recordings (white, pink, brown) at -20 dBFS RMS."""
    rng = np.random.default_rng(seed)
    n = NOISE_SECONDS * RATE
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20.0)  # Hz, floor keeps DC finite
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    brown = np.fft.irfft(spectrum / f, n)
    folder.mkdir(parents=True)
    for name, wave in (("white_noise", white), ("pink_noise", pink), ("brown_noise", brown)):
        wave = 0.1 * wave / np.sqrt(np.mean(wave**2))
        sf.write(folder / f"{name}.wav", np.clip(wave, -1, 1), RATE, subtype="PCM_16")


def make_corpus(raw: Path, n: int, commands: list[str], seed: int, workers: int) -> None:
    paths, lengths = plan(n, commands, seed)
    for word in {p.split("/")[0] for p in paths}:
        (raw / word).mkdir(parents=True, exist_ok=True)
    tasks = [
        (str(raw), paths[i : i + CHUNK], lengths[i : i + CHUNK], seed + 1 + i // CHUNK)
        for i in range(0, n, CHUNK)
    ]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
        written = sum(pool.map(write_chunk, tasks))
    if written != n:
        raise RuntimeError(f"wrote {written} clips, planned {n}")
    write_noise(raw / "_background_noise_", seed)


def write_params(workdir: Path, commands: list[str], features: str | None) -> None:
    """params.yaml with the repository's current data.prepare and features sections, or
    the features option ``features`` of conf/features/ (e.g. logspec8k, the notebooks')."""
    repo = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = {"data": {"prepare": {**repo["data"]["prepare"], "commands": commands}}}
    params["features"] = repo["features"]
    if features is not None:
        option = ROOT / "conf" / "features" / f"{features}.yaml"
        params["features"] = yaml.safe_load(option.read_text())
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


# --- our path: the stages as subprocesses --------------------------------------------------


@dataclass
class StageRun:
    seconds: float
    peak_tree_rss_mib: float  # stage + workers, summed at each sample
    ru_maxrss_mib: float  # the stage process itself (and its reaped children), from wait4


def tree_rss(proc: psutil.Process) -> int:
    """Bytes resident in ``proc`` and all its descendants now."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        # A worker may exit between listing and reading.
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def run_stage(module: str, workdir: Path, env: dict[str, str]) -> StageRun:
    """Run ``python -m module`` in ``workdir``, sampling its tree's RSS until it exits."""
    log = workdir / f"{module.rsplit('.', 1)[-1]}.log"
    with log.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", module], cwd=workdir, env=env, stdout=out, stderr=out
        )
        watched = psutil.Process(proc.pid)
        peak = 0
        while True:
            # wait4 instead of proc.wait(): it also returns the child's rusage (ru_maxrss).
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss(watched))
            time.sleep(POLL_S)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"{module} failed with exit code {proc.returncode}; its log ends above")
    summary = [line for line in log.read_text().splitlines() if line.startswith("[")]
    if summary:
        print(f"  {summary[-1]}", file=sys.stderr)
    return StageRun(seconds, peak / MIB, usage.ru_maxrss * 1024 / MIB)  # ru_maxrss is KiB


def stage_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", TF_CPP_MIN_LOG_LEVEL="2")
    return env


# --- baseline: the notebooks' per-clip loop ------------------------------------------------


def log_specgram(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The notebooks' log spectrogram: 20 ms Hann windows every 10 ms, (frames, bins)."""
    nperseg = int(round(20 * sample_rate / 1e3))
    noverlap = int(round(10 * sample_rate / 1e3))
    _, _, spec = signal.spectrogram(
        audio, fs=sample_rate, window="hann", nperseg=nperseg, noverlap=noverlap, detrend=False
    )
    return np.log(spec.T.astype(np.float32) + 1e-10)


def notebook_loop(paths: list[str]) -> tuple[float, float]:
    """(clips/s, RSS growth in MiB per 1,000 clips) of the notebooks' loop over ``paths``.

    Run in a fresh process, so the growth is the list of spectrograms and nothing else.
    """
    new_rate = 8000  # Hz, as the notebooks
    proc = psutil.Process()
    log_specgram(signal.resample(np.zeros(CLIP), new_rate), new_rate)  # warm scipy's caches
    before = proc.memory_info().rss
    x_train = []
    start = time.perf_counter()
    for path in paths:
        sample_rate, samples = wavfile.read(path)
        if len(samples) < CLIP:  # the notebooks pad at the front
            samples = np.pad(samples, (CLIP - len(samples), 0))
        samples = samples[:CLIP]
        resampled = signal.resample(samples, int(new_rate / sample_rate * samples.shape[0]))
        x_train.append(log_specgram(resampled, new_rate))
    seconds = time.perf_counter() - start
    growth = (proc.memory_info().rss - before) / MIB
    return len(paths) / seconds, growth / len(paths) * 1000


def baseline(raw: Path, n: int) -> tuple[float, float]:
    paths = sorted(str(p) for p in raw.glob("*/*.wav") if p.parent.name != "_background_noise_")
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(notebook_loop, paths[:n]).result()


# --- one N -------------------------------------------------------------------------------


@dataclass
class Result:
    clips: int  # raw clips generated
    clips_out: int  # clips in data/prepared (all splits)
    generate_s: float
    prepare: StageRun
    features: StageRun
    baseline_clips: int
    baseline_clips_per_s: float
    baseline_mib_per_1000: float
    raw_mib: float
    prepared_mib: float
    features_mib: float

    @property
    def end_to_end(self) -> float:
        return self.clips_out / (self.prepare.seconds + self.features.seconds)


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / MIB


def measure(
    workdir: Path, n: int, baseline_clips: int, seed: int, workers: int, features: str | None
) -> Result:
    raw = workdir / "data" / "raw"
    repo = yaml.safe_load((ROOT / "params.yaml").read_text())
    commands = [str(c) for c in repo["data"]["prepare"]["commands"]]

    print(f"N = {n:,}: writing the corpus to {raw}", file=sys.stderr)
    start = time.perf_counter()
    make_corpus(raw, n, commands, seed, workers)
    generate_s = time.perf_counter() - start
    print(f"  {n:,} clips in {generate_s:.1f} s ({n / generate_s:,.0f} clips/s)", file=sys.stderr)
    write_params(workdir, commands, features)

    env = stage_env()
    print("  stage prepare", file=sys.stderr)
    prepare = run_stage("stages.prepare", workdir, env)
    print("  stage features", file=sys.stderr)
    features = run_stage("stages.features", workdir, env)
    prepared = workdir / "data" / "prepared"
    clips_out = sum(
        len(np.load(prepared / f"{split}_x.npy", mmap_mode="r"))
        for split in ("train", "validation", "test")
    )

    b = min(n, baseline_clips)
    print(f"  baseline: the notebooks' loop on {b:,} clips", file=sys.stderr)
    rate, per_1000 = baseline(raw, b)
    return Result(
        n,
        clips_out,
        generate_s,
        prepare,
        features,
        b,
        rate,
        per_1000,
        folder_mib(raw),
        folder_mib(prepared),
        folder_mib(workdir / "data" / "features"),
    )


def table(results: list[Result]) -> str:
    lines = [
        "| N | clips out | prepare clips/s | prepare peak RSS (MiB) | features clips/s "
        "| features peak RSS (MiB) | prepare+features clips/s | baseline clips/s | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.clips:,} | {r.clips_out:,} | {r.clips_out / r.prepare.seconds:,.0f} "
            f"| {r.prepare.peak_tree_rss_mib:,.0f} | {r.clips_out / r.features.seconds:,.0f} "
            f"| {r.features.peak_tree_rss_mib:,.0f} | {r.end_to_end:,.0f} "
            f"| {r.baseline_clips_per_s:,.0f} | {r.end_to_end / r.baseline_clips_per_s:.2f} |"
        )
    return "\n".join(lines)


def notes(r: Result) -> str:
    return (
        f"N = {r.clips:,}: prepare {r.prepare.seconds:.1f} s (ru_maxrss "
        f"{r.prepare.ru_maxrss_mib:,.0f} MiB), features {r.features.seconds:.1f} s (ru_maxrss "
        f"{r.features.ru_maxrss_mib:,.0f} MiB); on disk raw {r.raw_mib:,.0f} MiB, "
        f"data/prepared {r.prepared_mib:,.0f} MiB, data/features {r.features_mib:,.0f} MiB; "
        f"baseline on {r.baseline_clips:,} clips grew {r.baseline_mib_per_1000:,.1f} MiB per "
        f"1,000 clips, so its list of all {r.clips_out:,} clips out would need "
        f"{r.baseline_mib_per_1000 * r.clips_out / 1000:,.0f} MiB "
        f"({r.baseline_mib_per_1000 * r.clips / 1000:,.0f} MiB for all {r.clips:,} raw clips)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clips", type=int, nargs="+", default=[10000, 100000], help="corpus sizes N"
    )
    parser.add_argument(
        "--baseline-clips", type=int, default=2000, help="clips for the notebooks' loop"
    )
    parser.add_argument("--workdir", type=Path, help="work folder (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep each N's corpus and outputs")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated corpus")
    parser.add_argument("--workers", type=int, default=2, help="processes writing the corpus")
    parser.add_argument(
        "--features",
        help="a conf/features option instead of params.yaml's (logspec8k: the notebooks' "
        "8 kHz log-spectrogram, the baseline's own output)",
    )
    args = parser.parse_args()
    if min(args.clips) < 100 or args.baseline_clips < 1:
        parser.error(
            "--clips must each be >= 100 (the split needs speakers); --baseline-clips >= 1"
        )

    if args.workdir is None:
        base = Path(tempfile.mkdtemp(prefix="prepare-throughput-"))
    else:
        base = args.workdir
        base.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for n in args.clips:
            workdir = base / f"n{n}"
            if workdir.exists():
                raise SystemExit(f"{workdir} exists: remove it or choose another --workdir")
            workdir.mkdir()
            try:
                results.append(
                    measure(workdir, n, args.baseline_clips, args.seed, args.workers, args.features)
                )
            finally:
                if not args.keep:
                    shutil.rmtree(workdir, ignore_errors=True)
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        elif args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)

    cores = len(os.sched_getaffinity(0))
    print(
        f"\n{cores} cores, Python {platform.python_version()}; clips/s count clips out; "
        f"features: {args.features or 'params.yaml'}"
    )
    print(table(results))
    print()
    for r in results:
        print(f"- {notes(r)}")
    if args.json:
        figures = [
            {
                **asdict(r),
                "end_to_end_clips_per_s": r.end_to_end,
                "ratio": r.end_to_end / r.baseline_clips_per_s,
            }
            for r in results
        ]
        args.json.write_text(json.dumps({"cores": cores, "results": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
