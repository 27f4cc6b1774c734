"""``vidcap encode``: one feature vector per clip (the second stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import TextColumn
from rich.table import Table

from vidcap.artifacts import SHARDS
from vidcap.cli.console import finish_stage, stage_progress, stdout
from vidcap.cli.options import (
    AllowFailures,
    AsJson,
    Device,
    RedoAll,
    StageShard,
    parse_decode_workers,
    parse_loader_workers,
    parse_shard,
    positive,
)
from vidcap.cli.videos import stdin_lines
from vidcap.distributed import Processes, current_processes
from vidcap.encoders.dtypes import ComputeDtype, SaveDtype
from vidcap.errors import VidcapError
from vidcap.stages.extract import MAX_SIZE, MIN_SIZE, ExtractBackend, ExtractConfig
from vidcap.stages.inputs import ResolvedInputs, resolve_inputs


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


def _list_encoders(value: bool) -> None:
    """``--list``: the table, then exit, before the inputs and ``--out`` it does not need are
    asked for (an eager option)."""
    if value:
        _print_encoders()
        raise typer.Exit()


def _extract_folder(inputs: list[str]) -> Path | None:
    """The extract folder when that is the input (one folder holding a stage manifest)."""
    if len(inputs) != 1:
        return None
    folder = Path(inputs[0])
    return folder if (folder / "manifest.json").is_file() else None


def _resolve_videos(inputs: list[str], processes: Processes) -> ResolvedInputs:
    try:
        return resolve_inputs(inputs, stdin_lines(processes) if "-" in inputs else ())
    except VidcapError:
        if len(inputs) == 1 and Path(inputs[0]).is_dir():
            folder = Path(inputs[0])
            if (folder / SHARDS).is_dir() or any(folder.glob("index*.jsonl")):
                raise VidcapError(
                    f"{folder} holds a stage run that has not finished (an index, no "
                    "manifest.json yet): let it finish, or run its missing --shard jobs, then "
                    "encode it."
                ) from None
            raise VidcapError(
                f"{folder} has no manifest.json (it is not a `vidcap extract` folder) and holds no videos."
            ) from None
        raise


def encode_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="A folder written by `vidcap extract`, or videos as `vidcap extract` takes them "
            "(a corpus.jsonl, video files, folders, or - to read paths from stdin).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder for the features (a stage folder).", show_default=False
        ),
    ],
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
        int | None,
        typer.Option(
            "--loader-workers",
            parser=parse_loader_workers,
            metavar="N|auto",
            help="From an extract folder: processes reading and preparing clips (default: auto, "
            "half the cores this process has, 2 to 8). From videos the decode workers (-j) "
            "prepare them.",
            show_default=False,
        ),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(
            "--fps",
            callback=positive,
            help="From videos: frames per second (default: 20).",
            rich_help_panel="From videos (as vidcap extract)",
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            min=MIN_SIZE,
            max=MAX_SIZE,
            help="From videos: short side of the frames in pixels (default: 224).",
            rich_help_panel="From videos (as vidcap extract)",
        ),
    ] = None,
    crop: Annotated[
        bool | None,
        typer.Option(
            "--crop/--no-crop",
            help="From videos: centre-crop to SIZE x SIZE (default: no-crop).",
            rich_help_panel="From videos (as vidcap extract)",
            show_default=False,
        ),
    ] = None,
    clip_frames: Annotated[
        int | None,
        typer.Option(
            "--clip-frames",
            min=1,
            help="From videos: frames per clip (default: 30).",
            rich_help_panel="From videos (as vidcap extract)",
        ),
    ] = None,
    backend: Annotated[
        ExtractBackend | None,
        typer.Option(
            "--backend",
            help="From videos: the decoder (default: auto).",
            rich_help_panel="From videos (as vidcap extract)",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            callback=positive,
            help="From videos: seconds a video's decoder may go without delivering a frame before "
            "it is stopped and the video fails (default: 120).",
            rich_help_panel="From videos (as vidcap extract)",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            parser=parse_decode_workers,
            metavar="N|auto",
            help="From videos: videos decoded at once by each process (default: auto, one per "
            "core it has).",
            rich_help_panel="From videos (as vidcap extract)",
        ),
    ] = None,
    shard: StageShard = None,
    force: RedoAll = False,
    allow_failures: AllowFailures = False,
    as_json: AsJson = False,
    list_encoders: Annotated[
        bool,
        typer.Option(
            "--list",
            callback=_list_encoders,
            is_eager=True,
            help="List the encoders, their sizes and whether they run here.",
        ),
    ] = False,
) -> None:
    """Encode every clip into one feature vector (one safetensors per video).

    From an extract folder, or straight from videos: then each video is decoded in a killable
    process (--timeout, as `vidcap extract`), cut into clips and encoded in one pass, and no frames
    are stored; the features are those extract then encode would give. The default `descriptor` needs no downloaded weights; `hf:` takes any transformers image or video
    model; `torchvision:s3d` is the VideoBERT paper's encoder. Rerunning skips finished videos; run
    under `accelerate launch` or `torchrun` to share the videos between processes or GPUs, or as N
    jobs with --shard K/N (a SLURM array) into one --out.
    """
    from vidcap.stages.encode import EncodeConfig, VideoEncoded, run_encode

    config = EncodeConfig(
        encoder=encoder,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        save_dtype=save_dtype,
        weights=weights,
        loader_workers=loader_workers
        if loader_workers is not None
        else parse_loader_workers("auto"),
    )
    processes = current_processes()
    frames_dir = _extract_folder(inputs)
    with stage_progress("encoding", processes, TextColumn("{task.fields[rate]}"), rate="") as bar:
        clips = 0

        def on_clips(n: int) -> None:  # from videos: as each batch is encoded
            nonlocal clips
            if not n:
                return
            clips += n
            noun = "clip" if clips == 1 else "clips"
            bar.show(rate=f"{clips:,} {noun}, {clips / bar.elapsed:,.1f} clips/s")

        def on_video(done: VideoEncoded) -> None:
            if frames_dir is not None:  # from frames: the clips come a video at a time
                on_clips(done.n_clips)
            bar.advance()

        from_videos = {
            "fps": fps,
            "size": size,
            "crop": crop,
            "clip_frames": clip_frames,
            "backend": backend,
            "timeout": timeout,
            "workers": workers,
        }
        given = {k: v for k, v in from_videos.items() if v is not None}
        if frames_dir is None and loader_workers is not None:
            raise VidcapError(
                "--loader-workers applies to encoding from an extract folder; from videos, the "
                "decode workers (-j) prepare the clips."
            )
        if frames_dir is not None:
            if given:
                options = ", ".join("--" + k.replace("_", "-") for k in given)
                apply, them = ("applies", "it") if len(given) == 1 else ("apply", "them")
                raise VidcapError(
                    f"{options} {apply} to encoding from videos; the extract folder {frames_dir} "
                    f"fixed {them} already."
                )
            result = run_encode(
                frames_dir,
                out,
                config,
                processes,
                force,
                on_start=bar.on_start,
                on_video=on_video,
                shard=parse_shard(shard),
            )
        else:
            from vidcap.stages.encode_videos import run_encode_videos

            resolved = _resolve_videos(inputs, processes)
            result = run_encode_videos(
                resolved,
                out,
                config,
                ExtractConfig(**{"workers": parse_decode_workers("auto"), **given}),
                processes,
                force,
                on_start=bar.on_start,
                on_video=on_video,
                allow_failures=allow_failures,
                shard=parse_shard(shard),
                on_clips=on_clips,
            )
    finish_stage(result, processes, as_json, allow_failures)
