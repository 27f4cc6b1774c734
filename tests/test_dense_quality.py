"""What makes a dense model's events better than its raw output: the per-event repetition guard
and boundary refinement onto feature changes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vidcap.artifacts.readers import ClipTrack
from vidcap.inference.refine import refine_events
from vidcap.models.decoding import EventNoRepeatNGram
from vidcap.models.inputs import InputConfig, video_inputs
from vidcap.models.presets import SIZES
from vidcap.models.seq2seq import build_caption_model, generate_sequences
from vidcap.output.formats import TimedCaption
from vidcap.text import train_vocabulary

TIME = (100, 110)  # time token ids [100, 110)


def banned(ids: list[int], size: int = 3) -> set[int]:
    scores = torch.zeros(1, 120)
    EventNoRepeatNGram(size, TIME)(torch.tensor([ids]), scores)
    return {int(i) for i in torch.nonzero(scores[0] == float("-inf")).flatten()}


def test_guard_blocks_a_repeated_ngram_within_a_caption():
    # [T1] [T4] 5 6 7 5 6 -> writing 7 again would repeat "5 6 7"
    assert banned([2, 101, 104, 5, 6, 7, 5, 6]) == {7}
    assert banned([2, 101, 104, 5, 6, 7, 5, 8]) == set()


def test_guard_allows_the_ngram_again_in_the_next_event():
    # the first event said "5 6 7"; the second may say it too
    assert banned([2, 101, 104, 5, 6, 7, 105, 107, 5, 6]) == set()
    # and two time tokens in a row (the next event's times) are never blocked
    assert banned([2, 101, 104, 101, 104], size=2) == set()


def test_guard_blocks_a_repeat_within_the_second_event():
    assert banned([2, 101, 104, 5, 6, 105, 107, 8, 9, 8], size=2) == {9}


def test_dense_generation_with_the_guard_repeats_no_ngram_within_an_event():
    """A random tiny model babbles; with the guard, no 3-gram repeats inside one event."""
    torch.manual_seed(0)
    vocab = train_vocabulary(["a red circle moves up", "the blue square spins"] * 4, 8, 200)
    vocab = vocab.with_time_tokens(10)
    model = build_caption_model("bart", vocab, None, SIZES["tiny"], None, None)
    config = InputConfig(max_source=64, max_target=60, time_bins=10, max_clips=20)
    rng = np.random.default_rng(0)
    inputs = [video_inputs(vocab, rng.integers(0, 8, 12), None, [], 18.0, config) for _ in range(4)]
    lo, hi = vocab.time_range

    def worst(rows: list[np.ndarray]) -> int:
        """The most times one 3-gram occurs within one event's caption."""
        most = 0
        for row in rows:
            caption: list[int] = []
            for token in [*row.tolist(), lo]:
                if lo <= token < hi:
                    grams = [tuple(caption[i : i + 3]) for i in range(len(caption) - 2)]
                    most = max([most, *(grams.count(g) for g in grams)])
                    caption = []
                else:
                    caption.append(token)
        return most

    kwargs = {"beams": 2, "max_new_tokens": 40, "dense": True}
    unguarded = generate_sequences(model, vocab, inputs, event_no_repeat_ngram=0, **kwargs)
    guarded = generate_sequences(model, vocab, inputs, event_no_repeat_ngram=3, **kwargs)
    assert worst(unguarded) > 1  # the test can fail: without the guard, this model repeats
    assert worst(guarded) <= 1


def track(jumps: list[int], n: int = 20, clip: float = 0.5) -> ClipTrack:
    """Clips of ``clip`` seconds whose features change (a new random direction) at ``jumps``."""
    rng = np.random.default_rng(1)
    features = np.empty((n, 16))
    edges = [0, *jumps, n]
    for a, b in itertools.pairwise(edges):
        features[a:b] = rng.normal(size=16) + 0.01 * rng.normal(size=(b - a, 16))
    starts = np.arange(n) * clip
    return ClipTrack(np.zeros(n, dtype=np.int64), starts, starts + clip, features)


def test_refinement_moves_a_boundary_to_the_feature_jump_within_the_window():
    clips = track([7, 15])  # the picture changes at 3.5 s and 7.5 s
    [event] = refine_events([TimedCaption(3.2, 6.4, "x")], clips, window=0.75)
    assert event.start == pytest.approx(3.5)  # moved onto the jump
    assert event.end == pytest.approx(6.4)  # no jump within 0.75 s of 6.4: stays
    [event] = refine_events([TimedCaption(3.2, 7.0, "x")], clips, window=0.75)
    assert (event.start, event.end) == pytest.approx((3.5, 7.5))


def test_refinement_off_or_without_features_keeps_the_events():
    events = [TimedCaption(3.2, 7.0, "x")]
    assert refine_events(events, track([7, 15]), window=0.0) == events
    plain = track([7, 15])
    plain.features = None
    assert refine_events(events, plain, window=1.0) == events
    # a jump farther than the window is not taken
    assert refine_events([TimedCaption(2.0, 7.0, "x")], track([7]), window=0.75)[0].start == 2.0
