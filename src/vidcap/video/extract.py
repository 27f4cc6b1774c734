"""Decode one video into a ``.npy`` file of frames, atomically, with bounded memory.

The output is a standard ``.npy`` array ``[n_frames, H, W, 3]`` uint8 RGB (``np.load(path,
mmap_mode="r")`` reads it without loading it). Frames are appended chunk by chunk, so memory does not
grow with the video's length; the frame count is only known at the end (containers' counts are not
trusted), so room for the header is reserved first and the header is written last.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts import atomic_path
from vidcap.video.clips import DEFAULT_CLIP_FRAMES, DEFAULT_MIN_FRACTION, clip_windows
from vidcap.video.decode import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_FPS,
    DEFAULT_SIZE,
    BackendChoice,
    FrameStream,
    decode_with_fallback,
    resolve_backends,
)

# Room reserved for the .npy header: magic, version, length and the dict, padded. 128 bytes holds
# any 4-d uint8 shape (the dict is < 100 characters) and keeps the data 64-byte aligned.
_HEADER_BYTES = 128


class NpyFrameWriter:
    """Append uint8 frames ``[n, H, W, 3]`` to a ``.npy`` file whose length is not known in advance."""

    def __init__(self, path: str | Path, height: int, width: int) -> None:
        self.path = Path(path)
        self.shape = (height, width, 3)
        self.n_frames = 0
        self._file: io.BufferedWriter | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(b"\0" * _HEADER_BYTES)

    def write(self, frames: np.ndarray) -> None:
        """Append frames of shape ``[n, H, W, 3]`` (uint8)."""
        if frames.dtype != np.uint8 or frames.shape[1:] != self.shape:
            raise ValueError(
                f"expected uint8 frames [n, {self.shape}], got {frames.dtype} {frames.shape}"
            )
        assert self._file is not None, "writer is closed"
        self._file.write(memoryview(np.ascontiguousarray(frames)).cast("B"))
        self.n_frames += len(frames)

    def close(self) -> None:
        """Write the header for the frames written so far and close the file."""
        if self._file is None:
            return
        self._file.seek(0)
        self._file.write(_npy_header((self.n_frames, *self.shape)))
        self._file.close()
        self._file = None

    def abort(self) -> None:
        """Close without finishing (the caller discards the file)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A .npy version 1.0 header of exactly ``_HEADER_BYTES`` bytes for a C-order uint8 array."""
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    body_len = _HEADER_BYTES - 10  # magic (6) + version (2) + header length (2)
    body = text.encode("latin1").ljust(body_len - 1, b" ") + b"\n"
    if len(body) != body_len:
        raise ValueError(f"shape {shape} does not fit the reserved .npy header")
    return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + body


def extract_frames(
    path: str | Path,
    out_path: str | Path,
    fps: float = DEFAULT_FPS,
    size: int | None = DEFAULT_SIZE,
    crop: bool = False,
    backend: BackendChoice = "auto",
    clip_frames: int = DEFAULT_CLIP_FRAMES,
    min_clip_fraction: float = DEFAULT_MIN_FRACTION,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    on_attempt: Callable[[str], None] | None = None,
    on_temp: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Decode ``path`` and write its frames to ``out_path`` (``.npy``), atomically.

    Arguments are those of :func:`vidcap.video.decode.open_frames`, plus the clip rule of
    :func:`vidcap.video.clips.clip_windows`. When a backend fails after writing some frames, the
    partial output is thrown away and decoding restarts with the next backend; on any error nothing
    is left at ``out_path``. ``on_attempt`` gets each backend's name before it is tried and
    ``on_temp`` the temporary file's path before it is written (so a parent can delete it if this
    process is killed).

    Returns:
        Metadata (JSON-ready): ``backend``, ``fps``, ``n_frames``, ``height``, ``width``,
        ``duration_s`` (``n_frames / fps``), ``source`` (the container's reported ``width``,
        ``height``, ``fps``, ``duration``, ``n_frames_reported``, ``rotation``,
        ``sample_aspect_ratio``, ``codec``), ``clip_frames``, ``clips`` (a list of ``index``,
        ``start_frame``, ``end_frame``, ``start_s``, ``end_s``), ``warnings`` (sentences) and
        ``failed_backends`` (backend -> why it was given up).

    Raises:
        DecodeError: no backend could decode the video (one readable sentence).
    """
    with atomic_path(out_path) as tmp:
        if on_temp is not None:
            on_temp(tmp)
        # A backend failing after frames were written starts over in the same temp file.
        meta = decode_with_fallback(
            path,
            lambda stream: _write_all(stream, tmp),
            fps,
            size,
            crop,
            resolve_backends(backend),
            chunk_frames,
            on_attempt,
        )
    clips = clip_windows(meta["n_frames"], fps, clip_frames, min_clip_fraction)
    tail = {k: meta.pop(k) for k in ("warnings", "failed_backends")}  # the clips go before these
    return {**meta, "clip_frames": clip_frames, "clips": [c.to_dict() for c in clips], **tail}


def _write_all(stream: FrameStream, tmp: Path) -> None:
    writer: NpyFrameWriter | None = None
    try:
        for chunk in stream:
            if writer is None:  # the frame size is fixed once the first chunk exists
                height, width = chunk.frames.shape[1:3]
                writer = NpyFrameWriter(tmp, height, width)
            writer.write(chunk.frames)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    assert writer is not None, "a stream always yields at least one frame"
    writer.close()
