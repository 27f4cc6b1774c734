"""A decode child's side of the pipe to its parent: events sent while a call runs.

:class:`~vidcap.video.DecodeWorker` connects its child here (:func:`connect`). Outside a child
every function does nothing, so decoding code calls them unconditionally.

The parent's time limit is on the child's silence, and every event restarts it. Decoding code
calls :func:`sign_of_life` for each frame it gets from a decoder: a chunk of frames that takes
longer than the limit in all (a 4K source with long groups of pictures read at a low frame rate,
each frame a seek) is still never silent for long, while a decoder stuck inside one call sends
nothing and is stopped.
"""

from __future__ import annotations

import threading
import time
from multiprocessing.connection import Connection
from typing import Any

ALIVE_EVERY_S = 0.2
"""The least time between two :func:`sign_of_life` events: well under any sensible time limit,
and a few bytes a fifth of a second when nothing else is sent."""

_conn: Connection | None = None
_lock = threading.Lock()  # a clip step's thread and the decoding thread may both send
_last_sent = 0.0


def connect(conn: Connection) -> None:
    """In a worker child: send events to the parent over ``conn``."""
    global _conn
    _conn = conn


def send_event(kind: str, value: Any) -> None:
    """Tell the parent ``(kind, value)`` (nothing outside a worker child)."""
    global _last_sent
    if _conn is None:
        return
    with _lock:
        _conn.send(("event", (kind, value)))
        _last_sent = time.monotonic()


def sign_of_life() -> None:
    """An ``alive`` event, unless something was sent in the last :data:`ALIVE_EVERY_S`."""
    if _conn is not None and time.monotonic() - _last_sent >= ALIVE_EVERY_S:
        send_event("alive", None)
