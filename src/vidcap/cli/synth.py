"""``vidcap synth``: a synthetic captioned video corpus, for running and measuring vidcap offline."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vidcap.cli.console import progress_bar, stderr
from vidcap.errors import VidcapError


def synth_command(
    out: Annotated[Path, typer.Argument(help="Folder to write corpus.jsonl and videos/ into.")],
    videos: Annotated[int, typer.Option("--videos", "-n", min=1, help="Number of videos.")] = 200,
    seed: Annotated[
        int,
        typer.Option("--seed", min=0, help="Random seed: the same seed gives the same corpus."),
    ] = 0,
    noise: Annotated[
        bool, typer.Option("--noise", help="Add camera-like pixel noise and jitter.")
    ] = False,
    held_out_combos: Annotated[
        int,
        typer.Option(
            "--held-out-combos",
            min=0,
            help="Keep this many (colour, shape, action) combinations out of the train split.",
        ),
    ] = 0,
    untrimmed: Annotated[
        bool,
        typer.Option(
            "--untrimmed",
            help="Untrimmed videos for dense captioning: 30 s to 3 min, 3-10 events of 2-30 s "
            "with still gaps between them (same as --untrimmed-share 1).",
        ),
    ] = False,
    untrimmed_share: Annotated[
        float | None,
        typer.Option(
            "--untrimmed-share",
            min=0.0,
            max=1.0,
            help="Share of the videos (in each split) that are untrimmed; the rest are short "
            "(default 0; 1 with --untrimmed).",
            show_default=False,
        ),
    ] = None,
    untrimmed_duration: Annotated[
        tuple[float, float],
        typer.Option(
            "--untrimmed-duration",
            metavar="MIN MAX",
            help="Shortest and longest untrimmed video, in seconds (at least 8).",
        ),
    ] = (30.0, 180.0),
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes rendering videos.")
    ] = 2,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Overwrite a corpus.jsonl in OUT that vidcap synth did not write."
        ),
    ] = False,
) -> None:
    """Write a synthetic captioned video corpus (corpus.jsonl + videos/) for offline runs.

    Coloured shapes move, grow, shrink, rotate or bounce; each event has paraphrased captions, and
    each video a summary, noisy narration and question/answer pairs. Untrimmed videos
    (--untrimmed, --untrimmed-share) have several events, each a corpus segment, with gaps
    between them in which nothing moves.
    """
    from vidcap.synth.plan import SynthConfig
    from vidcap.synth.records import generate_corpus

    if (out / "corpus.jsonl").exists() and not (out / "synth.json").exists() and not force:
        raise VidcapError(
            f"{out / 'corpus.jsonl'} exists and was not written by vidcap synth; "
            "choose another folder or pass --force to overwrite it."
        )
    if untrimmed and untrimmed_share not in (None, 1.0):
        raise typer.BadParameter(
            "--untrimmed makes every video untrimmed; drop it to use --untrimmed-share.",
            param_hint="'--untrimmed-share'",
        )
    share = 1.0 if untrimmed else (untrimmed_share or 0.0)
    config = SynthConfig(
        videos=videos,
        seed=seed,
        noise=noise,
        held_out_combos=held_out_combos,
        workers=workers,
        untrimmed=share,
        untrimmed_duration=(float(untrimmed_duration[0]), float(untrimmed_duration[1])),
    )
    started = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("rendering videos", total=videos)
        records = generate_corpus(
            out, config, progress=lambda done: progress.update(task, completed=done)
        )
    elapsed = time.perf_counter() - started

    splits = Counter(r.split for r in records)
    table = Table(title=f"synthetic corpus in {out}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row(
        "videos",
        f"{len(records)} (train {splits['train']}, val {splits['val']}, test {splits['test']})",
    )
    table.add_row("segments", str(sum(len(r.segments) for r in records)))
    long = [r for r in records if (r.meta or {}).get("untrimmed")]
    if long:
        table.add_row(
            "untrimmed videos",
            f"{len(long)} ({sum(len(r.segments) for r in long)} events, "
            f"{min(r.duration or 0 for r in long):.0f}-{max(r.duration or 0 for r in long):.0f} s)",
        )
    table.add_row("hours of video", f"{sum(r.duration or 0 for r in records) / 3600:.3f}")
    table.add_row("corpus", str(out / "corpus.jsonl"))
    table.add_row("time", f"{elapsed:.1f} s")
    stderr.print(table)
