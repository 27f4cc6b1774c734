"""The stage artifact contract: atomic writes, sanitized ids, fingerprints, index and manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
from vidcap.errors import VidcapError


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


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
    manifest = main.finalize({"fps": 20}, "fp", {"path": "corpus.jsonl"}, wall_time_s=1.0)
    assert manifest["counts"] == {"ok": 2, "failed": 1, "skipped": 0}
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
