"""Clips per second and peak memory of the data path (stages `prepare` then `features`) on a
generated corpus of N clips, against the reference notebooks' per-clip loop and the machine's
FFT floor, all in the same run.

For each N in ``--clips`` a corpus is written in the Speech Commands layout
(``data/raw/<word>/<8-hex speaker>_nohash_<k>.wav``: the commands of ``data.prepare.commands``
plus 20 other words at 0.7 times a command's clips, as in the real corpus; 16 kHz mono 16-bit
PCM, 90 % of clips 1 s and 10 % 0.5-0.99 s; about N / 30 speakers, so the hash split works;
three 60 s recordings in ``_background_noise_``). The signals are cheap word-like tone bursts
with noise: the stages' cost per clip does not depend on what the clip says.

Our path: ``python -m stages.prepare`` once, then ``python -m stages.features`` twice on its
output, as they run in the pipeline (their own processes, the repository's current
``data.prepare`` params): with ``features=logspec8k`` (the notebooks' own 8 kHz
log-spectrogram: like for like) and with params.yaml's features (the default log-mel). For
each stage: wall time, and the peak RSS of its whole process tree (the stage plus any worker
processes, summed at each instant, sampled every 50 ms). A stage's fixed cost (a fresh
interpreter importing the stage module, best of 3) is measured on its own, as is ``import
tensorflow`` (what the features stage paid before its NumPy backend), and again with a
bytecode cache: this environment sets PYTHONDONTWRITEBYTECODE=1 and uv writes no .pyc files
at install, so every process here compiles its imports from source.

Baseline: the per-clip loop of the Kaggle notebooks this project replaces (wavfile.read,
zero-pad / crop to 1 s, ``scipy.signal.resample`` to 8 kHz, a log spectrogram of 20 ms
windows every 10 ms, appended to a Python list), one process, on the first
``--baseline-clips`` raw clips in path order, in a fresh process that also reports how much
its memory grows per 1,000 clips: the notebooks keep every clip's spectrogram in that list,
so all N clips need N times as much.

Floor: per feature type, the batched real FFT of exactly the features' frames (windowed
frames of the prepared clips, at the features' rate: 99 x 160 points for logspec8k, 98 x 512
for log-mel), ``scipy.fft.rfft`` with every core, over ``--floor-clips`` prepared clips already
framed in memory, in a fresh process: no reading, resampling, logs or writing. Each stage's
clips/s is then given as a fraction of the floor's.

Rates count clips that come out (``data/prepared``: the command clips plus the unknown-word
and silence clips the split asks for; about half of the raw clips), the unit of work the
baseline's loop also does once per clip. Both = out clips / (prepare s + features s); the
ratio is that over the baseline's clips/s. Files are read from the page cache in both
(they were just written). The load average is printed with each N: other work on the
machine slows every figure; the ratios come from the same run.

    python benchmarks/prepare_throughput.py --clips 10000 100000 [--json results.json]

Disk: 100,000 clips take about 3.0 GB of WAV, 3.1 GB prepared and 1.5 GB of features; each
N's folder is deleted before the next (``--keep`` keeps them).
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
    # The stage process itself (and its reaped children), from wait4. Linux keeps ru_maxrss
    # across fork + exec, so it is at least this benchmark's own RSS: JSON only.
    ru_maxrss_mib: float


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


# --- the floor: the features' FFT alone, over clips already in memory ------------------------


def fft_floor(prepared: str, features: dict, clips: int, cores: int) -> float:
    """Clips/s of ``scipy.fft.rfft`` (``cores`` workers) over exactly the features' windowed
    frames of the first ``clips`` prepared clips, framed in memory beforehand (best of 3)."""
    import scipy.fft

    from audioclf.features import parse_features, resample_clips
    from audioclf.spectral import hann_window

    cfg = parse_features(features)
    x = np.concatenate(
        [np.load(Path(prepared) / f"{s}_x.npy", mmap_mode="r")[:clips] for s in ("train", "test")]
    )[:clips]
    rate = cfg.sample_rate or RATE
    x = resample_clips(x, RATE, rate)
    f = cfg.framing(rate)
    framed = np.lib.stride_tricks.sliding_window_view(x, f.frame_length, axis=-1)
    # (clips, frames, frame_length) float32, windowed as the features' frames
    frames = np.ascontiguousarray(framed[:, :: f.frame_step]) * hann_window(f.frame_length)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        scipy.fft.rfft(frames, n=f.fft_length, axis=-1, workers=cores)
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def floor(prepared: Path, features: dict, clips: int, cores: int) -> float:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fft_floor, str(prepared), features, clips, cores).result()


# --- fixed costs -----------------------------------------------------------------------------


def import_seconds(statement: str, env: dict[str, str], repeats: int = 3) -> float:
    """Wall seconds of a fresh interpreter running ``statement`` (best of ``repeats``)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", statement], cwd=ROOT, env=env, check=True, capture_output=True
        )
        best = min(best, time.perf_counter() - start)
    return best


