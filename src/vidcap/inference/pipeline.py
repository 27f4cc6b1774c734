"""Raw video → clips → features → visual words, in memory, with a bundle's recorded settings.

Used by ``vidcap caption`` / ``evaluate`` (finetuned bundles) and by ``vidcap classify``
(a pretrain's ``final/``): both record in ``vidcap.json`` the extract settings, the encoder and the
codebook, so a video is turned into exactly the kind of visual words the model was trained on.
Frames are decoded in chunks and cut into clips as they come, so memory stays bounded by a chunk
(plus, when asked, one small thumbnail per clip) whatever the video's length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts.readers import ClipTrack
from vidcap.bundle import Bundle
from vidcap.devices import resolve_device
from vidcap.errors import VidcapError
from vidcap.video.clips import Clip

THUMB_SIDE = 160  # short side of the storyboard thumbnails kept per clip
ENCODE_BATCH = 16  # clips encoded at once


@dataclass
class VideoClips(ClipTrack):
    """A decoded and encoded video: its clip track (times, features, visual words), the video's
    duration and, when asked, a thumbnail per clip."""

    thumbnails: list[np.ndarray] = field(default_factory=list)
    duration: float = 0.0


class VideoPipeline:
    """Extract → encode → quantize for one video at a time, as a bundle's ``vidcap.json`` says."""

    def __init__(self, bundle: Bundle, device: str = "auto") -> None:
        from vidcap.encoders import EncoderOptions, build_encoder

        info = bundle.info
        if "extract" not in info or "encoder" not in info:
            raise VidcapError(
                f"{bundle.folder}/vidcap.json does not record the extract and encode settings (written by an older vidcap?); re-run the stage that wrote it."
            )
        self.device = resolve_device(device)
        self.tree = bundle.codebook()
        spec = info["encoder"]
        self.encoder = build_encoder(
            spec["spec"],
            EncoderOptions(device=str(self.device), dtype=spec["dtype"], weights=spec["weights"]),
        )
        recorded = spec.get("description")
        if recorded is not None and _as_json(self.encoder.describe()) != _as_json(recorded):
            raise VidcapError(
                f"the encoder {spec['spec']!r} here differs from the one the model was trained with (its settings or weights changed); its visual words would be wrong."
            )
        self.extract = info["extract"]

    def clips(self, video: str | Path, thumbnails: bool = False) -> VideoClips:
        """Decode, cut and encode one video with the bundle's settings; assign its visual words.

        With ``thumbnails``, a small copy of each clip's middle frame is kept (for storyboards).
        """
        from vidcap.video import DecodeError, clip_array, clip_windows, decode_frames

        fps, clip_frames = float(self.extract["fps"]), int(self.extract["clip_frames"])
        pending: list[np.ndarray] = []  # decoded frames not yet in a clip
        waiting: list[np.ndarray] = []  # clips not yet encoded
        features: list[np.ndarray] = []
        kept: list[np.ndarray] = []

        def encode_waiting() -> None:
            if thumbnails:
                kept.extend(_thumbnail(c[len(c) // 2]) for c in waiting)
            features.extend(self.encoder.encode(waiting))
            waiting.clear()

        total = 0
        try:
            for chunk in decode_frames(
                video,
                fps,
                self.extract["size"],
                bool(self.extract.get("crop", False)),
                self.extract.get("backend", "auto"),
            ):
                pending.extend(chunk.frames)
                total += len(chunk)
                while len(pending) >= clip_frames:
                    waiting.append(np.stack(pending[:clip_frames]))
                    del pending[:clip_frames]
                    if len(waiting) == ENCODE_BATCH:
                        encode_waiting()
        except DecodeError as error:
            raise VidcapError(f"{video}: {error}") from None
        windows = clip_windows(total, fps, clip_frames)
        if len(windows) > len(features) + len(waiting):  # the rule kept a partial last clip
            last = windows[-1]
            waiting.append(
                clip_array(np.stack(pending), Clip(0, 0, last.n_real, 0, 0), clip_frames)
            )
        if waiting:
            encode_waiting()
        if not features:
            raise VidcapError(f"{video}: too short to caption (not one clip of frames decoded).")
        stacked = np.stack(features).astype(np.float32)
        return VideoClips(
            start_s=np.array([w.start_s for w in windows]),
            end_s=np.array([w.end_s for w in windows]),
            features=stacked,
            words=self.tree.assign(stacked),
            thumbnails=kept,
            duration=total / fps,
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

    def __init__(self, bundle: Bundle, device: str = "auto") -> None:
        self.bundle = bundle
        self.folder = bundle.folder
        self.info = bundle.info
        self.pipeline = VideoPipeline(bundle, device)
        self.device = self.pipeline.device
        self.vocab = bundle.vocabulary()
