"""Running the model a batch ahead of reading its features back, and the device helpers under it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vidcap.devices import pins_memory, stack_for, start_host_copy
from vidcap.encoders.ahead import OneBatchAhead
from vidcap.encoders.base import ClipEncoder


class _Doubling(ClipEncoder):
    """Features: twice the batch; records the order of its calls."""

    name = "doubling"
    dim = 3

    def __init__(self) -> None:
        self.calls: list[float] = []

    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(clip)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls.append(float(batch[0, 0]))
        return (batch * 2).to(torch.float64)  # the helper hands back float32 whatever this gives


def _batch(first: float) -> torch.Tensor:
    return torch.arange(first, first + 6).reshape(2, 3)


def test_each_batch_comes_back_when_the_next_is_queued() -> None:
    encoder = _Doubling()
    ahead: OneBatchAhead[list[str]] = OneBatchAhead(encoder)
    assert ahead.collect() is None  # nothing queued

    assert ahead.submit(["a0", "a1"], _batch(0)) is None
    keys, features = ahead.submit(["b0", "b1"], _batch(10)) or ((), None)
    # The second batch was given to the model before the first one's features came back.
    assert encoder.calls == [0.0, 10.0]
    assert keys == ["a0", "a1"]
    assert features is not None and features.dtype == np.float32
    np.testing.assert_array_equal(features, _batch(0).numpy() * 2)

    keys, features = ahead.collect() or ((), None)
    assert keys == ["b0", "b1"]
    np.testing.assert_array_equal(features, _batch(10).numpy() * 2)
    assert ahead.collect() is None  # collected once only


def test_features_handed_back_are_the_callers_own() -> None:
    encoder = _Doubling()
    ahead: OneBatchAhead[int] = OneBatchAhead(encoder)
    ahead.submit(0, _batch(0))
    _, features = ahead.collect() or (0, np.zeros(0))
    assert features.flags.owndata and features.flags.writeable


def test_on_the_cpu_nothing_is_pinned_and_copies_are_immediate() -> None:
    cpu = torch.device("cpu")
    assert not pins_memory(cpu)
    assert pins_memory(torch.device("cuda", 0))
    tensors = [torch.full((2, 2), float(n), dtype=torch.float32) for n in range(3)]
    stacked = stack_for(cpu, tensors)
    assert not stacked.is_pinned()
    torch.testing.assert_close(stacked, torch.stack(tensors))

    source = torch.arange(4.0)
    result: Any = start_host_copy(source)()
    assert result.device.type == "cpu"
    torch.testing.assert_close(result, torch.arange(4.0))
