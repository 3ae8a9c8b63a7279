"""Downloading and unpacking data sets: verified, resumable, and safe to re-run.

``fetch`` gets one file over HTTP(S). pooch does the parts that are easy to get subtly wrong:
the sha256 check (a download is renamed into place only when its hash matches), the cache
(a file already present with the right hash is not downloaded again) and the retries. pooch's
own downloader starts every attempt from byte 0, which for a 2 GB archive on a flaky link may
never finish, so the downloader here keeps ``<filename>.part`` between attempts (and between
runs) and asks the server for the rest with ``Range: bytes=<part size>-``.

``extract`` unpacks a .tar, .tar.gz/.tgz or .zip into a folder that appears only once the
whole archive is out, and refuses archives with members that would land outside that folder
(absolute paths, ``..``, links pointing out, device files) before writing anything.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import re
import stat
import tarfile
import urllib.parse
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import pooch
import requests
from tqdm import tqdm

from audioclf.atomic import atomic_dir
from audioclf.config import repo_root

CHUNK_BYTES = 1 << 20  # 1 MiB per write: few syscalls, and a dropped link loses no data
TIMEOUT_S = (30.0, 30.0)  # (connect, read between two packets) in seconds
_SHA256 = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# 4xx answers worth retrying (timeout, rate limit); any other 4xx will not change on retry.
_RETRYABLE_CLIENT_ERRORS = {408, 429}

T = TypeVar("T")


class DownloadError(RuntimeError):
    """A download or extraction that failed; the message names the URL or file and what to do."""


class _Interrupted(requests.exceptions.RequestException):
    """A transfer that ended early or went wrong midway; pooch retries requests exceptions."""


class _ChecksumMismatch(Exception):
    """A complete download from byte 0 failed pooch's hash check: retrying cannot help.

    Deliberately neither ValueError nor a requests exception, which pooch would retry.
    """


class ResumableDownloader:
    """A pooch downloader (``downloader(url, output_file, pooch, check_only=False)``) that
    resumes from ``part`` with an HTTP Range request and checks the byte count.

    Errors worth retrying (dropped connection, short body, timeout, 5xx) are raised as
    ``requests`` exceptions, which pooch retries; the part file stays, so the next attempt
    asks only for the rest. Errors that a retry cannot fix raise DownloadError.
    """

    def __init__(
        self,
        part: Path,
        *,
        size: int | None,
        progress: bool,
        chunk_bytes: int = CHUNK_BYTES,
        timeout: tuple[float, float] = TIMEOUT_S,
    ) -> None:
        self.part = part
        self.size = size
        self.progress = progress
        self.chunk_bytes = chunk_bytes
        self.timeout = timeout
        self.attempts = 0  # calls that tried to download, for the final error message
        # Of the last complete file handed to pooch: its sha256 and the byte it resumed from.
        self.sha256: str | None = None
        self.resumed_from = 0

    def __call__(
        self, url: str, output_file: str | None, pooch: Any, check_only: bool = False
    ) -> bool | None:
        if check_only:
            with requests.head(url, allow_redirects=True, timeout=self.timeout) as response:
                return response.ok
        assert output_file is not None
        self.attempts += 1
        if self.sha256 is not None:
            # pooch calls again after a complete download only when its hash did not match.
            # The same bytes again would not match either; but a file resumed from a part
            # left by an earlier run may mix two versions of the file, so that one case gets
            # a fresh download (pooch deleted the part with its temporary file).
            if self.resumed_from == 0:
                raise _ChecksumMismatch
            self.sha256 = None
        self._download(url)
        # pooch hashes output_file and renames it into place, or deletes it on a mismatch.
        os.replace(self.part, output_file)
        return None

    def _download(self, url: str) -> None:
        offset = self.part.stat().st_size if self.part.exists() else 0
        if self.size is not None and offset > self.size:
            self.part.unlink()  # longer than the whole file: not a prefix of it
            offset = 0
        if self.size is not None and 0 < offset == self.size:
            self._finish(url, offset, received=offset)  # complete already, from a past run
            return
        with self._get(url, offset) as response:
            restart = response.status_code == 416 and offset > 0
            if not restart:
                offset, received, total = self._save(url, response, offset)
        if restart:
            # 416: the part is as long as the server's file or longer, so the file changed
            # upstream since the part was written. Start over from byte 0.
            self.part.unlink()
            with self._get(url, 0) as response:
                offset, received, total = self._save(url, response, 0)
        if total is not None and received < total:
            # A dropped connection: a requests exception, so pooch retries from the part.
            raise _Interrupted(f"connection closed after {received} of {total} bytes")
        self._finish(url, offset, received)

    def _get(self, url: str, offset: int) -> requests.Response:
        # identity: byte counts and Range offsets must refer to the file, not a gzip of it.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        return requests.get(url, headers=headers, stream=True, timeout=self.timeout)

    def _save(
        self, url: str, response: requests.Response, offset: int
    ) -> tuple[int, int, int | None]:
        """Append (206) or write (200) the body to the part file.

        Returns (offset the body started at, part size after, file size announced or None).
        """
        code = response.status_code
        if 400 <= code < 500 and code not in _RETRYABLE_CLIENT_ERRORS:
            raise DownloadError(
                f"{url}: HTTP {code} {response.reason}. "
                "Check the URL (or use another mirror); retrying will not help."
            )
        response.raise_for_status()  # 5xx, 408, 429: requests.HTTPError, which pooch retries
        if code == 206:
            start, total = _parse_content_range(url, response.headers.get("Content-Range"))
            if start != offset:
                self.part.unlink()
                raise _Interrupted(
                    f"asked for bytes from {offset}, the server sent them from {start}; "
                    "the partial file was deleted to start over"
                )
        else:  # 200: the server ignored Range (or none was sent); start from byte 0
            offset = 0
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
        if self.size is not None and total is not None and total != self.size:
            self._size_mismatch(url, total, "the server announces")  # before downloading it

        # Without this, urllib3 drops the bytes of a body that ends short; counted below.
        response.raw.enforce_content_length = False
        with (
            open(self.part, "ab" if offset else "wb") as out,
            tqdm(
                total=total if total is not None else self.size,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=self.part.name.removesuffix(".part"),
                disable=not self.progress,
            ) as bar,
        ):
            for chunk in response.iter_content(chunk_size=self.chunk_bytes):
                out.write(chunk)
                bar.update(len(chunk))
            return offset, out.tell(), total

    def _finish(self, url: str, offset: int, received: int) -> None:
        if self.size is not None and received != self.size:
            self._size_mismatch(url, received, "received")
        # Hashed here rather than by pooch alone: the mismatch message and sha256=None need it.
        self.sha256 = _file_sha256(self.part)
        self.resumed_from = offset

    def _size_mismatch(self, url: str, actual: int, what: str) -> None:
        self.part.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: expected {self.size} bytes, {what} {actual} bytes; nothing was kept. "
            "Check the URL (or mirror) and the recorded size."
        )


def cache_dir(value: str | None) -> Path:
    """Where downloaded archives and weights are kept: ``value``, else ``$AUDIOCLF_CACHE``, else
    ``~/.cache/audioclf``. Outside the repository, so experiments and clones share it."""
    chosen = value or os.environ.get("AUDIOCLF_CACHE") or "~/.cache/audioclf"
    path = Path(os.path.expanduser(chosen))
    path = path if path.is_absolute() else repo_root() / path
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch(
    url: str,
    dest_dir: str | Path,
    *,
    sha256: str | None,
    size: int | None,
    filename: str | None = None,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest_dir/filename``, verify it, and return its path.

    ``filename`` defaults to the last part of the URL's path. ``sha256`` (hex, optionally
    prefixed ``sha256:``) and ``size`` (bytes) are the recorded checksum and length; a file
    already at the destination with that sha256 is returned without any network access.
    ``sha256=None`` means "not recorded": the file is downloaded unverified (and, if present,
    returned as is) and its computed sha256 is printed so that it can be recorded.

    ``retries`` is the number of attempts in all. Between attempts, and between runs, the
    bytes received so far stay in ``dest_dir/<filename>.part`` and the next attempt asks
    the server for the rest only. Raises DownloadError (naming the URL) when the checksum
    or size do not match (nothing is left in ``dest_dir``), when the server refuses the
    file, or when every attempt failed (the ``.part`` file is kept: run again to resume).
    """
    if retries < 1:
        raise ValueError(f"retries={retries}: need at least 1 attempt")
    if size is not None and size < 0:
        raise ValueError(f"size={size}: a file size in bytes is 0 or more (or None)")
    expected = None
    if sha256 is not None:
        match = _SHA256.fullmatch(sha256.strip())
        if match is None:
            raise ValueError(
                f"sha256={sha256!r} for {url}: expected 64 hex digits (or None if not recorded)"
            )
        expected = match.group(1).lower()
    if filename is None:
        filename = PurePosixPath(urllib.parse.urlparse(url).path).name
    if not filename or filename in {".", ".."} or "/" in filename or "\\" in filename:
        raise ValueError(
            f"filename={filename!r} for {url}: need a plain file name; pass filename= "
            "when the URL does not end with one"
        )

    dest_dir = Path(dest_dir).resolve()
    part = dest_dir / f"{filename}.part"
    downloader = ResumableDownloader(part, size=size, progress=progress)
    # retry_if_failed counts attempts after the first. pooch waits 1 s, 2 s, ... in between.
    store = pooch.create(
        path=dest_dir,
        base_url="",
        registry={filename: expected},
        urls={filename: url},
        retry_if_failed=retries - 1,
    )
    try:
        with _quiet_pooch():
            path = Path(store.fetch(filename, downloader=downloader))
    except (ValueError, _ChecksumMismatch) as err:
        if downloader.sha256 is None:
            raise  # not a hash check: a ValueError from elsewhere, shown as it is
        part.unlink(missing_ok=True)  # pooch deleted its temporary file, which had the bytes
        raise DownloadError(
            f"{url}: sha256 mismatch: expected {expected}, got {downloader.sha256}. "
            "The downloaded file was deleted. Check that the URL (or mirror) serves the "
            "intended file, or update the recorded checksum if the file changed upstream."
        ) from err
    except requests.exceptions.RequestException as err:
        kept = (
            f"The partial file {part} ({part.stat().st_size} bytes) is kept: run again to "
            "resume the download."
            if part.exists() and part.stat().st_size
            else "Check the URL and the network connection, then run again."
        )
        raise DownloadError(
            f"{url}: download failed after {downloader.attempts} attempt(s); "
            f"last error: {err}. {kept}"
        ) from err
    if expected is None and downloader.sha256 is not None:
        print(
            f"{url}: no sha256 recorded; downloaded {path.name} ({path.stat().st_size} bytes) "
            f"has sha256 {downloader.sha256}. Record it to verify future downloads."
        )
    return path


