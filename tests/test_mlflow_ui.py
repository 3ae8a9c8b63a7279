"""End to end: runs logged by `log_pipeline_run` show up in the real MLflow UI.

A real SQLite store in a temp dir gets two runs through the pipeline's own tracking code and
an experiment description like the one `compare` writes; `mlflow ui` serves it and headless
Chromium looks at the runs page. Skips without Chromium unless AUDIOCLF_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audioclf.tracking import log_pipeline_run
from tests.helpers import DVC_LOCK
from tests.mlflow_ui import browser_available, serve, show_experiment, show_page

pytestmark = pytest.mark.e2e

EXPERIMENT = "audioclf"
# run name -> (test_accuracy, per-epoch val_accuracy); the runs table shows values unrounded.
RUNS = {
    "cnn-mfcc": (0.8917, [0.71, 0.86]),
    "mlp-logmel": (0.8458, [0.65, 0.80]),
}
# Like the table `compare` writes; its values are spelled unlike the runs table's, so that
# each assertion below can only be met by the part of the page it is about.
NOTE = (
    "| model | features | test accuracy |\n"
    "|---|---|---|\n"
    "| cnn | MFCC (40 coeffs) | 89.17 % |\n"
    "| mlp | log-mel (64 bands) | 84.58 % |\n"
)


@pytest.fixture
def need_browser() -> None:
    if browser_available():
        return
    reason = "no headless browser: needs /usr/bin/chromium and the playwright package"
    if os.environ.get("AUDIOCLF_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (AUDIOCLF_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def test_runs_and_accuracy_in_mlflow_ui(
    need_browser: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    report = tmp_path / "report.txt"
    report.write_text("per-class accuracy\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.keras").write_bytes(b"not a real model")

    for name, (accuracy, val_accuracy) in RUNS.items():
        log_pipeline_run(
            EXPERIMENT,
            params={"model.name": name.split("-")[0], "features.kind": name.split("-")[1]},
            history={"val_accuracy": val_accuracy, "loss": [1.2, 0.6]},
            metrics={"test_accuracy": accuracy, "test_loss": 0.35},
            artifacts=[report],
            model_dir=model,
            tags={"dvc_exp_name": name, "git_commit": "0" * 40},
        )
    client = mlflow.MlflowClient()
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    client.set_experiment_tag(experiment_id, "mlflow.note.content", NOTE)

    screenshot = tmp_path / "mlflow-ui.png"
    with serve(tmp_path) as base_url:
        text = show_experiment(base_url, EXPERIMENT, screenshot)

    for name, (accuracy, _) in RUNS.items():
        assert name in text, f"run {name} not on the runs page:\n{text}"
        assert str(accuracy) in text, f"test_accuracy {accuracy} not on the runs page:\n{text}"
    assert "test_accuracy" in text  # the column header
    for cell in ("MFCC (40 coeffs)", "84.58 %"):
        assert cell in text, f"description cell {cell!r} not on the runs page:\n{text}"
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_a_live_run_its_datasets_and_the_champion_in_mlflow_ui(
    need_browser: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run as the train stage logs it, looked at while it trains: its epochs' latest values
    move and its dataset inputs show; then the registered champion with its alias."""
    from audioclf import tracking
    from audioclf.lineage import TRAINING_INPUTS

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.lock").write_text(DVC_LOCK)
    (tmp_path / "params.yaml").write_text("model:\n  name: spec_cnn2d\n")
    run_id = tracking.start_run(
        EXPERIMENT, {"model": {"name": "spec_cnn2d"}}, {"dvc_exp_name": "live-one"}
    )
    tracking.log_lineage(run_id, "synthetic", TRAINING_INPUTS, Path("params.yaml"))
    log = tracking.epoch_logger(run_id)
    log(1, {"loss": 2.4817, "val_accuracy": 0.3125})
    log(2, {"loss": 1.7391, "val_accuracy": 0.5208})
    experiment_id = tracking.client().get_experiment_by_name(EXPERIMENT).experiment_id
    route = f"experiments/{experiment_id}/runs/{run_id}"

    with serve(tmp_path) as base_url:
        during = show_page(base_url, route, ["live-one", "1.7391"], tmp_path / "run-live.png")
        assert "Running" in during or "RUNNING" in during, during
        # The Datasets row: the first input with its DVC hash as the digest, "+2" for the
        # validation split and the feature cache.
        assert "synthetic:train (0123456789abcdef0123456789abcdef.dir)\nTrain\n+2" in during
        log(3, {"loss": 1.2046, "val_accuracy": 0.6458})  # the next epoch, still running
        later = show_page(base_url, route, ["1.2046"], tmp_path / "run-live-2.png")
        assert "0.6458" in later

        model = tmp_path / "model"
        model.mkdir()
        (model / "inference.keras").write_bytes(b"a model")
        tracking.log_results(run_id, {}, {"test_accuracy": 0.7}, [], model)
        tracking.end_run(run_id, "FINISHED")
        assert tracking.register_champion("synthetic", run_id) == ("1", True)
        registry = show_page(base_url, "models/synthetic", ["champion"], tmp_path / "model.png")
    assert "Version 1" in registry or "version 1" in registry.lower(), registry
    assert "@" in registry and "champion" in registry
