"""Tracking layer: the life of a live MLflow run on a real SQLite store in a temp folder.

Runs are started by real processes that are then SIGKILLed or SIGTERMed; the live-epoch
callback runs inside a real (tiny) Keras fit.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from audioclf import tracking
from tests.helpers import DVC_LOCK

EXPERIMENT = "audioclf"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # -> mlflow.MlflowClient
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for var in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "SLURM_JOB_ID"):
        monkeypatch.delenv(var, raising=False)
    yield mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    # finished_runs sets MLflow's process-wide URI (as the compare stage does): unset it, so
    # later tests get the store their environment names.
    mlflow.set_tracking_uri(None)


def start_in_child(body: str) -> tuple[subprocess.Popen, str]:
    """A Python process that starts a run, prints its id, then runs ``body``."""
    code = textwrap.dedent(
        """
        import time
        from audioclf import tracking
        run_id = tracking.start_run("audioclf", {"model": {"name": "m"}}, {"git_commit": "c"})
        print(run_id, flush=True)
        """
    ) + textwrap.dedent(body)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read()
    return proc, run_id


def test_a_sigkilled_owner_is_swept_up_as_killed_on_the_next_start(store) -> None:
    proc, dead = start_in_child("time.sleep(120)")
    assert store.get_run(dead).info.status == "RUNNING"
    assert store.get_run(dead).data.params == {"model.name": "m"}
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert store.get_run(dead).info.status == "RUNNING"  # nobody could end it

    alive = tracking.start_run(EXPERIMENT, {}, {"git_commit": "c"})  # owned by this process
    assert store.get_run(dead).info.status == "KILLED"
    assert "is gone; marked KILLED by" in store.get_run(dead).data.tags[tracking.SWEPT]
    assert store.get_run(dead).info.end_time is not None

    # A run whose owner is alive is left alone by the next start.
    tracking.start_run(EXPERIMENT, {}, {"git_commit": "c"})
    assert store.get_run(alive).info.status == "RUNNING"


def test_a_run_owned_elsewhere_is_left_alone_unless_slurm_says_its_job_is_gone(store) -> None:
    other = tracking.start_run(EXPERIMENT, {}, {"git_commit": "c"})
    store.set_tag(other, tracking.OWNER, "another-host:4242:1700000000.00")
    tracking.start_run(EXPERIMENT, {}, {"git_commit": "c"})
    assert store.get_run(other).info.status == "RUNNING"
    assert tracking.owner_alive("another-host:4242:1700000000.00") is None


def test_sigterm_ends_the_run_killed_and_exits_143(store) -> None:
    proc, run_id = start_in_child(
        """
        with tracking.ends_on_error(run_id):
            print("inside", flush=True)
            time.sleep(120)
        """
    )
    assert proc.stdout.readline().strip() == "inside"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, proc.stderr.read()
    assert store.get_run(run_id).info.status == "KILLED"


def test_an_error_ends_the_run_failed_and_goes_on(store) -> None:
    run_id = tracking.start_run(EXPERIMENT, {}, {"git_commit": "c"})
    with pytest.raises(ValueError, match="bad"), tracking.ends_on_error(run_id):
        raise ValueError("bad")
    assert store.get_run(run_id).info.status == "FAILED"


def test_evaluate_continues_the_trained_run_else_starts_a_restored_one(store, tmp_path) -> None:
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "learning_rate": [3e-3, 1e-3]}
    trained = tracking.start_run(EXPERIMENT, {"train": {"epochs": 2}}, {"git_commit": "c"})
    tracking.write_run_file(tmp_path, trained)
    assert tracking.read_run_file(tmp_path) == trained
    tracking.hand_over(trained)
    # The hand-over's owner (the parent process: pytest runs outside DVC) is alive.
    tracking.start_run(EXPERIMENT, {}, {"git_commit": "c"})
    assert store.get_run(trained).info.status == "RUNNING"

    run_id, restored = tracking.evaluation_run(EXPERIMENT, trained, history, {"git_commit": "c"})
    assert (run_id, restored) == (trained, False)
    assert store.get_run(trained).data.tags[tracking.PHASE] == "evaluating"
    model = tmp_path / "model"
    model.mkdir()
    (model / "inference.keras").write_bytes(b"a model")
    params = {"train.epochs": 2, "evaluate.batch_size": 8}
    tracking.log_results(trained, params, {"acc": 0.5}, [], model)
    tracking.end_run(trained, "FINISHED")
    assert store.get_run(trained).data.params == {"train.epochs": "2", "evaluate.batch_size": "8"}

    # Evaluate again on the same trained model (DVC restored train, or it was up to date).
    again, restored = tracking.evaluation_run(EXPERIMENT, trained, history, {"git_commit": "c"})
    assert restored and again != trained
    run = store.get_run(again)
    assert run.data.tags[tracking.RESTORED_FROM] == trained
    assert [(m.step, m.value) for m in store.get_metric_history(again, "val_loss")] == [
        (1, 1.1),
        (2, 0.7),
    ]
    assert store.get_run(trained).info.status == "FINISHED"  # untouched


def test_the_epoch_callback_logs_each_epoch_while_training(store, tmp_path) -> None:
    """A real Keras fit: each epoch's metrics are in the store when the next epoch begins."""
    import keras

    from audioclf.training import TrainConfig, fit, make_deterministic

    run_id = tracking.start_run(EXPERIMENT, {}, {"git_commit": "c"})
    log = tracking.epoch_logger(run_id)
    seen_at_epoch_start = []

    def on_epoch(epoch, values):
        log(epoch, values)
        seen_at_epoch_start.append(len(store.get_metric_history(run_id, "loss")))

    make_deterministic(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    cfg = TrainConfig(epochs=3, batch_size=16, patience=5)
    _, history = fit(model, (x, y), (x, y), 2, cfg, tmp_path / "m.keras", on_epoch)

    assert seen_at_epoch_start == [1, 2, 3]  # logged as each epoch ended, not at the end
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"):
        logged = store.get_metric_history(run_id, name)
        assert [m.step for m in logged] == [1, 2, 3], name
        assert [m.value for m in logged] == pytest.approx(history[name], rel=1e-6), name
    rates = history["learning_rate"]
    assert rates[0] < 3e-3 and rates == sorted(rates, reverse=True)  # the cosine schedule


def test_run_tags_name_the_dvc_experiment_and_baseline(store, monkeypatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "tiny")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "a" * 40)
    assert tracking.run_tags() == {
        "git_commit": "a" * 40,
        "dvc_exp_name": "tiny",
        "dvc_exp_baseline": "a" * 40,
    }
    run_id = tracking.start_run(EXPERIMENT, {}, tracking.run_tags())
    assert store.get_run(run_id).info.run_name == "tiny"


