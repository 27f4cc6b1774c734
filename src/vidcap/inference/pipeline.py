"""Raw video → clips → features → visual words, in memory, with a bundle's recorded settings.

Used by ``vidcap caption`` / ``evaluate`` (finetuned bundles) and by ``vidcap classify``
(a pretrain's ``final/``): both record in ``vidcap.json`` the extract settings, the encoder and the
codebook, so a video is turned into exactly the kind of visual words the model was trained on.
Frames are decoded in a killable child process, stopped if it hangs, handed back in chunks
and cut into clips as they come, so memory stays bounded by a chunk (plus, when asked, one small
thumbnail per clip) whatever the video's length; only the frames the encoder reads are converted.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts.readers import ClipTrack
from vidcap.bundle import Bundle
from vidcap.devices import resolve_device
from vidcap.errors import VidcapError
from vidcap.video import DecodeWorker
from vidcap.video.clips import ClipCutter, clip_frame_mask
from vidcap.video.errors import DecodeError
from vidcap.video.worker import VIDEO_TIMEOUT_S

THUMB_SIDE = 160  # short side of the storyboard thumbnails kept per clip
ENCODE_BATCH = 16  # clips encoded at once


@dataclass
class VideoClips(ClipTrack):
    """A decoded and encoded video: its clip track (times, features, visual words), the video's
    duration and, when asked, a thumbnail per clip."""

    thumbnails: list[np.ndarray] = field(default_factory=list)
    duration: float = 0.0
    warnings: list[str] = field(default_factory=list)  # the decoder's (a truncated file, ...)


class VideoPipeline:
    """Extract → encode → quantize for one video at a time, as a bundle's ``vidcap.json`` says.

    Decoding runs in a killable child process (:class:`~vidcap.video.DecodeWorker`) with a time
    limit on its silence (``timeout`` seconds without a frame from the decoder): a decoder that hangs or
    crashes fails that video with a :class:`~vidcap.video.errors.DecodeError`
    (:class:`~vidcap.video.errors.DecodeTimeoutError`, :class:`~vidcap.video.errors.DecoderCrashedError`)
    and the next video gets a fresh child. The frames come back in chunks and are encoded here,
    where the model lives. Call :meth:`close` (or use ``with``) to stop the child early; it also
    ends with this process.
    """

    def __init__(
        self, bundle: Bundle, device: str = "auto", timeout: float | None = VIDEO_TIMEOUT_S
    ) -> None:
        from vidcap.encoders import EncoderOptions, build_encoder

        info = bundle.info
        if "extract" not in info or "encoder" not in info:
            raise VidcapError(
                f"{bundle.folder}/vidcap.json does not record the extract and encode settings (written by an older vidcap?); re-run the stage that wrote it."
            )
        if timeout is not None and not timeout > 0:
            raise VidcapError(f"--timeout must be > 0 seconds, got {timeout}.")
        self.device = resolve_device(device)
        self.tree = bundle.codebook()
        spec = info["encoder"]
        recorded = spec.get("description")
        self.encoder = build_encoder(
            spec["spec"],
            EncoderOptions(device=str(self.device), dtype=spec["dtype"], weights=spec["weights"]),
            recorded={} if recorded is None else recorded,
        )
        if recorded is not None and _as_json(self.encoder.describe()) != _as_json(recorded):
            raise VidcapError(
                f"the encoder {spec['spec']!r} here differs from the one the model was trained with (its settings or weights changed); its visual words would be wrong."
            )
        self.extract = info["extract"]
        self.timeout = timeout
        # One decoder process per thread that decodes (a server may caption from several).
        self._local = threading.local()
        self._workers: list[DecodeWorker] = []
        self._lock = threading.Lock()

    @property
    def worker(self) -> DecodeWorker:
        """This thread's decode worker (its process starts with the first video)."""
        worker = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = DecodeWorker()
            with self._lock:
                self._workers.append(worker)
        return worker

    def close(self) -> None:
        """Stop the decoder processes (a later video starts a new one). Call it when no other
        thread is decoding with this pipeline."""
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()
        self._local = threading.local()

    def __enter__(self) -> VideoPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clips(self, video: str | Path, thumbnails: bool = False) -> VideoClips:
        """Decode, cut and encode one video with the bundle's settings; assign its visual words.

        With ``thumbnails``, a small copy of each clip's middle frame is kept (for storyboards).

        Raises:
            DecodeError: the video cannot be decoded, its decoder hung past the time limit
                (:class:`DecodeTimeoutError`) or crashed (:class:`DecoderCrashedError`).
            VidcapError: the video is too short to give one clip.
        """
        fps, clip_frames = float(self.extract["fps"]), int(self.extract["clip_frames"])
        indices = self.encoder.frame_indices(clip_frames)
        if thumbnails and indices is not None:
            indices = np.append(indices, clip_frames // 2)
        cutter = ClipCutter(fps, clip_frames)
        waiting: list[np.ndarray] = []  # clips not yet encoded
        features: list[np.ndarray] = []
        kept: list[np.ndarray] = []

        def encode_waiting() -> None:
            if thumbnails:
                kept.extend(_thumbnail(c[len(c) // 2]) for c in waiting)
            features.extend(self.encoder.encode(waiting))
            waiting.clear()

        streamed = self.worker.stream(
            video,
            timeout=self.timeout,
            backend=self.extract.get("backend", "auto"),
            fps=fps,
            size=self.extract["size"],
            crop=bool(self.extract.get("crop", False)),
            keep=clip_frame_mask(indices, clip_frames),
        )
        chunks = iter(streamed)
        try:
            for chunk in chunks:
                if chunk.start == 0 and cutter.n_frames:  # another backend started over
                    cutter.reset()
                    waiting.clear()
                    features.clear()
                    kept.clear()
                for clip in cutter.push(chunk.frames):
                    waiting.append(clip)
                    if len(waiting) == ENCODE_BATCH:
                        encode_waiting()
        except DecodeError as error:
            if str(video) in str(error):
                raise
            raise type(error)(f"{video}: {error}", partial=error.partial) from None
        finally:
            chunks.close()  # stopped early (Ctrl-C, an encoder error): the decoder is killed now
        waiting.extend(cutter.finish())
        if waiting:
            encode_waiting()
        if not features:
            raise VidcapError(f"{video}: too short to caption (not one clip of frames decoded).")
        windows = cutter.windows()
        stacked = np.stack(features).astype(np.float32)
        return VideoClips(
            start_s=np.array([w.start_s for w in windows]),
            end_s=np.array([w.end_s for w in windows]),
            features=stacked,
            words=self.tree.assign(stacked),
            thumbnails=kept,
            duration=cutter.n_frames / fps,
            warnings=list(streamed.meta.get("warnings", [])),
        )


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = THUMB_SIDE / min(h, w)
    if scale >= 1:
        return frame.copy()
    return cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class BundleModel:
    """What every model that reads raw videos shares: its bundle, the pipeline that turns a video
    into the bundle's visual words, the device, and the vocabulary."""

    def __init__(
        self, bundle: Bundle, device: str = "auto", timeout: float | None = VIDEO_TIMEOUT_S
    ) -> None:
        self.bundle = bundle
        self.folder = bundle.folder
        self.info = bundle.info
        self.pipeline = VideoPipeline(bundle, device, timeout)
        self.device = self.pipeline.device
        self.vocab = bundle.vocabulary()

    def close(self) -> None:
        """Stop the decoder process (see :class:`VideoPipeline`)."""
        self.pipeline.close()
