"""Model sizes and training defaults by preset: ``tiny`` (tests), ``base`` (learns on the synthetic
corpus on 2 CPU cores in minutes) and ``paper`` (the papers' sizes: BERT-large for VideoBERT,
bart-large for BART)."""

from __future__ import annotations

from dataclasses import dataclass

from vidcap.errors import VidcapError

PRESETS = ("tiny", "base", "paper")


@dataclass(frozen=True)
class ModelSize:
    """Transformer dimensions shared by both architectures (BART uses ``layers`` per side)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_length: int  # longest token sequence (text + visual words + specials)


@dataclass(frozen=True)
class TrainDefaults:
    """Training defaults of a preset; every one can be overridden on the command line."""

    max_steps: int
    batch_size: int
    lr: float


SIZES = {
    "tiny": ModelSize(hidden=32, layers=2, heads=2, intermediate=64, max_length=128),
    "base": ModelSize(hidden=128, layers=3, heads=4, intermediate=512, max_length=160),
    # VideoBERT: BERT-large (24 layers x 1024, 16 heads). BART: bart-large (12 + 12 layers x 1024).
    "paper": ModelSize(hidden=1024, layers=24, heads=16, intermediate=4096, max_length=512),
}
BART_PAPER = ModelSize(hidden=1024, layers=12, heads=16, intermediate=4096, max_length=1024)

TRAINING = {
    "tiny": TrainDefaults(max_steps=200, batch_size=16, lr=2e-3),
    "base": TrainDefaults(max_steps=600, batch_size=32, lr=1e-3),
    "paper": TrainDefaults(max_steps=500_000, batch_size=128, lr=1e-4),
}


def model_size(preset: str, arch: str) -> ModelSize:
    """The dimensions of ``preset`` for ``arch`` (``videobert`` or ``bart``)."""
    if preset not in SIZES:
        raise VidcapError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}.")
    return BART_PAPER if (preset == "paper" and arch == "bart") else SIZES[preset]


def train_defaults(preset: str) -> TrainDefaults:
    """The training defaults of ``preset``."""
    if preset not in TRAINING:
        raise VidcapError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}.")
    return TRAINING[preset]
