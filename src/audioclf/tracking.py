"""MLflow tracking: one live run per pipeline run, in one SQLite store at the repository root.

The store is ``sqlite:///<root>/mlflow.db`` with artifacts under ``<root>/mlartifacts``, where
``<root>`` is ``DVC_ROOT`` (set by DVC for every stage; for queued experiments, which run in
temporary copies of the repository, it still points at the real repository) or else the
current directory. ``MLFLOW_TRACKING_URI`` overrides the store.

The life of a run (docs/tracking.md):

- ``train`` starts it (:func:`start_run`: params, provenance tags, dataset inputs), logs each
  epoch as it ends (:func:`epoch_logger`), writes its id to ``data/model/run.json`` and hands
  it over (:func:`hand_over`) to the DVC process that will run ``evaluate``;
- ``evaluate`` takes it over (:func:`evaluation_run`), adds test metrics, images and the model,
  and ends it FINISHED. When ``train`` did not run in this pipeline run (DVC restored it from
  its run cache, or it was up to date), the run that ``run.json`` names has ended already:
  ``evaluate`` starts a new run, copies the training history from ``history.csv`` and tags it
  ``restored_from=<that run id>``. So each ``dvc exp run`` that evaluates logs one run.
- An error ends the run FAILED; SIGTERM (SLURM, Kubernetes, ``kill``) or Ctrl-C ends it KILLED
  (:func:`ends_on_error`). A SIGKILLed process cannot end its run: every run records the
  process that owns it (tag ``audioclf.owner`` = host:pid:start time), and the next start of
  ``train`` or ``evaluate`` marks KILLED each RUNNING run whose owner is gone
  (:func:`sweep_up`; on another host, a run with a SLURM job id is checked with ``squeue``).

Nothing here runs at import time; mlflow itself is imported only when a run is logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from audioclf.config import flatten, tracking_uri
from audioclf.lineage import dataset_inputs, hash_tags, out_hashes

OWNER = "audioclf.owner"  # host:pid:start time of the process that works on the run now
PHASE = "audioclf.phase"  # training, trained (awaiting evaluate), evaluating
RESTORED_FROM = "restored_from"  # the run whose training a restored run reuses
SWEPT = "audioclf.swept_up"  # why the sweep-up marked the run KILLED
RUN_FILE = "run.json"  # in train's outputs: the run evaluate continues


def git_commit(cwd: Path | None = None) -> str:
    """HEAD of the repository the stage runs in ("unknown" outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


# Scheduler job ids, when a cluster engine ran the experiment (docs/cluster.md): environment
# variable -> tag. An array task has its own SLURM_JOB_ID and its array's id and index.
JOB_ID_TAGS = {
    "SLURM_JOB_ID": "slurm_job_id",
    "SLURM_ARRAY_JOB_ID": "slurm_array_job_id",
    "SLURM_ARRAY_TASK_ID": "slurm_array_task_id",
}


def run_tags() -> dict[str, str]:
    """Provenance: git commit and, under `dvc exp run`, the experiment's name and baseline;
    under a scheduler, its job ids."""
    # A queued experiment runs in a temporary copy whose HEAD is a DVC-internal commit; the
    # baseline DVC names is the user's commit the experiment was made from.
    tags = {"git_commit": os.environ.get("DVC_EXP_BASELINE_REV") or git_commit()}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc_exp_baseline"] = os.environ["DVC_EXP_BASELINE_REV"]
    tags |= {tag: os.environ[var] for var, tag in JOB_ID_TAGS.items() if os.environ.get(var)}
    return tags


def transfer_params(backbone: Mapping[str, Any] | None, model: Mapping[str, Any]) -> dict:
    """The params a transfer run adds to its MLflow record: ``backbone.<key>`` (name, weights
    sha256, layers, embedding size: data/features/info.json's ``backbone``) and
    ``classifier.<key>`` (the ``model`` section: name and hyperparameters). Empty for a
    network trained from scratch, which has no backbone."""
    if not backbone:
        return {}
    out = {f"backbone.{k}": v for k, v in backbone.items()}
    out |= {f"classifier.{k}": v for k, v in sorted(model.items())}
    return out


def client():  # -> mlflow.MlflowClient
    import mlflow

    return mlflow.MlflowClient(tracking_uri())


def get_experiment_id(experiment: str, c=None) -> str:
    """The experiment's id, created with artifacts next to the store if it is new."""
    import mlflow

    c = c or client()
    found = c.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    uri = tracking_uri()
    location = None
    if uri.startswith("sqlite:///"):
        # Without this MLflow puts artifacts under the *current* directory, which for a
        # queued experiment is a temporary copy that is deleted afterwards.
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    try:
        return c.create_experiment(experiment, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # Another queued experiment created it first.
        return c.get_experiment_by_name(experiment).experiment_id


@contextlib.contextmanager
def store_lock() -> Iterator[None]:
    """Serialise writers of a local SQLite store.

    Queued experiments (`dvc queue start -j 2`) run side by side; two processes creating
    the tables of a new store, or writing at the same moment, can fail with "database is
    locked". An exclusive lock on a file beside the store makes them take turns.
    """
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///")).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- who owns a run, and the sweep-up of runs whose owner is gone -----------------------


def process_id(pid: int | None = None) -> str:
    """host:pid:start time (s, 2 decimals): a process, told apart from a later one that
    reuses its pid."""
    import psutil

    proc = psutil.Process(pid)
    return f"{socket.gethostname()}:{proc.pid}:{proc.create_time():.2f}"


def pipeline_process() -> str:
    """The DVC process running this stage (it will run the next stage), else the parent."""
    import psutil

    parents = psutil.Process().parents()
    for proc in parents:
        with contextlib.suppress(psutil.Error):
            cmd = proc.cmdline()
            if "dvc" in {Path(a).name for a in cmd} or "audioclf.dvcfixes" in cmd:
                return process_id(proc.pid)
    return process_id(parents[0].pid if parents else None)


def owner_alive(owner: str) -> bool | None:
    """Whether the process ``owner`` names still runs; None when it is on another host."""
    import psutil

    host, pid, started = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return None
    try:
        proc = psutil.Process(int(pid))
        same = abs(proc.create_time() - float(started)) < 0.02
        return same and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def slurm_job_alive(job_id: str) -> bool | None:
    """Whether SLURM still has the job (pending or running); None without ``squeue``."""
    if not shutil.which("squeue"):
        return None
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=60
    )
    if out.returncode:
        # A job SLURM has forgotten is "Invalid job id"; anything else: we cannot tell.
        return False if "Invalid job id" in out.stderr else None
    states = set(out.stdout.split())
    return bool(states - {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OOM"})


def sweep_up(experiment_id: str, c=None) -> list[str]:
    """Mark KILLED every RUNNING run of the experiment whose owner is gone (SIGKILL, a lost
    node); return their ids. A run whose owner cannot be checked from here is left alone."""
    c = c or client()
    swept = []
    for run in c.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        tags = run.data.tags
        alive = owner_alive(tags[OWNER]) if OWNER in tags else None
        why = f"owner {tags.get(OWNER)} is gone"
        if alive is None and tags.get("slurm_job_id"):
            alive = slurm_job_alive(tags["slurm_job_id"])
            why = f"SLURM job {tags['slurm_job_id']} is gone"
        if alive is False:
            c.set_tag(run.info.run_id, SWEPT, f"{why}; marked KILLED by {process_id()}")
            c.set_terminated(run.info.run_id, "KILLED")
            swept.append(run.info.run_id)
    return swept


# --- a run's life: start, live epochs, hand-over, end ------------------------------------


class Terminated(SystemExit):
    """SIGTERM arrived: exit with 143 like a SIGTERM'd command (no ``except Exception``
    catches it)."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough; we are stopping
    raise Terminated


@contextlib.contextmanager
def ends_on_error(run_id: str) -> Iterator[None]:
    """Inside: SIGTERM raises :class:`Terminated`. The run ends KILLED on SIGTERM or Ctrl-C,
    FAILED on any other error; the error goes on."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        yield
    except (Terminated, KeyboardInterrupt):
        end_run(run_id, "KILLED")
        raise
    except BaseException:
        end_run(run_id, "FAILED")
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def end_run(run_id: str, status: str) -> None:
    with store_lock():
        client().set_terminated(run_id, status)


def _log_params(c, run_id: str, params: Mapping[str, Any], logged: Mapping[str, str]) -> None:
    """``params`` (flat) not yet on the run; MLflow takes at most 100 per batch."""
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items()) if k not in logged]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])


