"""``vidcap answer`` and ``vidcap summarize``: question answering and paragraph summaries for raw
videos, from bundles finetuned with ``--task qa`` / ``--task summary`` (or ``--task dense``: the
key moments with their times, and the story that tells them, :mod:`vidcap.output.story`)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from vidcap.cli.videos import (
    Beams,
    Device,
    Model,
    Timeout,
    Transcript,
    Videos,
    for_each_video,
    read_transcript,
    read_video_paths,
)
from vidcap.errors import VidcapError
from vidcap.video.worker import VIDEO_TIMEOUT_S

if TYPE_CHECKING:
    from vidcap.inference.captioner import Captioner
    from vidcap.output.formats import TimedCaption


def answer_command(
    video: Annotated[str, typer.Argument(help="A video file.", show_default=False)],
    questions: Annotated[
        list[str],
        typer.Option(
            "--question",
            "-q",
            help="A question (repeat for several; - reads questions from stdin, one per line).",
            show_default=False,
        ),
    ],
    model: Model,
    beams: Beams = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print question/answer pairs as JSON.")
    ] = False,
    device: Device = "auto",
    timeout: Timeout = VIDEO_TIMEOUT_S,
) -> None:
    """Answer questions about a video; one answer per line, in the questions' order."""
    from vidcap.inference.captioner import Captioner

    asked: list[str] = []
    for question in questions:
        if question == "-":
            asked += [line.strip() for line in sys.stdin if line.strip()]
        elif question.strip():
            asked.append(question.strip())
    if not asked:
        raise VidcapError("no questions given (stdin was empty).")
    captioner = Captioner.load(model, device=device, task="qa", timeout=timeout)
    answers = captioner.answer(video, asked, beams=beams)
    if as_json:
        pairs = [{"question": q, "answer": a} for q, a in zip(asked, answers, strict=True)]
        sys.stdout.write(json.dumps({"video": video, "answers": pairs}, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write("".join(f"{a}\n" for a in answers))


def summarize_command(
    videos: Videos,
    model: Model,
    beams: Beams = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per video (jsonl).")
    ] = False,
    transcript: Transcript = None,
    device: Device = "auto",
    timeout: Timeout = VIDEO_TIMEOUT_S,
) -> None:
    """Summarize each video in one paragraph, across its events.

    A video that cannot be read prints an error and the others go on; the exit status is 1 if any
    failed (--json gives it a line of its own, {"video": ..., "error": ...}). With several videos
    each line is `video<TAB>summary`.

    With a dense model (`vidcap finetune --task dense`): the key moments, each with its time, then
    the story, a paragraph telling them in order (repeats merged, joined by "Then", "Meanwhile,",
    "Finally,"); --json adds `moments` to each object.
    """
    from vidcap.inference.captioner import Captioner

    paths = read_video_paths(videos)
    captioner = Captioner.load(model, device=device, task=("summary", "dense"), timeout=timeout)
    speech: list[TimedCaption] = []
    if transcript is not None:
        speech = read_transcript(transcript, model, captioner.inputs.with_transcript, len(paths))
    if captioner.is_dense:
        _tell_stories(captioner, paths, beams, as_json, speech)
        return

    def summarize_one(path: str) -> str:
        summary = captioner.summarize(path, " ".join(t.text for t in speech), beams=beams)
        if as_json:
            line = json.dumps({"video": path, "summary": summary}, ensure_ascii=False)
        else:
            line = f"{path}\t{summary}" if len(paths) > 1 else summary
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return summary

    for_each_video(paths, "summarized", summarize_one, failed=_json_failure if as_json else None)


def _tell_stories(
    captioner: Captioner,
    paths: list[str],
    beams: int | None,
    as_json: bool,
    speech: list[TimedCaption],
) -> None:
    """``vidcap summarize`` with a dense model: each video's key moments and story."""
    from vidcap.output.story import tell_story

    def tell_one(path: str) -> str:
        result = captioner.caption(path, beams=beams, transcript=speech)
        story = tell_story(result.captions)
        if as_json:
            obj = {"video": path, "duration": round(result.duration * 1000) / 1000}
            text = json.dumps({**obj, **story.to_json()}, ensure_ascii=False) + "\n"
        else:
            text = (f"{path}\n" if len(paths) > 1 else "") + story.to_text()
            text += "\n" if len(paths) > 1 else ""
        sys.stdout.write(text)
        sys.stdout.flush()
        return story.paragraph

    for_each_video(paths, "summarized", tell_one, failed=_json_failure if as_json else None)


def _json_failure(video: str, error: str) -> None:
    """--json: a video that could not be summarized, in its place, as caption's jsonl records
    it (a consumer tells "failed" from "not given" without reading stderr)."""
    from vidcap.output.formats import failure_record

    sys.stdout.write(json.dumps(failure_record(video, error), ensure_ascii=False) + "\n")
    sys.stdout.flush()
