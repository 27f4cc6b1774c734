"""Decode a video into fixed-rate, fixed-size RGB frames, in bounded chunks, with backend fallback.

    >>> with open_frames("talk.mp4", fps=20, size=224) as stream:    # doctest: +SKIP
    ...     for chunk in stream:          # FrameChunk: frames [n, H, W, 3] uint8 RGB
    ...         consume(chunk.frames)
    ...     stream.backend, stream.warnings

Fallback (``backend="auto"``: decord, then PyAV, torchcodec, OpenCV): a backend that is missing, cannot
open the file or fails before the first chunk has been handed out is replaced by the next one,
invisibly. Files over ``DECORD_MAX_BYTES`` skip decord when another backend follows it (memory). A failure after output has started cannot be undone by an iterator: it raises
:class:`DecodeError` with ``partial=True`` and ``stream.remaining_backends`` says what is left to try.
:func:`vidcap.video.extract.extract_frames` handles that by discarding its output file and
restarting with those backends.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.video.backends import (
    AUTO_ORDER,
    Reader,
    VideoInfo,
    backend_names,
    get_backend,
    open_reader,
)
from vidcap.video.child import sign_of_life
from vidcap.video.errors import BackendUnavailableError, DecodeError, UnreadableFileError
from vidcap.video.resample import Geometry, output_geometry

DEFAULT_FPS = 20.0
DEFAULT_SIZE = 224
DEFAULT_CHUNK_FRAMES = 32

# decord's CPU reader ends up holding roughly the whole compressed file in memory (measured: 1.2 GB
# of RSS for a 1.16 GB 10-minute 1080p H.264 file, 69 MB for a 0.7 MB one of the same length). When
# another backend can follow it, larger files skip decord; PyAV is as fast at such sizes and its
# memory stays flat. A single explicitly requested backend is always used.
DECORD_MAX_BYTES = 128 * 2**20

BackendChoice = str | Sequence[str]


@dataclass
class FrameChunk:
    """Consecutive output frames: ``frames[i]`` is output frame ``start + i``, shown at its ``times[i]``."""

    frames: np.ndarray  # [n, H, W, 3] uint8 RGB, a fresh array the caller may keep
    start: int
    fps: float
    source_times: np.ndarray  # [n] float64: timestamp (s from the first frame) of each source frame

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def times(self) -> np.ndarray:
        """Output times in seconds: ``(start + i) / fps``."""
        return (self.start + np.arange(len(self.frames))) / self.fps


@dataclass
class FrameStream:
    """An opened video. Iterate it (once) for :class:`FrameChunk` s; close it (or use ``with``).

    ``backend`` is the backend producing the frames (it can change while iterating only before the
    first chunk is handed out); ``failed`` maps each backend that was tried and gave up to why.
    """

    path: Path
    fps: float
    size: int | None
    crop: bool
    chunk_frames: int
    backend: str
    info: VideoInfo
    geometry: Geometry
    remaining_backends: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    n_frames: int = 0  # frames handed out so far
    _reader: Reader | None = field(default=None, repr=False)
    _frames: Iterator[tuple[float, np.ndarray | None]] | None = field(default=None, repr=False)
    _pending: tuple[float, np.ndarray | None] | None = field(default=None, repr=False)
    _on_attempt: Callable[[str], None] | None = field(default=None, repr=False)
    _keep: np.ndarray | None = field(default=None, repr=False)
    _warnings: list[str] = field(default_factory=list, repr=False)
    _started: bool = field(default=False, repr=False)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of every output frame."""
        return self.geometry.output_size

    @property
    def warnings(self) -> list[str]:
        """Non-fatal problems (skipped packets, a stream shorter than reported), one sentence each."""
        reader_warnings = self._reader.warnings if self._reader is not None else []
        return [*reader_warnings, *self._warnings]

    def output_limit(self) -> int | None:
        """The most frames this stream hands out: twice the container's reported duration plus a
        minute (None when it reports none).

        The time limit on a decoder is on its silence, and a stream whose timestamps jump (a
        broken or spliced file) makes the resampler repeat a frame for the whole gap, every frame
        a sign of life: without a bound, a 10-second file could fill the disk with hours of one
        frame. The bound is generous, so a header that understates a real video's length a
        little loses nothing.
        """
        if not self.info.duration:
            return None
        return math.ceil((2.0 * self.info.duration + 60.0) * self.fps)

    def __iter__(self) -> Iterator[FrameChunk]:
        if self._started:
            raise RuntimeError("a FrameStream can only be iterated once")
        self._started = True
        w, h = self.frame_size
        # Rows of frames nobody will read stay zeros (their frames were never converted).
        allocate = np.empty if self._keep is None else np.zeros
        while True:
            buffer = allocate((self.chunk_frames, h, w, 3), dtype=np.uint8)
            times = np.empty(self.chunk_frames, dtype=np.float64)
            n = 0
            limit = self.output_limit()
            try:
                while n < self.chunk_frames:
                    if limit is not None and self.n_frames + n >= limit:
                        self._stop_at_limit(limit)
                        break
                    item = self._next_frame()
                    if item is None:
                        break
                    sign_of_life()  # a slow chunk is not a silent decoder (see video.child)
                    times[n] = item[0]
                    if item[1] is not None:
                        buffer[n] = self.geometry.crop(item[1])
                    n += 1
            except Exception as e:
                if self.n_frames == 0 and self.remaining_backends:
                    # Nothing handed out yet: switch backend as if this one had failed to open.
                    self._switch_backend(e)
                    w, h = self.frame_size
                    continue
                raise self._midstream_error(e) from e
            if n:
                chunk = FrameChunk(buffer[:n], self.n_frames, self.fps, times[:n])
                self.n_frames += n
                yield chunk
            if n < self.chunk_frames:
                self._check_length()
                return

    def _stop_at_limit(self, limit: int) -> None:
        """Past :meth:`output_limit`: the rest of the stream is dropped, with a warning."""
        if self._frames is not None and hasattr(self._frames, "close"):
            self._frames.close()  # the backend's generator: nothing more is read from it
        self._frames = iter(())
        self._pending = None
        self._warnings.append(
            f"{self.path} was cut after {limit / self.fps:.0f} s of output: its container reports "
            f"{self.info.duration:.2f} s, and its timestamps run past twice that (the file is "
            "broken or spliced)."
        )

    def _next_frame(self) -> tuple[float, np.ndarray | None] | None:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        assert self._frames is not None
        return next(self._frames, None)

    def _switch_backend(self, error: BaseException) -> None:
        self.failed[self.backend] = describe_error(error)
        self.close()
        self._warnings = []  # they were about the backend given up
        candidates, self.remaining_backends = self.remaining_backends, []
        opened = _open_first(
            self.path, candidates, self.fps, self.size, self.crop, self._on_attempt, self._keep
        )
        self.failed.update(opened.failed)
        self._adopt(opened)

    def _adopt(self, other: FrameStream) -> None:
        for name in ("backend", "info", "geometry", "remaining_backends"):
            setattr(self, name, getattr(other, name))
        self._reader, self._frames, self._pending = other._reader, other._frames, other._pending
        other._reader, other._frames = None, None

    def _midstream_error(self, error: BaseException) -> DecodeError:
        partial = self.n_frames > 0
        if isinstance(error, DecodeError):
            error.partial = partial
            return error
        after = f" after {self.n_frames} frames" if partial else ""
        return DecodeError(
            f"decoding {self.path} with {self.backend} failed{after} ({describe_error(error)}).",
            partial=partial,
        )

    def _check_length(self) -> None:
        reported = self.info.duration
        decoded = self.n_frames / self.fps
        if reported and decoded < 0.9 * reported - 0.5:
            self._warnings.append(
                f"{self.path} gave {decoded:.2f} s of video but its container reports "
                f"{reported:.2f} s (the file may be truncated, or its header is wrong)."
            )

    def close(self) -> None:
        """Release the decoder. Safe to call more than once."""
        if self._reader is not None:
            # Keep the reader's warnings: they are read after the stream is closed.
            self._warnings = [*self._reader.warnings, *self._warnings]
            self._reader.close()
            self._reader = None
        if self._frames is not None and hasattr(self._frames, "close"):
            self._frames.close()  # a backend generator: release its decoder references now
        self._frames = None

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_frames(
    path: str | Path,
    fps: float = DEFAULT_FPS,
    size: int | None = DEFAULT_SIZE,
    crop: bool = False,
    backend: BackendChoice = "auto",
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    on_attempt: Callable[[str], None] | None = None,
    keep: np.ndarray | None = None,
) -> FrameStream:
    """Open ``path`` for decoding at ``fps`` frames per second, short side ``size`` (optional crop).

    Args:
        path: the video file.
        fps: output frame rate. Output frame ``k`` is the source frame shown at ``k / fps`` s (the
            latest one whose timestamp is ``<=`` that), so variable frame rates come out even.
        size: the short side of the output frames in pixels (the long side keeps the aspect ratio);
            None keeps the source size.
        crop: keep only the centre ``size`` x ``size`` square.
        backend: ``"auto"`` (decord, PyAV, OpenCV: the first that works), one backend name, or a
            list of names to try in order.
        chunk_frames: frames per chunk; memory use is about ``chunk_frames`` output frames plus one
            decoder, whatever the video's length or resolution.
        on_attempt: called with each backend's name before it is tried (progress reporting).
        keep: a boolean mask, repeating: output frame ``k`` is read only if ``keep[k % len(keep)]``
            (the frames of each clip an encoder consumes). The others are never converted or
            resized (nor decoded, by backends that seek) and their rows in a chunk are zeros.

    Raises:
        DecodeError: the file is missing, empty, not a video, has no video stream, or no backend
            could decode a frame of it (the message says which).
        BackendUnavailableError: the backend asked for is unknown or not installed.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    video = check_video_file(path)
    candidates = resolve_backends(backend)
    if keep is not None:
        keep = np.asarray(keep, dtype=bool)
        if keep.ndim != 1 or len(keep) == 0:
            raise ValueError("keep must be a non-empty 1-d boolean mask")
    stream = _open_first(video, candidates, fps, size, crop, on_attempt, keep)
    stream.chunk_frames = chunk_frames
    return stream


def decode_with_fallback(
    path: str | Path,
    consume: Callable[[FrameStream], None],
    fps: float = DEFAULT_FPS,
    size: int | None = DEFAULT_SIZE,
    crop: bool = False,
    backend: BackendChoice = "auto",
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    on_attempt: Callable[[str], None] | None = None,
    keep: np.ndarray | None = None,
) -> dict[str, Any]:
    """Open ``path`` (as :func:`open_frames`) and give the stream to ``consume``. When a backend
    fails after output started, ``consume`` is called again with a stream from the remaining
    backends, and must start over (throw away what it made of the first).

    Returns:
        The decoding metadata (JSON-ready): ``backend``, ``fps``, ``n_frames``, ``height``,
        ``width``, ``duration_s`` (``n_frames / fps``), ``source`` (the container's reported
        settings), ``warnings`` (sentences) and ``failed_backends`` (backend -> why it was given up).

    Raises:
        DecodeError: no backend could decode the video (one readable sentence).
    """
    candidates: BackendChoice = backend
    failed: dict[str, str] = {}
    while True:
        stream = open_frames(path, fps, size, crop, candidates, chunk_frames, on_attempt, keep)
        try:
            consume(stream)
            break
        except DecodeError as e:
            if not (e.partial and stream.remaining_backends):
                raise
            failed.update(stream.failed)
            failed[stream.backend] = str(e)
            candidates = stream.remaining_backends
        finally:
            stream.close()
    failed.update(stream.failed)
    width, height = stream.frame_size
    return {
        "backend": stream.backend,
        "fps": float(fps),
        "n_frames": stream.n_frames,
        "height": height,
        "width": width,
        "duration_s": round(stream.n_frames / fps, 6),
        "source": stream.info.to_dict(),
        "warnings": stream.warnings,
        "failed_backends": failed,
    }


def decode_frames(
    path: str | Path,
    fps: float = DEFAULT_FPS,
    size: int | None = DEFAULT_SIZE,
    crop: bool = False,
    backend: BackendChoice = "auto",
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
) -> Iterator[FrameChunk]:
    """Yield the chunks of :func:`open_frames` (same arguments) and close the decoder at the end.

    The file is opened at the first ``next()``. Use :func:`open_frames` to learn which backend ran.
    """
    with open_frames(path, fps, size, crop, backend, chunk_frames) as stream:
        yield from stream


def read_frames(
    path: str | Path,
    fps: float = DEFAULT_FPS,
    size: int | None = DEFAULT_SIZE,
    crop: bool = False,
    backend: BackendChoice = "auto",
) -> np.ndarray:
    """All output frames in one array ``[n, H, W, 3]`` (short videos, tests, single-video inference)."""
    chunks = [c.frames for c in decode_frames(path, fps, size, crop, backend)]
    return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]


def probe(path: str | Path, backend: BackendChoice = "auto") -> tuple[str, VideoInfo]:
    """The first backend that can open ``path`` and what it reports about the video stream."""
    with open_frames(path, backend=backend, chunk_frames=1) as stream:
        return stream.backend, stream.info


# --------------------------------------------------------------------------------------------------
# Opening with fallback


def _open_first(
    path: Path,
    candidates: Sequence[str],
    fps: float,
    size: int | None,
    crop: bool,
    on_attempt: Callable[[str], None] | None,
    keep: np.ndarray | None = None,
) -> FrameStream:
    """Open with the first candidate that decodes a frame; explain the failure if none does."""
    failed: dict[str, str] = {}
    errors: dict[str, BaseException] = {}
    for i, name in enumerate(candidates):
        if not get_backend(name).available():
            failed[name] = f"{get_backend(name).module} is not installed"
            continue
        skip = _skip_reason(name, path, has_fallback=i + 1 < len(candidates))
        if skip:
            failed[name] = skip
            continue
        if on_attempt is not None:
            on_attempt(name)
        reader: Reader | None = None
        try:
            reader = open_reader(name, path)
            if keep is not None:
                reader.wanted = lambda k: bool(keep[k % len(keep)])
            geometry = output_geometry(*reader.info.display_size, size=size, crop=crop)
            frames = reader.frames(fps, geometry.resize)
            first = next(frames, None)
            if first is None:
                raise DecodeError(f"{name} decoded no frame from {path}.")
        except Exception as e:
            if reader is not None:
                reader.close()
            failed[name] = describe_error(e)
            errors[name] = e
            continue
        return FrameStream(
            path=path,
            fps=float(fps),
            size=size,
            crop=crop,
            chunk_frames=DEFAULT_CHUNK_FRAMES,
            backend=name,
            info=reader.info,
            geometry=geometry,
            remaining_backends=list(candidates[i + 1 :]),
            failed=failed,
            _reader=reader,
            _frames=frames,
            _pending=(first[0], None if first[1] is None else first[1].copy()),
            _on_attempt=on_attempt,
            _keep=keep,
        )
    raise _explain_failure(path, failed, errors)


def _skip_reason(name: str, path: Path, has_fallback: bool) -> str | None:
    """Why a backend should not even be tried on this file when another one can take it."""
    if name == "decord" and has_fallback:
        size = path.stat().st_size
        if size > DECORD_MAX_BYTES:
            return (
                f"skipped: the file is {size / 2**20:.0f} MiB and decord holds about as much "
                "memory as the compressed file"
            )
    return None


def resolve_backends(backend: BackendChoice) -> list[str]:
    """The backend names to try, in order, for ``backend`` ("auto", a name, or a list of names)."""
    names = (
        list(AUTO_ORDER)
        if backend == "auto"
        else [backend]
        if isinstance(backend, str)
        else list(backend)
    )
    known = backend_names()
    for name in names:
        if name not in known:
            choices = ", ".join(["auto", *known])
            raise BackendUnavailableError(
                f"unknown video backend {name!r}: choose one of {choices}."
            )
    if not any(get_backend(n).available() for n in names):
        if backend == "auto":
            raise BackendUnavailableError(
                "no video decoding library is installed: install decord, av (PyAV), "
                "torchcodec or opencv-python-headless."
            )
        needed = ", ".join(get_backend(n).module for n in names)
        how = "; ".join(_INSTALL[n] for n in names if n in _INSTALL)
        raise BackendUnavailableError(
            f"the {' / '.join(names)} video backend needs {needed}, which is not installed"
            + (f": {how}." if how else ".")
        )
    return names


_INSTALL = {  # how to install each backend's library
    "decord": "pip install decord (Linux x86_64 only)",
    "pyav": "pip install av",
    "torchcodec": "pip install 'vidcap[torchcodec]', the build for your torch (see docs/extract.md)",
    "opencv": "pip install opencv-python-headless",
}


# --------------------------------------------------------------------------------------------------
# Errors as sentences


def check_video_file(path: str | Path) -> Path:
    """Fail early, with a plain sentence, on a path that cannot be a readable video file."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():  # the link is there; what it points to is not
            raise DecodeError(
                f"{p} is a symbolic link to {os.readlink(p)}, which does not exist."
            ) from None
        raise DecodeError(f"{p} does not exist (missing file).") from None
    except PermissionError as e:  # a folder above it that this user may not enter
        raise UnreadableFileError(f"{p} cannot be accessed ({e.strerror or e}).") from None
    except OSError as e:
        raise DecodeError(f"{p} cannot be accessed ({e.strerror or e}).") from None
    if p.is_dir():
        raise DecodeError(f"{p} is a directory, not a video file.")
    if not p.is_file():
        raise DecodeError(f"{p} is not a regular file.")
    if st.st_size == 0:
        raise DecodeError(f"{p} is empty (0 bytes).")
    if not os.access(p, os.R_OK):
        raise UnreadableFileError(f"{p} cannot be read (permission denied).")
    return p


