"""``hf:<hub id or local path>``: any transformers vision model as a clip encoder.

Two kinds of model, told apart by the model's config:

- **image** models (CLIP / SigLIP, their vision towers, DINOv2, ViT, ConvNeXt…):
  :data:`IMAGE_FRAMES_PER_CLIP` frames are sampled evenly from the clip, each is embedded, and the
  clip's feature is the mean of its frames' pooled embeddings;
- **video** models (VideoMAE, TimeSformer, ViViT, X-CLIP…): the clip is one input, sampled to the
  model's own ``num_frames``.

Preprocessing is the model's own: the processor saved with it, loaded with transformers'
``AutoVideoProcessor`` (video models) or ``AutoImageProcessor`` (its torchvision backend where
torchvision is installed, torch tensors throughout; its Pillow backend otherwise), and called in two
halves (:class:`Processor`): resize and crop in the DataLoader workers, rescale and normalise on the
model's device. The pixels equal one whole call of that processor.

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
import importlib.util
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidcap.devices import resolve_device
from vidcap.encoders.base import (
    ClipEncoder,
    EncoderOptions,
    LazyModelEncoder,
    looks_like_path,
    register,
    sample_indices,
    torch_dtype,
)
from vidcap.encoders.precision import autocast
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

# Two frame shapes, one landscape and one portrait, that the probe sends through the processor: a
# processor whose output size follows the input's shape cannot make batches of clips from videos
# of different shapes.
_PROBE_SHAPES = ((96, 128), (128, 96))


# --------------------------------------------------------------------------------------------------
# The model's own processor.


class Processor:
    """The model's transformers image or video processor, called in two halves.

    The processor does everything (resize, centre crop, rescale, normalise, and model-specific steps
    such as ConvNeXt's ``crop_pct`` or ViViT's offset); vidcap only splits its call where the
    pixels are still 8-bit and of a fixed size:

    - :meth:`resize_crop` (``do_rescale`` and ``do_normalize`` off) runs in DataLoader workers on
      the CPU, per clip, so a batch of frames crosses process boundaries as uint8;
    - :meth:`normalize` (``do_resize`` and ``do_center_crop`` off) runs per batch on the model's
      device.

    The two halves give exactly the pixels one whole call gives (the processors resize and crop in
    uint8 and rescale last), which the tests check for every model family.

    Attributes:
        processor: the transformers processor (``AutoVideoProcessor`` for video models where
            torchvision is installed, else ``AutoImageProcessor``, its torchvision backend when
            torchvision is installed and its Pillow backend otherwise).
        video: whether ``processor`` is a video processor (one call per clip).
    """

    def __init__(self, processor: Any, video: bool) -> None:
        self.processor = processor
        self.video = video

    @property
    def backend(self) -> str:
        """``torchvision`` (torch tensors, any device) or ``pil`` (numpy on the CPU)."""
        return "torchvision" if self.video else str(getattr(self.processor, "backend", "pil"))

    def _call(self, frames: torch.Tensor, **steps: bool) -> torch.Tensor:
        """The processor on ``[N, 3, H, W]`` frames (one clip of a video processor, or N images)."""
        if self.video:
            output = self.processor(
                videos=[frames], do_sample_frames=False, return_tensors="pt", **steps
            )
            return next(iter(output.values()))[0]
        images: Any = frames
        if self.backend != "torchvision":
            # The Pillow backend reads HWC arrays on the CPU.
            images = list(frames.permute(0, 2, 3, 1).cpu().numpy())
        # Positional: video models' image processors (VideoMAE, ViViT) name it ``videos``, read a
        # list of frames as one video and give [1, N, 3, h, w].
        out = self.processor(images, return_tensors="pt", **steps).pixel_values
        return out.reshape(-1, *out.shape[-3:])

    def resize_crop(self, frames: np.ndarray) -> torch.Tensor:
        """``[S, H, W, 3]`` uint8 RGB frames → ``[S, 3, h, w]`` uint8, resized and cropped."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        steps = {"do_rescale": False, "do_normalize": False}
        if "offset" in inspect.signature(self.processor.preprocess).parameters:
            # ViViT's image processor: its [-1, 1] offset is part of rescaling and refuses to run
            # without it; the second half applies both. (Its video processor has no such switch.)
            steps["offset"] = False
        out = self._call(x, **steps)
        # Resizing and cropping keep 8-bit values; anything else would be a processor that
        # rescales before it resizes, which the two-step split cannot follow.
        if out.dtype != torch.uint8:
            raise ValueError(f"its resize and crop give {out.dtype} pixels, not 8-bit ones")
        return out.contiguous()

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """``[..., 3, h, w]`` uint8 (on the model's device) → the model's float32 input there."""
        if self.video:
            # One call for the whole batch: each clip is a video of the batch's frames.
            clips = batch.reshape(-1, *batch.shape[-4:])
            output = self.processor(
                videos=list(clips),
                do_sample_frames=False,
                do_resize=False,
                do_center_crop=False,
                return_tensors="pt",
            )
            out = next(iter(output.values()))
        else:
            flat = batch.reshape(-1, *batch.shape[-3:])
            out = self._call(flat, do_resize=False, do_center_crop=False)
        return out.to(batch.device).float().reshape(*batch.shape)


