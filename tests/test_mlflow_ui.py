"""End to end: runs logged by `log_pipeline_run` show up in the real MLflow UI.

A real SQLite store in a temp dir gets two runs through the pipeline's own tracking code and
an experiment description like the one `compare` writes; `mlflow ui` serves it and headless
Chromium looks at the runs page. Then a real queued two-run sweep (`dvc exp run --queue`,
`dvc queue start -j 2`) in a temporary git + DVC repository, watched in the UI while it trains;
that test also takes the README's screenshots (AUDIOCLF_SCREENSHOTS=docs/images). Skips without
Chromium unless AUDIOCLF_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
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


# --- a real queued sweep, watched in the UI while it trains ------------------------------------

# Two dropouts of the default model (spec_cnn2d at its default size): few clips, four epochs of
# small batches, each epoch a few seconds on one core, so that a run's page can be looked at
# between two of them (the tiny models of tests/test_e2e.py run an epoch in under a second).
SWEEP_DROPOUTS = ("0.1", "0.3")
SWEEP = ["model=spec_cnn2d", "train.epochs=4", "train.patience=4", "train.batch_size=8"]
SWEEP_TIMEOUT_S = 600.0


def screenshots_dir(tmp_path: Path) -> Path:
    """Where the sweep test saves its screenshots: $AUDIOCLF_SCREENSHOTS (the README's are
    taken with AUDIOCLF_SCREENSHOTS=docs/images), else the test's temp dir."""
    from tests.test_e2e import ROOT

    folder = os.environ.get("AUDIOCLF_SCREENSHOTS")
    return ROOT / folder if folder else tmp_path


def shown_status(text: str) -> str:
    """The run page's "Status" field (e.g. Running, Finished)."""
    match = re.search(r"\nStatus\n(\w+)\n", text)
    assert match, f"no Status on the run page:\n{text}"
    return match.group(1)


def shown_epoch(text: str, history) -> int:
    """The epoch whose loss the run page shows as the latest value (0: none of them)."""
    # The page prints the stored float64 in its shortest round-trip form, as repr does.
    return max((m.step for m in history if f"\n{m.value!r}\n" in text), default=0)


def later_epoch_seen(seen: list[tuple[str, str, int, int]]) -> bool:
    """Whether a run's page, looked at while Running, showed a later epoch than on its first
    look that showed one (`seen`: run, status shown, epoch shown, epochs logged)."""
    first: dict[str, int] = {}
    for name, shown, epoch, _ in seen:
        if shown == "Running" and epoch and epoch > first.setdefault(name, epoch):
            return True
    return False


