"""Training examples from a words folder and its corpus: aligned text and visual-word runs.

A *unit* is a stretch of a video with text: a transcript line (speech) or a captioned segment (its
reference captions are alternatives). Its visual words are the words of the clips overlapping it.
Videos without any text still give video-only examples.

Examples are deterministic. A key is ``(epoch, index)`` (a plain ``index`` is epoch 0); a batch of
keys, asked for at once as a DataLoader does (``dataset.__getitems__(keys)``), draws from one
generator seeded by the dataset's seed and the keys, and ``dataset[key]`` is a batch of one. So a
resumed run sees exactly the batches it would have seen, whichever process draws them. One generator
per batch, rather than per example, and masking a whole padded batch at once keep drawing cheap: it
runs on the fly, on the cores that train the model.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vidcap.artifacts import recorded_corpus
from vidcap.artifacts.readers import ClipTrack, read_tracks
from vidcap.corpus import VideoRecord, read_corpus
from vidcap.errors import VidcapError
from vidcap.models.padding import as_tensors, attention_mask, decoder_targets, padded
from vidcap.text import JointVocabulary
from vidcap.training.noise import NoiseConfig, add_noise

TEXT, VIDEO, JOINT = 0, 1, 2
OBJECTIVES = ("text", "video", "joint")


@dataclass(frozen=True)
class TextUnit:
    """A stretch of a video with text; ``texts`` are alternative wordings (reference captions)."""

    start: float
    end: float
    texts: tuple[str, ...]


@dataclass
class VideoSample:
    """One video's clip track (visual words and clip times) and its text units, in time order."""

    id: str
    split: str | None
    track: ClipTrack
    units: list[TextUnit]


def text_units(
    record: VideoRecord | None, use_transcript: bool = True, use_captions: bool = True
) -> list[TextUnit]:
    """A video's text units: its transcript lines and its captioned segments, by start time."""
    if record is None:
        return []
    units = []
    if use_transcript:
        units += [TextUnit(t.start, t.end, (t.text,)) for t in record.transcript if t.text.strip()]
    if use_captions:
        units += [TextUnit(s.start, s.end, tuple(s.captions)) for s in record.segments]
    return sorted(units, key=lambda u: (u.start, u.end))


def load_video_samples(
    words_dir: str | Path, use_transcript: bool = True, use_captions: bool = True
) -> tuple[list[VideoSample], dict[str, Any]]:
    """Every quantized video with its text (from the corpus recorded upstream), and the manifest."""
    tracks, splits, manifest = read_tracks(words_dir)
    corpus_path = recorded_corpus(words_dir, manifest)
    records: dict[str, VideoRecord] = {}
    if corpus_path:
        if not Path(corpus_path).is_file():
            raise VidcapError(
                f"the corpus {corpus_path} recorded by {words_dir} is gone; its text is needed for training."
            )
        records = {r.id: r for r in read_corpus(corpus_path)}
    samples = [
        VideoSample(
            video_id,
            splits[video_id],
            track,
            text_units(records.get(video_id), use_transcript, use_captions),
        )
        for video_id, track in tracks.items()
    ]
    return samples, manifest


def split_samples(samples: list[VideoSample], split: str) -> list[VideoSample]:
    """The samples of one split; when no video has a split (plain video files), all are train."""
    if all(s.split is None for s in samples):
        return samples if split == "train" else []
    return [s for s in samples if s.split == split]


@dataclass(frozen=True)
class ExampleConfig:
    """How examples are drawn (VideoBERT's augmentations and objective mix)."""

    max_length: int = 128
    objective_weights: tuple[float, float, float] = (1.0, 1.0, 2.0)  # text, video, joint
    mask_prob: float = 0.15
    negative_prob: float = 0.5  # joint examples whose text comes from another video
    max_stride: int = 5  # video words subsampled at a random stride 1..max_stride
    concat_prob: float = 0.5  # neighbouring sentences concatenated
    seed: int = 0


Key = int | tuple[int, int]


@dataclass
class _Drawn:
    """A batch's examples before the objective's own work: per row, the objective, the text
    sentences (token ids), the visual word ids and the sample (video) index."""

    objectives: np.ndarray
    sentences: list[list[np.ndarray]]
    videos: list[np.ndarray]
    sample_indices: np.ndarray


