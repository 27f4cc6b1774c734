"""BART (transformers' ``BartForConditionalGeneration``) over the joint text + visual-word
vocabulary: pretrained to reconstruct noised mixed sequences, then finetuned to caption."""

from __future__ import annotations

import numpy as np
import transformers

from vidcap.errors import VidcapError
from vidcap.models.presets import ModelSize
from vidcap.models.visual_embeddings import prepare_visual_embeddings
from vidcap.text import JointVocabulary


def build_bart(
    vocab: JointVocabulary,
    size: ModelSize,
    init: str | None = None,
    centroids: np.ndarray | None = None,
    freeze_visual: bool = False,
) -> transformers.BartForConditionalGeneration:
    """A BART for ``vocab``: from a config of ``size`` (``layers`` encoder and decoder layers each),
    or from the BART checkpoint ``init`` with its vocabulary extended; visual-word rows start from
    ``centroids``."""
    if init is not None:
        try:
            model = transformers.BartForConditionalGeneration.from_pretrained(init)
        except (OSError, ValueError) as e:
            raise VidcapError(f"could not load a BART checkpoint from {init!r}: {e}") from None
    else:
        config = transformers.BartConfig(
            vocab_size=len(vocab),
            d_model=size.hidden,
            encoder_layers=size.layers,
            decoder_layers=size.layers,
            encoder_attention_heads=size.heads,
            decoder_attention_heads=size.heads,
            encoder_ffn_dim=size.intermediate,
            decoder_ffn_dim=size.intermediate,
            max_position_embeddings=size.max_length,
            pad_token_id=vocab.pad_id,
            bos_token_id=vocab.bos_id,
            eos_token_id=vocab.eos_id,
            decoder_start_token_id=vocab.eos_id,  # BART's convention: the decoder starts from </s>
            forced_bos_token_id=None,
            forced_eos_token_id=vocab.eos_id,
            dropout=0.1,
        )
        model = transformers.BartForConditionalGeneration(config)
    prepare_visual_embeddings(model, vocab, centroids, freeze_visual, resize=init is not None)
    return model
