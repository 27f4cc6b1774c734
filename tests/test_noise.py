"""BART noise on mixed sequences: infilling statistics, deletion, permutation, protection, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidcap.training.noise import (
    NoiseConfig,
    add_noise,
    sentence_permutation,
    text_infilling,
    token_deletion,
)

MASK = 0


def spans_of(original: np.ndarray, noised: np.ndarray) -> list[tuple[int, int]]:
    """Recover ``(first covered index, length)`` of each span from infilling an ``arange``-like input.

    Works because every original token is unique and no two masks are adjacent: the tokens kept on
    either side of a mask bound exactly what it replaced.
    """
    index = {int(t): i for i, t in enumerate(original)}
    spans = []
    prev = -1
    for k, tok in enumerate(noised.tolist()):
        if tok != MASK:
            prev = index[tok]
            continue
        nxt = len(original)
        for later in noised[k + 1 :].tolist():
            if later != MASK:
                nxt = index[later]
                break
        spans.append((prev + 1, nxt - prev - 1))
    return spans


def test_infilling_covers_the_ratio_with_poisson_spans() -> None:
    rng = np.random.default_rng(0)
    tokens = np.arange(1, 201)
    fractions, lengths = [], []
    for _ in range(300):
        out = text_infilling(tokens, MASK, 0.3, 3.0, rng)
        spans = spans_of(tokens, out)
        assert len(spans) == int((out == MASK).sum())  # one mask per span
        covered = sum(length for _, length in spans)
        fractions.append(covered / tokens.size)
        lengths.extend(length for _, length in spans)
    assert abs(np.mean(fractions) - 0.3) < 0.03
    assert abs(np.mean(lengths) - 3.0) < 0.15
    # Zero-length spans (insertions) occur at about Poisson(3)'s P(0) = e^-3 = 5%.
    assert abs(np.mean(np.array(lengths) == 0) - math.exp(-3)) < 0.02


def test_infilling_ratio_holds_on_average_for_short_sequences() -> None:
    """Stochastic rounding: a 5-token text at ratio 0.3 averages 1.5 covered tokens, not 1 or 2."""
    rng = np.random.default_rng(1)
    tokens = np.arange(1, 6)
    covered = [
        sum(n for _, n in spans_of(tokens, text_infilling(tokens, MASK, 0.3, 3.0, rng)))
        for _ in range(2000)
    ]
    assert abs(np.mean(covered) / 5 - 0.3) < 0.03


def test_no_two_masks_are_adjacent() -> None:
    """The rule: spans, insertions included, are always separated by at least one kept token."""
    rng = np.random.default_rng(2)
    tokens = np.arange(1, 61)
    for ratio in (0.3, 0.6):
        for _ in range(200):
            out = text_infilling(tokens, MASK, ratio, 3.0, rng)
            is_mask = out == MASK
            assert not (is_mask[1:] & is_mask[:-1]).any()


def test_infilling_is_deterministic_given_the_seed() -> None:
    tokens = np.arange(1, 101)
    a = text_infilling(tokens, MASK, 0.3, 3.0, np.random.default_rng(7))
    b = text_infilling(tokens, MASK, 0.3, 3.0, np.random.default_rng(7))
    c = text_infilling(tokens, MASK, 0.3, 3.0, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_protected_positions_are_never_covered_or_crossed() -> None:
    rng = np.random.default_rng(3)
    tokens = np.arange(1, 41)
    protected = np.zeros(40, dtype=bool)
    protected[[0, 15, 16, 39]] = True  # BOS, a separator pair, EOS
    kept_values = tokens[protected]
    for _ in range(300):
        out = text_infilling(tokens, MASK, 0.5, 3.0, rng, protected)
        assert np.isin(kept_values, out).all()
        assert out[0] == 1 and out[-1] == 40  # nothing is inserted before BOS or after EOS
        for start, length in spans_of(tokens, out):
            assert not protected[start : start + length].any()
    # The ratio counts only the 36 non-protected tokens.
    fractions = [
        sum(n for _, n in spans_of(tokens, text_infilling(tokens, MASK, 0.3, 3.0, rng, protected)))
        / 36
        for _ in range(500)
    ]
    assert abs(np.mean(fractions) - 0.3) < 0.03


def test_infilling_random_replacements() -> None:
    rng = np.random.default_rng(4)
    tokens = np.arange(1000, 1100)
    out = text_infilling(tokens, MASK, 0.3, 3.0, rng, random_ratio=1.0, random_id_range=(1, 50))
    fills = out[out < 1000]
    assert fills.size > 0 and (fills >= 1).all() and (fills < 50).all()
    with pytest.raises(ValueError, match="random_id_range"):
        text_infilling(tokens, MASK, 0.3, 3.0, rng, random_ratio=0.1)


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs(n: int) -> None:
    rng = np.random.default_rng(5)
    tokens = np.arange(1, n + 1)
    for _ in range(50):
        out = text_infilling(tokens, MASK, 0.3, 3.0, rng)
        assert out.size <= 2 and (out.size == n or MASK in out)
        assert token_deletion(tokens, 0.5, rng).size <= n
    assert sentence_permutation([], rng) == []
    assert add_noise([], NoiseConfig(random_ratio=0.0), MASK, rng).size == 0
    assert add_noise([tokens], NoiseConfig(random_ratio=0.0), MASK, rng).size <= 2
    # Everything protected: nothing to corrupt.
    assert np.array_equal(text_infilling(tokens, MASK, 1.0, 3.0, rng, np.ones(n, bool)), tokens)


def test_full_ratio_masks_everything_it_can() -> None:
    tokens = np.arange(1, 21)
    out = text_infilling(tokens, MASK, 1.0, 3.0, np.random.default_rng(6))
    # Separating tokens must stay, so not all 20 can go, but most do and no masks touch.
    assert (out != MASK).sum() < 10
    assert not ((out[1:] == MASK) & (out[:-1] == MASK)).any()


def test_token_deletion_ratio_order_and_protection() -> None:
    rng = np.random.default_rng(7)
    tokens = np.arange(1, 101)
    protected = np.zeros(100, dtype=bool)
    protected[::10] = True
    deleted = []
    for _ in range(200):
        out = token_deletion(tokens, 0.15, rng, protected)
        assert np.all(np.diff(out) > 0)  # order kept
        assert np.isin(tokens[protected], out).all()
        deleted.append((100 - out.size) / 90)
    assert abs(np.mean(deleted) - 0.15) < 0.01


def test_sentence_permutation_keeps_segments_whole() -> None:
    segments = [np.array([1, 2]), np.array([3]), np.array([4, 5, 6]), np.array([7])]
    seen = set()
    for seed in range(30):
        out = sentence_permutation(segments, np.random.default_rng(seed))
        assert sorted(map(tuple, out)) == sorted(map(tuple, segments))
        seen.add(tuple(map(tuple, out)))
    assert len(seen) > 5


def test_add_noise_keeps_anchors_and_modalities_apart() -> None:
    join = 99
    text = [np.array([1, 2, 3]), np.array([4, 5]), np.array([6, 7, 8])]
    video = [np.array([101, 102]), np.array([103, 104, 105])]
    config = NoiseConfig(mask_ratio=0.0, random_ratio=0.0)
    for seed in range(20):
        segments = [*text, np.array([join]), *video]
        out = add_noise(segments, config, MASK, np.random.default_rng(seed), protected_ids=[join])
        at = int(np.flatnonzero(out == join)[0])
        assert sorted(out[:at].tolist()) == list(range(1, 9))
        assert sorted(out[at + 1 :].tolist()) == list(range(101, 106))


def test_add_noise_full_pipeline() -> None:
    segments = [np.arange(1, 30), np.array([99]), np.arange(100, 160)]
    config = NoiseConfig(delete_ratio=0.1)
    rng = np.random.default_rng(8)
    out = add_noise(segments, config, MASK, rng, random_id_range=(1, 200), protected_ids=[99])
    again = add_noise(
        segments,
        config,
        MASK,
        np.random.default_rng(8),
        random_id_range=(1, 200),
        protected_ids=[99],
    )
    assert np.array_equal(out, again)
    assert (out == 99).sum() == 1
    assert MASK in out
    assert out.size < 90  # spans collapse and tokens are deleted
    # No corruption at all gives back the target exactly.
    plain = NoiseConfig(mask_ratio=0.0, permute_sentences=False, random_ratio=0.0)
    assert np.array_equal(add_noise(segments, plain, MASK, rng), np.concatenate(segments))
    with pytest.raises(ValueError, match="random_id_range"):
        add_noise(segments, NoiseConfig(), MASK, rng)


@pytest.mark.parametrize(
    "kwargs", [{"mask_ratio": 1.5}, {"delete_ratio": -0.1}, {"poisson_lambda": 0.0}]
)
def test_noise_config_checks(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        NoiseConfig(**kwargs)
