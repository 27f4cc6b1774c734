"""The caption model: a transformers encoder-decoder over the joint vocabulary, plus (optionally)
a projection of continuous clip features added to the visual-word embeddings.

- BART route: ``BartForConditionalGeneration`` (from a BART pretrain, or fresh).
- VideoBERT route: ``EncoderDecoderModel`` whose encoder is the VideoBERT ``BertModel`` and whose
  decoder is a ``BertLMHeadModel`` initialised from the same weights (cross-attention is new), as
  in "Leveraging Pre-trained Checkpoints for Sequence Generation" (Rothe et al.).

``--with-features`` is VideoBERT's "VideoBERT + S3D" variant: features are standardised with the
training set's mean and spread, passed through a small MLP and added to the embedding of the visual
word of the same clip. The projection is saved beside the Hugging Face checkpoint in
``feature_projection.safetensors``.

A dense model (``--task dense``) is the same model over a vocabulary with time tokens: a pretrain's
embeddings grow by those rows (:meth:`CaptionModel.fit_vocabulary`), and what it generates is read
back into timed events by :func:`generate_events`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from vidcap.artifacts.damage import reading
from vidcap.bundle import FEATURE_PROJECTION, Bundle, model_remedy, reading_model
from vidcap.errors import VidcapError
from vidcap.models.decoding import DEFAULT_EVENT_NO_REPEAT_NGRAM, EventNoRepeatNGram
from vidcap.models.inputs import collate_inputs
from vidcap.models.presets import ARCHS, ModelSize
from vidcap.models.standardise import Standardised
from vidcap.models.stats import count_stat
from vidcap.models.videobert import bert_config
from vidcap.models.visual_embeddings import init_visual_rows
from vidcap.output.formats import TimedCaption
from vidcap.text import JointVocabulary
from vidcap.text.timing import parse_events


class FeatureProjection(Standardised):
    """Standardise clip features, then map them to the model's hidden size."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.standardise(features))


