"""``vidcap data``: import public datasets and subtitle folders into a corpus, and count a corpus."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vidcap.cli.console import stderr, stdout
from vidcap.cli.help import VidcapCommand, VidcapGroup
from vidcap.corpus import Split
from vidcap.datasets.importers import FORMATS
from vidcap.datasets.importers.common import MAX_EXAMPLES
from vidcap.errors import VidcapError

if TYPE_CHECKING:
    from vidcap.datasets.importers import ImportReport

FORMAT_NAMES = tuple(FORMATS)

app = typer.Typer(
    cls=VidcapGroup,
    no_args_is_help=True,
    help="Import public datasets or subtitles into a corpus (`import`), or count a corpus (`stats`).\n\n"
    "`vidcap data import FORMAT ANNOTATIONS... --videos DIR --out corpus.jsonl` turns a public "
    "dataset's annotation files (YouCook2, MSR-VTT, ActivityNet Captions, VATEX, HowTo100M ASR) or "
    "a folder of SRT / WebVTT subtitles into a corpus; `vidcap data stats corpus.jsonl` counts "
    "what a corpus holds. See docs/datasets.md.",
)

# An Enum built from FORMATS (the one list of formats, with the files each reads), so that --help
# lists the formats and a misspelt one is a usage error.
ImportFormat = Enum("ImportFormat", {name: name for name in FORMAT_NAMES}, type=str)


@app.command("import", cls=VidcapCommand)
def import_command(
    fmt: Annotated[
        ImportFormat,
        typer.Argument(
            metavar="FORMAT", help="The annotation format (the list above).", show_default=False
        ),
    ],
    annotations: Annotated[
        list[Path],
        typer.Argument(
            metavar="ANNOTATIONS",
            help="The dataset's annotation files, as published (srt / vtt: files or folders).",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The corpus.jsonl to write.")],
    videos: Annotated[
        Path | None,
        typer.Option(
            "--videos",
            help="Folder searched recursively for each video by id (file name without extension). "
            "srt / vtt: defaults to the subtitle folders.",
        ),
    ] = None,
    split: Annotated[
        Split | None,
        typer.Option(
            "--split",
            help="The split of every video, instead of the one the source gives "
            "(needed when a file name does not say it).",
        ),
    ] = None,
    keep_missing: Annotated[
        bool,
        typer.Option(
            "--keep-missing",
            help="Keep videos whose file is not found (at VIDEOS/<id>.mp4, to download later).",
        ),
    ] = False,
    merge: Annotated[
        Path | None,
        typer.Option(
            "--merge",
            help="howto100m / srt / vtt: add the transcripts to this existing corpus's records "
            "(by id; replacing old transcripts); other ids become new records.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
) -> None:
    """Turn a dataset's annotation files into a corpus.jsonl, finding each video under --videos.

    Formats, each read as its project publishes it (docs/datasets.md shows the shapes):
    youcook2 (youcookii_annotations_trainval.json); msrvtt (train_val_videodatainfo.json,
    test_videodatainfo.json); activitynet (train.json, val_1.json, val_2.json); vatex
    (vatex_training_v1.0.json, vatex_validation_v1.0.json, vatex_public_test_english_v1.1.json);
    howto100m (raw_caption.json or caption.json: ASR transcripts); srt / vtt (folders of subtitle
    files named by video id: transcripts).

    Videos are found by file name (the id, any common video extension) anywhere under --videos.
    Missing ones are reported and left out unless --keep-missing; empty captions, uncaptioned
    segments and segments outside their video are dropped and reported. Malformed files stop the
    import with the file and the place that is wrong. The corpus is written atomically.
    """
    from vidcap.corpus import write_corpus
    from vidcap.datasets.importers import import_corpus

    if out.is_dir():
        raise VidcapError(f"--out {out} is a folder; give the corpus file to write (corpus.jsonl).")
    same_as_merge = merge is not None and out.resolve() == merge.resolve()
    if out.exists() and not force and not same_as_merge:
        raise VidcapError(f"{out} exists; pass --force to overwrite it.")
    with stderr.status("importing") as status:
        records, report = import_corpus(
            fmt.value,
            annotations,
            videos,
            split=split,
            keep_missing=keep_missing,
            merge=merge,
            on_phase=lambda phase: status.update(phase),
        )
        status.update("writing the corpus")
        write_corpus(out, records)
    if as_json:
        stdout.print_json(json.dumps({**report.to_json(), "out": str(out)}))
    else:
        _print_report(report, out)


def _print_report(report: ImportReport, out: Path) -> None:
    table = Table(title=f"vidcap data import {report.format} → {out}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    splits = ", ".join(f"{s} {n}" for s, n in report.splits.items())
    table.add_row("videos", f"{report.videos} ({splits})")
    table.add_row("segments", str(report.segments))
    table.add_row("captions", str(report.captions))
    if report.transcript_lines:
        table.add_row("transcript lines", str(report.transcript_lines))
    if report.merged_into is not None:
        table.add_row("merged into", escape(str(report.merged_into)))
        table.add_row("records given a transcript", str(report.updated))
        table.add_row("records added", str(report.added))
    if report.missing:
        first = ", ".join(report.missing[:MAX_EXAMPLES])
        more = ", …" if len(report.missing) > MAX_EXAMPLES else ""
        fate = "kept (--keep-missing)" if report.keep_missing else "left out"
        table.add_row(
            "[red]missing videos[/]", escape(f"{len(report.missing)} {fate}: {first}{more}")
        )
    else:
        table.add_row("missing videos", "0")
    stderr.print(table)
    if report.issues:
        issues = Table(title="dropped or changed", show_header=True, header_style="bold yellow")
        issues.add_column("what")
        issues.add_column("count", justify="right")
        issues.add_column(f"first {MAX_EXAMPLES}", overflow="fold")
        for kind, issue in report.issues.items():
            issues.add_row(kind, str(issue.count), escape("\n".join(issue.examples)))
        stderr.print(issues)


@app.command("stats", cls=VidcapCommand)
def stats_command(
    corpus: Annotated[
        Path, typer.Argument(metavar="CORPUS", help="A corpus.jsonl.", show_default=False)
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stats as JSON on stdout.")
    ] = False,
) -> None:
    """Count what a corpus holds: videos, segments, captions, vocabulary, hours, missing files.

    Also captions per segment (mean, min, max), split sizes and transcripts. Hours come from the
    corpus's durations only: videos without one are counted as of unknown duration, not probed.
    """
    from vidcap.corpus import read_corpus
    from vidcap.datasets.importers import corpus_stats

    stats = corpus_stats(read_corpus(corpus))
    if as_json:
        stdout.print_json(json.dumps(stats.to_json()))
        return
    table = Table(title=f"vidcap data stats {corpus}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("videos", str(stats.videos))
    table.add_row("splits", ", ".join(f"{s} {n}" for s, n in stats.splits.items()))
    table.add_row("segments", str(stats.segments))
    table.add_row("captions", str(stats.captions))
    per = stats.captions_per_segment
    table.add_row(
        "captions per segment",
        f"mean {per['mean']:g}, min {per['min']:g}, max {per['max']:g}" if per else "-",
    )
    table.add_row("vocabulary", f"{stats.vocabulary} words")
    if stats.unknown_duration == stats.videos:
        hours = "unknown (no video has a duration)"
    else:
        hours = f"{stats.hours:.3f}"
        if stats.unknown_duration:
            hours += f" + {stats.unknown_duration} videos of unknown duration"
    table.add_row("hours", hours)
    if stats.transcribed_videos:
        table.add_row(
            "transcripts", f"{stats.transcript_lines} lines in {stats.transcribed_videos} videos"
        )
    missing = stats.missing_videos
    if missing:
        first = ", ".join(missing[:MAX_EXAMPLES]) + (", …" if len(missing) > MAX_EXAMPLES else "")
        table.add_row("[red]missing video files[/]", escape(f"{len(missing)}: {first}"))
    else:
        table.add_row("missing video files", "0")
    stderr.print(table)
