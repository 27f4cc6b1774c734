"""Video decoding for ``vidcap extract``: frames at a fixed rate and size, cut into clips.

- :func:`open_frames` / :func:`decode_frames`: stream ``FrameChunk`` s (uint8 RGB, short side
  ``size``, resampled to ``fps`` by presentation timestamps) with decord → PyAV → OpenCV fallback.
- :func:`extract_frames`: one video to an ``.npy`` file (atomic, bounded memory) plus metadata.
- :class:`DecodeWorker` / :func:`extract_frames_with_timeout`: the same in a killable child process.
- :func:`clip_windows`: the clip rule (30-frame clips; a partial last clip kept if at least half).
"""

from __future__ import annotations

from vidcap.video.backends import AUTO_ORDER, VideoInfo, available_backends
from vidcap.video.clips import Clip, clip_array, clip_windows
from vidcap.video.decode import (
    DEFAULT_FPS,
    DEFAULT_SIZE,
    FrameChunk,
    FrameStream,
    decode_frames,
    open_frames,
    probe,
    read_frames,
)
from vidcap.video.errors import (
    BackendUnavailableError,
    DecodeError,
    DecoderCrashedError,
    DecodeTimeoutError,
    NoVideoStreamError,
)
from vidcap.video.extract import extract_frames
from vidcap.video.worker import DecodeWorker, extract_frames_with_timeout, run_with_timeout

__all__ = [
    "AUTO_ORDER",
    "DEFAULT_FPS",
    "DEFAULT_SIZE",
    "BackendUnavailableError",
    "Clip",
    "DecodeError",
    "DecodeTimeoutError",
    "DecodeWorker",
    "DecoderCrashedError",
    "FrameChunk",
    "FrameStream",
    "NoVideoStreamError",
    "VideoInfo",
    "available_backends",
    "clip_array",
    "clip_windows",
    "decode_frames",
    "extract_frames",
    "extract_frames_with_timeout",
    "open_frames",
    "probe",
    "read_frames",
    "run_with_timeout",
]