# --- one N -------------------------------------------------------------------------------


@dataclass
class Features:
    name: str  # conf/features option, or "params.yaml"
    stage: StageRun
    floor_clips_per_s: float
    mib: float  # data/features on disk


@dataclass
class Result:
    clips: int  # raw clips generated
    clips_out: int  # clips in data/prepared (all splits)
    generate_s: float
    prepare: StageRun
    features: list[Features]
    baseline_clips: int
    baseline_clips_per_s: float
    baseline_mib_per_1000: float
    raw_mib: float
    prepared_mib: float
    loadavg: str  # /proc/loadavg at the start and end of this N

    def rate(self, seconds: float) -> float:
        return self.clips_out / seconds

    def both(self, f: Features) -> float:
        return self.rate(self.prepare.seconds + f.stage.seconds)


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / MIB


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def measure(
    workdir: Path,
    n: int,
    baseline_clips: int,
    floor_clips: int,
    seed: int,
    workers: int,
    features: list[str | None],
) -> Result:
    raw = workdir / "data" / "raw"
    repo = yaml.safe_load((ROOT / "params.yaml").read_text())
    commands = [str(c) for c in repo["data"]["prepare"]["commands"]]

    print(f"N = {n:,}: writing the corpus to {raw}", file=sys.stderr)
    start = time.perf_counter()
    make_corpus(raw, n, commands, seed, workers)
    generate_s = time.perf_counter() - start
    print(f"  {n:,} clips in {generate_s:.1f} s ({n / generate_s:,.0f} clips/s)", file=sys.stderr)
    load_start = loadavg()

    env = stage_env()
    write_params(workdir, commands, features[0])
    print("  stage prepare", file=sys.stderr)
    prepare = run_stage("stages.prepare", workdir, env)
    prepared = workdir / "data" / "prepared"
    clips_out = sum(
        len(np.load(prepared / f"{split}_x.npy", mmap_mode="r"))
        for split in ("train", "validation", "test")
    )
    cores = len(os.sched_getaffinity(0))
    done = []
    for name in features:
        write_params(workdir, commands, name)
        shutil.rmtree(workdir / "data" / "features", ignore_errors=True)
        label = name or "params.yaml"
        print(f"  stage features ({label})", file=sys.stderr)
        stage = run_stage("stages.features", workdir, env)
        mib = folder_mib(workdir / "data" / "features")
        params = yaml.safe_load((workdir / "params.yaml").read_text())["features"]
        print(f"  floor ({label}): rfft of its frames over {floor_clips:,} clips", file=sys.stderr)
        done.append(Features(label, stage, floor(prepared, params, floor_clips, cores), mib))

    b = min(n, baseline_clips)
    print(f"  baseline: the notebooks' loop on {b:,} clips", file=sys.stderr)
    rate, per_1000 = baseline(raw, b)
    return Result(
        n,
        clips_out,
        generate_s,
        prepare,
        done,
        b,
        rate,
        per_1000,
        folder_mib(raw),
        folder_mib(prepared),
        f"{load_start} -> {loadavg()}",
    )


