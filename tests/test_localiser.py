"""The dense model's event localiser: targets, decoding, training on a toy, saving and loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidcap.errors import VidcapError
from vidcap.inference.localised import LOCALISER, load_localiser
from vidcap.models.localiser import (
    EventLocaliser,
    LocaliserConfig,
    LocaliserTraining,
    clip_labels,
    decode_events,
    min_event_clips,
    train_localiser,
)


def test_clip_labels_mark_inside_start_and_end_by_clip_middles() -> None:
    start = np.arange(8) * 0.5
    end = start + 0.5  # middles 0.25, 0.75, ..., 3.75
    labels = clip_labels(start, end, [(0.6, 1.9), (1.9, 2.6), (3.9, 3.95)])
    assert labels[:, 0].tolist() == [0, 1, 1, 1, 1, 0, 0, 1]
    assert np.flatnonzero(labels[:, 1]).tolist() == [1, 4, 7]  # the tiny event: the nearest clip
    assert np.flatnonzero(labels[:, 2]).tolist() == [3, 4, 7]


def test_decode_events_splits_runs_at_boundaries_and_skips_gaps() -> None:
    inside = [0.1, 0.9, 0.9, 0.9, 0.9, 0.2, 0.8, 0.8]
    starts = [0.0, 0.9, 0.0, 0.8, 0.0, 0.0, 0.9, 0.0]
    ends = [0.0, 0.0, 0.9, 0.0, 0.9, 0.0, 0.0, 0.9]
    p = np.stack([inside, starts, ends], axis=1)
    assert decode_events(p) == [(1, 2), (3, 4), (6, 7)]
    # a weak boundary does not split; nothing inside gives no event
    p[3, 1] = p[2, 2] = 0.3
    assert decode_events(p) == [(1, 4), (6, 7)]
    assert decode_events(np.zeros((5, 3))) == []


def test_fragments_join_the_event_they_touch_or_are_dropped() -> None:
    assert min_event_clips(2.04, 0.5) == 4 and min_event_clips(2.0, 0.5) == 3
    assert min_event_clips(2.04, 1.5) == 1 and min_event_clips(0.0, 0.5) == 1
    inside = [1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1]
    starts = [1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0]  # 0-3, 4-5 | 7 | 9-10, 11-13
    ends = [*starts[1:], 1]  # an event ends where the next starts
    p = np.stack([inside, starts, ends], axis=1).astype(float)
    assert decode_events(p) == [(0, 3), (4, 5), (7, 7), (9, 10), (11, 13)]
    # 4-5 joins 0-3 (touching, before); 7 touches nothing; 9-10 joins 11-13 (touching, after)
    assert decode_events(p, min_clips=3) == [(0, 5), (9, 13)]


def _toy_video(
    rng: np.random.Generator, n: int = 60
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Clips of 0.5 s: in a gap nothing moves (features near zero); each event has a pattern of
    its own, so two events in a row differ."""
    features = (0.05 * rng.normal(size=(n, 8))).astype(np.float32)
    events, t = [], int(rng.integers(0, 4))
    while t < n - 4:
        length = int(rng.integers(4, 12))
        end = min(t + length, n)
        features[t:end] = 2 * rng.normal(size=8) + 0.1 * rng.normal(size=(end - t, 8))
        events.append((t * 0.5, end * 0.5))
        t = end + int(rng.integers(0, 5))  # sometimes no gap: the next event starts at once
    return features, events


def test_a_localiser_learns_to_place_toy_events(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    videos = [_toy_video(rng) for _ in range(24)]
    start = np.arange(60) * 0.5
    examples = [(f, clip_labels(start, start + 0.5, ev)) for f, ev in videos]
    config = LocaliserConfig(dim=8, hidden=32, dilations=(1, 2, 4))
    model = train_localiser(examples[:20], config, LocaliserTraining(steps=300, lr=3e-3))
    hits = total = 0
    for features, events in videos[20:]:  # unseen videos
        found = {(a * 0.5, (b + 1) * 0.5) for a, b in decode_events(model.probabilities(features))}
        hits += len(found & set(events))
        total += len(events)
    assert hits / total >= 0.8, (hits, total)

    path = tmp_path / LOCALISER
    model.save(path)
    again = EventLocaliser.load(path, config)
    assert np.allclose(again.probabilities(videos[0][0]), model.probabilities(videos[0][0]))
    info = {"localiser": config.to_json()}
    assert load_localiser(tmp_path, info) is not None
    assert load_localiser(tmp_path, {}) is None  # a bundle from before localisers
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(VidcapError, match="localiser"):
        load_localiser(tmp_path, info)
