"""A real HTTP server on 127.0.0.1 for download tests: no mocks, no network beyond loopback.

Serves the files of one folder, answers ``Range: bytes=N-`` with 206 like a real mirror,
and can misbehave on request: cut a path's transfer after K bytes once (the full
Content-Length is announced, K bytes are sent, then the connection is closed) or ignore Range
headers (plain 200, as some servers do). Every request's path and Range header is recorded,
so a test can check what the client asked for.

    with LoopbackServer(folder) as server:
        server.cut_after("data.bin", 1000)
        fetch(server.url("data.bin"), ...)
        assert server.requests[1].range == "bytes=1000-"
"""

from __future__ import annotations

import http.server
import re
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass(frozen=True)
class Request:
    """One request as the server saw it: method, path (no leading slash), Range header."""

    method: str
    path: str
    range: str | None


class LoopbackServer:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) from a daemon thread."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.requests: list[Request] = []
        self.ignore_range = False  # True: answer every GET with 200 and the whole file
        self._cuts: dict[str, int] = {}  # path -> bytes to send before closing, used once
        self._lock = threading.Lock()  # the handler threads share requests and _cuts
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LoopbackServer is not running: use it as a context manager")
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{urllib.parse.quote(path)}"

    def cut_after(self, path: str, nbytes: int) -> None:
        """Close the connection after ``nbytes`` of the body on the next GET of ``path``."""
        with self._lock:
            self._cuts[path] = nbytes

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_cut(self, path: str) -> int | None:
        with self._lock:
            return self._cuts.pop(path, None)

    def __enter__(self) -> LoopbackServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True  # a stuck handler never blocks the test's exit
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None


class _Handler(http.server.BaseHTTPRequestHandler):
    server_state: LoopbackServer  # set on the subclass made per server
    protocol_version = "HTTP/1.1"  # keep-alive, Content-Length framing, like real mirrors

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: tests read server_state.requests instead

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        state = self.server_state
        path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
        range_header = self.headers.get("Range")
        state._record(Request(self.command, path, range_header))

        file = (state.root / path).resolve()
        if not path or state.root.resolve() not in file.parents or not file.is_file():
            self._send_empty(404)
            return
        data = file.read_bytes()
        total = len(data)

        start = 0
        status = 200
        match = _RANGE.fullmatch(range_header or "")
        if match and not state.ignore_range:
            start = int(match.group(1))
            if start >= total:
                self._send_empty(416, {"Content-Range": f"bytes */{total}"})
                return
            status = 206
        payload = data[start:]

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        cut = state._take_cut(path) if body else None
        if cut is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not body:
            return
        # A cut announces the full length but sends only `cut` bytes, then the server closes
        # the socket: the client sees a body that ends short, as on a dropped connection.
        try:
            self.wfile.write(payload if cut is None else payload[:cut])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up first (e.g. on a size mismatch)

    def _send_empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()
