"""Small test videos made on the fly (OpenCV and the ffmpeg binary), how to read them back, and
test-only decoding backends that hang or crash on them.

Frame ``i`` of a "coded" video shows the bits of ``i`` as 8 horizontal bands (white = 1, top band =
bit 0), which survives lossy codecs, resizing and centre crops, so a test can tell which source
frame each output frame came from.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidcap.video.backends import Reader
from vidcap.video.backends.pyav_backend import PyAVReader

FFMPEG = shutil.which("ffmpeg")
N_BITS = 8


def coded_frame(i: int, height: int = 64, width: int = 96) -> np.ndarray:
    """An RGB frame whose horizontal bands spell ``i`` in binary."""
    frame = np.zeros((height, width, 3), np.uint8)
    for bit in range(N_BITS):
        if (i >> bit) & 1:
            frame[bit * height // N_BITS : (bit + 1) * height // N_BITS] = 255
    return frame


def read_code(frame: np.ndarray) -> int:
    """The number a :func:`coded_frame` shows (after any resize or centre crop)."""
    h = frame.shape[0]
    rows = [(bit * h // N_BITS + (bit + 1) * h // N_BITS) // 2 for bit in range(N_BITS)]
    return sum(1 << bit for bit, row in enumerate(rows) if frame[row].mean() > 127)


def read_codes(frames: np.ndarray) -> list[int]:
    return [read_code(f) for f in frames]


def quadrant_frame(height: int = 240, width: int = 320) -> np.ndarray:
    """RGB: red top-left, green top-right, blue bottom-left, white bottom-right."""
    f = np.zeros((height, width, 3), np.uint8)
    f[: height // 2, : width // 2] = (255, 0, 0)
    f[: height // 2, width // 2 :] = (0, 255, 0)
    f[height // 2 :, : width // 2] = (0, 0, 255)
    f[height // 2 :, width // 2 :] = 255
    return f


def quadrants(frame: np.ndarray) -> list[tuple[int, int, int]]:
    """The colour (each channel 0 or 1) at the centre of each quadrant: TL, TR, BL, BR."""
    h, w = frame.shape[:2]
    points = [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]
    return [tuple(int(c > 127) for c in frame[int(h * y), int(w * x)]) for y, x in points]


@functools.cache
def ffmpeg_encoders() -> frozenset[str]:
    if FFMPEG is None:
        return frozenset()
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    ).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def ffmpeg(*args: str, input: bytes | None = None) -> None:
    """Run ffmpeg quietly; raise with its stderr if it fails."""
    assert FFMPEG is not None
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    if input is not None:
        cmd.remove("-nostdin")
    result = subprocess.run(cmd, input=input, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {result.stderr.decode(errors='replace')}")


def truncated_copy(video: Path, to: Path) -> Path:
    """The first half of ``video`` as an MP4 with its index first (faststart), as a download cut
    short leaves it: its first part decodes, and the container still gives the whole length."""
    whole = to.with_name(f"whole-{to.name}")
    ffmpeg("-i", str(video), "-c", "copy", "-movflags", "+faststart", str(whole))
    to.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return to


def encode(
    path: Path,
    frames: Sequence[np.ndarray] | np.ndarray,
    fps: float,
    codec_args: Sequence[str] = ("-c:v", "libx264", "-pix_fmt", "yuv420p"),
    filters: str | None = None,
    pix_fmt_in: str = "rgb24",
) -> Path:
    """Encode RGB (or gray, with ``pix_fmt_in="gray"``) frames with ffmpeg."""
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    vf = ["-vf", filters] if filters else []
    ffmpeg(
        *("-f", "rawvideo", "-pix_fmt", pix_fmt_in, "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"),
        *vf,
        *codec_args,
        str(path),
        input=np.ascontiguousarray(frames).tobytes(),
    )
    return path


def write_cv2(path: Path, frames: np.ndarray, fps: float, fourcc: str = "MJPG") -> Path:
    """Write RGB (or [n, h, w] gray) frames with OpenCV's VideoWriter (no ffmpeg binary needed)."""
    import cv2

    frames = np.asarray(frames)
    color = frames.ndim == 4
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), color)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]) if color else f)
    writer.release()
    return path


def coded_frames(n: int, height: int = 64, width: int = 96) -> np.ndarray:
    return np.stack([coded_frame(i, height, width) for i in range(n)])


def overstate_avi_frame_count(path: Path, count: int) -> None:
    """Rewrite an AVI's header frame counts (``avih.dwTotalFrames`` and the video ``strh.dwLength``)
    to ``count``: the container then reports more frames (and a longer duration) than it holds."""
    data = bytearray(path.read_bytes())
    avih = data.find(b"avih")
    strh = data.find(b"strh")
    assert avih > 0 and strh > 0 and data[strh + 8 : strh + 12] == b"vids"
    struct.pack_into("<I", data, avih + 8 + 16, count)  # MainAVIHeader.dwTotalFrames
    struct.pack_into("<I", data, strh + 8 + 32, count)  # AVIStreamHeader.dwLength
    path.write_bytes(bytes(data))


