"""parallel.thread_map: results in order, items consumed as they go, one thread = this one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from audioclf.parallel import thread_map


def test_thread_map_keeps_the_order_whatever_the_threads() -> None:
    rng = np.random.default_rng(0)
    delays = rng.uniform(0, 0.002, 40)  # s: later items often finish first

    def work(i: int) -> int:
        time.sleep(delays[i])
        return i * i

    for threads in (1, 2, 5):
        assert list(thread_map(work, range(40), threads)) == [i * i for i in range(40)]


def test_thread_map_holds_at_most_twice_the_threads_in_flight() -> None:
    taken = []

    def items() -> Iterator[int]:
        for i in range(100):
            taken.append(i)
            yield i

    results = thread_map(lambda i: i, items(), 2)
    assert next(results) == 0
    # One result out: at most 2 x 2 submitted beyond it (+1 just taken), not the 100.
    assert len(taken) <= 2 * 2 + 2
    assert list(results) == list(range(1, 100))


def test_one_thread_runs_in_the_calling_thread() -> None:
    me = threading.get_ident()
    assert set(thread_map(lambda _: threading.get_ident(), range(5), 1)) == {me}
    arrays = list(thread_map(np.sqrt, [np.full(3, 4.0, dtype=np.float32)] * 3, 2))
    assert all(a.dtype == np.float32 and a.shape == (3,) for a in arrays)
