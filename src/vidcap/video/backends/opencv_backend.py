"""The OpenCV backend (``cv2.VideoCapture`` with its FFmpeg plugin): the last resort of ``auto``.

OpenCV applies the display rotation itself (``CAP_PROP_ORIENTATION_AUTO``) and hands out BGR
frames, which are resized and turned into RGB here. Timestamps come from ``CAP_PROP_POS_MSEC``,
read after each ``grab``; the frame count it reports is an estimate and is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.video.backends import Reader, VideoInfo, convert_selected, normalize_rotation
from vidcap.video.child import sign_of_life
from vidcap.video.errors import DecodeError
from vidcap.video.resample import Resampler


def _cv2() -> Any:
    # OpenCV's FFmpeg plugin reads this once, when it first loads; it keeps FFmpeg's complaints
    # about bad files off stderr (vidcap reports them as sentences). A user's setting wins.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    return cv2


class OpenCVReader(Reader):
    """Decode with OpenCV. Opening grabs the first frame, so an unreadable file fails here."""

    name = "opencv"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        cv2 = self._cv2 = _cv2()
        # A failed open logs a warning; the failure is reported as a sentence instead.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(min(level, cv2.utils.logging.LOG_LEVEL_ERROR))
        try:
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not cap.isOpened():
            raise DecodeError(f"OpenCV cannot open {path}.")
        try:
            cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
            if not cap.grab():
                raise DecodeError(f"OpenCV opened {path} but could not decode a frame from it.")
            self._first_time = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            ok, first = cap.retrieve()
            if not ok or first is None:
                raise DecodeError(f"OpenCV opened {path} but could not decode a frame from it.")
        except BaseException:
            cap.release()
            raise
        self._cap = cap
        self._first: np.ndarray | None = first
        rotation = normalize_rotation(-cap.get(cv2.CAP_PROP_ORIENTATION_META))
        # The frame we got is already upright: undo the turn to report the coded size.
        h, w = first.shape[:2]
        if rotation in (90, 270):
            w, h = h, w
        sar_num, sar_den = cap.get(cv2.CAP_PROP_SAR_NUM), cap.get(cv2.CAP_PROP_SAR_DEN)
        fps = cap.get(cv2.CAP_PROP_FPS)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.info = VideoInfo(
            width=int(w),
            height=int(h),
            fps=float(fps) if fps > 0 else None,
            duration=count / fps if fps > 0 and count > 0 else None,
            n_frames_reported=count if count > 0 else None,
            rotation=rotation,
            sample_aspect_ratio=sar_num / sar_den if sar_num > 0 and sar_den > 0 else 1.0,
            codec=None,
        )

    def frames(
        self, fps: float, resize: tuple[int, int]
    ) -> Iterator[tuple[float, np.ndarray | None]]:
        cv2 = self._cv2
        if self._first is None:
            raise RuntimeError("OpenCVReader.frames() can only be iterated once")

        def convert(bgr: np.ndarray) -> np.ndarray:
            if bgr.ndim == 2:  # single-channel output when CONVERT_RGB is off somewhere
                bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
            h, w = bgr.shape[:2]
            if (w, h) != resize:
                shrink = resize[0] * resize[1] < w * h
                interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
                bgr = cv2.resize(bgr, resize, interpolation=interp)
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

        resampler: Resampler[np.ndarray] = Resampler(fps, self.info.fps)
        memo: list[Any] = [None, None]
        frame, self._first = self._first, None
        t: float | None = self._first_time
        while True:
            yield from convert_selected(resampler.push(t, frame), convert, memo, self.wanted)
            if not self._cap.grab():
                break
            sign_of_life()  # each decoded frame, shown or not: a low --fps is not a stall
            t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            ok, frame = self._cap.retrieve()
            if not ok or frame is None:
                self.warnings.append(
                    f"OpenCV stopped reading {self.path} at a frame it could not decode."
                )
                break
        # The last frame lasts the typical interval (1 / reported fps for a single frame).
        # The last frame is always converted: a partial last clip is padded with it.
        yield from convert_selected(resampler.finish(None), convert, memo)

    def close(self) -> None:
        self._cap.release()
