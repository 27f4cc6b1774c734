"""The training loop's batch prefetcher: order, gating, errors and shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from vidcap.training.loop import _Prefetcher


def _counting(n: int, drawn: list[int]) -> Iterator[int]:
    for i in range(n):
        drawn.append(i)
        yield i


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_batches_come_in_order_and_end() -> None:
    prefetch = _Prefetcher(iter(range(5)))
    got = []
    for batch in prefetch:
        got.append(batch)
        prefetch.draw_next()
    prefetch.close()
    assert got == [0, 1, 2, 3, 4]


def test_draws_one_batch_ahead_per_permit() -> None:
    drawn: list[int] = []
    prefetch = _Prefetcher(_counting(100, drawn))
    assert next(prefetch) == 0
    time.sleep(0.3)  # no permit: the thread must not draw ahead on its own
    assert drawn == [0]
    prefetch.draw_next()
    _wait_for(lambda: drawn == [0, 1])
    assert next(prefetch) == 1
    prefetch.close()
    assert drawn == [0, 1]


def test_errors_in_the_thread_reach_the_consumer() -> None:
    def broken() -> Iterator[int]:
        yield 0
        raise ValueError("bad example")

    prefetch = _Prefetcher(broken())
    assert next(prefetch) == 0
    prefetch.draw_next()
    with pytest.raises(ValueError, match="bad example"):
        next(prefetch)
    prefetch.close()


def test_close_stops_the_thread_and_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    prefetch = _Prefetcher(endless())
    next(prefetch)
    prefetch.draw_next()
    prefetch.close()
    assert not any(t.name == "vidcap-prefetch" and t.is_alive() for t in threading.enumerate())
    assert closed.is_set()
