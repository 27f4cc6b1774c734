"""``torchvision:<model>``: torchvision's Kinetics-400 video classifiers, without their classifier.

``torchvision:s3d`` is the VideoBERT paper's own encoder: S3D pretrained on Kinetics-400, whose
1024-d average-pooled activations before the classifier are one clip's feature. The R(2+1)D / R3D /
MC3 ResNets (512-d), MViT (768-d) and Video Swin (768 / 1024-d) work the same way.

Weights (``EncoderOptions.weights``):

- ``default``: the published Kinetics-400 weights (torchvision downloads them once, into the torch
  hub cache — this needs the internet on first use);
- a path: a state dict saved with ``torch.save`` (read with ``weights_only=True``, so the file can
  hold only tensors) or a ``.safetensors`` file; a classifier head in it is ignored;
- ``none``: random weights from a fixed seed — for tests and plumbing, not for features.

torchvision is an optional dependency: it is imported only when this family is built, and
:func:`unavailable` says how to install it when it is missing.

Preprocessing is each model's published ``weights.transforms()`` (resize without antialiasing,
centre crop, the model's mean / std), carried out with the same torchvision functions, split where
the pixels are still 8-bit: resize and crop in the DataLoader workers, normalisation on the model's
device. Its numbers are written out in :data:`MODELS` (a test checks them against the presets), so
the random-weight and local-file paths preprocess exactly like the published weights.

For benchmarks, :meth:`TorchvisionVideoEncoder.pixel_values` (uint8 batch → normalised input on the
device) and :meth:`TorchvisionVideoEncoder.forward_features` (the bare model call) are public;
``embed`` is the two under ``torch.inference_mode()`` and autocast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidcap.artifacts import file_sha256
from vidcap.devices import resolve_device
from vidcap.encoders.base import (
    ClipEncoder,
    EncoderOptions,
    LazyModelEncoder,
    register,
    sample_indices,
    torch_dtype,
)
from vidcap.encoders.precision import autocast
from vidcap.errors import VidcapError

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Random weights ("none") come from this seed, so two builds give the same (meaningless) features.
RANDOM_WEIGHTS_SEED = 0


@dataclass(frozen=True)
class VideoModelSpec:
    """What vidcap needs to know about one torchvision video model."""

    frames: int  # frames sampled from each clip
    resize: tuple[int, ...]  # (height, width), or (short side,) keeping the aspect ratio
    crop: int  # square centre crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    head: str  # the classifier attribute replaced by an identity

    def resize_crop(self, frames: np.ndarray) -> torch.Tensor:
        """``[T, H, W, 3]`` uint8 RGB → ``[T, 3, crop, crop]`` uint8: the preset's first half.

        The same calls ``weights.transforms()`` makes (bilinear, no antialiasing), which keep uint8
        frames uint8.
        """
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        x = TF.resize(
            x, list(self.resize), interpolation=InterpolationMode.BILINEAR, antialias=False
        )
        return TF.center_crop(x, [self.crop, self.crop]).contiguous()

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, h, w]`` uint8 → float32 in [0, 1], normalised: the preset's second half."""
        from torchvision.transforms import functional as TF

        x = TF.convert_image_dtype(batch.transpose(1, 2), torch.float)  # [B, T, 3, h, w]
        return TF.normalize(x, mean=list(self.mean), std=list(self.std)).transpose(1, 2)


# Numbers from each model's ``<Model>_Weights.KINETICS400_V1.transforms()`` (torchvision 0.28) and,
# for ``frames``, the clip length its accuracy is reported at — except S3D, which is fully
# convolutional in time (any T >= 14) and takes the 30-frame clips of the VideoBERT paper
# (1.5 s at 20 fps, vidcap's default clip).
MODELS: dict[str, VideoModelSpec] = {
    "s3d": VideoModelSpec(30, (256, 256), 224, KINETICS_MEAN, KINETICS_STD, "classifier"),
    "r2plus1d_18": VideoModelSpec(16, (128, 171), 112, KINETICS_MEAN, KINETICS_STD, "fc"),
    "r3d_18": VideoModelSpec(16, (128, 171), 112, KINETICS_MEAN, KINETICS_STD, "fc"),
    "mc3_18": VideoModelSpec(16, (128, 171), 112, KINETICS_MEAN, KINETICS_STD, "fc"),
    "mvit_v1_b": VideoModelSpec(16, (256,), 224, (0.45,) * 3, (0.225,) * 3, "head"),
    "mvit_v2_s": VideoModelSpec(16, (256,), 224, (0.45,) * 3, (0.225,) * 3, "head"),
    "swin3d_t": VideoModelSpec(32, (256,), 224, IMAGENET_MEAN, IMAGENET_STD, "head"),
    "swin3d_s": VideoModelSpec(32, (256,), 224, IMAGENET_MEAN, IMAGENET_STD, "head"),
    "swin3d_b": VideoModelSpec(32, (256,), 224, IMAGENET_MEAN, IMAGENET_STD, "head"),
}


