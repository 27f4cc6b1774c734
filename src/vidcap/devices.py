"""The one place a ``--device`` value becomes a torch device."""

from __future__ import annotations

import os

import torch

from vidcap.errors import VidcapError

_UNKNOWN = "--device must be auto, cpu, cuda, cuda:N or mps, got {name!r}."


def check_device_name(name: str) -> None:
    """Refuse a ``--device`` value that names no device (before any work; availability is checked
    when the device is resolved)."""
    if name == "auto":
        return
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise VidcapError(_UNKNOWN.format(name=name)) from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise VidcapError(_UNKNOWN.format(name=name))


def resolve_device(name: str = "auto", world_size: int = 1, rank: int = 0) -> torch.device:
    """The torch device for a ``--device`` value, or a sentence saying why it cannot be used.

    ``auto`` is the GPU when torch sees one, else the CPU. Under several processes (``world_size``
    above 1) a plain ``cuda`` or ``auto`` means this process's own GPU, ``cuda:LOCAL_RANK``.

    Raises:
        VidcapError: an unknown name, or a device this machine does not have.
    """
    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VidcapError(
            f"--device {name} was asked for, but torch sees no CUDA GPU here; use --device cpu."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise VidcapError(f"--device {name} was asked for, but MPS is not available here.")
    if device.type == "cuda" and device.index is None and world_size > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return device