def start_run(
    experiment: str, params: Mapping[str, Any], tags: Mapping[str, str], phase: str = "training"
) -> str:
    """Sweep up the experiment, then start a run owned by this process; its id.

    ``params`` are nested sections (flattened here: "model.dropout"); the run is named after
    the DVC experiment when there is one."""
    with store_lock():
        c = client()
        experiment_id = get_experiment_id(experiment, c)
        swept = sweep_up(experiment_id, c)
        run = c.create_run(
            experiment_id,
            run_name=tags.get("dvc_exp_name"),
            tags={**tags, OWNER: process_id(), PHASE: phase},
        )
        _log_params(c, run.info.run_id, flatten(dict(params)), {})
    for old in swept:
        print(f"[tracking] run {old} was left RUNNING by a process that is gone: marked KILLED")
    return run.info.run_id


def log_lineage(run_id: str, data_name: str, parts, params_file: Path | None) -> None:
    """Dataset inputs (DVC hashes from dvc.lock as digests), hash tags and the composed
    params file as an artifact. Outputs without a hash (a stage run outside DVC) are said."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    hashes = out_hashes()
    found, missing = dataset_inputs(data_name, parts, hashes)
    datasets = []
    for d in found:
        with warnings.catch_warnings():  # MLflow registers the local source twice
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(str(Path(d.path).resolve()))
        entity = MetaDataset(source, name=d.name, digest=d.digest)._to_mlflow_entity()
        tags = [
            InputTag("mlflow.data.context", d.context),
            InputTag("version", d.digest),
            InputTag("split", d.context),
        ]
        datasets.append(DatasetInput(entity, tags))
    with store_lock():
        c = client()
        if datasets:
            log_inputs(c, run_id, datasets)
        c.set_tag(run_id, "dvc.lock", "found" if hashes else "absent")
        for key, value in hash_tags(hashes).items():
            c.set_tag(run_id, key, value)
        if params_file is not None:
            c.log_artifact(run_id, str(params_file))
    if missing:
        print(
            f"[tracking] no hash in dvc.lock for {', '.join(missing)}: not logged as dataset "
            "inputs (the stage ran outside `dvc repro`/`dvc exp run`)"
        )


def log_inputs(c, run_id: str, datasets: list, attempts: int = 4) -> None:
    """``log_inputs``, retried when another process registered the same dataset at the same
    moment: jobs of a sweep share their data (same name and DVC digest), and a tracking server
    on PostgreSQL answers the second of two simultaneous first inserts with a unique-key
    violation ("duplicate key value violates unique constraint dataset_pk"). Once the row
    exists, MLflow reuses it, so a retry succeeds."""
    import random

    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            c.log_inputs(run_id, datasets=datasets)
            return
        except MlflowException as err:
            text = str(err)
            race = (
                "dataset_pk" in text
                or "UNIQUE constraint failed" in text
                or "UniqueViolation" in text
            )
            if not race or attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random())


def epoch_logger(run_id: str) -> Callable[[int, Mapping[str, float]], None]:
    """A function that logs one epoch's metrics (step = epoch, 1-based) as it ends. A failure
    to log is reported and training goes on."""
    from mlflow.entities import Metric

    c = client()

    def log(epoch: int, values: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch) for k, v in values.items()]
        try:
            with store_lock():
                c.log_batch(run_id, metrics=metrics)
        except Exception as err:  # the tracking store is not worth a training run
            print(f"[tracking] WARNING: epoch {epoch} not logged to MLflow: {err}", flush=True)

    return log


def hand_over(run_id: str) -> None:
    """Training is done: the run now belongs to the DVC process, until evaluate takes it."""
    with store_lock():
        c = client()
        c.set_tag(run_id, OWNER, pipeline_process())
        c.set_tag(run_id, PHASE, "trained")


def log_history(run_id: str, history: Mapping[str, list[float]], c=None) -> None:
    """Per-epoch lists logged with step = epoch (1-based), 1000 values per transaction."""
    from mlflow.entities import Metric

    c = c or client()
    now = int(time.time() * 1000)
    per_epoch = [
        Metric(name, float(value), now, epoch)
        for name, values in history.items()
        for epoch, value in enumerate(values, start=1)
    ]
    for i in range(0, len(per_epoch), 1000):
        c.log_batch(run_id, metrics=per_epoch[i : i + 1000])


def evaluation_run(
    experiment: str,
    trained_run: str | None,
    history: Mapping[str, list[float]],
    tags: Mapping[str, str],
) -> tuple[str, bool]:
    """The run ``evaluate`` logs to, and whether it is a new one (training restored).

    The run ``train`` started (``trained_run``) if it is RUNNING and awaits evaluation; else a
    new run with ``history`` copied and tagged ``restored_from=<trained_run>``."""
    with store_lock():
        c = client()
        sweep_up(get_experiment_id(experiment, c), c)
        run = None
        if trained_run:
            with contextlib.suppress(Exception):  # not in this store (another machine's)
                run = c.get_run(trained_run)
        if run and run.info.status == "RUNNING" and run.data.tags.get(PHASE) == "trained":
            c.set_tag(trained_run, OWNER, process_id())
            c.set_tag(trained_run, PHASE, "evaluating")
            return trained_run, False
    new = start_run(
        experiment,
        {},
        {**tags, RESTORED_FROM: trained_run or "unknown"},
        phase="evaluating",
    )
    with store_lock():
        log_history(new, history)
    return new, True


def log_results(
    run_id: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts: list[Path],
    model_dir: Path,
) -> None:
    """The evaluation's part of a run: params not yet logged (flat), final metrics, files and
    the whole model folder (both models, history, summary) under ``model/``."""
    from mlflow.entities import Metric

    with store_lock():
        c = client()
        _log_params(c, run_id, params, c.get_run(run_id).data.params)
        now = int(time.time() * 1000)
        final = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
        for i in range(0, len(final), 1000):
            c.log_batch(run_id, metrics=final[i : i + 1000])
        for path in artifacts:
            c.log_artifact(run_id, str(path))
        c.log_artifacts(run_id, str(model_dir), artifact_path="model")


def log_pipeline_run(
    experiment: str,
    params: Mapping[str, Any],
    history: Mapping[str, list[float]],
    metrics: Mapping[str, float],
    artifacts: list[Path],
    model_dir: Path,
    tags: Mapping[str, str],
) -> str:
    """Log one finished pipeline run after the fact (tests, benchmarks); return its run id.

    ``params`` are flattened ("model.dropout"); ``history`` holds per-epoch lists logged with
    step = epoch (1-based); ``metrics`` are the final scalar metrics.
    """
    run_id = start_run(experiment, {}, tags, phase="evaluating")
    with ends_on_error(run_id):
        with store_lock():
            log_history(run_id, history)
        log_results(run_id, params, metrics, artifacts, model_dir)
    end_run(run_id, "FINISHED")
    return run_id


def finished_runs(experiment: str):  # -> pandas.DataFrame
    """Every finished pipeline run of ``experiment`` (``mlflow.search_runs`` columns); empty
    if none."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string="attributes.status = 'FINISHED'",
        max_results=50000,
    )
    kind = f"tags.{KIND}"
    if kind in runs:  # the comparison's own run is not a pipeline run
        runs = runs[runs[kind] != COMPARISON].reset_index(drop=True)
    return runs


