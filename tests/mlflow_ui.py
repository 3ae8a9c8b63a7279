"""Test support: the real MLflow UI over a local store, looked at in headless Chromium.

`serve` starts `mlflow ui` on a free port and stops it again; `show_experiment` opens an
experiment's runs page the way a person would, makes the metric columns and the experiment
description visible, takes a screenshot and returns the page's visible text.

What MLflow 3.17's UI needs (found by looking at it):
- the runs page is `#/experiments/<id>/runs`, a table (ag-grid) that shows no metric columns by
  default; a metric is shown by ticking it under "Columns" (a tree of Attributes / Metrics /
  Parameters / Tags with a "Search columns" box). The choice lives in the browser's local
  storage, so a fresh browser always starts from the default columns.
- metric cells show the logged value unrounded (0.8917 stays "0.8917").
- the experiment description (tag `mlflow.note.content`, Markdown) is rendered as HTML in a
  panel above the runs table, collapsed to its first line until its expand button is clicked.
- an "MLflow Assistant" side panel opens by default and takes a third of the width; it is
  closed so that the table has room.

Only the Python standard library is imported here; playwright is imported when it is used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
# No network here: without these Chromium waits on refused connections (updates, sync, QUIC).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 90.0  # `mlflow ui` takes 10-30 s to answer on a busy 2-core machine
PAGE_TIMEOUT_MS = 90_000  # the first load of the UI's JavaScript is slow on the same machine


def browser_available() -> bool:
    """Whether a headless-browser check can run: Debian's chromium and playwright installed."""
    return CHROMIUM.is_file() and importlib.util.find_spec("playwright") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Stop the server and the workers it started (they share its process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@contextlib.contextmanager
def serve(store_dir: Path) -> Iterator[str]:
    """Run `mlflow ui` over `<store_dir>/mlflow.db` and `<store_dir>/mlartifacts`; yield its URL.

    Raises RuntimeError with the tail of the server's stderr if it exits or does not answer
    HTTP within START_TIMEOUT_S.
    """
    store_dir = Path(store_dir).resolve()
    db = store_dir / "mlflow.db"
    if not db.is_file():
        raise FileNotFoundError(f"no MLflow store at {db}: log a run there first")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(mlflow_bin),
        "ui",
        "--backend-store-uri",
        f"sqlite:///{db}",
        "--default-artifact-root",
        str(store_dir / "mlartifacts"),
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job runner processes
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    # A file, not a pipe: nobody reads the server's output while it runs, and a full pipe
    # would block it.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            wait_until_up(proc, base_url, log)
            yield base_url
        finally:
            stop(proc)


def wait_until_up(proc: subprocess.Popen, base_url: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"`mlflow ui` exited with {proc.returncode} before answering on {base_url}:\n"
                + tail(log)
            )
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(
        f"`mlflow ui` did not answer on {base_url} within {START_TIMEOUT_S:.0f} s:\n" + tail(log)
    )


def tail(log: IO[bytes], chars: int = 4000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-chars:]


def experiment_id(base_url: str, experiment_name: str) -> str:
    """The experiment's id, from the server's REST API."""
    query = urllib.parse.urlencode({"experiment_name": experiment_name})
    url = f"{base_url}/api/2.0/mlflow/experiments/get-by-name?{query}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.load(r)["experiment"]["experiment_id"]
    except urllib.error.HTTPError as e:
        raise LookupError(
            f"no experiment {experiment_name!r} on {base_url} ({e.code}): "
            "check the name, or log a run to it first"
        ) from e


@contextlib.contextmanager
def opened(url: str, viewport: tuple[int, int] = (1920, 1080)) -> Iterator[Page]:
    """Headless Chromium on ``url`` (``viewport``: width, height in CSS pixels), closed on the
    way out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            width, height = viewport
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(url, wait_until="domcontentloaded")
            yield page
        finally:
            browser.close()


def close_assistant(page: Page) -> None:
    """Close MLflow's assistant panel, which covers part of the page, when it is open."""
    assistant = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if assistant.count():
        assistant.first.click()


def snapshot(page: Page, screenshot: Path, full_page: bool = True) -> str:
    """Save a PNG of the page (or of the viewport only) to ``screenshot``; return its text."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=full_page)
    return page.inner_text("body")


def show_experiment(
    base_url: str,
    experiment_name: str,
    screenshot: Path,
    metrics: Sequence[str] = ("test_accuracy",),
) -> str:
    """Open the experiment's runs page, show `metrics` and the description; return the text.

    Waits until the runs table has rows, closes the assistant panel, expands the description,
    ticks each metric under "Columns" (unless already shown) and waits for its column header,
    then saves a full-page PNG to `screenshot`.
    """
    url = f"{base_url}/#/experiments/{experiment_id(base_url, experiment_name)}/runs"
    with opened(url) as page:
        show_runs_table(page, metrics)
        return snapshot(page, screenshot)


def show_runs_table(page: Page, metrics: Sequence[str], expand_description: bool = True) -> None:
    """On an open runs page: wait for rows, close the assistant, expand the description (if
    any, and if asked) and show each of `metrics` as a column."""
    page.locator(".ag-center-cols-container .ag-row").first.wait_for()
    close_assistant(page)
    expand = page.locator('[data-component-id="mlflow.experiment.metadata_editor.expand_button"]')
    if expand_description and expand.count():  # only there when there is a description
        expand.first.click()
    for metric in metrics:
        show_column(page, metric)


def show_column(page: Page, metric: str) -> None:
    """Tick `metric` in the runs table's column selector and wait for its header."""
    header = page.locator(f'.ag-header-cell[col-id="metrics.`{metric}`"]')
    if header.count():
        return
    page.get_by_test_id("column-selection-dropdown").filter(has_text="Columns").click()
    page.get_by_placeholder("Search columns").fill(metric)
    # While searching, the tree highlights the match inside the title and drops its `title`
    # attribute, so the node is found by its title's text.
    title = page.locator('[class*="tree-title"]', has_text=re.compile(f"^{re.escape(metric)}$"))
    node = page.locator('[class*="tree-treenode"]', has=title)
    node.locator('[class*="tree-checkbox"]').first.click()
    page.keyboard.press("Escape")
    header.wait_for()


def show_page(base_url: str, route: str, wait_for: Sequence[str], screenshot: Path) -> str:
    """Open ``#/<route>`` (e.g. ``experiments/1/runs/<run id>``, ``models/<name>``), wait until
    each text in ``wait_for`` is on the page, save a full-page PNG; return the page's text."""
    with opened(f"{base_url}/#/{route}") as page:
        for text in wait_for:
            page.get_by_text(text).first.wait_for()
        close_assistant(page)
        return snapshot(page, screenshot)