def _torchvision_problem() -> str | None:
    """None when torchvision is absent or imports; else why it is installed but does not import.

    transformers imports torchvision whenever it is installed, so a torchvision built for another
    torch breaks every image processor; this turns that into a sentence.
    """
    if importlib.util.find_spec("torchvision") is None:
        return None
    try:
        import torchvision.transforms.v2  # noqa: F401
    except Exception as error:  # a torchvision built for another torch fails in many ways
        return _first_line(error)
    return None


def load_processor(source: str, video: bool) -> Processor:
    """The processor saved with the model at ``source`` (hub id or folder).

    Video models take their ``AutoVideoProcessor`` (torchvision-backed) where torchvision is
    installed; image models, and video models without torchvision, their ``AutoImageProcessor``
    with the torchvision backend, or the Pillow one where torchvision is missing.

    Raises:
        VidcapError: no processor config, or a torchvision that does not import.
    """
    problem = _torchvision_problem()
    if problem is not None:
        raise VidcapError(
            f"hf:{source}: torchvision is installed but does not import ({problem}), and "
            "transformers' image processors import it; reinstall the torchvision release built "
            f"for your torch {torch.__version__} (see https://pytorch.org/get-started/locally/), "
            "or uninstall it to use the Pillow processors."
        )
    from transformers import AutoImageProcessor, AutoVideoProcessor

    errors: list[BaseException] = []
    with _quiet_transformers():
        if video and importlib.util.find_spec("torchvision") is not None:
            try:
                return Processor(AutoVideoProcessor.from_pretrained(source), video=True)
            except (OSError, ValueError, KeyError, ImportError) as error:
                errors.append(error)  # an image processor may still describe the frames
        try:
            return Processor(
                AutoImageProcessor.from_pretrained(source, backend="torchvision"), video=False
            )
        except (OSError, ValueError, KeyError, ImportError) as error:
            errors.append(error)
    raise VidcapError(
        f"hf:{source} has no usable image processor ({_first_line(errors[-1])}); vidcap "
        "preprocesses frames with the model's own processor. Save it next to the model "
        "(`AutoImageProcessor.from_pretrained(model_id).save_pretrained(path)`)."
    )


# --------------------------------------------------------------------------------------------------
# The encoder.


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _offline_hint(source: str, error: BaseException) -> str:
    """What to do on a machine that cannot reach the hub (a cluster's compute nodes often
    cannot): "" when the hub was reached (a misspelt id, a private model)."""
    if "couldn't connect" not in str(error).lower():
        return ""
    import huggingface_hub.constants

    hint = (
        f" Without network here, download the model on a machine with it (`hf download {source} "
        "--local-dir DIR`) and give hf:DIR"
    )
    if huggingface_hub.constants.HF_HUB_OFFLINE:  # the cache was looked in: it is not there
        return hint + "."
    return (
        hint + "; or, with a hub cache that machine shares (a cluster's login node), download it "
        "there and set HF_HUB_OFFLINE=1 here (no retries either)."
    )


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


def _hub_revision(source: str) -> str | None:
    """The hub commit whose files were loaded for a hub id (None for a local folder).

    The hub's cache keeps each download under ``snapshots/<commit>/``; the config just loaded is
    the cached one, so its folder names the commit.
    """
    if Path(source).is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json")
    if not isinstance(cached, str):  # not cached (None) or cached as missing
        return None
    snapshot = Path(cached).parent
    return snapshot.name if snapshot.parent.name == "snapshots" else None


def _pooled(output: Any) -> torch.Tensor:
    """A ``get_*_features`` result: an output whose ``pooler_output`` holds the embedding."""
    return output.pooler_output


