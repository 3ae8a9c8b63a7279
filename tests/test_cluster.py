"""Cluster tier: sweeps through real SLURM, a real MLflow server on PostgreSQL + S3, a DVC remote.

Everything runs on loopback and is started and stopped here (tests/services.py): PostgreSQL,
SeaweedFS's S3, munged + slurmctld + slurmd, `mlflow server`, and a bare git repository as
`origin`. A workspace holding this project's files submits `audioclf sweep --slurm` as a user
would; every task is the execution unit (`audioclf job`) cloning `origin` into its own scratch
folder. The experiment is the default pipeline on a tiny config (test_e2e.TINY).

Without the services these tests skip, saying what to install; with
``AUDIOCLF_REQUIRE_CLUSTER=1`` (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests import services
from tests.test_e2e import SMALL_CNN, TINY

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

GRID = [*TINY, SMALL_CNN, "model.dropout=0.1,0.2"]  # two grid points, the rest shared
SWEEP_TIMEOUT_S = 1500  # two tiny pipelines side by side on a busy 2-core machine: ~6 min


@dataclass
class Cluster:
    db: services.Postgres
    s3: services.S3
    slurm: services.Slurm
    mlflow: services.MlflowServer
    origin: Path
    work: Path
    scratch: Path
    env: dict[str, str]

    def commit(self) -> str:
        return services.git(self.work, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    lacking = services.missing()
    if lacking:
        message = "cluster services not installed: " + "; ".join(lacking)
        if os.environ.get("AUDIOCLF_REQUIRE_CLUSTER") == "1":
            pytest.fail(message + " (AUDIOCLF_REQUIRE_CLUSTER=1: they must be here)")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("cluster")
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(services.postgres(root / "logs"))
        s3 = stack.enter_context(services.s3(root / "s3"))
        slurm = stack.enter_context(services.slurm(root / "slurm"))
        mlflow = stack.enter_context(services.MlflowServer(db, s3, root / "logs"))
        origin, work = services.origin_and_workspace(ROOT, root / "git")
        env = {
            **os.environ,
            **slurm.env,
            "PATH": f"{services.BIN}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": mlflow.url,
            "AUDIOCLF_DVC_REMOTE": f"s3://{s3.bucket}/dvc",
            "AWS_ENDPOINT_URL": s3.endpoint,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AUDIOCLF_SCRATCH": str(root / "scratch"),
            "DVC_NO_ANALYTICS": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # 9 retries with back-off wait about 6 minutes for the tracking server (MLflow's
            # default 7, about 2); `mlflow server` can take 100 s to start on a busy 2-core CI.
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9",
        }
        yield Cluster(db, s3, slurm, mlflow, origin, work, root / "scratch", env)


def run(c: Cluster, *args: str, timeout: float = 600, env: dict | None = None):
    return subprocess.run(
        list(args), cwd=c.work, env=env or c.env, capture_output=True, text=True, timeout=timeout
    )


def s_args(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("-S", o)]


def task_logs(c: Cluster, prefix: str) -> dict[int, str]:
    """Each task's output (slurm-logs/<prefix>-job<array id>_<task>.out), by task index."""
    return {
        int(p.stem.rsplit("_", 1)[1]): p.read_text(errors="replace")
        for p in (c.work / "slurm-logs").glob(f"{prefix}-job*_*.out")
    }


def submit(c: Cluster, prefix: str, overrides: list[str], wait: bool = True) -> str:
    """`audioclf sweep --slurm` as a user types it; the job array's id."""
    out = run(
        c, "audioclf", "sweep", "--slurm", *s_args(overrides), "--name", prefix,
        "--max-parallel", "2", *(["--wait"] if wait else []), timeout=SWEEP_TIMEOUT_S,
    )  # fmt: skip
    logs = "\n".join(f"--- task {i}\n{t[-6000:]}" for i, t in sorted(task_logs(c, prefix).items()))
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{logs}"
    return out.stdout.split()[0].split("_")[0]


