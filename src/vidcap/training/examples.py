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
from vidcap.stages.quantize import load_words
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
    """One video's visual words (with clip times) and its text units, in time order."""

    id: str
    split: str | None
    words: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    units: list[TextUnit]

    def clips_between(self, start: float, end: float) -> np.ndarray:
        """Which clips overlap ``[start, end]`` (the nearest clip if none does), as a boolean mask."""
        inside = (self.start_s < end) & (self.end_s > start)
        if not inside.any():
            centre = (start + end) / 2
            inside = np.zeros(len(self.words), dtype=bool)
            inside[int(np.argmin(np.abs((self.start_s + self.end_s) / 2 - centre)))] = True
        return inside


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
    manifest, items = read_upstream(words_dir, "quantize")
    corpus_path = manifest.get("corpus")
    records: dict[str, VideoRecord] = {}
    if corpus_path:
        if not Path(corpus_path).is_file():
            raise VidcapError(
                f"the corpus {corpus_path} recorded by {words_dir} is gone; its text is needed for training."
            )
        records = {r.id: r for r in read_corpus(corpus_path)}
    samples = []
    for video_id in sorted(items):
        item = items[video_id]
        words = load_words(Path(words_dir) / item.outputs["words"])
        if not words.words:
            continue
        samples.append(
            VideoSample(
                id=video_id,
                split=item.info.get("split"),
                words=np.asarray(words.words, dtype=np.int64),
                start_s=np.asarray(words.start_s),
                end_s=np.asarray(words.end_s),
                units=text_units(records.get(video_id), use_transcript, use_captions),
            )
        )
    if not samples:
        raise VidcapError(f"{words_dir} has no videos with visual words.")
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


