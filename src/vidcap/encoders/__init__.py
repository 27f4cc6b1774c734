"""Clip encoders: one feature vector per clip, found by name in a registry (see ``base``).

The names below come from :mod:`vidcap.encoders.base`, which needs torch; they are loaded when
first used, so that importing :mod:`vidcap.encoders.dtypes` (the command line's choices) does not
load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidcap.encoders.base import (
        ClipEncoder,
        EncoderFamily,
        EncoderOptions,
        build_encoder,
        families,
        register,
    )

__all__ = [
    "ClipEncoder",
    "EncoderFamily",
    "EncoderOptions",
    "build_encoder",
    "families",
    "register",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vidcap.encoders import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
