"""Frame-rate resampling by presentation timestamps, and the output frame geometry.

Every backend feeds decoded frames, in presentation order, through the same :class:`Resampler`, so
all backends pick the same source frames: output frame ``k`` (time ``t_k = k / fps``) is the latest
source frame whose timestamp (measured from the first frame) is ``<= t_k``. Variable-frame-rate
video therefore comes out evenly sampled in time, and a frame rate above the source's repeats frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")

# Timestamps are rounded by containers (Matroska stores milliseconds, decord returns float32), so a
# frame stamped a hair after t_k still counts as shown at t_k. Far below any real frame interval.
TIME_EPS = 5e-4

# The shortest duration assumed for the last frame when the container gives none.
_MIN_LAST_DURATION = 1e-3


class Resampler(Generic[T]):
    """Streams (timestamp, frame) pairs in; yields ``(k, source_time, frame)`` for k = 0, 1, 2...

    ``source_fps`` (the container's reported rate, if any) only serves to guess intervals when
    timestamps are missing. Call :meth:`push` for each decoded frame in presentation order, then :meth:`finish` once with the
    duration of the last frame. Frames are opaque (``T``): a backend can push cheap handles and
    convert only the frames that are selected.
    """

    def __init__(self, fps: float, source_fps: float | None = None) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        # The frame interval assumed until two frames have been seen (and for missing timestamps).
        self._nominal = 1.0 / source_fps if source_fps and source_fps > 0 else 1.0 / self.fps
        self.k = 0  # next output index
        self._t0: float | None = None
        self._prev: tuple[float, T] | None = None
        self._intervals: list[float] = []  # recent frame intervals, to guess a missing duration
        self.n_source = 0  # source frames pushed so far

    def push(self, timestamp: float | None, frame: T) -> list[tuple[int, float, T]]:
        """Add the next source frame; returns the outputs it settles (all of the previous frame).

        A missing or non-increasing timestamp (broken streams) is replaced by the previous one plus
        the typical frame interval, so the output never runs backwards.
        """
        out: list[tuple[int, float, T]] = []
        if self._t0 is None:
            self._t0 = 0.0 if timestamp is None else timestamp
        t = self._relative(timestamp)
        if self._prev is not None:
            prev_t, prev_frame = self._prev
            # Outputs strictly before this frame's time belong to the previous frame.
            while self.k / self.fps < t - TIME_EPS:
                out.append((self.k, prev_t, prev_frame))
                self.k += 1
            self._intervals = [*self._intervals[-15:], t - prev_t]
        self._prev = (t, frame)
        self.n_source += 1
        return out

    def _relative(self, timestamp: float | None) -> float:
        assert self._t0 is not None
        if self._prev is None:
            return 0.0 if timestamp is None else timestamp - self._t0
        prev_t = self._prev[0]
        if timestamp is None or timestamp - self._t0 <= prev_t:
            return prev_t + self.typical_interval()
        return timestamp - self._t0

    def typical_interval(self) -> float:
        """The median interval between recent source frames (the nominal one before two frames)."""
        return float(np.median(self._intervals)) if self._intervals else self._nominal

    def finish(self, last_duration: float | None) -> list[tuple[int, float, T]]:
        """Settle the outputs that fall within the last frame's duration.

        ``last_duration`` is how long the last frame is shown (seconds); None or non-positive falls
        back to the typical frame interval. At least one output is produced when any frame was pushed.
        """
        if self._prev is None:
            return []
        prev_t, prev_frame = self._prev
        if last_duration is None or not last_duration > 0 or not math.isfinite(last_duration):
            last_duration = self.typical_interval()
        end = prev_t + max(last_duration, _MIN_LAST_DURATION)
        out: list[tuple[int, float, T]] = []
        while self.k / self.fps < end - TIME_EPS or self.k == 0:
            out.append((self.k, prev_t, prev_frame))
            self.k += 1
        self._prev = None
        return out


def select_frames(
    timestamps: np.ndarray, last_duration: float | None, fps: float, source_fps: float | None = None
) -> np.ndarray:
    """For known timestamps (one per source frame, presentation order), the source index per output.

    The same rule as :class:`Resampler` (used by backends that can read every timestamp first).
    """
    resampler: Resampler[int] = Resampler(fps, source_fps)
    chosen: list[int] = []
    for i, t in enumerate(np.asarray(timestamps, dtype=np.float64).tolist()):
        chosen.extend(index for _, _, index in resampler.push(t, i))
    chosen.extend(index for _, _, index in resampler.finish(last_duration))
    return np.asarray(chosen, dtype=np.int64)


@dataclass(frozen=True)
class Geometry:
    """Output frame geometry: resize the upright frame to ``resize`` (w, h), then crop ``crop_box``.

    ``crop_box`` is (x0, y0, w, h) inside the resized frame, or None for no crop.
    """

    resize: tuple[int, int]
    crop_box: tuple[int, int, int, int] | None

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the frames that come out."""
        if self.crop_box is not None:
            return self.crop_box[2], self.crop_box[3]
        return self.resize

    def crop(self, frames: np.ndarray) -> np.ndarray:
        """Apply the crop to a frame [H, W, 3] or a batch [N, H, W, 3] (a view; no copy)."""
        if self.crop_box is None:
            return frames
        x0, y0, w, h = self.crop_box
        return frames[..., y0 : y0 + h, x0 : x0 + w, :]


MAX_ASPECT = 4
"""The longest side of an output frame, in short sides (``size``): wider than any film (2.76:1)
or 32:9 monitor, and it bounds a frame's bytes whatever strip the source is."""


def output_geometry(width: int, height: int, size: int | None, crop: bool) -> Geometry:
    """Resize so the short side of the (upright, square-pixel) ``width`` x ``height`` is ``size``.

    The long side keeps the aspect ratio (rounded; at least 1 pixel), up to :data:`MAX_ASPECT`
    times ``size``: a frame longer than that for its width is scaled so its long side is that, and
    its short side is then less than ``size``. With ``crop``, the centre square of the short side
    is kept (``size`` x ``size`` but for those strips). ``size=None`` keeps the native size (and
    ``crop`` takes the centre square of side ``min(width, height)``).
    """
    if width < 1 or height < 1:
        raise ValueError(f"bad frame size {width}x{height}")
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if size is None:
        rw, rh = width, height
    elif max(width, height) > MAX_ASPECT * min(width, height):
        # A strip (a 1920x16 banner): its short side at ``size`` would make frames of 26,880 px
        # (18 MB each at 224); the long side stops at MAX_ASPECT * size instead.
        scale = MAX_ASPECT * size / max(width, height)
        rw = MAX_ASPECT * size if width > height else max(1, round(width * scale))
        rh = MAX_ASPECT * size if height > width else max(1, round(height * scale))
    else:
        scale = size / min(width, height)
        # The short side is exactly ``size``; rounding only ever touches the long side.
        rw = size if width <= height else max(size, round(width * scale))
        rh = size if height < width else max(size, round(height * scale))
    side = min(rw, rh)
    box = ((rw - side) // 2, (rh - side) // 2, side, side) if crop else None
    return Geometry(resize=(rw, rh), crop_box=box)
