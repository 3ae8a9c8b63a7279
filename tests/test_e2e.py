"""End to end: the real `dvc exp run`, `dvc repro` and `dvc queue` in a temporary git repository.

The repository is a copy of this project's tracked files. The pipeline runs on a tiny
config (set with `-S`, as a user would), MLflow writes to the temporary repository's own
SQLite store (the default: `<DVC_ROOT>/mlflow.db`), and the tests assert on metrics.json, on
what DVC re-ran, on the logged MLflow runs, on the comparison table, on the `audioclf predict`
command and on what the real MLflow UI shows in headless Chromium.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

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
    "train.epochs=2",
]
SMALL_CNN = "model.filters=[8,16]"  # spec_cnn2d (the default model) at a tiny size
STAGES = ("download", "prepare", "corrupt", "features", "augment", "train", "evaluate", "compare")


def env(**extra_env: str) -> dict[str, str]:
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
    return env | extra_env


def sh(repo: Path, *args: str, timeout: float = 600, **extra_env: str) -> str:
    out = subprocess.run(
        list(args), cwd=repo, env=env(**extra_env), capture_output=True, text=True, timeout=timeout
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
    """The pipeline runs in the repository's store, newest first (not compare's own run)."""
    client = mlflow_client(repo)
    exp = client.get_experiment_by_name("audioclf")
    runs = [] if exp is None else client.search_runs([exp.experiment_id])
    return [r for r in runs if r.data.tags.get("audioclf.kind") != "comparison"]


def mlflow_client(repo: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def wait_for_queue(repo: Path, runs: int, timeout: float = 900) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = sh(repo, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    else:
        pytest.fail(f"queue did not finish:\n{status}")
    assert status.count("Success") == runs, status
    return status


def copy_of_project(repo: Path) -> Path:
    """A fresh git repository in ``repo`` holding this project's tracked files (no data, no
    store)."""
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


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of_project(tmp_path_factory.mktemp("repo"))


def test_exp_run_tracks_the_run_in_mlflow(repo: Path) -> None:
    args = [a for o in [*TINY, SMALL_CNN] for a in ("-S", o)]
    out = sh(repo, "dvc", "exp", "run", "-n", "tiny", *args)
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
    robustness = {k: v for k, v in metrics.items() if k.startswith("test/acc_")}
    assert len(robustness) == 13  # clean, 11 corrupted sets, their mean
    assert {k: run.data.metrics[k] for k in robustness} == pytest.approx(robustness)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == list(range(1, metrics["epochs_run"] + 1))
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion.png", "curves.png", "metrics.json", "model"} <= artifacts
    model_files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.keras", "model/inference.keras", "model/inference.json"} <= model_files
    assert (repo / "mlartifacts").is_dir()  # artifacts beside the store, not in a temp copy
    assert metrics["export_agreement"] == 1.0


def test_predict_cli_on_the_test_wavs_matches_the_evaluate_stage(repo: Path, tmp_path) -> None:
    """`audioclf predict` on the test split's original WAV files (raw waveform in, features
    computed inside the exported model) gives the evaluate stage's predicted labels."""
    with (repo / "data/prepared/manifest.csv").open() as f:
        test = [r for r in csv.DictReader(f) if r["split"] == "test"]
    with (repo / "reports/predictions.csv").open() as f:
        predicted = [r["predicted"] for r in csv.DictReader(f)]
    folder = tmp_path / "test_wavs"
    expected = {}
    for r in test:
        if r["label"] != "_silence_":  # silence clips are windows of noise recordings
            dest = folder / r["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(repo / "data/raw" / r["path"], dest)
            expected[r["path"]] = predicted[int(r["index"])]
    (folder / "broken.wav").write_bytes(b"RIFF")
    submission = tmp_path / "submission.csv"
    out = subprocess.run(
        [sys.executable, "-m", "audioclf.cli", "predict", str(folder), "--top-k", "2",
         "--model", str(repo / "data/model"), "--submission", str(submission)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr  # one unreadable file: reported, skipped
    assert "skipped" in out.stderr and "broken.wav" in out.stderr
    lines = dict(line.split("\t") for line in out.stdout.splitlines())
    assert set(lines) == set(expected)
    top1 = {name: shown.split()[0] for name, shown in lines.items()}
    assert top1 == expected
    assert all(len(shown.split()) == 4 for shown in lines.values())  # 2 x (label, prob)
    with submission.open() as f:
        rows = list(csv.DictReader(f))
    kaggle = {"_unknown_": "unknown", "_silence_": "silence"}
    assert {r["fname"]: r["label"] for r in rows} == {
        k: kaggle.get(v, v) for k, v in expected.items()
    }


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
    args = [a for o in [*TINY, SMALL_CNN, "model.dropout=0.1"] for a in ("-S", o)]
    out = sh(repo, "dvc", "exp", "run", "-n", "dropout", *args)
    assert ran(out) == ["train", "evaluate", "compare"]  # the corrupted sets are reused


def test_a_corruption_change_regenerates_only_that_suite_and_re_evaluates(repo: Path) -> None:
    before = json.loads((repo / "reports/metrics.json").read_text())
    change = "evaluate.corruptions.noise.snr0.snr_db=-5.0"
    args = [a for o in [*TINY, SMALL_CNN, "model.dropout=0.1", change] for a in ("-S", o)]
    out = sh(repo, "dvc", "exp", "run", "-n", "harsher", *args)
    assert ran(out) == ["corrupt", "evaluate", "compare"]  # the trained model is reused
    after = json.loads((repo / "reports/metrics.json").read_text())
    assert after["test_accuracy"] == before["test_accuracy"]
    assert after["test/acc_noise_snr10"] == before["test/acc_noise_snr10"]


def test_queued_model_sweep_logs_every_run_and_the_comparison_shows_them(
    repo: Path, tmp_path: Path
) -> None:
    """The README's sweep: one queued experiment per model, two at a time, then the table."""
    n_runs = len(mlflow_runs(repo))
    models = ["crnn", "spec_cnn1d"]  # fast ones, each with its own features choice
    args = [a for o in TINY for a in ("-S", o)]
    sh(repo, "dvc", "exp", "run", "--queue", *args, "-S", f"model={','.join(models)}")
    sh(repo, "dvc", "queue", "start", "-j", "2")
    wait_for_queue(repo, 2)
    runs = mlflow_runs(repo)  # newest first
    assert len(runs) == n_runs + 2
    sweep = runs[:2]
    assert sorted(r.data.params["model.name"] for r in sweep) == models
    names = {r.data.tags["dvc_exp_name"] for r in sweep}
    listed = sh(repo, "dvc", "exp", "list", "--name-only")
    assert all(n and n in listed for n in names), (names, listed)

    # The comparison, refreshed after the sweep, has every finished run, best first.
    out = sh(repo, "dvc", "repro", "--force", "--single-item", "compare")
    assert ran(out) == ["compare"]
    with (repo / "reports/comparison.csv").open() as f:
        table = list(csv.DictReader(f))
    assert sorted(r["run_id"] for r in table) == sorted(r.info.run_id for r in runs)
    accuracies = [float(r["clean"]) for r in table]
    assert accuracies == sorted(accuracies, reverse=True)
    by_run = {r["run_id"]: r for r in table}
    for run in sweep:
        row = by_run[run.info.run_id]
        assert row["model"] == run.data.params["model.name"]
        assert row["run"] == run.data.tags["dvc_exp_name"]
        assert float(row["clean"]) == pytest.approx(run.data.metrics["test_accuracy"])
        assert float(row["s_per_epoch"]) > 0 and int(float(row["trainable_params"])) > 0
    md = (repo / "reports/comparison.md").read_text()
    assert md.count("\n| ") == len(table) + 1  # header + one line per run

    # `dvc exp show --md` shows the same metrics per experiment.
    shown = sh(repo, "dvc", "exp", "show", "--md")
    for name in names:
        assert name in shown
    assert "test_accuracy" in shown and "trainable_params" in shown

    # The real MLflow UI shows both runs, their test accuracy and the comparison.
    from tests import mlflow_ui

    if not mlflow_ui.browser_available() and os.environ.get("AUDIOCLF_REQUIRE_BROWSER") != "1":
        pytest.skip("no /usr/bin/chromium (apt-get install chromium) or playwright")
    with mlflow_ui.serve(repo) as url:
        text = mlflow_ui.show_experiment(url, "audioclf", tmp_path / "mlflow-ui.png")
    for run in sweep:
        assert run.data.tags["dvc_exp_name"] in text
        assert str(run.data.metrics["test_accuracy"]) in text
        assert f"{run.data.metrics['test_accuracy']:.4f}" in text  # the comparison table
        assert f"{run.data.metrics['test/acc_corrupted_mean']:.4f}" in text
    assert (tmp_path / "mlflow-ui.png").read_bytes()[:4] == b"\x89PNG"


def test_a_sigkilled_train_is_swept_up_as_killed_and_a_rerun_logs_a_fresh_run(repo: Path) -> None:
    """Kill train (SIGKILL, mid-epoch, seen live in MLflow), then run again: the old run ends
    KILLED at the next start, the new one FINISHED."""
    client = mlflow_client(repo)
    before = {r.info.run_id for r in mlflow_runs(repo)}
    long = [*TINY, SMALL_CNN, "model.dropout=0.25", "train.epochs=400", "train.patience=400"]
    proc = subprocess.Popen(
        ["dvc", "exp", "run", "-n", "killed", *[a for o in long for a in ("-S", o)]],
        cwd=repo, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 480
        while time.time() < deadline:
            new = [r for r in mlflow_runs(repo) if r.info.run_id not in before]
            # Two epochs logged while the run is RUNNING: the chart moves during training.
            if new and len(client.get_metric_history(new[0].info.run_id, "loss")) >= 2:
                break
            assert proc.poll() is None, "dvc exp run ended before train logged two epochs"
            time.sleep(0.5)
        else:
            pytest.fail("train logged no two epochs within 480 s")
        (killed,) = new
        assert killed.info.status == "RUNNING" and killed.data.tags["dvc_exp_name"] == "killed"
        pid = int(killed.data.tags["audioclf.owner"].split(":")[1])
        os.kill(pid, signal.SIGKILL)  # the train stage's process, mid-epoch
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert client.get_run(killed.info.run_id).info.status == "RUNNING"  # nobody could end it

    args = [a for o in [*TINY, SMALL_CNN, "model.dropout=0.25"] for a in ("-S", o)]
    out = sh(repo, "dvc", "exp", "run", "-n", "rerun", *args)
    assert ran(out) == ["train", "evaluate", "compare"]
    old = client.get_run(killed.info.run_id)
    assert old.info.status == "KILLED"
    assert "is gone; marked KILLED by" in old.data.tags["audioclf.swept_up"]
    (fresh,) = [r for r in mlflow_runs(repo) if r.info.run_id not in before | {old.info.run_id}]
    assert fresh.info.status == "FINISHED" and fresh.data.tags["dvc_exp_name"] == "rerun"
    assert "restored_from" not in fresh.data.tags
    epochs = json.loads((repo / "reports/metrics.json").read_text())["epochs_run"]
    history = client.get_metric_history(fresh.info.run_id, "learning_rate")
    assert [m.step for m in history] == list(range(1, epochs + 1))
    # The run's lineage: dataset inputs with the DVC hashes of this experiment's dvc.lock.
    from audioclf.lineage import out_hashes

    hashes = out_hashes(repo / "dvc.lock")  # prepared and model: their files' folder hash
    prepared, model = hashes["data/prepared"], hashes["data/model"]
    inputs = {d.dataset.name: d.dataset.digest for d in fresh.inputs.dataset_inputs}
    assert inputs["synthetic:train"] == inputs["synthetic:test"] == prepared
    assert fresh.data.tags["dvc.model_md5"] == model
    assert fresh.data.tags["dvc_exp_baseline"] == sh(repo, "git", "rev-parse", "HEAD").strip()
    assert "params.yaml" in {a.path for a in client.list_artifacts(fresh.info.run_id)}


def test_a_run_cache_restore_of_train_logs_exactly_one_run_marked_restored(repo: Path) -> None:
    """The `tiny` params again with another evaluate batch size: DVC restores train from its
    run cache and evaluates; one new run, tagged with the run whose training it reuses."""
    client = mlflow_client(repo)
    before = {r.info.run_id for r in mlflow_runs(repo)}
    args = [a for o in [*TINY, SMALL_CNN, "evaluate.batch_size=128"] for a in ("-S", o)]
    out = sh(repo, "dvc", "exp", "run", "-n", "restored", *args)
    assert "train" not in ran(out) and "evaluate" in ran(out)
    assert "Stage 'train' is cached - skipping run, checking out outputs" in out
    (run,) = [r for r in mlflow_runs(repo) if r.info.run_id not in before]
    assert run.info.status == "FINISHED" and run.data.tags["dvc_exp_name"] == "restored"
    trained = client.get_run(run.data.tags["restored_from"])
    assert trained.info.run_id in before and trained.info.status == "FINISHED"
    assert trained.data.params["train.epochs"] == "2"
    assert trained.data.params["model.dropout"] == run.data.params["model.dropout"]
    copied = client.get_metric_history(run.info.run_id, "val_loss")
    original = client.get_metric_history(trained.info.run_id, "val_loss")
    assert [m.step for m in copied] == [m.step for m in original]
    # history.csv keeps 6 significant digits.
    assert [m.value for m in copied] == pytest.approx([m.value for m in original], rel=1e-5)
    assert run.data.params["evaluate.batch_size"] == "128"


# --- extension points: a dataset and a feature type are two files each ---------------------

TONES_DATASET = '''"""Dataset ``tones``: a pure tone per class (written by the extension test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioclf.audio_io import write_wav
from audioclf.datasets import Materialised


@dataclass(frozen=True)
class Config:
    pitches: tuple[float, ...] = (440.0, 880.0)
    speakers: int = 20
    seed: int = 0


def materialise(cfg: Config, out: Path, progress: bool = True) -> Materialised:
    rng = np.random.default_rng(cfg.seed)
    t = np.arange(16000) / 16000
    for pitch in cfg.pitches:
        (out / f"{pitch:g}").mkdir()
        for s in range(cfg.speakers):
            wave = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.01 * rng.standard_normal(t.size)
            write_wav(out / f"{pitch:g}" / f"{s:04d}_nohash_0.wav", wave, 16000)
    return Materialised("tones", f"{len(cfg.pitches) * cfg.speakers} clips")
'''
TONES_YAML = """name: tones
download:
  pitches: [440.0, 880.0]
  speakers: 20
  seed: 0
prepare:
  sample_rate: 16000
  clip_seconds: 1.0
  commands: null
  split: hash
  speaker_pattern: "^(.+?)_nohash_"
  long_clips: crop
  validation_percentage: 20.0
  testing_percentage: 20.0
  silence_percentage: 0.0
  unknown_percentage: 0.0
  seed: 59185
"""
LOGPOWER_FEATURE = '''


@dataclass(frozen=True)
class LogPowerConfig(StftConfig):
    """log(|X|^2 + eps) (written by the extension test)."""

    type: Literal["logpower"] = "logpower"
    eps: float = 1e-10

    def from_magnitude(self, sample_rate: int, f: Framing):
        tf = import_tensorflow()
        return lambda magnitude: tf.math.log(tf.square(magnitude) + self.eps)
'''
LOGPOWER_YAML = (
    "type: logpower\nsample_rate: null\nwindow_ms: 25.0\nhop_ms: 10.0\nn_fft: null\neps: 1.0e-10\n"
)


def test_a_new_dataset_and_a_new_feature_type_are_two_files_each(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Add `datasets/tones.py` + `conf/data/tones.yaml` and a `features.py` class +
    `conf/features/logpower.yaml`, touch nothing else, and run the real pipeline on them."""
    repo = copy_of_project(tmp_path_factory.mktemp("extended"))
    (repo / "src/audioclf/datasets/tones.py").write_text(TONES_DATASET)
    (repo / "conf/data/tones.yaml").write_text(TONES_YAML)
    with (repo / "src/audioclf/features.py").open("a") as f:
        f.write(LOGPOWER_FEATURE)
    (repo / "conf/features/logpower.yaml").write_text(LOGPOWER_YAML)
    changed = sh(repo, "git", "status", "--porcelain").split("\n")
    assert sorted(line[3:] for line in changed if line) == [
        "conf/data/tones.yaml",
        "conf/features/logpower.yaml",
        "src/audioclf/datasets/tones.py",
        "src/audioclf/features.py",
    ]
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "a dataset and a feature type")
    overrides = ["data=tones", "features=logpower", "train.epochs=1", SMALL_CNN]
    # The stages import the copy's own package, not the one installed from this checkout.
    pythonpath = os.pathsep.join([str(repo / "src"), os.environ.get("PYTHONPATH", "")])
    args = [a for o in overrides for a in ("-S", o)]
    out = sh(repo, "dvc", "exp", "run", *args, PYTHONPATH=pythonpath)
    assert ran(out) == list(STAGES)
    info = json.loads((repo / "data/features/info.json").read_text())
    assert info["features"]["type"] == "logpower" and info["shape"] == [98, 257]
    labels = json.loads((repo / "data/prepared/labels.json").read_text())
    assert labels["classes"] == ["440", "880"]
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["export_agreement"] == 1.0  # the exported model computes the new features


# --- a fresh clone works for every documented workflow, in any order ------------------------


def test_own_data_then_a_queued_sweep_from_a_fresh_clone(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Issue 12's sequence: clone (empty DVC cache; the committed dvc.lock names the default
    dataset's results, which are in no cache), run your own folder of recordings once, queue a
    two-model sweep on it, reset the workspace and run again, run a stage target. Every queued
    experiment once failed here with "failed to load directory ('data', 'prepared')"."""
    from tests.helpers import make_raw

    origin = copy_of_project(tmp_path_factory.mktemp("origin"))
    mine = make_raw(tmp_path_factory.mktemp("recordings") / "words", speakers=16)
    shutil.rmtree(mine / "_background_noise_")  # a plain folder of class folders
    work = tmp_path_factory.mktemp("clone") / "audioclf"
    sh(work.parent, "git", "clone", "-q", str(origin), str(work))
    assert not (work / ".dvc/cache").exists()

    own = [
        "data=folder",
        f"data.download.path={mine}",
        "data.prepare.validation_percentage=20.0",
        "data.prepare.testing_percentage=20.0",
        "train.epochs=1",
    ]
    args = [a for o in own for a in ("-S", o)]
    out = sh(work, "dvc", "exp", "run", *args, "-S", SMALL_CNN)
    assert ran(out) == list(STAGES)
    classes = json.loads((work / "data/prepared/labels.json").read_text())["classes"]
    assert classes == ["bed", "cat", "no", "up", "yes"]

    # The sweep on the same data: the data stages come from the run cache in each queued copy.
    sh(work, "dvc", "exp", "run", "--queue", *args, "-S", "model=spec_cnn1d,crnn")
    sh(work, "dvc", "queue", "start", "-j", "2")
    wait_for_queue(work, 2)
    names = sh(work, "dvc", "exp", "list", "--name-only").split()
    assert len(names) >= 3, names

    # A reset workspace, then the same run again: every stage restored, nothing recomputed.
    sh(work, "git", "checkout", "--", ".")
    out = sh(work, "dvc", "exp", "run", *args, "-S", SMALL_CNN)
    assert [s for s in STAGES[:-1] if f"Stage '{s}' is cached" in out] == list(STAGES[:-1]), out
    assert set(ran(out)) <= {"compare"}, out

    # A stage target in another fresh clone.
    other = tmp_path_factory.mktemp("clone2") / "audioclf"
    sh(other.parent, "git", "clone", "-q", str(origin), str(other))
    out = sh(other, "dvc", "exp", "run", *args, "prepare")
    assert ran(out) == ["download", "prepare"]


def test_transfer_learning_caches_the_embeddings_once_for_every_classifier(tmp_path) -> None:
    """`dvc exp run -S model=logreg` (features=choi2017, the weights served on loopback), then
    `-S model=linear_svm`: the embeddings are computed and the weights downloaded once."""
    from tests.helpers import shared_file
    from tests.httpserver import LoopbackServer

    weights = shared_file("pretrained/choi2017_keras2/model_best.hdf5")
    repo = copy_of_project(tmp_path / "repo")
    with LoopbackServer(weights.parent) as server:
        source = [
            f"features.weights_url='{server.url(weights.name)}'",
            f"features.cache_dir='{tmp_path / 'cache'}'",
        ]
        args = [a for o in [*TINY, *source] for a in ("-S", o)]
        out = sh(repo, "dvc", "exp", "run", "-n", "logreg", *args, "-S", "model=logreg")
        assert ran(out) == list(STAGES)
        logreg = json.loads((repo / "reports/metrics.json").read_text())
        out = sh(repo, "dvc", "exp", "run", "-n", "svm", *args, "-S", "model=linear_svm")
        assert ran(out) == ["train", "evaluate", "compare"]  # the embedding cache is reused
        svm = json.loads((repo / "reports/metrics.json").read_text())
    assert [r.path for r in server.requests if r.method == "GET"] == [weights.name]
    for metrics in (logreg, svm):
        assert metrics["export_agreement"] == 1.0  # the exported model: backbone + Dense
        assert metrics["epochs_run"] == 1 and 0.0 <= metrics["test_accuracy"] <= 1.0
    runs = {r.data.params["model.name"]: r for r in mlflow_runs(repo)}
    assert set(runs) == {"logreg", "linear_svm"}
    assert {r.data.params["features.type"] for r in runs.values()} == {"choi2017"}
    for name, run in runs.items():  # the backbone and the classifier, logged
        assert run.data.params["backbone.name"] == "choi2017"
        assert run.data.params["backbone.embedding_size"] == "160"
        assert len(run.data.params["backbone.weights_sha256"]) == 64
        assert run.data.params["classifier.name"] == name
    with (repo / "reports/comparison.csv").open() as f:
        assert {r["features"] for r in csv.DictReader(f)} == {"choi2017 [1,2,3,4,5]"}
    assert (repo / "reports/learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    x = np.load(repo / "data/features/train_x.npy", mmap_mode="r")
    assert x.shape[1:] == (1, 160) and x.dtype == np.float32
