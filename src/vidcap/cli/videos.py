"""What the per-video commands (``caption``, ``answer``, ``summarize``, ``classify``) share: their
options, declared once, the video paths (``-`` reads them from stdin) and the loop over the videos,
in which a video that cannot be read is reported and the others go on."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from vidcap.cli.console import print_error, progress_bar
from vidcap.cli.options import Device, check_shard, parse_shard
from vidcap.corpus import walk_videos
from vidcap.distributed import Processes
from vidcap.errors import VidcapError

if TYPE_CHECKING:
    from vidcap.output.formats import TimedCaption

__all__ = [
    "Beams",
    "Device",
    "Failure",
    "Model",
    "Shard",
    "Timeout",
    "Transcript",
    "Videos",
    "for_each_video",
    "read_transcript",
    "read_video_paths",
    "select_shard",
]

T = TypeVar("T")

Videos = Annotated[
    list[str],
    typer.Argument(
        help="Video files, folders (searched for videos, as by encode), or - to read paths from "
        "stdin, one per line.",
        show_default=False,
    ),
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

Timeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.001,
        help="Seconds a video's decoder may go without delivering frames before it is killed; the "
        "next decoding library then tries, with a limit of its own, and when none is left that "
        "video fails (a hung or crashed decoder never stops the others; a long video that keeps "
        "delivering is never cut short).",
    ),
]


Shard = Annotated[
    str | None,
    typer.Option(
        "--shard",
        callback=check_shard,
        metavar="K/N",
        help="Take videos K, K+N, K+2N... of the list (0 <= K < N), e.g. one SLURM array task "
        "each; concatenate the shards' jsonl outputs to merge them.",
        show_default=False,
    ),
]

Transcript = Annotated[
    Path | None,
    typer.Option(
        "--transcript",
        help="The video's speech as SRT or WebVTT (.vtt), for a model trained --with-transcript "
        "(one video).",
        show_default=False,
    ),
]


def select_shard(paths: list[str], shard: str | None) -> list[str]:
    """Every N-th path from the K-th (``--shard K/N``); all of them without ``shard``."""
    parsed = parse_shard(shard)
    return paths if parsed is None else parsed.take(paths)


Failure = tuple[str, str]
"""A video that could not be processed, and why: ``(path, error sentence)``."""


def stdin_lines(processes: Processes | None = None) -> list[str]:
    """The non-blank lines of stdin, stripped (paths, one per line). Under a launcher the main
    process reads them and sends them to the others: the processes share one stdin, and whichever
    reads first gets all of it (under torchrun the others found it empty)."""
    processes = processes or Processes()
    return processes.from_main(
        lambda: [line.strip() for line in sys.stdin if line.strip()], "read the paths from stdin"
    )


def read_video_paths(videos: list[str], processes: Processes | None = None) -> list[str]:
    """The paths given, with ``-`` replaced by the paths read from stdin (one per line; under a
    launcher, by the main process for all) and a folder by the videos below it
    (:func:`~vidcap.corpus.walk_videos`, in sorted order)."""
    paths: list[str] = []
    for video in videos:
        if video == "-":
            paths += stdin_lines(processes)
        elif os.path.isdir(video):
            paths += [str(path) for path in sorted(walk_videos(Path(video)))]
        else:
            paths.append(video)
    if not paths:
        where = "stdin was empty" if "-" in videos else "the folders hold none"
        raise VidcapError(f"no videos given ({where}).")
    return paths


ROUND = 64
"""Under a launcher, how many videos each process captions between two exchanges of results
(an all-gather), after which the main process writes them in input order: what is held is one
round, not the run."""


def for_each_video(
    paths: Sequence[str],
    verb: str,
    work: Callable[[str], T],
    emit: Callable[[T], None] | None = None,
    finish: Callable[[list[Failure]], None] | None = None,
    processes: Processes | None = None,
    failed: Callable[[str, str], None] | None = None,
) -> None:
    """Run ``work(path)`` on each video in turn, under a progress bar, handing each result to
    ``emit`` in input order; no result is kept here.

    A video whose ``work`` raises :class:`~vidcap.errors.VidcapError` is reported on stderr
    (``error: …``) and the others go on. After the last video, ``finish(failures)`` closes what
    was written. Then, if any video failed, ``N of M videos could not be <verb>.`` is printed and
    the command exits with status 1.

    Args:
        paths: the videos, in order.
        verb: what ``work`` does, as a past participle (``captioned``): the progress bar's label
            and the end of the failure sentence.
        work: one video's work; it may print its result as soon as it has it.
        emit: called with each result, in the order of ``paths``.
        finish: called once, after the last video, with the failures.
        processes: under ``torchrun`` / ``accelerate launch``, each process runs ``work`` on
            its share (:meth:`Processes.shard` of ``paths``, in order); every :data:`ROUND`
            videos, the main process gathers the outcomes and reports and emits them, in the
            order of ``paths``. ``emit``, ``failed`` and ``finish`` run on the main process
            only. The results must pickle.
        failed: called with each failed video and its error sentence, in the same order as
            ``emit`` (a jsonl output records it in its place).
    """
    processes = processes or Processes()
    if processes.world_size > 1:
        _for_each_video_shared(paths, verb, work, emit, finish, processes, failed)
        return
    failures: list[Failure] = []
    with progress_bar() as progress:
        task = progress.add_task(verb, total=len(paths))
        for path in paths:
            try:
                result = work(path)
            except VidcapError as error:
                _fail(path, str(error), failures, failed)
            else:
                if emit is not None:
                    emit(result)
            progress.advance(task)
    _finish(len(paths), verb, failures, finish)


def _fail(
    path: str, error: str, failures: list[Failure], failed: Callable[[str, str], None] | None
) -> None:
    """A video that failed: its error on stderr, counted, and handed to ``failed``."""
    failures.append((path, error))
    print_error(error)
    if failed is not None:
        failed(path, error)


def _finish(
    n_videos: int,
    verb: str,
    failures: list[Failure],
    finish: Callable[[list[Failure]], None] | None,
) -> None:
    """After the last video: ``finish``, then the failure count and exit 1 if any failed."""
    if finish is not None:
        finish(failures)
    if failures:
        print_error(f"{len(failures)} of {n_videos} videos could not be {verb}.")
        raise typer.Exit(1)


def _for_each_video_shared(
    paths: Sequence[str],
    verb: str,
    work: Callable[[str], T],
    emit: Callable[[T], None] | None,
    finish: Callable[[list[Failure]], None] | None,
    processes: Processes,
    failed: Callable[[str, str], None] | None,
) -> None:
    """:func:`for_each_video` over several processes (see its ``processes``).

    Process r takes videos r, r+N, r+2N... Round k covers positions [k·ROUND, (k+1)·ROUND) of
    every process's share, so the videos gathered in a round are a contiguous run of ``paths``
    that the main process can write at once. Every process takes part in every round (the last
    ones with nothing left, when shares differ by one)."""
    mine = processes.shard(list(range(len(paths))))
    longest = -(-len(paths) // processes.world_size)  # the first process's share
    failures: list[Failure] = []
    with progress_bar(processes=processes) as progress:
        task = progress.add_task(f"{verb} (this process's share)", total=len(mine))
        for start in range(0, longest, ROUND):
            outcomes: dict[int, T | VidcapError] = {}
            for index in mine[start : start + ROUND]:
                try:
                    outcomes[index] = work(paths[index])
                except VidcapError as error:
                    outcomes[index] = VidcapError(str(error))  # pickles whatever its subclass
                progress.advance(task)
            gathered = processes.gather(outcomes)
            if not processes.is_main:
                continue
            merged = {index: outcome for part in gathered for index, outcome in part.items()}
            for index in sorted(merged):
                outcome = merged[index]
                if isinstance(outcome, VidcapError):
                    _fail(paths[index], str(outcome), failures, failed)
                elif emit is not None:
                    emit(outcome)
    if processes.is_main:
        _finish(len(paths), verb, failures, finish)


def read_transcript(
    path: Path, model: str | Path, reads_transcripts: bool, n_videos: int
) -> list[TimedCaption]:
    """The timed lines of ``--transcript`` (SRT, or WebVTT for a ``.vtt`` file), as
    :class:`~vidcap.output.formats.TimedCaption` s.

    Raises:
        VidcapError: several videos, a model that reads no transcript, or a file that is missing,
            not text or not a subtitle file (the parser's sentence, after the file's name).
    """
    from vidcap.output.formats import parse_srt, parse_vtt

    if n_videos != 1:
        raise VidcapError(f"--transcript belongs to one video, but {n_videos} were given.")
    if not reads_transcripts:
        raise VidcapError(
            f"{model} was finetuned without --with-transcript; it reads no transcript."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VidcapError(f"--transcript {path}: no such file.") from None
    except UnicodeDecodeError:
        raise VidcapError(f"--transcript {path} is not UTF-8 text (SRT or WebVTT).") from None
    except OSError as e:
        raise VidcapError(f"--transcript {path} cannot be read ({e.strerror or e}).") from None
    try:
        return parse_vtt(text) if path.suffix.lower() == ".vtt" else parse_srt(text)
    except VidcapError as e:
        raise VidcapError(f"--transcript {path}: {e}") from None
