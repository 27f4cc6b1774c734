"""Processes under a launcher meet (barrier, broadcast, gather) in a group of their own that waits
as long as a stage's slowest share takes, not the launcher's group's timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stage_helpers import free_port, two_processes

# The launcher's group gives up after 1 s (NCCL's default is 10 minutes, gloo's 30), and so does
# the processes' joining (30 minutes in vidcap). At each meeting one process comes 2.5 s after
# the others, as a process with a slower share reaches the end of a stage long after them: the
# main process (as when it reads the index for the others), then the last, then the middle one.
LATE_MEETINGS = """
import time
from datetime import timedelta

import torch.distributed as dist

dist.init_process_group("gloo", timeout=timedelta(seconds=1))
from vidcap import distributed

distributed._MEETING_SETUP = timedelta(seconds=1)
processes = distributed.current_processes()


def late(rank: int) -> None:
    if processes.rank == rank:
        time.sleep(2.5)


late(0)
processes.barrier()
late(2)
sent = processes.broadcast(f"from {processes.rank}")
late(1)
gathered = processes.gather(processes.rank * 10)
found = processes.from_main(lambda: late(0) or "read by the main process", "read an index")
print(f"rank {processes.rank}: {sent}, {gathered}, {found}", flush=True)
distributed.leave_process_group()
"""


def test_a_process_waits_for_a_late_one_past_the_launchers_timeout(tmp_path: Path) -> None:
    script = tmp_path / "late.py"
    script.write_text(LATE_MEETINGS)
    result = two_processes(script, timeout=120, processes=3)
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in range(3):
        said = f"rank {rank}: from 0, [0, 10, 20], read by the main process"
        assert said in result.stdout, result.stdout


# Process 1 dies, with no launcher to stop process 0: before the first meeting (after both made
# the meetings' group), or before it joined the group at all (then process 0's wait for it ends
# after the group's set-up time, shortened here from 30 minutes to 2 s).
DEAD_PEER = """
import os
import sys
import time
from datetime import timedelta

import torch.distributed as dist

from vidcap import distributed
from vidcap.errors import VidcapError

dist.init_process_group("gloo")
rank = dist.get_rank()
distributed._MEETING_SETUP = timedelta(seconds=2)
started = time.monotonic()
try:
    if sys.argv[1] == "before joining" and rank == 1:
        os._exit(3)
    processes = distributed.current_processes()
    if rank == 1:
        os._exit(3)
    started = time.monotonic()
    processes.barrier()
except VidcapError as error:
    print(f"the wait failed after {time.monotonic() - started:.1f} s", flush=True)
    print(error, flush=True)
"""


@pytest.mark.parametrize("when", ["before the first meeting", "before joining"])
def test_a_dead_peer_ends_the_wait_with_a_sentence(tmp_path: Path, when: str) -> None:
    """The long wait is no hang: a peer's closed connection fails the meeting straight away (a
    peer that never joined: after the group's set-up time), and the process left says what
    happened in a sentence (under the CLI: not "a bug in vidcap")."""
    script = tmp_path / "dead.py"
    script.write_text(DEAD_PEER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2"}  # fmt: skip
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script), when],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [rank.communicate(timeout=120) for rank in ranks]
    assert ranks[1].returncode == 3
    timing, sentence = outputs[0][0].strip().splitlines()
    assert timing.startswith("the wait failed after "), outputs[0][1][-3000:]
    assert float(timing.split()[-2]) < (30 if when == "before joining" else 5)
    what = "join the others" if when == "before joining" else "meet the others"
    assert sentence.startswith(
        f"process 0 of 2 could not {what}: another process of this run has stopped (its "
        "own message says why) or cannot be reached ("
    ), sentence
    assert "pair.cc" not in sentence and "GLHF" not in sentence
    assert ("GLOO_SOCKET_IFNAME" in sentence) == (when == "before joining")


def test_share_out_gives_every_process_every_result_in_order() -> None:
    """Each process works on every N-th item only; all of them get every result, in order.
    Three processes, here as three threads exchanging through a barrier."""
    import threading

    from vidcap.distributed import Processes

    barrier, slots = threading.Barrier(3), [None, None, None]

    class Rank(Processes):
        def gather(self, obj):
            slots[self.rank] = obj
            barrier.wait()
            got = list(slots)
            barrier.wait()
            return got

    items = [f"segment {i}" for i in range(8)]
    seen: dict[int, list[str]] = {}
    results: dict[int, list[str]] = {}

    def run(rank: int) -> None:
        def work(share: list[str]) -> list[str]:
            seen[rank] = share
            return [item.upper() for item in share]

        results[rank] = Rank(rank, 3).share_out(items, work)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert seen == {0: items[0::3], 1: items[1::3], 2: items[2::3]}
    assert results == {r: [item.upper() for item in items] for r in range(3)}
    assert Processes().share_out(items, lambda share: share[::-1]) == items[::-1]
