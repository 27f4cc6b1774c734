"""``hf:<hub id or local path>``: any transformers vision model as a clip encoder.

Two kinds of model, told apart by the model's config:

- **image** models (CLIP / SigLIP, their vision towers, DINOv2, ViT, ConvNeXt…):
  :data:`IMAGE_FRAMES_PER_CLIP` frames are sampled evenly from the clip, each is embedded, and the
  clip's feature is the mean of its frames' pooled embeddings;
- **video** models (VideoMAE, TimeSformer, ViViT, X-CLIP…): the clip is one input, sampled to the
  model's own ``num_frames``.

Preprocessing (resize, centre crop, rescale, normalise) is read from the model's own image or video
processor config (``preprocessor_config.json`` and friends), but carried out here with plain torch:
transformers 5 image processors need torchvision or Pillow, neither of which vidcap depends on, and
one implementation means the same features on every machine. It follows transformers' torchvision
backend step for step (torch's antialiased uint8 resize, the same crop arithmetic), so its pixels
equal that backend's on the CPU and are within a grey level or two of the Pillow backend's.

The pooled embedding of one image (or video) is, in order of preference:

- ``get_image_features`` / ``get_video_features`` for dual encoders (CLIP, SigLIP, X-CLIP): the
  embedding that model was trained to compare with text;
- ``pooler_output`` for vision towers that have a trained pooler (CLIP vision, DINOv2, ViT-in21k);
- otherwise the mean of ``last_hidden_state`` over tokens (or over space, for convolutional models),
  or the ``[CLS]`` token for video transformers whose own classifier reads it (TimeSformer, ViViT).

The two steps a benchmark may want to time separately are public: :meth:`HFClipEncoder.pixel_values`
(uint8 batch → normalised float input on the device) and :meth:`HFClipEncoder.forward_features`
(the model call and pooling, no preprocessing) — ``embed`` is just the two under
``torch.inference_mode()`` and autocast.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidcap.devices import resolve_device
from vidcap.encoders.base import (
    ClipEncoder,
    EncoderOptions,
    LazyModelEncoder,
    register,
    sample_indices,
    torch_dtype,
)
from vidcap.errors import VidcapError

# Frames sampled from each clip for an image model: four, spread evenly (one every ~0.4 s of a
# 1.5 s clip), cost a seventh of embedding all 30 frames and lose little, as neighbouring frames
# are nearly identical. ``HFClipEncoder(frames=...)`` picks another count.
IMAGE_FRAMES_PER_CLIP = 4

# Video model types whose pooled feature is not the mean of their tokens. Everything else with a
# ``num_frames`` in its config is a video model pooled by the token mean (VideoMAE's own classifier
# averages its tokens too).
_VIDEO_POOLING = {
    "videomae": "mean",
    "timesformer": "cls",  # its classifier reads the [CLS] token
    "vivit": "cls",  # likewise; its classifier checkpoints hold no pooler, so pooler_output is noise
    "xclip": "video_features",  # frame CLIP + multi-frame integration transformer → text space
}

# Model types that have ``num_frames`` in their config but embed single frames.
_PER_FRAME_TYPES = {"xclip_vision_model"}

# PIL resampling codes as stored in processor configs → torch interpolation modes. Lanczos, box and
# hamming have no torch kernel; bicubic is the closest (transformers makes the same substitution).
_RESAMPLE = {
    0: "nearest-exact",
    1: "bicubic",
    2: "bilinear",
    3: "bicubic",
    4: "bicubic",
    5: "bicubic",
}

# Where a model keeps its preprocessing, most specific first (transformers' own file names).
_PROCESSOR_FILES = (
    "processor_config.json",  # a saved multimodal processor: image/video processor nested inside
    "preprocessor_config.json",  # an image processor (and legacy video processors)
    "video_preprocessor_config.json",  # a transformers 5 video processor
)


# --------------------------------------------------------------------------------------------------
# Helpers shared with the torchvision family (candidates for a common module).


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """Mixed precision for ``dtype`` (float16 / bfloat16) on ``device``; float32 runs as is.

    The weights stay float32 (autocast casts per operation), which keeps layer norms and softmaxes
    in float32 where reduced precision would cost accuracy.
    """
    compute = torch_dtype(dtype)
    if compute is torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=compute)


@dataclass(frozen=True)
class FrameTransform:
    """Resize → centre crop → rescale → normalise, the steps every vision model's processor takes.

    Split in two so the heavy part runs in DataLoader workers and the batch crosses process
    boundaries as uint8: :meth:`resize_crop` (CPU, per clip, uint8 out) and :meth:`normalize`
    (on the model's device, per batch, float32 out).
    """

    # ("shortest", short_edge, longest_edge_cap_or_0) or ("exact", height, width); None: no resize.
    resize: tuple[str, int, int] | None
    crop: tuple[int, int] | None  # (height, width); None: no crop
    interpolation: str = "bilinear"  # a torch.nn.functional.interpolate mode
    antialias: bool = True  # transformers and PIL antialias; torchvision's video presets do not
    crop_round: bool = False  # torchvision rounds the crop offset; transformers truncates it
    scale: float = 1 / 255  # x * scale + offset, before normalising
    offset: float = 0.0  # ViViT maps to [-1, 1] with scale 2/255 and offset -1
    mean: tuple[float, ...] | None = None  # None: no normalisation
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.crop is None and (self.resize is None or self.resize[0] != "exact"):
            raise ValueError(
                "a FrameTransform must end in a fixed size (an exact resize or a crop)"
            )

    @property
    def size(self) -> tuple[int, int]:
        """The (height, width) every frame comes out at, whatever size it went in at."""
        if self.crop is not None:
            return self.crop
        assert self.resize is not None
        return (self.resize[1], self.resize[2])

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        assert self.resize is not None
        kind, a, b = self.resize
        if kind == "exact":
            return (a, b)
        # Shortest edge to ``a``, aspect ratio kept (the long edge truncated, as torchvision and
        # transformers both do), and the long edge capped at ``b`` when one is given.
        short, long = min(height, width), max(height, width)
        new_short, new_long = a, int(a * long / short)
        if b and new_long > b:
            new_short, new_long = int(b * new_short / new_long), b
        return (new_short, new_long) if height <= width else (new_long, new_short)

    def resize_crop(self, frames: np.ndarray) -> torch.Tensor:
        """``[S, H, W, 3]`` uint8 RGB frames → ``[S, 3, h, w]`` uint8, resized and cropped."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        if self.resize is not None:
            size = self._resized_size(x.shape[-2], x.shape[-1])
            if size != tuple(x.shape[-2:]):
                x = _resize_uint8(x, size, self.interpolation, self.antialias)
        if self.crop is not None:
            x = _center_crop(x, self.crop, self.crop_round)
        return x.contiguous()

    def normalize(self, batch: torch.Tensor, channel_dim: int = -3) -> torch.Tensor:
        """uint8 pixels → the model's float32 input: rescale (and offset), then normalise."""
        x = batch.float() * self.scale
        if self.offset:
            x = x + self.offset
        if self.mean is not None and self.std is not None:
            shape = [1] * x.ndim
            shape[channel_dim] = len(self.mean)
            mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
            std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
            x = (x - mean) / std
        return x


def _resize_uint8(
    x: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool
) -> torch.Tensor:
    """Resize ``[S, 3, H, W]`` uint8 to ``size``, keeping uint8, as torchvision does on the CPU.

    Processors resize 8-bit images and stay 8-bit, so the model sees the values it was trained on.
    Antialiased bilinear / bicubic use torch's native uint8 kernels (torchvision's own path on the
    CPU, within a grey level of Pillow); other modes interpolate in float and round back.
    """
    if mode.startswith("nearest"):
        return F.interpolate(x, size=size, mode=mode)
    if antialias and x.device.type == "cpu":
        # channels_last is the layout the uint8 kernels are written for (no repacking copy).
        y = x.contiguous(memory_format=torch.channels_last)
        return F.interpolate(y, size=size, mode=mode, antialias=True, align_corners=False)
    y = F.interpolate(x.float(), size=size, mode=mode, antialias=antialias, align_corners=False)
    return y.clamp_(0, 255).round_().to(torch.uint8)


def _center_crop(x: torch.Tensor, crop: tuple[int, int], round_offset: bool) -> torch.Tensor:
    """Centre crop of ``[..., H, W]``, zero-padding first where the crop is the larger."""
    height, width = x.shape[-2:]
    ch, cw = crop
    if ch > height or cw > width:
        pad_h, pad_w = max(ch - height, 0), max(cw - width, 0)
        # left, right, top, bottom — the extra pixel of an odd padding goes right / bottom.
        x = F.pad(x, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        height, width = x.shape[-2:]
    if round_offset:
        top, left = round((height - ch) / 2), round((width - cw) / 2)
    else:
        top, left = int((height - ch) / 2), int((width - cw) / 2)
    return x[..., top : top + ch, left : left + cw]


# --------------------------------------------------------------------------------------------------
# Reading a model's preprocessing.


def _hw(value: Any, what: str) -> tuple[int, int]:
    """A processor's ``{"height", "width"}`` (or a bare int: a square) as a tuple."""
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, dict) and "height" in value and "width" in value:
        return (int(value["height"]), int(value["width"]))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{what} {value!r} is not a height and width")


def _triple(value: Any, what: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    if isinstance(value, (list, tuple)) and len(value) in (1, 3):
        values = tuple(float(v) for v in value)
        return values * 3 if len(values) == 1 else values
    raise ValueError(f"{what} {value!r} is not one value or three")


def transform_from_processor(config: dict[str, Any], image_size: int | None) -> FrameTransform:
    """The :class:`FrameTransform` a saved image/video processor config describes.

    Keys a config leaves out take the defaults transformers' base processors use; ``image_size``
    (from the model config) sizes the output when the processor does not fix one.

    Raises:
        ValueError: a config vidcap cannot follow (the caller turns it into a sentence).
    """
    crop = None
    if config.get("do_center_crop", config.get("crop_size") is not None):
        if config.get("crop_size") is None:
            raise ValueError("do_center_crop is set but crop_size is missing")
        crop = _hw(config["crop_size"], "crop_size")

    resize = None
    if config.get("do_resize", True):
        size = config.get("size")
        if size is None and image_size is None:
            raise ValueError(
                "do_resize is set but neither size nor the model's image_size is given"
            )
        if size is None:
            size = {"height": image_size, "width": image_size}
        if isinstance(size, int):
            # Old configs store a bare int; processors that centre crop read it as the shortest
            # edge (CLIP, VideoMAE, BiT…), the others as a square (ViT, SigLIP…).
            size = {"shortest_edge": size} if crop is not None else {"height": size, "width": size}
        if isinstance(size, dict) and size.get("shortest_edge"):
            resize = ("shortest", int(size["shortest_edge"]), int(size.get("longest_edge") or 0))
        else:
            resize = ("exact", *_hw(size, "size"))

    if crop is None and (resize is None or resize[0] != "exact"):
        # Nothing fixes the output size, but a batch needs one: crop the centre square the model's
        # shortest edge (or its image_size) describes.
        side = resize[1] if resize is not None else image_size
        if side is None:
            raise ValueError("the processor leaves the image size free and the model sets none")
        crop = (side, side)

    resample = config.get("resample", 2)
    interpolation = _RESAMPLE.get(resample if isinstance(resample, int) else -1)
    if interpolation is None:
        raise ValueError(f"unknown resample {resample!r}")

    scale, offset = 1.0, 0.0
    if config.get("do_rescale", True):
        scale = float(config.get("rescale_factor", 1 / 255))
        # ViViT's processors rescale to [-1, 1] ("offset"), and default to doing so.
        default_offset = str(config.get("image_processor_type", "")).startswith("Vivit") or str(
            config.get("video_processor_type", "")
        ).startswith("Vivit")
        if config.get("offset", default_offset):
            offset = -1.0

    mean = std = None
    if config.get("do_normalize", True):
        if config.get("image_mean") is None or config.get("image_std") is None:
            raise ValueError("do_normalize is set but image_mean / image_std are missing")
        mean = _triple(config["image_mean"], "image_mean")
        std = _triple(config["image_std"], "image_std")

    return FrameTransform(
        resize=resize,
        crop=crop,
        interpolation=interpolation,
        antialias=True,
        crop_round=False,
        scale=scale,
        offset=offset,
        mean=mean,
        std=std,
    )


def _load_processor_config(source: str) -> dict[str, Any]:
    """The model's image or video processor settings, from the first processor file it has."""
    from transformers.utils import cached_file

    for filename in _PROCESSOR_FILES:
        try:
            path = cached_file(source, filename, _raise_exceptions_for_missing_entries=False)
        except OSError:
            path = None
        if path is None:
            continue
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        if filename == "processor_config.json":
            data = data.get("image_processor") or data.get("video_processor")
            if not isinstance(data, dict):
                continue
        return data
    raise VidcapError(
        f"hf:{source} has no image processor config ({', '.join(_PROCESSOR_FILES)}); vidcap reads "
        "the model's resizing and normalisation from it. Save the model's image processor next to "
        "it (`processor.save_pretrained(path)`)."
    )


# --------------------------------------------------------------------------------------------------
# The encoder.


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _looks_like_path(source: str) -> bool:
    """True for what can only be a filesystem path (a hub id is ``name`` or ``owner/name``)."""
    return (
        source.startswith((".", "~", "/", "\\"))
        or source.count("/") > 1
        or Path(source).is_absolute()
    )


def _image_size(config: Any) -> int | None:
    for cfg in (config, getattr(config, "vision_config", None)):
        size = getattr(cfg, "image_size", None)
        if isinstance(size, int):
            return size
        if isinstance(size, (list, tuple)) and size:
            return int(size[0])
    return None


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars or load reports from transformers while it loads a model.

    Library code never prints, and what the report says (missing or unexpected weights) is
    checked here and turned into a sentence where it matters.
    """
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _dtype_argument() -> str:
    """``from_pretrained``'s dtype keyword: ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def _pooled(output: Any) -> torch.Tensor:
    """A ``get_*_features`` result: a tensor (transformers 4) or an output whose pooler holds it (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class HFClipEncoder(LazyModelEncoder):
    """A transformers image or video model; see the module docstring for what it computes.

    Attributes:
        kind: ``"image"`` (frames embedded one by one, then averaged) or ``"video"`` (one input).
        frames: frames sampled from each clip.
        pooling: how one input's embedding is read from the model (see :meth:`forward_features`).
        transform: the model's preprocessing.
    """

    def __init__(self, source: str, options: EncoderOptions, frames: int | None = None) -> None:
        """Load ``source`` (hub id or local folder) and find the size of its features.

        Args:
            source: what ``from_pretrained`` accepts.
            options: device, compute dtype.
            frames: frames per clip for image models (default :data:`IMAGE_FRAMES_PER_CLIP`);
                video models always take their config's ``num_frames``.

        Raises:
            VidcapError: no such model, not a vision model, no usable processor config, or a model
                that cannot encode a clip of its own input size.
        """
        from transformers import AutoConfig

        if _looks_like_path(source) and not Path(source).expanduser().is_dir():
            # Not a hub id either: say so now rather than after the hub's retries.
            raise VidcapError(f"hf:{source}: there is no model folder at {source!r}.")
        if source.startswith("~"):
            source = str(Path(source).expanduser())
        self.source = source
        self.name = f"hf:{source}"
        self.options = options
        self.device = resolve_device(options.device)
        torch_dtype(options.dtype)  # an unknown dtype is a sentence now, not an error per batch

        try:
            config = AutoConfig.from_pretrained(source)
        except (OSError, ValueError, KeyError) as error:
            raise VidcapError(
                f"hf:{source}: cannot load a transformers model config from {source!r} (neither a "
                f"local model folder nor a reachable Hugging Face hub id): {_first_line(error)}"
            ) from error
        self.model_type: str = config.model_type
        self.revision: str | None = getattr(config, "_commit_hash", None)
        self.kind, self.frames, self.pooling = self._plan(config, frames)

        try:
            self.transform = transform_from_processor(
                _load_processor_config(source), _image_size(config)
            )
        except ValueError as error:
            raise VidcapError(
                f"hf:{source}: its processor config cannot be followed: {error}."
            ) from error

        self._model: torch.nn.Module | None = None
        self._pooler_missing = False
        self._load_model()
        self.dim = self._probe()

    # -- planning ------------------------------------------------------------------------------

    def _plan(self, config: Any, frames: int | None) -> tuple[str, int, str]:
        """(kind, frames per clip, pooling) for this config, before any weights are read."""
        model_type = config.model_type
        if model_type == "xclip":
            return "video", int(config.vision_config.num_frames), "video_features"
        if model_type in _VIDEO_POOLING or (
            getattr(config, "num_frames", None) and model_type not in _PER_FRAME_TYPES
        ):
            return "video", int(config.num_frames), _VIDEO_POOLING.get(model_type, "mean")

        n = frames or IMAGE_FRAMES_PER_CLIP
        if n < 1:
            raise VidcapError(f"hf:{self.source}: frames per clip must be at least 1, not {n}.")
        model_class = self._model_class(config)
        if getattr(config, "vision_config", None) is not None:
            if not hasattr(model_class, "get_image_features"):
                raise VidcapError(
                    f"hf:{self.source} is a {model_type} model with no get_image_features; vidcap "
                    "cannot tell which of its outputs is the image embedding."
                )
            return "image", n, "image_features"
        if getattr(model_class, "main_input_name", None) != "pixel_values":
            raise VidcapError(
                f"hf:{self.source} is a {model_type} model, not a vision model; the hf encoder "
                "needs an image model (CLIP, SigLIP, DINOv2, ViT…) or a video model (VideoMAE, "
                "TimeSformer, ViViT, X-CLIP)."
            )
        # "auto": the trained pooler when the model has one, else the token mean (settled by the
        # probe, which sees the model's outputs).
        return "image", n, "auto"

    def _model_class(self, config: Any) -> type:
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        try:
            return MODEL_MAPPING[type(config)]
        except (KeyError, ValueError) as error:
            raise VidcapError(
                f"hf:{self.source} is a {config.model_type} model, which transformers' AutoModel "
                "cannot load; the hf encoder needs an image or video model."
            ) from error

    # -- the model -----------------------------------------------------------------------------

    def _load_model(self) -> torch.nn.Module:
        from transformers import AutoModel

        try:
            # float32 weights whatever the checkpoint stores: autocast supplies reduced precision.
            with _quiet_transformers():
                model, info = AutoModel.from_pretrained(
                    self.source, output_loading_info=True, **{_dtype_argument(): torch.float32}
                )
        except (OSError, ValueError, RuntimeError) as error:
            raise VidcapError(
                f"hf:{self.source}: cannot load the model's weights: {_first_line(error)}"
            ) from error
        missing = list(info.get("missing_keys", []))
        # A pooler absent from the checkpoint (a ViT saved from a classifier, say) is freshly
        # random: fall back to the token mean rather than embed through noise.
        self._pooler_missing = any("pooler" in key for key in missing)
        missing = [key for key in missing if "pooler" not in key]
        if missing:
            shown = ", ".join(sorted(missing)[:5]) + (" …" if len(missing) > 5 else "")
            raise VidcapError(
                f"hf:{self.source}: the checkpoint lacks weights the model needs ({shown}); its "
                "features would come from random layers and differ on every load."
            )
        model.eval().requires_grad_(False).to(self.device)
        self._model = model
        return model

    def _probe(self) -> int:
        """Encode a blank clip: settles ``auto`` pooling and reads the feature size.

        Doing this once here turns a model whose input size does not fit its processor into one
        sentence now, instead of the same failure for every video later.
        """
        h, w = self.transform.size
        blank = np.zeros((self.frames, h, w, 3), np.uint8)
        batch = self.prepare(blank)[None]
        try:
            with torch.inference_mode(), autocast(self.device, self.options.dtype):
                pixels = self.pixel_values(batch)
                if self.pooling == "auto":
                    output = self.model(pixel_values=pixels.flatten(0, 1))
                    has_pooler = getattr(output, "pooler_output", None) is not None
                    self.pooling = "pooler" if has_pooler and not self._pooler_missing else "mean"
                features = self.forward_features(pixels)
        except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as error:
            raise VidcapError(
                f"hf:{self.source} cannot encode a clip of {self.frames} frames at {h}x{w}, the "
                f"size its processor config produces: {_first_line(error)}"
            ) from error
        if features.ndim != 2 or features.shape[0] != 1:
            raise VidcapError(
                f"hf:{self.source} returned features of shape {tuple(features.shape)} for one "
                "clip; vidcap needs one vector per clip."
            )
        return int(features.shape[1])

    # -- the ClipEncoder interface ------------------------------------------------------------

    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        """Sample the clip's frames and resize / crop them: ``[frames, 3, h, w]`` uint8."""
        frames = clip[sample_indices(len(clip), self.frames)]
        return self.transform.resize_crop(frames)

    def pixel_values(self, batch: torch.Tensor) -> torch.Tensor:
        """Stacked ``prepare`` outputs → normalised float32 ``[B, frames, 3, h, w]`` on the device."""
        return self.transform.normalize(batch.to(self.device, non_blocking=True))

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The model call and pooling alone: ``[B, frames, 3, h, w]`` → ``[B, dim]``.

        Runs under whatever grad / autocast context the caller sets (``embed`` sets both).
        """
        model = self.model
        if self.kind == "video":
            if self.pooling == "video_features":
                return _pooled(model.get_video_features(pixel_values=pixel_values))
            hidden = model(pixel_values=pixel_values).last_hidden_state
            return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)

        b, s = pixel_values.shape[:2]
        images = pixel_values.flatten(0, 1)
        if self.pooling == "image_features":
            per_frame = _pooled(model.get_image_features(pixel_values=images))
        elif self.pooling == "pooler":
            # Convolutional models pool to [N, C, 1, 1]; transformers to [N, D].
            per_frame = model(pixel_values=images).pooler_output.flatten(1)
        else:
            hidden = model(pixel_values=images).last_hidden_state
            # Tokens [N, L, D] → mean over L; a convolutional map [N, C, H, W] → mean over space.
            per_frame = hidden.mean(dim=1) if hidden.ndim == 3 else hidden.flatten(2).mean(-1)
        if per_frame.ndim != 2:
            raise ValueError(
                f"its {self.pooling} output has shape {tuple(per_frame.shape)}, not one vector per image"
            )
        # Average in float32: under autocast the per-frame features may be half precision.
        return per_frame.float().view(b, s, -1).mean(dim=1)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """Features ``[B, dim]`` float32 on the CPU for stacked ``prepare`` outputs.

        NaN / inf are passed through: the encode stage marks such a video as failed.
        """
        with torch.inference_mode(), autocast(self.device, self.options.dtype):
            features = self.forward_features(self.pixel_values(batch))
        return features.float().cpu()

    def describe(self) -> dict[str, Any]:
        """Name (with the model id or path), dim, kind, frames sampled, pooling and input size."""
        info: dict[str, Any] = {
            "name": self.name,
            "dim": self.dim,
            "kind": self.kind,
            "frames": self.frames,
            "pooling": self.pooling,
            "model_type": self.model_type,
            "input_size": list(self.transform.size),
            "dtype": self.options.dtype,
        }
        if self.revision:
            info["revision"] = self.revision  # the hub commit the weights came from
        return info


def _build_note() -> str:
    return "hf needs a model: hf:<hub id or local path> (for example hf:facebook/dinov2-small)."


@register(
    "hf",
    "any transformers image model (frames averaged) or video model (whole clip), from the hub or a folder",
    examples=(
        "hf:facebook/dinov2-small",
        "hf:openai/clip-vit-base-patch32",
        "hf:MCG-NJU/videomae-base",
        "hf:./my-model",
    ),
    dims="the model's embedding size",
)
def build(argument: str | None, options: EncoderOptions) -> ClipEncoder:
    """Build ``hf:<argument>``: the model at a hub id or local path."""
    if not argument:
        raise VidcapError(_build_note())
    return HFClipEncoder(argument, options)


__all__ = [
    "IMAGE_FRAMES_PER_CLIP",
    "FrameTransform",
    "HFClipEncoder",
    "autocast",
    "build",
    "transform_from_processor",
]
