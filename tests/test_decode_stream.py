"""Frames streamed from the killable decode worker: equal to in-process decoding, only the frames an
encoder reads, a time limit on the decoder's time only, hangs and crashes as one video's error."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.videos import coded_frames, fork_only, read_codes, write_cv2

from vidcap.video import DecodeWorker, available_backends, decode_frames, open_frames
from vidcap.video.backends import register_backend, unregister_backend
from vidcap.video.clips import ClipCutter, clip_array, clip_frame_mask, clip_windows
from vidcap.video.errors import (
    TRANSIENT_DECODE_ERRORS,
    DecodeError,
    DecoderCrashedError,
    DecodeTimeoutError,
)


@pytest.fixture(scope="module")
def coded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 coded frames at 30 fps: 67 frames at 20 fps, two clips of 30 and a partial one of 7."""
    path = tmp_path_factory.mktemp("stream") / "coded.avi"
    return write_cv2(path, coded_frames(100, 64, 96), 30, "MJPG")


def _all(chunks) -> np.ndarray:
    return np.concatenate([c.frames for c in chunks])


@pytest.mark.parametrize("backend", available_backends())
def test_keep_mask_converts_only_the_frames_read_and_the_last(coded: Path, backend: str) -> None:
    # size 64: the native height (decord cannot scale this MJPEG file: a known decord limit)
    full = _all(decode_frames(coded, size=64, backend=backend, chunk_frames=7))
    keep = clip_frame_mask(np.array([3, 11, 18, 26]), 30)
    assert keep is not None and keep.sum() == 4
    with open_frames(coded, size=64, backend=backend, chunk_frames=7, keep=keep) as stream:
        sparse = _all(stream)
    assert sparse.shape == full.shape
    rows = keep[np.arange(len(full)) % 30]
    rows[-1] = True  # the last frame always comes: it pads a partial last clip
    np.testing.assert_array_equal(sparse[rows], full[rows])
    assert not sparse[~rows].any()  # never converted: zeros
    assert read_codes(full[~rows]) != [0] * int((~rows).sum())  # (they would not be zeros)


@pytest.mark.parametrize("chunk", [13, 30, 45, 64])
def test_clip_cutter_gives_the_clips_of_clip_array(coded: Path, chunk: int) -> None:
    """Whatever the chunks: clips begun in one chunk and ended in another, several in one."""
    frames = _all(decode_frames(coded, size=32, chunk_frames=7))
    cutter = ClipCutter(20.0, 30, min_fraction=0.2)
    clips = []
    for start in range(0, len(frames), chunk):
        pushed = frames[start : start + chunk]
        new = cutter.push(pushed)
        if chunk == 30:  # clip-long chunks: each clip is its chunk, not a copy
            assert all(np.shares_memory(clip, pushed) for clip in new)
        clips += new
    clips += cutter.finish()
    windows = clip_windows(len(frames), 20.0, 30, 0.2)
    assert cutter.windows() == windows and len(windows) == 3
    for clip, window in zip(clips, windows, strict=True):
        np.testing.assert_array_equal(clip, clip_array(frames, window, 30))


@pytest.mark.slow
def test_worker_stream_equals_in_process_decoding(coded: Path) -> None:
    full = _all(decode_frames(coded, size=32, backend="pyav", chunk_frames=7))
    keep = clip_frame_mask(np.array([0, 15]), 30)
    with DecodeWorker() as worker:
        stream = worker.stream(coded, timeout=60, backend="pyav", size=32, chunk_frames=7)
        np.testing.assert_array_equal(_all(stream), full)
        assert stream.meta["backend"] == "pyav" and stream.meta["n_frames"] == len(full)
        sparse = _all(worker.stream(coded, timeout=60, size=32, chunk_frames=7, keep=keep))
    kept = keep[np.arange(len(full)) % 30]
    kept[-1] = True  # the last frame pads a partial last clip: it comes too
    np.testing.assert_array_equal(sparse[kept], full[kept])
    assert not sparse[~kept].any()


@pytest.mark.slow
def test_time_limit_counts_the_decoder_not_the_consumer(coded: Path) -> None:
    """A consumer slower than the limit (a big model encoding each chunk) is not a timeout."""
    with DecodeWorker() as worker:
        n = 0
        for chunk in worker.stream(coded, timeout=1.5, backend="pyav", size=32, chunk_frames=16):
            time.sleep(0.6)  # 5 chunks: 3 s of consumer time, twice the limit
            n += len(chunk)
    assert n == 67