class CaptionModel(nn.Module):
    """An encoder-decoder captioner; ``forward(batch)`` gives ``(loss, stats)`` for training."""

    def __init__(
        self,
        seq2seq: transformers.PreTrainedModel,
        arch: str,
        feature_dim: int | None = None,
        label_smoothing: float = 0.1,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise VidcapError(f"unknown caption architecture {arch!r}; use bart or videobert.")
        self.seq2seq = seq2seq
        self.arch = arch
        self.label_smoothing = label_smoothing
        self.features = FeatureProjection(feature_dim, self.hidden) if feature_dim else None

    @property
    def hidden(self) -> int:
        config = self.seq2seq.config
        return config.d_model if self.arch == "bart" else config.encoder.hidden_size

    @property
    def max_positions(self) -> int:
        """The longest sequence its encoder and decoder take (their position embeddings)."""
        config = self.seq2seq.config
        if self.arch == "bart":
            return int(config.max_position_embeddings)
        return int(
            min(config.encoder.max_position_embeddings, config.decoder.max_position_embeddings)
        )

    def fit_vocabulary(self, vocab: JointVocabulary) -> None:
        """Grow the token embeddings (and output layer) by the time tokens that ``vocab`` has and
        the model lacks; new rows start as transformers initialises them (the old rows' mean and
        spread). A model of any other size does not fit.

        Raises:
            VidcapError: the model's vocabulary size is not ``len(vocab)``, nor that less its time
                tokens.
        """
        have = self.seq2seq.get_input_embeddings().num_embeddings
        if have == len(vocab):
            return
        if not vocab.n_time or have != len(vocab) - vocab.n_time:
            raise VidcapError(
                f"the pretrained model has {have} token embeddings but its vocabulary has {len(vocab)}."
            )
        if self.arch == "bart":
            self.seq2seq.resize_token_embeddings(len(vocab))
        else:  # EncoderDecoderModel resizes neither part itself
            self.seq2seq.encoder.resize_token_embeddings(len(vocab))
            self.seq2seq.decoder.resize_token_embeddings(len(vocab))

    def encode(self, batch: dict[str, torch.Tensor]) -> BaseModelOutput:
        """Encoder states for a batch of segment inputs (see :mod:`vidcap.models.inputs`)."""
        encoder = self.seq2seq.get_encoder()
        embeds = encoder.get_input_embeddings()(batch["input_ids"])  # BART's scaling included
        if self.features is not None:
            added = self.features(batch["features"]) * batch["feature_mask"][..., None]
            embeds = embeds + added.to(embeds.dtype)
        extra = {"token_type_ids": batch["token_type_ids"]} if self.arch == "videobert" else {}
        return encoder(
            inputs_embeds=embeds, attention_mask=batch["attention_mask"], return_dict=True, **extra
        )

    def forward(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.seq2seq(
            encoder_outputs=self.encode(batch),
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
            use_cache=False,
        )
        labels = batch["labels"]
        has_label = labels != -100
        logits = out.logits[has_label].float()
        targets = labels[has_label]
        loss = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        correct = (logits.argmax(-1) == targets).sum()
        stats = {
            "loss": count_stat(loss * labels.shape[0], labels.shape[0]),
            "acc_caption_tokens": count_stat(correct, has_label.sum()),
        }
        return loss, stats

    @torch.no_grad()
    def generate(
        self,
        batch: dict[str, torch.Tensor],
        num_beams: int = 4,
        max_new_tokens: int = 40,
        suppress_ids: Sequence[int] = (),
        no_repeat_ngram_size: int = 3,
        logits_processor: Sequence[transformers.LogitsProcessor] = (),
    ) -> torch.Tensor:
        """Caption token ids ``[batch, length]`` (start token included) by beam search.

        ``suppress_ids`` are never generated (``JointVocabulary.non_text_ids``), and ``eos`` is
        held back until one other token has been: a caption is never empty, even from a model
        whose most likely first token is the end. No n-gram of ``no_repeat_ngram_size`` tokens
        is repeated (0: no such rule); ``logits_processor`` adds rules of the caller's.
        """
        config = self.seq2seq.config
        return self.seq2seq.generate(
            encoder_outputs=self.encode(batch),
            attention_mask=batch["attention_mask"],
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min(1, max_new_tokens),
            suppress_tokens=list(suppress_ids) or None,
            decoder_start_token_id=config.decoder_start_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            no_repeat_ngram_size=no_repeat_ngram_size,
            logits_processor=transformers.LogitsProcessorList(logits_processor),
            do_sample=False,
        )

    def save(self, folder: str | Path) -> None:
        """The Hugging Face checkpoint, and the feature projection when there is one."""
        from safetensors.torch import save_file

        self.seq2seq.save_pretrained(folder, safe_serialization=True)
        if self.features is not None:
            state = {k: v.contiguous() for k, v in self.features.state_dict().items()}
            save_file(state, str(Path(folder) / FEATURE_PROJECTION))

    @classmethod
    def load(cls, folder: str | Path, arch: str) -> CaptionModel:
        """The caption model of the bundle ``vidcap finetune`` wrote into ``folder`` (:meth:`save`),
        with its feature projection when its ``vidcap.json`` says it reads clip features.

        Raises:
            VidcapError: a file of it is missing or damaged.
        """
        from safetensors.torch import load_file

        bundle = Bundle.load(folder, "finetune")
        with reading_model(folder, bundle.remedy):
            if arch == "bart":
                seq2seq = transformers.BartForConditionalGeneration.from_pretrained(folder)
            else:
                seq2seq = transformers.EncoderDecoderModel.from_pretrained(folder)
        projection = Path(folder) / FEATURE_PROJECTION
        state = None
        if projection.is_file() or bundle.info.get("inputs", {}).get("with_features"):
            with reading(projection, bundle.remedy):  # missing: the model would ignore features
                state = load_file(str(projection))
        model = cls(seq2seq, arch, feature_dim=len(state["mean"]) if state else None)
        if state is not None:
            model.features.load_state_dict(state)
        return model.eval()


def _configure_tokens(seq2seq: transformers.PreTrainedModel, vocab: JointVocabulary) -> None:
    """Special tokens for generation: the decoder starts from BOS (BART: EOS) and stops at EOS."""
    start = vocab.eos_id if seq2seq.config.model_type == "bart" else vocab.bos_id
    for config in (seq2seq.config, seq2seq.generation_config):
        config.decoder_start_token_id = start
        config.eos_token_id = vocab.eos_id
        config.pad_token_id = vocab.pad_id
        config.bos_token_id = vocab.bos_id
    seq2seq.generation_config.forced_bos_token_id = None


def build_caption_model(
    arch: str,
    vocab: JointVocabulary,
    pretrained: str | Path | None,
    size: ModelSize | None,
    centroids: np.ndarray | None,
    feature_dim: int | None,
) -> CaptionModel:
    """A caption model warm-started from a pretrain's ``final/`` folder, or fresh of ``size``.

    A fresh model's visual-word embeddings start from the codebook ``centroids`` as in
    pretraining, so ``--from-scratch`` differs from the pretrained route only by pretraining.

    Raises:
        VidcapError: a file of the pretrained model is missing or damaged, or it does not fit.
    """
    if arch == "bart":
        if pretrained is not None:
            with reading_model(pretrained, model_remedy(pretrained, "pretrain")):
                seq2seq = transformers.BartForConditionalGeneration.from_pretrained(pretrained)
        else:
            from vidcap.models.bart import build_bart

            seq2seq = build_bart(vocab, size, None, centroids)
    elif arch == "videobert":
        if pretrained is not None:
            with reading_model(pretrained, model_remedy(pretrained, "pretrain")):
                encoder = transformers.BertModel.from_pretrained(
                    pretrained, add_pooling_layer=False
                )
                decoder = transformers.BertLMHeadModel.from_pretrained(
                    pretrained, is_decoder=True, add_cross_attention=True
                )
        else:
            encoder = transformers.BertModel(bert_config(vocab, size), add_pooling_layer=False)
            decoder_config = bert_config(vocab, size)
            decoder_config.is_decoder = True
            decoder_config.add_cross_attention = True
            decoder = transformers.BertLMHeadModel(decoder_config)
            if centroids is not None:
                for part in (encoder, decoder):
                    init_visual_rows(part.get_input_embeddings(), vocab.visual_offset, centroids)
        seq2seq = transformers.EncoderDecoderModel(encoder=encoder, decoder=decoder)
    else:
        raise VidcapError(f"--arch must be bart or videobert, got {arch!r}.")
    model = CaptionModel(seq2seq, arch, feature_dim)
    model.fit_vocabulary(vocab)
    _configure_tokens(seq2seq, vocab)
    return model


def describe(model: CaptionModel) -> dict[str, Any]:
    """Facts for vidcap.json: architecture, parameter count, feature input."""
    return {
        "arch": model.arch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "feature_dim": None if model.features is None else int(model.features.mean.numel()),
    }


def generate_sequences(
    model: CaptionModel,
    vocab: JointVocabulary,
    inputs: Sequence[dict[str, np.ndarray]],
    beams: int = 4,
    max_new_tokens: int = 40,
    batch_size: int = 32,
    dense: bool = False,
    event_no_repeat_ngram: int = DEFAULT_EVENT_NO_REPEAT_NGRAM,
) -> list[np.ndarray]:
    """Generated token ids for encoder inputs, in order, in batches of ``batch_size``: text only
    (no repeated 3-gram), or (``dense``) text and time tokens, where no ``event_no_repeat_ngram``
    -gram repeats within one event's caption (0: no rule) but two events may well share "a red
    circle" (:class:`~vidcap.models.decoding.EventNoRepeatNGram`)."""
    model.eval()
    device = next(model.parameters()).device
    rows: list[np.ndarray] = []
    suppress_ids = vocab.non_dense_ids() if dense else vocab.non_text_ids()
    guard = (
        [EventNoRepeatNGram(event_no_repeat_ngram, vocab.time_range)]
        if dense and event_no_repeat_ngram
        else []
    )
    for i in range(0, len(inputs), batch_size):
        batch = collate_inputs(list(inputs[i : i + batch_size]), vocab.pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        ids = model.generate(
            batch,
            num_beams=beams,
            max_new_tokens=max_new_tokens,
            suppress_ids=suppress_ids,
            no_repeat_ngram_size=0 if dense else 3,
            logits_processor=guard,
        )
        rows += list(ids.cpu().numpy())
    return rows


def generate_captions(
    model: CaptionModel,
    vocab: JointVocabulary,
    inputs: Sequence[dict[str, np.ndarray]],
    beams: int = 4,
    max_new_tokens: int = 40,
    batch_size: int = 32,
) -> list[str]:
    """Texts for encoder inputs built by :func:`vidcap.models.inputs.segment_inputs`, in order,
    generated in batches of ``batch_size``."""
    rows = generate_sequences(model, vocab, inputs, beams, max_new_tokens, batch_size)
    return [vocab.decode_text(row).strip() for row in rows]


def generate_events(
    model: CaptionModel,
    vocab: JointVocabulary,
    inputs: Sequence[dict[str, np.ndarray]],
    durations: Sequence[float],
    beams: int = 4,
    max_new_tokens: int = 256,
    batch_size: int = 32,
    event_no_repeat_ngram: int = DEFAULT_EVENT_NO_REPEAT_NGRAM,
) -> list[list[TimedCaption]]:
    """A dense model's events for whole-video inputs built by
    :func:`vidcap.models.inputs.video_inputs`, one list per video of ``durations`` seconds
    (``event_no_repeat_ngram``: see :func:`generate_sequences`)."""
    rows = generate_sequences(
        model, vocab, inputs, beams, max_new_tokens, batch_size, True, event_no_repeat_ngram
    )
    return [
        parse_events(vocab, row[1:], duration)  # [1:]: the decoder's start token
        for row, duration in zip(rows, durations, strict=True)
    ]
