"""The one place a ``--device`` value becomes a torch device, and how batches cross to and from it."""

from __future__ import annotations

import os
from collections.abc import Callable

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


def pins_memory(device: torch.device) -> bool:
    """Whether batches bound for ``device`` should sit in page-locked host memory: on a CUDA GPU,
    copies from it run beside the GPU's work instead of holding up the process that starts them."""
    return device.type == "cuda"


def start_host_copy(tensor: torch.Tensor) -> Callable[[], torch.Tensor]:
    """Start copying ``tensor`` to the CPU; the returned function waits for that copy alone.

    On a CUDA GPU the copy is queued behind the work that computes ``tensor`` and nothing waits
    yet, so the caller can queue the next batch before reading this one: the GPU is not left idle
    while the process fetches and launches work. (A plain ``.cpu()`` waits at once, and one made
    after the next batch is queued waits for that batch too.) Elsewhere the tensor moves to the
    CPU now (one already there is returned as it is).
    """
    if tensor.device.type != "cuda":
        host = tensor.cpu()
        return lambda: host
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record(torch.cuda.current_stream(tensor.device))

    def wait() -> torch.Tensor:
        copied.synchronize()
        return host

    return wait


def stack_for(device: torch.device, tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack(tensors)``, made in page-locked memory where ``device`` wants it
    (:func:`pins_memory`): the one copy stacking makes anyway, with no second one to pin it."""
    if not pins_memory(device):
        return torch.stack(tensors)
    first = tensors[0]
    out = torch.empty((len(tensors), *first.shape), dtype=first.dtype, pin_memory=True)
    return torch.stack(tensors, out=out)
