"""Decoding backends: decord, PyAV, torchcodec and OpenCV behind one small interface.

Each backend lives in its own module and imports its library only when a video is opened, so vidcap
works with any subset installed. A backend opens a video into a :class:`Reader`, which knows the
video's :class:`VideoInfo` and streams upright RGB frames already resampled to a target frame rate
(by presentation timestamps, see :mod:`vidcap.video.resample`) and resized to a target size.
"""

from __future__ import annotations

import abc
import functools
import importlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

BuiltinBackend = Literal["decord", "pyav", "torchcodec", "opencv"]
"""The backends vidcap registers itself (others can be registered at run time)."""
# The order ``backend="auto"`` tries them in: decord is the fastest (it resizes inside the decoder),
# PyAV is the most tolerant of damaged files and about as fast at 1080p; torchcodec (the system's
# FFmpeg, exact timestamps) measured 0.44-0.75x PyAV's speed at 1080p H.264/VP9, ahead of OpenCV
# (0.38-0.59x), which stays the last resort (benchmarks/bench_decode_backends.py, docs/extract.md).
AUTO_ORDER: tuple[str, ...] = get_args(BuiltinBackend)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's stream (reported values; none of them is trusted).

    ``width``/``height`` are the coded frame size before rotation. ``rotation`` is how many degrees
    counter-clockwise (0, 90, 180 or 270) the coded picture must be turned to display it upright, as
    ffmpeg does by default. ``sample_aspect_ratio`` is the pixel shape (1.0 for square pixels).
    """

    width: int
    height: int
    fps: float | None = None
    duration: float | None = None
    n_frames_reported: int | None = None
    rotation: int = 0
    sample_aspect_ratio: float = 1.0
    codec: str | None = None

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown: square pixels, rotation applied."""
        w = max(1, round(self.width * self.sample_aspect_ratio))
        h = self.height
        return (h, w) if self.rotation in (90, 270) else (w, h)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (for metadata)."""
        return asdict(self)


def normalize_rotation(degrees: float | None) -> int:
    """Round any rotation angle to 0, 90, 180 or 270 (counter-clockwise)."""
    if degrees is None:
        return 0
    return round(float(degrees) / 90.0) * 90 % 360


class Reader(abc.ABC):
    """One opened video. Construct it through :func:`open_reader`; close it when done."""

    name: str = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.info: VideoInfo = VideoInfo(width=1, height=1)
        # Non-fatal problems met while decoding (skipped packets, early end): one sentence each.
        self.warnings: list[str] = []
        # Which output frames (by index k) the caller will read; the others come out as None,
        # never converted (nor decoded, where the backend can seek). None: every frame.
        self.wanted: Callable[[int], bool] | None = None

    @abc.abstractmethod
    def frames(
        self, fps: float, resize: tuple[int, int]
    ) -> Iterator[tuple[float, np.ndarray | None]]:
        """Stream ``(source_time, frame)``: one frame for each output time ``k / fps``, in order.

        ``source_time`` is the timestamp (seconds from the first frame) of the source frame chosen;
        ``frame`` is upright RGB uint8 ``[h, w, 3]`` with ``(w, h) == resize``. The frame may be a view
        into a buffer that is reused: copy it before asking for the next one. Decoding runs until the
        stream ends, whatever frame count the container reports. An output that ``self.wanted``
        refuses comes out as ``(source_time, None)``.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the decoder (also done when the reader is garbage-collected)."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Backend:
    """A registered backend: its name, the library it needs and how to open a video with it."""

    name: str
    module: str
    opener: Callable[[Path], Reader] = field(repr=False)

    def available(self) -> bool:
        """True when its library imports (checked once per process)."""
        return _importable(self.module)


@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # a broken install (missing shared library...) counts as missing
        return False
    return True


_REGISTRY: dict[str, Backend] = {}


def register_backend(name: str, module: str, opener: Callable[[Path], Reader]) -> None:
    """Add (or replace) a backend; ``opener(path)`` returns an open :class:`Reader`."""
    _REGISTRY[name] = Backend(name, module, opener)


