"""Sweeps on a SLURM cluster: one job array, one task per grid point, each an ``audioclf job``.

    audioclf sweep --slurm -S 'model=spec_cnn2d,crnn' -S 'augment=none,light' [--max-parallel 4]
    audioclf sweep --collect [--name <sweep>]

The grid is expanded exactly as ``dvc exp run --queue -S`` expands it (DVC's own
``get_hydra_sweeps``, built on Hydra's override parser): ``key=a,b`` is a choice sweep,
``key=[a,b]`` a list value, one grid point per combination, named ``<sweep>-1``,
``<sweep>-2``, ... as DVC names queued sweeps. The local ``dvc queue`` stays the one-machine
path; this is the same sweep on many machines.

Submitting checks first what would make every task fail: uncommitted changes (they would not
reach the cluster), a commit that is not on the git remote the tasks clone from, no shared
tracking server, a DVC remote that refuses the S3 credentials. Then one ``sbatch --array=0-N%K``
runs a batch script (kept in ``--log-dir`` beside the tasks' logs) that maps
``SLURM_ARRAY_TASK_ID`` to its grid point and ``exec``s ``audioclf job`` for it, with this
environment's ``bin/`` first on PATH (so nodes need the same path: a shared file system, or the
same install on every node). The environment is exported to the tasks (sbatch's default), so
``MLFLOW_TRACKING_URI``, ``AUDIOCLF_DVC_REMOTE`` and the S3 credentials reach them.

``--collect`` pulls the sweep's experiments back from the git remote (``dvc exp pull``, their
outputs from the DVC remote), shows them (``dvc exp show``) and refreshes the comparison of
every run on the tracking server (``dvc repro -f -s compare``).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from audioclf import dvcremote, job

DEFAULT_LOG_DIR = Path("slurm-logs")


class SweepError(RuntimeError):
    """Something that would make the sweep fail; the message says what to do."""


@dataclass(frozen=True)
class Point:
    name: str  # the DVC experiment's name
    overrides: tuple[str, ...]  # `-S` arguments, as `dvc exp run -S` takes them


def expand(overrides: Sequence[str], prefix: str) -> list[Point]:
    """Every grid point of ``overrides`` (DVC's `-S` grammar), named ``<prefix>-<n>``."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps
    from hydra.errors import HydraException

    try:
        sweeps = get_hydra_sweeps(to_path_overrides(list(overrides)))
    except (InvalidArgumentError, HydraException, ValueError) as err:
        raise SweepError(f"-S {' -S '.join(overrides)}: {err}") from err
    points = []
    for i, by_file in enumerate(sweeps, start=1):
        args = tuple(
            o if path == "params.yaml" else f"{path}:{o}"
            for path, file_overrides in by_file.items()
            for o in file_overrides
        )
        points.append(Point(f"{prefix}-{i}", args))
    return points


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if out.returncode:
        raise SweepError(f"`git {' '.join(args)}` in {repo} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def pushed_commit(repo: Path, git_remote: str) -> tuple[str, str]:
    """(HEAD's commit, the git remote's URL), checking the tasks will find that commit there."""
    if git(repo, "status", "--porcelain", "--untracked-files=no"):
        raise SweepError(
            f"{repo}: uncommitted changes would not reach the cluster (the tasks clone the "
            "commit). Commit them and push, then submit again"
        )
    commit = git(repo, "rev-parse", "HEAD")
    url = git(repo, "remote", "get-url", git_remote)
    git(repo, "fetch", "--quiet", git_remote)
    if not git(repo, "for-each-ref", "--contains", commit, f"refs/remotes/{git_remote}"):
        raise SweepError(
            f"commit {commit[:12]} is not on {git_remote} ({url}), where the tasks clone from: "
            f"`git push {git_remote}` first"
        )
    return commit, url


def batch_script(
    points: Sequence[Point],
    repo_url: str,
    commit: str,
    *,
    job_name: str,
    max_parallel: int,
    log_dir: Path,
    sbatch_args: Sequence[str] = (),
    bin_dir: Path | None = None,
) -> str:
    """The sbatch script of the job array: task i runs ``audioclf job`` for ``points[i]``."""
    bin_dir = bin_dir or Path(sys.executable).parent
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{len(points) - 1}%{max_parallel}",
        f"#SBATCH --output={log_dir.resolve() / '%x-job%A_%a.out'}",
        *(f"#SBATCH {a}" for a in sbatch_args),
        "# Written by `audioclf sweep --slurm` (src/audioclf/sweep.py): one task per grid point.",
        "set -euo pipefail",
        f'export PATH={q(str(bin_dir))}:"$PATH" DVC_NO_ANALYTICS=1',
        'case "$SLURM_ARRAY_TASK_ID" in',
    ]
    for i, p in enumerate(points):
        args = " ".join(f"-S {q(o)}" for o in p.overrides)
        lines.append(f"  {i}) set -- --name {q(p.name)} {args} ;;")
    lines += [
        '  *) echo "no grid point for task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
        "esac",
        f'exec audioclf job --repo {q(repo_url)} --rev {commit} "$@"',
        "",
    ]
    return "\n".join(lines)


def preflight(repo: Path) -> None:
    """What every task checks first, checked once here: tracking server and S3 credentials."""
    try:
        job.check_tracking()
        remote = dvcremote.resolve(repo)
        print(f"sweep: {dvcremote.check_s3(remote)}", file=sys.stderr)
    except (job.JobError, dvcremote.RemoteError) as err:
        raise SweepError(str(err)) from err


def submit(
    overrides: Sequence[str],
    *,
    repo: Path = Path("."),
    prefix: str | None = None,
    max_parallel: int = 2,
    git_remote: str = "origin",
    log_dir: Path = DEFAULT_LOG_DIR,
    sbatch_args: Sequence[str] = (),
    wait: bool = False,
) -> tuple[str, list[Point], int]:
    """Submit the sweep as one job array; return (job id, grid points, sbatch's status)."""
    if max_parallel < 1:
        raise SweepError(f"--max-parallel: must be >= 1, got {max_parallel}")
    prefix = prefix or time.strftime("sweep-%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    points = expand(overrides, prefix)
    commit, url = pushed_commit(repo, git_remote)
    preflight(repo)
    log_dir = (repo / log_dir) if not log_dir.is_absolute() else log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    script = log_dir / f"{prefix}.sbatch"
    script.write_text(
        batch_script(
            points, url, commit, job_name=prefix, max_parallel=max_parallel,
            log_dir=log_dir, sbatch_args=sbatch_args,
        )
    )  # fmt: skip
    cmd = ["sbatch", "--parsable", *(["--wait"] if wait else []), str(script)]
    try:
        out = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise SweepError("sbatch: not found. Run this on a SLURM submit host") from err
    job_id = out.stdout.strip().split("\n")[0].split(";")[0]
    if not job_id:
        raise SweepError(f"`{' '.join(cmd)}` failed ({out.returncode}): {out.stderr.strip()}")
    return job_id, points, out.returncode


def remote_experiments(repo: Path, git_remote: str) -> list[str]:
    """Names of the experiments on the git remote that are based on HEAD."""
    out = subprocess.run(
        ["dvc", "exp", "list", "--name-only", git_remote],
        cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SweepError(f"`dvc exp list {git_remote}` failed: {out.stderr.strip()}")
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def collect(repo: Path = Path("."), prefix: str | None = None, git_remote: str = "origin") -> int:
    """Pull the sweep's experiments back, show them and refresh the comparison."""
    names = sorted(
        n for n in remote_experiments(repo, git_remote) if not prefix or n.startswith(f"{prefix}-")
    )
    if not names:
        raise SweepError(
            f"no experiments{f' named {prefix}-<n>' if prefix else ''} based on HEAD on "
            f"{git_remote}: check the sweep's logs, or check out the commit it ran from"
        )
    try:
        dvcremote.configure(repo)  # from AUDIOCLF_DVC_REMOTE if set, for the outputs
    except dvcremote.RemoteError as err:
        raise SweepError(str(err)) from err
    for cmd in (
        ["dvc", "exp", "pull", git_remote, *names],
        ["dvc", "exp", "show", "--md", "--no-pager"],
        ["dvc", "repro", "--force", "--single-item", "compare"],
    ):
        print(f"sweep: {' '.join(cmd)}", file=sys.stderr, flush=True)
        status = subprocess.run(cmd, cwd=repo).returncode
        if status:
            raise SweepError(f"`{' '.join(cmd)}` failed with {status}")
    print(f"sweep: collected {len(names)} experiments: {', '.join(names)}", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="submit a grid of experiments as a SLURM job array, or collect its results",
        description=__doc__.split("\n")[0],
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--slurm", action="store_true", help="submit the grid as one job array")
    mode.add_argument("--collect", action="store_true", help="pull the sweep back and compare")
    p.add_argument(
        "-S", "--set-param", dest="overrides", action="append", default=[],
        help="an override or a sweep (`key=a,b`), as `dvc exp run --queue -S` takes it",
    )  # fmt: skip
    p.add_argument("--max-parallel", type=int, default=2, help="tasks running at once (%%K)")
    p.add_argument("--name", help="the sweep's name: experiments are <name>-1, <name>-2, ...")
    p.add_argument("--git-remote", default="origin", help="where tasks clone from and push to")
    p.add_argument("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help="batch script and logs")
    p.add_argument(
        "--sbatch", dest="sbatch_args", action="append", default=[], metavar="OPTION",
        help="an extra sbatch option, e.g. --sbatch=--partition=gpu (repeatable)",
    )  # fmt: skip
    p.add_argument("--wait", action="store_true", help="return when every task has ended")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    try:
        if args.collect:
            return collect(prefix=args.name, git_remote=args.git_remote)
        if not args.overrides:
            raise SweepError("--slurm: give the grid with -S, e.g. -S 'model=crnn,ds_cnn'")
        job_id, points, status = submit(
            args.overrides, prefix=args.name, max_parallel=args.max_parallel,
            git_remote=args.git_remote, log_dir=args.log_dir, sbatch_args=args.sbatch_args,
            wait=args.wait,
        )  # fmt: skip
    except SweepError as err:
        print(f"audioclf sweep: {err}", file=sys.stderr)
        return 2
    for i, p in enumerate(points):
        print(f"{job_id}_{i}\t{p.name}\t{' '.join(p.overrides)}")
    prefix = points[0].name.rsplit("-", 1)[0]
    print(
        f"sweep: job array {job_id}, {len(points)} tasks, {args.max_parallel} at a time; "
        f"logs in {args.log_dir}/. Then: audioclf sweep --collect --name {prefix}",
        file=sys.stderr,
    )
    return 1 if status else 0
