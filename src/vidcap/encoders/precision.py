"""Mixed precision for the model-backed encoders (``hf:``, ``torchvision:``)."""

from __future__ import annotations

import contextlib

import torch

from vidcap.encoders.base import torch_dtype


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """Mixed precision for ``dtype`` (float16 / bfloat16) on ``device``; float32 runs as is.

    The weights stay float32 (autocast casts per operation), which keeps layer norms and softmaxes
    in float32 where reduced precision would cost accuracy.
    """
    compute = torch_dtype(dtype)
    if compute is torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=compute)
