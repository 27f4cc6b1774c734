"""Running an encoder one batch ahead of reading its features back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np
import torch

from vidcap.devices import start_host_copy
from vidcap.encoders.base import ClipEncoder

Keys = TypeVar("Keys")


class OneBatchAhead(Generic[Keys]):
    """Feeds an encoder batches and hands back each batch's features once the next is queued.

    On a GPU, :meth:`~ClipEncoder.embed` only queues the work. Reading batch N's features after
    batch N+1 is queued keeps the GPU busy while this process fetches the next batch, moves it to
    the GPU and writes finished videos, instead of leaving it idle between batches. On the CPU the
    work is done by the time ``embed`` returns, and only the moment the features are handed back
    changes.

    ``Keys`` is whatever the caller needs to place a batch's rows (which clip of which video).
    """

    def __init__(self, encoder: ClipEncoder) -> None:
        self.encoder = encoder
        self._queued: tuple[Keys, Callable[[], torch.Tensor]] | None = None

    def submit(self, keys: Keys, batch: torch.Tensor) -> tuple[Keys, np.ndarray] | None:
        """Queue ``batch``; return the previous batch's ``(keys, features [B, dim] float32)``."""
        queued = (keys, start_host_copy(self.encoder.embed(batch).float()))
        done = self.collect()
        self._queued = queued
        return done

    def collect(self) -> tuple[Keys, np.ndarray] | None:
        """Wait for the queued batch, if any: its ``(keys, features)``."""
        if self._queued is None:
            return None
        keys, copied = self._queued
        self._queued = None
        # A copy: the rows outlive this batch (a video waits for its last clips), and the buffer
        # the GPU copied into is page-locked memory, better handed back at once.
        return keys, copied().numpy().copy()
