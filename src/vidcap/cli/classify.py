"""``vidcap classify``: zero-shot classification of raw videos with a VideoBERT pretrain."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from vidcap.cli.caption import read_video_paths
from vidcap.cli.console import print_error, progress_bar, stdout
from vidcap.errors import VidcapError

if TYPE_CHECKING:
    from vidcap.zeroshot import Classification


def read_labels(path: Path) -> list[str]:
    """Labels from a file: one per line; blank lines and ``#`` comment lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise VidcapError(f"cannot read --labels-file {path}: {e.strerror or e}.") from None
    labels = [line.strip() for line in lines]
    labels = [label for label in labels if label and not label.startswith("#")]
    if not labels:
        raise VidcapError(f"--labels-file {path} has no labels (one per line).")
    return labels


def _table(result: Classification, top: int) -> Table:
    """A video's ranked labels, or its per-slot fills, as a table."""
    title = f"{escape(Path(result.video).name)}: {result.clips} clips, {result.start_s:.1f}-{result.end_s:.1f} s"
    table = Table(title=title)
    table.add_column("#", justify="right")
    if result.ranked is not None:
        table.add_column("label")
        table.add_column("score (mean log p)", justify="right")
        for rank, row in enumerate(result.ranked[:top], 1):
            table.add_row(str(rank), escape(row.label), f"{row.score:.3f}")
        return table
    for slot in range(len(result.slots)):
        table.add_column(f"[MASK] {slot + 1}")
    for rank in range(max(len(s) for s in result.slots)):
        cells = [
            f"{escape(s[rank].token)}  {s[rank].probability:.3f}" if rank < len(s) else ""
            for s in result.slots
        ]
        table.add_row(str(rank + 1), *cells)
    return table


def _line(result: Classification, top: int) -> str:
    """``video<TAB>label1,label2,…`` (or one tab-separated column of fills per slot)."""
    if result.ranked is not None:
        columns = [",".join(row.label for row in result.ranked[:top])]
    else:
        columns = [",".join(fill.token for fill in slot) for slot in result.slots]
    return "\t".join([result.video, *columns]) + "\n"


def classify_command(
    videos: list[str] = typer.Argument(
        ..., help="Video files; - reads paths from stdin, one per line.", show_default=False
    ),
    model: Path = typer.Option(
        ...,
        "--model",
        "-m",
        help="A `vidcap pretrain --arch videobert` folder (or its final/).",
        show_default=False,
    ),
    template: str = typer.Option(
        ...,
        "--template",
        "-t",
        help='Text with [MASK] slots, e.g. "a [MASK] square" (one slot when ranking labels).',
        show_default=False,
    ),
    labels_file: Path | None = typer.Option(
        None,
        "--labels-file",
        "-l",
        help="Candidate labels, one per line (# comments); without it the whole vocabulary is ranked.",
    ),
    top: int = typer.Option(5, "--top", "-k", help="How many labels (or fills per slot) to show."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Fill the template's [MASK] slots from each video (zero-shot, VideoBERT's masked-LM head).

    With --labels-file the labels are ranked in the one slot (score: mean log-probability of the
    label's word pieces); without it, the most likely vocabulary words of every slot are listed.
    Tables go to stderr and `video<TAB>label1,label2,…` lines to stdout. A video that cannot be
    read prints an error and the others go on; the exit status is 1 if any failed.
    """
    from vidcap.zeroshot import ZeroShotClassifier

    if top < 1:
        raise VidcapError(f"--top must be at least 1, got {top}.")
    labels = read_labels(labels_file) if labels_file is not None else None
    paths = read_video_paths(videos)
    classifier = ZeroShotClassifier.load(model, device=device)
    # Refuse a template or labels that cannot work before any video is decoded.
    parsed = classifier.template(template)
    if labels is not None:
        if parsed.slots != 1:
            raise VidcapError(
                f"ranking --labels-file needs a template with exactly one [MASK] slot; {template!r} has {parsed.slots}."
            )
        classifier.label_pieces(labels)
    results, failed = [], []
    with progress_bar() as progress:
        task = progress.add_task("classifying", total=len(paths))
        for path in paths:
            try:
                result = classifier.classify(path, template, labels=labels, top=top)
            except VidcapError as error:
                failed.append({"video": path, "error": str(error)})
                progress.console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
            else:
                results.append(result)
                progress.console.print(_table(result, top))
                if not as_json:
                    sys.stdout.write(_line(result, top))  # as is: Rich would expand the tabs
                    sys.stdout.flush()
            progress.advance(task)
    if as_json:
        payload = {
            "model": str(classifier.folder),
            "template": template,
            "results": [r.to_json() for r in results],
            "failed": failed,
        }
        stdout.print_json(json.dumps(payload))
    if failed:
        print_error(f"{len(failed)} of {len(paths)} videos could not be classified.")
        raise typer.Exit(1)
