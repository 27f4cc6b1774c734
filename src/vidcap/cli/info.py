"""``vidcap info``: what this installation can use (libraries, decoders, GPUs, Java), or, with
``--model``, a model's card."""

from __future__ import annotations

import json
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from vidcap import __version__
from vidcap.cli.console import stderr, stdout


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except Exception:
        return False
    return True


def collect_info() -> dict[str, Any]:
    """Versions of vidcap's dependencies, video backends, CUDA devices and Java."""
    import torch

    cuda_devices = [
        torch.cuda.get_device_name(i)
        for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)
    ]
    return {
        "vidcap": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "accelerate": _version("accelerate"),
        "tokenizers": _version("tokenizers"),
        "safetensors": _version("safetensors"),
        "numpy": _version("numpy"),
        "decord": _version("decord") if _importable("decord") else None,
        "pyav": _version("av") if _importable("av") else None,
        "opencv": _version("opencv-python-headless") or _version("opencv-python"),
        # None also where it is installed but built for another torch (it does not import then).
        "torchcodec": _version("torchcodec") if _importable("torchcodec.decoders") else None,
        "cuda_available": bool(cuda_devices),
        "cuda_devices": cuda_devices,
        "java": shutil.which("java"),
    }


def print_model_card(model: Path, as_json: bool = False) -> None:
    """Print the model card (``README.md``) of a bundle or pretrain folder on stdout; for a model
    written before vidcap wrote cards, one sentence on stderr says so. ``as_json``: one object
    with the card's metadata and text."""
    from vidcap.bundle import BUNDLE_INFO, FINAL, Bundle
    from vidcap.card import CARD, card_metadata, read_card

    pretrain = not (model / BUNDLE_INFO).is_file() and (model / FINAL / BUNDLE_INFO).is_file()
    bundle = Bundle.load(model, "pretrain" if pretrain else "finetune")
    card = read_card(bundle.folder)
    if as_json:
        metadata = None if card is None else card_metadata(card)
        typer.echo(json.dumps({"model": str(bundle.folder), "metadata": metadata, "card": card}))
    elif card is not None:
        sys.stdout.write(card)
    if card is None:
        how = (
            f"`vidcap evaluate {model}` writes one, with its scores"
            if bundle.stage == "finetune"
            else f"rerun `vidcap {bundle.stage} --force` to write one"
        )
        stderr.print(
            escape(f"{bundle.folder} has no model card ({CARD}): an older vidcap wrote it; {how}."),
            highlight=False,
            soft_wrap=True,
        )


def info_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="Print this model's card instead (README.md: what it is, what it was trained on, "
            "its scores and limits): a `vidcap finetune` bundle or a `vidcap pretrain` folder.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show versions of Python and the libraries vidcap uses, video decoders, GPUs and Java.

    With --model, print that model's card instead.
    """
    if model is not None:
        print_model_card(model, as_json)
        return
    info = collect_info()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    table = Table(title=f"vidcap {info['vidcap']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in info.items():
        if key in ("vidcap", "cuda_available"):
            continue
        if key == "cuda_devices":
            value = ", ".join(value) if value else "none (CPU only)"
        elif key == "java":
            value = value or "not found (METEOR will be skipped)"
        elif value is None:
            value = "not installed"
        table.add_row(key, str(value))
    stdout.print(table)
