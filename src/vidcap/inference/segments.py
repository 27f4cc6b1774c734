"""Where a dense caption's segments fall: fixed windows, or cuts where the visual features change.

A feature-change boundary is put between two consecutive clips whose features differ much more than
is usual in that video (cosine distance above the median plus 4 robust standard deviations,
4 x 1.4826 MAD, of the video's consecutive distances, so clip-to-clip jitter is not taken for a
change). Cuts are taken strongest first, skipping any closer than ``min_segment_clips`` clips to one
already taken or to the video's ends. A video with no such change is one segment.
"""

from __future__ import annotations

import itertools

import numpy as np

from vidcap.artifacts.readers import ClipTrack
from vidcap.errors import VidcapError


def fixed_segments(clips: ClipTrack, seconds: float) -> list[tuple[int, int]]:
    """Clip ranges ``[a, b)`` of consecutive windows of about ``seconds`` each."""
    if not seconds > 0:
        raise VidcapError(f"--segment-seconds must be > 0, got {seconds}.")
    bounds, start = [], 0
    for i in range(1, len(clips.start_s)):
        if clips.end_s[i] - clips.start_s[start] > seconds + 1e-6:
            bounds.append((start, i))
            start = i
    bounds.append((start, len(clips.start_s)))
    return bounds


def feature_changes(features: np.ndarray, mads: float = 4.0) -> tuple[np.ndarray, float]:
    """Cosine distances between consecutive clips' features (``distance[i]``: clip ``i`` to
    ``i + 1``) and the video's threshold for a strong change: median + ``mads`` robust standard
    deviations (1.4826 MAD) of those distances."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-8)
    distance = 1.0 - np.sum(unit[1:] * unit[:-1], axis=1)
    if len(distance) == 0:
        return distance, 0.0
    median = float(np.median(distance))
    mad = float(np.median(np.abs(distance - median))) or 1e-6
    return distance, median + mads * 1.4826 * mad


def change_segments(features: np.ndarray, min_segment_clips: int = 2) -> list[tuple[int, int]]:
    """Clip ranges ``[a, b)`` cut where the visual features change (see the module docstring)."""
    n = len(features)
    if n < 2 * min_segment_clips:
        return [(0, n)]
    distance, threshold = feature_changes(features)
    cuts: list[int] = []
    for i in np.argsort(-distance):  # strongest changes first
        cut = int(i) + 1
        if distance[i] <= threshold:
            break
        edges = [0, *sorted(cuts), n]
        if all(abs(cut - e) >= min_segment_clips for e in edges):
            cuts.append(cut)
    edges = [0, *sorted(cuts), n]
    return list(itertools.pairwise(edges))
