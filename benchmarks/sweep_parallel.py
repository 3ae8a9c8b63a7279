"""Runs per hour of the same 4-run sweep through `dvc queue start -j 1` and `-j 2`, and `-j 2`
with every worker's threads sized for the whole machine (the behaviour before audioclf.threads).

Works in a copy of this repository in a temporary folder (its own DVC cache and MLflow store;
nothing is written here). A first `dvc exp run` with the ``-S`` overrides fills the copy's run
cache, so the sweeps' data stages are restored and every round times train + evaluate +
compare only. Each round queues 4 experiments that differ only in ``train.seed`` (fresh seeds
per round, so the run cache restores nothing of train/evaluate), starts the workers with
``AUDIOCLF_WORKERS`` set to ``-j`` (or ``AUDIOCLF_THREADS`` = all cores for the oversubscribed
round), and times from `queue start` until `dvc queue status` shows nothing queued or running.
Rounds run in the order of ``--order`` (default ``1,2,2all,2,1``: a busy machine's drift
falls on both -j alike); the table gives each round and the mean per kind.

    python benchmarks/sweep_parallel.py [--runs 4] [--order 1,2,2all,2,1] [-S train.epochs=5 ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audioclf.threads import available_cores  # noqa: E402
from tests.services import origin_and_workspace  # noqa: E402

# round kind -> (label, -j, threads sized for all cores)
KINDS = {
    "1": ("-j 1", 1, False),
    "2": ("-j 2", 2, False),
    "2all": ("-j 2, threads = all cores", 2, True),
}


def dvc(work: Path, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        ["dvc", *args], cwd=work, env=env, capture_output=True, text=True, timeout=7200
    )
    if out.returncode:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


def task_states(status: str) -> list[str]:
    """The Status column of `dvc queue status`: the last word of each task's line (Task, Name,
    Created, Status; then a blank line and the workers' line)."""
    lines = status.split("\n\n")[0].splitlines()[1:]
    return [line.split()[-1] for line in lines if line.strip()]


def round_seconds(
    work: Path,
    env: dict[str, str],
    jobs: int,
    seeds: list[int],
    extra: list[str],
    over: bool,
    round_index: int,
) -> float:
    env = dict(env)
    env.pop("AUDIOCLF_THREADS", None)
    env.pop("AUDIOCLF_WORKERS", None)
    if over:
        env["AUDIOCLF_THREADS"] = str(available_cores())
    else:
        env["AUDIOCLF_WORKERS"] = str(jobs)
    sets = [a for s in extra for a in ("-S", s)]
    dvc(work, env, "exp", "run", "--queue", "-S", f"train.seed={','.join(map(str, seeds))}", *sets)
    # Output to a file: through a pipe `queue start` would return only when its detached
    # workers exit (they inherit it), and one can idle long after the sweep.
    with (work / "queue-start.log").open("a") as log:
        start = time.perf_counter()
        subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=work, env=env,
                       stdout=log, stderr=subprocess.STDOUT, check=True, timeout=600)  # fmt: skip
    while True:
        status = dvc(work, env, "queue", "status")
        states = task_states(status)
        if "Queued" not in states and "Running" not in states:
            break
        time.sleep(2)
    seconds = time.perf_counter() - start
    if states.count("Success") != len(seeds) * (round_index + 1):
        raise RuntimeError(f"not every queued experiment succeeded:\n{status}")
    for proc in psutil.process_iter(["cmdline", "cwd"]):  # a worker left idle, as above
        if "queue-worker" in " ".join(proc.info["cmdline"] or ()) and proc.info["cwd"] == str(work):
            proc.terminate()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--order", default="1,2,2all,2,1", help="rounds, of 1, 2, 2all")
    parser.add_argument("-S", dest="extra", action="append", default=[], help="dvc -S override")
    args = parser.parse_args()
    order = args.order.split(",")
    if unknown := set(order) - set(KINDS):
        parser.error(f"--order: unknown rounds {sorted(unknown)}; use 1, 2, 2all")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="sweep-parallel-"))
    _, work = origin_and_workspace(ROOT, root)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    start = time.perf_counter()
    dvc(work, env, "exp", "run", *[a for s in args.extra for a in ("-S", s)])
    print(f"[sweep_parallel] first run (fills the run cache): {time.perf_counter() - start:.0f} s")
    results = []
    for i, kind in enumerate(order):
        label, jobs, over = KINDS[kind]
        seeds = list(range(1000 + 100 * i, 1000 + 100 * i + args.runs))
        seconds = round_seconds(work, env, jobs, seeds, args.extra, over, i)
        results.append((kind, seconds))
        print(f"[sweep_parallel] round {i + 1}, {label}: {seconds:.0f} s", flush=True)
    load = os.getloadavg()
    print(f"\n{args.runs} runs per round, {available_cores()} cores, -S {' '.join(args.extra)}")
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("| round | -j | wall s | runs/hour |\n|---|---|---:|---:|")
    for i, (kind, seconds) in enumerate(results):
        print(f"| {i + 1} | {KINDS[kind][0]} | {seconds:.0f} | {args.runs * 3600 / seconds:.1f} |")
    mean = {k: sum(s for j, s in results if j == k) / order.count(k) for k in dict.fromkeys(order)}
    base = args.runs * 3600 / mean[order[0]]
    print(f"\n| -j | rounds | mean wall s | runs/hour | x {KINDS[order[0]][0]} |")
    print("|---|---:|---:|---:|---:|")
    for kind, seconds in mean.items():
        per_hour = args.runs * 3600 / seconds
        print(f"| {KINDS[kind][0]} | {order.count(kind)} | {seconds:.0f} | {per_hour:.1f} "
              f"| {per_hour / base:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
