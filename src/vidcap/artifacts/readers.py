"""Readers of the stage outputs that later stages and commands read back: frames, features, visual
words, and a video's clip track (its words, clip times and, when asked, features).

The stages that write these files (``vidcap.stages``) and every reader (training, inference,
evaluation) meet here, below both, so a reader never imports the stage that wrote its input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts import read_upstream
from vidcap.errors import VidcapError

CODEBOOK = "codebook.safetensors"
"""The fitted hierarchical k-means tree in a quantize folder (and copied into every bundle)."""


def load_frames(path: str | Path) -> np.ndarray:
    """One video's frames ``[n_frames, height, width, 3]`` uint8 from an extract folder, memory-mapped
    (clips are read as they are encoded, never the whole video at once)."""
    return np.load(path, mmap_mode="r")


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """A video's features file: ``features`` [n_clips, dim], ``start_s`` and ``end_s`` [n_clips]."""
    from safetensors.numpy import load_file

    return load_file(str(path))


@dataclass(frozen=True)
class VideoWords:
    """One video's visual words: a word id per clip, with the clip's start and end seconds."""

    id: str
    words: list[int]
    start_s: list[float]
    end_s: list[float]


def load_words(path: str | Path) -> VideoWords:
    """Read one ``words/<id>.json`` file of a quantize folder."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return VideoWords(data["id"], data["words"], data["start_s"], data["end_s"])


@dataclass
class ClipTrack:
    """One video's clips in time order: the visual word, start and end time, and (optionally) the
    feature vector of each. Training reads it from a words folder; captioning makes it from a raw
    video (``inference.pipeline.VideoClips`` adds thumbnails and the duration)."""

    words: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    features: np.ndarray | None = None

    def between(self, start: float, end: float) -> np.ndarray:
        """Indices of the clips overlapping ``[start, end]`` (the nearest clip if none does)."""
        inside = np.flatnonzero((self.start_s < end) & (self.end_s > start))
        if len(inside) == 0 and len(self.words):
            centre = (start + end) / 2
            inside = np.array([int(np.argmin(np.abs((self.start_s + self.end_s) / 2 - centre)))])
        return inside


def read_tracks(
    words_dir: str | Path, with_features: bool = False
) -> tuple[dict[str, ClipTrack], dict[str, str | None], dict[str, Any]]:
    """Every quantized video's clip track (with features from the encode folder upstream when
    asked), each video's split, and the words folder's manifest. Videos without clips are left out.

    Raises:
        VidcapError: no video has visual words, or the features do not match the words.
    """
    manifest, items = read_upstream(words_dir, "quantize")
    features_dir = Path(manifest["upstream"]["path"]) if with_features else None
    feature_items = read_upstream(features_dir, "encode")[1] if features_dir else {}
    tracks, splits = {}, {}
    for video_id, item in sorted(items.items()):
        words = load_words(Path(words_dir) / item.outputs["words"])
        if not words.words:
            continue
        features = None
        if features_dir is not None:
            if video_id not in feature_items:
                raise VidcapError(
                    f"{features_dir} has no features for {video_id}; --with-features needs the encode folder the words came from."
                )
            loaded = load_features(features_dir / feature_items[video_id].outputs["features"])
            features = loaded["features"].astype(np.float32)
            if len(features) != len(words.words):
                raise VidcapError(
                    f"{video_id}: {len(features)} clip features but {len(words.words)} visual words; re-run `vidcap quantize` on {features_dir}."
                )
        tracks[video_id] = ClipTrack(
            np.asarray(words.words, dtype=np.int64),
            np.asarray(words.start_s, dtype=np.float64),
            np.asarray(words.end_s, dtype=np.float64),
            features,
        )
        splits[video_id] = item.info.get("split")
    if not tracks:
        raise VidcapError(f"{words_dir} has no videos with visual words.")
    return tracks, splits, manifest


def pipeline_settings(words_manifest: dict[str, Any]) -> dict[str, Any]:
    """What turning a raw video into visual words needs from the stage folders upstream of a words
    folder: the extract settings and the encoder (recorded in a bundle's ``vidcap.json``)."""
    features_manifest, _ = read_upstream(words_manifest["upstream"]["path"], "encode")
    frames_manifest, _ = read_upstream(features_manifest["upstream"]["path"], "extract")
    extract, encode = frames_manifest["config"], features_manifest["config"]
    return {
        "extract": {k: extract[k] for k in ("fps", "size", "crop", "clip_frames", "backend")},
        "encoder": {
            "spec": encode["encoder"],
            "dtype": encode.get("dtype", "float32"),
            "weights": encode.get("weights", "default"),
            "description": features_manifest.get("encoder"),
        },
    }
