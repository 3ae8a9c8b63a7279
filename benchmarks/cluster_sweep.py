"""The same 4-run sweep through SLURM (2 slots) and through `dvc queue -j 2`; the job's overhead.

Starts the services of tests/services.py on loopback (PostgreSQL, SeaweedFS's S3, one SLURM
node, `mlflow server`, a bare git `origin`), then, on the tiny config of the end-to-end tests
(test_e2e.TINY, spec_cnn2d at filters [8,16]) and a grid of 4 points:

1. `audioclf sweep --slurm --max-parallel 2 --wait` from a workspace whose DVC remote is empty:
   wall time, and each task's step times from its `[job]` summary line.
2. With ``--again``, the same sweep submitted again: every stage but `compare` is restored
   from the remote's run cache, so each task's time is the execution unit's overhead (clone +
   checkout, remote check, `dvc exp run --pull` restoring every stage, `dvc exp push`).
3. `dvc exp run --queue` of the same grid and `dvc queue start -j 2`, in a fresh copy of the
   workspace (its own empty DVC cache), logging to the same tracking server: wall time from
   `queue start` until no experiment is queued or running.

Run from the repository root as root (slurmd runs jobs as root), with the packages of
tests/test_cluster.py installed:

    python -m benchmarks.cluster_sweep [--again] [--grid 'model.dropout=0.1,0.2' --grid ...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from tests import services
from tests.test_e2e import SMALL_CNN, TINY

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"\[job\] (\S+): done; (.*); total ([\d.]+) s")


def step_times(log_dir: Path, prefix: str) -> dict[str, dict[str, float]]:
    """Experiment name -> {step: seconds, "total": seconds} from the tasks' summary lines."""
    out = {}
    for log in sorted(log_dir.glob(f"{prefix}-job*_*.out")):
        for m in SUMMARY.finditer(log.read_text(errors="replace")):
            steps = dict(s.rsplit(" ", 2)[:2] for s in m.group(2).split(", "))
            out[m.group(1)] = {k: float(v) for k, v in steps.items()} | {"total": float(m.group(3))}
    return out


def sh(cwd: Path, env: dict[str, str], *args: str, timeout: float = 7200) -> str:
    out = subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode:
        raise RuntimeError(
            f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    return out.stdout + out.stderr


def sweep(work: Path, env: dict[str, str], prefix: str, overrides: list[str]) -> float:
    args = [a for o in overrides for a in ("-S", o)]
    start = time.perf_counter()
    sh(work, env, "audioclf", "sweep", "--slurm", *args, "--name", prefix,
       "--max-parallel", "2", "--wait")  # fmt: skip
    return time.perf_counter() - start


def queue(work: Path, env: dict[str, str], overrides: list[str]) -> float:
    args = [a for o in overrides for a in ("-S", o)]
    sh(work, env, "dvc", "exp", "run", "--queue", *args)
    # `dvc queue start` detaches its workers, but they inherit its stdout: through a pipe it
    # returns only when the last worker exits, and a worker that was busy when the queue's
    # monitor broadcast its shutdown can stay up (measured: one idled 4 min after the sweep).
    # So its output goes to a file, and the sweep ends when no task is queued or running.
    with (work / "queue-start.log").open("w") as log:
        start = time.perf_counter()
        subprocess.run(["dvc", "queue", "start", "-j", "2"], cwd=work, env=env, stdout=log,
                       stderr=subprocess.STDOUT, check=True, timeout=600)  # fmt: skip
    while True:
        status = sh(work, env, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    seconds = time.perf_counter() - start
    for proc in psutil.process_iter(["cmdline", "cwd"]):  # a worker left up, as above
        if "queue-worker" in " ".join(proc.info["cmdline"] or ()) and proc.info["cwd"] == str(work):
            proc.terminate()
    if status.count("Success") != 4:
        raise RuntimeError(f"dvc queue did not succeed:\n{status}")
    return seconds


def table(name: str, times: dict[str, dict[str, float]]) -> None:
    steps = list(next(iter(times.values())))
    print(f"\n{name}: per task, seconds")
    print("| experiment | " + " | ".join(steps) + " |")
    print("|---" * (len(steps) + 1) + "|")
    for exp, t in sorted(times.items()):
        print(f"| {exp} | " + " | ".join(f"{t[s]:.1f}" for s in steps) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--grid", action="append", default=None,
        help="a sweep override (repeatable); default: model.dropout=0.1,0.2 x augment=none,light",
    )  # fmt: skip
    parser.add_argument("--again", action="store_true", help="also time an identical resubmit")
    args = parser.parse_args()
    grid = args.grid or ["model.dropout=0.1,0.2", "augment=none,light"]
    overrides = [*TINY, SMALL_CNN, *grid]
    if lacking := services.missing():
        raise SystemExit("missing: " + "; ".join(lacking))
    root = Path(tempfile.mkdtemp(prefix="audioclf-bench-"))
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(services.postgres(root / "logs"))
        s3 = stack.enter_context(services.s3(root / "s3"))
        slurm = stack.enter_context(services.slurm(root / "slurm"))
        mlflow = stack.enter_context(services.MlflowServer(db, s3, root / "logs"))
        _, work = services.origin_and_workspace(ROOT, root / "git")
        env = {
            **os.environ, **slurm.env,
            "PATH": f"{services.BIN}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": mlflow.url, "AUDIOCLF_DVC_REMOTE": f"s3://{s3.bucket}/dvc",
            "AWS_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AUDIOCLF_SCRATCH": str(root / "scratch"),
            "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }  # fmt: skip
        print(f"grid: {' x '.join(grid)} on {' '.join(overrides[: -len(grid)])}", flush=True)
        first = sweep(work, env, "cold", overrides)
        print(f"SLURM, 2 slots, empty remote: {first:.1f} s", flush=True)
        again = sweep(work, env, "warm", overrides) if args.again else None
        if again is not None:
            print(f"SLURM, 2 slots, same sweep again (all restored): {again:.1f} s", flush=True)
        # The queue runs in a fresh copy: its own empty cache, nothing shared with the above.
        # Without audioclf.dvcfixes, DVC bug 1 (docs/cluster.md) fails the queued experiments
        # that restore stages from the run cache while the committed dvc.lock names results
        # that are in no cache (measured: 2 of 4 failed): the copy commits no dvc.lock.
        _, fresh = services.origin_and_workspace(ROOT, root / "git-queue")
        services.git(fresh, "rm", "-q", "dvc.lock")
        services.git(fresh, "-c", "user.name=b", "-c", "user.email=b@example.com",
                     "commit", "-q", "-m", "no committed results")  # fmt: skip
        local = {k: v for k, v in env.items() if k != "AUDIOCLF_DVC_REMOTE"}
        queued = queue(fresh, local, overrides)
        print(f"dvc queue -j 2, empty cache: {queued:.1f} s", flush=True)
        logs = work / "slurm-logs"
        table("SLURM sweep, empty remote", step_times(logs, "cold"))
        rows = [("dvc queue -j 2", queued), ("SLURM array %2, empty remote", first)]
        if again is not None:
            table("SLURM sweep again, every stage restored (the execution unit's overhead)",
                  step_times(logs, "warm"))  # fmt: skip
            rows.append(("SLURM array %2, same sweep again", again))
        print("\n| 4 runs, 2 at a time | wall time, s | × dvc queue |\n|---|---:|---:|")
        for name, s in rows:
            print(f"| {name} | {s:.1f} | {s / queued:.2f} |")
        load = os.getloadavg()
        print(f"\nload average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
