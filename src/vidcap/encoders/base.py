"""The shared shape of every clip encoder, and the registry that finds one by name.

An encoder turns one clip (``[T, H, W, 3]`` uint8 RGB frames) into one feature vector, in two steps
so the slow parts overlap:

- :meth:`ClipEncoder.prepare` runs on the CPU in DataLoader workers (frame sampling, resizing,
  normalisation — or, for the built-in descriptor, the whole computation);
- :meth:`ClipEncoder.embed` runs on a batch of prepared clips in the main process (the model).

Encoder names are ``family`` or ``family:argument`` (``descriptor``, ``hf:facebook/dinov2-small``,
``torchvision:s3d``). Each family lives in its own module, imported only when it is used, so a
missing optional dependency only matters to the family that needs it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidcap.encoders.dtypes import COMPUTE_DTYPES, ComputeDtype
from vidcap.errors import VidcapError


@dataclass(frozen=True)
class EncoderOptions:
    """Run-time options every family accepts."""

    device: str = "cpu"
    dtype: ComputeDtype = "float32"  # the model's compute dtype
    weights: str = "default"  # torchvision: "default" (the published weights) or a local file


class ClipEncoder(ABC):
    """One feature vector per clip. Subclasses set ``name`` and ``dim``."""

    name: str
    dim: int

    @abstractmethod
    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        """CPU work for one clip (``[T, H, W, 3]`` uint8 RGB); runs in DataLoader workers."""

    @abstractmethod
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """Features ``[B, dim]`` for a batch of prepared clips (stacked ``prepare`` outputs).

        They are on the encoder's device and may still be being computed there (a GPU queues the
        work and returns); ``.cpu()`` waits for them.
        """

    def frame_indices(self, clip_frames: int) -> np.ndarray | None:
        """Which frames of a ``clip_frames``-frame clip :meth:`prepare` reads (None: every one).

        Decoding straight from videos converts and keeps only these (an image model reading 4 of
        a clip's 30 frames lets the decoder skip the other 26); :meth:`prepare` must give the same
        result whatever the other frames hold.
        """
        return None

    def decoder_step(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """Encoding straight from videos: a picklable function the decode child runs on each clip
        instead of :meth:`prepare` in the parent (numpy in and out, the same values), or None.

        In the child suits a CPU-heavy step (the descriptor's whole work), best one whose module
        does not import torch (a child that imports it starts 1.3 s slower and 250 MB larger).
        None suits an encoder whose step is light beside its model but whose imports are heavy
        (transformers' processors: seconds per child): the child sends the frames it reads and
        :meth:`prepare` runs in the parent. The default runs :meth:`prepare` in the child.
        """
        return _PrepareInChild(self)

    def describe(self) -> dict[str, Any]:
        """What a bundle must record to rebuild this encoder (name, dim, settings)."""
        return {"name": self.name, "dim": self.dim}

    def encode(self, clips: list[np.ndarray]) -> np.ndarray:
        """Convenience for callers without a DataLoader: features ``[len(clips), dim]`` float32."""
        if not clips:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            batch = torch.stack([self.prepare(c) for c in clips])
            return self.embed(batch).float().cpu().numpy()


class LazyModelEncoder(ClipEncoder):
    """An encoder around a neural network that DataLoader workers never receive.

    Workers only run :meth:`prepare`, so pickling drops the model; :attr:`model` loads it again
    (with :meth:`_load_model`, which also stores it in ``_model``) if a copy is ever asked to embed.
    """

    _model: torch.nn.Module | None = None

    @abstractmethod
    def _load_model(self) -> torch.nn.Module:
        """Load (or build) the network, store it in ``self._model`` and return it."""

    @property
    def model(self) -> torch.nn.Module:
        """The network, loaded on first use."""
        return self._model if self._model is not None else self._load_model()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    def decoder_step(self) -> None:
        """None: its prepare() is light beside the network, and its imports (transformers,
        torchvision) are not, so encoding from videos prepares clips in the parent."""
        return None


class _PrepareInChild:
    """An encoder's :meth:`~ClipEncoder.prepare` as a numpy step (the default decoder step)."""

    def __init__(self, encoder: ClipEncoder) -> None:
        self.encoder = encoder

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        return self.encoder.prepare(clip).numpy()


@dataclass(frozen=True)
class EncoderFamily:
    """A registered family: how to build it and whether it can run on this machine."""

    name: str
    summary: str
    build: Callable[[str | None, EncoderOptions], ClipEncoder]
    # Returns None when the family can run here, else a sentence saying what to install.
    unavailable: Callable[[], str | None]
    examples: tuple[str, ...]
    dims: str  # the feature size(s), for ``vidcap encode --list``
    # (argument, recorded description) -> the argument that rebuilds the recorded encoder: for
    # settings whose default changed since it was recorded. None: the argument as it is.
    pin: Callable[[str | None, dict[str, Any]], str | None] | None = None


_FAMILIES: dict[str, EncoderFamily] = {}

# Family name -> module that registers it (imported lazily).
_FAMILY_MODULES = {
    "descriptor": "vidcap.encoders.descriptor_encoder",
    "hf": "vidcap.encoders.hf",
    "torchvision": "vidcap.encoders.torchvision_video",
}


def register(
    name: str,
    summary: str,
    examples: tuple[str, ...],
    dims: str,
    unavailable: Callable[[], str | None] = lambda: None,
    pin: Callable[[str | None, dict[str, Any]], str | None] | None = None,
) -> Callable[[Callable[[str | None, EncoderOptions], ClipEncoder]], Callable]:
    """Class/function decorator: register ``build(argument, options)`` as encoder family ``name``
    (``pin``: see :attr:`EncoderFamily.pin`)."""

    def decorator(build: Callable[[str | None, EncoderOptions], ClipEncoder]) -> Callable:
        _FAMILIES[name] = EncoderFamily(name, summary, build, unavailable, examples, dims, pin)
        return build

    return decorator


def _family(name: str) -> EncoderFamily:
    if name not in _FAMILIES and name in _FAMILY_MODULES:
        importlib.import_module(_FAMILY_MODULES[name])
    if name not in _FAMILIES:
        known = ", ".join(sorted({*_FAMILY_MODULES, *_FAMILIES}))
        raise VidcapError(f"unknown encoder family {name!r}; known families: {known}.")
    return _FAMILIES[name]


def families() -> list[EncoderFamily]:
    """Every family: the built-in ones (importing their modules, not their heavy dependencies)
    and any registered at run time by other code."""
    return [_family(name) for name in sorted({*_FAMILY_MODULES, *_FAMILIES})]


def build_encoder(
    spec: str, options: EncoderOptions | None = None, recorded: dict[str, Any] | None = None
) -> ClipEncoder:
    """Build the encoder named by ``spec`` (``family`` or ``family:argument``).

    ``recorded`` is the description (:meth:`ClipEncoder.describe`) a bundle recorded for
    ``spec`` (``{}`` if it recorded none): a setting the spec leaves to its default, whose default
    has changed since, is then built as it was recorded (the descriptor's ``downscale``), so an
    older bundle still gets the encoder it was trained with.

    Raises:
        VidcapError: unknown family, a family that cannot run here (with what to install), or an
            argument the family cannot load.
    """
    family_name, _, argument = spec.partition(":")
    family = _family(family_name)
    reason = family.unavailable()
    if reason is not None:
        raise VidcapError(f"encoder {spec!r} cannot run here: {reason}")
    if recorded is not None and family.pin is not None:
        argument = family.pin(argument or None, recorded)
    return family.build(argument or None, options or EncoderOptions())


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a ``--dtype`` value."""
    if name not in COMPUTE_DTYPES:
        raise VidcapError(f"unknown dtype {name!r}; use one of {', '.join(COMPUTE_DTYPES)}.")
    return getattr(torch, name)


def sample_indices(n_frames: int, n_samples: int) -> np.ndarray:
    """``n_samples`` frame indices spread evenly over a clip of ``n_frames`` (centres of equal bins)."""
    if n_frames < 1 or n_samples < 1:
        raise ValueError("a clip needs at least one frame and one sample")
    return np.minimum(
        ((np.arange(n_samples) + 0.5) * n_frames / n_samples).astype(int), n_frames - 1
    )


def looks_like_path(source: str) -> bool:
    """True for an ``hf:`` source that can only be a filesystem path (a hub id is ``name`` or
    ``owner/name``)."""
    return (
        source.startswith((".", "~", "/", "\\"))
        or source.count("/") > 1
        or Path(source).is_absolute()
    )
