"""The state of ``--shard K/N`` jobs filling one stage folder together.

A job array (SLURM ``--array``) runs N independent jobs: no process group, started at any time, on
any machine that sees the folder. Job K takes items K, K+N, K+2N, ... of the stage's input list
and appends its records to its own ``index.shardKofN.jsonl``. Beside it, ``.vidcap-shards/KofN.json``
says which fill the job belongs to (N and the stage fingerprint: inputs and settings), where it
runs, and whether it has finished its share. That state changes only under the folder's lock,
which each job holds just for this bookkeeping, never while it works. Whichever job finds every
other shard finished merges the index and writes the manifest (:meth:`StageDir.finalize`, which
also removes the parts and this state), so the folder ends as one unsharded run would leave it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vidcap.artifacts import SHARDS, StageDir, _host, _process_alive, atomic_write_json
from vidcap.distributed import Shard
from vidcap.errors import VidcapError


@dataclass
class ShardState:
    """One ``--shard`` job's line in the folder's book: which fill, where, and whether it is done."""

    index: int
    count: int
    fingerprint: str  # the stage fingerprint: the same inputs and settings in every job of a fill
    host: str
    pid: int
    started: float  # seconds since the epoch
    finished: float | None = None  # set when the job has recorded every item of its share
    skipped: int = 0  # items of its share found already done when it started

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def shard(self) -> Shard:
        return Shard(self.index, self.count)

    def where(self) -> str:
        """``on HOST since 21:03 UTC``: enough for a person to find the job."""
        return (
            f"on {self.host} since {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(self.started))}"
        )


def _path(stage: StageDir, shard: Shard) -> Path:
    return stage.path / SHARDS / f"{shard.index}of{shard.count}.json"


def read_states(stage: StageDir) -> list[ShardState]:
    """Every ``--shard`` job's state in ``stage`` (none once the folder was finalized).

    Raises:
        VidcapError: a state file is damaged (named, with the way forward).
    """
    folder = stage.path / SHARDS
    states = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            states.append(ShardState(**json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError) as e:
            raise VidcapError(
                f"{path} (the state of a --shard job) is damaged ({e}); rerun that shard with --force."
            ) from None
    return sorted(states, key=lambda s: (s.count, s.index))


def begin(stage: StageDir, shard: Shard, stage_fingerprint: str, force: bool) -> ShardState:
    """Enter ``shard`` into the folder's book as running (call under the folder's lock).

    Jobs started with another N, or with other inputs or settings (another fingerprint), are
    never mixed into one folder: this job is refused with a sentence, unless ``force`` (the user
    says those jobs are over), which folds what they recorded into ``index.jsonl`` and forgets
    them. Temporary files that killed processes of this host left are removed; those of running
    jobs (this host's or another's) are never touched.

    Raises:
        VidcapError: other jobs fill the folder with another N or fingerprint, or this very shard
            already runs on this host.
    """
    from vidcap.artifacts import remove_abandoned_temp_files

    others = [s for s in read_states(stage) if s.shard != shard]
    foreign = [s for s in others if s.count != shard.count or s.fingerprint != stage_fingerprint]
    if foreign and not force:
        other = foreign[0]
        if other.count != shard.count:
            raise VidcapError(
                f"{stage.path} is being filled by --shard K/{other.count} jobs (shard {other.shard} {other.where()}), but this job is --shard {shard}: every job filling one folder needs the same N (or give another --out, or --force once none of those jobs runs)."
            )
        raise VidcapError(
            f"{stage.path} is being filled by --shard jobs with other inputs or settings (shard {other.shard} {other.where()}); give this job the same inputs and options as those, another --out, or --force once none of those jobs runs."
        )
    if foreign:  # --force: those jobs are over; keep what they recorded, in front of what comes
        stage.merge_index()
        shutil.rmtree(stage.path / SHARDS, ignore_errors=True)
    # A job killed mid-way left its state "running"; its rerun takes over. One still alive on
    # this host is a second copy of the same shard (other hosts' processes cannot be checked).
    for earlier in (s for s in read_states(stage) if s.shard == shard):
        if (
            not earlier.done
            and earlier.host == _host()
            and earlier.pid != os.getpid()
            and _process_alive(earlier.pid)
        ):
            raise VidcapError(
                f"--shard {shard} is already running into {stage.path} (process {earlier.pid} {earlier.where()}); wait for it, or stop it and rerun."
            )
    remove_abandoned_temp_files(stage.path, recursive=True)
    state = ShardState(
        shard.index,
        shard.count,
        stage_fingerprint,
        host=_host(),
        pid=os.getpid(),
        started=time.time(),
    )
    atomic_write_json(_path(stage, shard), asdict(state))
    return state


def finish(stage: StageDir, state: ShardState, skipped: int) -> None:
    """Mark ``state``'s job as having recorded every item of its share (under the folder's lock)."""
    state.finished = time.time()
    state.skipped = skipped
    atomic_write_json(_path(stage, state.shard), asdict(state))


def refuse_unsharded(stage: StageDir) -> None:
    """A run without ``--shard`` must not write a folder that ``--shard`` jobs are filling (its
    cleanup would delete their temporary files, its index would race theirs).

    Raises:
        VidcapError: ``--shard`` jobs have started filling the folder and it is not finalized.
    """
    states = read_states(stage)
    if not states:
        return
    count = states[0].count
    done = sum(s.done for s in states)
    raise VidcapError(
        f"{stage.path} is being filled by --shard K/{count} jobs ({done} of {count} finished); run the missing shards (the same command with --shard K/{count}), give another --out, or --force to start it over once none of them runs."
    )
