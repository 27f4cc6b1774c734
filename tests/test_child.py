"""A decode child's messages to its parent (vidcap.video.child): signs of life at most every
ALIVE_EVERY_S, none outside a child, and a child whose parent is gone exits quietly."""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import Connection

import pytest

from vidcap.video import child
from videos import fork_only


def _received(conn: Connection) -> list[object]:
    out = []
    while conn.poll(0.05):
        out.append(conn.recv())
    return out


def test_signs_of_life_are_throttled_and_any_message_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours, parent = mp.Pipe()
    monkeypatch.setattr(child, "_conn", ours)
    monkeypatch.setattr(child, "_last_sent", 0.0)
    child.sign_of_life()
    child.sign_of_life()  # within ALIVE_EVERY_S of the first: nothing
    assert _received(parent) == [("event", ("alive", None))]
    child.send_event("item", 7)
    child.sign_of_life()  # the item was news enough
    assert _received(parent) == [("event", ("item", 7))]
    time.sleep(child.ALIVE_EVERY_S + 0.05)
    child.sign_of_life()
    assert _received(parent) == [("event", ("alive", None))]


def test_outside_a_child_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(child, "_conn", None)
    child.sign_of_life()  # decoding in the parent's own process: no pipe, no error
    child.send_event("item", 1)


def _send_to_nobody(conn: Connection) -> None:
    child.connect(conn)
    child.send_event("item", 1)  # the parent's end is closed: the child exits here, status 0
    raise SystemExit(3)


@fork_only
def test_a_child_whose_parent_is_gone_exits_quietly() -> None:
    """Not an error the decoding code would take for a failing decoder (and try the next one)."""
    ours, theirs = mp.Pipe()
    theirs.close()  # before the fork: no process holds the other end
    process = mp.get_context("fork").Process(target=_send_to_nobody, args=(ours,))
    process.start()
    process.join(30)
    assert process.exitcode == 0