KIND = "audioclf.kind"
COMPARISON = "comparison"


def attach_report(run_id: str, path: Path) -> None:
    """Log the report ``path`` (e.g. the learning curve, which spans every run) as an artifact
    of the run ``run_id``: MLflow has no experiment-level artifacts, and a run of its own
    would be counted among the experiment's runs."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    with store_lock():
        mlflow.MlflowClient().log_artifact(run_id, str(path), artifact_path="reports")


def set_description(experiment: str, markdown: str) -> None:
    """Show ``markdown`` as the experiment's description in the MLflow UI."""
    with store_lock():
        c = client()
        c.set_experiment_tag(get_experiment_id(experiment, c), "mlflow.note.content", markdown)


def write_run_file(folder: Path, run_id: str) -> None:
    import json

    (folder / RUN_FILE).write_text(
        json.dumps({"run_id": run_id, "tracking_uri": tracking_uri()}, indent=2) + "\n"
    )


def read_run_file(folder: Path) -> str | None:
    """The run id train wrote, or None (a model trained before runs were live)."""
    import json

    path = folder / RUN_FILE
    if not path.is_file():
        print(f"[tracking] no {path}: the evaluation gets a run of its own", file=sys.stderr)
        return None
    return json.loads(path.read_text())["run_id"]


