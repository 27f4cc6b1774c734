"""What every stage run returns, for the CLI to show and for scripts to inspect, and the run of a
stage over a list of items (extract, encode), written once: resume, processes and ``--shard`` jobs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from vidcap.artifacts import MANIFEST, ItemRecord, StageDir, remove_stale_temp_files, shards
from vidcap.artifacts.index import IndexChanged, IndexRecords
from vidcap.distributed import Processes, Shard
from vidcap.errors import VidcapError


@dataclass
class StageResult:
    """The outcome of one stage run.

    ``up_to_date`` is True when a finished run with the same inputs and config was found and nothing
    was done. ``failures`` lists ``(item id, reason)`` for every failed item.
    """

    stage: str
    out_dir: Path
    counts: dict[str, int]
    failures: list[tuple[str, str]] = field(default_factory=list)
    wall_time_s: float = 0.0
    up_to_date: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # one line for the user (a --shard job: where the folder stands)

    @property
    def ok(self) -> bool:
        return not self.failures


Details = Callable[[Iterable[ItemRecord]], dict[str, Any]]
"""A stage's own figures (frames, clips, ...) from its ``ok`` records, read in one pass: a
folder's records are read from disk as they are handed over, never all held."""

WARNINGS_SHOWN = 5  # the decoder's warnings a result carries (and the CLI prints); all are indexed


def with_decode_warnings(details: Details) -> Details:
    """``details`` plus the decoder's warnings of the ``ok`` videos (a truncated download that gave
    part of its video, packets that could not be decoded): ``videos with warnings``, how many had
    one, and ``warnings``, the first :data:`WARNINGS_SHOWN` sentences (each names its file)."""

    def figures(ok: Iterable[ItemRecord]) -> dict[str, Any]:
        shown: list[str] = []
        warned = 0

        def watched() -> Iterator[ItemRecord]:
            nonlocal warned
            for record in ok:
                sentences = record.info.get("warnings") or []
                warned += bool(sentences)
                shown.extend(sentences[: WARNINGS_SHOWN - len(shown)])
                yield record

        result = details(watched())
        if warned:
            result.update({"videos with warnings": warned, "warnings": shown})
        return result

    return figures


def result_from_index(
    stage: StageDir,
    started: float,
    details: Details,
    skipped: int = 0,
    up_to_date: bool = False,
    only: Collection[str] | None = None,
    merged: IndexRecords | None = None,
) -> StageResult:
    """The result of a stage run, read back from its (merged) index.

    When the stage was already up to date, every ``ok`` item counts as skipped. ``only``: the ids
    to count (a ``--shard`` job's share); all of them when None. ``merged``: the index's records
    as the merge that just wrote it returned them (:meth:`StageDir.finalize`), which saves
    scanning it again; read from the folder when None. A ``--shard`` job reads this
    while the last job to end may merge the folder's index; it then reads it again under the
    folder's lock, which the merge holds (so call it without holding the lock).
    """
    try:
        return _read_result(stage, merged, started, details, skipped, up_to_date, only)
    except IndexChanged:
        with stage.locked(wait_s=LOCK_WAIT_S):
            return _read_result(stage, None, started, details, skipped, up_to_date, only)


def _read_result(
    stage: StageDir,
    merged: IndexRecords | None,
    started: float,
    details: Details,
    skipped: int,
    up_to_date: bool,
    only: Collection[str] | None,
) -> StageResult:
    records = stage.read_index() if merged is None else merged
    if only is not None:
        records = records.select(only)
    failures = sorted(
        (r.id, r.error or "failed") for r in records.select(status="failed").records()
    )
    ok = records.select(status="ok")
    return StageResult(
        stage=stage.stage,
        out_dir=stage.path,
        counts={
            "ok": len(ok),
            "failed": len(failures),
            "skipped": len(ok) if up_to_date else skipped,
        },
        failures=failures,
        wall_time_s=time.perf_counter() - started,
        up_to_date=up_to_date,
        details=details(ok.records()),
    )


def training_details(ok: Iterable[ItemRecord]) -> dict[str, Any]:
    """A training stage's figures: its steps and last val statistics."""
    first = next(iter(ok), None)
    if first is None:
        return {}
    info = first.info
    return {
        "steps": info.get("steps"),
        **{f"val {k}": v for k, v in (info.get("val") or {}).items()},
    }


