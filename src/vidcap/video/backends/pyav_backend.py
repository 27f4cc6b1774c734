"""The PyAV backend: FFmpeg through PyAV, packet by packet, tolerant of damaged streams.

Frames stay in the decoder's pixel format until the resampler selects them; only selected frames are
converted, and conversion and resizing happen in one swscale call (much cheaper than converting the
full-size frame to RGB and resizing it afterwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.video.backends import Reader, VideoInfo, convert_selected, normalize_rotation
from vidcap.video.child import sign_of_life
from vidcap.video.errors import DecodeError, NoVideoStreamError
from vidcap.video.resample import Resampler

# Area averaging: antialiased when shrinking, fast, and within ~1 grey level of decord's scaler.
_INTERPOLATION = "AREA"


class PyAVReader(Reader):
    """Decode with PyAV. Opening decodes the first frame (it carries the rotation)."""

    name = "pyav"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        import av

        self._av = av
        self._container = av.open(str(path), metadata_errors="ignore")
        try:
            streams = self._container.streams.video
            if not streams:
                kinds = sorted({s.type for s in self._container.streams}) or ["no"]
                raise NoVideoStreamError(
                    f"{path} has no video stream (it holds {', '.join(kinds)} streams only)."
                )
            self._stream = streams[0]
            # Frame threading: several frames decode in parallel; output order is unchanged.
            self._stream.thread_type = "AUTO"
            self._bad_packets = 0
            self._decoded = self._decode()
            self._first = next(self._decoded, None)
            if self._first is None:
                raise DecodeError(
                    f"{path} has a video stream but no frame in it can be decoded "
                    "(the file may be truncated or corrupt)."
                )
            self.info = _stream_info(self._container, self._stream, self._first)
        except BaseException:
            self._container.close()
            raise

    def _decode(self) -> Iterator[Any]:
        """Every decodable frame in presentation order; bad packets are skipped, not fatal."""
        av_error = self._av.error.FFmpegError
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av_error, EOFError) as e:
                # A demuxer error mid-file: a truncated or damaged container. Keep what we have.
                self.warnings.append(f"reading {self.path} stopped early: {_reason(e)}.")
                break
            try:
                frames = packet.decode()  # the last (empty) packet flushes the decoder
            except av_error:
                self._bad_packets += 1
                continue
            for frame in frames:
                sign_of_life()  # each decoded frame, shown or not: a low --fps is not a stall
                yield frame
        if self._bad_packets:
            self.warnings.append(
                f"{self._bad_packets} packet(s) of {self.path} could not be decoded and were "
                "skipped (the file may be corrupt or truncated)."
            )

    def frames(
        self, fps: float, resize: tuple[int, int]
    ) -> Iterator[tuple[float, np.ndarray | None]]:
        rotation = self.info.rotation
        w, h = resize
        if rotation in (90, 270):  # scale the coded picture, then turn it
            w, h = h, w

        def convert(frame: Any) -> np.ndarray:
            rgb = frame.reformat(
                width=w, height=h, format="rgb24", interpolation=_INTERPOLATION
            ).to_ndarray()
            return np.rot90(rgb, k=rotation // 90) if rotation else rgb

        resampler: Resampler[Any] = Resampler(fps, self.info.fps)
        memo: list[Any] = [None, None]
        last = None
        frames = self._decoded
        first, self._first = self._first, None
        if first is None:
            raise RuntimeError("PyAVReader.frames() can only be iterated once")
        for frame in _chain(first, frames):
            last = frame
            yield from convert_selected(
                resampler.push(_seconds(frame), frame), convert, memo, self.wanted
            )
        duration = None
        if last is not None and last.duration and last.time_base is not None:
            duration = float(last.duration * last.time_base)
        # The last frame is always converted: a partial last clip is padded with it.
        yield from convert_selected(resampler.finish(duration), convert, memo)

    def close(self) -> None:
        self._container.close()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _seconds(frame: Any) -> float | None:
    """The frame's presentation time in seconds (None when the stream has no timestamps)."""
    ts = frame.pts if frame.pts is not None else frame.dts
    if ts is None or frame.time_base is None:
        return None
    return float(ts * frame.time_base)


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _stream_info(container: Any, stream: Any, first: Any) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate
    duration = None
    if stream.duration and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    sar = stream.sample_aspect_ratio
    ctx = stream.codec_context
    return VideoInfo(
        width=int(first.width),
        height=int(first.height),
        fps=float(rate) if rate else None,
        duration=duration,
        n_frames_reported=int(stream.frames) or None,
        rotation=normalize_rotation(getattr(first, "rotation", 0)),
        sample_aspect_ratio=float(sar) if sar and sar > 0 else 1.0,
        codec=getattr(ctx, "name", None),
    )


def probe_with_pyav(path: Path) -> VideoInfo:
    """The stream info PyAV reports (decodes one frame, which carries the rotation)."""
    reader = PyAVReader(path)
    try:
        return reader.info
    finally:
        reader.close()


def first_frame_upright(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The first frame, upright RGB at ``size`` (w, h): a reference to compare other backends with."""
    reader = PyAVReader(path)
    try:
        return next(reader.frames(1.0, size))[1].copy()
    finally:
        reader.close()