def expected_codes(timestamps: Sequence[float], end: float, fps: float = 20.0) -> list[int]:
    """Which source frame each output frame should show: the latest with timestamp <= k / fps."""
    out = []
    k = 0
    while k / fps < end - 1e-9:
        t = k / fps
        out.append(max(i for i, ts in enumerate(timestamps) if ts <= t + 1e-6))
        k += 1
    return out


# Test-only decoding backends (registered by conftest's ``fake_backends`` fixture). They reach a
# decode worker's child only through fork, which copies this process's backend registry.
fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to carry test backends")


class HangingReader(Reader):
    """Hangs while decoding (like decord deadlocking on a bad frame count)."""

    name = "hanging"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.info = PyAVReader(path).info

    def frames(self, fps: float, resize: tuple[int, int]) -> Iterator[tuple[float, np.ndarray]]:
        time.sleep(3600)
        yield 0.0, np.zeros((resize[1], resize[0], 3), np.uint8)


class StallingReader(Reader):
    """Gives 40 frames (as PyAV), then hangs: a decoder stuck mid-file, after signs of life."""

    name = "stalling"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reader = PyAVReader(path)
        self.info = self.reader.info

    def frames(self, fps: float, resize: tuple[int, int]) -> Iterator[tuple[float, np.ndarray]]:
        for n, item in enumerate(self.reader.frames(fps, resize)):
            if n == 40:
                time.sleep(3600)
            yield item


class JumpingReader(Reader):
    """A file whose container claims 1 s but whose timestamps then run on (a splice, a jump of a
    day): the resampler would repeat its frames for the whole gap. Endless here."""

    name = "jumping"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.info = dataclasses.replace(PyAVReader(path).info, duration=1.0)

    def frames(self, fps: float, resize: tuple[int, int]) -> Iterator[tuple[float, np.ndarray]]:
        frame = np.zeros((resize[1], resize[0], 3), np.uint8)
        for k in itertools.count():
            yield k / fps, frame


class SlowReader(Reader):
    """Decodes correctly (as PyAV) but slowly: 50 ms per frame, like a long high-resolution video
    on a busy machine. Never silent for long, so no time limit on silence should stop it."""

    name = "slow"
    delay_s = 0.05

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reader = PyAVReader(path)
        self.info = self.reader.info

    def frames(self, fps: float, resize: tuple[int, int]) -> Iterator[tuple[float, np.ndarray]]:
        for item in self.reader.frames(fps, resize):
            time.sleep(self.delay_s)
            yield item


class SlowSourceReader(PyAVReader):
    """PyAV, 50 ms per source frame decoded: read at a low frame rate, seconds pass between two
    output frames (a long-GOP 4K file at --fps 0.5) with every decoded frame a sign of life."""

    name = "slow-source"

    def _decode(self) -> Iterator[Any]:
        for frame in super()._decode():
            yield frame
            time.sleep(0.05)


def crashing_reader(path: Path) -> Reader:
    """A backend whose decoder segfaults on opening ``path`` (kills the process it runs in)."""
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def trap_reader(path: Path) -> Reader:
    """PyAV, except for files named hang* (the decoder hangs) and crash* (it segfaults)."""
    if path.name.startswith("hang"):
        return HangingReader(path)
    if path.name.startswith("crash"):
        return crashing_reader(path)
    return PyAVReader(path)


def trap_bundle_copy(bundle: Path, to: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``bundle`` at ``to`` that decodes with :func:`trap_reader` in forked decode
    workers (which inherit the test-only backend, registered here; unregister ``trap`` after)."""
    import json

    from vidcap.inference import pipeline
    from vidcap.video import DecodeWorker
    from vidcap.video.backends import register_backend

    shutil.copytree(bundle, to)
    info = json.loads((to / "vidcap.json").read_text())
    info["extract"]["backend"] = "trap"
    (to / "vidcap.json").write_text(json.dumps(info))
    register_backend("trap", "av", trap_reader)
    monkeypatch.setattr(pipeline, "DecodeWorker", functools.partial(DecodeWorker, "fork"))
    return to


def interrupt_while_decoding(
    args: Sequence[str], ready: Callable[[], bool] = lambda: True, wait_s: float = 120.0
) -> tuple[int, str, list[int]]:
    """Run ``python -m vidcap *args``, press Ctrl-C once a decode child runs (and ``ready()``
    holds) and decoding has gone on for a second; returns (exit status, stderr, the pids of the
    decode children it had, to check that they are gone)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidcap", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as a terminal's Ctrl-C finds it, even when pytest runs in the background (`cmd &`
        # starts with SIGINT ignored, and Python then never raises KeyboardInterrupt)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + wait_s
        children: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            children = _decode_children(proc.pid)
            if children and ready():
                break
        assert children and proc.poll() is None, "the decoder child never started"
        time.sleep(1.0)  # decoding under way
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, stderr, children


def _decode_children(pid: int) -> list[int]:
    """The decode workers ``pid`` started (from any of its threads), not multiprocessing's
    resource tracker, which ends after its parent."""
    tasks = Path(f"/proc/{pid}/task").glob("*/children")
    found = [int(c) for task in tasks for c in _read(task).split()]
    return [c for c in found if "spawn_main" in _read(Path(f"/proc/{c}/cmdline"))]


def _read(proc_file: Path) -> str:
    try:
        return proc_file.read_text()
    except OSError:  # its thread or process ended meanwhile
        return ""