_GET_STARTED = "https://pytorch.org/get-started/locally/"


def _install_hint() -> str:
    """How to install the torchvision of this torch: with it, pinned (a bare `pip install
    torchvision` may replace torch by another build). torchvision 0.(N+15).P goes with torch
    2.N.P (0.15 with 2.0 ... 0.28 with 2.13)."""
    release = torch.__version__.split("+")[0]
    numbers = re.fullmatch(r"2\.(\d+)\.(\d+)", release)
    if numbers is None:  # a nightly, a pre-release, another major: no pair to name
        return f"install the torchvision built for your torch {release} (see {_GET_STARTED})."
    minor, patch = (int(n) for n in numbers.groups())
    return (
        f"install it beside your torch {release}, pinned together: `pip install torch=={release} "
        f"torchvision==0.{minor + 15}.{patch}` (from the index your torch came from; see "
        f"{_GET_STARTED})."
    )


def unavailable() -> str | None:
    """None when torchvision's video models import here, else a sentence saying how to fix it."""
    try:
        import torchvision.models.video  # noqa: F401
    except ImportError:
        return f"torchvision is not installed; {_install_hint()}"
    except Exception as error:  # a torchvision built for another torch fails in many ways
        return (
            f"torchvision is installed but does not import ({_first_line(error)}); reinstall the "
            f"torchvision release built for your torch {torch.__version__} (see {_GET_STARTED})."
        )
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _head_width(head: torch.nn.Module) -> int:
    """Input width of a classifier head: its last linear or 1x1x1 convolution."""
    layers = [m for m in head.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv3d))]
    if not layers:
        raise VidcapError(f"cannot find the classifier layer in {type(head).__name__}.")
    last = layers[-1]
    return int(last.in_features if isinstance(last, torch.nn.Linear) else last.in_channels)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a user's weights file, never unpickling anything but tensors."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a file torch cannot read safely fails in many ways
        raise VidcapError(
            f"cannot read weights from {str(path)!r}: {_first_line(error)}. vidcap reads only "
            "state dicts (torch.save(model.state_dict(), path)) and .safetensors files."
        ) from error
    # Training scripts often wrap the state dict ({"model": …}); DDP prefixes "module.".
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VidcapError(f"{str(path)!r} does not hold a state dict (names → tensors).")
    return {k.removeprefix("module."): v for k, v in state.items()}


