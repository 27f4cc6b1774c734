"""Captioning examples: a segment's visual words (and optionally its clip features and narration)
in, one of its reference captions out.

The encoder input is ``[BOS] narration [>] visual-words [EOS]`` (no narration: ``[BOS] words
[EOS]``); token type 0 marks text and 1 marks video, as in pretraining. With features, each visual
word's position also carries its clip's feature vector (the caption model projects it and adds it
to the word's embedding), so words and features stay aligned one to one.

The same :func:`segment_inputs` builds the encoder input for training, for ``vidcap evaluate`` and
for ``vidcap caption``, so what the model sees never depends on the route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vidcap.artifacts import read_upstream
from vidcap.corpus import VideoRecord, read_corpus
from vidcap.errors import VidcapError
from vidcap.stages.encode import load_features
from vidcap.stages.quantize import load_words
from vidcap.text import JointVocabulary
from vidcap.training.padding import as_tensors, attention_mask, decoder_targets, padded


@dataclass
class ClipTrack:
    """One video's clips: visual word, start and end time, and (optionally) feature of each."""

    words: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    features: np.ndarray | None = None

    def between(self, start: float, end: float) -> np.ndarray:
        """Indices of the clips overlapping ``[start, end]`` (the nearest clip if none does)."""
        inside = np.flatnonzero((self.start_s < end) & (self.end_s > start))
        if len(inside) == 0 and len(self.words):
            centre = (start + end) / 2
            inside = np.array([int(np.argmin(np.abs((self.start_s + self.end_s) / 2 - centre)))])
        return inside


@dataclass
class CaptionSegment:
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


def load_tracks(
    words_dir: str | Path, with_features: bool
) -> tuple[dict[str, ClipTrack], dict[str, str | None], dict[str, Any]]:
    """Every quantized video's clips (with features from the encode folder upstream when asked),
    each video's split, and the words folder's manifest."""
    manifest, items = read_upstream(words_dir, "quantize")
    features_dir = Path(manifest["upstream"]["path"]) if with_features else None
    feature_items = read_upstream(features_dir, "encode")[1] if features_dir else {}
    tracks, splits = {}, {}
    for video_id, item in sorted(items.items()):
        words = load_words(Path(words_dir) / item.outputs["words"])
        if not words.words:
            continue
        features = None
        if features_dir is not None:
            if video_id not in feature_items:
                raise VidcapError(
                    f"{features_dir} has no features for {video_id}; --with-features needs the encode folder the words came from."
                )
            loaded = load_features(features_dir / feature_items[video_id].outputs["features"])
            features = loaded["features"].astype(np.float32)
            if len(features) != len(words.words):
                raise VidcapError(
                    f"{video_id}: {len(features)} clip features but {len(words.words)} visual words; re-run `vidcap quantize` on {features_dir}."
                )
        tracks[video_id] = ClipTrack(
            np.asarray(words.words, dtype=np.int64),
            np.asarray(words.start_s, dtype=np.float64),
            np.asarray(words.end_s, dtype=np.float64),
            features,
        )
        splits[video_id] = item.info.get("split")
    if not tracks:
        raise VidcapError(f"{words_dir} has no videos with visual words.")
    return tracks, splits, manifest


