"""Threads per training process, so that a sweep's queued workers share the cores instead of
each starting thread pools sized for the whole machine (`dvc queue start -j 2` on 2 cores used
to run 2 x 2 intra-op threads plus BLAS threads).

threads = the cores this process may use (``os.sched_getaffinity``: a SLURM or taskset limit
counts) // the training workers running at once, at least 1. The workers are, in order:
``AUDIOCLF_WORKERS`` (set it to the ``-j`` of ``dvc queue start``); else, inside a DVC queued
experiment (DVC sets ``DVC_ROOT`` for those), the experiments DVC records as running in
``$DVC_ROOT/.dvc/tmp/exps/run/*/*.run``; else 1. DVC sets no variable with the worker count,
and the running count is a snapshot (a worker that starts a moment later is missed), so set
``AUDIOCLF_WORKERS`` for sweeps. ``train.threads`` or ``AUDIOCLF_THREADS`` override the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from audioclf.config import ConfigError

WORKERS_ENV = "AUDIOCLF_WORKERS"
THREADS_ENV = "AUDIOCLF_THREADS"
RUNNING = 2  # dvc.repo.experiments.executor.base.TaskStatus.RUNNING


@dataclass(frozen=True)
class Threads:
    intra: int  # TensorFlow intra-op pool and BLAS (threadpoolctl) threads
    inter: int  # TensorFlow inter-op pool: ops run side by side (few in a Keras train step)


def plan(cores: int, workers: int, threads: int | None = None) -> Threads:
    """``threads`` if given, else ``cores // workers`` (at least 1); inter-op at most 2."""
    per = threads if threads is not None else max(1, cores // max(1, workers))
    return Threads(intra=per, inter=min(2, per))


def available_cores() -> int:
    """The cores this process may run on (affinity mask), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _positive(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"environment variable {name}={value!r}: must be an integer >= 1")
    return int(value)


def running_dvc_experiments(dvc_root: str | os.PathLike) -> int:
    """How many experiments DVC's queue records as running under ``dvc_root``; 0 if unknown."""
    count = 0
    for info in Path(dvc_root, ".dvc", "tmp", "exps", "run").glob("*/*.run"):
        try:
            count += json.loads(info.read_text()).get("status") == RUNNING
        except (OSError, ValueError, AttributeError):
            continue  # written or removed as we read it
    return count


def workers(environ: Mapping[str, str] = os.environ) -> int:
    """The training workers running at once (see the module docstring)."""
    explicit = _positive(environ, WORKERS_ENV)
    if explicit is not None:
        return explicit
    if environ.get("DVC_ROOT"):
        return max(1, running_dvc_experiments(environ["DVC_ROOT"]))
    return 1


def configure(threads: int | None = None, environ: Mapping[str, str] = os.environ) -> Threads:
    """Size TensorFlow's pools and BLAS for this process; call before TensorFlow runs an op.

    ``threads`` (``train.threads``) wins over ``AUDIOCLF_THREADS``, which wins over the plan.
    """
    override = threads if threads is not None else _positive(environ, THREADS_ENV)
    chosen = plan(available_cores(), workers(environ), override)
    from threadpoolctl import threadpool_limits

    from audioclf.tfimport import import_tensorflow

    tf = import_tensorflow()
    # Every BLAS/OpenMP library loaded by now (NumPy's, TensorFlow's): env vars are too late.
    threadpool_limits(limits=chosen.intra)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(chosen.intra)
        tf.config.threading.set_inter_op_parallelism_threads(chosen.inter)
    except RuntimeError:  # runtime already started (a second stage main in one process)
        import warnings

        warnings.warn(
            f"TensorFlow already runs: its thread pools keep their size, not {chosen} "
            "(audioclf.threads.configure must run before TensorFlow's first op)",
            stacklevel=2,
        )
    return chosen
