"""The stage artifact contract: atomic writes, sanitized ids, fingerprints, index and manifest."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage_helpers import fail_file_locks
from vidcap.artifacts import (
    INDEX,
    MANIFEST,
    ItemRecord,
    StageDir,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    fingerprint,
    read_upstream,
    remove_stale_temp_files,
    sanitize_id,
)
from vidcap.errors import VidcapError, VidcapWarning


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_atomic_write_gives_the_mode_open_would(tmp_path: Path, umask_027: None) -> None:
    # mkstemp's temporary file is owner-only; an output renamed from it kept that 0600, so a team
    # sharing a stage folder could not read each other's features, manifests or captions.
    new = tmp_path / "new.json"
    atomic_write_json(new, {"x": 1})
    assert stat.S_IMODE(new.stat().st_mode) == 0o640  # 0666 less the umask
    with atomic_path(tmp_path / "by_name.bin") as tmp:
        tmp.write_bytes(b"written by a library that wants a file name")
    assert stat.S_IMODE((tmp_path / "by_name.bin").stat().st_mode) == 0o640
    existing = tmp_path / "existing.json"
    existing.write_text("{}")
    existing.chmod(0o604)
    atomic_write_json(existing, {"x": 2})
    assert stat.S_IMODE(existing.stat().st_mode) == 0o604  # an overwritten file keeps its own


@pytest.mark.parametrize("no_locks", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_file_system_without_locks_is_written_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_locks: int
) -> None:
    # NFSv3 without its lock service, Lustre without flock: flock() fails, and every stage stopped with
    # "unexpected OSError ... a bug in vidcap" before writing anything.
    fail_file_locks(monkeypatch, no_locks)
    stage = StageDir(tmp_path / "out", "extract")
    with pytest.warns(VidcapWarning, match="cannot lock files"), stage.locked():
        stage.path.joinpath("written").write_text("x")
    assert [p.name for p in stage.path.iterdir()] == ["written"]  # no lock file left


def test_shard_jobs_on_a_file_system_without_locks_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The jobs of an array decide through the lock which of them merges the folder.
    fail_file_locks(monkeypatch)
    from vidcap.distributed import Shard

    stage = StageDir(tmp_path / "out", "extract", shard=Shard(0, 2))
    with pytest.raises(VidcapError, match="--shard jobs need locks"), stage.locked():
        pass
    assert not stage.path.exists()  # nothing written, not even the folder


def test_a_failing_lock_for_another_reason_still_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_file_locks(monkeypatch, errno.EIO)
    with pytest.raises(OSError), StageDir(tmp_path / "out", "extract").locked():
        pass


def test_atomic_path_removes_temp_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("writer failed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_process_killed_mid_write_leaves_no_visible_file(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    script = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).parents[1] / "src")!r})
from vidcap.artifacts import atomic_path
with atomic_path({str(target)!r}) as tmp:
    with open(tmp, "wb") as f:
        for _ in range(1000):
            f.write(b"x" * 4096)
            f.flush()
            print("writing", flush=True)
            time.sleep(0.01)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()  # the writer has started
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".tmp-")
    assert leftovers[0].stat().st_size > 0  # it really was killed mid-write
    assert remove_stale_temp_files(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "raw",
    ["../../etc/passwd", "/abs/path", "..", ".", "", "a b/c", "vidéo 1", "x" * 300, "ok-id_1.2"],
)
def test_sanitize_id_is_safe(raw: str, tmp_path: Path) -> None:
    name = sanitize_id(raw)
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert len(name) <= 100
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_sanitize_id_keeps_safe_ids_and_separates_unsafe_ones() -> None:
    assert sanitize_id("ok-id_1.2") == "ok-id_1.2"
    assert sanitize_id("a/b") != sanitize_id("a_b")
    assert sanitize_id("a/b") != sanitize_id("a:b")
    assert sanitize_id("a/b") == sanitize_id("a/b")


def test_fingerprint_is_stable_and_sensitive() -> None:
    assert fingerprint({"a": 1, "b": 2}, "up") == fingerprint({"b": 2, "a": 1}, "up")
    assert fingerprint({"a": 1}, "up") != fingerprint({"a": 2}, "up")
    assert fingerprint({"a": 1}, "up") != fingerprint({"a": 1}, "other")


def test_item_path_never_escapes(tmp_path: Path) -> None:
    stage = StageDir(tmp_path / "stage", "extract")
    stage.prepare()
    for raw in ["../../evil", "/etc/passwd", "..", "a/../../b"]:
        path = stage.item_path(raw, ".npy", subdir="items")
        assert stage.path.resolve() in path.resolve().parents


def test_index_resume_skips_only_ok_items_with_same_fingerprint(tmp_path: Path) -> None:
    stage = StageDir(tmp_path, "extract")
    stage.prepare()
    (tmp_path / "a.npy").write_bytes(b"frames")
    stage.record(ItemRecord("a", "ok", fingerprint="f1", outputs={"frames": "a.npy"}))
    stage.record(ItemRecord("b", "failed", error="It broke.", fingerprint="f1"))
    stage.record(ItemRecord("c", "ok", fingerprint="f0"))
    # A process killed mid-append leaves a torn last line: it must be ignored.
    with open(tmp_path / INDEX, "a") as f:
        f.write('{"id": "d", "stat')
    assert stage.done_ids_matching(dict.fromkeys("abc", "f1")) == {"a"}
    assert set(stage.read_index()) == {"a", "b", "c"}
    # A later line for the same id wins (a retried item).
    stage.record(ItemRecord("b", "ok", fingerprint="f1"))
    assert stage.done_ids_matching(dict.fromkeys("abc", "f1")) == {"a", "b"}
    # An ok item whose output is gone is done again.
    (tmp_path / "a.npy").unlink()
    assert stage.done_ids_matching(dict.fromkeys("abc", "f1")) == {"b"}


def test_finalize_merges_parts_and_writes_manifest_last(tmp_path: Path) -> None:
    for rank in range(2):
        stage = StageDir(tmp_path, "extract", rank=rank, world_size=2)
        stage.prepare()
        stage.record(ItemRecord(f"v{rank}", "ok", fingerprint="fp", info={"n_frames": rank}))
    stage.record(ItemRecord("bad", "failed", error="Not a video.", fingerprint="fp", sticky=True))
    assert not (tmp_path / MANIFEST).exists()
    main = StageDir(tmp_path, "extract")
    main.finalize({"fps": 20}, "fp", {"path": "corpus.jsonl"}, wall_time_s=1.0)
    manifest = main.read_manifest()
    assert manifest is not None and manifest["counts"] == {"ok": 2, "failed": 1, "skipped": 0}
    assert manifest["stage"] == "extract" and manifest["fingerprint"] == "fp"
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX, MANIFEST]
    lines = [json.loads(line) for line in (tmp_path / INDEX).read_text().splitlines()]
    assert [line["id"] for line in lines] == ["bad", "v0", "v1"]
    assert lines[1]["n_frames"] == 0 and lines[0]["error"] == "Not a video."
    # A stage with failed items is never up to date (a rerun retries them), unless every failure
    # is sticky (the input itself is bad) and failures are allowed.
    assert not main.is_complete("fp") and not main.is_complete("other")
    assert main.is_complete("fp", allow_failures=True)
    assert lines[0]["sticky"] is True and "sticky" not in lines[1]

    read_manifest, ok = read_upstream(tmp_path, "extract")
    assert read_manifest["counts"]["ok"] == 2 and set(ok) == {"v0", "v1"}
    with pytest.raises(VidcapError, match="vidcap encode"):
        read_upstream(tmp_path, "encode")


def test_the_merge_returns_the_merged_index_as_a_scan_would_read_it(tmp_path: Path) -> None:
    """What the merge returns stands for a scan of the file it wrote: the same records, read
    from the same places, so a run's result needs no second pass over the index."""
    parts = [StageDir(tmp_path, "extract", rank=r, world_size=2) for r in range(2)]
    for i in range(7):
        parts[i % 2].record(ItemRecord(f"v{6 - i}", "ok", fingerprint="fp", info={"n": i}))
    parts[1].record(ItemRecord("v2", "failed", error="the disk is full.", fingerprint="fp"))
    with open(tmp_path / "index.part0.jsonl", "ab") as f:
        f.write(b'{"id": "torn", "sta')  # a process killed mid-append; no final newline
    merged = StageDir(tmp_path, "extract").finalize({}, "fp", None, 0.0)
    scanned = StageDir(tmp_path, "extract").read_index()
    assert list(merged) == list(scanned) == [f"v{i}" for i in range(7)]
    assert merged.files == scanned.files == [tmp_path / INDEX]
    assert merged.counts() == scanned.counts() == {"ok": 6, "failed": 1}
    assert list(merged.records()) == list(scanned.records())
    assert merged["v2"] == scanned["v2"] and merged["v2"].error == "the disk is full."
    assert merged["v6"].info == {"n": 0}


