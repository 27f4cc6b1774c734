"""``vidcap encode``: one feature vector per clip (the second stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vidcap.cli.console import finish_stage, progress_bar, stdout
from vidcap.cli.options import AllowFailures, AsJson, Device, RedoAll
from vidcap.distributed import current_processes
from vidcap.encoders.dtypes import ComputeDtype, SaveDtype
from vidcap.errors import VidcapError


def _print_encoders() -> None:
    from vidcap.encoders import families

    table = Table(title="encoders (--encoder NAME)")
    table.add_column("name", style="bold")
    table.add_column("dim")
    table.add_column("runs here")
    table.add_column("what")
    for family in families():
        reason = family.unavailable()
        table.add_row(
            "\n".join(family.examples),
            family.dims,
            "[green]yes[/]" if reason is None else f"[red]no[/]: {escape(reason)}",
            family.summary,
        )
    stdout.print(table)


def encode_command(
    frames_dir: Annotated[
        Path | None,
        typer.Argument(help="A folder written by `vidcap extract`.", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for the features (a stage folder)."),
    ] = None,
    encoder: Annotated[
        str,
        typer.Option(
            "--encoder",
            "-e",
            help="descriptor, hf:<hub id or path>, or torchvision:<model>; see --list.",
        ),
    ] = "descriptor",
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", "-b", min=1, help="Clips per model call (batches span videos)."
        ),
    ] = 32,
    device: Device = "auto",
    dtype: Annotated[
        ComputeDtype,
        typer.Option("--dtype", help="The model's compute dtype (float16, bfloat16: GPU)."),
    ] = "float32",
    save_dtype: Annotated[
        SaveDtype, typer.Option("--save-dtype", help="The features' dtype on disk.")
    ] = "float16",
    weights: Annotated[
        str,
        typer.Option(
            "--weights", help="torchvision encoders: default, none or a local weights file."
        ),
    ] = "default",
    loader_workers: Annotated[
        int,
        typer.Option("--loader-workers", min=0, help="Processes reading and preparing clips."),
    ] = 2,
    force: RedoAll = False,
    allow_failures: AllowFailures = False,
    as_json: AsJson = False,
    list_encoders: Annotated[
        bool,
        typer.Option("--list", help="List the encoders, their sizes and whether they run here."),
    ] = False,
) -> None:
    """Encode every clip of an extract folder into one feature vector (one safetensors per video).

    The default `descriptor` needs no downloaded weights; `hf:` takes any transformers image or video
    model; `torchvision:s3d` is the VideoBERT paper's encoder. Rerunning skips finished videos; run
    under `accelerate launch` or `torchrun` to share the videos between processes or GPUs.
    """
    if list_encoders:
        _print_encoders()
        return
    if frames_dir is None or out is None:
        raise VidcapError("give the extract folder and --out (or --list to see the encoders).")
    from vidcap.stages.encode import EncodeConfig, VideoEncoded, run_encode

    config = EncodeConfig(
        encoder=encoder,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        save_dtype=save_dtype,
        weights=weights,
        loader_workers=loader_workers,
    )
    processes = current_processes()
    with progress_bar() as progress:
        progress.disable = progress.disable or not processes.is_main
        task = progress.add_task("encoding", total=None)

        def on_start(to_do: int, skipped: int) -> None:
            progress.update(task, total=to_do, description=f"encoding ({skipped} already done)")

        def on_video(done: VideoEncoded) -> None:
            progress.update(task, advance=1)

        result = run_encode(
            frames_dir, out, config, processes, force=force, on_start=on_start, on_video=on_video
        )
    if not processes.is_main:
        return
    finish_stage(result, as_json, allow_failures)