def extract(archive: str | Path, target: str | Path, *, progress: bool = True) -> Path:
    """Unpack a .tar, .tar.gz/.tgz or .zip ``archive`` into the folder ``target``.

    ``target`` appears only when every member is out (it is built in a temporary sibling,
    then renamed; an existing ``target`` is replaced), so an interrupted extraction leaves
    neither. An archive with any member that would land outside ``target`` (absolute path,
    a ``..`` component, a path through a symlink in the archive, a symlink or hard link
    pointing outside, an absolute link) or a device or fifo member is refused as a whole
    with a DownloadError naming the member, before anything is written.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise DownloadError(f"{archive}: archive not found; download it first")
    name = archive.name.lower()
    try:
        if name.endswith((".tar", ".tar.gz", ".tgz")):
            _extract_tar(archive, target, progress)
        elif name.endswith(".zip"):
            _extract_zip(archive, target, progress)
        else:
            raise DownloadError(
                f"{archive}: unknown archive type; expected .tar, .tar.gz, .tgz or .zip"
            )
    except (tarfile.ReadError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DownloadError(
            f"{archive}: damaged or truncated archive ({err}); nothing was extracted. "
            "Delete it and download it again."
        ) from err
    return target


def _extract_tar(archive: Path, target: Path, progress: bool) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()  # reads the whole archive: a truncated one fails here
        links: set[tuple[str, ...]] = set()  # symlink members seen so far, as path parts
        for member in members:
            parts = _member_parts(archive, member.name)
            if any(parts[:i] in links for i in range(1, len(parts))):
                _refuse(archive, member.name, "its path goes through a symlink in the archive")
            if member.ischr() or member.isblk() or member.isfifo():
                _refuse(archive, member.name, "it is a device or fifo")
            if member.issym():
                _check_link(archive, member.name, member.linkname, relative_to=parts[:-1])
                links.add(parts)
            elif member.islnk():
                # Hard link targets name another member, relative to the archive's root.
                _check_link(archive, member.name, member.linkname, relative_to=())
        with atomic_dir(target) as tmp:
            bar = tqdm(total=len(members), unit="file", desc=archive.name, disable=not progress)
            try:
                # filter="data" enforces the same rules (and drops modes and owners) should
                # the checks above have missed a case.
                tar.extractall(tmp, members=_ticking(members, bar), filter="data")
            except tarfile.FilterError as err:
                member = getattr(err, "tarinfo", None)
                _refuse(archive, member.name if member else None, str(err))
            finally:
                bar.close()


def _extract_zip(archive: Path, target: Path, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        links: dict[str, str] = {}  # member name -> link target, for symlink members
        for info in infos:
            parts = _member_parts(archive, info.filename)
            mode = info.external_attr >> 16  # Unix st_mode, when made on Unix; 0 otherwise
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                _refuse(archive, info.filename, "it is a device or fifo")
            if stat.S_ISLNK(mode):
                link = zf.read(info).decode("utf-8", "surrogateescape")
                _check_link(archive, info.filename, link, relative_to=parts[:-1])
                links[info.filename] = link
        link_parts = {_member_parts(archive, n) for n in links}
        for info in infos:
            parts = _member_parts(archive, info.filename)
            if any(parts[:i] in link_parts for i in range(1, len(parts))):
                _refuse(archive, info.filename, "its path goes through a symlink in the archive")
        with atomic_dir(target) as tmp:
            for info in tqdm(infos, unit="file", desc=archive.name, disable=not progress):
                if info.filename in links:
                    # zipfile would write the link target as a file; make the symlink.
                    dest = tmp.joinpath(*_member_parts(archive, info.filename))
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.symlink_to(links[info.filename])
                else:
                    zf.extract(info, tmp)


def _parse_content_range(url: str, header: str | None) -> tuple[int, int | None]:
    """(first byte, file size or None) from ``Content-Range: bytes first-last/size``."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if match is None:
        raise _Interrupted(f"206 answer with an unreadable Content-Range {header!r}")
    size = match.group(3)
    return int(match.group(1)), None if size == "*" else int(size)


def _member_parts(archive: Path, name: str) -> tuple[str, ...]:
    """Path parts of a member name, refusing names that would leave the target."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        _refuse(archive, name, "it has an absolute path")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        _refuse(archive, name, "its path has a '..' component")
    return parts


def _check_link(archive: Path, name: str, link: str, *, relative_to: tuple[str, ...]) -> None:
    """Refuse a link whose target is absolute or resolves outside the target folder."""
    if link.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", link):
        _refuse(archive, name, f"it links to the absolute path {link!r}")
    resolved = os.path.normpath(os.path.join(*relative_to, link) if relative_to else link)
    if resolved == ".." or resolved.startswith("../"):
        _refuse(archive, name, f"it links to {link!r}, outside the target folder")


def _refuse(archive: Path, member: str | None, reason: str) -> None:
    raise DownloadError(
        f"{archive}: refusing to extract: member {member!r} would escape the target folder "
        f"or is unsafe ({reason}); nothing was extracted. Check where the archive came from."
    )


def _ticking(items: Iterable[T], bar: tqdm) -> Iterator[T]:
    """Yield items, advancing the progress bar as each is taken."""
    for item in items:
        yield item
        bar.update(1)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Show only pooch's warnings: its INFO lines repeat what the progress bar says."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