class _Examples(Dataset, ABC):
    """Shared machinery: the entries (video, unit), cached token ids, one generator per batch.

    A batch's random choices are drawn as arrays, one column per choice, from per-entry tables
    built here; only putting each example's pieces together is a Python loop.
    """

    def __init__(
        self, samples: Sequence[VideoSample], vocab: JointVocabulary, config: ExampleConfig
    ) -> None:
        self.samples = list(samples)
        self.vocab = vocab
        self.config = config
        # An entry is (sample index, unit index); -1 = the whole video, video only.
        self.entries = [
            (s, u)
            for s, sample in enumerate(self.samples)
            for u in (range(len(sample.units)) or [-1])
        ]
        texts = sorted({t for sample in self.samples for unit in sample.units for t in unit.texts})
        encoded = vocab.encode_texts(texts) if texts else []
        self._ids = {t: np.asarray(i, dtype=np.int64) for t, i in zip(texts, encoded, strict=True)}
        # Checked and mapped once: words from another codebook fail here, not mid-training.
        self._visual_ids = [vocab.visual_ids(sample.track.words) for sample in self.samples]
        self._texted_samples = np.array(
            [s for s, sample in enumerate(self.samples) if sample.units], dtype=np.int64
        )
        weights = np.asarray(config.objective_weights, dtype=np.float64)
        self._objective_cdf = np.cumsum(weights / weights.sum())[:-1]
        # Per entry: its sample and unit, whether a next unit can be joined, how many wordings its
        # unit and the next have, and the clips [lo, hi) of its unit alone and joined with the next.
        self._entry_sample = np.array([s for s, _ in self.entries], dtype=np.int64)
        self._entry_unit = np.array([u for _, u in self.entries], dtype=np.int64)
        self._can_join = np.array(
            [0 <= u < len(self.samples[s].units) - 1 for s, u in self.entries], dtype=bool
        )
        self._n_texts = np.array(
            [[self._n_wordings(s, u), self._n_wordings(s, u + 1)] for s, u in self.entries],
            dtype=np.int64,
        ).reshape(-1, 2)
        self._clips = np.array(
            [
                [self._clip_range(s, u, False), self._clip_range(s, u, True)]
                for s, u in self.entries
            ],
            dtype=np.int64,
        ).reshape(-1, 2, 2)

    def _n_wordings(self, s: int, u: int) -> int:
        units = self.samples[s].units
        return len(units[u].texts) if 0 <= u < len(units) else 1

    def _clip_range(self, s: int, u: int, joined: bool) -> tuple[int, int]:
        """Clips ``[lo, hi)`` from the first to the last that overlap the unit (and the next one
        when ``joined``); the whole video for a video-only entry."""
        sample = self.samples[s]
        if u < 0:
            return 0, len(sample.track.words)
        last = sample.units[u + 1] if joined and u + 1 < len(sample.units) else sample.units[u]
        inside = sample.track.between(sample.units[u].start, last.end)
        return int(inside[0]), int(inside[-1]) + 1

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: Key) -> dict[str, Any]:
        """Example ``key`` = index or (epoch, index): a batch of one."""
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[Key]) -> list[dict[str, Any]]:
        """The examples of ``keys``, drawn with one generator seeded by the seed and the keys."""
        pairs = np.array([k if isinstance(k, tuple) else (0, k) for k in keys], dtype=np.int64)
        pairs = pairs.reshape(-1, 2)
        digest = hashlib.blake2b(pairs.tobytes(), digest_size=16).digest()
        rng = np.random.default_rng([self.config.seed, int.from_bytes(digest, "little")])
        return self._draw_batch(pairs[:, 1], rng)

    @abstractmethod
    def _draw_batch(self, entries: np.ndarray, rng: np.random.Generator) -> list[dict[str, Any]]:
        """The examples of ``entries``, all drawn from ``rng`` (each subclass's kind)."""

    def _draw(self, entries: np.ndarray, rng: np.random.Generator) -> _Drawn:
        """Each entry's objective, sentences (its unit's, and the next one's when joined) and
        visual words (its clips', every ``stride``-th from a random offset, stride 1..max)."""
        units = self._entry_unit[entries]
        uniform = rng.random((len(entries), 6))
        objectives = np.searchsorted(self._objective_cdf, uniform[:, 0], side="right")
        objectives[units < 0] = VIDEO
        joined = self._can_join[entries] & (uniform[:, 1] < self.config.concat_prob)
        wordings = (uniform[:, 2:4] * self._n_texts[entries]).astype(np.int64)
        strides = 1 + (uniform[:, 4] * self.config.max_stride).astype(np.int64)
        offsets = (uniform[:, 5] * strides).astype(np.int64)
        spans = self._clips[entries, joined.astype(np.int64)]
        sample_indices = self._entry_sample[entries]
        sentences, videos = [], []
        for row, (s, u) in enumerate(zip(sample_indices.tolist(), units.tolist(), strict=True)):
            if u < 0:
                sentences.append([])
            else:
                unit_texts = self.samples[s].units[u].texts
                row_sentences = [self._ids[unit_texts[wordings[row, 0]]]]
                if joined[row]:
                    next_texts = self.samples[s].units[u + 1].texts
                    row_sentences.append(self._ids[next_texts[wordings[row, 1]]])
                sentences.append(row_sentences)
            clips = self._visual_ids[s][spans[row, 0] : spans[row, 1]]
            picked = clips[offsets[row] :: strides[row]]
            videos.append(picked if len(picked) else clips[:1])
        return _Drawn(objectives, sentences, videos, sample_indices)

    def _other_texts(
        self, sample_indices: np.ndarray, rng: np.random.Generator
    ) -> list[np.ndarray]:
        """For each sample, a sentence from another video (negatives for the alignment objective;
        needs at least two videos with text)."""
        texted = self._texted_samples
        others = texted[(rng.random(len(sample_indices)) * len(texted)).astype(np.int64)]
        clash = others == sample_indices
        while clash.any():  # rejection: at least half the candidates are from another video
            others[clash] = texted[(rng.random(int(clash.sum())) * len(texted)).astype(np.int64)]
            clash = others == sample_indices
        picks = rng.random((len(others), 2))
        texts = []
        for s, (pick_unit, pick_text) in zip(others.tolist(), picks.tolist(), strict=True):
            units = self.samples[s].units
            wordings = units[int(pick_unit * len(units))].texts
            texts.append(self._ids[wordings[int(pick_text * len(wordings))]])
        return texts


