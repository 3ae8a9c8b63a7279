"""Runs per hour of the same 4-run sweep through `dvc queue start -j 1` and `-j 2`, and `-j 2`
with every worker's threads sized for the whole machine (the behaviour before audioclf.threads).

Each round queues 4 experiments that differ only in ``train.seed`` (fresh seeds per round, so
DVC's run cache restores nothing of train/evaluate), starts the workers with
``AUDIOCLF_WORKERS`` set to ``-j`` (or ``AUDIOCLF_THREADS`` = all cores for the oversubscribed
round), and times from `queue start` until `dvc queue status` shows nothing queued or running
and no active worker. The data stages must already be in the run cache: run `dvc repro` first.

    python benchmarks/sweep_parallel.py [--runs 4] [-S train.epochs=3 ...]

Prints a table: round, wall seconds, runs per hour, ratio to -j 1. Not a test: takes ~30+ min
on 2 cores with the default config.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

from audioclf.threads import available_cores

ROOT = Path(__file__).resolve().parents[1]


def dvc(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        ["dvc", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600
    )
    if out.returncode:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


def busy(env: dict[str, str]) -> bool:
    status = dvc(env, "queue", "status")
    lines = status.splitlines()
    running = any(" Queued " in f" {x} " or " Running " in f" {x} " for x in lines)
    active = not any("0 active" in x for x in lines if "Worker status" in x)
    return running or active


def round_seconds(jobs: int, seeds: list[int], extra: list[str], oversubscribe: bool) -> float:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("AUDIOCLF_THREADS", None)
    if oversubscribe:
        env["AUDIOCLF_THREADS"] = str(available_cores())
    else:
        env["AUDIOCLF_WORKERS"] = str(jobs)
    sets = [a for s in extra for a in ("-S", s)]
    dvc(env, "exp", "run", "--queue", "-S", f"train.seed={','.join(map(str, seeds))}", *sets)
    start = time.perf_counter()
    dvc(env, "queue", "start", "-j", str(jobs))
    time.sleep(10)
    while busy(env):
        time.sleep(10)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("-S", dest="extra", action="append", default=[], help="dvc -S override")
    args = parser.parse_args()
    rounds = [("-j 1", 1, False), ("-j 2", 2, False), ("-j 2, threads = all cores", 2, True)]
    results = []
    for i, (label, jobs, over) in enumerate(rounds):
        seeds = list(range(1000 + 100 * i, 1000 + 100 * i + args.runs))
        seconds = round_seconds(jobs, seeds, args.extra, over)
        results.append((label, seconds))
        print(f"[sweep_parallel] {label}: {seconds:.0f} s", flush=True)
    base = args.runs * 3600 / results[0][1]
    print(f"{args.runs} runs, {available_cores()} cores")
    print("| round | wall s | runs/hour | x -j 1 |")
    print("|---|---|---|---|")
    for label, seconds in results:
        per_hour = args.runs * 3600 / seconds
        print(f"| {label} | {seconds:.0f} | {per_hour:.1f} | {per_hour / base:.2f} |")


if __name__ == "__main__":
    main()
