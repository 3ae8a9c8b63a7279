"""The two DVC bugs that jobs sharing a run cache meet, and audioclf.dvcfixes' fixes for them.

A four-stage pipeline in a temporary git repository, with a local folder as the DVC remote:
`z` writes a file, `a` a folder from it, `b` reads one file inside that folder (as `corrupt`
reads data/prepared/test_x.npy), `c` writes an uncached output (as `evaluate` writes
metrics.json). The committed dvc.lock refers to a folder listing that is in no cache and no
remote (results committed, never pushed). Job 1 runs an experiment in a fresh clone and pushes
it with the run cache; job 2 runs the same experiment in another fresh clone. Plain DVC fails
in job 2 (bug 1) and, with bug 1 out of the way, re-runs `c` (bug 2); through
audioclf.dvcfixes job 2 restores every stage. If a DVC release fixes the bugs, the plain-DVC
checks fail: then the fixes can go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DVC = [str(Path(sys.executable).with_name("dvc"))]
FIXED = [sys.executable, "-I", "-m", "audioclf.dvcfixes"]
ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
PIPELINE = """\
stages:
  z:
    cmd: python -c "import yaml; n = yaml.safe_load(open('params.yaml'))['n'];
      open('z.txt', 'w').write(str(n))"
    params: [n]
    outs: [z.txt]
  a:
    cmd: python -c "import os; os.makedirs('d', exist_ok=True);
      open('d/f.txt', 'w').write(open('z.txt').read()); open('d/g.txt', 'w').write('g')"
    deps: [z.txt]
    outs: [d]
  b:
    cmd: python -c "open('b.txt', 'w').write(open('d/f.txt').read() * 2)"
    deps: [d/f.txt]
    outs: [b.txt]
  c:
    cmd: >-
      python -c "open('c.yaml', 'w').write('c: ' + open('b.txt').read())"
    deps: [b.txt]
    metrics:  # an uncached output that the run cache still covers (a metric or a plot)
      - c.yaml:
          cache: false
"""


def sh(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def ok(cwd: Path, *args: str) -> str:
    out = sh(cwd, *args)
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare repository whose commit has a dvc.lock with results pushed nowhere."""
    work = tmp_path / "work"
    work.mkdir()
    ok(work, "git", "init", "-q", "-b", "main")
    ok(work, *DVC, "init", "-q")
    (work / "params.yaml").write_text("n: 1\n")
    (work / "dvc.yaml").write_text(PIPELINE)
    ok(work, *DVC, "repro", "-q")
    ok(work, "git", "add", "-A")
    ok(work, "git", "commit", "-q", "-m", "results committed, never pushed")
    ok(tmp_path, "git", "clone", "-q", "--bare", str(work), str(tmp_path / "origin.git"))
    shutil.rmtree(work)
    return tmp_path / "origin.git"


def job(origin: Path, remote: Path, folder: Path, name: str, dvc: list[str]) -> str:
    """What audioclf.job does: fresh clone, remote, `exp run --pull`, `exp push --run-cache`."""
    ok(folder.parent, "git", "clone", "-q", str(origin), str(folder))
    ok(folder, *DVC, "remote", "add", "--local", "-d", "shared", str(remote))
    out = sh(folder, *dvc, "exp", "run", "--pull", "-n", name, "-S", "n=2")
    if out.returncode == 0:
        ok(folder, *dvc, "exp", "push", "--run-cache", "origin", name)
    return f"{out.returncode}\n{out.stdout}{out.stderr}"


def test_plain_dvc_fails_on_the_second_job_and_the_fixes_restore_every_stage(
    origin: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    first = job(origin, remote, tmp_path / "job1", "first", FIXED)
    assert first.startswith("0\n") and "Running stage 'c'" in first, first

    # Bug 1: restoring stages from the run cache leaves DVC's view of dvc.lock as it was after
    # `z`, so `b`'s dependency is looked up in the committed folder listing of `a`.
    plain = job(origin, remote, tmp_path / "job2", "plain", DVC)
    assert "Stage 'b' is cached" in plain
    assert "failed to reproduce 'b': failed to load directory ('d',)" in plain, plain
    assert not plain.startswith("0\n")

    fixed = job(origin, remote, tmp_path / "job3", "fixed", FIXED)
    assert fixed.startswith("0\n"), fixed
    for stage in "zabc":  # c too: its uncached output came from the remote (bug 2)
        assert f"Stage '{stage}' is cached" in fixed and f"Running stage '{stage}'" not in fixed
    assert (tmp_path / "job3/c.yaml").read_text() == "c: 22"


def test_without_fix_2_the_uncached_output_is_not_on_the_remote(
    origin: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    ok(tmp_path, "git", "clone", "-q", str(origin), str(tmp_path / "job1"))
    folder = tmp_path / "job1"
    ok(folder, *DVC, "remote", "add", "--local", "-d", "shared", str(remote))
    # Fix 1 only: the run, then a plain push.
    ok(folder, *FIXED, "exp", "run", "--pull", "-n", "first", "-S", "n=2")
    ok(folder, *DVC, "exp", "push", "--run-cache", "origin", "first")
    second = job(origin, remote, tmp_path / "job2", "second", FIXED)
    assert second.startswith("0\n"), second
    assert "Stage 'b' is cached" in second
    assert "Running stage 'c'" in second  # c's run-cache entry is there, its output is not
