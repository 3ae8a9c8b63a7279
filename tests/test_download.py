"""fetch and extract against a real HTTP server on 127.0.0.1 and archives made in tmp_path.

The server (tests/httpserver.py) cuts transfers and ignores Range headers on request, so the
resume paths run over real sockets; no test touches the network beyond loopback.
"""

from __future__ import annotations

import hashlib
import io
import socket
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from audioclf.download import DownloadError, extract, fetch
from tests.httpserver import LoopbackServer

NAME = "data.bin"
PAYLOAD = np.random.default_rng(0).bytes(2_500_000)  # > 2 chunks of 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()
HALF = len(PAYLOAD) // 2 + 123  # a cut inside a chunk, not on a boundary


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LoopbackServer]:
    root = tmp_path / "served"
    root.mkdir()
    (root / NAME).write_bytes(PAYLOAD)
    with LoopbackServer(root) as srv:
        yield srv


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "downloads"


def gets(server: LoopbackServer) -> list[str | None]:
    """Range header of each GET, in order (None: no Range)."""
    return [r.range for r in server.requests if r.method == "GET"]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- fetch -------------------------------------------------------------------------------


def test_fetch_downloads_verifies_and_then_uses_the_cache(
    server: LoopbackServer, dest: Path
) -> None:
    path = fetch(server.url(NAME), dest, sha256=SHA, size=len(PAYLOAD), progress=False)

    assert path == dest.resolve() / NAME
    assert path.read_bytes() == PAYLOAD
    assert listing(dest) == [NAME]  # no .part, no pooch temporary file
    assert gets(server) == [None]

    again = fetch(server.url(NAME), dest, sha256=SHA, size=len(PAYLOAD), progress=False)
    assert again == path
    assert len(server.requests) == 1  # right hash on disk: no request at all


