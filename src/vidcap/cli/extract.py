"""``vidcap extract``: decode videos into clip-aligned frames (the first stage)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.progress import TextColumn

from vidcap.cli.console import finish_stage, progress_bar
from vidcap.distributed import current_processes
from vidcap.stages.extract import ExtractConfig, VideoDone, run_extract
from vidcap.stages.inputs import resolve_inputs


def extract_command(
    inputs: list[str] = typer.Argument(
        ...,
        help="A corpus.jsonl, video files, folders (searched for videos), or - to read paths from stdin.",
        show_default=False,
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the frames (a stage folder)."),
    fps: float = typer.Option(20.0, "--fps", help="Frames per second, resampled by timestamps."),
    size: int = typer.Option(224, "--size", help="Short side of the frames, in pixels."),
    crop: bool = typer.Option(False, "--crop", help="Centre-crop frames to a SIZE x SIZE square."),
    clip_frames: int = typer.Option(
        30, "--clip-frames", help="Frames per clip (30 at 20 fps = 1.5 s)."
    ),
    backend: str = typer.Option(
        "auto", "--backend", help="auto (decord, then PyAV, then OpenCV), decord, pyav or opencv."
    ),
    timeout: float = typer.Option(
        120.0, "--timeout", help="Seconds per video before its decoder is stopped."
    ),
    workers: int = typer.Option(
        1, "--workers", "-j", help="Videos decoded at once by each process."
    ),
    force: bool = typer.Option(False, "--force", help="Redo every video, even finished ones."),
    allow_failures: bool = typer.Option(
        False, "--allow-failures", help="Exit 0 even if some videos failed."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Decode videos into frames at a fixed rate, cut into clips (VideoBERT: 20 fps, 1.5 s clips).

    Frames are resized so the short side is --size and stored as uint8 arrays, one .npy per video,
    with index.jsonl and manifest.json. A bad video is recorded as failed with a reason and the
    others go on; rerunning skips finished videos. Run under `accelerate launch` or `torchrun` to
    share the videos between processes.
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
    stdin_lines = sys.stdin if "-" in inputs else ()
    resolved = resolve_inputs(inputs, stdin_lines)
    processes = current_processes()
    with progress_bar(TextColumn("{task.fields[fps]}")) as progress:
        progress.disable = progress.disable or not processes.is_main
        task = progress.add_task("extracting", total=None, fps="")
        frames = 0

        def on_start(to_do: int, skipped: int) -> None:
            progress.update(task, total=to_do, description=f"extracting ({skipped} already done)")

        def on_video(done: VideoDone) -> None:
            nonlocal frames
            frames += done.n_frames
            elapsed = progress.tasks[0].elapsed or 1e-9
            progress.update(task, advance=1, fps=f"{frames / elapsed:,.0f} frames/s")

        result = run_extract(
            resolved, out, config, processes, force=force, on_start=on_start, on_video=on_video
        )
    if not processes.is_main:
        return
    finish_stage(result, as_json, allow_failures)
