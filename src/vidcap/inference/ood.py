"""Is this video like the ones the model was trained on? A per-video out-of-domain score.

A clip's visual word is the leaf of the codebook nearest to its (normalised) feature; how far the
feature is from that leaf's centroid says how well the codebook — and so the model — knows it.
A video's score is the median of its clips' distances (robust to a few odd clips: a fade, a title).

The threshold is a percentile (:data:`PERCENTILE`) of the same distance over the clips of videos
the codebook was *not* fitted on — the training corpus's val split — because training clips sit
closer to centroids fitted on them than any new clip does (on the demo model the train split's
99th percentile is 0.76, the val split's 0.88, and held-out synthetic videos' scores reach 0.86).
A video is flagged when its *median* clip is beyond what 99 % of in-domain clips reach. Without a
val split, the farthest train clip stands in (:data:`TRAIN_PERCENTILE`; too low, so the warning
fires more often on in-domain videos). ``benchmarks/ood_rates.py`` measures the rates;
docs/ood.md has the figures and why 99 and not 95.

The profile is a few numbers (``ood.json`` in the bundle), written by ``vidcap finetune``; the
codebook it refers to is the bundle's own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts import atomic_write_json, read_upstream, upstream_folder
from vidcap.artifacts.damage import damaged, reading
from vidcap.artifacts.readers import CODEBOOK, load_features
from vidcap.errors import VidcapError
from vidcap.quantize.kmeans import HierarchicalKMeans, prepare_features

FORMAT = "vidcap.ood.v1"
METHOD = "leaf-distance-median"
PERCENTILE = 99.0
"""Of the val split's clip distances: the threshold a video's median clip distance must pass."""
TRAIN_PERCENTILE = 100.0
"""Of the train split's clip distances, when the corpus has no val split."""
MAX_VIDEOS = 2000  # calibration videos read at most (evenly spaced by id): enough for a percentile


def clip_distances(features: np.ndarray, tree: HierarchicalKMeans) -> np.ndarray:
    """Each clip's distance from its visual word's centroid, in the codebook's normalised space."""
    words = tree.assign(features)
    normalised = prepare_features(features, tree.normalize, tree.dim)
    return np.linalg.norm(normalised - tree.leaf_centroids[words], axis=1)


def video_score(features: np.ndarray, tree: HierarchicalKMeans) -> float:
    """A video's out-of-domain score: the median of its clips' distances."""
    return float(np.median(clip_distances(features, tree)))


@dataclass(frozen=True)
class OODResult:
    """One video's score, the bundle's threshold, and whether the score is above it."""

    score: float
    threshold: float
    flagged: bool

    def to_json(self) -> dict[str, Any]:
        """The ``ood`` object of ``vidcap caption``'s json and jsonl output."""
        return {
            "score": round(self.score, 4),
            "threshold": round(self.threshold, 4),
            "flagged": self.flagged,
        }


def warning(video: str, result: OODResult, synthetic: bool = False) -> str:
    """The one sentence ``vidcap caption`` prints for a flagged video."""
    knows = " it knows only the synthetic shapes world, so" if synthetic else ""
    return (
        f"{video} is unlike the videos the model was trained on (out-of-domain score "
        f"{result.score:.2f} > {result.threshold:.2f});{knows} its caption is likely wrong."
    )


@dataclass(frozen=True)
class OODProfile:
    """What a bundle keeps to score new videos: the threshold and how it was chosen."""

    threshold: float
    percentile: float
    split: str  # the clips the threshold is a percentile of
    videos: int
    clips: int
    clip_percentiles: dict[str, float]  # the calibration clips' distances at 50/90/95/99/100
    method: str = METHOD
    format: str = FORMAT

    def check(self, features: np.ndarray, tree: HierarchicalKMeans) -> OODResult:
        """Score one video's clip features against the threshold."""
        score = video_score(features, tree)
        return OODResult(score, self.threshold, bool(score > self.threshold))

    def save(self, path: str | Path) -> None:
        """Write ``ood.json`` atomically."""
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path, remedy: str) -> OODProfile | None:
        """Read a bundle's ``ood.json``; None when it has none (a bundle from an older vidcap).

        Raises:
            VidcapError: the file is there but damaged (with ``remedy``).
        """
        path = Path(path)
        if not path.is_file():
            return None
        with reading(path, remedy):
            data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise damaged(path, remedy, "is not a vidcap out-of-domain profile")
        try:
            return cls(**data)
        except TypeError as error:
            raise damaged(path, remedy, f"is damaged ({error})") from None


def fit_profile(words_dir: str | Path) -> OODProfile:
    """The profile of a model trained on ``words_dir``'s visual words: its codebook's distances
    over the val split's clips (or, without one, the train split's), read video by video.

    Raises:
        VidcapError: neither split has a video with clip features.
    """
    manifest, items = read_upstream(words_dir, "quantize")
    tree = HierarchicalKMeans.load(Path(words_dir) / CODEBOOK)
    features_dir = upstream_folder(words_dir, manifest)
    _, feature_items = read_upstream(features_dir, "encode")
    by_split: dict[str, list[str]] = {}
    for item in items.records():  # a record at a time, none held
        if item.id in feature_items:
            by_split.setdefault(str(item.info.get("split") or "train"), []).append(item.id)
    for videos in by_split.values():
        videos.sort()
    split, percentile = ("val", PERCENTILE) if by_split.get("val") else ("train", TRAIN_PERCENTILE)
    videos = by_split.get(split) or []
    if not videos:
        raise VidcapError(
            f"{words_dir} has no val or train videos with clip features to calibrate the out-of-domain warning on."
        )
    step = max(1, len(videos) // MAX_VIDEOS)
    distances = []
    for video_id in videos[::step]:
        features = load_features(features_dir / feature_items[video_id].outputs["features"])
        if len(features["features"]):
            distances.append(clip_distances(features["features"].astype(np.float32), tree))
    if not distances:
        raise VidcapError(f"{words_dir}'s {split} videos have no clips to calibrate on.")
    every = np.concatenate(distances)
    return OODProfile(
        threshold=float(np.percentile(every, percentile)),
        percentile=percentile,
        split=split,
        videos=len(distances),
        clips=len(every),
        clip_percentiles={
            str(p): round(float(np.percentile(every, p)), 4) for p in (50, 90, 95, 99, 100)
        },
    )
