"""Model sizes by preset: ``tiny`` (tests), ``base`` (learns on the synthetic
corpus on 2 CPU cores in minutes) and ``paper`` (the papers' sizes: BERT-large for VideoBERT,
bart-large for BART)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from vidcap.errors import VidcapError

Arch = Literal["videobert", "bart"]
Preset = Literal["tiny", "base", "paper"]
ARCHS: tuple[str, ...] = get_args(Arch)
PRESETS: tuple[str, ...] = get_args(Preset)


@dataclass(frozen=True)
class ModelSize:
    """Transformer dimensions shared by both architectures (BART uses ``layers`` per side)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_length: int  # longest token sequence (text + visual words + specials)


SIZES = {
    "tiny": ModelSize(hidden=32, layers=2, heads=2, intermediate=64, max_length=128),
    "base": ModelSize(hidden=128, layers=3, heads=4, intermediate=512, max_length=160),
    # VideoBERT: BERT-large (24 layers x 1024, 16 heads). BART: bart-large (12 + 12 layers x 1024).
    "paper": ModelSize(hidden=1024, layers=24, heads=16, intermediate=4096, max_length=512),
}
BART_PAPER = ModelSize(hidden=1024, layers=12, heads=16, intermediate=4096, max_length=1024)


def model_size(preset: str, arch: str) -> ModelSize:
    """The dimensions of ``preset`` for ``arch`` (``videobert`` or ``bart``)."""
    if preset not in SIZES:
        raise VidcapError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}.")
    return BART_PAPER if (preset == "paper" and arch == "bart") else SIZES[preset]