class _Examples(Dataset):
    """Shared machinery: the entries (video, unit), cached token ids, one generator per batch."""

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
        self._visual_ids = [vocab.visual_ids(sample.words) for sample in self.samples]
        self._texted_samples = np.array(
            [s for s, sample in enumerate(self.samples) if sample.units]
        )
        weights = np.asarray(config.objective_weights, dtype=np.float64)
        # Cumulative shares: an objective is drawn by one uniform number (rng.choice(p=...) costs
        # ten times more)
        self._objective_cdf = np.cumsum(weights / weights.sum())[:-1]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: Key) -> dict[str, Any]:
        """Example ``key`` = index or (epoch, index): a batch of one."""
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[Key]) -> list[dict[str, Any]]:
        """The examples of ``keys``, drawn with one generator seeded by the seed and the keys."""
        pairs = np.array([k if isinstance(k, tuple) else (0, k) for k in keys], dtype=np.int64)
        digest = hashlib.blake2b(pairs.reshape(-1, 2).tobytes(), digest_size=16).digest()
        rng = np.random.default_rng([self.config.seed, int.from_bytes(digest, "little")])
        return self._draw_batch([int(i) for i in pairs.reshape(-1, 2)[:, 1]], rng)

    def _draw_batch(self, indices: list[int], rng: np.random.Generator) -> list[dict[str, Any]]:
        """The examples of entries ``indices``, all drawn from ``rng`` (each subclass's kind)."""
        raise NotImplementedError

    def _draw(
        self, index: int, rng: np.random.Generator
    ) -> tuple[int, list[np.ndarray], np.ndarray, int]:
        """The objective, the text sentences (token ids) and the visual word ids of an example."""
        s, u = self.entries[index]
        sample = self.samples[s]
        if u < 0:
            return VIDEO, [], self._subsampled(self._visual_ids[s], rng), s
        objective = int(np.searchsorted(self._objective_cdf, rng.random(), side="right"))
        units = [sample.units[u]]
        if u + 1 < len(sample.units) and rng.random() < self.config.concat_prob:
            units.append(sample.units[u + 1])
        sentences = [self._ids[unit.texts[rng.integers(len(unit.texts))]] for unit in units]
        video = self._visual_ids[s][sample.clips_between(units[0].start, units[-1].end)]
        return objective, sentences, self._subsampled(video, rng), s

    def _subsampled(self, video: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Every ``stride``-th visual word from a random offset (stride 1..max_stride)."""
        stride = int(rng.integers(1, self.config.max_stride + 1))
        picked = video[int(rng.integers(stride)) :: stride]
        return picked if len(picked) else video[:1]

    def _other_text(self, sample_index: int, rng: np.random.Generator) -> list[np.ndarray] | None:
        """A sentence from another video (a negative for the alignment objective)."""
        if len(self._texted_samples) < 2:
            return None
        while True:  # rejection: at least half the candidates are from another video
            s = int(self._texted_samples[rng.integers(len(self._texted_samples))])
            if s != sample_index:
                break
        unit = self.samples[s].units[int(rng.integers(len(self.samples[s].units)))]
        return [self._ids[unit.texts[rng.integers(len(unit.texts))]]]


class VideoBertExamples(_Examples):
    """Masked-token and alignment examples: ``[CLS] text [SEP]``, ``[CLS] video [SEP]`` or
    ``[CLS] text [>] video [SEP]`` with BERT's 15% masking (80% mask / 10% random / 10% kept) of
    every token but the special ones."""

    def _draw_batch(self, indices: list[int], rng: np.random.Generator) -> list[dict[str, Any]]:
        drawn = [self._unmasked(index, rng) for index in indices]
        v = self.vocab
        ids = _padded([d[0] for d in drawn], v.pad_id)
        types = _padded([d[1] for d in drawn], 0)
        lengths = np.array([len(d[0]) for d in drawn])
        real = np.arange(ids.shape[1]) < lengths[:, None]
        candidates = real & (ids != v.cls_id) & (ids != v.sep_id) & (ids != v.join_id)
        # Mismatched pairs are masked like matched ones: were they left unmasked, "has a [MASK]"
        # alone would give the alignment away. Their tokens are still real text and real video.
        masked, labels = self._mask(ids, candidates, types == 1, rng)
        return [
            {
                "input_ids": masked[row, :length],
                "token_type_ids": types[row, :length],
                "labels": labels[row, :length],
                "align_label": align,
                "objective": objective,
            }
            for row, (length, (_, _, align, objective)) in enumerate(
                zip(lengths, drawn, strict=True)
            )
        ]

    def _unmasked(
        self, index: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Token ids, token types, alignment label and objective of an example, before masking."""
        objective, sentences, video, sample_index = self._draw(index, rng)
        align = -100
        if objective == JOINT:
            align = 0
            if rng.random() < self.config.negative_prob:
                other = self._other_text(sample_index, rng)
                if other is not None:
                    sentences, align = other, 1
        text = np.concatenate(sentences) if sentences else np.zeros(0, dtype=np.int64)
        if objective == VIDEO:
            text = text[:0]
        if objective == TEXT:
            video = video[:0]
        ids, types = self._sequence(text, video, objective)
        return ids, types, align, objective

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
        nth = np.sort(keys, axis=1)[np.arange(len(ids)), np.minimum(n, ids.shape[1]) - 1]
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

    def _draw_batch(self, indices: list[int], rng: np.random.Generator) -> list[dict[str, Any]]:
        return [self._example(index, rng) for index in indices]

    def _example(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        objective, sentences, video, _ = self._draw(index, rng)
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


def _padded(rows: list[np.ndarray], fill: int, length: int | None = None) -> np.ndarray:
    """Rows of int64 ids, right-padded with ``fill`` to one length (the longest by default)."""
    length = max(len(r) for r in rows) if length is None else length
    out = np.full((len(rows), length), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _attention_mask(rows: list[np.ndarray]) -> np.ndarray:
    """1 over each row's tokens, 0 over its padding (rows padded to the longest)."""
    lengths = np.array([len(r) for r in rows])
    return (np.arange(lengths.max()) < lengths[:, None]).astype(np.int64)


def _tensors(arrays: dict[str, Any]) -> dict[str, torch.Tensor]:
    # Padded in numpy, converted once per field: per-row torch slicing costs ten times more.
    return {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in arrays.items()}


def collate_videobert(batch: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of VideoBERT examples into tensors."""
    ids = [b["input_ids"] for b in batch]
    return _tensors(
        {
            "input_ids": _padded(ids, pad_id),
            "token_type_ids": _padded([b["token_type_ids"] for b in batch], 0),
            "attention_mask": _attention_mask(ids),
            "labels": _padded([b["labels"] for b in batch], -100),
            "align_label": [b["align_label"] for b in batch],
            "objective": [b["objective"] for b in batch],
        }
    )


def collate_bart(
    batch: list[dict[str, Any]], pad_id: int, decoder_start_id: int
) -> dict[str, torch.Tensor]:
    """Pad a list of BART examples; ``decoder_input_ids`` are the targets shifted right."""
    sources, targets = [b["input_ids"] for b in batch], [b["labels"] for b in batch]
    return _tensors(
        {
            "input_ids": _padded(sources, pad_id),
            "attention_mask": _attention_mask(sources),
            "labels": _padded(targets, -100),
            "decoder_input_ids": _padded(
                [np.concatenate([[decoder_start_id], t[:-1]]) for t in targets], pad_id
            ),
            "objective": [b["objective"] for b in batch],
        }
    )