def test_lineage_logs_dvc_hashes_as_dataset_digests(store, tmp_path, capsys) -> None:
    from audioclf.lineage import TRAINING_INPUTS

    (tmp_path / "dvc.lock").write_text(DVC_LOCK)
    (tmp_path / "params.yaml").write_text("model:\n  name: m\n")
    run_id = tracking.start_run(EXPERIMENT, {}, {"git_commit": "c"})
    tracking.log_lineage(run_id, "speech_commands", TRAINING_INPUTS, Path("params.yaml"))
    run = store.get_run(run_id)
    inputs = {
        d.dataset.name: (d.dataset.digest, {t.key: t.value for t in d.tags})
        for d in run.inputs.dataset_inputs
    }
    assert inputs["speech_commands:train"] == (
        "0123456789abcdef0123456789abcdef.dir",
        {
            "mlflow.data.context": "train",
            "version": "0123456789abcdef0123456789abcdef.dir",
            "split": "train",
        },
    )
    assert inputs["speech_commands:validation"][1]["split"] == "validation"
    assert inputs["speech_commands:features"][0] == "fedcba9876543210fedcba9876543210.dir"
    assert "speech_commands:augmented" not in inputs  # not in this dvc.lock: said, not logged
    assert "no hash in dvc.lock for data/augmented" in capsys.readouterr().out
    assert run.data.tags["dvc.data_md5"] == "0123456789abcdef0123456789abcdef.dir"
    assert run.data.tags["dvc.features_md5"] == "fedcba9876543210fedcba9876543210.dir"
    assert [a.path for a in store.list_artifacts(run_id)] == ["params.yaml"]


def logged_model_run(store, tmp_path: Path, name: str, accuracy: float) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "inference.keras").write_text(f"model of {name}")
    (folder / "inference.json").write_text("{}")
    return tracking.log_pipeline_run(
        EXPERIMENT, {"data.name": "synthetic"}, {}, {"test_accuracy": accuracy}, [], folder,
        {"dvc_exp_name": name, "git_commit": "c"},
    )  # fmt: skip


