"""``vidcap caption``: captions for raw video files from a finetuned bundle."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from vidcap.cli.console import print_error, progress_bar, stderr
from vidcap.errors import VidcapError


def read_video_paths(videos: list[str]) -> list[str]:
    """The paths given, with ``-`` replaced by the paths read from stdin (one per line)."""
    paths: list[str] = []
    for video in videos:
        if video == "-":
            paths += [line.strip() for line in sys.stdin if line.strip()]
        else:
            paths.append(video)
    if not paths:
        raise VidcapError("no videos given (stdin was empty).")
    return paths


def _preview_paths(preview: Path, videos: list[str]) -> list[Path]:
    """One storyboard per video: ``preview`` itself for one video, ``preview/<stem>.png`` for many."""
    from vidcap.captions.output import file_stems

    if len(videos) == 1 and not preview.is_dir():
        return [preview]
    if preview.exists() and not preview.is_dir():
        raise VidcapError(f"--preview {preview} is a file, but {len(videos)} videos need a folder.")
    return [preview / f"{stem}.png" for stem in file_stems(videos)]


def caption_command(
    videos: list[str] = typer.Argument(
        ..., help="Video files; - reads paths from stdin, one per line.", show_default=False
    ),
    model: Path = typer.Option(
        ..., "--model", "-m", help="A bundle written by `vidcap finetune`.", show_default=False
    ),
    fmt: str = typer.Option(
        "text", "--format", "-f", help="text, json, jsonl, srt or vtt (srt/vtt: timed subtitles)."
    ),
    dense: bool = typer.Option(
        False,
        "--dense",
        help="Timed captions over segments (cut where the visual features change, or every --segment-seconds).",
    ),
    segment_seconds: float | None = typer.Option(
        None,
        "--segment-seconds",
        help="Dense captions over fixed windows of this many seconds (implies --dense).",
    ),
    beams: int | None = typer.Option(
        None, "--beams", min=1, help="Beam width (default: the bundle's, 4)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Write here instead of stdout (srt/vtt with several videos: a folder, one file each).",
    ),
    preview: Path | None = typer.Option(
        None,
        "--preview",
        help="Storyboard PNG: a thumbnail per segment with its times and caption (a folder for several videos).",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Caption videos: extract → encode → quantize → generate in memory, with the bundle's settings.

    One caption per video by default; --dense gives timed captions (use --format srt or vtt for
    subtitle files). A video that cannot be read prints an error and the others go on; the exit
    status is 1 if any failed.
    """
    from vidcap.captioner import Captioner
    from vidcap.captions.output import FORMATS, render, write_outputs
    from vidcap.captions.storyboard import render_storyboard

    if fmt not in FORMATS:
        raise VidcapError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    if fmt in ("srt", "vtt"):
        dense = True  # subtitles are timed captions
    paths = read_video_paths(videos)
    # Settings that cannot work are refused before any video is decoded.
    if segment_seconds is not None and not segment_seconds > 0:
        raise VidcapError(f"--segment-seconds must be > 0, got {segment_seconds}.")
    if fmt in ("srt", "vtt") and len(paths) > 1 and out is None:
        raise VidcapError(
            f"{len(paths)} videos give {len(paths)} .{fmt} files; pass --out DIR to write them."
        )
    if out is not None and fmt not in ("srt", "vtt") and out.is_dir():
        raise VidcapError(f"--out {out} is a folder, but {fmt} output goes to one file.")
    if (
        preview is not None
        and len(paths) == 1
        and not preview.is_dir()
        and preview.suffix.lower() != ".png"
    ):
        raise VidcapError(f"--preview {preview} must be a .png file.")
    previews = _preview_paths(preview, paths) if preview is not None else []
    captioner = Captioner.load(model, device=device, task="caption")
    results, failed = [], 0
    with progress_bar() as progress:
        task = progress.add_task("captioning", total=len(paths))
        for index, result in enumerate(
            captioner.caption_many(
                paths,
                dense=dense,
                segment_seconds=segment_seconds,
                beams=beams,
                thumbnails=bool(previews),
            )
        ):
            progress.advance(task)
            if isinstance(result, VidcapError):
                failed += 1
                progress.console.print(
                    f"[bold red]error:[/] {escape(str(result))}", highlight=False
                )
                continue
            results.append(result)
            if previews:
                title = f"{Path(result.video).name} ({result.duration:.1f} s)"
                render_storyboard(result.thumbnails, result.captions, previews[index], title=title)
    if results:
        written = write_outputs(results, fmt, out)
        if out is None:
            sys.stdout.write(render(results, fmt))  # as is: Rich would expand the tabs
            sys.stdout.flush()
        for path in written:
            stderr.print(f"wrote {escape(str(path))}", highlight=False)
    for path in previews:
        if path.exists():
            stderr.print(f"storyboard {escape(str(path))}", highlight=False)
    if failed:
        print_error(f"{failed} of {len(paths)} videos could not be captioned.")
        raise typer.Exit(1)
