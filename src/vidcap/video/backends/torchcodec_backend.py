"""The torchcodec backend: PyTorch's maintained FFmpeg decoder (the system's FFmpeg libraries).

Opening scans the file once (``seek_mode="exact"``: every frame's timestamp, no decoding). Output
frame k is then asked for by time, ``get_frames_played_at(begin + k / fps)``, a bounded batch at a
time: torchcodec decodes in order and converts and resizes (in FFmpeg's filter graph,
``torchcodec.transforms.Resize``: bilinear, antialiased) only the frames shown, the same ones the
:class:`~vidcap.video.resample.Resampler` picks for the other backends. torchcodec turns rotated
videos upright itself. Outputs ``wanted`` refuses (other than the last, which pads a partial
clip) are never asked for: they come out as None, with their own output time as ``source_time``
(the public API gives a frame's timestamp only by decoding it; nothing reads these).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.video.backends import (
    BATCH_SPAN_FRAMES,
    Reader,
    VideoInfo,
    bounded_runs,
    normalize_rotation,
)
from vidcap.video.errors import DecodeError, NoVideoStreamError
from vidcap.video.resample import TIME_EPS

# Output frames per get_frames_played_at call, and the most bytes one batch may hold.
_BATCH_FRAMES = 32
_BATCH_BYTES = 64 * 1024 * 1024


class TorchCodecReader(Reader):
    """Decode with torchcodec's ``VideoDecoder`` on the CPU (exact seek mode: a full index scan)."""

    name = "torchcodec"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from torchcodec.decoders import VideoDecoder

        self._decoder_class = VideoDecoder
        probe = self._open(None)
        meta = probe.metadata
        if len(probe) < 1:
            raise DecodeError(
                f"{path} has a video stream but no frame in it can be decoded "
                "(the file may be truncated or corrupt)."
            )
        self.info = _stream_info(meta)
        self._begin = 0.0

    def _open(self, resize: tuple[int, int] | None) -> Any:
        from torchcodec.transforms import Resize

        transforms = None if resize is None else [Resize((resize[1], resize[0]))]
        try:
            return self._decoder_class(
                str(self.path),
                dimension_order="NHWC",
                num_ffmpeg_threads=0,  # FFmpeg's own choice, as PyAV's thread_type="AUTO"
                seek_mode="exact",
                transforms=transforms,
            )
        except ValueError as e:
            if "No valid stream" in str(e) or "no video stream" in str(e).lower():
                raise NoVideoStreamError(f"{self.path} has no video stream.") from e
            raise

    def frames(
        self, fps: float, resize: tuple[int, int]
    ) -> Iterator[tuple[float, np.ndarray | None]]:
        # torchcodec rotates first and resizes the upright picture: resize is already (w, h) upright.
        decoder = self._open(resize)
        w, h = resize
        step = max(1, min(_BATCH_FRAMES, _BATCH_BYTES // (w * h * 3)))
        times = self._output_times(decoder.metadata, fps)
        last = len(times) - 1
        # The scanned rate, not the header's (some files' headers give 90000 fps).
        span_s = BATCH_SPAN_FRAMES / (decoder.metadata.average_fps or self.info.fps or fps)
        # Outputs not asked for, handed out only once a decoded frame follows them: a stream cut
        # short by a damaged file then still ends on a converted frame (a partial last clip is
        # padded with it), as the other backends' streams do.
        unasked: list[int] = []
        for outputs in bounded_runs(np.asarray(times), step, span_s):
            asked = [k for k in outputs if self.wanted is None or k == last or self.wanted(k)]
            batches, error = _decode_at(decoder, [times[k] for k in asked]) if asked else ([], None)
            decoded = (
                (source_time, batch.data[i].numpy())
                for batch in batches
                for i, source_time in enumerate((batch.pts_seconds - self._begin).tolist())
            )
            skipped = set(outputs).difference(asked)
            for k in outputs:
                if k in skipped:
                    unasked.append(k)
                    continue
                item = next(decoded, None)
                if item is None:  # decoding stopped before this frame (error is set)
                    break
                yield from ((times[j] - self._begin, None) for j in unasked)
                unasked.clear()
                yield item
            if error is not None:
                # A damaged or missing packet mid-file: keep what was decoded, as PyAV does.
                self.warnings.append(
                    f"reading {self.path} stopped early (the file may be truncated or corrupt): "
                    f"{error}."
                )
                return

    def _output_times(self, meta: Any, fps: float) -> list[float]:
        """The stream times to show, ``begin + k / fps``, by the Resampler's rule.

        Output k shows the latest frame whose timestamp is at most ``k / fps`` (+ ``TIME_EPS`` for
        rounded container timestamps), for every k before the end of the last frame; torchcodec's
        exact-mode index of every frame's timestamp and duration answers that without converting
        the frames no output shows.
        """
        begin, end = float(meta.begin_stream_seconds), float(meta.end_stream_seconds)
        self._begin = begin
        count = max(1, math.ceil((end - begin - TIME_EPS) * fps - 1e-9))
        # Nudged just inside the stream for the last output, which torchcodec refuses at its end.
        return [min(begin + k / fps + TIME_EPS, end - 1e-6) for k in range(count)]


def _decode_at(decoder: Any, times: list[float]) -> tuple[list[Any], str | None]:
    """The frames shown at ``times`` as FrameBatches, and why decoding stopped early (or None).

    A batch fails as a whole when one of its frames cannot be decoded (a file cut short whose index
    still lists every frame); the frames before the bad one are then decoded one at a time.
    """
    try:
        return [decoder.get_frames_played_at(times)], None
    except RuntimeError as e:
        reason = str(e).strip().rstrip(".") or type(e).__name__
    batches = []
    for t in times:
        try:
            batches.append(decoder.get_frames_played_at([t]))
        except RuntimeError:
            break
    return batches, reason


def _stream_info(meta: Any) -> VideoInfo:
    """vidcap's VideoInfo: coded (pre-rotation) size, counter-clockwise rotation."""
    rotation = normalize_rotation(meta.rotation)
    width, height = int(meta.width), int(meta.height)
    if rotation in (90, 270):  # torchcodec reports the upright size
        width, height = height, width
    par = meta.pixel_aspect_ratio
    return VideoInfo(
        width=width,
        height=height,
        fps=meta.average_fps_from_header or meta.average_fps or None,
        # What the container claims (as the other backends report it), not the scanned length.
        duration=meta.duration_seconds_from_header or meta.duration_seconds or None,
        n_frames_reported=meta.num_frames_from_header or None,
        rotation=rotation,
        sample_aspect_ratio=float(par) if par and par > 0 else 1.0,
        codec=meta.codec,
    )
