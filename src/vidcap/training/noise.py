"""BART's noise on mixed text + visual-word sequences (Lewis et al. 2019, section 2.2).

The model reads a corrupted sequence and is trained to write the original back, so the target of
every function here is simply the uncorrupted input (for :func:`add_noise`, the segments concatenated
in their original order). Three corruptions, applied in this order by :func:`add_noise`:

1. **Sentence permutation** (:func:`sentence_permutation`): the units — one sentence of text, or one
   run of visual words — are shuffled. A unit made only of protected ids (``[>]``) is an anchor: it
   stays in place and units are shuffled only among their neighbours between anchors, so
   ``text [>] video`` keeps text before video while both halves are shuffled.
2. **Token deletion** (:func:`token_deletion`): single tokens are removed; the model has to find where.
3. **Text infilling** (:func:`text_infilling`): spans whose lengths are drawn from Poisson(λ=3) are
   each replaced by *one* mask token, so the model also has to decide how many tokens are missing. A
   zero-length span inserts a mask where nothing is missing.

How the ratios are measured: over the *non-protected* tokens of the sequence the function receives.
Protected positions (``[>]``, BOS/EOS) are never masked, deleted or covered by a span, and spans never
cross them, so a span is always inside one text or one visual-word run.

Everything is plain numpy and deterministic given the ``np.random.Generator``: a data loader worker
seeds one per example and gets the same corruption on every run.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "NoiseConfig",
    "add_noise",
    "sentence_permutation",
    "text_infilling",
    "token_deletion",
]


@dataclass(frozen=True)
class NoiseConfig:
    """How much BART noise :func:`add_noise` applies.

    Attributes:
        mask_ratio: fraction of the (non-protected) tokens covered by infilling spans; BART: 0.3.
        poisson_lambda: mean span length; BART: 3.
        delete_ratio: fraction of the (non-protected) tokens deleted before infilling.
        permute_sentences: shuffle the segments (sentences, visual-word runs) first.
        random_ratio: fraction of spans written as a random token instead of the mask (fairseq's
            ``--mask-random``), so the model cannot trust that every unmasked token is original.
    """

    mask_ratio: float = 0.3
    poisson_lambda: float = 3.0
    delete_ratio: float = 0.0
    permute_sentences: bool = True
    random_ratio: float = 0.1

    def __post_init__(self) -> None:
        for name in ("mask_ratio", "delete_ratio", "random_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"NoiseConfig.{name} must be between 0 and 1, not {value}.")
        if not self.poisson_lambda > 0:
            raise ValueError(
                f"NoiseConfig.poisson_lambda must be positive, not {self.poisson_lambda}."
            )


# --------------------------------------------------------------------------------------------------
# Helpers


def _candidates(n: int, protected: np.ndarray | None) -> np.ndarray:
    """Boolean mask of the positions that may be corrupted."""
    if protected is None:
        return np.ones(n, dtype=bool)
    protected = np.asarray(protected, dtype=bool)
    if protected.shape != (n,):
        raise ValueError(f"protected has shape {protected.shape}, expected ({n},).")
    return ~protected


def _round_stochastic(x: float, rng: np.random.Generator) -> int:
    """``floor(x)`` or ``ceil(x)`` with the probability that makes the expectation exactly ``x``.

    Plain rounding would never mask a 1-token text at ratio 0.3 and always mask 2 of 5; this keeps the
    *average* masked fraction at the ratio for sequences of any length.
    """
    base = math.floor(x)
    return base + int(rng.random() < x - base)


def _span_lengths(total: int, lam: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson(lam) span lengths summing to exactly ``total`` (the last one is cut short).

    Zero-length spans are kept: they become insertions (BART's infilling inserts a mask there).
    """
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    lengths = np.zeros(0, dtype=np.int64)
    # Draw in batches of about the expected count; the loop rarely runs twice.
    while lengths.sum() < total:
        batch = max(8, math.ceil(1.2 * (total - lengths.sum()) / lam))
        lengths = np.concatenate([lengths, rng.poisson(lam, size=batch).astype(np.int64)])
    cum = np.cumsum(lengths)
    last = int(np.searchsorted(cum, total))  # first span that reaches the total
    lengths = lengths[: last + 1].copy()
    lengths[last] -= cum[last] - total
    return lengths