def test_fetch_resumes_a_cut_transfer_with_a_range_request(
    server: LoopbackServer, dest: Path
) -> None:
    server.cut_after(NAME, HALF)

    path = fetch(server.url(NAME), dest, sha256=SHA, size=len(PAYLOAD), retries=2, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert gets(server) == [None, f"bytes={HALF}-"]
    assert listing(dest) == [NAME]


def test_fetch_keeps_the_part_file_and_resumes_on_the_next_run(
    server: LoopbackServer, dest: Path
) -> None:
    server.cut_after(NAME, HALF)
    with pytest.raises(DownloadError) as info:
        fetch(server.url(NAME), dest, sha256=SHA, size=len(PAYLOAD), retries=1, progress=False)
    message = str(info.value)
    assert server.url(NAME) in message and "1 attempt" in message
    assert f"{NAME}.part" in message and "resume" in message
    assert (dest / f"{NAME}.part").stat().st_size == HALF
    assert listing(dest) == [f"{NAME}.part"]

    path = fetch(server.url(NAME), dest, sha256=SHA, size=len(PAYLOAD), retries=1, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert gets(server) == [None, f"bytes={HALF}-"]
    assert listing(dest) == [NAME]


def test_fetch_starts_over_when_the_server_ignores_range(
    server: LoopbackServer, dest: Path
) -> None:
    server.ignore_range = True
    server.cut_after(NAME, HALF)

    path = fetch(server.url(NAME), dest, sha256=SHA, size=len(PAYLOAD), retries=2, progress=False)

    assert path.read_bytes() == PAYLOAD  # the 200 body replaced the part, not appended to it
    assert gets(server) == [None, f"bytes={HALF}-"]
    assert listing(dest) == [NAME]


def test_fetch_restarts_from_scratch_when_a_stale_part_fails_the_checksum(
    server: LoopbackServer, dest: Path
) -> None:
    # A part left by an earlier run of a since-changed file: resuming gives wrong bytes.
    dest.mkdir()
    (dest / f"{NAME}.part").write_bytes(b"\0" * HALF)

    path = fetch(server.url(NAME), dest, sha256=SHA, size=len(PAYLOAD), retries=2, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert gets(server) == [f"bytes={HALF}-", None]
    assert listing(dest) == [NAME]


def test_fetch_checksum_mismatch_names_both_hashes_and_leaves_nothing(
    server: LoopbackServer, dest: Path
) -> None:
    wrong = hashlib.sha256(b"another file").hexdigest()
    with pytest.raises(DownloadError) as info:
        fetch(server.url(NAME), dest, sha256=wrong, size=len(PAYLOAD), retries=2, progress=False)

    message = str(info.value)
    assert server.url(NAME) in message and wrong in message and SHA in message
    assert "deleted" in message
    assert listing(dest) == []
    assert gets(server) == [None]  # the same bytes again cannot match: not downloaded twice


def test_fetch_size_mismatch_names_both_sizes_and_leaves_nothing(
    server: LoopbackServer, dest: Path
) -> None:
    with pytest.raises(DownloadError) as info:
        fetch(server.url(NAME), dest, sha256=SHA, size=len(PAYLOAD) + 1, progress=False)

    message = str(info.value)
    assert server.url(NAME) in message
    assert str(len(PAYLOAD)) in message and str(len(PAYLOAD) + 1) in message
    assert listing(dest) == []


def test_fetch_404_is_not_retried(server: LoopbackServer, dest: Path) -> None:
    url = server.url("missing.bin")
    with pytest.raises(DownloadError, match="404") as info:
        fetch(url, dest, sha256=SHA, size=None, retries=3, progress=False)

    assert url in str(info.value)
    assert len(server.requests) == 1
    assert listing(dest) == []


def test_fetch_unreachable_server_names_the_url(dest: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{NAME}"

    with pytest.raises(DownloadError) as info:
        fetch(url, dest, sha256=SHA, size=len(PAYLOAD), retries=1, progress=False)

    message = str(info.value)
    assert url in message and "1 attempt" in message
    assert listing(dest) == []


def test_fetch_without_recorded_sha256_prints_it(
    server: LoopbackServer, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fetch(server.url(NAME), dest, sha256=None, size=None, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert SHA in capsys.readouterr().out


def test_fetch_rejects_a_malformed_sha256(dest: Path) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        fetch("http://127.0.0.1:9/x.bin", dest, sha256="abc", size=None)


# --- extract -----------------------------------------------------------------------------

FILES = {"a.txt": b"hello\n", "sub/b.bin": bytes(range(256)) * 40}


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    mode = "w:gz" if path.name.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def tar_member(name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info, data


def make_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def zip_symlink(name: str, link: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how Info-ZIP stores a symlink
    return info, link.encode()


def assert_nothing_extracted(target: Path) -> None:
    assert not target.exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz"])
def test_extract_tar_unpacks_every_member(tmp_path: Path, suffix: str) -> None:
    members = [tar_member(name, data) for name, data in FILES.items()]
    members.append(tar_member("sub/link", kind=tarfile.SYMTYPE, link="b.bin"))  # stays inside
    archive = make_tar(tmp_path / f"data{suffix}", members)
    target = tmp_path / "out"

    assert extract(archive, target, progress=False) == target

    for name, data in FILES.items():
        assert (target / name).read_bytes() == data
    assert (target / "sub" / "link").is_symlink()
    assert (target / "sub" / "link").read_bytes() == FILES["sub/b.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"data{suffix}", "out"]


def test_extract_zip_unpacks_every_member(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "data.zip", list(FILES.items()))
    target = tmp_path / "out"

    assert extract(archive, target, progress=False) == target

    for name, data in FILES.items():
        assert (target / name).read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.zip", "out"]


UNSAFE_TAR = {
    "dotdot": (tar_member("../escape.txt", b"x"), "escape.txt"),
    "absolute": (tar_member("/abs/path.txt", b"x"), "abs"),
    "symlink absolute": (tar_member("link", kind=tarfile.SYMTYPE, link="/etc/passwd"), None),
    "symlink up": (tar_member("sub/link", kind=tarfile.SYMTYPE, link="../../x"), None),
    "hardlink up": (tar_member("hard", kind=tarfile.LNKTYPE, link="../x"), "x"),
    "fifo": (tar_member("pipe", kind=tarfile.FIFOTYPE), None),
}


@pytest.mark.parametrize("case", UNSAFE_TAR, ids=list(UNSAFE_TAR))
def test_extract_refuses_a_tar_with_an_unsafe_member(tmp_path: Path, case: str) -> None:
    member, escaped = UNSAFE_TAR[case]
    # A harmless member first: refusal must come before anything is written.
    archive = make_tar(tmp_path / "bad.tar.gz", [tar_member("ok.txt", b"fine"), member])
    target = tmp_path / "area" / "out"
    target.parent.mkdir()

    with pytest.raises(DownloadError) as info:
        extract(archive, target, progress=False)

    assert repr(member[0].name) in str(info.value) and str(archive) in str(info.value)
    assert_nothing_extracted(target)
    assert listing(target.parent) == []
    if escaped is not None:
        assert not (tmp_path / escaped).exists()
    assert not Path("/abs/path.txt").exists()


def test_extract_refuses_writing_through_a_symlink_in_the_archive(tmp_path: Path) -> None:
    # "d" -> "." passes a check of link targets alone; "d/up" -> ".." then lands in the
    # target's parent once "d" exists on disk. Refused because "d/up" goes through "d".
    archive = make_tar(
        tmp_path / "bad.tar",
        [
            tar_member("d", kind=tarfile.SYMTYPE, link="."),
            tar_member("d/up", kind=tarfile.SYMTYPE, link=".."),
        ],
    )
    target = tmp_path / "out"

    with pytest.raises(DownloadError, match="'d/up'"):
        extract(archive, target, progress=False)
    assert_nothing_extracted(target)


UNSAFE_ZIP = {
    "dotdot": (("../escape", b"x"), "escape"),
    "absolute": (("/abs/path.txt", b"x"), None),
    "symlink absolute": (zip_symlink("link", "/etc/passwd"), None),
    "symlink up": (zip_symlink("sub/link", "../../x"), None),
}


@pytest.mark.parametrize("case", UNSAFE_ZIP, ids=list(UNSAFE_ZIP))
def test_extract_refuses_a_zip_with_an_unsafe_member(tmp_path: Path, case: str) -> None:
    member, escaped = UNSAFE_ZIP[case]
    archive = make_zip(tmp_path / "bad.zip", [("ok.txt", b"fine"), member])
    name = member[0] if isinstance(member[0], str) else member[0].filename
    target = tmp_path / "area" / "out"
    target.parent.mkdir()

    with pytest.raises(DownloadError) as info:
        extract(archive, target, progress=False)

    assert repr(name) in str(info.value)
    assert_nothing_extracted(target)
    assert listing(target.parent) == []
    if escaped is not None:
        assert not (tmp_path / escaped).exists()


def test_extract_interrupted_midway_leaves_no_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_tar(tmp_path / "data.tar", [tar_member(n, d) for n, d in FILES.items()])
    target = tmp_path / "out"
    written: list[str] = []
    makefile = tarfile.TarFile.makefile

    def fail_after_first(self: tarfile.TarFile, tarinfo: tarfile.TarInfo, path: str) -> None:
        if written:
            raise OSError(28, "No space left on device (simulated)")
        makefile(self, tarinfo, path)
        written.append(tarinfo.name)

    monkeypatch.setattr(tarfile.TarFile, "makefile", fail_after_first)

    with pytest.raises(OSError, match="simulated"):
        extract(archive, target, progress=False)
    assert written == ["a.txt"]  # it did fail midway, with one member out
    assert_nothing_extracted(target)


def test_extract_truncated_archive_is_refused_and_leaves_no_target(tmp_path: Path) -> None:
    good = make_tar(tmp_path / "good.tar.gz", [tar_member(n, d) for n, d in FILES.items()])
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    target = tmp_path / "out"

    with pytest.raises(DownloadError, match="truncated"):
        extract(archive, target, progress=False)
    assert_nothing_extracted(target)