def test_a_queued_sweep_watched_live_then_its_datasets_and_champion_in_mlflow_ui(
    need_browser: None, tmp_path: Path
) -> None:
    """The issue's "Done when": a real two-run `dvc queue` sweep (two workers) while headless
    Chromium looks at the UI: epoch metrics appear on a run's page while it is Running, and
    more of them later; after `dvc repro -f -s compare` both runs are Finished, a run's page
    lists its dataset inputs, and the model page shows the registered champion."""
    import mlflow

    from tests import mlflow_ui
    from tests.test_e2e import TINY, copy_of_project, env, sh, wait_for_queue

    shots = screenshots_dir(tmp_path)
    repo = copy_of_project(tmp_path / "repo")
    tiny = [o for o in TINY if not o.startswith("train.epochs")]
    args = [a for o in [*tiny, *SWEEP] for a in ("-S", o)]
    # The data stages once in the workspace; the queued experiments restore them from the run
    # cache instead of computing them twice at once.
    sh(repo, "dvc", "exp", "run", *args, "augment", "corrupt")
    sweep = f"model.dropout={','.join(SWEEP_DROPOUTS)}"
    sh(repo, "dvc", "exp", "run", "--queue", *args, "-S", sweep)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    # The store and the experiment (made as the pipeline makes it), so the UI can start now.
    experiment_id = client.create_experiment(
        "audioclf", artifact_location=(repo / "mlartifacts").as_uri()
    )

    def sweep_runs() -> list:
        runs = client.search_runs([experiment_id])
        return [r for r in runs if r.data.tags.get("audioclf.kind") != "comparison"]

    seen: list[tuple[str, str, int, int]] = []  # run, status shown, epoch shown, epochs logged
    with mlflow_ui.serve(repo) as base_url, mlflow_ui.opened(base_url, (1600, 900)) as page:

        def look(route: str) -> None:
            page.goto("about:blank")
            page.goto(f"{base_url}/#/{route}", wait_until="domcontentloaded")

        # Not `sh`: the workers it starts keep its output open, so reading it to the end would
        # wait for the whole sweep.
        with (tmp_path / "queue-start.log").open("w") as log:
            subprocess.run(
                ["dvc", "queue", "start", "-j", "2"], cwd=repo, env=env(AUDIOCLF_WORKERS="2"),
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, check=True, timeout=300,
            )  # fmt: skip
        chart = None
        deadline = time.monotonic() + SWEEP_TIMEOUT_S
        while time.monotonic() < deadline:
            runs = sweep_runs()
            if len(runs) == len(SWEEP_DROPOUTS) and all(r.info.status != "RUNNING" for r in runs):
                break
            training = [
                (run, history)
                for run in runs
                if run.info.status == "RUNNING"
                and (history := client.get_metric_history(run.info.run_id, "loss"))
            ]
            if not training or (chart is not None and later_epoch_seen(seen)):
                time.sleep(1)  # nothing to look at, or all seen: let the sweep have the cores
                continue
            for run, history in training:
                look(f"experiments/{experiment_id}/runs/{run.info.run_id}")
                page.get_by_text("epoch_seconds", exact=True).first.wait_for()
                text = page.inner_text("body")
                # Read after the look: the page may show an epoch logged since `history`.
                history = client.get_metric_history(run.info.run_id, "loss")
                seen.append((run.info.run_name, shown_status(text), shown_epoch(text, history),
                             len(history)))  # fmt: skip
            if chart is None and any(len(h) >= 2 for _, h in training):
                # The chart view of the sweep while it trains: each epoch metric, every run.
                look(f"experiments/{experiment_id}/runs?compareRunsMode=CHART")
                page.get_by_text("val_accuracy", exact=True).first.wait_for()
                mlflow_ui.close_assistant(page)
                page.wait_for_timeout(2000)  # the charts draw after their titles
                chart = mlflow_ui.snapshot(page, shots / "mlflow-chart-view.png", full_page=False)
        else:
            pytest.fail(f"the sweep did not end within {SWEEP_TIMEOUT_S:.0f} s: {seen}")
        status = wait_for_queue(repo, len(SWEEP_DROPOUTS))
        print(f"run pages seen (run, status, epoch shown, epochs logged): {seen}")

        # Epoch points on a Running run's page, and more of them on a later look.
        assert any(shown == "Running" and epoch for _, shown, epoch, _ in seen), (
            f"no look at a run page showed epoch metrics while Running: {seen}"
        )
        assert later_epoch_seen(seen), f"no run page showed a later epoch while Running: {seen}"
        assert chart is not None and "loss" in chart, "no chart view while training"

        out = sh(repo, "dvc", "repro", "--force", "--single-item", "compare")
        assert "Running stage 'compare'" in out
        runs = sweep_runs()
        assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}, status
        assert sorted(r.data.params["model.dropout"] for r in runs) == list(SWEEP_DROPOUTS)
        champion = client.get_model_version_by_alias("synthetic", "champion")
        best = client.get_run(champion.run_id)

        # A run's page: Finished, its metrics, its dataset inputs with the DVC hashes.
        look(f"experiments/{experiment_id}/runs/{best.info.run_id}")
        train_input = next(
            d.dataset for d in best.inputs.dataset_inputs if d.dataset.name == "synthetic:train"
        )
        page.get_by_text(f"synthetic:train ({train_input.digest})").first.wait_for()
        mlflow_ui.close_assistant(page)
        text = mlflow_ui.snapshot(page, shots / "mlflow-run.png", full_page=False)
        assert shown_status(text) == "Finished"
        assert repr(best.data.metrics["test_accuracy"]) in text
        assert f"synthetic:train ({train_input.digest})\nTrain\n+5" in text  # 6 inputs

        # The runs page with the accuracy columns.
        look(f"experiments/{experiment_id}/runs")
        mlflow_ui.show_runs_table(
            page, ["test_accuracy", "test/acc_corrupted_mean"], expand_description=False
        )
        text = mlflow_ui.snapshot(page, shots / "mlflow-runs.png", full_page=False)
        for run in runs:
            assert run.info.run_name in text
            assert repr(run.data.metrics["test_accuracy"]) in text

        # The registered model and its alias.
        look("models/synthetic")
        page.get_by_text("champion").first.wait_for()
        mlflow_ui.close_assistant(page)
        text = mlflow_ui.snapshot(page, tmp_path / "model.png")
    assert f"version {champion.version}" in text.lower(), text
    assert "@" in text and "champion" in text
