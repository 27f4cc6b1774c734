"""VideoBERT: transformers' ``BertForPreTraining`` over ``[CLS] text [>] visual-words [SEP]``.

The masked-LM head predicts text pieces and visual words alike (one joint vocabulary); the
next-sentence head is the linguistic-visual alignment classifier (does this text go with this
video?). Token type 0 marks text, 1 marks video. Saved with ``save_pretrained``, the checkpoint
loads in plain transformers (``AutoModel`` gives the ``BertModel`` encoder).
"""

from __future__ import annotations

import numpy as np
import transformers

from vidcap.errors import VidcapError
from vidcap.models.presets import ModelSize
from vidcap.models.visual_embeddings import prepare_visual_embeddings
from vidcap.text import JointVocabulary


def bert_config(vocab: JointVocabulary, size: ModelSize) -> transformers.BertConfig:
    """A BERT config of ``size`` over ``vocab``, with token types for text (0) and video (1)."""
    return transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        intermediate_size=size.intermediate,
        max_position_embeddings=size.max_length,
        type_vocab_size=2,
        pad_token_id=vocab.pad_id,
    )


def build_videobert(
    vocab: JointVocabulary,
    size: ModelSize,
    init: str | None = None,
    centroids: np.ndarray | None = None,
    freeze_visual: bool = False,
) -> transformers.BertForPreTraining:
    """A VideoBERT for ``vocab``: from a config of ``size``, or from the BERT checkpoint ``init``
    (hub id or folder) with its vocabulary extended; visual-word rows start from ``centroids``."""
    if init is not None:
        try:
            model = transformers.BertForPreTraining.from_pretrained(init)
        except (OSError, ValueError) as e:
            raise VidcapError(f"could not load a BERT checkpoint from {init!r}: {e}") from None
    else:
        model = transformers.BertForPreTraining(bert_config(vocab, size))
    prepare_visual_embeddings(model, vocab, centroids, freeze_visual, resize=init is not None)
    return model
