"""Terminal output shared by the commands: stderr for progress and errors, stdout for results."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from vidcap.distributed import Processes
from vidcap.errors import VidcapWarning
from vidcap.stages.base import StageResult

# Results go to stdout so they can be piped; everything for the human (progress, tables, errors)
# goes to stderr.
stdout = Console(soft_wrap=True)
stderr = Console(stderr=True)


def print_error(message: str) -> None:
    """Print one error sentence on stderr."""
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_warning(message: str) -> None:
    """Print one warning sentence on stderr: the command goes on."""
    stderr.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def show_vidcap_warnings() -> None:
    """Print the warnings vidcap's layers raise (:class:`VidcapWarning`) as ``warning:`` lines,
    not as Python's ``file:line: VidcapWarning: ...``; other libraries' warnings are left as they
    are."""
    shown_by_python = warnings.showwarning
    if getattr(shown_by_python, "vidcap", False):  # installed by an earlier command already
        return

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, VidcapWarning):
            print_warning(str(message))
        else:
            shown_by_python(message, category, filename, lineno, file, line)

    show.vidcap = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def progress_bar(*extra_columns: TextColumn, processes: Processes | None = None) -> Progress:
    """A progress bar on stderr with count, elapsed and remaining time (hidden when not a TTY).

    With ``processes``, only the main one shows it: the others share the same work, and their bars
    would be drawn over the main one's.
    """
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
        disable=not stderr.is_terminal or (processes is not None and not processes.is_main),
        # Results written to a terminal's stdout while the bar is live are printed above it (on
        # stderr's console: the same screen). Results going to a file or a pipe go there as they
        # are: redirected, they would land on the terminal instead.
        redirect_stdout=sys.stdout.isatty(),
    )


class StageProgress:
    """The progress bar of an item stage (extract, encode): one step a video, its total set once
    the stage has counted the videos left to do."""

    def __init__(self, progress: Progress, verb: str, **fields: str) -> None:
        self.progress = progress
        self.verb = verb
        self.task = progress.add_task(verb, total=None, **fields)

    @property
    def elapsed(self) -> float:
        """Seconds since the bar started (never 0, so it can divide)."""
        return self.progress.tasks[0].elapsed or 1e-9

    def on_start(self, to_do: int, skipped: int) -> None:
        """The stage's ``on_start`` callback: how many videos it will do, how many were done."""
        self.progress.update(
            self.task, total=to_do, description=f"{self.verb} ({skipped} already done)"
        )

    def advance(self, **fields: str) -> None:
        """One more video done (``fields``: new values for the bar's extra columns)."""
        self.progress.update(self.task, advance=1, **fields)

    def show(self, **fields: str) -> None:
        """New values for the bar's extra columns, within a video (progress on long ones)."""
        self.progress.update(self.task, **fields)


@contextmanager
def stage_progress(
    verb: str, processes: Processes, *extra_columns: TextColumn, **fields: str
) -> Iterator[StageProgress]:
    """A :func:`progress_bar` for an item stage, shown by the main process of ``processes`` only;
    ``fields`` start the extra columns."""
    with progress_bar(*extra_columns, processes=processes) as progress:
        yield StageProgress(progress, verb, **fields)


def finish_stage(
    result: StageResult, processes: Processes, as_json: bool, allow_failures: bool = False
) -> None:
    """Show a stage's outcome and exit 1 when items failed (unless failures are allowed); on the
    main process only (the others ran their share of the same stage)."""
    if not processes.is_main:
        return
    print_stage_result(result, as_json=as_json)
    if result.failures and not allow_failures:
        raise typer.Exit(1)


def print_stage_result(result: StageResult, as_json: bool = False, max_failures: int = 20) -> None:
    """Show a stage's outcome: a table on stderr (with failure reasons), or JSON on stdout."""
    if as_json:
        stdout.print_json(
            json.dumps(
                {
                    "stage": result.stage,
                    "out_dir": str(result.out_dir),
                    "up_to_date": result.up_to_date,
                    "counts": result.counts,
                    "failures": [{"id": i, "error": e} for i, e in result.failures],
                    "wall_time_s": round(result.wall_time_s, 3),
                    **result.details,
                    **({"note": result.note} if result.note else {}),
                },
                default=str,
            )
        )
        return
    if result.up_to_date:
        stderr.print(
            f"{result.out_dir} is up to date (same inputs and settings); nothing to do. "
            "Use --force to redo it."
        )
    table = Table(title=f"vidcap {result.stage} → {result.out_dir}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    # "skipped": the items this run found done already, which "ok" counts too (20 ok, 5 failed,
    # 20 skipped read as 45 of 25 videos).
    labels = {"ok": "ok", "skipped": "of them done before", "failed": "failed"}
    for key, label in labels.items():
        style = "red" if key == "failed" and result.counts.get(key) else ""
        table.add_row(
            label,
            f"[{style}]{result.counts.get(key, 0)}[/]" if style else str(result.counts.get(key, 0)),
        )
    warnings = result.details.get("warnings", [])
    for key, value in result.details.items():
        if key != "warnings":  # printed below, a line each
            table.add_row(key.replace("_", " "), str(value))
    table.add_row("time", f"{result.wall_time_s:.1f} s")
    stderr.print(table)
    for sentence in warnings:
        print_warning(sentence)
    more = result.details.get("videos with warnings", 0) - len(warnings)
    if more > 0:
        print_warning(f"and {more} more videos: each one's warnings are in its index.jsonl line.")
    if result.failures:
        failures = Table(title="failures", show_header=True, header_style="bold red")
        failures.add_column("id", overflow="fold")
        failures.add_column("reason", overflow="fold")
        for item_id, error in result.failures[:max_failures]:
            failures.add_row(escape(item_id), escape(error))
        if len(result.failures) > max_failures:
            failures.add_row("…", f"{len(result.failures) - max_failures} more in index.jsonl")
        stderr.print(failures)
    if result.note:
        stderr.print(escape(result.note), highlight=False, soft_wrap=True)
