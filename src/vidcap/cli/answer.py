"""``vidcap answer`` and ``vidcap summarize``: question answering and paragraph summaries for raw
videos, from bundles finetuned with ``--task qa`` / ``--task summary``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape

from vidcap.cli.caption import read_video_paths
from vidcap.cli.console import print_error, progress_bar
from vidcap.errors import VidcapError


def answer_command(
    video: str = typer.Argument(..., help="A video file.", show_default=False),
    questions: list[str] = typer.Option(
        ...,
        "--question",
        "-q",
        help="A question (repeat for several; - reads questions from stdin, one per line).",
        show_default=False,
    ),
    model: Path = typer.Option(
        ..., "--model", "-m", help="A bundle from `vidcap finetune --task qa`.", show_default=False
    ),
    beams: int | None = typer.Option(
        None, "--beams", min=1, help="Beam width (default: the bundle's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print question/answer pairs as JSON."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Answer questions about a video; one answer per line, in the questions' order."""
    from vidcap.captioner import Captioner

    asked: list[str] = []
    for question in questions:
        if question == "-":
            asked += [line.strip() for line in sys.stdin if line.strip()]
        elif question.strip():
            asked.append(question.strip())
    if not asked:
        raise VidcapError("no questions given (stdin was empty).")
    captioner = Captioner.load(model, device=device, task="qa")
    answers = captioner.answer(video, asked, beams=beams)
    if as_json:
        pairs = [{"question": q, "answer": a} for q, a in zip(asked, answers, strict=True)]
        sys.stdout.write(json.dumps({"video": video, "answers": pairs}, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("".join(f"{a}\n" for a in answers))


def summarize_command(
    videos: list[str] = typer.Argument(
        ..., help="Video files; - reads paths from stdin, one per line.", show_default=False
    ),
    model: Path = typer.Option(
        ...,
        "--model",
        "-m",
        help="A bundle from `vidcap finetune --task summary`.",
        show_default=False,
    ),
    beams: int | None = typer.Option(
        None, "--beams", min=1, help="Beam width (default: the bundle's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per video (jsonl)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """One paragraph per video, across its events. A video that cannot be read prints an error and
    the others go on; the exit status is 1 if any failed."""
    from vidcap.captioner import Captioner

    paths = read_video_paths(videos)
    captioner = Captioner.load(model, device=device, task="summary")
    failed = 0
    with progress_bar() as progress:
        task = progress.add_task("summarizing", total=len(paths))
        for path in paths:
            try:
                summary = captioner.summarize(path, beams=beams)
            except VidcapError as error:
                failed += 1
                progress.console.print(
                    f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True
                )
            else:
                if as_json:
                    line = json.dumps({"video": path, "summary": summary}, ensure_ascii=False)
                else:
                    line = f"{path}\t{summary}" if len(paths) > 1 else summary
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            progress.advance(task)
    if failed:
        print_error(f"{failed} of {len(paths)} videos could not be summarized.")
        raise typer.Exit(1)
