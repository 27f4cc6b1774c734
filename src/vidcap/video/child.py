"""A decode child's side of the pipe to its parent: events sent while a call runs, and its reply.

:class:`~vidcap.video.DecodeWorker` connects its child here (:func:`connect`). Outside a child
:func:`send_event` and :func:`sign_of_life` do nothing, so decoding code calls them
unconditionally.

The parent's time limit is on the child's silence, and every event restarts it. Decoding code
calls :func:`sign_of_life` for each frame a decoder gives: a chunk of frames that takes longer
than the limit in all (a 4K source read at a low frame rate) is still never silent for long,
while a decoder stuck inside one call sends nothing and is stopped.
"""

from __future__ import annotations

import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

ALIVE_EVERY_S = 0.2
"""The least time between two :func:`sign_of_life` events: well under any sensible time limit,
and a few bytes a fifth of a second when nothing else is sent."""

_conn: Connection | None = None
# Every message goes through one lock: a large message is written in pieces, and two threads
# sending at once (none does today) would interleave them.
_lock = threading.Lock()
_last_sent = 0.0


def connect(conn: Connection) -> None:
    """In a worker child: send events (and replies) to the parent over ``conn``."""
    global _conn
    _conn = conn


def send(message: Any) -> None:
    """Send ``message`` to the parent (the child's reply to a call, or an event).

    A pipe the parent has closed means the parent is gone (it kills a child before closing its
    end): the child exits at once. Left to the decoding code, the error would pass for a
    decoder's failure and start the next backend for nobody.
    """
    global _last_sent
    assert _conn is not None, "not in a decode worker child"
    with _lock:
        try:
            _conn.send(message)
        except (BrokenPipeError, ConnectionResetError):
            os._exit(0)
        _last_sent = time.monotonic()


def send_event(kind: str, value: Any) -> None:
    """Tell the parent ``(kind, value)`` (nothing outside a worker child)."""
    if _conn is not None:
        send(("event", (kind, value)))


def sign_of_life() -> None:
    """An ``alive`` event, unless something was sent in the last :data:`ALIVE_EVERY_S`."""
    if _conn is not None and time.monotonic() - _last_sent >= ALIVE_EVERY_S:
        send(("event", ("alive", None)))
