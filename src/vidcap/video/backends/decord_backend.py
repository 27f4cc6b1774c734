"""The decord backend: reads every frame timestamp first, then decodes only the selected frames.

decord resizes inside the decoder (``VideoReader(width=, height=)``), which makes it the fastest
path for large frames. ``get_batch`` is only ever called on a bounded run of indices: on a whole
long or 4K video it would allocate tens of GB.

Rotation: some decord builds apply the container's display rotation and some do not, so for a
rotated video the first frame is compared with PyAV's upright one and the missing turn is applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.video.backends import BATCH_SPAN_FRAMES, Reader, VideoInfo, bounded_runs
from vidcap.video.errors import DecodeError
from vidcap.video.resample import select_frames

# Most source frames handed to one get_batch call, and the most bytes it may return.
_BATCH_FRAMES = 32
_BATCH_BYTES = 64 * 1024 * 1024
# A gap between wanted frames up to this many source frames is read through, not sought over
# (see read_plan): frame-rate resampling leaves gaps of 1-3 frames, an image model's 4 frames of a
# 30-frame clip gaps of about 8-11.
_BRIDGE_GAP = 16

_quieted = False


def _decord() -> Any:
    global _quieted
    import decord

    if not _quieted:
        # decord logs every failed open to stderr; vidcap turns failures into sentences instead.
        decord.logging.set_level(decord.logging.QUIET)
        _quieted = True
    return decord


class DecordReader(Reader):
    """Decode with decord; the stream info comes from PyAV when it can read the file."""

    name = "decord"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._decord = _decord()
        self._native: Any = None  # a reader at the coded size, only opened when needed
        info = _pyav_info(path)
        if info is None:
            self._native = self._open()
            height, width = self._native[0].shape[:2]
            fps = float(self._native.get_avg_fps()) or None
            info = VideoInfo(width=int(width), height=int(height), fps=fps)
        self.info = info
        # The turn still to apply to decord's frames (0 when decord applied the rotation itself).
        self._turn = self._missing_turn() if info.rotation else 0

    def _open(self, width: int = -1, height: int = -1) -> Any:
        d = self._decord
        return d.VideoReader(str(self.path), ctx=d.cpu(0), width=width, height=height)

    def _missing_turn(self) -> int:
        """0 if this decord build rotates frames upright itself, else ``info.rotation``."""
        from vidcap.video.backends.pyav_backend import first_frame_upright

        probe_size = (32, 32)
        try:
            reference = first_frame_upright(self.path, probe_size).astype(np.float32)
        except Exception:
            return 0
        if self._native is None:
            self._native = self._open()
        first = self._native[0].asnumpy()
        as_is = _small(first, probe_size)
        turned = _small(np.rot90(first, k=self.info.rotation // 90), probe_size)
        err_as_is = float(np.abs(as_is - reference).mean())
        err_turned = float(np.abs(turned - reference).mean())
        return 0 if err_as_is <= err_turned else self.info.rotation

    def frames(
        self, fps: float, resize: tuple[int, int]
    ) -> Iterator[tuple[float, np.ndarray | None]]:
        w, h = resize
        if self._turn in (90, 270):  # decord scales the coded picture; we turn it afterwards
            w, h = h, w
        self._native = None
        vr = self._open(width=w, height=h)
        n = len(vr)
        if n < 1:
            raise DecodeError(f"decord found no frames in {self.path}.")
        stamps = np.asarray(vr.get_frame_timestamp(np.arange(n)), dtype=np.float64)
        starts = stamps[:, 0]
        chosen = select_frames(starts, float(stamps[-1, 1] - stamps[-1, 0]), fps, self.info.fps)
        source_times = starts[chosen] - starts[0]
        step = max(1, min(_BATCH_FRAMES, _BATCH_BYTES // (w * h * 3)))
        k = self._turn // 90
        # Source frames that no wanted output shows are never converted (decord skips them, or
        # seeks past them: see read_plan).
        keep = (
            np.ones(len(chosen), dtype=bool)
            if self.wanted is None
            else np.array([self.wanted(i) for i in range(len(chosen))], dtype=bool)
        )
        keep[chosen == chosen[-1]] = True  # the last frame pads a partial last clip
        keys = np.asarray(vr.get_key_indices(), dtype=np.int64)
        reads = read_plan(np.unique(chosen[keep]), keys)
        out = 0  # the next output to yield; chosen is non-decreasing
        for run in bounded_runs(reads, step, BATCH_SPAN_FRAMES):
            ask = reads[run.start : run.stop]
            batch = vr.get_batch(ask.tolist()).asnumpy()
            # Every output up to this batch's last frame: read (kept) or not.
            stop = int(np.searchsorted(chosen, ask[-1], side="right"))
            for i in range(out, stop):
                if not keep[i]:
                    yield float(source_times[i]), None
                    continue
                frame = batch[np.searchsorted(ask, chosen[i])]
                yield float(source_times[i]), (np.rot90(frame, k=k) if k else frame)
            out = stop
            del batch
        for i in range(out, len(chosen)):  # none is kept: the last one always is
            yield float(source_times[i]), None

    def close(self) -> None:
        self._native = None


def read_plan(wanted: np.ndarray, keys: np.ndarray, bridge: int = _BRIDGE_GAP) -> np.ndarray:
    """The source frames to ask decord for, in order, to get the sorted ``wanted`` ones.

    decord reaches a frame that is not the next one by skipping when it lies in the same group of
    pictures, else by rewinding to the file's start and seeking to its keyframe (``SeekAccurate``).
    When the frames are taken slowly (an encoder working between reads) those seeks cost more
    than the decoding itself: with this plan, reading every 20-fps frame of 25-fps videos took
    0.43-0.76 x the CPU time (MJPEG to H.264 with 250-frame groups;
    ``benchmarks/bench_decord_reads.py``, docs/extract.md).

    So where a short gap (at most ``bridge`` source frames, which a decoder of inter frames
    decodes anyway) crosses exactly one keyframe ``k``, frames ``k - 1`` (if skipped) and ``k``
    are read too, and decoding runs on without a seek. A gap over several keyframes (an all-intra
    video read sparsely) or a long one keeps the seek, which skips work there.
    """
    if len(wanted) < 2 or len(keys) == 0:
        return wanted
    a, b = wanted[:-1], wanted[1:]
    # Keyframes k with a + 1 < k <= b: reaching b from a + 1 would cross them.
    first, last = np.searchsorted(keys, a + 2), np.searchsorted(keys, b + 1)
    bridged = (last - first == 1) & (b - a <= bridge)
    crossed = keys[first[bridged]]
    before = crossed - 1
    extra = np.concatenate([crossed, before[before > a[bridged]]])
    return np.union1d(wanted, extra.astype(wanted.dtype))


def _pyav_info(path: Path) -> VideoInfo | None:
    try:
        from vidcap.video.backends.pyav_backend import probe_with_pyav

        return probe_with_pyav(path)
    except Exception:
        return None


def _small(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(np.ascontiguousarray(frame), size, interpolation=cv2.INTER_AREA).astype(
        np.float32
    )
