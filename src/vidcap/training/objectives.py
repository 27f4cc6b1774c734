"""Training objectives as modules whose ``forward(batch)`` returns the loss and its statistics.

Wrapping the Hugging Face model in a module keeps the whole computation inside one ``forward``, so
``accelerator.prepare`` (DDP, FSDP, DeepSpeed) sees it. The language-model head is applied only at
the positions that have a label: with a joint vocabulary of tens of thousands of tokens, full
``[batch, length, vocab]`` logits would dominate memory and time.

Statistics are ``name -> tensor([sum, count])`` so they add up across steps and processes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vidcap.models.stats import Stats, count_stat
from vidcap.training.examples import OBJECTIVES


def _labelled_token_loss(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    labels: torch.Tensor,
    objective: torch.Tensor,
    visual_range: tuple[int, int],
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, Stats]:
    """Cross-entropy of ``head`` at the labelled positions only, with loss per objective and
    accuracy per modality (text pieces / visual words)."""
    has_label = labels != -100
    targets = labels[has_label]
    logits = head(hidden[has_label]).float()
    token_loss = F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing)
    loss = token_loss.mean() if len(targets) else hidden.sum() * 0.0
    stats: Stats = {}
    objective_of_token = objective[:, None].expand_as(labels)[has_label]
    for index, name in enumerate(OBJECTIVES):
        mine = objective_of_token == index
        stats[f"loss_{name}"] = count_stat(token_loss[mine].sum(), mine.sum())
    correct = logits.argmax(-1) == targets
    lo, hi = visual_range
    is_visual = (targets >= lo) & (targets < hi)
    stats["acc_text_tokens"] = count_stat(correct[~is_visual].sum(), (~is_visual).sum())
    stats["acc_video_tokens"] = count_stat(correct[is_visual].sum(), is_visual.sum())
    return loss, stats


class VideoBertObjective(nn.Module):
    """Masked-token prediction (text, video, joint) plus linguistic-visual alignment."""

    def __init__(
        self, model: nn.Module, visual_range: tuple[int, int], align_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.model = model
        self.visual_range = visual_range
        self.align_weight = align_weight

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Stats]:
        out = self.model.bert(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        )
        hidden, pooled = out.last_hidden_state, out.pooler_output
        labels = batch["labels"]
        loss, stats = _labelled_token_loss(
            self.model.cls.predictions, hidden, labels, batch["objective"], self.visual_range
        )

        align_labels = batch["align_label"]
        has_align = align_labels != -100
        align_logits = self.model.cls.seq_relationship(pooled[has_align])
        if has_align.any():
            align_loss = F.cross_entropy(align_logits.float(), align_labels[has_align])
            loss = loss + self.align_weight * align_loss
            stats["loss_align"] = count_stat(align_loss * has_align.sum(), has_align.sum())
        else:
            loss = loss + align_logits.sum() * 0.0  # keep the head in the graph for DDP
            stats["loss_align"] = count_stat(loss.new_zeros(()), 0)
        correct = align_logits.argmax(-1) == align_labels[has_align]
        stats["acc_align"] = count_stat(correct.sum(), has_align.sum())
        stats["loss"] = count_stat(loss * labels.shape[0], labels.shape[0])
        return loss, stats


class Seq2SeqObjective(nn.Module):
    """Token-level cross-entropy of a BART-style model's decoder (denoising or captioning)."""

    def __init__(
        self, model: nn.Module, visual_range: tuple[int, int], label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.model = model
        self.visual_range = visual_range
        self.label_smoothing = label_smoothing

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Stats]:
        out = self.model.model(
            input_ids=batch.get("input_ids"),
            inputs_embeds=batch.get("inputs_embeds"),
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
        )
        labels = batch["labels"]

        def head(hidden: torch.Tensor) -> torch.Tensor:
            return self.model.lm_head(hidden) + self.model.final_logits_bias

        loss, stats = _labelled_token_loss(
            head,
            out.last_hidden_state,
            labels,
            batch["objective"],
            self.visual_range,
            self.label_smoothing,
        )
        stats["loss"] = count_stat(loss * labels.shape[0], labels.shape[0])
        return loss, stats
