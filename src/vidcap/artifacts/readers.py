"""Readers of the stage outputs that later stages and commands read back: frames, features, visual
words, and a video's clip track (its words, clip times and, when asked, features).

The stages that write these files (``vidcap.stages``) and every reader (training, inference,
evaluation) meet here, below both, so a reader never imports the stage that wrote its input.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts import read_upstream, upstream_folder
from vidcap.artifacts.damage import (
    damaged,
    reading,
    rerun_stage,
)
from vidcap.errors import VidcapError

CODEBOOK = "codebook.safetensors"
"""The fitted hierarchical k-means tree in a quantize folder (and copied into every bundle)."""


def _item_remedy(stage: str, path: Path) -> str:
    """:func:`rerun_stage` for an item file, which sits in a subfolder of its stage folder."""
    return rerun_stage(stage, path.parent.parent)


# --------------------------------------------------------------------------------------------------
# The readers


def load_frames(path: str | Path) -> np.ndarray:
    """One video's frames ``[n_frames, height, width, 3]`` uint8 from an extract folder, memory-mapped
    (clips are read as they are encoded, never the whole video at once).

    The header is checked against the file's size first: a cut file would otherwise fail at the
    first clip read past its end (or kill the process with ``SIGBUS``).

    Raises:
        VidcapError: the file is missing, truncated, or not a frames array.
    """
    path = Path(path)
    remedy = _item_remedy("extract", path)
    with reading(path, remedy, ValueError, EOFError):
        with open(path, "rb") as f:
            if f.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                raise damaged(path, remedy, "is damaged (not a .npy file)")
            f.seek(0)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            expected = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            size = os.fstat(f.fileno()).st_size
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
            raise damaged(
                path, remedy, f"is not a video's frames (a {dtype} array of shape {shape})"
            )
        if size != expected:
            cut = "truncated" if size < expected else "longer than its header says"
            raise damaged(
                path, remedy, f"is {cut} (it has {size:,} bytes, its header needs {expected:,})"
            )
        return np.load(path, mmap_mode="r")


FEATURE_TENSORS = ("features", "start_s", "end_s")


def features_shape(path: str | Path) -> tuple[int, int]:
    """``(clips, dim)`` of a video's features file, from its header (its values are not read).

    Raises:
        VidcapError: the file is missing, cut, or not a features file.
    """
    from safetensors import safe_open

    path = Path(path)
    remedy = _item_remedy("encode", path)
    with reading(path, remedy), safe_open(str(path), framework="numpy") as tensors:
        if "features" not in tensors.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
            raise damaged(path, remedy, "is not a features file (it has no 'features' tensor)")
        shape = tensors.get_slice("features").get_shape()
    if len(shape) != 2:
        raise damaged(path, remedy, f"is damaged (its features have shape {shape})")
    return int(shape[0]), int(shape[1])


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """A video's features file: ``features`` [n_clips, dim], ``start_s`` and ``end_s`` [n_clips].

    Raises:
        VidcapError: the file is missing, cut, or not a features file.
    """
    from safetensors.numpy import load_file

    path = Path(path)
    remedy = _item_remedy("encode", path)
    with reading(path, remedy):
        data = load_file(str(path))
    missing = [name for name in FEATURE_TENSORS if name not in data]
    if missing:
        raise damaged(path, remedy, f"is not a features file (it has no {missing[0]!r} tensor)")
    n = len(data["features"])
    if data["features"].ndim != 2 or any(data[k].shape != (n,) for k in ("start_s", "end_s")):
        raise damaged(path, remedy, "is damaged (its features and clip times disagree)")
    return data


@dataclass(frozen=True)
class VideoWords:
    """One video's visual words: a word id per clip, with the clip's start and end seconds."""

    id: str
    words: list[int]
    start_s: list[float]
    end_s: list[float]


def load_words(path: str | Path) -> VideoWords:
    """Read one ``words/<id>.json`` file of a quantize folder.

    Raises:
        VidcapError: the file is missing, cut, or not a words file.
    """
    path = Path(path)
    remedy = _item_remedy("quantize", path)
    with reading(path, remedy, KeyError, TypeError):
        data = json.loads(path.read_text(encoding="utf-8"))
        words = VideoWords(str(data["id"]), data["words"], data["start_s"], data["end_s"])
    if not all(isinstance(x, list) for x in (words.words, words.start_s, words.end_s)) or not (
        len(words.words) == len(words.start_s) == len(words.end_s)
    ):
        raise damaged(path, remedy, "is damaged (its words and clip times disagree)")
    return words


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


class TrackFeatures:
    """Each video's clip features from ``features_dir``, the encode folder that visual words came
    from, read a video at a time (float32, one row per visual word).

    Raises:
        VidcapError: (when called) the folder has no features for the video, or not one row per
            visual word.
    """

    def __init__(self, features_dir: str | Path) -> None:
        self.folder = Path(features_dir)
        _, self.items = read_upstream(self.folder, "encode")

    def __call__(self, video_id: str, n_words: int) -> np.ndarray:
        if video_id not in self.items:
            raise VidcapError(
                f"{self.folder} has no features for {video_id}; --with-features needs the encode folder the words came from."
            )
        loaded = load_features(self.folder / self.items[video_id].outputs["features"])
        features = loaded["features"].astype(np.float32)
        if len(features) != n_words:
            raise VidcapError(
                f"{video_id}: {len(features)} clip features but {n_words} visual words; re-run `vidcap quantize` on {self.folder}."
            )
        return features


def read_tracks(
    words_dir: str | Path, with_features: bool = False
) -> tuple[dict[str, ClipTrack], dict[str, str | None], dict[str, Any]]:
    """Every quantized video's clip track (with features from the encode folder upstream when
    asked), each video's split, and the words folder's manifest. Videos without clips are left out.

    Raises:
        VidcapError: no video has visual words, or the features do not match the words.
    """
    manifest, items = read_upstream(words_dir, "quantize")
    features_of = TrackFeatures(upstream_folder(words_dir, manifest)) if with_features else None
    tracks, splits = {}, {}
    for item in items.records():  # a record at a time, in file order (by id once merged)
        video_id = item.id
        words = load_words(Path(words_dir) / item.outputs["words"])
        if not words.words:
            continue
        features = None if features_of is None else features_of(video_id, len(words.words))
        tracks[video_id] = ClipTrack(
            np.asarray(words.words, dtype=np.int64),
            np.asarray(words.start_s, dtype=np.float64),
            np.asarray(words.end_s, dtype=np.float64),
            features,
        )
        splits[video_id] = item.info.get("split")
    if not tracks:
        raise VidcapError(f"{words_dir} has no videos with visual words.")
    return dict(sorted(tracks.items())), dict(sorted(splits.items())), manifest


def pipeline_settings(words_dir: str | Path, words_manifest: dict[str, Any]) -> dict[str, Any]:
    """What turning a raw video into visual words needs from the stage folders upstream of a words
    folder: the extract settings and the encoder (recorded in a bundle's ``vidcap.json``)."""
    features_dir = upstream_folder(words_dir, words_manifest)
    features_manifest, _ = read_upstream(features_dir, "encode")
    extract = features_manifest.get("extract")  # recorded by encode, from videos or from frames
    if extract is None:  # an encode folder written before encode recorded them
        frames_dir = upstream_folder(features_dir, features_manifest)
        frames_manifest, _ = read_upstream(frames_dir, "extract")
        extract = frames_manifest["config"]
    encode = features_manifest["config"]
    return {
        "extract": {k: extract[k] for k in ("fps", "size", "crop", "clip_frames", "backend")},
        "encoder": {
            "spec": encode["encoder"],
            "dtype": encode.get("dtype", "float32"),
            "weights": encode.get("weights", "default"),
            "description": features_manifest.get("encoder"),
        },
    }
