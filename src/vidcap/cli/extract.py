"""``vidcap extract``: decode videos into clip-aligned frames (the first stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TextColumn

from vidcap.cli.console import finish_stage, stage_progress
from vidcap.cli.options import (
    AllowFailures,
    AsJson,
    RedoAll,
    StageShard,
    parse_decode_workers,
    parse_shard,
    positive,
)
from vidcap.cli.videos import stdin_lines
from vidcap.distributed import current_processes
from vidcap.stages.extract import (
    MAX_SIZE,
    MIN_SIZE,
    ExtractBackend,
    ExtractConfig,
    VideoDone,
    run_extract,
)
from vidcap.stages.inputs import resolve_inputs


def extract_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="A corpus.jsonl, video files, folders (searched for videos), or - to read paths from stdin.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the frames (a stage folder).")
    ],
    fps: Annotated[
        float,
        typer.Option(
            "--fps", callback=positive, help="Frames per second, resampled by timestamps."
        ),
    ] = 20.0,
    size: Annotated[
        int,
        typer.Option(
            "--size", min=MIN_SIZE, max=MAX_SIZE, help="Short side of the frames, in pixels."
        ),
    ] = 224,
    crop: Annotated[
        bool, typer.Option("--crop", help="Centre-crop frames to a SIZE x SIZE square.")
    ] = False,
    clip_frames: Annotated[
        int,
        typer.Option("--clip-frames", min=1, help="Frames per clip (30 at 20 fps = 1.5 s)."),
    ] = 30,
    backend: Annotated[
        ExtractBackend,
        typer.Option(
            "--backend", help="The decoder; auto tries decord, then PyAV, torchcodec, OpenCV."
        ),
    ] = "auto",
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            callback=positive,
            help="Seconds a video's decoder may go without delivering frames (a hung decoder) "
            "before it is stopped; with --backend auto the next library then tries, with a limit "
            "of its own, and when none is left the video fails.",
        ),
    ] = 120.0,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-j",
            parser=parse_decode_workers,
            metavar="N|auto",
            help="Videos decoded at once by each process; auto: one per core it has.",
        ),
    ] = "auto",  # type: ignore[assignment]  # parsed to an int by parse_decode_workers
    shard: StageShard = None,
    force: RedoAll = False,
    allow_failures: AllowFailures = False,
    as_json: AsJson = False,
) -> None:
    """Decode videos into frames at a fixed rate, cut into clips (VideoBERT: 20 fps, 1.5 s clips).

    Frames are resized so the short side is --size and stored as uint8 arrays, one .npy per video,
    with index.jsonl and manifest.json. A bad video is recorded as failed with a reason and the
    others go on; rerunning skips finished videos. Run under `accelerate launch` or `torchrun` to
    share the videos between processes, or as N jobs with --shard K/N (a SLURM array) into one
    --out.
    """
    config = ExtractConfig(
        fps=fps,
        size=size,
        crop=crop,
        clip_frames=clip_frames,
        backend=backend,
        timeout=timeout,
        workers=workers,
    )
    processes = current_processes()
    resolved = resolve_inputs(inputs, stdin_lines(processes) if "-" in inputs else ())
    with stage_progress("extracting", processes, TextColumn("{task.fields[fps]}"), fps="") as bar:
        frames = 0

        def on_video(done: VideoDone) -> None:
            nonlocal frames
            frames += done.n_frames
            bar.advance(fps=f"{frames / bar.elapsed:,.0f} frames/s")

        result = run_extract(
            resolved,
            out,
            config,
            processes,
            force=force,
            on_start=bar.on_start,
            on_video=on_video,
            allow_failures=allow_failures,
            shard=parse_shard(shard),
        )
    finish_stage(result, processes, as_json, allow_failures)