# decord's messages: log prefixes ("[07:24:46] .../threaded_decoder.cc:292: "), one per nested
# rethrow, and the C++ assertion that failed ("Check failed: st_nb >= 0 (-1128613112 vs. 0) "),
# before the words that say what happened.
_LOG_PREFIX = re.compile(r"^(\[[\d:]+\]\s+\S+:\d+:\s*)+(Error:\s*)?")
_FAILED_CHECK = re.compile(r"Check failed: .*?\(-?\d+ vs\. -?\d+\)\s*")


def describe_error(error: BaseException) -> str:
    """A one-line description of a backend's exception (decord's log prefixes stripped)."""
    if isinstance(error, DecodeError):
        return str(error)
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    text = _FAILED_CHECK.sub("", _LOG_PREFIX.sub("", lines[0])) if lines else ""
    text = text or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _explain_failure(
    path: Path, failed: dict[str, str], errors: dict[str, BaseException]
) -> DecodeError:
    """One sentence for a file that no backend could open, from PyAV's diagnosis when possible."""
    pyav_error = errors.get("pyav")
    if pyav_error is None and get_backend("pyav").available():
        try:
            open_reader("pyav", path).close()
        except Exception as e:
            pyav_error = e
    if isinstance(pyav_error, DecodeError):
        return pyav_error  # already a precise sentence (no video stream, no decodable frame)
    if pyav_error is not None:
        return DecodeError(_unreadable_sentence(path))
    tried = "; ".join(f"{name}: {why}" for name, why in failed.items())
    return DecodeError(f"{path} could not be decoded ({tried}).")


def _unreadable_sentence(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        head = b""
    kind = _container_kind(head)
    if kind:
        return (
            f"{path} looks like {kind} file but cannot be read: it is probably truncated "
            "(an incomplete download or copy) or damaged."
        )
    if _looks_like_text(head):
        return f"{path} is a text file, not a video."
    return f"{path} is not a video file that PyAV, decord or OpenCV can read."


def _container_kind(head: bytes) -> str | None:
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide"):
        return "an MP4/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "a Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI"
    return None


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the 4096-byte boundary is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * len(text)