def wait_for_jobs(c: Cluster, job_id: str, timeout_s: float = SWEEP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while any(j.split("_")[0] == job_id for j in c.slurm.jobs()):
        assert time.monotonic() < deadline, f"job {job_id} still running after {timeout_s} s"
        time.sleep(2)


def task_states(c: Cluster, job_id: str) -> dict[str, str]:
    """JobState of every task of the array (slurmctld keeps ended jobs for MinJobAge)."""
    out = c.slurm.run("scontrol", "show", "job", "--oneliner", job_id)
    states = {}
    for line in out.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        states[fields["ArrayTaskId"]] = f"{fields['JobState']} {fields['ExitCode']}"
    return states


def exp_refs(c: Cluster) -> dict[str, str]:
    """Experiment name -> ref, as pushed to the bare origin."""
    refs = services.git(c.origin, "for-each-ref", "--format=%(refname)", "refs/exps")
    return {r.rsplit("/", 1)[1]: r for r in refs.split() if not r.endswith("EXEC_HEAD")}


def mlflow_runs(c: Cluster) -> dict[str, dict]:
    """Every pipeline run of experiment `audioclf`, read from PostgreSQL itself: id -> status,
    tags."""
    rows = c.db.query(
        "SELECT r.run_uuid, r.status, r.experiment_id FROM runs r "
        "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE e.name = 'audioclf'"
    )
    runs = {
        uuid: {"status": status, "experiment_id": exp, "tags": {}} for uuid, status, exp in rows
    }
    for uuid, key, value in c.db.query("SELECT run_uuid, key, value FROM tags"):
        if uuid in runs:
            runs[uuid]["tags"][key] = value
    # compare's own run (the comparison table) is replaced each time compare runs.
    return {u: r for u, r in runs.items() if r["tags"].get("audioclf.kind") != "comparison"}


def runs_named(c: Cluster, *names: str) -> dict[str, list[dict]]:
    by_name: dict[str, list[dict]] = {n: [] for n in names}
    for uuid, r in mlflow_runs(c).items():
        name = r["tags"].get("dvc_exp_name")
        if name in by_name:
            by_name[name].append({"run_uuid": uuid, **r})
    return by_name


# --- faults before any work ---------------------------------------------------------------


def test_a_wrong_s3_key_fails_with_a_clear_message_before_any_training(cluster: Cluster) -> None:
    c = cluster
    wrong = {**c.env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    start = time.monotonic()
    out = run(
        c, "audioclf", "job", "--repo", str(c.origin), "--rev", c.commit(), "--name", "wrongkey",
        *s_args(TINY), env=wrong, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "S3 refused the credentials (SignatureDoesNotMatch" in out.stderr, out.stderr
    assert "AWS_SECRET_ACCESS_KEY" in out.stderr and "s3://audioclf/dvc" in out.stderr
    assert "Running stage" not in out.stdout + out.stderr  # nothing ran
    assert time.monotonic() - start < 60
    assert not list(c.scratch.iterdir())  # the clone is gone

    # The sweep checks the same before submitting anything.
    sweep = run(c, "audioclf", "sweep", "--slurm", *s_args(GRID), "--name", "nokey", env=wrong)
    assert sweep.returncode == 2 and "S3 refused the credentials" in sweep.stderr, sweep.stderr
    assert c.slurm.jobs() == [] and not list((c.work / "slurm-logs").glob("nokey*"))


# --- the sweep ----------------------------------------------------------------------------


def test_a_two_task_sweep_lands_in_git_s3_and_postgres(cluster: Cluster) -> None:
    c = cluster
    job_id = submit(c, "first", GRID)
    assert set(task_states(c, job_id).values()) == {"COMPLETED 0:0"}
    logs = task_logs(c, "first")
    assert sorted(logs) == [0, 1]
    for text in logs.values():
        assert "Running stage 'train'" in text and "[job] first-" in text

    # Both experiment refs are in the bare repository, made from the submitted commit.
    refs = exp_refs(c)
    assert {"first-1", "first-2"} <= set(refs)
    for name in ("first-1", "first-2"):
        parent = services.git(c.origin, "rev-parse", f"{refs[name]}^")
        assert parent == c.commit()

    # Their outputs are in the bucket (the DVC remote), and so is the run cache.
    keys = set(c.s3.keys("dvc/"))
    for name in ("first-1", "first-2"):
        lock = yaml.safe_load(services.git(c.origin, "show", f"{refs[name]}:dvc.lock"))
        outs = [o for s in lock["stages"].values() for o in s.get("outs", [])]
        data = [o for o in outs if o["path"].startswith("data/")]
        assert {o["path"] for o in data} >= {
            "data/raw",
            "data/model/model.keras",
            "data/features/train_x.npy",
        }
        for o in data:
            assert f"dvc/files/md5/{o['md5'][:2]}/{o['md5'][2:]}" in keys, o
    assert any(k.startswith("dvc/runs/") for k in keys)

    # Both MLflow runs FINISHED in PostgreSQL, tagged with name, commit and SLURM job ids.
    runs = runs_named(c, "first-1", "first-2")
    for task, name in enumerate(("first-1", "first-2")):
        (r,) = runs[name]
        assert r["status"] == "FINISHED"
        assert r["tags"]["git_commit"] == c.commit()
        assert r["tags"]["slurm_array_job_id"] == job_id
        assert r["tags"]["slurm_array_task_id"] == str(task)
        assert r["tags"]["slurm_job_id"].isdigit()
        # Artifacts went through the server to S3: no task had to write to the bucket itself.
        prefix = f"mlartifacts/{r['experiment_id']}/{r['run_uuid']}/artifacts/"
        artifacts = set(c.s3.keys(prefix))
        assert {prefix + "metrics.json", prefix + "model/inference.keras"} <= artifacts


def test_collect_pulls_the_experiments_back_and_compares(cluster: Cluster) -> None:
    c = cluster
    out = run(c, "audioclf", "sweep", "--collect", "--name", "first", timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "collected 2 experiments: first-1, first-2" in out.stderr
    listed = run(c, "dvc", "exp", "list", "--name-only").stdout.split()
    assert {"first-1", "first-2"} <= set(listed)
    assert "first-1" in out.stdout and "test_accuracy" in out.stdout  # `dvc exp show --md`

    with (c.work / "reports/comparison.csv").open() as f:
        table = {r["run"]: r for r in csv.DictReader(f)}
    runs = runs_named(c, "first-1", "first-2")
    for name in ("first-1", "first-2"):
        assert table[name]["run_id"] == runs[name][0]["run_uuid"]
        assert float(table[name]["clean"]) >= 0.0

    # The pulled experiment's model came back from the DVC remote.
    run(c, "git", "checkout", "--", ".")  # compare's refreshed table and lock
    applied = run(c, "dvc", "exp", "apply", "first-2")
    assert applied.returncode == 0, applied.stderr
    assert (c.work / "data/model/inference.keras").is_file()
    run(c, "git", "checkout", "--", ".")  # a clean tree for the next sweep


def test_a_second_identical_sweep_restores_from_the_shared_run_cache(cluster: Cluster) -> None:
    """Fresh clones, empty caches: every stage that has a run-cache entry comes from the remote
    (evaluate's metrics too, through audioclf.dvcfixes); only compare, whose tables are plain
    uncached outputs and which reads the live server anyway, runs again."""
    c = cluster
    before = mlflow_runs(c)
    submit(c, "again", GRID)
    logs = task_logs(c, "again")
    for task, text in logs.items():
        for stage in ("download", "prepare", "corrupt", "features", "augment", "train", "evaluate"):
            assert f"Stage '{stage}' is cached - skipping run" in text, (task, stage, text[-4000:])
            assert f"Running stage '{stage}'" not in text
    assert {"again-1", "again-2"} <= set(exp_refs(c))
    assert mlflow_runs(c) == before  # nothing was evaluated again, so no run was logged


# --- faults mid-sweep ---------------------------------------------------------------------


def wait_for_a_request(port: int, timeout_s: float) -> bool:
    """Listen on ``port`` in the tracking server's place; accept one connection and drop it
    (a server dying mid-request). True if a client came within ``timeout_s``."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        s.settimeout(timeout_s)
        try:
            conn, _ = s.accept()
        except TimeoutError:
            return False
        conn.close()
        return True


def test_the_tracking_server_restarted_mid_sweep_loses_no_run(cluster: Cluster) -> None:
    """The server goes down before the tasks log, a task's request meets a dropped connection,
    the server comes back on the same port (PostgreSQL keeps the store): every run is there."""
    c = cluster
    before = mlflow_runs(c)
    # Only evaluate (and compare) re-run: the rest comes from the run cache.
    job_id = submit(c, "restart", [*GRID, "evaluate.batch_size=32"], wait=False)
    c.mlflow.stop()
    came = wait_for_a_request(c.mlflow.port, timeout_s=900)
    # Back on the same port (20 s on an idle machine, 100 s seen on a busy one) while the
    # clients retry with back-off. From this thread: the server dies with the thread that
    # started it (setpriv --pdeathsig).
    c.mlflow.start()
    wait_for_jobs(c, job_id)
    assert came, "no task reached the tracking server within 900 s"
    states = task_states(c, job_id)
    logs = task_logs(c, "restart")
    assert set(states.values()) == {"COMPLETED 0:0"}, (states, logs)
    runs = mlflow_runs(c)
    assert set(before) <= set(runs)  # nothing lost from before the restart
    for task, name in enumerate(("restart-1", "restart-2")):
        (r,) = runs_named(c, name)[name]
        assert r["status"] == "FINISHED", (name, logs[task][-4000:])
        assert r["tags"]["slurm_array_job_id"] == job_id
    assert c.mlflow.healthy()


def test_sigterm_stops_a_jobs_running_step_and_removes_its_clone(cluster: Cluster) -> None:
    """SIGTERM to the execution unit alone (as Kubernetes sends it to a pod's first process)
    reaches the DVC step it runs; the clone is deleted and the status is 143."""
    c = cluster
    log = c.scratch.parent / "sigterm.log"
    with log.open("w") as f:
        proc = subprocess.Popen(
            ["audioclf", "job", "--repo", str(c.origin), "--rev", c.commit(), "--name", "term",
             *s_args([*TINY, SMALL_CNN, "train.epochs=50"])],
            cwd=c.work, env=c.env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while "Running stage 'train'" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        clone = next(c.scratch.glob("audioclf-term-*"))
        while not runs_named(c, "term")["term"]:  # train has started its live MLflow run
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # the unit only, not its process group
        assert proc.wait(timeout=90) == 143
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "SIGTERM during exp run" in text and "term: terminated (SIGTERM)" in text
    assert not clone.exists()
    assert "term" not in exp_refs(c)
    # The train stage got the SIGTERM and ended its run KILLED (docs/tracking.md).
    assert [r["status"] for r in runs_named(c, "term")["term"]] == ["KILLED"]
    # No process of the step is left (none has the clone as its working directory).
    for p in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            assert not os.readlink(p / "cwd").startswith(str(clone)), p


def run_starts(c: Cluster, name: str) -> list[tuple[str, str]]:
    """(status, run id) of the runs of DVC experiment ``name``, oldest first, from PostgreSQL."""
    named = {r["run_uuid"]: r for r in runs_named(c, name)[name]}
    rows = c.db.query("SELECT run_uuid, start_time FROM runs")
    started = {uuid: int(start) for uuid, start in rows if uuid in named}
    return [(named[u]["status"], u) for u in sorted(named, key=lambda u: (started[u], u))]


def test_a_cancelled_task_resubmitted_leaves_a_killed_run_then_a_finished_one(
    cluster: Cluster,
) -> None:
    """`scancel` mid-training (SLURM's SIGTERM, then SIGKILL after KillWait) ends the task's
    run KILLED and removes its clone; the same grid point submitted again trains from the
    start and logs a fresh run that FINISHES. No run stays RUNNING."""
    c = cluster
    point = [*TINY, SMALL_CNN, "model.dropout=0.3", "train.epochs=6"]
    job_id = submit(c, "cancel", point, wait=False)
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    while not runs_named(c, "cancel-1")["cancel-1"]:  # train has started its live run
        states = task_states(c, job_id)
        assert time.monotonic() < deadline, (states, task_logs(c, "cancel"))
        assert all(s.startswith(("PENDING", "RUNNING")) for s in states.values()), (
            states,
            task_logs(c, "cancel"),
        )
        time.sleep(1)
    c.slurm.run("scancel", job_id)
    wait_for_jobs(c, job_id, timeout_s=180)
    cancelled = task_states(c, job_id)
    # The unit caught the SIGTERM and exited 143 (or SLURM's SIGKILL came first: 0:9).
    assert all(s.startswith("CANCELLED ") for s in cancelled.values()), cancelled
    assert not list(c.scratch.glob("audioclf-cancel-*")), task_logs(c, "cancel")
    assert "cancel-1" not in exp_refs(c)

    again = submit(c, "cancel", point)
    assert set(task_states(c, again).values()) == {"COMPLETED 0:0"}
    log = (c.work / "slurm-logs" / f"cancel-job{again}_0.out").read_text(errors="replace")
    assert "Running stage 'train'" in log, log[-4000:]
    assert "cancel-1" in exp_refs(c)
    statuses = [status for status, _ in run_starts(c, "cancel-1")]
    assert statuses == ["KILLED", "FINISHED"], run_starts(c, "cancel-1")
