"""Scoring dense captions of a corpus split: a system's events against the corpus's, beside a
floor and a ceiling.

The true events of a video are its corpus segments. A segment may carry several reference
captions (the synthetic corpus has five paraphrases, an imported ActivityNet segment one per
annotator that gave it the same span): reference set *k* of a video is its segments, each with its
*k*-th caption, for as many sets as its segment with the fewest captions allows. Several sets are
scored as densevid_eval and SODA score ActivityNet's val_1 and val_2 (see
:mod:`vidcap.metrics.dense`).

Rows, each scored by :func:`vidcap.metrics.dense.dense_scores` on the same videos:

- the system (a prediction file, or a dense model's output);
- the **whole-video floor**: one event spanning the video, captioned with the most common
  training caption, which is what a system that neither finds nor tells events apart gets;
- the **reference ceiling**: reference set 0 (true times, one human's captions) scored against
  the other sets, what perfect localisation and human captions get (videos whose segments have a
  single caption are left out of it).

Each row also gets **story** scores (:mod:`vidcap.metrics.paragraph`): its events told as
``vidcap summarize`` tells them (:func:`vidcap.output.story.tell_story`: the key moments in time
order, joined, a subject told before re-mentioned as "the …"), against the video's summaries
(or, for a corpus without summaries, each reference set told the same way), and its 4-gram
repetition beside the references'.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap.corpus import VideoRecord, read_corpus
from vidcap.errors import VidcapError
from vidcap.metrics import captions
from vidcap.metrics.dense import TIOUS, DenseScores, dense_scores
from vidcap.metrics.paragraph import ParagraphScores, paragraph_scores
from vidcap.output.anet import read_anet_predictions
from vidcap.output.formats import TimedCaption
from vidcap.output.story import tell_story

__all__ = [
    "END_SLACK_S",
    "DenseReport",
    "reference_sets",
    "score_dense",
    "score_prediction_file",
]

END_SLACK_S = 0.5
"""How far past a video's recorded duration a predicted event may end: decoders and containers
disagree about a video's length by a frame or so."""


@dataclass
class DenseReport:
    """Dense-captioning scores of a split: one :class:`DenseScores` per row, the system first.

    Attributes:
        rows: row name -> scores, in display order (``labels`` has each row's display name).
        ignored: predicted videos of the corpus outside the split (left out, with a notice).
    """

    split: str
    videos: int
    events: int
    rows: dict[str, DenseScores]
    labels: dict[str, str]
    notices: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    stories: dict[str, ParagraphScores] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready (``vidcap evaluate --task dense --json``)."""
        return {
            "task": "dense",
            "split": self.split,
            "videos": self.videos,
            "events": self.events,
            "tious": list(TIOUS),
            "scores": {name: scores.to_json() for name, scores in self.rows.items()},
            "story": {name: story.as_dict() for name, story in self.stories.items()},
            "labels": dict(self.labels),
            "notices": list(self.notices),
            "ignored": list(self.ignored),
        }


def reference_sets(record: VideoRecord) -> list[list[TimedCaption]]:
    """A record's reference sets: its segments with their *k*-th caption, for every *k* its
    segment with the fewest captions has (empty without segments)."""
    if not record.segments:
        return []
    count = min(len(s.captions) for s in record.segments)
    return [
        [TimedCaption(s.start, s.end, s.captions[k]) for s in record.segments] for k in range(count)
    ]


def _reference_paragraphs(record: VideoRecord, first_set: int = 0) -> list[str]:
    """The video's summaries, or else its reference sets (from ``first_set`` on) as paragraphs."""
    sets = reference_sets(record)[first_set:]
    return list(record.summary) or [tell_story(s).paragraph for s in sets]


def _duration(record: VideoRecord) -> float:
    return record.duration if record.duration is not None else max(s.end for s in record.segments)


def _check_inside(
    predictions: Mapping[str, Sequence[TimedCaption]], by_id: dict[str, VideoRecord]
) -> None:
    for video, events in predictions.items():
        record = by_id[video]
        if record.duration is None:
            continue
        for i, event in enumerate(events):
            if event.start >= record.duration or event.end > record.duration + END_SLACK_S:
                raise VidcapError(
                    f"Predicted event {i} of video {video!r} ({event.start:g}-{event.end:g} s) is "
                    f"outside the video, which lasts {record.duration:g} s."
                )


def _whole_video_floor(
    records: list[VideoRecord], train: Sequence[VideoRecord], notices: list[str]
) -> dict[str, list[TimedCaption]] | None:
    counts = Counter(s.captions[0] for r in train for s in r.segments)
    if not counts:
        notices.append("whole-video floor skipped: the corpus has no training segments.")
        return None
    # The most common caption; ties go to the alphabetically first, so the row is reproducible.
    caption = min(counts, key=lambda c: (-counts[c], c))
    return {r.id: [TimedCaption(0.0, _duration(r), caption)] for r in records}