def unregister_backend(name: str) -> None:
    """Remove a backend (tests, plugins); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name`` (KeyError if there is none)."""
    return _REGISTRY[name]


def backend_names() -> list[str]:
    """Every registered backend, installed or not."""
    return list(_REGISTRY)


def available_backends() -> list[str]:
    """The registered backends whose library is installed, in ``auto`` order first."""
    ordered = [n for n in AUTO_ORDER if n in _REGISTRY] + [
        n for n in _REGISTRY if n not in AUTO_ORDER
    ]
    return [n for n in ordered if _REGISTRY[n].available()]


def open_reader(name: str, path: str | Path) -> Reader:
    """Open ``path`` with backend ``name``; the library's own exceptions propagate as they are."""
    return _REGISTRY[name].opener(Path(path))


def convert_selected(
    selected: list[tuple[int, float, Any]],
    convert: Callable[[Any], np.ndarray],
    memo: list[Any],
    wanted: Callable[[int], bool] | None = None,
) -> Iterator[tuple[float, np.ndarray | None]]:
    """Convert the frames a :class:`~vidcap.video.resample.Resampler` selected, each only once.

    A source frame selected for several consecutive outputs (a rate above the source's) is converted
    once; ``memo`` is a 2-item list ``[handle, array]`` the caller keeps between calls. Outputs
    ``wanted`` refuses are not converted: they come out as None.
    """
    for k, source_time, handle in selected:
        if wanted is not None and not wanted(k):
            yield source_time, None
            continue
        if memo[0] is not handle:
            memo[0], memo[1] = handle, convert(handle)
        yield source_time, memo[1]


BATCH_SPAN_FRAMES = 128
"""Most source frames one batched decoder call may span (:func:`bounded_runs`)."""


def bounded_runs(positions: np.ndarray, most: int, span: float) -> list[range]:
    """Cut sorted ``positions`` (source frames, or times) into runs for one batched decoder call
    each: at most ``most`` items, all less than ``span`` past the run's first.

    A batched call (decord's ``get_batch``, torchcodec's ``get_frames_played_at``) is one long
    silence for the parent's time limit: its frames are handed on only when it returns. Its cost
    grows with the source it spans, which the decoder decodes or seeks through, so a sparse read
    (an image model's few frames of each clip, a low ``--fps``) of a 4K video with long groups of
    pictures could put minutes into one call. Bounded so, a call decodes at most one seek plus
    ``span`` of source. Returns index ranges into ``positions``.
    """
    runs: list[range] = []
    start = 0
    while start < len(positions):
        within = int(np.searchsorted(positions, positions[start] + span, side="left"))
        stop = max(start + 1, min(start + most, within))  # at least one, whatever the bounds
        runs.append(range(start, stop))
        start = stop
    return runs


def _open_decord(path: Path) -> Reader:
    from vidcap.video.backends.decord_backend import DecordReader

    return DecordReader(path)


def _open_pyav(path: Path) -> Reader:
    from vidcap.video.backends.pyav_backend import PyAVReader

    return PyAVReader(path)


def _open_opencv(path: Path) -> Reader:
    from vidcap.video.backends.opencv_backend import OpenCVReader

    return OpenCVReader(path)


def _open_torchcodec(path: Path) -> Reader:
    from vidcap.video.backends.torchcodec_backend import TorchCodecReader

    return TorchCodecReader(path)


register_backend("decord", "decord", _open_decord)
register_backend("pyav", "av", _open_pyav)
register_backend("torchcodec", "torchcodec.decoders", _open_torchcodec)
register_backend("opencv", "cv2", _open_opencv)

__all__ = [
    "AUTO_ORDER",
    "Backend",
    "Reader",
    "VideoInfo",
    "available_backends",
    "backend_names",
    "get_backend",
    "normalize_rotation",
    "open_reader",
    "register_backend",
    "unregister_backend",
]
