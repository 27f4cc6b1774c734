"""``vidcap quantize``: clip features → visual words (the third stage), and ``quantize inspect``."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from vidcap.cli.console import print_stage_result, stderr


class _FitByDefault(TyperGroup):
    """``vidcap quantize FEATURES_DIR ...`` runs ``fit``; ``vidcap quantize inspect ...`` inspects."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["fit", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_FitByDefault,
    no_args_is_help=True,
    help="Turn clip features into visual words by hierarchical k-means (VideoBERT: k=12, depth 4 → "
    "20,736 words). `vidcap quantize FEATURES_DIR --out WORDS_DIR` fits and assigns (the `fit` "
    "command); `vidcap quantize inspect WORDS_DIR --out words.png` shows what the words look like.",
)


@app.command("fit")
def fit_command(
    features_dir: Path = typer.Argument(
        ..., help="A folder written by `vidcap encode`.", show_default=False
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for the codebook and the words (a stage folder)."
    ),
    k: int = typer.Option(12, "--k", help="Clusters per tree node."),
    depth: int = typer.Option(4, "--depth", help="Tree levels: the vocabulary has k^depth words."),
    fit_samples: int | None = typer.Option(
        None, "--fit-samples", help="Fit on this many random train clips (default: all)."
    ),
    normalize: str = typer.Option(
        "l2", "--normalize", help="l2 or none: feature scaling before k-means."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Random seed (the result is deterministic for a seed)."
    ),
    device: str = typer.Option(
        "cpu", "--device", help="cpu, cuda, cuda:N or auto (a GPU k-means when available)."
    ),
    force: bool = typer.Option(False, "--force", help="Refit even if an up-to-date result exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Fit the word tree on the train split's clips and give every clip of every video its word."""
    from vidcap.stages.quantize import QuantizeConfig, run_quantize

    config = QuantizeConfig(
        k=k, depth=depth, fit_samples=fit_samples, normalize=normalize, seed=seed, device=device
    )
    with stderr.status("quantizing") as status:
        result = run_quantize(features_dir, out, config, force=force, on_phase=status.update)
    print_stage_result(result, as_json=as_json)


@app.command("inspect")
def inspect_command(
    words_dir: Path = typer.Argument(
        ..., help="A folder written by `vidcap quantize`.", show_default=False
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The picture to write (PNG)."),
    frames: Path | None = typer.Option(
        None, "--frames", help="The extract folder (default: the one the features came from)."
    ),
    top: int = typer.Option(
        20, "--top", min=1, help="How many of the most frequent words to show."
    ),
    per_word: int = typer.Option(
        8, "--per-word", min=1, help="Clips shown per word (those nearest its centroid)."
    ),
) -> None:
    """Draw the most frequent words, one row each, with thumbnails of the clips nearest each centroid."""
    from vidcap.stages.quantize import inspect_words

    path = inspect_words(words_dir, out, frames_dir=frames, top=top, per_word=per_word)
    stderr.print(f"wrote {path}")