class HFClipEncoder(LazyModelEncoder):
    """A transformers image or video model; see the module docstring for what it computes.

    Attributes:
        kind: ``"image"`` (frames embedded one by one, then averaged) or ``"video"`` (one input).
        frames: frames sampled from each clip.
        pooling: how one input's embedding is read from the model (see :meth:`forward_features`).
        processor: the model's own preprocessing (see :class:`Processor`).
        input_size: ``(height, width)`` of the frames the processor gives the model.
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

        if looks_like_path(source) and not Path(source).expanduser().is_dir():
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
                + _offline_hint(source, error)
            ) from error
        self.model_type: str = config.model_type
        self.revision = _hub_revision(source)
        self.kind, self.frames, self.pooling = self._plan(config, frames)

        self.processor = load_processor(source, video=self.kind == "video")
        self.input_size = self._input_size()

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
        """The class ``AutoModel`` builds for ``config``, found before any weights are read.

        The model is built on the meta device: no memory, no download, and a text model (or any
        other that cannot encode frames) is refused before its weights are fetched.
        """
        from transformers import AutoModel

        try:
            with torch.device("meta"), _quiet_transformers():
                return type(AutoModel.from_config(config))
        except (ValueError, KeyError) as error:
            raise VidcapError(
                f"hf:{self.source} is a {config.model_type} model, which transformers' AutoModel "
                "cannot build; the hf encoder needs an image or video model."
            ) from error

    def _input_size(self) -> tuple[int, int]:
        """The fixed ``(height, width)`` the processor gives frames of any shape.

        Raises:
            VidcapError: a processor whose output follows the frame's shape (clips from videos of
                different shapes could not share a batch), or one vidcap cannot split.
        """
        sizes = set()
        try:
            for shape in _PROBE_SHAPES:
                frames = self.processor.resize_crop(np.zeros((1, *shape, 3), np.uint8))
                sizes.add(tuple(frames.shape[-2:]))
        except (ValueError, TypeError, RuntimeError) as error:
            raise VidcapError(
                f"hf:{self.source}: its processor cannot prepare frames: "
                f"{_first_line(error).rstrip('.')}."
            ) from error
        if len(sizes) != 1:
            raise VidcapError(
                f"hf:{self.source}: its processor gives frames of different sizes "
                f"({', '.join(f'{h}x{w}' for h, w in sorted(sizes))}) for frames of different "
                "shapes; vidcap batches clips from videos of any shape and needs a processor that "
                "ends in a fixed size (a centre crop or an exact resize)."
            )
        (size,) = sizes
        return (int(size[0]), int(size[1]))

    # -- the model -----------------------------------------------------------------------------

    def _load_model(self) -> torch.nn.Module:
        from transformers import AutoModel

        try:
            # float32 weights whatever the checkpoint stores: autocast supplies reduced precision.
            with _quiet_transformers():
                model, info = AutoModel.from_pretrained(
                    self.source, output_loading_info=True, dtype=torch.float32
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
        """Encode a blank input: settles ``auto`` pooling and reads the feature size.

        Doing this once here turns a model whose input size does not fit its processor into one
        sentence now, instead of the same failure for every video later. An image model sees each
        frame on its own, so one frame stands for the clip (a ViT-B/16 builds in 0.67 instead of
        2.25 s on 2 CPU cores); a video model gets the clip it takes.
        """
        h, w = self.input_size
        frames = self.frames if self.kind == "video" else 1
        blank = np.zeros((frames, h, w, 3), np.uint8)
        batch = self.processor.resize_crop(blank)[None]
        try:
            with torch.inference_mode(), autocast(self.device, self.options.dtype):
                pixels = self.pixel_values(batch)
                if self.pooling == "auto":
                    output = self.model(pixel_values=pixels.flatten(0, 1))
                    has_pooler = getattr(output, "pooler_output", None) is not None
                    self.pooling = "pooler" if has_pooler and not self._pooler_missing else "mean"
                features = self.forward_features(pixels)
        except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as error:
            what = f"a clip of {frames} frames" if self.kind == "video" else "a frame"
            raise VidcapError(
                f"hf:{self.source} cannot encode {what} at {h}x{w}, the size its processor "
                f"produces: {_first_line(error)}"
            ) from error
        if features.ndim != 2 or features.shape[0] != 1:
            raise VidcapError(
                f"hf:{self.source} returned features of shape {tuple(features.shape)} for one "
                "clip; vidcap needs one vector per clip."
            )
        return int(features.shape[1])

    # -- the ClipEncoder interface ------------------------------------------------------------

    def frame_indices(self, clip_frames: int) -> np.ndarray | None:
        """Which frames of a ``clip_frames``-frame clip :meth:`prepare` reads (None: every one).

        Decoding straight from videos converts and keeps only these (an image model reading 4 of
        a clip's 30 frames lets the decoder skip the other 26); :meth:`prepare` must give the same
        result whatever the other frames hold.
        """
        return sample_indices(clip_frames, self.frames)

    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        """Sample the clip's frames and resize / crop them: ``[frames, 3, h, w]`` uint8."""
        frames = clip[self.frame_indices(len(clip))]
        return self.processor.resize_crop(frames)

    def pixel_values(self, batch: torch.Tensor) -> torch.Tensor:
        """Stacked ``prepare`` outputs → normalised float32 ``[B, frames, 3, h, w]`` on the device."""
        return self.processor.normalize(batch.to(self.device, non_blocking=True))

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
        """Features ``[B, dim]`` float32 on the device for stacked ``prepare`` outputs.

        Nothing waits for the device (see :meth:`ClipEncoder.embed`). NaN / inf are passed
        through: the encode stage marks such a video as failed.
        """
        with torch.inference_mode(), autocast(self.device, self.options.dtype):
            features = self.forward_features(self.pixel_values(batch))
        return features.float()

    def describe(self) -> dict[str, Any]:
        """Name (with the model id or path), dim, kind, frames sampled, pooling and input size."""
        info: dict[str, Any] = {
            "name": self.name,
            "dim": self.dim,
            "kind": self.kind,
            "frames": self.frames,
            "pooling": self.pooling,
            "model_type": self.model_type,
            "input_size": list(self.input_size),
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


__all__ = ["IMAGE_FRAMES_PER_CLIP", "HFClipEncoder", "Processor", "build", "load_processor"]
