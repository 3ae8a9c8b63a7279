"""The cluster commands' parts that need no services: the grid, the batch script, the checks.

The grid must be the one `dvc exp run --queue -S` makes (same points, same order, same names),
the batch script must give each array task its own grid point, and every set-up mistake must
stop before anything is submitted or cloned, with a message that says what to do. The whole
path through SLURM, S3, PostgreSQL and the MLflow server is in test_cluster.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from audioclf import dvcremote, job, sweep, tracking
from tests import services


def test_the_grid_is_dvcs_queue_grid_with_its_names() -> None:
    points = sweep.expand(
        ["model=crnn,ds_cnn", "augment=none,light", "model.filters=[8,16]", "train.epochs=2"],
        "grid",
    )
    assert [p.name for p in points] == ["grid-1", "grid-2", "grid-3", "grid-4"]
    assert [p.overrides for p in points] == [
        ("model=crnn", "augment=none", "model.filters=[8,16]", "train.epochs=2"),
        ("model=crnn", "augment=light", "model.filters=[8,16]", "train.epochs=2"),
        ("model=ds_cnn", "augment=none", "model.filters=[8,16]", "train.epochs=2"),
        ("model=ds_cnn", "augment=light", "model.filters=[8,16]", "train.epochs=2"),
    ]
    # DVC's own expansion of the same overrides, as `dvc exp run --queue` calls it.
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps

    dvc = get_hydra_sweeps(
        to_path_overrides(["model=crnn,ds_cnn", "augment=none,light", "model.filters=[8,16]",
                           "train.epochs=2"])
    )  # fmt: skip
    assert [tuple(d["params.yaml"]) for d in dvc] == [p.overrides for p in points]


def test_a_single_point_and_other_params_files() -> None:
    (point,) = sweep.expand(["train.epochs=3", "other.yaml:lr=0.1"], "one")
    assert point == sweep.Point("one-1", ("train.epochs=3", "other.yaml:lr=0.1"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model=glob(*)", "Glob override 'model=glob(*)' is not supported"),
        ("model=[a", "-S model=[a"),
    ],
)
def test_a_bad_override_is_refused_naming_it(override: str, message: str) -> None:
    with pytest.raises(sweep.SweepError, match=re.escape(message)):
        sweep.expand([override], "bad")


def test_each_array_task_runs_the_job_of_its_own_grid_point(tmp_path: Path) -> None:
    points = sweep.expand(["model=crnn,ds_cnn", "model.filters=[8,16]"], "two")
    script = sweep.batch_script(
        points, "/srv/git/audioclf.git", "abc123", job_name="two", max_parallel=3,
        log_dir=tmp_path, sbatch_args=["--partition=cpu", "--time=01:00:00"],
    )  # fmt: skip
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --array=0-1%3" in lines and "#SBATCH --job-name=two" in lines
    assert f"#SBATCH --output={tmp_path}/%x-job%A_%a.out" in lines
    assert "#SBATCH --partition=cpu" in lines and "#SBATCH --time=01:00:00" in lines
    path = tmp_path / "two.sbatch"
    path.write_text(script)
    # Run it as SLURM would, for each task: with no tracking server set, `audioclf job` stops
    # at its first check and says which experiment it was given.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    for task, name in enumerate(["two-1", "two-2"]):
        out = subprocess.run(
            ["bash", str(path)], env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert f"[job] {name}: MLFLOW_TRACKING_URI is not set" in out.stderr
    out = subprocess.run(
        ["bash", str(path)], env={**env, "SLURM_ARRAY_TASK_ID": "2"}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "no grid point for task 2" in out.stderr


def test_run_tags_carry_the_slurm_job_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "c0ffee")
    monkeypatch.setenv("DVC_EXP_NAME", "grid-2")
    monkeypatch.setenv("SLURM_JOB_ID", "57")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "55")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert tracking.run_tags() == {
        "git_commit": "c0ffee",
        "dvc_exp_name": "grid-2",
        "dvc_exp_baseline": "c0ffee",
        "slurm_job_id": "57",
        "slurm_array_job_id": "55",
        "slurm_array_task_id": "1",
    }
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(var)
    assert set(tracking.run_tags()) == {"git_commit", "dvc_exp_name", "dvc_exp_baseline"}


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (None, "MLFLOW_TRACKING_URI is not set"),
        ("sqlite:///mlflow.db", "a local store cannot be shared"),
        ("/data/mlruns", "a local store cannot be shared"),
    ],
)
def test_a_job_needs_a_shared_tracking_store(
    uri: str | None, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if uri is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(job.JobError, match=message):
        job.check_tracking()


def test_tracking_servers_and_databases_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for uri in ("http://mlflow:5000", "https://mlflow.example", "postgresql://u@db/mlflow"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        assert job.check_tracking() == uri


def dvc_repo(path: Path) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([Path(sys.executable).with_name("dvc"), "init", "-q"], cwd=path, check=True)
    return path


def test_the_remote_comes_from_the_environment_into_the_local_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = dvc_repo(tmp_path / "repo")
    monkeypatch.setenv("AUDIOCLF_DVC_REMOTE", "s3://bucket/dvc")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    remote = dvcremote.configure(repo)
    assert remote == dvcremote.Remote("cluster", "s3://bucket/dvc", "http://127.0.0.1:9000")
    local = (repo / ".dvc/config.local").read_text()
    assert "s3://bucket/dvc" in local and "endpointurl = http://127.0.0.1:9000" in local
    assert "cluster" not in (repo / ".dvc/config").read_text()  # nothing committed
    # DVC itself now sees it as the default remote.
    out = subprocess.run(
        [Path(sys.executable).with_name("dvc"), "remote", "default"], cwd=repo,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "cluster"


def test_without_a_remote_the_message_says_how_to_set_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = dvc_repo(tmp_path / "repo")
    monkeypatch.delenv("AUDIOCLF_DVC_REMOTE", raising=False)
    with pytest.raises(dvcremote.RemoteError, match="no DVC remote. Set AUDIOCLF_DVC_REMOTE"):
        dvcremote.resolve(repo)
    # A committed default remote is used as it is.
    subprocess.run(
        [Path(sys.executable).with_name("dvc"), "remote", "add", "-d", "store", "/srv/dvc"],
        cwd=repo, check=True, capture_output=True,
    )  # fmt: skip
    remote = dvcremote.resolve(repo)
    assert (remote.name, remote.url) == ("store", "/srv/dvc")
    assert "not S3, not checked" in dvcremote.check_s3(remote)


def test_an_unreachable_s3_endpoint_is_a_clear_error() -> None:
    port = services.free_ports(1)[0]  # nothing listens there
    remote = dvcremote.Remote("cluster", "s3://bucket/dvc", f"http://127.0.0.1:{port}", "k", "s")
    with pytest.raises(dvcremote.RemoteError, match="cannot reach the S3 endpoint"):
        dvcremote.check_s3(remote, timeout_s=2)


def git(repo: Path, *args: str) -> str:
    return services.git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", *args)


def test_a_sweep_refuses_uncommitted_or_unpushed_work(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    repo = tmp_path / "work"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("1")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "one")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    assert sweep.pushed_commit(repo, "origin") == (git(repo, "rev-parse", "HEAD"), str(origin))

    (repo / "a.txt").write_text("2")
    with pytest.raises(sweep.SweepError, match="uncommitted changes would not reach the cluster"):
        sweep.pushed_commit(repo, "origin")
    git(repo, "commit", "-q", "-am", "two")
    with pytest.raises(sweep.SweepError, match=r"is not on origin .*`git push origin` first"):
        sweep.pushed_commit(repo, "origin")


def test_stop_group_waits_for_the_whole_group_not_only_its_leader(tmp_path) -> None:
    """The step's leader (DVC) can exit on SIGTERM before the stage process it started; the
    job must not delete the clone while that process still runs in it."""
    import subprocess
    import sys
    import time

    from audioclf.job import group_alive, stop_group

    # A leader that exits at once on SIGTERM, and a child that takes 1 s to end.
    child = (
        "import signal, time; "
        "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1), exit(0))); time.sleep(60)"
    )
    leader = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", leader], start_new_session=True)
    time.sleep(1.5)  # both started
    stop_group(proc, grace_s=10)
    assert not group_alive(proc.pid)
