"""Loading the service's model: the one call that says how its videos are decoded."""

from __future__ import annotations

from pathlib import Path

from vidcap.inference.captioner import Captioner


def load_model(folder: str | Path, device: str = "auto", timeout: float | None = None) -> Captioner:
    """The bundle, for whatever task it was finetuned for, with each video decoded in a killable
    worker (:mod:`vidcap.video.worker`) that is stopped after ``timeout`` seconds without
    delivering frames (a :class:`~vidcap.video.errors.DecodeTimeoutError`, answered 504); None
    keeps the default limit.
    """
    if timeout is None:
        return Captioner.load(folder, device=device)
    return Captioner.load(folder, device=device, timeout=timeout)
