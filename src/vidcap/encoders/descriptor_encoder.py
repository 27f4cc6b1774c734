"""The ``descriptor`` encoder family: the built-in clip descriptor, needing no downloaded weights."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from vidcap.encoders.base import ClipEncoder, EncoderOptions, register
from vidcap.encoders.descriptor import ClipDescriptor, DescriptorConfig
from vidcap.errors import VidcapError


class DescriptorEncoder(ClipEncoder):
    """:class:`~vidcap.encoders.descriptor.ClipDescriptor` behind the encoder interface.

    All the work is CPU work, so it happens in :meth:`prepare` (in DataLoader workers, in
    parallel); :meth:`embed` only passes the vectors through.
    """

    name = "descriptor"

    def __init__(self, config: DescriptorConfig | None = None) -> None:
        self.descriptor = ClipDescriptor(config or DescriptorConfig())
        self.dim = self.descriptor.dim

    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.descriptor.encode_clip(clip))

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "config": asdict(self.descriptor.config)}


@register(
    "descriptor",
    "built-in motion/object clip descriptor (OpenCV + numpy; no weights, runs anywhere)",
    examples=("descriptor",),
    dims=str(ClipDescriptor().dim),
)
def build_descriptor(argument: str | None, options: EncoderOptions) -> ClipEncoder:
    """``descriptor`` takes no argument and always runs on the CPU."""
    if argument:
        raise VidcapError(f"the descriptor encoder takes no argument, got 'descriptor:{argument}'.")
    return DescriptorEncoder()
