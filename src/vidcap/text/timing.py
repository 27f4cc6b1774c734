"""Time tokens for dense captioning, as in Vid2Seq (Yang et al., CVPR 2023).

A time ``t`` of a video lasting ``duration`` seconds is the token of bin
``round(t / duration * (n - 1))`` among ``n`` relative bins (``[T0]`` is the start, ``[T{n-1}]``
the end), so a bin's token means the same fraction of any video, short or long. A dense target is
the video's events in order, each ``[T start] [T end] caption``, then ``[EOS]``; a transcript line
gets the same two tokens before its words. Bin ``b`` reads back as ``b / (n - 1) * duration``, so
a time round-trips to within half a bin (``duration / (2 (n - 1))``).

What a model generates is read back by :func:`parse_events`, which never fails: whatever does not
form ``time time words`` is dropped (see its docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vidcap.errors import VidcapError
from vidcap.output.formats import TimedCaption

if TYPE_CHECKING:
    import torch

    from vidcap.text.vocabulary import JointVocabulary

DEFAULT_TIME_BINS = 100
"""Vid2Seq's number of relative time bins."""


def time_bin(seconds: float, duration: float, n_bins: int) -> int:
    """The bin of ``seconds`` in a video of ``duration`` seconds (clamped into the video)."""
    if not duration > 0:
        raise VidcapError(f"a video's duration must be > 0 to place events in it, not {duration}.")
    fraction = min(max(float(seconds) / duration, 0.0), 1.0)
    return round(fraction * (n_bins - 1))


def bin_time(bin_index: int, duration: float, n_bins: int) -> float:
    """The time in seconds that bin ``bin_index`` stands for."""
    return float(bin_index) / (n_bins - 1) * duration


def _timed_pieces(
    vocab: JointVocabulary, spans: Sequence[tuple[float, float, str]], duration: float
) -> list[np.ndarray]:
    """``[T start] [T end] words`` of each span, in the order given."""
    n = vocab.n_time
    texts = vocab.encode_texts([text for _, _, text in spans])
    return [
        np.concatenate(
            [
                vocab.time_ids([time_bin(start, duration, n), time_bin(end, duration, n)]),
                np.asarray(ids, dtype=np.int64),
            ]
        )
        for (start, end, _), ids in zip(spans, texts, strict=True)
    ]


def ordered(spans: Sequence[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Spans sorted by start, then end (the order a dense sequence tells them in)."""
    return sorted(spans, key=lambda span: (span[0], span[1]))


def event_target(
    vocab: JointVocabulary,
    events: Sequence[tuple[float, float, str]],
    duration: float,
    max_length: int,
) -> np.ndarray:
    """The decoder target of a video's ``(start, end, caption)`` events: each event's time tokens
    and caption, in order of start, then ``[EOS]``.

    When the events do not all fit in ``max_length`` tokens, the last ones are left out whole
    (a cut caption would teach the model to stop mid-sentence); the first is cut if it alone is
    too long.
    """
    pieces = _timed_pieces(vocab, ordered(events), duration)
    kept: list[np.ndarray] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > max_length - 1:
            if not kept:
                kept.append(piece[: max_length - 1])
            break
        kept.append(piece)
        used += len(piece)
    return np.concatenate([*kept, [vocab.eos_id]]).astype(np.int64)


def timed_text(
    vocab: JointVocabulary,
    lines: Sequence[tuple[float, float, str]],
    duration: float,
    budget: int,
) -> list[int]:
    """Transcript lines as ``[T start] [T end] words …`` in order of start, at most ``budget``
    tokens (whole lines while they fit, then the next line cut)."""
    ids: list[int] = []
    for piece in _timed_pieces(vocab, ordered(lines), duration):
        ids += piece[: budget - len(ids)].tolist()
        if len(ids) >= budget:
            break
    return ids


def parse_events(
    vocab: JointVocabulary,
    ids: np.ndarray | Sequence[int] | torch.Tensor,
    duration: float,
) -> list[TimedCaption]:
    """The events of a generated dense sequence (without the decoder's start token), never
    failing on what a model may emit:

    - the sequence ends at the first ``[EOS]`` or pad; it is read as groups: a run of time
      tokens, then a run of other tokens (the caption), which ends at the next time token;
    - a group needs two time tokens (of more, the last two count) and a caption with text; others
      are dropped, as is anything before the first time token;
    - an event that ends before it starts is dropped; one that starts and ends in the same bin
      gets that bin's width (centred on it), so it is never of zero length;
    - times are clamped to ``[0, duration]``, events sorted by start then end, and exact
      repeats (same times and text) kept once.
    """
    ids = np.asarray(
        ids.detach().cpu().numpy() if hasattr(ids, "detach") else ids, dtype=np.int64
    ).reshape(-1)
    if not vocab.n_time:
        raise VidcapError("this model's vocabulary has no time tokens; it is not a dense model.")
    n = vocab.n_time
    bins = vocab.bins_from_ids(ids)
    ends = {vocab.eos_id, vocab.pad_id}
    stop = next((i for i, t in enumerate(ids.tolist()) if t in ends), len(ids))
    groups: list[tuple[list[int], list[int]]] = []
    for i in range(stop):
        if bins[i] >= 0:
            if not groups or groups[-1][1]:  # a time token after a caption starts a new group
                groups.append(([], []))
            groups[-1][0].append(int(bins[i]))
        elif groups:
            groups[-1][1].append(int(ids[i]))
    width = duration / (n - 1)
    events: set[tuple[float, float, str]] = set()
    for times, words in groups:
        text = vocab.decode_text(words) if words else ""
        if len(times) < 2 or not text:
            continue
        first, last = times[-2], times[-1]
        if last < first:
            continue
        start, end = bin_time(first, duration, n), bin_time(last, duration, n)
        if first == last:
            start, end = start - width / 2, end + width / 2
        start, end = min(max(start, 0.0), duration), min(max(end, 0.0), duration)
        events.add((start, end, text))
    return [TimedCaption(s, e, t) for s, e, t in sorted(events)]