@pytest.mark.parametrize("sharded", [False, True])
def test_a_run_scans_its_index_once_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sharded: bool
) -> None:
    """At the end of a run the main process (or the --shard job ending last) merges the index
    (one scan) and reads the result from what the merge wrote: scanning it again, or twice for a
    shard's closing note, was minutes at HowTo100M's size."""
    from vidcap.artifacts.index import IndexRecords
    from vidcap.distributed import Processes, Shard
    from vidcap.stages.base import ItemRun

    scans: list[list[Path]] = []
    scan = IndexRecords.scan.__func__  # type: ignore[attr-defined]

    def counted(cls: type[IndexRecords], files: list[Path]) -> IndexRecords:
        scans.append(files)
        return scan(cls, files)

    monkeypatch.setattr(IndexRecords, "scan", classmethod(counted))

    class Item:
        def __init__(self, item_id: str) -> None:
            self.id = item_id

    stage = StageDir(tmp_path, "extract", shard=Shard(0, 1) if sharded else None)
    items = [Item(f"v{i}") for i in range(5)]
    run = ItemRun(
        stage=stage, items=items, item_fps={i.id: "fp" for i in items}, fingerprint="fp",
        details=lambda ok: {"videos": sum(1 for _ in ok)}, config={}, upstream=None,
    )  # fmt: skip

    def work(todo: list[Item]) -> None:
        for item in todo:
            stage.record(ItemRecord(item.id, "ok", fingerprint="fp"))

    result = run.run(work, Processes())
    assert result.counts == {"ok": 5, "failed": 0, "skipped": 0}
    assert result.details["videos"] == 5
    assert len(scans) == 1, scans


