"""One thread runs the model; requests wait in a bounded queue.

The model is loaded once and used by one request at a time (one model running two generations
at once is not something torch or transformers promise to support, and on
a CPU one request already uses every core). A request that finds ``size`` others waiting is
refused at once (503 with ``Retry-After``) rather than left to time out in a growing line.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from vidcap.serve.errors import RequestError

T = TypeVar("T")


class ModelWorker:
    """A daemon thread that runs submitted jobs in order, with at most ``size`` waiting."""

    def __init__(self, size: int, retry_after_s: int = 5) -> None:
        self.size = size
        self.retry_after_s = retry_after_s
        self._jobs: queue.Queue[tuple[Future[Any], Callable[[], Any]] | None] = queue.Queue(size)
        self._thread = threading.Thread(target=self._run, name="vidcap-model", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Jobs queued and not started."""
        return self._jobs.qsize()

    def check_room(self) -> None:
        """Refuse (503) now, before an upload is read, when the queue is already full."""
        if self._jobs.full():
            raise self._busy()

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Queue ``job``; its future holds the result or the exception it raised.

        Raises:
            RequestError: 503 when ``size`` jobs are already waiting.
        """
        future: Future[T] = Future()
        try:
            self._jobs.put_nowait((future, job))
        except queue.Full:
            raise self._busy() from None
        return future

    def close(self) -> None:
        """Finish the jobs queued, then stop the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _busy(self) -> RequestError:
        return RequestError(
            503,
            f"the server is busy ({self.size} requests are waiting); retry in a few seconds.",
            {"Retry-After": str(self.retry_after_s)},
        )

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue  # its client went away while it waited
            try:
                future.set_result(job())
            except BaseException as error:  # handed to the request that asked
                future.set_exception(error)
