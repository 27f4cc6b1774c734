"""Clip encoders: one feature vector per clip, found by name in a registry (see ``base``)."""

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