def _place_spans(
    lengths: np.ndarray, free: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Lay the spans out at random over the free (non-protected) positions.

    Returns ``(starts, lengths)`` sorted by start; a length-0 span at ``start`` is an insertion
    before position ``start``. The rules that keep "one mask per span" readable in the output:

    - a span lies inside one run of free positions, so it never crosses a protected token;
    - any two spans — insertions included — are separated by at least one kept token, so the output
      never holds two masks in a row (where the input had none);
    - an insertion touches at least one free token (it never lands between two protected ones).

    Each span goes to a free run with probability proportional to the room left there; within a run
    the layout is uniform over all arrangements that keep the spans' order (stars and bars), which
    costs O(spans) instead of a scan of the sequence per span. A span that fits in no run is cut to
    the largest length that fits somewhere, or dropped when not even one token fits (only when the
    ratio leaves no room for the separating tokens).
    """
    edges = np.diff(np.concatenate([[0], free.astype(np.int8), [0]]))
    run_starts = np.flatnonzero(edges == 1)
    run_lens = np.flatnonzero(edges == -1) - run_starts
    # room[r]: kept tokens of run r not yet needed to separate its spans.
    room = run_lens.tolist()
    items: list[list[int]] = [[] for _ in room]
    draws = rng.random(len(lengths))
    for length, draw in zip(lengths.tolist(), draws.tolist(), strict=True):
        # A span after another one in the same run also needs one separating token.
        need = [length + (1 if run_items else 0) for run_items in items]
        fits = [r for r in range(len(room)) if room[r] >= need[r]]
        if not fits:
            if length == 0:
                continue
            best = max((room[r] - need[r] + length for r in range(len(room))), default=0)
            if best < 1:
                continue
            length = best
            need = [length + (1 if run_items else 0) for run_items in items]
            fits = [r for r in range(len(room)) if room[r] >= need[r]]
        weights = np.array([room[r] for r in fits], dtype=np.float64)
        pick = fits[int(np.searchsorted(np.cumsum(weights), draw * weights.sum(), side="right"))]
        room[pick] -= need[pick]
        items[pick].append(length)

    starts: list[np.ndarray] = []
    spans: list[np.ndarray] = []
    for r, run_items in enumerate(items):
        if not run_items:
            continue
        lens = np.array(run_items, dtype=np.int64)
        j = lens.size
        # Stars and bars: j bars among room+j slots give the extra kept tokens before each span;
        # bar i sits at (extra tokens before span i) + i, which adds to the spans and separators
        # before it to give the start directly.
        bars = np.sort(rng.choice(room[r] + j, size=j, replace=False))
        before = np.concatenate([[0], np.cumsum(lens)[:-1]])
        starts.append(run_starts[r] + before + bars)
        spans.append(lens)
    if not starts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(starts), np.concatenate(spans)


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(l) for l in lengths])`` without the loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - offsets


# --------------------------------------------------------------------------------------------------
# The corruptions


def text_infilling(
    tokens: np.ndarray,
    mask_id: int,
    ratio: float,
    lam: float,
    rng: np.random.Generator,
    protected: np.ndarray | None = None,
    *,
    random_ratio: float = 0.0,
    random_id_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """BART text infilling: Poisson(``lam``) spans covering ``ratio`` of the tokens, one mask each.

    The number of tokens to cover is ``ratio`` times the number of non-protected tokens, rounded up
    or down at random so its expectation is exact. Span lengths are drawn from Poisson(``lam``) until
    they add up to it (the last is cut short); a zero-length span inserts a mask without removing
    anything. Spans never overlap, never cross a protected position, and are separated by at least
    one kept token, so (for an input without masks) no two masks are ever adjacent. See
    :func:`_place_spans` for the placement rules.

    Args:
        tokens: 1-D token ids.
        mask_id: the id written for each span.
        ratio: fraction of non-protected tokens to cover, in [0, 1].
        lam: mean span length (> 0).
        rng: the random generator (the result is a function of its state).
        protected: boolean mask of positions never covered (e.g. ``[>]``, BOS, EOS).
        random_ratio: fraction of spans written as a random id from ``random_id_range`` instead.
        random_id_range: ``[lo, hi)`` ids for the random replacements.

    Returns:
        The corrupted 1-D sequence (a new array of ``tokens``' dtype).
    """
    tokens = np.asarray(tokens)
    n = tokens.size
    free = _candidates(n, protected)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be between 0 and 1, not {ratio}.")
    if not lam > 0:
        raise ValueError(f"lam must be positive, not {lam}.")
    if random_ratio > 0 and random_id_range is None:
        raise ValueError("random_ratio > 0 needs random_id_range to draw the random tokens from.")
    n_free = int(free.sum())
    target = _round_stochastic(ratio * n_free, rng)
    if target == 0:
        return tokens.copy()
    starts, lengths = _place_spans(_span_lengths(target, lam, rng), free, rng)
    if starts.size == 0:
        return tokens.copy()

    fills = np.full(starts.size, mask_id, dtype=np.int64)
    if random_ratio > 0 and random_id_range is not None:
        lo, hi = random_id_range
        replace = rng.random(starts.size) < random_ratio
        fills[replace] = rng.integers(lo, hi, size=int(replace.sum()))

    # Rebuild without a Python loop: drop every covered position, then insert one fill token where
    # each span started (np.insert places them before the first kept token after the span).
    keep = np.ones(n, dtype=bool)
    covered = np.repeat(starts, lengths) + _ranges(lengths)
    keep[covered] = False
    # Kept tokens before each span's start give its place among the kept tokens.
    kept_before = np.concatenate([[0], np.cumsum(keep)])[starts]
    return np.insert(tokens[keep], kept_before, fills.astype(tokens.dtype))


def token_deletion(
    tokens: np.ndarray,
    ratio: float,
    rng: np.random.Generator,
    protected: np.ndarray | None = None,
) -> np.ndarray:
    """Delete ``ratio`` of the non-protected tokens, chosen uniformly (count rounded at random)."""
    tokens = np.asarray(tokens)
    free = _candidates(tokens.size, protected)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be between 0 and 1, not {ratio}.")
    positions = np.flatnonzero(free)
    n_delete = _round_stochastic(ratio * positions.size, rng)
    if n_delete == 0:
        return tokens.copy()
    keep = np.ones(tokens.size, dtype=bool)
    keep[rng.choice(positions, size=n_delete, replace=False)] = False
    return tokens[keep]


def sentence_permutation(
    segments: Sequence[np.ndarray], rng: np.random.Generator
) -> list[np.ndarray]:
    """The segments in a random order (each segment is kept whole)."""
    return [segments[i] for i in rng.permutation(len(segments))]


def add_noise(
    segments: Sequence[np.ndarray],
    config: NoiseConfig,
    mask_id: int,
    rng: np.random.Generator,
    random_id_range: tuple[int, int] | None = None,
    protected_ids: Collection[int] = (),
) -> np.ndarray:
    """BART's source sequence for ``segments``; its target is ``np.concatenate(segments)``.

    Permutes the segments (when ``config.permute_sentences``), concatenates them, deletes tokens,
    then infills spans. Tokens whose id is in ``protected_ids`` are never deleted or masked. A
    segment made only of protected ids is an anchor: permutation keeps it in place and shuffles the
    other segments only within the groups it separates (``[s1, s2, [>], v1, v2]`` keeps text before
    ``[>]`` before video). BOS/EOS are best added by the caller around the result.

    Args:
        segments: token-id arrays: one sentence of text, or one run of visual words, each.
        config: how much noise.
        mask_id: the mask token id.
        rng: the random generator.
        random_id_range: ``[lo, hi)`` ids for the spans written as random tokens; required when
            ``config.random_ratio > 0`` (``(0, len(vocabulary))`` is a fair choice).
        protected_ids: ids never corrupted (``[>]``, BOS, EOS).

    Raises:
        ValueError: ``config.random_ratio > 0`` without a ``random_id_range``.
    """
    if config.random_ratio > 0 and random_id_range is None:
        raise ValueError(
            "config.random_ratio > 0 needs random_id_range; pass it or set random_ratio=0."
        )
    protected_set = np.fromiter((int(i) for i in protected_ids), dtype=np.int64)
    parts = [np.asarray(s, dtype=np.int64).reshape(-1) for s in segments]
    if config.permute_sentences and len(parts) > 1:
        parts = _permute_between_anchors(parts, protected_set, rng)
    if not parts:
        return np.zeros(0, dtype=np.int64)
    tokens = np.concatenate(parts)
    if config.delete_ratio > 0:
        tokens = token_deletion(tokens, config.delete_ratio, rng, np.isin(tokens, protected_set))
    return text_infilling(
        tokens,
        mask_id,
        config.mask_ratio,
        config.poisson_lambda,
        rng,
        np.isin(tokens, protected_set),
        random_ratio=config.random_ratio,
        random_id_range=random_id_range,
    )


def _permute_between_anchors(
    parts: list[np.ndarray], protected_set: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffle the segments within each group between anchors (all-protected, non-empty segments)."""
    out: list[np.ndarray] = []
    group: list[np.ndarray] = []
    for part in parts:
        if part.size and np.isin(part, protected_set).all():
            out.extend(sentence_permutation(group, rng))
            out.append(part)
            group = []
        else:
            group.append(part)
    out.extend(sentence_permutation(group, rng))
    return out
