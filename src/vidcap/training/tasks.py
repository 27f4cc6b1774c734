"""Finetuning data per task: the items of a task (caption: each corpus segment; qa: each question;
summary and dense: each video) and their training examples, one per reference target.

An item's encoder input is built by :func:`vidcap.models.inputs.segment_inputs` (dense:
:func:`~vidcap.models.inputs.video_inputs`), the same functions captioning and evaluation use; its
target is the reference's word pieces then ``[EOS]`` (dense: every event's time tokens and caption,
:func:`vidcap.text.timing.event_target`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vidcap.artifacts import recorded_corpus
from vidcap.artifacts.readers import ClipTrack
from vidcap.bundle import TASKS
from vidcap.corpus import Segment, VideoRecord, read_corpus
from vidcap.errors import VidcapError
from vidcap.models.inputs import InputConfig, collate_inputs, segment_inputs, video_inputs
from vidcap.models.padding import as_tensors, decoder_targets
from vidcap.text import JointVocabulary
from vidcap.text.timing import event_target, ordered


@dataclass
class TaskItem:
    """A captioned stretch of a video: its clips, its narration and its reference captions."""

    video_id: str
    index: int
    split: str | None
    start: float
    end: float
    clips: np.ndarray  # indices into the video's ClipTrack
    narration: str  # text fed before the visual words when asked: narration, or the question
    captions: tuple[str, ...]  # the targets: reference captions, the answer, or the summaries
    kind: str | None = None  # the question type (qa)
    prefix: str = ""  # "q" for questions, "" for segments and whole videos
    events: tuple[Segment, ...] = ()  # dense: the video's segments, in order of start
    transcript: tuple[tuple[float, float, str], ...] = ()  # dense: (start, end, text) lines

    @property
    def key(self) -> str:
        """A unique name for metric tables: ``video#segment`` (``video#q3`` for question 3)."""
        return f"{self.video_id}#{self.prefix}{self.index}"


def segment_narration(record: VideoRecord, start: float, end: float) -> str:
    """The speech of a stretch: transcript lines overlapping it, else the segment's narration."""
    lines = [t.text for t in record.transcript if t.start < end and t.end > start]
    if lines:
        return " ".join(lines)
    for segment in record.segments:
        if segment.start == start and segment.end == end and segment.narration:
            return segment.narration
    return ""


def captioned_segments(
    records: Sequence[VideoRecord], tracks: dict[str, ClipTrack]
) -> list[TaskItem]:
    """The corpus segments of the videos that have clips, in corpus order."""
    segments = []
    for record in records:
        track = tracks.get(record.id)
        if track is None:
            continue
        for index, segment in enumerate(record.segments):
            if not segment.captions:
                continue
            segments.append(
                TaskItem(
                    video_id=record.id,
                    index=index,
                    split=record.split,
                    start=segment.start,
                    end=segment.end,
                    clips=track.between(segment.start, segment.end),
                    narration=segment_narration(record, segment.start, segment.end),
                    captions=tuple(segment.captions),
                )
            )
    return segments


ITEM_NAMES = {
    "caption": "captioned segments",
    "qa": "questions",
    "summary": "summaries",
    "dense": "videos with captioned segments",
}
"""What a task's items are called in messages."""


def task_items(
    task: str, records: Sequence[VideoRecord], tracks: dict[str, ClipTrack]
) -> list[TaskItem]:
    """The examples of a task, one per target group, for the videos that have clips:

    - ``caption``: each corpus segment, its reference captions the targets;
    - ``qa``: each question of a video (over the whole video), its answer the target;
    - ``summary``: each video (its whole transcript as narration), its summaries the targets;
    - ``dense``: each video with captioned segments (its events), as :func:`dense_item` makes it.
    """
    if task == "caption":
        return captioned_segments(records, tracks)
    items = []
    for record in records:
        track = tracks.get(record.id)
        if track is None or not len(track.words):
            continue
        end = float(track.end_s[-1])
        whole = np.arange(len(track.words))
        if task == "qa":
            items += [
                TaskItem(
                    record.id,
                    i,
                    record.split,
                    0.0,
                    end,
                    whole,
                    qa.question,
                    (qa.answer,),
                    kind=qa.type,
                    prefix="q",
                )
                for i, qa in enumerate(record.qa)
                if qa.question.strip() and qa.answer.strip()
            ]
        elif task == "dense":
            if any(segment.captions for segment in record.segments):
                items.append(dense_item(record, track))
        elif task == "summary":
            if record.summary:
                narration = " ".join(t.text for t in record.transcript)
                items.append(
                    TaskItem(
                        record.id,
                        0,
                        record.split,
                        0.0,
                        end,
                        whole,
                        narration,
                        tuple(record.summary),
                    )
                )
        else:
            raise VidcapError(f"--task must be one of {', '.join(TASKS)}, got {task!r}.")
    return items


