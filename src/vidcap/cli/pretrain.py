"""``vidcap pretrain``: VideoBERT or BART on text + visual words (the fourth stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidcap.cli.training import TrainingRun, training_command
from vidcap.models.presets import Arch, Preset


@training_command
def pretrain_command(
    words_dir: Annotated[
        Path, typer.Argument(help="A folder written by `vidcap quantize`.", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for checkpoints, metrics and final/.")
    ],
    arch: Annotated[
        Arch,
        typer.Option(
            "--arch", help="videobert (masked tokens + alignment) or bart (denoising seq2seq)."
        ),
    ] = "videobert",
    preset: Annotated[
        Preset,
        typer.Option(
            "--preset",
            help="tiny (tests), base (minutes on a CPU), paper (BERT-large / bart-large sizes).",
        ),
    ] = "base",
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="Start from a BERT / BART checkpoint (hub id or folder), extending its vocabulary.",
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            help="Start from a pretrained tokenizer instead of training one on the corpus.",
        ),
    ] = None,
    text_vocab_size: Annotated[
        int,
        typer.Option(
            "--text-vocab-size", min=1, help="Word pieces in a vocabulary trained on the corpus."
        ),
    ] = 4000,
    freeze_visual: Annotated[
        bool,
        typer.Option(
            "--freeze-visual",
            help="Keep the visual-word embeddings at their codebook initialisation.",
        ),
    ] = False,
    *,
    run: TrainingRun,
) -> None:
    """Pretrain VideoBERT or BART on the corpus text and visual words; final/ loads in transformers.

    Run alone, or under `accelerate launch` / `torchrun` for several GPUs or machines. metrics.jsonl
    records loss per objective and masked-token accuracy per modality on train and val.
    """
    from vidcap.stages.pretrain import PretrainConfig, run_pretrain

    config = PretrainConfig(
        arch=arch,
        preset=preset,
        init=init,
        tokenizer=tokenizer,
        text_vocab_size=text_vocab_size,
        freeze_visual=freeze_visual,
        **run.overrides,
    )
    run.train(
        f"pretraining {arch}",
        config.train_config(preset).max_steps,
        lambda **run_options: run_pretrain(words_dir, out, config, **run_options),
    )
