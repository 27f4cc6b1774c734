"""Clip windows: cutting a video's fixed-rate frames into clips of ``clip_frames`` frames.

The rule (VideoBERT: 20 fps, 30-frame clips of 1.5 s):

* Clips are consecutive and do not overlap: clip ``i`` covers frames
  ``[i * clip_frames, (i + 1) * clip_frames)``.
* The frames left after the last full clip (a partial clip of ``r`` frames, ``0 < r < clip_frames``)
  form one more clip only if ``r >= ceil(min_fraction * clip_frames)`` (by default half a clip: 15
  frames); otherwise they are dropped.
* A video shorter than one clip (``1 <= n < clip_frames``) always gives exactly one clip.
* A partial clip is padded to ``clip_frames`` by repeating its last frame (:func:`clip_array`).
  ``n_real`` says how many of its frames are real and ``end_s`` is where its real frames end, so a
  caption's timing never covers padding.
* No frames, no clips.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_CLIP_FRAMES = 30
DEFAULT_MIN_FRACTION = 0.5


@dataclass(frozen=True)
class Clip:
    """One clip: frames ``[start_frame, end_frame)`` of the video, shown from ``start_s`` to ``end_s``.

    ``end_frame - start_frame == n_real <= clip_frames``; fewer means the clip is padded.
    """

    index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float

    @property
    def n_real(self) -> int:
        """How many real (not padding) frames the clip has."""
        return self.end_frame - self.start_frame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (for metadata and index lines)."""
        return asdict(self)


def clip_windows(
    n_frames: int,
    fps: float,
    clip_frames: int = DEFAULT_CLIP_FRAMES,
    min_fraction: float = DEFAULT_MIN_FRACTION,
) -> list[Clip]:
    """The clips of a video of ``n_frames`` frames at ``fps`` (see the module docstring for the rule)."""
    if clip_frames < 1:
        raise ValueError(f"clip_frames must be >= 1, got {clip_frames}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be between 0 and 1, got {min_fraction}")
    if n_frames <= 0:
        return []
    full, rest = divmod(n_frames, clip_frames)
    keep_rest = rest > 0 and (full == 0 or rest >= math.ceil(min_fraction * clip_frames))
    clips = []
    for i in range(full + int(keep_rest)):
        start = i * clip_frames
        end = min(start + clip_frames, n_frames)
        clips.append(Clip(i, start, end, round(start / fps, 6), round(end / fps, 6)))
    return clips


def clip_frame_mask(indices: np.ndarray | None, clip_frames: int) -> np.ndarray | None:
    """A boolean mask over a clip's frames from the indices an encoder reads (None: all of them),
    for :func:`vidcap.video.decode.open_frames`'s ``keep``."""
    if indices is None:
        return None
    mask = np.zeros(clip_frames, dtype=bool)
    mask[np.asarray(indices, dtype=np.int64)] = True
    return None if mask.all() else mask


def clip_array(
    frames: np.ndarray, clip: Clip, clip_frames: int = DEFAULT_CLIP_FRAMES
) -> np.ndarray:
    """The clip's frames ``[clip_frames, ...]`` from a video's frames, padded with its last frame.

    ``frames`` can be a memory-mapped ``.npy``: only the clip's frames are read.
    """
    real = np.asarray(frames[clip.start_frame : clip.end_frame])
    if len(real) == 0:
        raise ValueError(f"clip {clip.index} has no frames in an array of {len(frames)}")
    if len(real) >= clip_frames:
        return real[:clip_frames]
    pad = np.repeat(real[-1:], clip_frames - len(real), axis=0)
    return np.concatenate([real, pad])


class ClipCutter:
    """Cuts frames that arrive in chunks into the clips of :func:`clip_windows`, as they complete.

    Memory holds less than one clip of frames plus the chunk being cut. The clips are those
    ``clip_array(all_frames, clip, clip_frames)`` gives for each window, in order.
    """

    def __init__(
        self, fps: float, clip_frames: int = DEFAULT_CLIP_FRAMES,
        min_fraction: float = DEFAULT_MIN_FRACTION,
    ) -> None:  # fmt: skip
        self.fps = fps
        self.clip_frames = clip_frames
        self.min_fraction = min_fraction
        self.reset()

    def reset(self) -> None:
        """Forget every frame (decoding starts over)."""
        self.n_frames = 0
        self.n_clips = 0
        self._pending: list[np.ndarray] = []  # frames not yet in a clip

    def push(self, frames: np.ndarray) -> list[np.ndarray]:
        """Add the next frames ``[n, H, W, 3]``; returns the full clips they complete.

        A clip that lies inside ``frames`` is a view of it, not a copy (chunks as long as a
        clip, as :func:`~vidcap.video.clip_stream.stream_clips` reads them, are never copied):
        do not write into ``frames`` while its clips are in use.
        """
        self.n_frames += len(frames)
        done = []
        start = 0
        if self._pending:  # the clip begun in earlier chunks
            start = min(len(frames), self.clip_frames - len(self._pending))
            self._pending.extend(frames[:start])
            if len(self._pending) == self.clip_frames:
                done.append(np.stack(self._pending))
                self._pending = []
        while len(frames) - start >= self.clip_frames:
            done.append(frames[start : start + self.clip_frames])
            start += self.clip_frames
        self._pending.extend(frames[start:])
        self.n_clips += len(done)
        return done

    def finish(self) -> list[np.ndarray]:
        """After the last frame: the partial last clip, padded, if the clip rule keeps it."""
        windows = self.windows()
        if len(windows) <= self.n_clips:
            return []
        last = windows[-1]
        self.n_clips += 1
        clip = Clip(0, 0, last.n_real, 0.0, 0.0)
        return [clip_array(np.stack(self._pending), clip, self.clip_frames)]

    def windows(self) -> list[Clip]:
        """The clip windows of the frames pushed so far (all of them once :meth:`finish` ran)."""
        return clip_windows(self.n_frames, self.fps, self.clip_frames, self.min_fraction)