class VideoBertExamples(_Examples):
    """Masked-token and alignment examples: ``[CLS] text [SEP]``, ``[CLS] video [SEP]`` or
    ``[CLS] text [>] video [SEP]`` with BERT's 15% masking (80% mask / 10% random / 10% kept) of
    every token but the special ones."""

    def _draw_batch(self, entries: np.ndarray, rng: np.random.Generator) -> list[dict[str, Any]]:
        drawn = self._draw(entries, rng)
        objectives, sentences = drawn.objectives, drawn.sentences
        align = np.where(objectives == JOINT, 0, -100)
        if len(self._texted_samples) >= 2:
            negative = (objectives == JOINT) & (
                rng.random(len(entries)) < self.config.negative_prob
            )
            rows = np.flatnonzero(negative)
            for row, text in zip(
                rows, self._other_texts(drawn.sample_indices[rows], rng), strict=True
            ):
                sentences[row], align[row] = [text], 1
        sequences = []
        for objective, row_sentences, video in zip(
            objectives.tolist(), sentences, drawn.videos, strict=True
        ):
            text = np.concatenate(row_sentences) if row_sentences else video[:0]
            if objective == VIDEO:
                text = text[:0]
            if objective == TEXT:
                video = video[:0]
            sequences.append(self._sequence(text, video, objective))
        v = self.vocab
        ids = padded([ids for ids, _ in sequences], v.pad_id)
        types = padded([types for _, types in sequences], 0)
        real = attention_mask([ids for ids, _ in sequences]).astype(bool)
        lengths = real.sum(axis=1)
        candidates = real & (ids != v.cls_id) & (ids != v.sep_id) & (ids != v.join_id)
        # Mismatched pairs are masked like matched ones: were they left unmasked, "has a [MASK]"
        # alone would give the alignment away. Their tokens are still real text and real video.
        masked, labels = self._mask(ids, candidates, types == 1, rng)
        return [
            {
                "input_ids": masked[row, :length],
                "token_type_ids": types[row, :length],
                "labels": labels[row, :length],
                "align_label": int(align[row]),
                "objective": int(objectives[row]),
            }
            for row, length in enumerate(lengths.tolist())
        ]

    def _sequence(
        self, text: np.ndarray, video: np.ndarray, objective: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and token types (0 text, 1 video) of ``[CLS] text [>] video [SEP]`` (joint),
        ``[CLS] text [SEP]`` or ``[CLS] video [SEP]``, cut to ``max_length``."""
        v = self.vocab
        budget = self.config.max_length - (3 if objective == JOINT else 2)
        if objective == JOINT:
            text = text[: max(budget // 2, budget - len(video))]
            video = video[: budget - len(text)]
            middle = [text, [v.join_id], video]
            video_from = 1 + len(text)  # [>], the video and [SEP] are of type 1
        elif objective == TEXT:
            middle, video_from = [text[:budget]], None
        else:
            middle, video_from = [video[:budget]], 1
        ids = np.concatenate([[v.cls_id], *middle, [v.sep_id]]).astype(np.int64, copy=False)
        types = np.zeros(len(ids), dtype=np.int64)
        if video_from is not None:
            types[video_from:] = 1
        return ids, types

    def _mask(
        self,
        ids: np.ndarray,
        candidates: np.ndarray,
        is_video: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """BERT's masking of a padded batch: per row, ``round(mask_prob * candidates)`` (at least
        one) of its candidate positions, uniformly without replacement, become labels."""
        counts = candidates.sum(axis=1)
        n = np.maximum(1, np.rint(self.config.mask_prob * counts)).astype(np.int64)
        # The n smallest of uniform keys are a uniform n-subset; non-candidates never rank.
        keys = np.where(candidates, rng.random(ids.shape), 2.0)
        nth = np.sort(keys, axis=1)[np.arange(len(ids)), n - 1]  # n <= max(1, candidates)
        chosen = candidates & (keys <= nth[:, None])
        labels = np.where(chosen, ids, -100)
        roll = rng.random(ids.shape)
        masked = np.where(chosen & (roll < 0.8), self.vocab.mask_id, ids)
        randomised = chosen & (roll >= 0.8) & (roll < 0.9)
        if randomised.any():  # a random token of the same modality
            video = is_video[randomised]
            (v_lo, v_hi), (t_lo, t_hi) = self.vocab.visual_range, self.vocab.text_id_range
            masked[randomised] = rng.integers(
                np.where(video, v_lo, t_lo), np.where(video, v_hi, t_hi)
            )
        return masked, labels


class BartExamples(_Examples):
    """Denoising examples: the source is the noised sequence (BART: text infilling with
    Poisson(3) spans over 30% of tokens, sentence permutation, deletion), the target the original
    ``text [>] video``; video words are split into runs that are permuted like sentences."""

    def __init__(
        self,
        samples: Sequence[VideoSample],
        vocab: JointVocabulary,
        config: ExampleConfig,
        noise: NoiseConfig | None = None,
        run_length: int = 4,
    ) -> None:
        super().__init__(samples, vocab, config)
        self.noise = noise or NoiseConfig()
        self.run_length = run_length

    def _draw_batch(self, entries: np.ndarray, rng: np.random.Generator) -> list[dict[str, Any]]:
        drawn = self._draw(entries, rng)
        return [
            self._example(objective, sentences, video, rng)
            for objective, sentences, video in zip(
                drawn.objectives.tolist(), drawn.sentences, drawn.videos, strict=True
            )
        ]

    def _example(
        self,
        objective: int,
        sentences: list[np.ndarray],
        video: np.ndarray,
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        v = self.vocab
        budget = self.config.max_length - 2
        text_budget = budget if objective == TEXT else budget // 2
        segments: list[np.ndarray] = []
        used = 0
        if objective in (TEXT, JOINT):
            for sentence in sentences:
                piece = sentence[: max(0, text_budget - used)]
                if len(piece):
                    segments.append(piece)
                    used += len(piece)
        if objective == JOINT and segments:
            segments.append(np.array([v.join_id], dtype=np.int64))
            used += 1
        if objective in (VIDEO, JOINT):
            video = video[: max(1, budget - used)]
            segments += [
                video[i : i + self.run_length] for i in range(0, len(video), self.run_length)
            ]
        target = np.concatenate([[v.bos_id], *segments, [v.eos_id]]).astype(np.int64)
        source = add_noise(
            segments,
            self.noise,
            v.mask_id,
            rng,
            random_id_range=v.text_id_range,
            protected_ids=(v.join_id,),
        )
        source = np.concatenate([[v.bos_id], source, [v.eos_id]]).astype(np.int64)
        return {"input_ids": source, "labels": target, "objective": objective}


def collate_videobert(batch: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of VideoBERT examples into tensors."""
    ids = [b["input_ids"] for b in batch]
    return as_tensors(
        {
            "input_ids": padded(ids, pad_id),
            "token_type_ids": padded([b["token_type_ids"] for b in batch], 0),
            "attention_mask": attention_mask(ids),
            "labels": padded([b["labels"] for b in batch], -100),
            "align_label": [b["align_label"] for b in batch],
            "objective": [b["objective"] for b in batch],
        }
    )


def collate_bart(
    batch: list[dict[str, Any]], pad_id: int, decoder_start_id: int
) -> dict[str, torch.Tensor]:
    """Pad a list of BART examples; ``decoder_input_ids`` are the targets shifted right."""
    sources, targets = [b["input_ids"] for b in batch], [b["labels"] for b in batch]
    return as_tensors(
        {
            "input_ids": padded(sources, pad_id),
            "attention_mask": attention_mask(sources),
            **decoder_targets(targets, pad_id, decoder_start_id),
            "objective": [b["objective"] for b in batch],
        }
    )