def captioned_segments(
    records: Sequence[VideoRecord], tracks: dict[str, ClipTrack]
) -> list[CaptionSegment]:
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
                CaptionSegment(
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


TASKS = ("caption", "qa", "summary")


def task_items(
    task: str, records: Sequence[VideoRecord], tracks: dict[str, ClipTrack]
) -> list[CaptionSegment]:
    """The examples of a task, one per target group, for the videos that have clips:

    - ``caption``: each corpus segment, its reference captions the targets;
    - ``qa``: each question of a video (over the whole video), its answer the target;
    - ``summary``: each video (its whole transcript as narration), its summaries the targets.
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
                CaptionSegment(
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
        elif task == "summary":
            if record.summary:
                narration = " ".join(t.text for t in record.transcript)
                items.append(
                    CaptionSegment(
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


def corpus_records(manifest: dict[str, Any], words_dir: str | Path) -> list[VideoRecord]:
    """The corpus recorded in a words folder's manifest (its captions are the targets)."""
    corpus_path = manifest.get("corpus")
    if not corpus_path:
        raise VidcapError(
            f"{words_dir} was built from plain video files, with no corpus; captioning needs a corpus.jsonl with segment captions."
        )
    if not Path(corpus_path).is_file():
        raise VidcapError(f"the corpus {corpus_path} recorded by {words_dir} is gone.")
    return read_corpus(corpus_path)


@dataclass(frozen=True)
class InputConfig:
    """What the caption model reads besides the visual words."""

    with_features: bool = False
    with_transcript: bool = False  # the item's text (narration, or a question) before the words
    max_source: int = 128
    max_target: int = 40

    @classmethod
    def for_task(cls, task: str, with_features: bool, with_transcript: bool) -> InputConfig:
        """Questions are always read; summaries are longer than captions."""
        return cls(
            with_features=with_features,
            with_transcript=with_transcript or task == "qa",
            max_target=96 if task == "summary" else 40,
        )


def segment_inputs(
    vocab: JointVocabulary,
    words: np.ndarray,
    features: np.ndarray | None,
    narration: str,
    config: InputConfig,
) -> dict[str, np.ndarray]:
    """The encoder input of one segment: ids, token types, and per-position features.

    ``features`` is ``[len(words), dim]`` (or None); positions without a clip get zeros and
    ``feature_mask`` 0. Too many clips are subsampled evenly so the sequence fits ``max_source``.
    """
    text: list[int] = []
    if config.with_transcript and narration.strip():
        text = vocab.encode_text(narration)[: config.max_source // 2]
    budget = config.max_source - 2 - (len(text) + 1 if text else 0)
    if len(words) > budget:  # keep the whole segment in view: subsample evenly, not truncate
        keep = np.linspace(0, len(words) - 1, budget).round().astype(int)
        words = words[keep]
        features = features[keep] if features is not None else None
    video = vocab.visual_ids(words).astype(np.int64)
    head = [vocab.bos_id, *text, vocab.join_id] if text else [vocab.bos_id]
    ids = np.concatenate([head, video, [vocab.eos_id]]).astype(np.int64)
    types = np.concatenate([np.zeros(len(head)), np.ones(len(video) + 1)]).astype(np.int64)
    out = {"input_ids": ids, "token_type_ids": types}
    if config.with_features:
        if features is None:
            raise VidcapError("this caption model reads clip features, but none were given.")
        dim = features.shape[1]
        padded = np.zeros((len(ids), dim), dtype=np.float32)
        padded[len(head) : len(head) + len(video)] = features
        mask = np.zeros(len(ids), dtype=np.float32)
        mask[len(head) : len(head) + len(video)] = 1.0
        out["features"], out["feature_mask"] = padded, mask
    return out


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
        segments: Sequence[CaptionSegment],
        tracks: dict[str, ClipTrack],
        vocab: JointVocabulary,
        config: InputConfig,
    ) -> None:
        self.entries = [
            (s, c) for s, segment in enumerate(segments) for c in range(len(segment.captions))
        ]
        self.inputs = [
            segment_inputs(
                vocab,
                tracks[seg.video_id].words[seg.clips],
                _features(tracks[seg.video_id], seg.clips),
                seg.narration,
                config,
            )
            for seg in segments
        ]
        self.targets = [
            [caption_target(vocab, c, config.max_target) for c in seg.captions] for seg in segments
        ]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index = key[1] if isinstance(key, tuple) else key
        s, c = self.entries[index]
        return {**self.inputs[s], "labels": self.targets[s][c]}


def _features(track: ClipTrack, clips: np.ndarray) -> np.ndarray | None:
    return track.features[clips] if track.features is not None else None


def collate_inputs(batch: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad encoder inputs (ids, token types, and features when present) into tensors."""
    ids = [b["input_ids"] for b in batch]
    out = as_tensors(
        {
            "input_ids": padded(ids, pad_id),
            "token_type_ids": padded([b["token_type_ids"] for b in batch], 0),
            "attention_mask": attention_mask(ids),
        }
    )
    if "features" in batch[0]:
        n, length, dim = len(batch), out["input_ids"].shape[1], batch[0]["features"].shape[1]
        out["features"] = torch.zeros((n, length, dim), dtype=torch.float32)
        out["feature_mask"] = torch.zeros((n, length), dtype=torch.float32)
        for row, b in enumerate(batch):
            m = len(b["input_ids"])
            out["features"][row, :m] = torch.from_numpy(b["features"])
            out["feature_mask"][row, :m] = torch.from_numpy(b["feature_mask"])
    return out


def collate_captions(
    batch: list[dict[str, Any]], pad_id: int, decoder_start_id: int
) -> dict[str, torch.Tensor]:
    """Pad caption examples; ``decoder_input_ids`` are the targets shifted right."""
    targets = decoder_targets([b["labels"] for b in batch], pad_id, decoder_start_id)
    return {**collate_inputs(batch, pad_id), **as_tensors(targets)}