class TorchvisionVideoEncoder(LazyModelEncoder):
    """A torchvision video classifier whose classifier head is an identity: one vector per clip.

    ``prepare`` gives ``[3, frames, h, w]`` uint8 (the models' channels-first video layout);
    ``embed`` normalises on the device and runs the model.
    """

    def __init__(self, model_name: str, options: EncoderOptions) -> None:
        """Build ``model_name`` with ``options.weights`` (``default`` | ``none`` | a file path).

        Raises:
            VidcapError: an unknown model, weights that cannot be fetched or read, or weights
                that do not fit the model.
        """
        if model_name not in MODELS:
            raise VidcapError(
                f"unknown torchvision video model {model_name!r}; known: {', '.join(MODELS)}."
            )
        self.model_name = model_name
        self.name = f"torchvision:{model_name}"
        self.spec = MODELS[model_name]
        self.options = options
        self.device = resolve_device(options.device)
        torch_dtype(options.dtype)  # an unknown dtype is a sentence now, not an error per batch
        weights = options.weights or "default"
        self.weights = weights.lower() if weights.lower() in ("default", "none") else weights
        self.frames = self.spec.frames
        self.weights_id: str | None = None  # which published weights, or the file's sha256
        self._model: torch.nn.Module | None = None
        self.dim = 0
        self._load_model()

    # -- the model -----------------------------------------------------------------------------

    def _load_model(self) -> torch.nn.Module:
        from torchvision.models import get_model, get_model_weights

        name, weights = self.model_name, self.weights
        if weights == "default":
            published = get_model_weights(name).DEFAULT
            try:
                model = get_model(name, weights=published)
            except Exception as error:  # urllib, OSError, hash mismatch…: all "could not fetch"
                raise VidcapError(
                    f"cannot fetch the published weights for {self.name} ({published.url}): "
                    f"{_first_line(error)}. Download that file where there is internet and pass "
                    "its path as the weights."
                ) from error
            self.weights_id = str(published)
            state = None
        elif weights == "none":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_WEIGHTS_SEED)
                model = get_model(name, weights=None)
            self.weights_id = f"random (seed {RANDOM_WEIGHTS_SEED})"
            state = None
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise VidcapError(
                    f"weights for {self.name} must be 'default', 'none' or a file; "
                    f"{weights!r} is not a file."
                )
            state = _read_state_dict(path)
            model = get_model(name, weights=None)
            self.weights_id = f"sha256:{file_sha256(path)}"

        self.dim = _head_width(getattr(model, self.spec.head))
        # The features are what the classifier reads: replace it, keep everything before it.
        setattr(model, self.spec.head, torch.nn.Identity())
        if state is not None:
            head = self.spec.head + "."
            state = {k: v for k, v in state.items() if not k.startswith(head)}
            try:
                result = model.load_state_dict(state, strict=False)
            except RuntimeError as error:  # tensors of the wrong shape
                lines = [line.strip() for line in str(error).splitlines()]
                shown = next((line for line in lines if "size mismatch" in line), lines[0])
                raise VidcapError(
                    f"the weights in {weights!r} do not fit {self.name}: {shown}"
                ) from error
            problems = [f"missing {k}" for k in result.missing_keys] + [
                f"unexpected {k}" for k in result.unexpected_keys
            ]
            if problems:
                shown = ", ".join(problems[:5]) + (" …" if len(problems) > 5 else "")
                raise VidcapError(f"the weights in {weights!r} do not fit {self.name}: {shown}.")
        model.eval().requires_grad_(False).to(self.device)
        self._model = model
        return model

    # -- the ClipEncoder interface ------------------------------------------------------------

    def frame_indices(self, clip_frames: int) -> np.ndarray | None:
        """Which frames of a ``clip_frames``-frame clip :meth:`prepare` reads (None: every one).

        Decoding straight from videos converts and keeps only these (an image model reading 4 of
        a clip's 30 frames lets the decoder skip the other 26); :meth:`prepare` must give the same
        result whatever the other frames hold.
        """
        if clip_frames == self.frames:
            return None  # S3D on the paper's 30-frame clips reads them all
        return sample_indices(clip_frames, self.frames)

    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        """Sample ``frames`` frames, resize and crop them: ``[3, frames, h, w]`` uint8."""
        indices = self.frame_indices(len(clip))
        frames = clip if indices is None else clip[indices]
        return self.spec.resize_crop(frames).permute(1, 0, 2, 3).contiguous()

    def pixel_values(self, batch: torch.Tensor) -> torch.Tensor:
        """Stacked ``prepare`` outputs → normalised float32 ``[B, 3, T, h, w]`` on the device."""
        return self.spec.normalize(batch.to(self.device, non_blocking=True))

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The model call alone: ``[B, 3, T, h, w]`` → ``[B, dim]`` (caller sets grad / autocast)."""
        return self.model(pixel_values)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """Features ``[B, dim]`` float32 on the device, not waited for (see
        :meth:`ClipEncoder.embed`); NaN / inf pass through for the stage to flag."""
        with torch.inference_mode(), autocast(self.device, self.options.dtype):
            features = self.forward_features(self.pixel_values(batch))
        return features.float()

    def describe(self) -> dict[str, Any]:
        """Name, dim, kind, frames sampled, input size and which weights (to rebuild it)."""
        return {
            "name": self.name,
            "dim": self.dim,
            "kind": "video",
            "frames": self.frames,
            "input_size": [self.spec.crop, self.spec.crop],
            "weights": self.weights,
            "weights_id": self.weights_id,
            "dtype": self.options.dtype,
        }


@register(
    "torchvision",
    "torchvision's Kinetics-400 video models (S3D: the VideoBERT paper's encoder); optional extra",
    examples=("torchvision:s3d", "torchvision:r2plus1d_18"),
    dims="s3d 1024; r2plus1d_18, r3d_18, mc3_18 512; mvit 768; swin3d 768-1024",
    unavailable=unavailable,
)
def build(argument: str | None, options: EncoderOptions) -> ClipEncoder:
    """Build ``torchvision:<argument>`` with ``options.weights``."""
    if not argument:
        raise VidcapError(
            f"torchvision needs a model: torchvision:<name>, one of {', '.join(MODELS)} "
            "(torchvision:s3d is the VideoBERT paper's encoder)."
        )
    return TorchvisionVideoEncoder(argument, options)


__all__ = ["MODELS", "TorchvisionVideoEncoder", "VideoModelSpec", "build", "unavailable"]
