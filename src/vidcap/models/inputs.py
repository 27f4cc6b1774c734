"""The caption model's encoder input, the same for training, ``vidcap evaluate`` and ``vidcap
caption``, so what the model sees never depends on the route.

The encoder input is ``[BOS] narration [>] visual-words [EOS]`` (no narration: ``[BOS] words
[EOS]``); token type 0 marks text and 1 marks video, as in pretraining. With features, each visual
word's position also carries its clip's feature vector (the caption model projects it and adds it
to the word's embedding), so words and features stay aligned one to one.

A dense model (``--task dense``) reads the whole video: its clips subsampled evenly to at most
``max_clips``, and with ``--with-transcript`` the transcript lines, each after its two time tokens
(:func:`vidcap.text.timing.timed_text`), as Vid2Seq gives its ASR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidcap.errors import VidcapError
from vidcap.models.padding import as_tensors, attention_mask, padded
from vidcap.text import JointVocabulary
from vidcap.text.timing import timed_text

DENSE_MAX_CLIPS = 100
"""Clips a dense model reads at most (Vid2Seq samples 100 frames); longer videos are subsampled."""
DENSE_MAX_TARGET = 256
"""Longest dense target: the events' time tokens and captions (cut to the model's positions)."""


@dataclass(frozen=True)
class InputConfig:
    """What the caption model reads besides the visual words."""

    with_features: bool = False
    with_transcript: bool = False  # the item's text (narration, or a question) before the words
    max_source: int = 128
    max_target: int = 40
    time_bins: int = 0  # dense models: relative time bins (0: not a dense model)
    max_clips: int | None = None  # dense models: clips read at most, subsampled evenly

    @classmethod
    def for_task(
        cls,
        task: str,
        with_features: bool,
        with_transcript: bool,
        time_bins: int = 0,
        max_clips: int = DENSE_MAX_CLIPS,
    ) -> InputConfig:
        """Questions are always read; summaries are longer than captions; a dense target holds
        every event of a video."""
        if task == "dense":
            if max_clips < 1:
                raise VidcapError(f"--max-clips must be at least 1, got {max_clips}.")
            return cls(
                with_features=with_features,
                with_transcript=with_transcript,
                max_target=DENSE_MAX_TARGET,
                time_bins=time_bins,
                max_clips=max_clips,
            )
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
    return _encoder_inputs(vocab, words, features, text, config)


def video_inputs(
    vocab: JointVocabulary,
    words: np.ndarray,
    features: np.ndarray | None,
    transcript: Sequence[tuple[float, float, str]],
    duration: float,
    config: InputConfig,
) -> dict[str, np.ndarray]:
    """The encoder input of a whole video for a dense model: its clips (at most
    ``config.max_clips``, subsampled evenly) and, with ``with_transcript``, the ``(start, end,
    text)`` transcript lines after their time tokens."""
    limit = config.max_clips or len(words)
    if len(words) > limit:
        keep = np.linspace(0, len(words) - 1, limit).round().astype(int)
        words = words[keep]
        features = features[keep] if features is not None else None
    text: list[int] = []
    if config.with_transcript and transcript:
        text = timed_text(vocab, transcript, duration, config.max_source // 2)
    return _encoder_inputs(vocab, words, features, text, config)


def _encoder_inputs(
    vocab: JointVocabulary,
    words: np.ndarray,
    features: np.ndarray | None,
    text: list[int],
    config: InputConfig,
) -> dict[str, np.ndarray]:
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