# --- the comparison's view: a table artifact and the registered champion -----------------

CHAMPION = "champion"  # the registry alias of the best run's model


def log_comparison(experiment: str, df, markdown: str) -> str:  # df: pandas.DataFrame
    """The comparison table as an MLflow table artifact (``comparison.json``, with
    ``comparison.md``) on a run of its own named "comparison" (tag audioclf.kind); the
    previous (finished) comparison runs are deleted, so the experiment shows the current table
    once. Returns the new run's id.

    Cluster jobs of one sweep can run ``compare`` at the same moment against one server, where
    the store lock does not reach: only runs already FINISHED are deleted (never another job's
    table being written), and a run another job deleted first is skipped."""
    from mlflow.exceptions import MlflowException

    with store_lock():
        c = client()
        experiment_id = get_experiment_id(experiment, c)
        finished = f"tags.`{KIND}` = '{COMPARISON}' and attributes.status = 'FINISHED'"
        old = c.search_runs([experiment_id], filter_string=finished)
        run = c.create_run(experiment_id, run_name=COMPARISON, tags={KIND: COMPARISON})
        c.log_table(run.info.run_id, data=df, artifact_file="comparison.json")
        c.log_text(run.info.run_id, markdown, "comparison.md")
        c.set_terminated(run.info.run_id, "FINISHED")
        for r in old:
            try:
                c.delete_run(r.info.run_id)
            except MlflowException:  # deleted by a concurrent compare already
                pass
    return run.info.run_id


