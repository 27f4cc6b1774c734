"""``vidcap pretrain``: VideoBERT or BART on text + visual words (the fourth stage)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import TextColumn

from vidcap.cli.console import print_stage_result, progress_bar
from vidcap.distributed import current_processes


def pretrain_command(
    words_dir: Path = typer.Argument(
        ..., help="A folder written by `vidcap quantize`.", show_default=False
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for checkpoints, metrics and final/."
    ),
    arch: str = typer.Option(
        "videobert",
        "--arch",
        help="videobert (masked tokens + alignment) or bart (denoising seq2seq).",
    ),
    preset: str = typer.Option(
        "base",
        "--preset",
        help="tiny (tests), base (minutes on a CPU), paper (BERT-large / bart-large sizes).",
    ),
    init: str | None = typer.Option(
        None,
        "--init",
        help="Start from a BERT / BART checkpoint (hub id or folder), extending its vocabulary.",
    ),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="Start from a pretrained tokenizer instead of training one on the corpus.",
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
    text_vocab_size: int = typer.Option(
        4000, "--text-vocab-size", help="Word pieces in a vocabulary trained on the corpus."
    ),
    freeze_visual: bool = typer.Option(
        False,
        "--freeze-visual",
        help="Keep the visual-word embeddings at their codebook initialisation.",
    ),
    save_every: int = typer.Option(
        500, "--save-every", help="Save a resumable checkpoint every N steps."
    ),
    eval_every: int = typer.Option(
        200, "--eval-every", help="Evaluate on the val split every N steps."
    ),
    resume: str | None = typer.Option(
        None,
        "--resume",
        help="auto (the latest checkpoint in --out) or a checkpoints/step-N folder.",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Random seed (data order, masking, initial weights)."
    ),
    log_with: str | None = typer.Option(
        None, "--log-with", help="An Accelerate tracker, e.g. tensorboard."
    ),
    force: bool = typer.Option(
        False, "--force", help="Start over, deleting earlier checkpoints in --out."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Pretrain VideoBERT or BART on the corpus text and visual words; final/ loads in plain transformers.

    Run alone, or under `accelerate launch` / `torchrun` for several GPUs or machines. metrics.jsonl
    records loss per objective and masked-token accuracy per modality on train and val.
    """
    from vidcap.stages.pretrain import PretrainConfig, run_pretrain
    from vidcap.training.loop import StepReport

    config = PretrainConfig(
        arch=arch, preset=preset, init=init, tokenizer=tokenizer, max_steps=max_steps, batch_size=batch_size,
        lr=lr, text_vocab_size=text_vocab_size, freeze_visual=freeze_visual, grad_accum=grad_accum,
        mixed_precision=mixed_precision, save_every=save_every, eval_every=eval_every, seed=seed, log_with=log_with,
    )  # fmt: skip
    processes = current_processes()
    with progress_bar(
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]}")
    ) as progress:
        progress.disable = progress.disable or not processes.is_main
        task = progress.add_task(
            f"pretraining {arch}", total=config.train_config().max_steps, loss="-", speed=""
        )

        def on_step(report: StepReport) -> None:
            progress.update(
                task,
                completed=report.step,
                loss=f"{report.loss:.3f}",
                speed=f"{report.tokens_per_s:,.0f} tok/s",
            )

        result = run_pretrain(words_dir, out, config, resume=resume, force=force, on_step=on_step)
    if processes.is_main:
        print_stage_result(result, as_json=as_json)
