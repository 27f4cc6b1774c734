"""The training loop on a toy objective: a run whose loss turns NaN stops before it saves NaN
weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from vidcap.errors import VidcapError, VidcapWarning
from vidcap.training.loop import train
from vidcap.training.settings import TrainConfig


class NaNAt(nn.Module):
    """A quadratic loss, NaN on the ``bad``-th batch (1-based): what a bad batch or an overflow
    gives in float32."""

    def __init__(self, bad: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.bad = bad
        self.batches = 0

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        self.batches += 1
        loss = ((self.w - batch["x"]) ** 2).sum()
        if self.batches == self.bad:
            loss = loss * float("nan")
        return loss, {"loss": torch.stack([loss.detach(), torch.tensor(1.0)])}


class Points(torch.utils.data.Dataset):
    """Eight 2-d points, read by the loop's ``(epoch, index)`` keys."""

    def __init__(self) -> None:
        self.x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        return {"x": self.x[key[1]], "attention_mask": torch.ones(3)}


def _collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


def test_one_nan_loss_in_float32_stops_before_the_next_checkpoint(tmp_path: Path) -> None:
    # Without a loss scaler one NaN loss makes NaN weights for good; waiting for 3 in a row (as
    # for float16's passing overflows) saved the NaN weights of step 4 as a checkpoint.
    config = TrainConfig(max_steps=6, batch_size=1, lr=0.1, save_every=2, log_every=100)
    with pytest.raises(VidcapError, match="training diverged by step 4"):
        train(NaNAt(bad=3), Points(), None, _collate, tmp_path, config)
    saved = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert saved == ["step-00000002"]


def test_resuming_a_checkpoint_past_max_steps_says_nothing_is_trained(tmp_path: Path) -> None:
    # `--resume checkpoints/step-4 --max-steps 2` finished "steps 4" without a word.
    config = TrainConfig(max_steps=4, batch_size=1, lr=0.1, save_every=2, log_every=100)
    train(NaNAt(bad=0), Points(), None, _collate, tmp_path, config)
    shorter = TrainConfig(max_steps=2, batch_size=1, lr=0.1, save_every=2, log_every=100)
    with pytest.warns(VidcapWarning, match="after step 4, at or past --max-steps 2: nothing is"):
        outcome = train(
            NaNAt(bad=0), Points(), None, _collate, tmp_path, shorter,
            resume=str(tmp_path / "checkpoints" / "step-00000004"),
        )  # fmt: skip
    assert outcome["steps"] == 4