def finished_result(
    stage: StageDir,
    fingerprint: str,
    started: float,
    details: Details,
    allow_failures: bool = False,
) -> StageResult | None:
    """The result of a run already finished in ``stage`` with ``fingerprint`` and nothing left
    to retry (:meth:`StageDir.is_complete`), every item skipped; None when there is work to do."""
    if not stage.is_complete(fingerprint, allow_failures):
        return None
    return result_from_index(stage, started, details, up_to_date=True)


def training_up_to_date(
    stage: StageDir,
    fingerprint: str,
    resume: str | None,
    force: bool,
    started: float,
    processes: Processes,
) -> StageResult | None:
    """The result of a training stage (pretrain, finetune) that finished before with the same
    inputs and settings, so there is nothing to do; None when it must run: with ``force``, when it
    is not finished, or when ``resume`` asks for a particular checkpoint (not None or "auto").
    Decided by the main process for all (two processes deciding alone may disagree)."""
    if force or resume not in (None, "auto"):
        return None
    return processes.from_main(
        lambda: finished_result(stage, fingerprint, started, training_details),
        f"read {stage.path}'s index",
    )


def check_resume(
    stage: StageDir, fingerprint: str, resume: str | None, force: bool, processes: Processes
) -> None:
    """Refuse, before a training stage writes anything: a ``resume`` path that is no checkpoint
    (found only when training began, after the vocabulary was written), and a fresh start (no
    ``resume``, no ``force``) over checkpoints of this same run (a rerun of a stopped command
    would throw their steps away). Inside the folder's lock (a run still writing them is refused
    by the lock first), decided by the main process for all.

    Raises:
        VidcapError: what is wrong, and what to give instead.
    """
    from vidcap.training.loop import fresh_start_problem, resolve_resume  # torch: not at start

    if resume not in (None, "auto"):
        resolve_resume(stage.path, resume)
    if resume is not None or force:
        return
    problem = processes.from_main(
        lambda: fresh_start_problem(stage.path, fingerprint), f"read {stage.path}'s checkpoints"
    )
    if problem is not None:
        raise VidcapError(problem)


def record_training(
    stage: StageDir, item_id: str, model: str, outcome: dict[str, Any], fingerprint: str
) -> None:
    """Record a training stage's one item: where its ``model`` is and, from ``train()``'s
    ``outcome``, the steps and val statistics that :func:`training_details` reads back."""
    stage.record(
        ItemRecord(
            item_id,
            "ok",
            outputs={"model": model},
            info={"steps": outcome["steps"], "val": outcome["val"]},
            fingerprint=fingerprint,
        )
    )


# --------------------------------------------------------------------------------------------------
# A stage run over items

LOCK_WAIT_S = 900.0
"""How long a ``--shard`` job waits for the folder's lock (others hold it only for bookkeeping:
reading the index, merging it at the end)."""


class _Item(Protocol):
    @property
    def id(self) -> str: ...


ItemT = TypeVar("ItemT", bound=_Item)


def open_stage(
    out_dir: str | Path, name: str, processes: Processes, shard: Shard | None
) -> StageDir:
    """The stage folder this process writes, for one run, one of its processes or one ``--shard``
    job.

    Raises:
        VidcapError: ``--shard`` under a launcher: its processes share the videos already, and the
            two splits together are not supported.
    """
    if shard is not None and processes.world_size > 1:
        raise VidcapError(
            f"--shard splits the videos between independent jobs, and {processes.world_size} processes launched together (torchrun / accelerate launch) share them already: use one or the other."
        )
    return StageDir(out_dir, name, processes.rank, processes.world_size, shard)