def test_the_champion_alias_moves_only_when_another_run_is_best(store, tmp_path) -> None:
    first = logged_model_run(store, tmp_path, "first", 0.8)
    assert tracking.register_champion("synthetic", first) == ("1", True)
    assert tracking.register_champion("synthetic", first) == ("1", False)  # same best: kept
    better = logged_model_run(store, tmp_path, "better", 0.9)
    assert tracking.register_champion("synthetic", better) == ("2", True)
    champion = store.get_model_version_by_alias("synthetic", tracking.CHAMPION)
    assert (str(champion.version), champion.run_id) == ("2", better)
    assert sorted(str(v.version) for v in store.search_model_versions("name='synthetic'")) == [
        "1",
        "2",
    ]

    folder = tracking.download_model("models:/synthetic@champion", tmp_path / "download")
    assert (folder / "inference.keras").read_text() == "model of better"
    assert (folder / "inference.json").is_file()


def test_the_comparison_table_is_one_table_artifact_on_one_run(store) -> None:
    import pandas as pd

    from audioclf.comparison import champions

    df = pd.DataFrame(
        {"run": ["b", "a", "c"], "data": ["x", "x", "y"], "clean": [0.9, 0.8, 0.7],
         "run_id": ["rb", "ra", "rc"]}
    )  # fmt: skip
    assert champions(df) == {"x": "rb", "y": "rc"}
    first = tracking.log_comparison(EXPERIMENT, df, "| table |")
    second = tracking.log_comparison(EXPERIMENT, df.head(2), "| table |")
    assert store.get_run(first).info.lifecycle_stage == "deleted"  # replaced
    run = store.get_run(second)
    assert run.info.status == "FINISHED" and run.info.run_name == "comparison"
    table = json.loads(Path(store.download_artifacts(second, "comparison.json")).read_text())
    assert table["columns"] == ["run", "data", "clean", "run_id"]
    assert [row[0] for row in table["data"]] == ["b", "a"]  # replaced, not appended
    assert tracking.finished_runs(EXPERIMENT).empty  # not a pipeline run


def test_a_folder_of_outputs_declared_one_by_one_gets_dvcs_folder_hash(tmp_path) -> None:
    """prepare declares each file of data/prepared; lineage gives the folder the hash DVC
    gives a folder output: the md5 of its listing (checked against DVC's own below)."""
    from audioclf.lineage import out_hashes

    work = tmp_path / "w"
    (work / "d").mkdir(parents=True)
    (work / "d/a.npy").write_bytes(b"a")
    (work / "d/b.json").write_text("{}")
    dvc = [str(Path(sys.executable).with_name("dvc"))]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for args in (["init", "--no-scm", "-q"], ["add", "-q", "d"]):
        subprocess.run(dvc + args, cwd=work, env=env, check=True, timeout=120)
    folder_md5 = yaml.safe_load((work / "d.dvc").read_text())["outs"][0]["md5"]
    file_md5 = {
        n: hashlib.md5((work / "d" / n).read_bytes()).hexdigest() for n in ("a.npy", "b.json")
    }
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        yaml.safe_dump(
            {"stages": {"s": {"outs": [{"path": f"d/{n}", "md5": m} for n, m in file_md5.items()]}}}
        )
    )
    hashes = out_hashes(lock)
    assert hashes["d"] == folder_md5 and folder_md5.endswith(".dir")
    assert hashes["d/a.npy"] == file_md5["a.npy"]


def test_log_inputs_retries_when_another_job_registered_the_dataset_at_once() -> None:
    """Two jobs of a sweep log the same dataset at the same moment: the tracking server on
    PostgreSQL refuses the second insert (seen in the cluster tests); a retry finds the row.
    A stand-in client here: the race itself needs two jobs and PostgreSQL (tests/test_cluster)."""
    from mlflow.exceptions import MlflowException

    class Racing:
        calls = 0

        def log_inputs(self, run_id, datasets):
            Racing.calls += 1
            if Racing.calls == 1:
                raise MlflowException(
                    "BAD_REQUEST: (psycopg.errors.UniqueViolation) duplicate key value violates "
                    'unique constraint "dataset_pk"'
                )

    tracking.log_inputs(Racing(), "r", [])
    assert Racing.calls == 2

    class Broken:
        def log_inputs(self, run_id, datasets):
            raise MlflowException("RESOURCE_DOES_NOT_EXIST: run r")

    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        tracking.log_inputs(Broken(), "r", [])