def register_champion(name: str, run_id: str) -> tuple[str, bool]:
    """Make the exported model of ``run_id`` (its ``model/`` artifacts: inference.keras takes
    the raw waveform, inference.json says how) registered model ``name``'s ``@champion``.

    A new version is registered only when the alias points at another run's model. Returns
    (the champion's version, whether the alias moved)."""
    from mlflow.exceptions import MlflowException

    with store_lock():
        c = client()
        try:
            current = c.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:  # no such model or alias yet
            current = None
        if current is not None and current.run_id == run_id:
            return str(current.version), False
        try:
            c.create_registered_model(
                name, description="The best run's raw-waveform model (stages/compare.py)"
            )
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{c.get_run(run_id).info.artifact_uri}/model"
        version = c.create_model_version(name, source, run_id=run_id)
        c.set_registered_model_alias(name, CHAMPION, version.version)
    return str(version.version), True


def download_model(uri: str, dst: Path) -> Path:
    """The folder a ``models:/<name>@<alias>`` (or ``runs:/``) URI names, downloaded."""
    import mlflow

    dst.mkdir(parents=True, exist_ok=True)
    store = tracking_uri()
    return Path(
        mlflow.artifacts.download_artifacts(
            uri, dst_path=str(dst), tracking_uri=store, registry_uri=store
        )
    )
