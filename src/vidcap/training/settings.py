"""Training settings, declared once for both training stages.

:class:`TrainingOverrides` holds what ``vidcap pretrain`` and ``vidcap finetune`` both take on the
command line; each stage's config extends it with its own settings. ``None`` means the preset's
default for the phase, from :data:`DEFAULTS`, one table keyed by ``(preset, phase)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, get_args

from vidcap.artifacts import fingerprint
from vidcap.errors import VidcapError
from vidcap.models.presets import PRESETS

Phase = Literal["pretrain", "finetune"]
MixedPrecision = Literal["no", "fp16", "bf16"]
BOOKKEEPING = frozenset(
    {"save_every", "eval_every", "log_every", "keep_checkpoints", "log_with", "loader_workers"}
)
"""Settings that do not change the weights: changing them must not make a finished run stale."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``batch_size`` is per process and per accumulation step."""

    max_steps: int
    batch_size: int
    lr: float
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: MixedPrecision = "no"
    save_every: int = 500
    eval_every: int = 250
    log_every: int = 10
    keep_checkpoints: int = 2
    seed: int = 0
    log_with: str | None = None  # e.g. tensorboard
    # Processes drawing training examples (None: 2 with a GPU; 0 on a CPU, where the examples are
    # drawn between steps: measured on 2 cores, a worker process or a background thread drawing
    # alongside the model slowed it more than drawing costs).
    loader_workers: int | None = None

    def weight_settings(self) -> dict[str, Any]:
        """The settings that change the trained weights (not how often to save, log or evaluate)."""
        return {k: v for k, v in asdict(self).items() if k not in BOOKKEEPING}

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise VidcapError(f"--max-steps must be >= 1, got {self.max_steps}.")
        if self.batch_size < 1:
            raise VidcapError(f"--batch-size must be >= 1, got {self.batch_size}.")
        if not self.lr > 0:
            raise VidcapError(f"--lr must be > 0, got {self.lr}.")
        for name in ("save_every", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise VidcapError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}."
                )
        if self.grad_accum < 1:
            raise VidcapError(f"--grad-accum must be >= 1, got {self.grad_accum}.")
        if self.mixed_precision not in get_args(MixedPrecision):
            raise VidcapError(
                f"--mixed-precision must be no, fp16 or bf16, got {self.mixed_precision!r}."
            )


@dataclass(frozen=True)
class PresetDefaults:
    """What a preset trains with unless told otherwise."""

    max_steps: int
    batch_size: int
    lr: float


DEFAULTS: dict[tuple[str, Phase], PresetDefaults] = {
    ("tiny", "pretrain"): PresetDefaults(max_steps=200, batch_size=16, lr=2e-3),
    ("base", "pretrain"): PresetDefaults(max_steps=600, batch_size=32, lr=1e-3),
    ("paper", "pretrain"): PresetDefaults(max_steps=500_000, batch_size=128, lr=1e-4),
    # Captioning targets are short next to pretraining's sequences: fewer steps.
    ("tiny", "finetune"): PresetDefaults(max_steps=150, batch_size=16, lr=2e-3),
    ("base", "finetune"): PresetDefaults(max_steps=1500, batch_size=32, lr=5e-4),
    ("paper", "finetune"): PresetDefaults(max_steps=50_000, batch_size=128, lr=5e-5),
}


def preset_defaults(preset: str, phase: Phase) -> PresetDefaults:
    """The defaults of ``preset`` for ``phase``, or a sentence naming the presets there are."""
    if (preset, phase) not in DEFAULTS:
        raise VidcapError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}.")
    return DEFAULTS[(preset, phase)]


@dataclass(frozen=True)
class TrainingOverrides:
    """The optimisation settings both training stages take; ``None``: the preset's default."""

    PHASE: ClassVar[Phase]

    max_steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    grad_accum: int = 1
    mixed_precision: MixedPrecision = "no"
    save_every: int = 500
    eval_every: int = 250
    seed: int = 0
    log_with: str | None = None

    def train_config(self, preset: str) -> TrainConfig:
        """The loop's settings: these overrides over ``preset``'s defaults for this phase."""
        defaults = preset_defaults(preset, self.PHASE)
        return TrainConfig(
            max_steps=defaults.max_steps if self.max_steps is None else self.max_steps,
            batch_size=defaults.batch_size if self.batch_size is None else self.batch_size,
            lr=defaults.lr if self.lr is None else self.lr,
            grad_accum=self.grad_accum,
            mixed_precision=self.mixed_precision,
            save_every=self.save_every,
            eval_every=self.eval_every,
            seed=self.seed,
            log_with=self.log_with,
        )

    def weight_settings(self) -> dict[str, Any]:
        """Every setting of the stage that changes the trained weights (for its fingerprint)."""
        return {k: v for k, v in asdict(self).items() if k not in BOOKKEEPING}


def training_fingerprint(
    stage: str, config: TrainingOverrides, train_config: TrainConfig, upstream_fingerprint: str
) -> str:
    """A training stage's fingerprint: the settings that change the weights, and the upstream."""
    return fingerprint(
        stage, config.weight_settings(), train_config.weight_settings(), upstream_fingerprint
    )
