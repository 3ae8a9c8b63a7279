"""MLflow tracking: one run per pipeline run, in one SQLite store at the repository root.

The store is ``sqlite:///<root>/mlflow.db`` with artifacts under ``<root>/mlartifacts``, where
``<root>`` is ``DVC_ROOT`` (set by DVC for every stage; for queued experiments, which run in
temporary copies of the repository, it still points at the real repository) or else the
current directory. ``MLFLOW_TRACKING_URI`` overrides the store.

Nothing here runs at import time; mlflow itself is imported only when a run is logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from audioclf.config import repo_root


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


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


def get_experiment_id(experiment: str) -> str:
    """The experiment's id, created with artifacts next to the store if it is new."""
    import mlflow

    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    uri = tracking_uri()
    location = None
    if uri.startswith("sqlite:///"):
        # Without this MLflow puts artifacts under the *current* directory, which for a
        # queued experiment is a temporary copy that is deleted afterwards.
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    try:
        return mlflow.create_experiment(experiment, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # Another queued experiment created it first.
        return mlflow.get_experiment_by_name(experiment).experiment_id


@contextlib.contextmanager
def store_lock() -> Iterator[None]:
    """Serialise writers of a local SQLite store.

    Queued experiments (`dvc queue start -j 2`) finish side by side; two processes creating
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


def log_pipeline_run(
    experiment: str,
    params: Mapping[str, Any],
    history: Mapping[str, list[float]],
    metrics: Mapping[str, float],
    artifacts: list[Path],
    model_dir: Path,
    tags: Mapping[str, str],
) -> str:
    """Log one finished pipeline run; return its run id.

    ``params`` are flattened ("model.dropout"); ``history`` holds per-epoch lists logged with
    step = epoch (1-based); ``metrics`` are the final scalar metrics.
    """
    import mlflow
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(tracking_uri())
    run_name = tags.get("dvc_exp_name")
    with (
        store_lock(),
        mlflow.start_run(experiment_id=get_experiment_id(experiment), run_name=run_name) as run,
    ):
        mlflow.set_tags(dict(tags))
        items = [(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(items[i : i + 100]))
        now = int(time.time() * 1000)
        per_epoch = [
            Metric(name, float(value), now, epoch)
            for name, values in history.items()
            for epoch, value in enumerate(values, start=1)
        ]
        client = mlflow.MlflowClient()
        for i in range(0, len(per_epoch), 1000):  # one transaction per batch, not per value
            client.log_batch(run.info.run_id, metrics=per_epoch[i : i + 1000])
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        for path in artifacts:
            mlflow.log_artifact(str(path))
        # The whole model folder: both models, history, summary.
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        return run.info.run_id


def finished_runs(experiment: str):  # -> pandas.DataFrame
    """Every finished run of ``experiment`` (``mlflow.search_runs`` columns); empty if none."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri())
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    return mlflow.search_runs(
        experiment_names=[experiment],
        filter_string="attributes.status = 'FINISHED'",
        max_results=50000,
    )


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
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    with store_lock():
        mlflow.MlflowClient().set_experiment_tag(
            get_experiment_id(experiment), "mlflow.note.content", markdown
        )
