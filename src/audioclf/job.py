"""The execution unit: one experiment in a fresh clone, for whatever engine runs it.

    audioclf job --repo <git url> --rev <commit> --name <experiment> [-S override ...]

SLURM array tasks (``audioclf sweep --slurm``) call it, and so can a Kubernetes Job, a Ray job
or a plain shell: the engine only runs this command. Steps, each timed:

1. **clone**: ``git clone --no-checkout <repo>`` into a new folder under job-local scratch
   (``$AUDIOCLF_SCRATCH``, else ``$SLURM_TMPDIR``, ``$TMPDIR``, ``/tmp``), then check out
   ``<commit>`` (detached). Each job has a folder of its own: two jobs never share a workspace,
   whose DVC locks break when shared (treeverse/dvc#7419) or killed mid-release (#7615).
2. **remote**: point the clone at the shared DVC remote (:mod:`audioclf.dvcremote`) and write
   one object to it: wrong S3 credentials stop the job here, before any training.
3. **run**: ``dvc exp run --pull -n <name> -S ...`` with the clone's ``src/`` first on
   ``PYTHONPATH``, so the stages run the code of ``<commit>``, not whatever is installed.
   ``--pull`` fetches the remote's run cache and the outputs of every stage some job already
   ran with the same inputs, so no stage is computed twice. (DVC runs through
   :mod:`audioclf.dvcfixes`, which fixes two DVC bugs that shared run caches meet.)
4. **push**: ``dvc exp push --run-cache <repo> <name>``: outputs and run cache to the DVC
   remote, the experiment's git ref to the repository the clone came from.
5. **cleanup**: the clone is deleted (``--keep`` keeps it, for debugging).

``MLFLOW_TRACKING_URI`` must name a shared tracking server (or a database): a SQLite file in
the clone would be deleted with it. The stages tag each MLflow run with the experiment name,
the commit and the scheduler's job id, read from the environment
(:func:`audioclf.tracking.run_tags`).

SIGTERM (``scancel``, a time limit, a deleted pod) is forwarded to the running step's whole
process group, which is killed after ``--grace`` seconds; the clone is deleted and the exit
status is 143. A failed step exits with its own status (or 2 for a bad set-up), naming the
step. The last line is a summary with the seconds each step took.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

from audioclf import dvcremote

EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, what a shell reports for a SIGTERM'd command
GRACE_S = 20.0  # SLURM's default KillWait is 30 s: stop the step before SIGKILL comes
# Stores that live in the job's own folder or machine, lost or unshareable after the job.
LOCAL_STORES = ("", "file", "sqlite")
# DVC with the fixes shared run caches need. Isolated (-I: PYTHONPATH ignored), so it is the
# installed audioclf's, whatever commit the clone holds; the stages DVC starts still get the
# clone's src/ first on PYTHONPATH.
DVC = [sys.executable, "-I", "-m", "audioclf.dvcfixes"]


class JobError(RuntimeError):
    """A step of the job failed; ``status`` is the exit status to report."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, so no ``except Exception`` swallows it)."""


def log(message: str) -> None:
    print(f"[job] {message}", file=sys.stderr, flush=True)


def scratch_root() -> Path:
    for var in ("AUDIOCLF_SCRATCH", "SLURM_TMPDIR", "TMPDIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir())


def check_tracking() -> str:
    """MLFLOW_TRACKING_URI, if it names a store that outlives the job; else a JobError."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise JobError(
            "MLFLOW_TRACKING_URI is not set: the runs would go to a SQLite file in the job's "
            "clone, which is deleted when the job ends. Point it at a shared MLflow server, "
            "e.g. MLFLOW_TRACKING_URI=http://mlflow.example:5000 (docs/cluster.md)"
        )
    if urlparse(uri).scheme in LOCAL_STORES:
        raise JobError(
            f"MLFLOW_TRACKING_URI={uri}: a local store cannot be shared by jobs on several "
            "machines (SQLite's locks need one host). Use a tracking server, "
            "e.g. http://mlflow.example:5000 (docs/cluster.md)"
        )
    return uri


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough; we are stopping
    raise Terminated


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the child's process group, wait up to ``grace_s`` seconds for *all* of it (the
    leader, DVC, can exit before the stage it started, which is still ending its MLflow run
    KILLED), then SIGKILL whatever is left, so nothing outlives the job in its clone."""
    deadline = time.monotonic() + grace_s
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def step(
    name: str, cmd: Sequence[str], cwd: Path, env: dict[str, str] | None, grace_s: float
) -> None:
    """Run one command in its own process group (so SIGTERM reaches all of it); raise on error."""
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, start_new_session=True)
    try:
        status = proc.wait()
    except Terminated:
        log(f"SIGTERM during {name}: stopping `{' '.join(cmd[:4])} ...` (pid {proc.pid})")
        stop_group(proc, grace_s)
        raise
    if status:
        raise JobError(f"step {name} failed: `{' '.join(cmd)}` exited with {status}", status)