def dense_item(record: VideoRecord, track: ClipTrack) -> TaskItem:
    """A video as a dense item: all its clips, its captioned segments in order as the events,
    its transcript lines, and as ``captions`` the reference paragraphs (paragraph ``k`` tells each
    event by its ``k``-th reference, the event's last one when it has fewer).

    The video's duration (the scale of its time bins) is the corpus's ``duration``, or where the
    corpus gives none the end of its last clip; captioning uses the decoded video's length
    (:func:`vidcap.inference.captioner.video_duration`). Both are the whole video, so a bin means
    the same stretch of it, up to the tail shorter than a clip that no clip covers.
    """
    events = tuple(
        sorted((s for s in record.segments if s.captions), key=lambda s: (s.start, s.end))
    )
    n_paragraphs = max(len(e.captions) for e in events)
    paragraphs = tuple(
        " ".join(e.captions[min(k, len(e.captions) - 1)] for e in events)
        for k in range(n_paragraphs)
    )
    return TaskItem(
        video_id=record.id,
        index=0,
        split=record.split,
        start=0.0,
        end=float(record.duration) if record.duration else float(track.end_s[-1]),
        clips=np.arange(len(track.words)),
        narration="",
        captions=paragraphs,
        events=events,
        transcript=tuple(ordered([(t.start, t.end, t.text) for t in record.transcript])),
    )


def dense_targets(vocab: JointVocabulary, item: TaskItem, max_target: int) -> list[np.ndarray]:
    """A dense item's decoder targets, one per reference paragraph (see :func:`dense_item`)."""
    return [
        event_target(
            vocab,
            [(e.start, e.end, e.captions[min(k, len(e.captions) - 1)]) for e in item.events],
            item.end,
            max_target,
        )
        for k in range(len(item.captions))
    ]


def item_inputs(
    vocab: JointVocabulary, item: TaskItem, track: ClipTrack, config: InputConfig
) -> dict[str, np.ndarray]:
    """The encoder input of an item: its segment's clips and narration, or (a dense item, for a
    dense model) the whole video and its timed transcript."""
    words, features = track.words[item.clips], _features(track, item.clips)
    if config.time_bins and item.events:
        return video_inputs(vocab, words, features, item.transcript, item.end, config)
    return segment_inputs(vocab, words, features, item.narration, config)


def corpus_records(manifest: dict[str, Any], words_dir: str | Path) -> list[VideoRecord]:
    """The corpus recorded in a words folder's manifest (its captions are the targets)."""
    corpus_path = recorded_corpus(words_dir, manifest)
    if not corpus_path:
        raise VidcapError(
            f"{words_dir} was built from plain video files, with no corpus; captioning needs a corpus.jsonl with segment captions."
        )
    if not Path(corpus_path).is_file():
        raise VidcapError(f"the corpus {corpus_path} recorded by {words_dir} is gone.")
    return read_corpus(corpus_path)


def caption_target(vocab: JointVocabulary, caption: str, max_target: int) -> np.ndarray:
    """The decoder target of a caption: its word pieces then ``[EOS]``."""
    ids = vocab.encode_text(caption)[: max_target - 1]
    return np.asarray([*ids, vocab.eos_id], dtype=np.int64)


class CaptionExamples(Dataset):
    """Every (segment, reference caption) pair; each caption is one target, as in YouCook2 training.

    Asked for as ``dataset[(epoch, index)]`` (a plain index is epoch 0) like the pretraining
    examples; the examples themselves hold no randomness.
    """

    def __init__(
        self,
        segments: Sequence[TaskItem],
        tracks: dict[str, ClipTrack],
        vocab: JointVocabulary,
        config: InputConfig,
    ) -> None:
        self.entries = [
            (s, c) for s, segment in enumerate(segments) for c in range(len(segment.captions))
        ]
        self.inputs = [item_inputs(vocab, seg, tracks[seg.video_id], config) for seg in segments]
        self.targets = [
            dense_targets(vocab, seg, config.max_target)
            if config.time_bins and seg.events
            else [caption_target(vocab, c, config.max_target) for c in seg.captions]
            for seg in segments
        ]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index = key[1] if isinstance(key, tuple) else key
        s, c = self.entries[index]
        return {**self.inputs[s], "labels": self.targets[s][c]}


def _features(track: ClipTrack, clips: np.ndarray) -> np.ndarray | None:
    return track.features[clips] if track.features is not None else None


def collate_captions(
    batch: list[dict[str, Any]], pad_id: int, decoder_start_id: int
) -> dict[str, torch.Tensor]:
    """Pad caption examples; ``decoder_input_ids`` are the targets shifted right."""
    targets = decoder_targets([b["labels"] for b in batch], pad_id, decoder_start_id)
    return {**collate_inputs(batch, pad_id), **as_tensors(targets)}
