"""Clip features standardised with the training clips' statistics, for the modules that read them
(the seq2seq's feature projection and the event localiser): descriptor features mix units (hue
shares, pixel speeds, sizes), and a model learns faster from each in its own spread."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Standardised(nn.Module):
    """A module whose input features are standardised: ``mean`` and ``scale`` buffers (saved with
    its weights), set by :meth:`fit_statistics`, applied by :meth:`standardise`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def fit_statistics(self, features: np.ndarray) -> None:
        """Take the mean and spread from the training clips' features ``[N, dim]`` (a feature that
        never varies keeps a small scale rather than a division by zero)."""
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        self.mean.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-4))

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        """``(features - mean) / scale``."""
        return (features - self.mean) / self.scale
