"""The ``descriptor`` encoder family: the built-in clip descriptor, needing no downloaded weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields, replace
from typing import Any

import numpy as np
import torch

from vidcap.encoders.base import ClipEncoder, EncoderOptions, register
from vidcap.encoders.descriptor import ClipDescriptor, DescriptorConfig
from vidcap.errors import VidcapError


class DescriptorEncoder(ClipEncoder):
    """:class:`~vidcap.encoders.descriptor.ClipDescriptor` behind the encoder interface.

    All the work is CPU work, so it happens in :meth:`prepare` (in DataLoader workers, in
    parallel); :meth:`embed` only passes the vectors through.
    """

    name = "descriptor"

    def __init__(self, config: DescriptorConfig | None = None) -> None:
        self.descriptor = ClipDescriptor(config or DescriptorConfig())
        self.dim = self.descriptor.dim

    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.descriptor.encode_clip(clip))

    def decoder_step(self) -> Callable[[np.ndarray], np.ndarray]:
        """The descriptor itself (OpenCV and numpy): the decode child never imports torch."""
        return self.descriptor.encode_clip

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float()

    def describe(self) -> dict[str, Any]:
        config = asdict(self.descriptor.config)
        # Settings added in later versions are recorded only when they differ from what earlier
        # versions did, so the descriptions (and fingerprints) of earlier features and bundles
        # still match the descriptor that made them.
        for name, before in _ADDED_SETTINGS.items():
            if config[name] == before:
                del config[name]
        return {"name": self.name, "dim": self.dim, "config": config}


# Each setting added since the first version, with the value that reproduces the versions before
# it. ``downscale`` came with a new default ("pyramid"), so new descriptions record it.
_ADDED_SETTINGS = {"objects": 1, "downscale": "area"}


def parse_settings(argument: str) -> DescriptorConfig:
    """``"objects=2,work_side=128"`` → a :class:`DescriptorConfig` with those fields changed.

    Raises:
        VidcapError: an unknown field, or a value of the wrong kind or out of range.
    """
    defaults = DescriptorConfig()
    known = {f.name: type(getattr(defaults, f.name)) for f in fields(DescriptorConfig)}
    changes: dict[str, Any] = {}
    for item in argument.split(","):
        name, sep, text = (part.strip() for part in item.partition("="))
        if not sep or name not in known:
            raise VidcapError(
                f"descriptor settings are name=value pairs separated by commas, with names among "
                f"{', '.join(known)}; got {item!r} in 'descriptor:{argument}'."
            )
        kind = known[name]
        try:
            if kind is bool:
                if text.lower() not in ("true", "false"):
                    raise ValueError
                changes[name] = text.lower() == "true"
            else:
                changes[name] = kind(text)
        except ValueError:
            wanted = {bool: "true or false", int: "a whole number"}.get(kind, "a number")
            raise VidcapError(f"descriptor {name} must be {wanted}, got {text!r}.") from None
    try:
        return replace(defaults, **changes)
    except ValueError as error:
        raise VidcapError(str(error)) from None


def pin_settings(argument: str | None, recorded: dict[str, Any]) -> str | None:
    """The argument that rebuilds the descriptor ``recorded`` describes: an added setting the
    recording lacks (written before it existed) is pinned to what that version did, unless the
    argument sets it. So a bundle trained before ``downscale`` still gets area downscaling."""
    config = recorded.get("config")
    if not isinstance(config, dict):  # recorded before descriptions held settings
        config = {}
    given = {item.partition("=")[0].strip() for item in (argument or "").split(",")}
    pins = [
        f"{name}={before}"
        for name, before in _ADDED_SETTINGS.items()
        if name not in config and name not in given
    ]
    return ",".join([*([argument] if argument else []), *pins]) or None


@register(
    "descriptor",
    "built-in motion/object clip descriptor (OpenCV + numpy; no weights, runs anywhere)",
    examples=("descriptor", "descriptor:objects=2"),
    dims=f"{ClipDescriptor().dim} ({ClipDescriptor(DescriptorConfig(objects=2)).dim} with objects=2)",
    pin=pin_settings,
)
def build_descriptor(argument: str | None, options: EncoderOptions) -> ClipEncoder:
    """``descriptor`` or ``descriptor:name=value,...`` with :class:`DescriptorConfig` fields
    (e.g. ``descriptor:objects=2``); always runs on the CPU."""
    return DescriptorEncoder(parse_settings(argument) if argument else None)