@fork_only
@pytest.mark.slow
def test_stream_hang_is_a_timeout_and_crash_falls_back(coded: Path, fake_backends: None) -> None:
    # fork: the child inherits the test-only backends registered in this process.
    with DecodeWorker(start_method="fork") as worker:
        start = time.monotonic()
        with pytest.raises(DecodeTimeoutError, match=r"coded\.avi stalled: .* nothing for 1\.5 s"):
            list(worker.stream(coded, timeout=1.5, backend="hanging", size=32))
        assert time.monotonic() - start < 20
        # A decoder slower than the limit in all (67 frames at 50 ms), and in each chunk (32
        # frames, 1.6 s), but never silent for long: every frame it gives is a sign of life.
        start = time.monotonic()
        slow = worker.stream(coded, timeout=1.0, backend="slow", size=32, chunk_frames=32)
        assert len(_all(slow)) == 67 and slow.meta["backend"] == "slow"
        assert time.monotonic() - start > 3.0
        stream = worker.stream(coded, timeout=60, backend=["crashing", "pyav"], size=32)
        assert len(_all(stream)) == 67
        assert stream.meta["backend"] == "pyav"
        assert "SIGSEGV" in stream.meta["failed_backends"]["crashing"]
        with pytest.raises(DecoderCrashedError, match=r"crashing decoder crashed .*SIGSEGV"):
            list(worker.stream(coded, timeout=60, backend="crashing", size=32))


@fork_only
@pytest.mark.slow
def test_a_low_frame_rate_is_not_a_stall(coded: Path, fake_backends: None) -> None:
    """At 0.5 fps from 30, 60 source frames are decoded (3 s here) between two output frames,
    under a 1 s limit: every decoded frame is a sign of life, shown or not."""
    with DecodeWorker(start_method="fork") as worker:
        start = time.monotonic()
        frames = _all(worker.stream(coded, timeout=1.0, backend="slow-source", fps=0.5, size=32))
        assert len(frames) == 2 and time.monotonic() - start > 3.0


@fork_only
@pytest.mark.slow
def test_a_decoder_stuck_after_signs_of_life_is_still_a_timeout(
    coded: Path, fake_backends: None
) -> None:
    """40 frames, then a hang: the signs of life stop with the frames, whatever the consumer
    (chunks streamed back; clips cut and stepped in the child, the step on its own thread)."""
    from vidcap.video.clip_stream import stream_clips

    with DecodeWorker(start_method="fork") as worker:
        start = time.monotonic()
        got = 0
        with pytest.raises(DecodeTimeoutError, match=r"nothing for 1\.5 s"):
            for chunk in worker.stream(coded, timeout=1.5, backend="stalling", size=32):
                got += len(chunk)
        assert got == 32 and time.monotonic() - start < 20  # the full chunk before the hang
        start = time.monotonic()
        with pytest.raises(DecodeTimeoutError, match=r"nothing for 1\.5 s"):
            list(worker.stream_items(
                coded, stream_clips, timeout=1.5, backend="stalling", step=np.copy,
                clip_frames=10, read=None, fps=20, size=32, crop=False, keep=None,
            ))  # fmt: skip
        assert time.monotonic() - start < 20


@pytest.mark.slow
def test_stopping_early_kills_the_decoder(coded: Path) -> None:
    with DecodeWorker() as worker:
        chunks = iter(worker.stream(coded, timeout=60, size=32, chunk_frames=4))
        next(chunks)
        assert worker._proc is not None and worker._proc.is_alive()
        pid = worker._proc.pid
        chunks.close()  # what Ctrl-C or an encoder error does to the loop
        assert worker._proc is None
        with pytest.raises(ProcessLookupError):  # killed and reaped
            os.kill(pid, 0)


@fork_only
def test_a_backend_that_stalls_gives_way_to_the_next(
    coded: Path, fake_backends: None, tmp_path: Path
) -> None:
    """A stall was the video's end even with other backends left (decord stays silent 98 s on a
    DVD's MPEG-2 .VOB that PyAV reads in 2 s): now the next backend starts, with its own limit,
    from the first frame again (the frames the stalled one gave are dropped by the consumer)."""
    with DecodeWorker(start_method="fork") as worker:
        stream = worker.stream(coded, timeout=1.0, backend=["stalling", "pyav"], size=32)
        chunks = list(stream)
        assert stream.meta["backend"] == "pyav"
        assert "stalled" in stream.meta["failed_backends"]["stalling"]
        restart = max(i for i, chunk in enumerate(chunks) if chunk.start == 0)
        assert restart > 0 and sum(len(c) for c in chunks[restart:]) == 67
        meta = worker.extract(
            coded, coded.with_suffix(".npy"), timeout=1.0, backend=["hanging", "pyav"]
        )
        assert meta["backend"] == "pyav" and "stalled" in meta["failed_backends"]["hanging"]
        with pytest.raises(DecodeTimeoutError, match=r"nothing for 1 s"):
            list(worker.stream(coded, timeout=1.0, backend="stalling", size=32))
        # The next one fails too, as decoders fail on a file: the video's failure stays one a
        # rerun may cure (not sticky), and says the first one stalled.
        register_backend("refusing", "av", _refusing)
        try:
            for attempt in (
                lambda: list(worker.stream(coded, timeout=1.0, backend=["stalling", "refusing"])),
                lambda: worker.extract(coded, tmp_path / "g.npy", 1.0, ["hanging", "refusing"]),
            ):
                with pytest.raises(
                    DecodeError, match=r"refusing reads nothing\.\)\. Before it, \w+: "
                ) as e:
                    attempt()
                assert isinstance(e.value, TRANSIENT_DECODE_ERRORS) and "stalled" in str(e.value)
        finally:
            unregister_backend("refusing")


def _refusing(path: Path) -> Any:
    raise DecodeError(f"{path}: refusing reads nothing.")
