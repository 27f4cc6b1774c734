"""``vidcap finetune``: train a captioner from a pretrain and write a self-contained bundle."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import TextColumn

from vidcap.cli.console import print_stage_result, progress_bar
from vidcap.distributed import current_processes


def finetune_command(
    source: Path = typer.Argument(
        ...,
        help="A `vidcap pretrain` folder, a finetuned model to train further (e.g. on another --task), or, with --from-scratch, a `vidcap quantize` folder.",
        show_default=False,
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="The bundle folder (model, tokenizer, codebook, vidcap.json)."
    ),
    task: str = typer.Option(
        "caption",
        "--task",
        help="caption (segment captions), qa (question + video → answer) or summary (video → paragraph).",
    ),
    from_scratch: bool = typer.Option(
        False,
        "--from-scratch",
        help="Fresh weights instead of the pretrain's, to measure what pretraining gains.",
    ),
    arch: str | None = typer.Option(
        None,
        "--arch",
        help="bart or videobert (default: the pretrain's; bart from a quantize folder).",
    ),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="tiny, base or paper: sizes for --from-scratch and training defaults (default: the pretrain's).",
    ),
    with_features: bool = typer.Option(
        False,
        "--with-features",
        help="Also feed the continuous clip features, projected and added to the visual words.",
    ),
    with_transcript: bool = typer.Option(
        False, "--with-transcript", help="Also feed the segment's narration (transcript)."
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Optimizer steps (default: the preset's)."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Examples per process and step (default: the preset's)."
    ),
    lr: float | None = typer.Option(
        None, "--lr", help="Peak learning rate, after 10% warmup, then linear decay."
    ),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Gradient accumulation steps."),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no, fp16 or bf16 (GPU)."),
    beams: int = typer.Option(4, "--beams", help="Beam width the bundle captions with."),
    save_every: int = typer.Option(
        500, "--save-every", help="Save a resumable checkpoint every N steps."
    ),
    eval_every: int = typer.Option(
        250, "--eval-every", help="Val loss and val CIDEr every N steps."
    ),
    resume: str | None = typer.Option(
        None,
        "--resume",
        help="auto (the latest checkpoint in --out) or a checkpoints/step-N folder.",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (data order, initial weights)."),
    log_with: str | None = typer.Option(
        None, "--log-with", help="An Accelerate tracker, e.g. tensorboard."
    ),
    force: bool = typer.Option(
        False, "--force", help="Start over, deleting earlier checkpoints in --out."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Finetune a captioner on the corpus segments; --out becomes a bundle `vidcap caption` uses.

    Each reference caption of a training segment is one target (--task qa / summary: each answer
    or summary). SOURCE may also be a finetuned bundle, trained further. metrics.jsonl records
    train and val loss and val CIDEr. Run alone, or under `accelerate launch` / `torchrun`.
    """
    from vidcap.stages.finetune import FinetuneConfig, run_finetune
    from vidcap.training.loop import StepReport

    config = FinetuneConfig(
        task=task, arch=arch, preset=preset, from_scratch=from_scratch, with_features=with_features,
        with_transcript=with_transcript, max_steps=max_steps, batch_size=batch_size, lr=lr,
        grad_accum=grad_accum, mixed_precision=mixed_precision, save_every=save_every,
        eval_every=eval_every, beams=beams, seed=seed, log_with=log_with,
    )  # fmt: skip
    processes = current_processes()
    with progress_bar(
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]}")
    ) as progress:
        progress.disable = progress.disable or not processes.is_main
        task = progress.add_task("finetuning", total=None, loss="-", speed="")

        def on_step(report: StepReport) -> None:
            progress.update(
                task,
                total=report.max_steps,
                completed=report.step,
                loss=f"{report.loss:.3f}",
                speed=f"{report.tokens_per_s:,.0f} tok/s",
            )

        result = run_finetune(source, out, config, resume=resume, force=force, on_step=on_step)
    if processes.is_main:
        print_stage_result(result, as_json=as_json)
