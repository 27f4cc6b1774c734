"""Loading the service's model: the one call that says how its videos are decoded."""

from __future__ import annotations

import inspect
from pathlib import Path

from vidcap.inference.captioner import Captioner


def load_model(folder: str | Path, device: str = "auto", timeout: float | None = None) -> Captioner:
    """The bundle, for whatever task it was finetuned for, with each video's decode limited to
    ``timeout`` seconds (a :class:`~vidcap.video.errors.DecodeTimeoutError`, answered 504).

    The time limit is passed only where ``Captioner.load`` takes one (decoding in the killable
    worker, :mod:`vidcap.video.worker`); :func:`decode_timeout_supported` says whether it does.
    """
    if timeout is not None and decode_timeout_supported():
        return Captioner.load(folder, device=device, timeout=timeout)  # type: ignore[call-arg]
    return Captioner.load(folder, device=device)


def decode_timeout_supported() -> bool:
    """Whether ``Captioner.load`` takes a per-video decode ``timeout``."""
    return "timeout" in inspect.signature(Captioner.load).parameters
