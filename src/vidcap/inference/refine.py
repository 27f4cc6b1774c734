"""Boundary refinement: move a dense model's event boundaries onto the video's feature changes.

A dense model reads time from its relative time bins, and (subsampled) clips it sees only as a
whole, so a boundary it places is off by up to a clip or a bin. The clip features themselves show
where the picture changes: each predicted boundary moves to the strongest change between two
consecutive clips within ``window`` seconds of it, when that change is a strong one for the video
(above the change-point threshold of :func:`vidcap.inference.segments.feature_changes`, a lower
multiple of the MAD, since the model already says that a boundary is near). Boundaries with no
strong change nearby stay where the model put them. An event never shrinks below ``min_seconds``
(it keeps its times instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidcap.artifacts.readers import ClipTrack
from vidcap.inference.segments import feature_changes
from vidcap.output.formats import TimedCaption

DEFAULT_REFINE_SECONDS = 1.0
"""How far a boundary may move by default (0: refinement off); a bundle records its own. On the
untrimmed synthetic test split 1 s raised localisation F1 by 0.026 with 0.5 s clips (docs/dense.md,
"What each design choice bought")."""

REFINE_MADS = 2.0
"""A change counts as strong above median + this many robust standard deviations."""


def refine_events(
    events: Sequence[TimedCaption],
    clips: ClipTrack,
    window: float,
    min_seconds: float = 0.5,
) -> list[TimedCaption]:
    """``events`` with each start and end moved to the strongest feature change within
    ``window`` seconds (see the module docstring); unchanged when ``window`` is 0 or the clips
    carry no features."""
    if window <= 0 or clips.features is None or len(clips.start_s) < 2 or not events:
        return list(events)
    distance, threshold = feature_changes(np.asarray(clips.features, dtype=np.float64), REFINE_MADS)
    # The change between clip i and i + 1 happens where clip i + 1 starts.
    times = np.asarray(clips.start_s[1:], dtype=np.float64)
    strong = distance > threshold

    def move(t: float) -> float:
        near = np.flatnonzero(strong & (np.abs(times - t) <= window + 1e-9))
        if len(near) == 0:
            return t
        return float(times[near[np.argmax(distance[near])]])

    refined = []
    for event in events:
        start, end = move(event.start), move(event.end)
        if end - start < min_seconds:
            start, end = event.start, event.end
        refined.append(TimedCaption(start, end, event.text))
    return refined
