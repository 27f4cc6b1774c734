"""``vidcap caption``: captions for raw video files from a finetuned bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vidcap.artifacts import remove_abandoned_temp_files
from vidcap.cli.console import print_warning, stderr
from vidcap.cli.options import positive
from vidcap.cli.videos import (
    Beams,
    Device,
    Failure,
    Model,
    Shard,
    Timeout,
    Transcript,
    Videos,
    for_each_video,
    read_transcript,
    read_video_paths,
    select_shard,
)
from vidcap.distributed import current_processes
from vidcap.errors import VidcapError, as_path_error, as_resource_error
from vidcap.output.formats import Format
from vidcap.video.worker import VIDEO_TIMEOUT_S

_RERUN_CAPTION = (
    "rerun the same command: nothing half-written was left, and the captions are made again."
)


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
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write a report folder to watch the captions in a browser (opens from file://, no network).",
        ),
    ] = None,
    copy_videos: Annotated[
        bool,
        typer.Option(
            "--copy-videos",
            help="With --html: copy the videos into the report (as they are) instead of linking them.",
        ),
    ] = False,
    timeout: Timeout = VIDEO_TIMEOUT_S,
    shard: Shard = None,
) -> None:
    """Caption videos: extract → encode → quantize → generate in memory, with the bundle's settings.

    One caption per video by default; --dense gives timed captions (use --format srt or vtt for
    subtitle files). A dense model (`vidcap finetune --task dense`) gives each video's events with
    their times, in every format. A video that cannot be read prints an error and the others go
    on; the exit status is 1 if any failed (json and jsonl record it in its place as
    {"video": ..., "error": ...}). Each video is decoded in a killable process: a decoder
    that hangs past --timeout or crashes fails that video only. Ctrl-C exits 130.

    Many videos: --shard K/N captions every N-th (one shard per job; concatenate the jsonl
    outputs), or run under `torchrun` / `accelerate launch` to share them between processes,
    which write one output in input order.

    A video unlike the model's training videos (its clips far from every visual word) gets a
    warning line on stderr, and an "ood" object (score, threshold, flagged) in json/jsonl output;
    it is captioned all the same.
    """
    from vidcap.card import model_card
    from vidcap.inference.captioner import Captioner
    from vidcap.inference.ood import warning as ood_warning
    from vidcap.output.formats import SUBTITLE_FORMATS, CaptionsWriter
    from vidcap.output.html import (
        ReportVideo,
        ReportWriter,
        report_storyboard,
        storyboard_title,
    )
    from vidcap.output.storyboard import render_storyboard

    subtitles = fmt in SUBTITLE_FORMATS
    if subtitles:
        dense = True  # subtitles are timed captions
    processes = current_processes()
    given = read_video_paths(videos, processes)
    paths = select_shard(given, shard)
    # Settings that cannot work are refused before any video is decoded.
    timed = dense or segment_seconds is not None  # text output: timed lines for every video
    writer = CaptionsWriter(fmt, out, len(paths), timed)  # out None: stdout
    if out is not None:  # any job's videos: the others may still be reading theirs
        _refuse_overwriting(out, given, model)
    if (
        preview is not None
        and len(paths) == 1
        and not preview.is_dir()
        and preview.suffix.lower() != ".png"
    ):
        raise VidcapError(f"--preview {preview} must be a .png file.")
    if copy_videos and html is None:
        raise VidcapError("--copy-videos copies the videos into an --html report; pass --html DIR.")
    if html is not None and html.exists() and not html.is_dir():
        raise VidcapError(f"--html {html} is a file; the report is a folder.")
    previews = _preview_paths(preview, paths) if preview is not None else []
    # A killed earlier run may have left its temporary files beside the outputs (no stage folder
    # here cleans them up): remove those whose process is gone.
    targets = [out, out.parent] if out is not None else []
    for folder in {*targets, *(p.parent for p in previews)}:
        remove_abandoned_temp_files(folder)
    if processes.world_size > 1:  # each process on its own GPU, when there are GPUs
        from vidcap.devices import resolve_device

        device = str(resolve_device(device, processes.world_size, processes.rank))
    captioner = Captioner.load(model, device=device, task=("caption", "dense"), timeout=timeout)
    writer.renderer.timed = timed or captioner.is_dense  # a dense model's events are timed
    if captioner.is_dense and segment_seconds is not None:
        raise VidcapError(
            f"{model} is a dense model: it finds the events itself, so --segment-seconds does not apply."
        )
    speech = None
    if transcript is not None:  # a dense model's ASR input, as Vid2Seq's
        reads = captioner.is_dense and captioner.inputs.with_transcript
        speech = processes.shard([read_transcript(transcript, model, reads, len(paths))])
    synthetic = bool(((captioner.info.get("training") or {}).get("corpus") or {}).get("synthetic"))
    # caption_many shares generation batches between videos; it yields one outcome per path of
    # this process's share, in order (a VidcapError for a video that cannot be read), so each call
    # below takes the next.
    storyboards: list[Path | None] = [*previews] if previews else [None] * len(paths)
    outcomes = zip(
        processes.shard(storyboards),
        captioner.caption_many(
            processes.shard(paths),
            dense=dense,
            segment_seconds=segment_seconds,
            beams=beams,
            thumbnails=bool(previews) or html is not None,
            transcripts=speech,
        ),
        strict=True,
    )

    def caption_one(path: str) -> ReportVideo:
        storyboard, result = next(outcomes)
        if isinstance(result, VidcapError):
            raise result
        notices = [*result.warnings]  # a truncated download captioned from what it holds
        if result.ood is not None and result.ood.flagged:
            notices.append(ood_warning(path, result.ood, synthetic))
        for sentence in notices:  # on stderr, and in the report (above the video's player)
            print_warning(sentence)
        if storyboard is not None and not result.captions:  # a dense model that found no event
            stderr.print(
                f"no events found in {escape(path)}; no storyboard for it", highlight=False
            )
        elif storyboard is not None:
            title = storyboard_title(result)
            render_storyboard(result.thumbnails, result.captions, storyboard, title=title)
        # The report's storyboard is drawn now, so what waits for the report (and travels to
        # the main process under a launcher) is a PNG, not raw thumbnails. Without --html the
        # ReportVideo just carries the captions (emit() writes them from it).
        report_png = None
        if html is not None:
            try:
                report_png = report_storyboard(result, result.thumbnails)
            except VidcapError as error:  # the captions still count; the page has no picture
                stderr.print(
                    f"[bold yellow]warning:[/] no storyboard for {escape(path)} in the report: "
                    f"{escape(str(error))}",
                    highlight=False,
                    soft_wrap=True,
                )
        result.thumbnails = []
        return ReportVideo(result, report_png, notices)

    report = (
        ReportWriter(html, model_card(captioner.bundle), copy_videos) if html is not None else None
    )

    report_fault: list[str] = []  # why the report stopped, if it did: the captions go on

    def emit(item: ReportVideo) -> None:  # on the main process, in input order
        writer.add(item.result)
        if report is None or report_fault:
            return
        try:
            report.add(item)
        except OSError as error:  # a full disk, a video that cannot be copied
            reason = str(as_resource_error(error, html) or error)
            report_fault.append(reason)
            stderr.print(
                f"[bold yellow]warning:[/] the report in {escape(str(html))} stops here "
                f"({escape(reason)}); the captions go on.",
                highlight=False,
                soft_wrap=True,
            )

    def finish(failures: list[Failure]) -> None:
        for path in writer.close():
            stderr.print(f"wrote {escape(str(path))}", highlight=False)
        for path in previews:
            if path.exists():
                stderr.print(f"storyboard {escape(str(path))}", highlight=False)
        if report is None:
            return
        if report_fault:
            raise VidcapError(
                f"the report in {html} could not be written ({report_fault[0]}); the captions were. Rerun with --html once the cause is gone."
            )
        stderr.print(f"report {escape(str(report.close(failures)))}", highlight=False)

    try:
        with writer:  # left early (Ctrl-C, a fault): no half-written output stays
            for_each_video(
                paths,
                "captioned",
                caption_one,
                emit,
                finish,
                processes=processes,
                failed=writer.add_failure,
            )
    except OSError as error:  # writing a storyboard or the output: a full disk, a read-only one
        fault = as_resource_error(error, rerun=_RERUN_CAPTION) or as_path_error(error)
        if fault is None:
            raise
        raise fault from None


def _refuse_overwriting(out: Path, videos: list[str], model: Path) -> None:
    """Refuse an --out that is one of the videos being captioned, or a file of the model (a
    slip of the shell's completion would replace the video, or the bundle's vidcap.json, with
    captions)."""
    target = out.resolve()
    if target.is_relative_to(model.resolve()):
        raise VidcapError(f"--out {out} is inside the model {model}; write the captions elsewhere.")
    if any(Path(video).resolve() == target for video in videos):
        raise VidcapError(f"--out {out} is one of the videos to caption; give another file.")
