"""Training objectives as modules whose ``forward(batch)`` returns the loss and its statistics.

Wrapping the Hugging Face model in a module keeps the whole computation inside one ``forward``, so
``accelerator.prepare`` (DDP, FSDP, DeepSpeed) sees it. The language-model head is applied only at
the positions that have a label: with a joint vocabulary of tens of thousands of tokens, full
``[batch, length, vocab]`` logits would dominate memory and time.

Statistics are ``name -> tensor([sum, count])`` so they add up across steps and processes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidcap.training.examples import OBJECTIVES

Stats = dict[str, torch.Tensor]


def _stat(total: torch.Tensor, count: int | torch.Tensor) -> torch.Tensor:
    count = torch.as_tensor(count, dtype=torch.float32, device=total.device)
    return torch.stack([total.detach().float(), count])


def _token_stats(
    stats: Stats,
    token_loss: torch.Tensor,
    correct: torch.Tensor,
    objective_of_token: torch.Tensor,
    is_visual: torch.Tensor,
) -> None:
    """Loss per objective and masked-token accuracy per modality."""
    for index, name in enumerate(OBJECTIVES):
        mine = objective_of_token == index
        stats[f"loss_{name}"] = _stat(token_loss[mine].sum(), mine.sum())
    stats["acc_text_tokens"] = _stat(correct[~is_visual].sum(), (~is_visual).sum())
    stats["acc_video_tokens"] = _stat(correct[is_visual].sum(), is_visual.sum())


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
        masked = labels != -100
        targets = labels[masked]
        logits = self.model.cls.predictions(hidden[masked])
        token_loss = F.cross_entropy(logits.float(), targets, reduction="none")
        stats: Stats = {}
        loss = token_loss.mean() if len(targets) else hidden.sum() * 0.0
        lo, hi = self.visual_range
        objective_of_token = batch["objective"][:, None].expand_as(labels)[masked]
        _token_stats(
            stats,
            token_loss,
            logits.argmax(-1) == targets,
            objective_of_token,
            (targets >= lo) & (targets < hi),
        )

        align_labels = batch["align_label"]
        has_align = align_labels != -100
        align_logits = self.model.cls.seq_relationship(pooled[has_align])
        if has_align.any():
            align_loss = F.cross_entropy(align_logits.float(), align_labels[has_align])
            loss = loss + self.align_weight * align_loss
            stats["loss_align"] = _stat(align_loss * has_align.sum(), has_align.sum())
        else:
            loss = loss + align_logits.sum() * 0.0  # keep the head in the graph for DDP
            stats["loss_align"] = _stat(loss.new_zeros(()), 0)
        correct = align_logits.argmax(-1) == align_labels[has_align]
        stats["acc_align"] = _stat(correct.sum(), has_align.sum())
        stats["loss"] = _stat(loss * labels.shape[0], labels.shape[0])
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
        has_label = labels != -100
        targets = labels[has_label]
        logits = self.model.lm_head(out.last_hidden_state[has_label]) + self.model.final_logits_bias
        token_loss = F.cross_entropy(
            logits.float(), targets, reduction="none", label_smoothing=self.label_smoothing
        )
        loss = token_loss.mean()
        stats: Stats = {}
        lo, hi = self.visual_range
        objective_of_token = batch["objective"][:, None].expand_as(labels)[has_label]
        _token_stats(
            stats,
            token_loss,
            logits.argmax(-1) == targets,
            objective_of_token,
            (targets >= lo) & (targets < hi),
        )
        stats["loss"] = _stat(loss * labels.shape[0], labels.shape[0])
        return loss, stats