@dataclass(frozen=True)
class ItemRun(Generic[ItemT]):
    """A stage run over a list of items (videos), whatever the stage does to one item.

    ``items`` is the whole resolved input list in a stable order (sorted by id); ``item_fps`` the
    fingerprint each item's record must carry to count as done. The stage's own work is the
    ``work`` given to :meth:`run`: it records every item it is handed (ok or failed) with
    ``stage.record``. ``config``, ``upstream`` and ``extra`` go into the manifest.
    """

    stage: StageDir
    items: list[ItemT]
    item_fps: dict[str, str]
    fingerprint: str
    details: Details
    config: dict[str, Any]
    upstream: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def run(
        self,
        work: Callable[[list[ItemT]], None],
        processes: Processes,
        force: bool = False,
        allow_failures: bool = False,
        on_start: Callable[[int, int], None] | None = None,
    ) -> StageResult:
        """Skip what is done, hand this process its share to ``work``, then merge and finish.

        A finished folder with the same fingerprint (and nothing to retry) is up to date. Without
        ``--shard``: the run holds the folder's lock throughout; under a launcher each process
        takes every N-th item still to do, and the main process merges the index parts and writes
        the manifest. With ``--shard K/N`` see :meth:`_run_shard`. ``on_start(to_do, skipped)`` is
        called once this process knows its share.
        """
        stage = self.stage
        # Under a launcher the main process reads the index, at the start as at the end, and
        # hands the others what they need: for a large corpus it is minutes of parsing, and N
        # processes reading it at once from a shared file system would multiply that.
        reading = f"read {stage.path}'s index"
        if not force:
            finished = processes.from_main(
                lambda: finished_result(
                    stage, self.fingerprint, self.started, self.details, allow_failures
                ),
                reading,
            )
            if finished is not None:
                return finished
        if stage.shard is not None:
            return self._run_shard(work, force, allow_failures, on_start)
        if not force:
            shards.refuse_unsharded(stage)
        merged: IndexRecords | None = None  # on the main process, once it merged the index
        with stage.locked():
            processes.barrier()  # everyone knows the folder is not up to date before it changes
            if processes.is_main:
                if not force:
                    shards.refuse_unsharded(stage)  # a --shard job may have begun meanwhile
                stage.prepare(force=force)
            processes.barrier()

            digest, done = processes.from_main(self._done_flags, reading)
            if digest != self._items_digest():
                raise VidcapError(
                    f"process {processes.rank} of {processes.world_size} found other inputs than "
                    "the main process (a folder listed while files came or went?); every process "
                    "must see the same videos: run the command again."
                )
            todo = processes.shard(
                [item for item, d in zip(self.items, done, strict=True) if not d]
            )
            skipped = sum(done) if processes.is_main else 0
            if on_start is not None:
                on_start(len(todo), skipped)
            work(todo)

            processes.barrier()  # every process has recorded its share
            if processes.is_main:
                merged = self._finalize(skipped, time.perf_counter() - self.started)

        def result() -> StageResult:  # the main process's, from the index it merged
            assert merged is not None  # from_main runs this on the main process only
            found = result_from_index(
                stage, self.started, self.details, skipped=skipped, merged=merged
            )
            found.note = self._others_note(merged)
            return found

        return processes.from_main(result, reading)

    def _others_note(self, records: IndexRecords) -> str | None:
        """What to say of the items in the folder that are not among this run's (an earlier run
        into the same folder had other inputs): they stay, counted and read downstream."""
        ours = {item.id for item in self.items}
        others = [item_id for item_id in records if item_id not in ours]
        if not others:
            return None
        return (
            f"{len(others)} item(s) in {self.stage.path} are not among this run's inputs (an "
            f"earlier run's, such as {others[0]!r}); they stay in the folder, in its counts, and "
            "the next stage reads them too: give a new --out to leave them out."
        )

    def _done_flags(self) -> tuple[str, bytes]:
        """For each item in order, 1 when it is done already (a rerun skips it), else 0: a
        byte an item, what the main process sends the others instead of the ids; with the digest
        of its items, which each process checks against its own (the flags go by position)."""
        done = self.stage.done_ids_matching(self.item_fps)
        return self._items_digest(), bytes(item.id in done for item in self.items)

    def _items_digest(self) -> str:
        """A digest of the items' ids, in order: the same on every process that resolved the
        same inputs."""
        digest = hashlib.sha256()
        for item in self.items:
            digest.update(item.id.encode() + b"\n")
        return digest.hexdigest()

    def _run_shard(
        self,
        work: Callable[[list[ItemT]], None],
        force: bool,
        allow_failures: bool,
        on_start: Callable[[int, int], None] | None,
    ) -> StageResult:
        """One ``--shard K/N`` job: items K, K+N, ... of the whole list, whenever it runs.

        The folder's lock is held twice, briefly: to enter this job into the folder's book
        (:func:`vidcap.artifacts.shards.begin`, which refuses a job of another N or fingerprint),
        and at the end, to mark it finished and, when every
        other shard has finished too, merge the index and write the manifest. A shard counts as
        finished when its job said so, or when no job of it started and all of its items are done
        already (a folder finished before, a rerun of the array). A killed job leaves its shard
        unfinished: its rerun resumes it, and the folder is finalized by whichever job ends last.
        """
        stage, shard = self.stage, self.stage.shard
        assert shard is not None
        mine = shard.take(self.items)
        only = [item.id for item in mine]
        with stage.locked(wait_s=LOCK_WAIT_S):
            # Another job may have finished the folder while this one waited.
            complete = not force and stage.is_complete(self.fingerprint, allow_failures)
            if not complete:
                state = shards.begin(stage, shard, self.fingerprint, force)
        if complete:  # read outside the lock: result_from_index may take it to read again
            result = result_from_index(
                stage, self.started, self.details, up_to_date=True, only=only
            )
            return self._shard_result(
                result, shard, f"shard {shard}: {stage.path} is complete already."
            )
        # Outside the lock (reading a large index takes a while, and the other jobs wait for the
        # lock): nobody finalizes the folder while this shard is entered as running.
        done = set() if force else stage.done_ids_matching(self.item_fps)
        todo = [item for item in mine if item.id not in done]
        if todo:  # the folder changes: its manifest no longer holds until the last job ends
            (stage.path / MANIFEST).unlink(missing_ok=True)
        skipped = len(mine) - len(todo)
        if on_start is not None:
            on_start(len(todo), skipped)
        work(todo)

        with stage.locked(wait_s=LOCK_WAIT_S):
            shards.finish(stage, state, skipped)
            waiting = self._unfinished_shards(shard.count)
            merged: IndexRecords | None = None  # once this job, ending last, merged the index
            if not waiting:
                # No job of this fill runs now: what killed ones left (on any host) can go.
                remove_stale_temp_files(stage.path)
                states = shards.read_states(stage)
                started = {s.index for s in states}
                # A shard no job ran had all of its items done already: skipped, as in one run.
                unrun = [j for j in range(shard.count) if j not in started]
                merged = self._finalize(
                    skipped=sum(s.skipped for s in states)
                    + sum(len(Shard(j, shard.count).take(self.items)) for j in unrun),
                    wall_time_s=time.time() - min(s.started for s in states),
                    shard_count=shard.count,
                )
        result = result_from_index(
            stage, self.started, self.details, skipped=skipped, only=only, merged=merged
        )
        if waiting:
            note = (
                f"shard {shard} is done ({len(mine)} of {len(self.items)} videos); the last shard "
                f"to end writes {stage.path}'s index.jsonl and manifest.json; still to come: "
                f"{_listed(waiting)}."
            )
        else:
            assert merged is not None  # this job ended last and merged the folder
            counts = merged.counts()
            note = (
                f"shard {shard} ended last: {stage.path} is complete ({counts.get('ok', 0)} ok, "
                f"{counts.get('failed', 0)} failed; index.jsonl and manifest.json written)."
            )
        return self._shard_result(result, shard, note)

    def _unfinished_shards(self, count: int) -> list[str]:
        """The shards of this fill that have not finished, each as ``1 (not started)``."""
        states = {s.index: s for s in shards.read_states(self.stage)}
        done_ids: set[str] | None = None
        waiting = []
        for index in range(count):
            state = states.get(index)
            if state is not None:
                if not state.done:
                    waiting.append(f"{index} (started {state.where()}; rerun it if it was killed)")
                continue
            if done_ids is None:  # read the index only when a shard never started
                done_ids = self.stage.done_ids_matching(self.item_fps)
            if any(item.id not in done_ids for item in Shard(index, count).take(self.items)):
                waiting.append(f"{index} (not started)")
        return waiting

    def _finalize(
        self, skipped: int, wall_time_s: float, shard_count: int | None = None
    ) -> IndexRecords:
        extra = {**self.extra, **({"shards": shard_count} if shard_count else {})}
        return self.stage.finalize(
            config=self.config,
            stage_fingerprint=self.fingerprint,
            upstream=self.upstream,
            wall_time_s=wall_time_s,
            skipped=skipped,
            extra=extra,
        )

    @staticmethod
    def _shard_result(result: StageResult, shard: Shard, note: str) -> StageResult:
        result.details = {"shard": str(shard), **result.details}
        result.note = note
        return result


def _listed(shards_waiting: list[str], most: int = 8) -> str:
    shown = ", ".join(shards_waiting[:most])
    more = len(shards_waiting) - most
    return f"{shown} and {more} more" if more > 0 else shown
