"""``vidcap classify``: zero-shot classification of raw videos with a VideoBERT pretrain."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vidcap.cli.console import stderr, stdout
from vidcap.cli.options import AsJson
from vidcap.cli.videos import (
    Device,
    Failure,
    Timeout,
    Videos,
    for_each_video,
    read_video_paths,
)
from vidcap.errors import VidcapError
from vidcap.video.worker import VIDEO_TIMEOUT_S

if TYPE_CHECKING:
    from vidcap.inference.zeroshot import Classification


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
    videos: Videos,
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            "-m",
            help="A `vidcap pretrain --arch videobert` folder (or its final/).",
            show_default=False,
        ),
    ],
    template: Annotated[
        str,
        typer.Option(
            "--template",
            "-t",
            help='Text with [MASK] slots, e.g. "a [MASK] square" (one slot when ranking labels).',
            show_default=False,
        ),
    ],
    labels_file: Annotated[
        Path | None,
        typer.Option(
            "--labels-file",
            "-l",
            help="Candidate labels, one per line (# comments); without it the whole vocabulary is ranked.",
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option("--top", "-k", min=1, help="How many labels (or fills per slot) to show."),
    ] = 5,
    as_json: AsJson = False,
    device: Device = "auto",
    timeout: Timeout = VIDEO_TIMEOUT_S,
) -> None:
    """Fill the template's [MASK] slots from each video (zero-shot, VideoBERT's masked-LM head).

    With --labels-file the labels are ranked in the one slot (score: mean log-probability of the
    label's word pieces); without it, the most likely vocabulary words of every slot are listed.
    Tables go to stderr and `video<TAB>label1,label2,…` lines to stdout. A video that cannot be
    read prints an error and the others go on; the exit status is 1 if any failed.
    """
    from vidcap.inference.zeroshot import ZeroShotClassifier

    labels = read_labels(labels_file) if labels_file is not None else None
    paths = read_video_paths(videos)
    classifier = ZeroShotClassifier.load(model, device=device, timeout=timeout)
    # Refuse a template or labels that cannot work before any video is decoded.
    parsed = classifier.template(template)
    if labels is not None:
        if parsed.slots != 1:
            raise VidcapError(
                f"ranking --labels-file needs a template with exactly one [MASK] slot; {template!r} has {parsed.slots}."
            )
        classifier.label_pieces(labels)

    def classify_one(path: str) -> Classification:
        result = classifier.classify(path, template, labels=labels, top=top)
        stderr.print(_table(result, top))
        if not as_json:
            sys.stdout.write(_line(result, top))  # as is: Rich would expand the tabs
            sys.stdout.flush()
        return result

    results: list[Classification] = []  # for --json: one document of every video

    def print_json(failures: list[Failure]) -> None:
        from vidcap.output.formats import failure_record

        payload = {
            "model": str(classifier.folder),
            "template": template,
            "results": [r.to_json() for r in results],
            "failed": [failure_record(video, error) for video, error in failures],
        }
        stdout.print_json(json.dumps(payload))

    if as_json:
        for_each_video(paths, "classified", classify_one, results.append, print_json)
    else:
        for_each_video(paths, "classified", classify_one)
