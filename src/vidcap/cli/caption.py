"""``vidcap caption``: captions for raw video files from a finetuned bundle."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from vidcap.cli.console import stderr
from vidcap.cli.options import positive
from vidcap.cli.videos import (
    Beams,
    Device,
    Failure,
    Model,
    Transcript,
    Videos,
    for_each_video,
    read_transcript,
    read_video_paths,
)
from vidcap.errors import VidcapError
from vidcap.output.formats import Format

if TYPE_CHECKING:
    from vidcap.inference.captioner import CaptionedVideo


def _preview_paths(preview: Path, videos: list[str]) -> list[Path]:
    """One storyboard per video: ``preview`` itself for one video, ``preview/<stem>.png`` for many."""
    from vidcap.output.formats import file_stems

    if len(videos) == 1 and not preview.is_dir():
        return [preview]
    if preview.exists() and not preview.is_dir():
        raise VidcapError(f"--preview {preview} is a file, but {len(videos)} videos need a folder.")
    return [preview / f"{stem}.png" for stem in file_stems(videos)]


def caption_command(
    videos: Videos,
    model: Model,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="Output format; srt and vtt are timed subtitles (--dense); anet is the ActivityNet Captions prediction JSON.",
        ),
    ] = "text",
    dense: Annotated[
        bool,
        typer.Option(
            "--dense",
            help="Timed captions over segments (cut where the visual features change, or every --segment-seconds); a dense model (--task dense) always gives its events.",
        ),
    ] = False,
    segment_seconds: Annotated[
        float | None,
        typer.Option(
            "--segment-seconds",
            callback=positive,
            help="Dense captions over fixed windows of this many seconds, > 0 (implies --dense).",
        ),
    ] = None,
    beams: Beams = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write here instead of stdout (srt/vtt with several videos: a folder, one file each).",
        ),
    ] = None,
    preview: Annotated[
        Path | None,
        typer.Option(
            "--preview",
            help="Storyboard PNG: a thumbnail per segment with its times and caption (a folder for several videos).",
        ),
    ] = None,
    transcript: Transcript = None,
    device: Device = "auto",
) -> None:
    """Caption videos: extract → encode → quantize → generate in memory, with the bundle's settings.

    One caption per video by default; --dense gives timed captions (use --format srt or vtt for
    subtitle files). A dense model (`vidcap finetune --task dense`) gives each video's events with
    their times, in every format. A video that cannot be read prints an error and the others go
    on; the exit status is 1 if any failed.
    """
    from vidcap.inference.captioner import Captioner
    from vidcap.output.formats import SUBTITLE_FORMATS, render, write_outputs
    from vidcap.output.storyboard import render_storyboard

    subtitles = fmt in SUBTITLE_FORMATS
    if subtitles:
        dense = True  # subtitles are timed captions
    paths = read_video_paths(videos)
    # Settings that cannot work are refused before any video is decoded.
    if subtitles and len(paths) > 1 and out is None:
        raise VidcapError(
            f"{len(paths)} videos give {len(paths)} .{fmt} files; pass --out DIR to write them."
        )
    if out is not None and not subtitles and out.is_dir():
        raise VidcapError(f"--out {out} is a folder, but {fmt} output goes to one file.")
    if (
        preview is not None
        and len(paths) == 1
        and not preview.is_dir()
        and preview.suffix.lower() != ".png"
    ):
        raise VidcapError(f"--preview {preview} must be a .png file.")
    previews = _preview_paths(preview, paths) if preview is not None else []
    captioner = Captioner.load(model, device=device, task=("caption", "dense"))
    if captioner.is_dense and segment_seconds is not None:
        raise VidcapError(
            f"{model} is a dense model: it finds the events itself, so --segment-seconds does not apply."
        )
    speech = None
    if transcript is not None:  # a dense model's ASR input, as Vid2Seq's
        reads = captioner.is_dense and captioner.inputs.with_transcript
        speech = [read_transcript(transcript, model, reads, len(paths))]
    # caption_many shares generation batches between videos; it yields one outcome per path, in
    # order (a VidcapError for a video that cannot be read), so each call below takes the next.
    storyboards: list[Path | None] = [*previews] if previews else [None] * len(paths)
    outcomes = zip(
        storyboards,
        captioner.caption_many(
            paths,
            dense=dense,
            segment_seconds=segment_seconds,
            beams=beams,
            thumbnails=bool(previews),
            transcripts=speech,
        ),
        strict=True,
    )

    def caption_one(path: str) -> CaptionedVideo:
        storyboard, result = next(outcomes)
        if isinstance(result, VidcapError):
            raise result
        if storyboard is not None and not result.captions:  # a dense model that found no event
            stderr.print(
                f"no events found in {escape(path)}; no storyboard for it", highlight=False
            )
        elif storyboard is not None:
            title = f"{Path(result.video).name} ({result.duration:.1f} s)"
            render_storyboard(result.thumbnails, result.captions, storyboard, title=title)
        return result

    def write(results: list[CaptionedVideo], failures: list[Failure]) -> None:
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

    for_each_video(paths, "captioned", caption_one, finish=write)