def test_processes_that_resolved_other_inputs_refuse_to_share_them(tmp_path: Path) -> None:
    """The main process says which items are done by position: a process whose item list differs
    (a folder listed while a file came) stops with a sentence instead of taking wrong ones. Two
    processes, here as two threads meeting through a barrier."""
    import threading

    from vidcap.distributed import Processes
    from vidcap.stages.base import ItemRun

    meeting, sent = threading.Barrier(2, timeout=20), [None]

    class Rank(Processes):
        def barrier(self) -> None:
            meeting.wait()

        def broadcast(self, obj):  # type: ignore[no-untyped-def]
            if self.is_main:
                sent[0] = obj
            meeting.wait()
            return sent[0]

    class Item:
        def __init__(self, item_id: str) -> None:
            self.id = item_id

    worked: dict[int, list[str]] = {}
    raised: dict[int, BaseException] = {}

    def run(rank: int, ids: list[str]) -> None:
        stage = StageDir(tmp_path, "extract", rank=rank, world_size=2)
        items = [Item(i) for i in ids]
        item_run = ItemRun(
            stage=stage, items=items, item_fps={i.id: "fp" for i in items}, fingerprint="fp",
            details=lambda ok: {}, config={}, upstream=None,
        )  # fmt: skip
        try:
            item_run.run(lambda todo: worked.setdefault(rank, [i.id for i in todo]), Rank(rank, 2))
        except BaseException as error:
            raised[rank] = error
            meeting.abort()  # as a process that stops closes its connections

    threads = [
        threading.Thread(target=run, args=(0, ["a", "b", "c"])),
        threading.Thread(target=run, args=(1, ["a", "b", "b2", "c"])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert isinstance(raised[1], VidcapError) and 1 not in worked
    assert str(raised[1]).startswith("process 1 of 2 found other inputs than the main process")
    assert isinstance(raised[0], threading.BrokenBarrierError)  # the main one: at its next meeting


def test_prepare_invalidates_old_manifest_and_force_forgets_items(tmp_path: Path) -> None:
    stage = StageDir(tmp_path, "extract")
    stage.prepare()
    stage.record(ItemRecord("a", "ok", fingerprint="fp"))
    stage.finalize({}, "fp", None, 0.0)
    atomic_write_text(tmp_path / ".tmp-stale.npy", "junk")
    stage.prepare()
    assert not (tmp_path / MANIFEST).exists()
    assert not (tmp_path / ".tmp-stale.npy").exists()
    assert stage.done_ids_matching({"a": "fp"}) == {"a"}
    stage.prepare(force=True)
    assert stage.done_ids_matching({"a": "fp"}) == set()


def test_read_upstream_without_manifest_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(VidcapError, match=r"has no manifest\.json"):
        read_upstream(tmp_path, "extract")


def test_a_transient_failure_is_always_retried(tmp_path: Path) -> None:
    stage = StageDir(tmp_path, "extract")
    stage.prepare()
    stage.record(ItemRecord("a", "ok", fingerprint="fp"))
    stage.record(ItemRecord("b", "failed", error="the disk is full.", fingerprint="fp"))
    stage.finalize({}, "fp", None, 0.0)
    assert not stage.is_complete("fp") and not stage.is_complete("fp", allow_failures=True)
    assert stage.done_ids_matching({"a": "fp", "b": "fp"}) == {"a"}  # b is done again
    stage.record(ItemRecord("b", "ok", fingerprint="fp"))
    stage.finalize({}, "fp", None, 0.0)
    assert stage.is_complete("fp")


def test_a_second_run_into_a_locked_folder_refuses(tmp_path: Path) -> None:
    first, second = StageDir(tmp_path, "extract"), StageDir(tmp_path, "extract")
    with (
        first.locked(),
        pytest.raises(VidcapError, match=r"being written by another vidcap run.*\.vidcap\.lock"),
        second.locked(),
    ):
        pass
    with second.locked():  # released when the first run ends
        pass
    assert not (tmp_path / ".vidcap.lock").exists()  # a finished folder holds only outputs
    # Only the main process of a multi-process run takes the lock.
    with first.locked(), StageDir(tmp_path, "extract", rank=1, world_size=2).locked():
        pass


def test_resuming_reads_the_index_without_keeping_each_records_info(tmp_path: Path) -> None:
    """Every process and --shard job reads the whole folder's index when it starts: for a
    million videos, full records (3.3 KB each, most of it their info) would take gigabytes."""
    import tracemalloc

    stage = StageDir(tmp_path / "s", "encode")
    stage.prepare()
    n = 5000
    info = {"split": "train", "video": "/data/videos/v.mp4", "backend": "decord", "n_clips": 268,
            "source": {"width": 640, "height": 360, "fps": 25.0, "codec": "h264"}, "warnings": []}  # fmt: skip
    with open(stage.path / "index.jsonl", "w") as index:
        for i in range(n):
            output = f"features/v{i}.safetensors"
            record = {"id": f"v{i}", "status": "ok", "fingerprint": f"{i:064x}",
                      "outputs": {"features": output}, **info, "n_frames": i}  # fmt: skip
            index.write(json.dumps(record) + "\n")
            (stage.path / "features").mkdir(exist_ok=True)
            (stage.path / output).touch()
    wanted = {f"v{i}": f"{i:064x}" for i in range(n)}
    assert len(stage.done_ids_matching(wanted)) == n  # once first: one-off set-up is not measured
    tracemalloc.start()
    try:
        assert len(stage.done_ids_matching(wanted)) == n
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / n < 1000, f"{peak / n:.0f} bytes per record"


def _extract_records(stage: StageDir, n: int, clips: int, start: int = 0) -> None:
    """``n`` extract records of videos ``clips`` clips long (an extract record lists its clips:
    260 for HowTo100M's mean of 6.5 minutes), appended to this process's index."""
    for i in range(start, start + n):
        windows = [{"index": k, "start_frame": 30 * k, "end_frame": 30 * k + 30,
                    "start_s": 1.5 * k, "end_s": 1.5 * k + 1.5} for k in range(clips)]  # fmt: skip
        info = {"clips": windows, "n_frames": 30 * clips, "duration_s": 1.5 * clips}
        stage.record(ItemRecord(f"v{i:05d}", "ok", outputs={"frames": f"v{i}.npy"}, info=info))


def test_the_end_of_a_run_never_holds_every_record(tmp_path: Path) -> None:
    """Every process reads the whole index when a run ends, and a downstream stage reads its
    upstream's: 1.2 million extract records held as records (80 KB each for 260 clips) would take
    about 90 GB in each process. Where each record lies is all that is held."""
    import tracemalloc

    from vidcap.stages.base import result_from_index
    from vidcap.stages.extract import _details

    parts = [StageDir(tmp_path, "extract", rank=r, world_size=2) for r in range(2)]
    parts[0].prepare()
    n = 600
    _extract_records(parts[0], n // 2, clips=260)
    _extract_records(parts[1], n // 2, clips=260, start=n // 2)
    stage = StageDir(tmp_path, "extract")
    for measure in (False, True):  # once first: one-off set-up (imports, caches) is not measured
        if measure:
            tracemalloc.start()
        try:
            records = stage.read_index()
            held = tracemalloc.get_traced_memory()[0] if measure else 0
            result = result_from_index(stage, 0.0, _details)
            ok = sum(1 for _ in read_upstream_like(records))
            peak = tracemalloc.get_traced_memory()[1] if measure else 0
        finally:
            tracemalloc.stop()
    assert ok == n and result.counts["ok"] == n and result.details["clips"] == 260 * n
    assert held / n < 500, f"{held / n:.0f} bytes held per record"
    assert peak < 5_000_000, f"{peak / 1e6:.1f} MB at the peak for {n} records"  # 48 MB held

    tracemalloc.start()
    try:
        counts = stage.merge_index().counts()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts == {"ok": n} and peak < 5_000_000, f"{peak / 1e6:.1f} MB merging"
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX]
    lines = (tmp_path / INDEX).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"v{i:05d}" for i in range(n)]


def read_upstream_like(records):
    """Every record, read the way a downstream stage walks its upstream."""
    for record in records.select(status="ok").records():
        assert len(record.info["clips"]) == 260
        yield record.id


def test_index_records_read_each_ids_latest_line(tmp_path: Path) -> None:
    stage = StageDir(tmp_path, "extract", rank=0, world_size=2)
    stage.prepare()
    other = StageDir(tmp_path, "extract", rank=1, world_size=2)
    stage.record(ItemRecord("b", "failed", error="It broke."))
    stage.record(ItemRecord("a", "ok", info={"n": 1}))
    other.record(ItemRecord("c", "ok", info={"n": 3}))
    other.record(ItemRecord("b", "ok", info={"n": 2}))  # a retry in another part wins
    with open(tmp_path / "index.part1.jsonl", "a") as f:
        f.write('{"id": "d", "stat')  # torn by a kill
    records = StageDir(tmp_path, "extract").read_index()
    assert list(records) == ["b", "a", "c"]  # in the order first recorded, as a dict would be
    assert records["b"].info == {"n": 2} and records.status("b") == "ok"
    assert records.counts() == {"ok": 3} and "d" not in records and len(records) == 3
    assert [r.id for r in records.records()] == ["a", "c", "b"]  # file by file
    assert {r.id: r.info for r in records.records()} == {i: records[i].info for i in records}
    assert list(records.select(["c", "x", "a"])) == ["c", "a"]
    stage.record(ItemRecord("a", "failed", error="Gone."))
    again = StageDir(tmp_path, "extract").read_index()
    assert list(again.select(status="failed")) == ["a"] and again["a"].error == "Gone."


def test_an_index_merged_while_it_is_read_is_a_sentence_and_the_result_reads_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --shard job reads its result while the last job to end may merge the folder's index:
    records found in a part that is gone, or in an index.jsonl replaced since, are never read
    from the wrong file; the result reads the merged index again."""
    from vidcap.artifacts.index import IndexChanged, IndexRecords
    from vidcap.stages.base import result_from_index

    shard = StageDir(tmp_path, "extract", rank=1, world_size=2)
    shard.prepare()
    StageDir(tmp_path, "extract").record(ItemRecord("a", "ok", info={"n_frames": 1}))
    shard.record(ItemRecord("b", "ok", info={"n_frames": 2}))
    stage = StageDir(tmp_path, "extract")
    records = stage.read_index()
    stage.merge_index()  # the part is gone and index.jsonl is another file
    for item_id in ("a", "b"):
        with pytest.raises(IndexChanged, match=r"changed while it was being read"):
            records[item_id]
    with pytest.raises(IndexChanged):
        list(records.records())

    scans = []

    def merged_after_the_first_scan() -> IndexRecords:
        scans.append(StageDir(tmp_path, "extract").read_index())
        if len(scans) == 1:
            other = StageDir(tmp_path, "extract", rank=1, world_size=2)
            other.record(ItemRecord("c", "ok", info={"n_frames": 4}))
            other.merge_index()
        return scans[-1]

    monkeypatch.setattr(stage, "read_index", merged_after_the_first_scan)
    result = result_from_index(
        stage, 0.0, lambda ok: {"frames": sum(r.info["n_frames"] for r in ok)}
    )
    assert len(scans) == 2 and result.counts["ok"] == 3 and result.details == {"frames": 7}


@pytest.mark.parametrize("room", [None, 4])
def test_merging_many_parts_opens_each_once_and_closes_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: int | None
) -> None:
    """Ids are dealt to --shard jobs in turn, so in id order the merge reads every part by turns:
    each part is opened once (not once a line), and every file is closed after. When the open-file
    limit is too low for all of them (room 4), the merge is still right and leaves none open."""
    from vidcap.artifacts import index as index_module
    from vidcap.distributed import Shard

    n_parts, n = 150, 3000
    for k in range(n_parts):
        job = StageDir(tmp_path, "extract", shard=Shard(k, n_parts))
        for i in range(k, n, n_parts):
            job.record(ItemRecord(f"v{i:05d}", "ok", info={"n_frames": i}))
    if room is not None:
        monkeypatch.setattr(
            index_module,
            "_room_for_open_files",
            contextlib.contextmanager(lambda wanted: iter([room])),
        )
    opened: list = []
    open_index = index_module.IndexRecords._open

    def counting(self, file: int):
        opened.append(open_index(self, file))
        return opened[-1]

    monkeypatch.setattr(index_module.IndexRecords, "_open", counting)
    assert StageDir(tmp_path, "extract").merge_index().counts() == {"ok": n}
    assert all(f.closed for f in opened)
    if room is None:
        assert len(opened) == n_parts
    lines = (tmp_path / INDEX).read_text().splitlines()
    assert [json.loads(line)["n_frames"] for line in lines] == list(range(n))
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX]


def test_parts_a_killed_run_left_never_outrank_the_rerun(tmp_path: Path) -> None:
    """A killed 2-process run left its parts; the rerun (here with one process) records into
    index.jsonl, which is read before the parts: their stale failure must not win, or the video
    would be redone by every rerun and the folder never finish."""
    StageDir(tmp_path, "extract", rank=0, world_size=2).record(
        ItemRecord("v0", "ok", fingerprint="fp")
    )
    killed = StageDir(tmp_path, "extract", rank=1, world_size=2)
    killed.record(ItemRecord("v1", "failed", error="the decoder timed out.", fingerprint="fp"))
    rerun = StageDir(tmp_path, "extract")
    rerun.prepare()
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX]  # the parts are folded in
    rerun.record(ItemRecord("v1", "ok", fingerprint="fp"))
    rerun.finalize({}, "fp", None, 0.0)
    assert rerun.read_manifest()["counts"] == {"ok": 2, "failed": 0, "skipped": 0}
    assert rerun.read_index().status("v1") == "ok" and rerun.is_complete("fp")
