"""Ordered parallel maps over the cores: worker processes (``ordered_map``) for work that
holds the GIL, threads (``thread_map``) for work that mostly runs in C and releases it."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from tqdm import tqdm

A = TypeVar("A")
R = TypeVar("R")


def n_workers() -> int:
    """CPU cores this process may use (respects taskset/cgroup affinity)."""
    return max(1, len(os.sched_getaffinity(0)))


def ordered_map(
    fn: Callable[[A], R],
    items: list[A],
    desc: str | None,
    workers: int | None = None,
    min_items: int = 64,
    unit: str = "clip",
) -> Iterator[R]:
    """``map(fn, items)`` in order, in ``workers`` processes; ``fn`` must be picklable.

    Results come back in input order, so output never depends on the number of workers.
    Fewer than ``min_items`` items run in this process: starting workers (each imports the
    modules ``fn`` needs) costs more than a small job. ``desc=None``: no progress bar.
    """
    workers = n_workers() if workers is None else workers
    bar = tqdm(
        total=len(items), desc=desc, unit=unit, mininterval=1.0, disable=desc is None or None
    )
    chunks = max(1, min(64, len(items) // (workers * 8) or 1))
    if workers == 1 or len(items) < min_items:
        results: Iterable[R] = map(fn, items)
        for r in results:
            bar.update()
            yield r
    else:
        # forkserver/spawn avoid forking a process that may hold TensorFlow threads.
        with mp.get_context("forkserver").Pool(workers) as pool:
            for r in pool.imap(fn, items, chunksize=chunks):
                bar.update()
                yield r
    bar.close()


def thread_map(fn: Callable[[A], R], items: Iterable[A], threads: int | None = None) -> Iterator[R]:
    """``map(fn, items)`` in order, in ``threads`` threads (default: the cores this process
    may use); one thread runs ``fn`` in this one.

    For work that spends its time in C code that releases the GIL (NumPy, SciPy's FFT,
    libsoxr, file reads): nothing to start or import, nothing copied between processes. At
    most 2 x threads items are in flight and ``items`` is consumed as they go, so memory
    stays bounded with an endless iterator.
    """
    threads = n_workers() if threads is None else threads
    if threads == 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads) as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
