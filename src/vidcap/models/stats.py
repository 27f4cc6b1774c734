"""Training statistics as ``tensor([sum, count])``: they add up across steps and processes, so a
mean over a whole run (or over every process's share of a batch) is one division at the end."""

from __future__ import annotations

import torch

Stats = dict[str, torch.Tensor]


def count_stat(total: torch.Tensor, count: int | torch.Tensor) -> torch.Tensor:
    """A statistic as ``tensor([sum, count])``, which adds up across steps and processes."""
    count = torch.as_tensor(count, dtype=torch.float32, device=total.device)
    return torch.stack([total.detach().float(), count])