def table(results: list[Result]) -> str:
    lines = [
        "| N | clips out | features | notebooks' loop clips/s | `prepare` clips/s "
        "| `features` clips/s | both clips/s | ratio to the loop | FFT floor clips/s "
        "| `prepare` / floor | `features` / floor | both / floor "
        "| peak RSS `prepare` / `features` (MiB) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for f in r.features:
            prep, feat, both = r.rate(r.prepare.seconds), r.rate(f.stage.seconds), r.both(f)
            fl = f.floor_clips_per_s
            lines.append(
                f"| {r.clips:,} | {r.clips_out:,} | {f.name} | {r.baseline_clips_per_s:,.0f} "
                f"| {prep:,.0f} | {feat:,.0f} | {both:,.0f} "
                f"| **{both / r.baseline_clips_per_s:.2f}** | {fl:,.0f} | {prep / fl:.3f} "
                f"| {feat / fl:.3f} | {both / fl:.3f} "
                f"| {r.prepare.peak_tree_rss_mib:,.0f} / {f.stage.peak_tree_rss_mib:,.0f} |"
            )
    return "\n".join(lines)


def notes(r: Result) -> str:
    feats = "; ".join(
        f"features {f.name} {f.stage.seconds:.1f} s (data/features {f.mib:,.0f} MiB)"
        for f in r.features
    )
    return (
        f"N = {r.clips:,} (load average {r.loadavg}): prepare {r.prepare.seconds:.1f} s; "
        f"{feats}; on disk raw "
        f"{r.raw_mib:,.0f} MiB, data/prepared {r.prepared_mib:,.0f} MiB; baseline on "
        f"{r.baseline_clips:,} clips grew {r.baseline_mib_per_1000:,.1f} MiB per 1,000 clips, "
        f"so its list of all {r.clips_out:,} clips out would need "
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
    parser.add_argument(
        "--floor-clips", type=int, default=2000, help="clips in memory for the FFT floor"
    )
    parser.add_argument("--workdir", type=Path, help="work folder (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep each N's corpus and outputs")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated corpus")
    parser.add_argument("--workers", type=int, default=2, help="processes writing the corpus")
    parser.add_argument(
        "--features",
        nargs="+",
        default=["logspec8k", None],
        type=lambda v: None if v == "params" else v,
        help="conf/features options to run the features stage with, in turn ('params': "
        "params.yaml's); default: logspec8k (the notebooks' 8 kHz log-spectrogram, the "
        "baseline's own output) and params.yaml's (the default log-mel)",
    )
    parser.add_argument(
        "--no-tensorflow-import",
        action="store_true",
        help="skip measuring `import tensorflow` (about 12 s)",
    )
    args = parser.parse_args()
    if min(args.clips) < 100 or args.baseline_clips < 1 or args.floor_clips < 1:
        parser.error(
            "--clips must each be >= 100 (the split needs speakers); --baseline-clips and "
            "--floor-clips >= 1"
        )

    env = stage_env()
    print("fixed costs: fresh interpreters importing each stage", file=sys.stderr)
    fixed = {
        "python": import_seconds("pass", env),
        "stages.prepare": import_seconds("import stages.prepare", env),
        "stages.features": import_seconds("import stages.features", env),
    }
    if not args.no_tensorflow_import:
        fixed["tensorflow"] = import_seconds("import tensorflow", env, repeats=1)
    # The same with a bytecode cache, as an installed package has (pip writes .pyc files;
    # uv leaves them to the first import, which PYTHONDONTWRITEBYTECODE=1 forbids).
    with tempfile.TemporaryDirectory(prefix="pycache-") as pycache:
        cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = pycache
        for module in ("stages.prepare", "stages.features"):
            import_seconds(f"import {module}", cached, repeats=1)  # writes the cache
            fixed[f"{module}, bytecode cached"] = import_seconds(f"import {module}", cached)

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
                    measure(
                        workdir,
                        n,
                        args.baseline_clips,
                        args.floor_clips,
                        args.seed,
                        args.workers,
                        args.features,
                    )
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
    bytecode = "not written (PYTHONDONTWRITEBYTECODE)" if sys.flags.dont_write_bytecode else "on"
    print(
        f"\n{cores} cores, Python {platform.python_version()}, bytecode cache {bytecode}; "
        "clips/s count clips out; X / floor = X's clips/s over the FFT floor's"
    )
    print(table(results))
    print()
    print(
        "- fixed cost, a fresh interpreter importing (best of 3; measured on its own): "
        + ", ".join(f"`{k}` {v:.2f} s" for k, v in fixed.items() if k != "python")
        + f"; the interpreter alone {fixed['python']:.2f} s. The stages start no worker "
        "processes (threads)"
    )
    for r in results:
        print(f"- {notes(r)}")
    if args.json:
        figures = [
            {
                **asdict(r),
                "both_clips_per_s": {f.name: r.both(f) for f in r.features},
                "ratio": {f.name: r.both(f) / r.baseline_clips_per_s for f in r.features},
            }
            for r in results
        ]
        payload = {"cores": cores, "fixed_seconds": fixed, "results": figures}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
