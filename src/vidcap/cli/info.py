"""``vidcap info``: what this installation can use (libraries, decoders, GPUs, Java)."""

from __future__ import annotations

import json
import platform
import shutil
from importlib import metadata
from typing import Annotated, Any

import typer
from rich.table import Table

from vidcap import __version__
from vidcap.cli.console import stdout


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


def info_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
) -> None:
    """Show versions of Python and the libraries vidcap uses, video decoders, GPUs and Java."""
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