def _reference_ceiling(
    records: list[VideoRecord], notices: list[str]
) -> tuple[dict[str, list[TimedCaption]], dict[str, list[list[TimedCaption]]]] | None:
    sets = {r.id: reference_sets(r) for r in records}
    several = {video: s for video, s in sets.items() if len(s) > 1}
    if not several:
        notices.append("reference ceiling skipped: no video's segments have two or more captions.")
        return None
    if len(several) < len(sets):
        notices.append(
            f"reference ceiling: {len(sets) - len(several)} of {len(sets)} videos have a single "
            "reference set and are left out of it."
        )
    return {v: s[0] for v, s in several.items()}, {v: s[1:] for v, s in several.items()}


def score_dense(
    predictions: Mapping[str, Sequence[TimedCaption]],
    records: Sequence[VideoRecord],
    split: str = "test",
    meteor: bool = True,
    name: str = "predictions",
    label: str = "predictions",
    baselines: bool = True,
) -> DenseReport:
    """Score ``predictions`` (video id -> events) against the events of ``split`` of a corpus.

    Args:
        predictions: predicted events per corpus video id. Videos of the split without an entry
            score 0; predicted videos of other splits are ignored with a notice.
        records: the whole corpus (its train split gives the floor's caption).
        split: the split to score: its videos with segments.
        meteor: compute METEOR and SODA_c (Java; one METEOR process serves every row).
        name, label: the system row's key in :attr:`DenseReport.rows` and its display name.
        baselines: add the whole-video floor and the reference ceiling rows.

    Raises:
        VidcapError: the split has no video with segments, a predicted video the corpus does not
            have, or a predicted event outside its video.
    """
    by_id = {r.id: r for r in records}
    unknown = [video for video in predictions if video not in by_id]
    if unknown:
        raise VidcapError(
            f"The predictions name {len(unknown)} videos the corpus does not have (first: "
            f"{unknown[0]!r}); video ids must be the corpus ids."
        )
    scored = [r for r in records if r.split == split and r.segments]
    if not scored:
        raise VidcapError(f"The corpus has no videos with segments (events) in split {split!r}.")
    in_split = {r.id for r in scored}
    notices: list[str] = []
    ignored = [video for video in predictions if video not in in_split]
    if ignored:
        notices.append(
            f"{len(ignored)} predicted videos are not {split} videos with events and were left "
            f"out (first: {ignored[0]!r})."
        )
    mine = {video: list(events) for video, events in predictions.items() if video in in_split}
    _check_inside(mine, by_id)
    references = {r.id: reference_sets(r) for r in scored}

    rows: dict[str, DenseScores] = {}
    labels = {name: label}
    with contextlib.ExitStack() as stack:
        if meteor and captions.java_available():
            # One METEOR process for every row; if Java cannot start, each row says so.
            with contextlib.suppress(OSError):
                stack.enter_context(captions.meteor_process())
        rows[name] = dense_scores(mine, references, meteor=meteor)
        notices += rows[name].notices
        # Each row's events and the videos it was scored on, for its story scores.
        told: dict[str, tuple[Mapping[str, Sequence[TimedCaption]], list[str]]] = {
            name: (mine, list(references))
        }
        if baselines:
            train = [r for r in records if r.split == "train"]
            floor = _whole_video_floor(scored, train, notices)
            if floor is not None:
                rows["whole_video"] = dense_scores(floor, references, meteor=meteor)
                told["whole_video"] = (floor, list(references))
                labels["whole_video"] = "whole-video floor"
            ceiling = _reference_ceiling(scored, notices)
            if ceiling is not None:
                rows["reference_ceiling"] = dense_scores(*ceiling, meteor=meteor)
                told["reference_ceiling"] = (ceiling[0], list(ceiling[1]))
                labels["reference_ceiling"] = "reference ceiling"
        stories = {}
        for row, (events, videos) in told.items():
            # The ceiling's paragraph is reference set 0: it is not its own reference.
            first = 1 if row == "reference_ceiling" else 0
            # What `vidcap summarize` tells: the key moments, joined and re-mentioned as a story.
            paragraphs = {video: tell_story(events.get(video, [])).paragraph for video in videos}
            refs = {video: _reference_paragraphs(by_id[video], first) for video in videos}
            stories[row] = paragraph_scores(paragraphs, refs, meteor=meteor)
    return DenseReport(
        split=split,
        videos=len(scored),
        events=sum(len(r.segments) for r in scored),
        rows=rows,
        labels=labels,
        notices=list(dict.fromkeys(notices)),
        ignored=ignored,
        stories=stories,
    )


def score_prediction_file(
    path: str | Path,
    corpus: str | Path,
    split: str = "test",
    meteor: bool = True,
    baselines: bool = True,
) -> DenseReport:
    """Score an ActivityNet prediction file against ``split`` of ``corpus`` (see
    :func:`score_dense`); its rows are keyed ``predictions``.

    Raises:
        VidcapError: a missing or malformed file or corpus, or what :func:`score_dense` refuses.
    """
    predictions = read_anet_predictions(path)
    return score_dense(
        predictions,
        read_corpus(corpus),
        split=split,
        meteor=meteor,
        label=Path(path).name,
        baselines=baselines,
    )
