"""Visual-word embeddings that start from the codebook's centroids (VideoBERT, section 4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from vidcap.text import JointVocabulary


def centroid_embeddings(centroids: np.ndarray, hidden: int, target_norm: float) -> torch.Tensor:
    """Map ``[n_words, dim]`` centroids to ``[n_words, hidden]`` embedding rows.

    When ``dim != hidden`` the centroids are projected on their principal directions (PCA keeps
    most of the geometry k-means saw; extra dimensions, if ``hidden`` is larger, are zero). Rows are
    then centred and scaled so their mean norm is ``target_norm``, the norm of the model's other
    embedding rows, so visual words neither dominate nor vanish next to text pieces.
    """
    x = np.asarray(centroids, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    if x.shape[1] != hidden:
        # Right singular vectors = principal directions; deterministic up to sign, fixed below.
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
        vt = vt * signs[:, None]
        projected = x @ vt[:hidden].T
        if projected.shape[1] < hidden:
            projected = np.pad(projected, ((0, 0), (0, hidden - projected.shape[1])))
        x = projected
    norms = np.linalg.norm(x, axis=1)
    scale = target_norm / max(float(norms.mean()), 1e-12)
    return torch.from_numpy((x * scale).astype(np.float32))


def init_visual_rows(embedding: torch.nn.Embedding, offset: int, centroids: np.ndarray) -> None:
    """Overwrite rows ``offset .. offset + n_words`` of ``embedding`` from the centroids."""
    weight = embedding.weight
    n_words = len(centroids)
    other = torch.cat([weight[:offset], weight[offset + n_words :]]).detach()
    target_norm = float(other.norm(dim=1).mean()) if len(other) else 1.0
    rows = centroid_embeddings(centroids, weight.shape[1], target_norm)
    with torch.no_grad():
        weight[offset : offset + n_words] = rows.to(weight.dtype)


def freeze_rows(embedding: torch.nn.Embedding, offset: int, n_rows: int) -> None:
    """Keep rows ``offset .. offset + n_rows`` fixed during training (their gradient is zeroed)."""

    def zero_rows(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[offset : offset + n_rows] = 0
        return grad

    embedding.weight.register_hook(zero_rows)


def prepare_visual_embeddings(
    model: PreTrainedModel,
    vocab: JointVocabulary,
    centroids: np.ndarray | None,
    freeze_visual: bool,
    resize: bool,
) -> None:
    """Fit a model's embeddings to the joint vocabulary: resize them (for a checkpoint loaded
    with ``--init``), start the visual-word rows from the centroids, optionally freeze them."""
    if resize:
        model.resize_token_embeddings(len(vocab))
    embedding = model.get_input_embeddings()
    if centroids is not None:
        init_visual_rows(embedding, vocab.visual_offset, centroids)
    if freeze_visual:
        freeze_rows(embedding, vocab.visual_offset, vocab.n_visual)
