"""Which process am I, out of how many: sharding stages under ``accelerate launch`` / ``torchrun``,
and which share of the work is mine in a job array (``--shard K/N``).

A plain ``vidcap extract`` is one process and never imports accelerate; under a launcher (which
sets ``WORLD_SIZE``) the process group comes from accelerate's ``PartialState``, so the same code
runs on CPUs (gloo) and GPUs (NCCL). The processes meet (barriers, results sent to each other) in
a gloo group of their own that waits as long as a stage's slowest share takes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from vidcap.errors import VidcapError

T = TypeVar("T")
R = TypeVar("R")

# How long a process waits for the others where they meet: the end of a stage waits for the
# slowest process's share, which on a large corpus can end hours after the fastest one (shares are
# balanced by count, not by duration). The launcher's own process group gives up much sooner (NCCL
# after 10 minutes, aborting the waiting process, all work done; gloo after 30). A process that
# dies closes its connections, and the others' wait fails at once; a machine that vanishes (power,
# network) closes nothing, and the others may wait until this runs out (or the launcher or the
# scheduler's time limit stops them).
WAIT_FOR_OTHERS = timedelta(days=7)
# How long the processes wait for each other to join when they start: a process that never gets
# there (it died while starting) costs the others this long, not WAIT_FOR_OTHERS.
_MEETING_SETUP = timedelta(minutes=30)

_meeting_group: Any = None  # the gloo group the meetings run in (current_processes makes it)
_JOINING_HINT = (
    " On several machines, gloo may have taken a network interface the others cannot reach: "
    "name the right one with GLOO_SOCKET_IFNAME (docs/scale.md)."
)


@dataclass(frozen=True)
class Processes:
    """This process's rank and the number of processes sharing the work."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list[T]) -> list[T]:
        """This process's share: every ``world_size``-th item, so shares are disjoint and balanced."""
        return items[self.rank :: self.world_size]

    def barrier(self) -> None:
        """Wait until every process reaches this point (for as long as :data:`WAIT_FOR_OTHERS`)."""
        if self.world_size > 1:
            import torch.distributed as dist

            with self._meeting("meet the others"):
                dist.barrier(group=_meetings())

    def broadcast(self, obj: T) -> T:
        """The main process's ``obj``, on every process (the others' ``obj`` is ignored)."""
        if self.world_size == 1:
            return obj
        import torch.distributed as dist

        sent = [obj]
        with self._meeting("receive the main process's result"):
            dist.broadcast_object_list(sent, src=0, group=_meetings())
        return sent[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (on every process)."""
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        with self._meeting("exchange results with the others"):
            dist.all_gather_object(gathered, obj, group=_meetings())
        return gathered

    def from_main(self, compute: Callable[[], T], what: str) -> T:
        """``compute()`` run by the main process alone, its result on every process: for what all
        of them would otherwise read at once (a large index on a shared disk). An error there is
        raised on the main process, and the others stop with a sentence saying it could not
        ``what`` (``"read runs/frames's index"``) instead of waiting for a result that never comes.
        """
        if self.world_size == 1:
            return compute()
        outcome: tuple[bool, Any] | None = None
        failure: Exception | None = None
        if self.is_main:
            try:
                outcome = (True, compute())
            except Exception as error:
                failure, outcome = error, (False, str(error))
        worked, value = self.broadcast(outcome)  # type: ignore[misc]
        if failure is not None:
            raise failure
        if not worked:
            raise VidcapError(
                f"the main process could not {what} ({value}); its own message says why."
            )
        return value

    def share_out(self, items: list[T], work: Callable[[list[T]], list[R]]) -> list[R]:
        """``work`` on this process's share of ``items`` (every N-th, :meth:`shard`), which
        returns a result per item; every item's result, in the order of ``items``, on every
        process. The results must pickle."""
        share = self.shard(items)  # all of them in a single process
        mine = work(share)
        if len(mine) != len(share):
            raise ValueError(f"work gave {len(mine)} results for {len(share)} items")
        results: list[Any] = [None] * len(items)
        for rank, theirs in enumerate(self.gather(mine)):
            results[rank :: self.world_size] = theirs
        return results

    @contextlib.contextmanager
    def _meeting(self, what: str, hint: str = "") -> Iterator[None]:
        """A meeting that fails because a process has gone (its connections closed: it stopped
        on an error of its own, or was killed) says so in a sentence, not as gloo's traceback
        and never as "a bug": the process that stopped says why. ``hint`` ends the sentence."""
        try:
            yield
        except RuntimeError as error:  # gloo's transport errors (DistError is one)
            raise VidcapError(
                f"process {self.rank} of {self.world_size} could not {what}: another process of "
                f"this run has stopped (its own message says why) or cannot be reached "
                f"({_first_sentence(error)}).{hint}"
            ) from error


def _first_sentence(error: Exception) -> str:
    """``[.../pair.cc:553] Connection closed by peer [10.0.0.2]:2259. This is typically ...`` →
    ``Connection closed by peer [10.0.0.2]:2259``."""
    text = str(error).strip()
    if text.startswith("[") and "] " in text:  # gloo's source location
        text = text.split("] ", 1)[1]
    return text.split(". ", 1)[0].rstrip(".")[:200]


def _meetings() -> Any:
    """The gloo group the processes meet in: every operation in it waits up to
    :data:`WAIT_FOR_OTHERS` for the last process to arrive."""
    if _meeting_group is None:  # a library's use after leave_process_group
        raise VidcapError("this process has left its process group: it can meet no other.")
    return _meeting_group


@dataclass(frozen=True)
class Shard:
    """Share ``index`` of ``count`` of a list, for independent jobs (``--shard K/N``: a SLURM
    array task each) that have nothing in common but the list: items K, K+N, K+2N, ..."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: K must be in 0..N-1.")

    def take(self, items: list[T]) -> list[T]:
        """This shard's items, in their order."""
        return items[self.index :: self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def current_processes() -> Processes:
    """The process group this program was launched in (a single process when not launched)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    import torch
    from accelerate import PartialState

    # Without a GPU, accelerate only forms a CPU (gloo) process group when asked to.
    state = PartialState(cpu=not torch.cuda.is_available())
    processes = Processes(rank=state.process_index, world_size=state.num_processes)
    global _meeting_group
    if _meeting_group is None:
        import torch.distributed as dist

        # The processes meet in a gloo group of their own, on the CPU (under NCCL these small
        # Python objects stay off the GPUs), made now, as every process starts the command.
        # Making a group waits for every process as long as the group's own timeout: a first,
        # short-lived group shows that all of them are here within _MEETING_SETUP, so that making
        # the long-waiting one right after cannot wait for a process that died while starting.
        with processes._meeting("join the others", _JOINING_HINT):
            joined = dist.new_group(backend="gloo", timeout=_MEETING_SETUP)
            dist.destroy_process_group(joined)
            _meeting_group = dist.new_group(backend="gloo", timeout=WAIT_FOR_OTHERS)
    return processes


def leave_process_group() -> None:
    """Tear the process group down, once a command has run to its end on this process: left to
    the interpreter's exit, a process whose peer had already gone was now and then aborted by gloo
    ("terminate called without an active exception"). Not after a crash: with NCCL, tearing down
    waits for the others' collectives, which a failed process would never join."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch.distributed as dist

    global _meeting_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()  # every group, the meetings' too
    _meeting_group = None


# Where a container's CPU quota is (cgroup v2, then v1): Docker's --cpus and Kubernetes' CPU
# limits are quotas, which the affinity mask does not show.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cpu_quota() -> float | None:
    """The CPUs a container's CPU quota allows (e.g. 2.5), or None when there is none."""
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(CGROUP_V1_QUOTA.read_text())
        period_us = int(CGROUP_V1_PERIOD.read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def cores_per_process() -> int:
    """The CPU cores this process may use, divided among the processes a launcher started on
    this machine (``LOCAL_WORLD_SIZE``, set by ``torchrun`` and ``accelerate launch``); at least 1.

    The cores are the affinity mask (what SLURM's ``--cpus-per-task`` or ``taskset`` grant), and
    no more than a container's CPU quota (``docker --cpus``, a Kubernetes limit), whole CPUs.
    """
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # macOS, Windows: no affinity to read
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, int(quota)))
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, cores // local)
