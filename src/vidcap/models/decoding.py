"""A repetition guard for dense decoding: no repeated n-gram *within one event's caption*.

Hugging Face's ``no_repeat_ngram_size`` looks at the whole generated sequence, which for a dense
model (``[T s] [T e] caption [T s] [T e] caption …``) would forbid two events from sharing
"a red circle" — yet neighbouring events often do. Without any guard, a small model lets one
caption run on ("… moving up and down as the video shows a red dot moving up and down as …").
:class:`EventNoRepeatNGram` blocks an n-gram only when it already occurs in the caption being
written, i.e. since the last time token; each time token starts afresh.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

DEFAULT_EVENT_NO_REPEAT_NGRAM = 3
"""The n-gram size dense models are decoded with unless their bundle says otherwise (as captions)."""


class EventNoRepeatNGram(LogitsProcessor):
    """Forbid the next token when it would repeat an ``size``-gram of the current event's caption.

    ``time_ids`` is the half-open id range ``[first, last)`` of the time tokens: the caption of a
    row is what follows its last time token (the whole row when there is none yet). Time tokens
    themselves are never blocked, so an event can always end and the next one begin.
    """

    def __init__(self, size: int, time_ids: tuple[int, int]) -> None:
        if size < 1:
            raise ValueError(f"n-gram size must be >= 1, got {size}")
        self.size = size
        self.first, self.last = time_ids

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n = self.size
        for row, ids in enumerate(input_ids.tolist()):
            timed = [i for i, t in enumerate(ids) if self.first <= t < self.last]
            caption = ids[timed[-1] + 1 :] if timed else ids
            if len(caption) < n:
                continue
            prefix = tuple(caption[len(caption) - n + 1 :])
            banned = {
                caption[i + n - 1]
                for i in range(len(caption) - n + 1)
                if tuple(caption[i : i + n - 1]) == prefix
            }
            banned -= set(range(self.first, self.last))
            if banned:
                scores[row, sorted(banned)] = float("-inf")
        return scores
