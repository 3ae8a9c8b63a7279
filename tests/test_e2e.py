"""End to end: the real `dvc exp run`, `dvc repro` and `dvc queue` in a temporary git repository.

The repository is a copy of this project's tracked files. The pipeline runs on a tiny
config (set with `-S`, as a user would), MLflow writes to the temporary repository's own
SQLite store (the default: `<DVC_ROOT>/mlflow.db`), and the tests assert on metrics.json, on
what DVC re-ran, and on the logged MLflow runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e

# A tiny dataset and a short training run; everything else is the default config.
TINY = [
    "data.download.speakers=16",
    "data.download.repetitions=1",
    "data.download.background_seconds=12.0",
    "data.download.babble_bank_seconds=6.0",
    "data.prepare.validation_percentage=20.0",
    "data.prepare.testing_percentage=20.0",
    "model.filters=[8,16]",
    "train.epochs=2",
]
STAGES = ("download", "prepare", "features", "augment", "train", "evaluate")


def sh(repo: Path, *args: str, timeout: float = 600) -> str:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # use the repository's own store
    out = subprocess.run(
        list(args), cwd=repo, env=env, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode:
        raise AssertionError(
            f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    return out.stdout + out.stderr


def ran(output: str) -> list[str]:
    """Stages DVC actually ran, from its "Running stage 'x':" lines."""
    return [s for s in STAGES if f"Running stage '{s}'" in output]


def mlflow_runs(repo: Path):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("audioclf")
    return [] if exp is None else client.search_runs([exp.experiment_id])


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh git repository holding this project's tracked files (no data, no store)."""
    repo = tmp_path_factory.mktemp("repo")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "baseline")
    return repo


def test_exp_run_tracks_the_run_in_mlflow(repo: Path) -> None:
    out = sh(repo, "dvc", "exp", "run", "-n", "tiny", *[a for o in TINY for a in ("-S", o)])
    assert ran(out) == list(STAGES)
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["epochs_run"] <= 2 and metrics["trainable_params"] > 0

    (run,) = mlflow_runs(repo)
    assert run.data.tags["dvc_exp_name"] == "tiny"
    assert run.data.tags["git_commit"] == sh(repo, "git", "rev-parse", "HEAD").strip()
    assert run.data.params["model.name"] == "spec_cnn2d"
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["data.download.speakers"] == "16"
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == list(range(1, metrics["epochs_run"] + 1))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion.png", "curves.png", "metrics.json", "model"} <= artifacts
    assert (repo / "mlartifacts").is_dir()  # artifacts beside the store, not in a temp copy


def test_nothing_changed_nothing_reruns_and_results_are_reproducible(repo: Path) -> None:
    before = json.loads((repo / "reports/metrics.json").read_text())
    n_runs = len(mlflow_runs(repo))
    start = time.perf_counter()
    out = sh(repo, "dvc", "repro")
    assert ran(out) == [] and time.perf_counter() - start < 30
    assert len(mlflow_runs(repo)) == n_runs

    # Retrain from scratch with the same params: identical metrics (timings aside).
    out = sh(repo, "dvc", "repro", "--force", "--single-item", "train", "evaluate")
    assert ran(out) == ["train", "evaluate"]
    after = json.loads((repo / "reports/metrics.json").read_text())
    timing = ("train_seconds", "seconds_per_epoch")
    assert {k: v for k, v in after.items() if k not in timing} == {
        k: v for k, v in before.items() if k not in timing
    }


def test_model_hparam_change_reruns_only_train_and_evaluate(repo: Path) -> None:
    args = [a for o in [*TINY, "model.dropout=0.1"] for a in ("-S", o)]
    out = sh(repo, "dvc", "exp", "run", "-n", "dropout", *args)
    assert ran(out) == ["train", "evaluate"]


def test_queued_sweep_logs_every_run_to_the_root_store(repo: Path) -> None:
    # Values unlike the earlier runs': a repeat of identical params would be restored from
    # DVC's run cache without running (and without a new MLflow run).
    n_runs = len(mlflow_runs(repo))
    default = yaml.safe_load((repo / "params.yaml").read_text())["train"]["learning_rate"]
    rates = {str(default / 2), str(default * 2)}
    args = [a for o in TINY for a in ("-S", o)]
    sh(
        repo,
        "dvc",
        "exp",
        "run",
        "--queue",
        *args,
        "-S",
        f"train.learning_rate={','.join(sorted(rates))}",
    )
    sh(repo, "dvc", "queue", "start", "-j", "2")
    deadline = time.time() + 480
    while time.time() < deadline:
        status = sh(repo, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    else:
        pytest.fail(f"queue did not finish:\n{status}")
    assert status.count("Success") == 2, status
    runs = mlflow_runs(repo)  # newest first
    assert len(runs) == n_runs + 2
    runs = runs[:2]
    assert {r.data.params["train.learning_rate"] for r in runs} == rates
    names = {r.data.tags["dvc_exp_name"] for r in runs}
    listed = sh(repo, "dvc", "exp", "list", "--name-only")
    assert all(n and n in listed for n in names), (names, listed)
