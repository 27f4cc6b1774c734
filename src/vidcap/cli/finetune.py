"""``vidcap finetune``: train a captioner from a pretrain and write a self-contained bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidcap.bundle import Task
from vidcap.cli.training import TrainingRun, training_command
from vidcap.models.presets import Arch, Preset


@training_command
def finetune_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="A `vidcap pretrain` folder, a finetuned model to train further (e.g. on another --task), or, with --from-scratch, a `vidcap quantize` folder.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="The bundle folder (model, tokenizer, codebook, vidcap.json)."
        ),
    ],
    task: Annotated[
        Task,
        typer.Option(
            "--task",
            help="caption (segment captions), qa (question + video → answer), summary (video → paragraph) or dense (video → timed events, Vid2Seq's time tokens).",
        ),
    ] = "caption",
    from_scratch: Annotated[
        bool,
        typer.Option(
            "--from-scratch",
            help="Fresh weights instead of the pretrain's, to measure what pretraining gains.",
        ),
    ] = False,
    arch: Annotated[
        Arch | None,
        typer.Option("--arch", help="Default: the pretrain's; bart from a quantize folder."),
    ] = None,
    preset: Annotated[
        Preset | None,
        typer.Option(
            "--preset",
            help="Sizes for --from-scratch and training defaults (default: the pretrain's).",
        ),
    ] = None,
    with_features: Annotated[
        bool,
        typer.Option(
            "--with-features",
            help="Also feed the continuous clip features, projected and added to the visual words.",
        ),
    ] = False,
    with_transcript: Annotated[
        bool,
        typer.Option("--with-transcript", help="Also feed the segment's narration (transcript)."),
    ] = False,
    beams: Annotated[
        int, typer.Option("--beams", min=1, help="Beam width the bundle captions with.")
    ] = 4,
    time_bins: Annotated[
        int,
        typer.Option(
            "--time-bins",
            min=2,
            help="--task dense: relative time bins, one time token each (Vid2Seq: 100).",
        ),
    ] = 100,
    max_clips: Annotated[
        int,
        typer.Option(
            "--max-clips",
            min=1,
            help="--task dense: clips of a video read at most; longer videos are subsampled evenly.",
        ),
    ] = 100,
    localiser_steps: Annotated[
        int,
        typer.Option(
            "--localiser-steps",
            min=1,
            help="--task dense: training steps of the event localiser (it places the events; seconds on a CPU).",
        ),
    ] = 1500,
    *,
    run: TrainingRun,
) -> None:
    """Finetune a captioner (or, with --task, a question answerer or summariser) into a bundle.

    Each reference caption of a training segment is one target (--task qa / summary: each answer
    or summary; --task dense: each video's events in order, each with its time tokens, and each
    event on its own clips, beside an event localiser trained on the clip features); --out
    becomes a bundle that `vidcap caption` (`answer`, `summarize`) uses. SOURCE
    may also be a finetuned bundle, trained further. metrics.jsonl records train and val loss and
    val CIDEr. Run alone, or under `accelerate launch` / `torchrun`.
    """
    from vidcap.stages.finetune import FinetuneConfig, run_finetune

    config = FinetuneConfig(
        task=task,
        arch=arch,
        preset=preset,
        from_scratch=from_scratch,
        with_features=with_features,
        with_transcript=with_transcript,
        beams=beams,
        time_bins=time_bins,
        max_clips=max_clips,
        localiser_steps=localiser_steps,
        **run.overrides,
    )
    run.train(
        "finetuning",
        None,  # the preset, and so the default step count, comes from SOURCE
        lambda **run_options: run_finetune(source, out, config, **run_options),
    )
