"""What a corpus holds: videos, segments, captions, vocabulary, hours, splits, missing files."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vidcap.corpus import SPLITS, VideoRecord

# Word tokens for the vocabulary count: runs of letters/digits in any script, keeping
# contractions ("don't") whole.
_WORD = re.compile(r"\w+(?:'\w+)*")


@dataclass
class CorpusStats:
    """Counts over a corpus; ``hours`` covers only videos with a known ``duration``."""

    videos: int
    segments: int
    captions: int
    captions_per_segment: dict[str, float] | None  # mean / min / max; None without segments
    vocabulary: int
    hours: float
    unknown_duration: int  # videos without a duration (not probed: they are not in ``hours``)
    splits: dict[str, int]
    missing_videos: list[str] = field(default_factory=list)
    transcribed_videos: int = 0
    transcript_lines: int = 0

    def to_json(self, max_missing: int = 5) -> dict[str, Any]:
        """The stats as JSON (for ``--json``), with the first ``max_missing`` missing ids."""
        return {
            "videos": self.videos,
            "segments": self.segments,
            "captions": self.captions,
            "captions_per_segment": self.captions_per_segment,
            "vocabulary": self.vocabulary,
            "hours": self.hours,
            "videos_without_duration": self.unknown_duration,
            "splits": self.splits,
            "missing_videos": {
                "count": len(self.missing_videos),
                "first": self.missing_videos[:max_missing],
            },
            "transcripts": {"videos": self.transcribed_videos, "lines": self.transcript_lines},
        }


def corpus_stats(records: Sequence[VideoRecord]) -> CorpusStats:
    """Count a corpus. Vocabulary: distinct lowercase word tokens over every segment caption."""
    per_segment = [len(s.captions) for r in records for s in r.segments]
    words = {
        word
        for r in records
        for s in r.segments
        for caption in s.captions
        for word in _WORD.findall(caption.lower())
    }
    splits = Counter(r.split for r in records)
    return CorpusStats(
        videos=len(records),
        segments=len(per_segment),
        captions=sum(per_segment),
        captions_per_segment=(
            {
                "mean": round(sum(per_segment) / len(per_segment), 3),
                "min": min(per_segment),
                "max": max(per_segment),
            }
            if per_segment
            else None
        ),
        vocabulary=len(words),
        hours=round(sum(r.duration for r in records if r.duration is not None) / 3600, 4),
        unknown_duration=sum(r.duration is None for r in records),
        splits={s: splits[s] for s in SPLITS},
        missing_videos=[r.id for r in records if not r.video.is_file()],
        transcribed_videos=sum(bool(r.transcript) for r in records),
        transcript_lines=sum(len(r.transcript) for r in records),
    )