class Steps:
    """Wall time of each step, for the summary line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - t0

    def summary(self) -> str:
        parts = [f"{k} {v:.1f} s" for k, v in self.seconds.items()]
        return ", ".join(parts) + f"; total {time.perf_counter() - self.start:.1f} s"


def run(
    repo: str,
    rev: str,
    name: str,
    overrides: Sequence[str] = (),
    *,
    keep: bool = False,
    grace_s: float = GRACE_S,
) -> int:
    """Run the experiment ``name`` of ``repo`` at ``rev`` in a fresh clone; the exit status."""
    steps = Steps()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    scratch: Path | None = None
    status = 0
    try:
        uri = check_tracking()
        root = scratch_root()
        root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"audioclf-{name}-", dir=root))
        clone = scratch / "repo"
        log(f"{name}: {repo} at {rev} in {clone}; tracking at {uri}")
        with steps.timed("clone"):
            step("clone", ["git", "clone", "--quiet", "--no-checkout", repo, str(clone)],
                 scratch, None, grace_s)  # fmt: skip
            step("checkout", ["git", "checkout", "--quiet", "--detach", rev],
                 clone, None, grace_s)  # fmt: skip
        with steps.timed("remote"):
            try:
                remote = dvcremote.configure(clone)
                log(dvcremote.check_s3(remote))
            except dvcremote.RemoteError as err:
                raise JobError(str(err)) from err
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(clone / "src"), os.environ.get("PYTHONPATH")])
            ),
            "DVC_NO_ANALYTICS": "1",
        }
        args = [a for o in overrides for a in ("-S", o)]
        with steps.timed("exp run"):
            step("exp run", [*DVC, "exp", "run", "--pull", "-n", name, *args],
                 clone, env, grace_s)  # fmt: skip
        with steps.timed("push"):
            step("push", [*DVC, "exp", "push", "--run-cache", "origin", name],
                 clone, env, grace_s)  # fmt: skip
    except Terminated:
        log(f"{name}: terminated (SIGTERM)")
        status = EXIT_TERMINATED
    except JobError as err:
        log(f"{name}: {err}")
        status = err.status
    finally:
        if scratch is not None and not keep:
            with steps.timed("cleanup"):
                shutil.rmtree(scratch, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
    outcome = "done" if status == 0 else f"failed ({status})"
    log(f"{name}: {outcome}; {steps.summary()}")
    return status


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "job",
        help="run one experiment in a fresh clone and push it (the cluster execution unit)",
        description=__doc__.split("\n")[0],
    )
    p.add_argument("--repo", required=True, help="git URL or path to clone (and push the exp to)")
    p.add_argument("--rev", required=True, help="the commit to run the experiment from")
    p.add_argument("--name", "-n", required=True, help="the DVC experiment's name")
    p.add_argument(
        "-S", "--set-param", dest="overrides", action="append", default=[],
        help="a Hydra override, as `dvc exp run -S` takes it (repeatable)",
    )  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the clone (for debugging)")
    p.add_argument(
        "--grace", type=float, default=GRACE_S,
        help=f"seconds a step gets to stop after SIGTERM before SIGKILL (default {GRACE_S:g})",
    )  # fmt: skip
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    return run(args.repo, args.rev, args.name, args.overrides, keep=args.keep, grace_s=args.grace)
