"""What the per-video commands (``caption``, ``answer``, ``summarize``, ``classify``) share: their
options, declared once, the video paths (``-`` reads them from stdin) and the loop over the videos,
in which a video that cannot be read is reported and the others go on."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from vidcap.cli.console import print_error, progress_bar
from vidcap.cli.options import Device
from vidcap.errors import VidcapError

__all__ = [
    "Beams",
    "Device",
    "Failure",
    "Model",
    "Videos",
    "for_each_video",
    "read_video_paths",
]

T = TypeVar("T")

Videos = Annotated[
    list[str],
    typer.Argument(help="Video files; - reads paths from stdin, one per line.", show_default=False),
]
Model = Annotated[
    Path,
    typer.Option(
        "--model",
        "-m",
        help="A bundle written by `vidcap finetune` (--task caption or dense for `caption`, qa for "
        "`answer`, summary or dense for `summarize`).",
        show_default=False,
    ),
]
Beams = Annotated[
    int | None,
    typer.Option(
        "--beams",
        min=1,
        help="Beam width (default: the bundle's, set by `vidcap finetune --beams`).",
    ),
]

Failure = tuple[str, str]
"""A video that could not be processed, and why: ``(path, error sentence)``."""


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


def for_each_video(
    paths: Sequence[str],
    verb: str,
    work: Callable[[str], T],
    finish: Callable[[list[T], list[Failure]], None] | None = None,
) -> list[T]:
    """Run ``work(path)`` on each video in turn, under a progress bar, and return the results.

    A video whose ``work`` raises :class:`~vidcap.errors.VidcapError` is reported on stderr
    (``error: …``) and the others go on. After the last video, ``finish(results, failures)`` writes
    what needs every result. Then, if any video failed, ``N of M videos could not be <verb>.`` is
    printed and the command exits with status 1: the results are returned only when all worked.

    Args:
        paths: the videos, in order.
        verb: what ``work`` does, as a past participle (``captioned``): the progress bar's label
            and the end of the failure sentence.
        work: one video's work; it may print its result as soon as it has it.
        finish: called once, after the last video, with the results and the failures.
    """
    results: list[T] = []
    failures: list[Failure] = []
    with progress_bar() as progress:
        task = progress.add_task(verb, total=len(paths))
        for path in paths:
            try:
                results.append(work(path))
            except VidcapError as error:
                failures.append((path, str(error)))
                print_error(str(error))
            progress.advance(task)
    if finish is not None:
        finish(results, failures)
    if failures:
        print_error(f"{len(failures)} of {len(paths)} videos could not be {verb}.")
        raise typer.Exit(1)
    return results
