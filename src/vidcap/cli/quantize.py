"""``vidcap quantize``: clip features → visual words (the third stage), and ``quantize inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidcap.cli.console import print_stage_result, stderr
from vidcap.cli.help import VidcapCommand, VidcapGroup
from vidcap.cli.options import AsJson, check_device
from vidcap.quantize.settings import Normalization


class _FitByDefault(VidcapGroup):
    """``vidcap quantize FEATURES_DIR ...`` runs ``fit``; ``vidcap quantize inspect ...`` inspects."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["fit", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_FitByDefault,
    no_args_is_help=True,
    help="Turn clip features into visual words by hierarchical k-means (VideoBERT: k=12, depth 4).\n\n"
    "`vidcap quantize FEATURES_DIR --out WORDS_DIR` fits the word tree and gives every clip its "
    "word (the `fit` command); `vidcap quantize inspect WORDS_DIR --out words.png` shows what the "
    "words look like. VideoBERT's tree has 12^4 = 20,736 words.",
)


@app.command("fit", cls=VidcapCommand)
def fit_command(
    features_dir: Annotated[
        Path, typer.Argument(help="A folder written by `vidcap encode`.", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder for the codebook and the words (a stage folder)."),
    ],
    k: Annotated[int, typer.Option("--k", min=2, help="Clusters per tree node.")] = 12,
    depth: Annotated[
        int, typer.Option("--depth", min=1, help="Tree levels: the vocabulary has k^depth words.")
    ] = 4,
    fit_samples: Annotated[
        int | None,
        typer.Option(
            "--fit-samples", min=1, help="Fit on this many random train clips (default: all)."
        ),
    ] = None,
    normalize: Annotated[
        Normalization,
        typer.Option("--normalize", help="Feature scaling before k-means (l2: unit length)."),
    ] = "l2",
    seed: Annotated[
        int,
        typer.Option("--seed", min=0, help="Random seed (the result is deterministic for a seed)."),
    ] = 0,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            callback=check_device,
            help="cpu, cuda, cuda:N, mps or auto (a GPU k-means when there is a GPU).",
        ),
    ] = "cpu",
    force: Annotated[
        bool, typer.Option("--force", help="Refit even if an up-to-date result exists.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Fit the word tree on the train split's clips and give every clip of every video its word."""
    from vidcap.stages.quantize import QuantizeConfig, run_quantize

    config = QuantizeConfig(
        k=k, depth=depth, fit_samples=fit_samples, normalize=normalize, seed=seed, device=device
    )
    with stderr.status("quantizing") as status:
        result = run_quantize(features_dir, out, config, force=force, on_phase=status.update)
    print_stage_result(result, as_json=as_json)


@app.command("inspect", cls=VidcapCommand)
def inspect_command(
    words_dir: Annotated[
        Path, typer.Argument(help="A folder written by `vidcap quantize`.", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The picture to write (PNG).")],
    frames: Annotated[
        Path | None,
        typer.Option(
            "--frames", help="The extract folder (default: the one the features came from)."
        ),
    ] = None,
    top: Annotated[
        int, typer.Option("--top", min=1, help="How many of the most frequent words to show.")
    ] = 20,
    per_word: Annotated[
        int,
        typer.Option(
            "--per-word", min=1, help="Clips shown per word (those nearest its centroid)."
        ),
    ] = 8,
) -> None:
    """Draw the most frequent words, one row each, with the clips nearest each centroid."""
    from vidcap.stages.quantize import inspect_words

    path = inspect_words(words_dir, out, frames_dir=frames, top=top, per_word=per_word)
    stderr.print(f"wrote {path}")
