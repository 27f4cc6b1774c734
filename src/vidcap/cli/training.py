"""What ``vidcap pretrain`` and ``vidcap finetune`` share: their training options, declared once
(defaults from :class:`~vidcap.training.settings.TrainingOverrides`) and added to each command by
:func:`training_command`, and the run with a progress bar on the main process."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import TextColumn

from vidcap.cli.console import print_stage_result, progress_bar
from vidcap.cli.options import AsJson, positive
from vidcap.distributed import current_processes
from vidcap.training.settings import MixedPrecision, TrainingOverrides

if TYPE_CHECKING:
    from vidcap.stages.base import StageResult
    from vidcap.training.loop import StepReport

DEFAULT = TrainingOverrides()

MaxSteps = Annotated[
    int | None, typer.Option("--max-steps", min=1, help="Optimizer steps (default: the preset's).")
]
BatchSize = Annotated[
    int | None,
    typer.Option(
        "--batch-size", min=1, help="Examples per process and step (default: the preset's)."
    ),
]
LearningRate = Annotated[
    float | None,
    typer.Option(
        "--lr",
        callback=positive,
        help="Peak learning rate, after 10% warmup, then linear decay (default: the preset's).",
    ),
]
GradAccum = Annotated[int, typer.Option("--grad-accum", min=1, help="Gradient accumulation steps.")]
MixedPrecisionOption = Annotated[
    MixedPrecision, typer.Option("--mixed-precision", help="Mixed precision (fp16, bf16: GPU).")
]
SaveEvery = Annotated[
    int, typer.Option("--save-every", min=1, help="Save a resumable checkpoint every N steps.")
]
EvalEvery = Annotated[
    int,
    typer.Option("--eval-every", min=1, help="Val loss (finetune: and val CIDEr) every N steps."),
]
Seed = Annotated[
    int, typer.Option("--seed", help="Random seed (data order, masking, initial weights).")
]


def _tracker(value: str | None) -> str | None:
    """Refuse an unknown or uninstalled tracker before any data is read (usage error, exit 2)."""
    from vidcap.errors import VidcapError
    from vidcap.training.loop import check_tracker

    try:
        check_tracker(value)
    except VidcapError as error:
        raise typer.BadParameter(str(error)) from error
    return value


LogWith = Annotated[
    str | None,
    typer.Option(
        "--log-with",
        callback=_tracker,
        help="An Accelerate tracker, e.g. tensorboard (pip install 'vidcap\\[tensorboard]').",
    ),
]
Resume = Annotated[
    str | None,
    typer.Option(
        "--resume", help="auto (the latest checkpoint in --out) or a checkpoints/step-N folder."
    ),
]
Force = Annotated[
    bool, typer.Option("--force", help="Start over, deleting earlier checkpoints in --out.")
]


_SHARED: dict[str, Any] = {
    "max_steps": MaxSteps,
    "batch_size": BatchSize,
    "lr": LearningRate,
    "grad_accum": GradAccum,
    "mixed_precision": MixedPrecisionOption,
    "save_every": SaveEvery,
    "eval_every": EvalEvery,
    "seed": Seed,
    "log_with": LogWith,
    "resume": Resume,
    "force": Force,
    "as_json": AsJson,
}
_NOT_OVERRIDES = {"resume": None, "force": False, "as_json": False}  # with their defaults


@dataclass(frozen=True)
class TrainingRun:
    """The shared options' values, handed to a training command as its ``run`` argument."""

    overrides: dict[str, Any]  # the TrainingOverrides fields, for the stage's config
    resume: str | None
    force: bool
    as_json: bool

    def train(self, label: str, max_steps: int | None, stage: Callable[..., StageResult]) -> None:
        """Run ``stage(resume=, force=, on_step=)`` under a progress bar with loss and speed,
        shown by the main process only, then print its result."""
        processes = current_processes()
        with progress_bar(
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]}"),
            processes=processes,
        ) as progress:
            task = progress.add_task(label, total=max_steps, loss="-", speed="")

            def on_step(report: StepReport) -> None:
                progress.update(
                    task,
                    total=report.max_steps,
                    completed=report.step,
                    loss=f"{report.loss:.3f}",
                    speed=f"{report.tokens_per_s:,.0f} tok/s",
                )

            result = stage(resume=self.resume, force=self.force, on_step=on_step)
        if processes.is_main:
            print_stage_result(result, as_json=self.as_json)


def training_command(command: Callable[..., None]) -> Callable[..., None]:
    """Give a training command the shared options, declared here once.

    ``command`` declares its own options and a last parameter ``run: TrainingRun``; the shared
    options take that parameter's place in the signature Typer reads (so ``--help`` lists them after
    the command's own), and their values reach ``command`` as one :class:`TrainingRun`.
    """
    own = inspect.signature(command, eval_str=True)
    params = [p for name, p in own.parameters.items() if name != "run"]
    defaults = {
        **{f.name: getattr(DEFAULT, f.name) for f in fields(TrainingOverrides)},
        **_NOT_OVERRIDES,
    }
    shared = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=defaults[name]
        )
        for name, kind in _SHARED.items()
    ]

    @functools.wraps(command)
    def with_shared_options(**values: Any) -> None:
        shared_values = {name: values.pop(name) for name in _SHARED}
        run = TrainingRun(
            overrides={k: v for k, v in shared_values.items() if k not in _NOT_OVERRIDES},
            **{k: shared_values[k] for k in _NOT_OVERRIDES},
        )
        command(**values, run=run)

    with_shared_options.__signature__ = own.replace(parameters=[*params, *shared])  # type: ignore[attr-defined]
    return with_shared_options
