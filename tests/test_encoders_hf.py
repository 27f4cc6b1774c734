"""The ``hf:`` encoder family on tiny models saved to disk (the code path a hub id takes).

Every model here is a 2-layer, 32-wide transformer on 32x32 inputs; each is saved with
``save_pretrained`` next to a ``preprocessor_config.json`` written the way the hub stores them (the
processor classes themselves need torchvision or Pillow, which vidcap does not depend on).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vidcap.encoders import EncoderOptions, build_encoder
from vidcap.encoders.hf import (
    IMAGE_FRAMES_PER_CLIP,
    FrameTransform,
    HFClipEncoder,
    build,
    transform_from_processor,
)
from vidcap.errors import VidcapError

transformers = pytest.importorskip("transformers")

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
}
TINY_TEXT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "vocab_size": 64,
    "max_position_embeddings": 16,
}

# Processor configs as the hub stores them (CLIP: shortest edge + crop, bicubic; ViT: a square).
CLIP_PROCESSOR = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 32},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 32, "width": 32},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": CLIP_MEAN,
    "image_std": CLIP_STD,
}
BIT_PROCESSOR = {
    **CLIP_PROCESSOR,
    "image_processor_type": "BitImageProcessor",
    "size": {"shortest_edge": 36},
    "image_mean": IMAGENET_MEAN,
    "image_std": IMAGENET_STD,
}
VIT_PROCESSOR = {
    "image_processor_type": "ViTImageProcessor",
    "do_resize": True,
    "size": {"height": 32, "width": 32},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}
# A legacy video processor file: no do_rescale / rescale_factor (the defaults apply).
VIDEOMAE_PROCESSOR = {
    "feature_extractor_type": "VideoMAEFeatureExtractor",
    "do_resize": True,
    "size": {"shortest_edge": 32},
    "resample": 2,
    "do_center_crop": True,
    "crop_size": {"height": 32, "width": 32},
    "do_normalize": True,
    "image_mean": IMAGENET_MEAN,
    "image_std": IMAGENET_STD,
}


def _models() -> dict[str, tuple[Any, dict[str, Any]]]:
    """name → (a tiny randomly initialised model, its processor config)."""
    t = transformers
    return {
        "clip_vision": (t.CLIPVisionModel(t.CLIPVisionConfig(**TINY)), CLIP_PROCESSOR),
        "clip": (
            t.CLIPModel(t.CLIPConfig(text_config=TINY_TEXT, vision_config=TINY, projection_dim=16)),
            CLIP_PROCESSOR,
        ),
        "dinov2": (
            t.Dinov2Model(
                t.Dinov2Config(**{k: v for k, v in TINY.items() if k != "intermediate_size"})
            ),
            BIT_PROCESSOR,
        ),
        # Saved from a classifier, as google/vit-base-patch16-224 is: AutoModel finds no pooler.
        "vit_classifier": (
            t.ViTForImageClassification(t.ViTConfig(**TINY, num_labels=3)),
            VIT_PROCESSOR,
        ),
        "videomae": (
            t.VideoMAEModel(t.VideoMAEConfig(**TINY, num_frames=4, tubelet_size=2)),
            VIDEOMAE_PROCESSOR,
        ),
        "timesformer": (
            t.TimesformerModel(t.TimesformerConfig(**TINY, num_frames=4)),
            VIDEOMAE_PROCESSOR,
        ),
        "xclip": (
            t.XCLIPModel(
                t.XCLIPConfig(
                    text_config=TINY_TEXT,
                    vision_config={
                        **TINY,
                        "num_frames": 4,
                        "mit_hidden_size": 16,
                        "mit_intermediate_size": 32,
                        "mit_num_hidden_layers": 1,
                        "mit_num_attention_heads": 2,
                    },
                    projection_dim=16,
                    prompt_layers=1,
                    prompt_attention_heads=2,
                )
            ),
            {**VIDEOMAE_PROCESSOR, "image_mean": CLIP_MEAN, "image_std": CLIP_STD},
        ),
    }


# name → (kind, dim, frames per clip, pooling) the encoder must settle on.
EXPECTED = {
    "clip_vision": ("image", 32, IMAGE_FRAMES_PER_CLIP, "pooler"),
    "clip": ("image", 16, IMAGE_FRAMES_PER_CLIP, "image_features"),
    "dinov2": ("image", 32, IMAGE_FRAMES_PER_CLIP, "pooler"),
    "vit_classifier": ("image", 32, IMAGE_FRAMES_PER_CLIP, "mean"),
    "videomae": ("video", 32, 4, "mean"),
    "timesformer": ("video", 32, 4, "cls"),
    "xclip": ("video", 16, 4, "video_features"),
}


def _save(model: Any, processor: dict[str, Any] | None, path: Path) -> Path:
    model.save_pretrained(path)
    if processor is not None:
        (path / "preprocessor_config.json").write_text(json.dumps(processor))
    return path


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_models")
    torch.manual_seed(0)
    return {name: _save(m, p, root / name) for name, (m, p) in _models().items()}


@pytest.fixture(scope="module")
def encoders(model_dirs: dict[str, Path]) -> dict[str, HFClipEncoder]:
    return {name: build_encoder(f"hf:{path}") for name, path in model_dirs.items()}


def _clips(n: int = 3, frames: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    # Not square and not the model's size, so resize and crop both do something.
    return [rng.integers(0, 256, (frames, 40, 56, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_features_shape_finite_deterministic_distinct(
    name: str, encoders: dict[str, HFClipEncoder], model_dirs: dict[str, Path]
) -> None:
    encoder = encoders[name]
    kind, dim, frames, pooling = EXPECTED[name]
    assert (encoder.kind, encoder.dim, encoder.frames, encoder.pooling) == (
        kind,
        dim,
        frames,
        pooling,
    )
    clips = _clips()
    features = encoder.encode(clips)
    assert features.shape == (3, dim) and features.dtype == np.float32
    assert np.isfinite(features).all()
    # Deterministic: the same encoder twice, and a second load of the same folder.
    np.testing.assert_array_equal(encoder.encode(clips), features)
    again = build_encoder(f"hf:{model_dirs[name]}").encode(clips)
    np.testing.assert_allclose(again, features, rtol=0, atol=1e-6)
    # Different clips give different features.
    assert np.abs(features[0] - features[1]).max() > 1e-4
    # A batch gives each clip the features it gets alone.
    np.testing.assert_allclose(encoder.encode(clips[1:2])[0], features[1], atol=1e-5)


def test_describe_records_what_rebuilds_it(
    encoders: dict[str, HFClipEncoder], model_dirs: dict[str, Path]
) -> None:
    info = encoders["videomae"].describe()
    assert info["name"] == f"hf:{model_dirs['videomae']}"
    assert (info["dim"], info["kind"], info["frames"]) == (32, "video", 4)
    assert info["input_size"] == [32, 32]
    assert info["model_type"] == "videomae"
    rebuilt = build_encoder(info["name"])
    assert rebuilt.describe() == info
    assert encoders["clip"].describe()["kind"] == "image"


def test_prepare_gives_fixed_uint8_frames(encoders: dict[str, HFClipEncoder]) -> None:
    image, video = encoders["dinov2"], encoders["videomae"]
    for clip in (np.zeros((30, 48, 64, 3), np.uint8), np.zeros((2, 90, 40, 3), np.uint8)):
        assert image.prepare(clip).shape == (IMAGE_FRAMES_PER_CLIP, 3, 32, 32)
        assert video.prepare(clip).shape == (4, 3, 32, 32)
        assert image.prepare(clip).dtype == torch.uint8


@pytest.mark.slow
def test_pickles_without_the_model_for_dataloader_workers(
    encoders: dict[str, HFClipEncoder],
) -> None:
    encoder = encoders["clip"]
    blob = pickle.dumps(encoder)
    # Weights stay behind: the tiny CLIP alone is ~100 kB of float32.
    assert len(blob) < 10_000
    clone = pickle.loads(blob)
    clip = _clips(1)[0]
    assert torch.equal(clone.prepare(clip), encoder.prepare(clip))
    # The clone reloads the model when it is asked to embed.
    np.testing.assert_allclose(clone.encode([clip]), encoder.encode([clip]), atol=1e-6)

    # A spawned worker receives the encoder pickled, as on macOS / Windows or with CUDA.
    loader = torch.utils.data.DataLoader(
        _Prepared(encoder, _clips(4)),
        batch_size=2,
        num_workers=1,
        multiprocessing_context="spawn",
    )
    batches = [encoder.embed(batch) for batch in loader]
    np.testing.assert_allclose(torch.cat(batches).numpy(), encoder.encode(_clips(4)), atol=1e-5)


class _Prepared(torch.utils.data.Dataset):
    """Clips prepared in the DataLoader worker, as the encode stage does."""

    def __init__(self, encoder: HFClipEncoder, clips: list[np.ndarray]) -> None:
        self.encoder, self.clips = encoder, clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.encoder.prepare(self.clips[i])


def test_image_frames_per_clip_is_a_choice(model_dirs: dict[str, Path]) -> None:
    encoder = HFClipEncoder(str(model_dirs["dinov2"]), EncoderOptions(), frames=2)
    assert encoder.frames == 2 and encoder.prepare(_clips(1)[0]).shape[0] == 2
    assert encoder.describe()["frames"] == 2


def test_bfloat16_autocast_returns_float32(model_dirs: dict[str, Path]) -> None:
    clips = _clips(2)
    full = build_encoder(f"hf:{model_dirs['clip_vision']}").encode(clips)
    half = build_encoder(
        f"hf:{model_dirs['clip_vision']}", EncoderOptions(dtype="bfloat16")
    ).encode(clips)
    assert half.dtype == np.float32 and np.isfinite(half).all()
    np.testing.assert_allclose(half, full, atol=0.1)


# -- sentences, not tracebacks ---------------------------------------------------------------------


def test_missing_argument_is_a_sentence() -> None:
    with pytest.raises(VidcapError, match=r"hf needs a model: hf:<hub id or local path>"):
        build_encoder("hf")
    with pytest.raises(VidcapError, match="hf needs a model"):
        build(None, EncoderOptions())


def test_missing_folder_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(VidcapError, match="no model folder"):
        build_encoder(f"hf:{tmp_path / 'nothing-here'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VidcapError, match="cannot load a transformers model config"):
        build_encoder(f"hf:{tmp_path / 'empty'}")


def test_text_model_is_refused(tmp_path: Path) -> None:
    bert = transformers.BertModel(transformers.BertConfig(**TINY_TEXT))
    _save(bert, None, tmp_path / "bert")
    with pytest.raises(VidcapError, match="not a vision model"):
        build_encoder(f"hf:{tmp_path / 'bert'}")


def test_model_without_processor_config_is_a_sentence(tmp_path: Path) -> None:
    model = transformers.ViTModel(transformers.ViTConfig(**TINY))
    _save(model, None, tmp_path / "vit")
    with pytest.raises(VidcapError, match="no image processor config"):
        build_encoder(f"hf:{tmp_path / 'vit'}")


def test_processor_that_does_not_fit_the_model_is_a_sentence(tmp_path: Path) -> None:
    model = transformers.ViTModel(transformers.ViTConfig(**TINY))
    _save(model, {**VIT_PROCESSOR, "size": {"height": 48, "width": 48}}, tmp_path / "vit")
    with pytest.raises(VidcapError, match="cannot encode a clip of 4 frames at 48x48"):
        build_encoder(f"hf:{tmp_path / 'vit'}")


def test_checkpoint_missing_weights_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = _save(
        transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**TINY)),
        CLIP_PROCESSOR,
        tmp_path / "clip",
    )
    weights = load_file(str(path / "model.safetensors"))
    del weights[next(k for k in weights if "layers.1.mlp.fc1.weight" in k)]
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(VidcapError, match="lacks weights"):
        build_encoder(f"hf:{path}")


def test_unknown_device_and_dtype_are_sentences(model_dirs: dict[str, Path]) -> None:
    with pytest.raises(VidcapError, match="dtype"):
        build_encoder(f"hf:{model_dirs['dinov2']}", EncoderOptions(dtype="float8"))
    with pytest.raises(VidcapError, match="device"):
        build_encoder(f"hf:{model_dirs['dinov2']}", EncoderOptions(device="tpu"))


# -- reading processor configs -----------------------------------------------------------------


def test_processor_config_reading() -> None:
    clip = transform_from_processor(CLIP_PROCESSOR, None)
    assert clip.resize == ("shortest", 32, 0) and clip.crop == (32, 32)
    assert clip.interpolation == "bicubic" and clip.mean == tuple(CLIP_MEAN)
    # Legacy bare-int sizes: the shortest edge when the processor crops, else a square.
    legacy = transform_from_processor({**CLIP_PROCESSOR, "size": 224, "crop_size": 224}, None)
    assert legacy.resize == ("shortest", 224, 0) and legacy.crop == (224, 224)
    square = transform_from_processor({**VIT_PROCESSOR, "size": 224}, None)
    assert square.resize == ("exact", 224, 224) and square.crop is None
    # ViViT rescales to [-1, 1]: scale 1/127.5, offset -1 (its default).
    vivit = transform_from_processor(
        {
            **VIDEOMAE_PROCESSOR,
            "image_processor_type": "VivitImageProcessor",
            "rescale_factor": 1 / 127.5,
        },
        None,
    )
    assert vivit.offset == -1.0
    pixels = vivit.normalize(
        torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2).expand(3, 1, 2)
    )
    np.testing.assert_allclose(
        pixels[:, 0, 0].numpy(), (-1 - np.array(IMAGENET_MEAN)) / IMAGENET_STD, rtol=1e-5
    )
    # A free output size is cropped to the square the shortest edge names.
    free = transform_from_processor({**VIT_PROCESSOR, "size": {"shortest_edge": 40}}, None)
    assert free.size == (40, 40)
    with pytest.raises(ValueError, match="image_mean"):
        transform_from_processor({**VIT_PROCESSOR, "image_mean": None}, None)


def test_resize_and_crop_keep_the_centre() -> None:
    transform = FrameTransform(resize=("shortest", 20, 0), crop=(16, 16), scale=1.0)
    frame = np.zeros((1, 60, 120, 3), np.uint8)
    frame[:, 20:40, 50:70] = 255  # a white square in the middle of a wide frame
    out = transform.resize_crop(frame)
    assert out.shape == (1, 3, 16, 16)
    # Resized to 20x40 then centre-cropped: the square (now ~7 px) sits in the middle.
    assert out[0, 0, 8, 8] > 200 and out[0, 0, 1, 1] < 50
    portrait = transform.resize_crop(np.zeros((2, 90, 30, 3), np.uint8))
    assert portrait.shape == (2, 3, 16, 16)
    # A crop larger than the frame pads with black instead of failing.
    padded = FrameTransform(resize=None, crop=(8, 8)).resize_crop(
        np.full((1, 4, 4, 3), 9, np.uint8)
    )
    assert padded.shape == (1, 3, 8, 8) and padded[0, 0, 0, 0] == 0 and padded[0, 0, 4, 4] == 9


def test_matches_transformers_processor_when_it_can_run(tmp_path: Path) -> None:
    """With torchvision present, transformers' own processor must give the same pixels."""
    if not transformers.utils.is_torchvision_available():
        pytest.skip("transformers' image processors need torchvision here")
    from vidcap.encoders.hf import _load_processor_config

    processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}
    )
    processor.save_pretrained(tmp_path)
    transform = transform_from_processor(_load_processor_config(str(tmp_path)), None)
    frames = np.random.default_rng(1).integers(0, 256, (3, 50, 70, 3), dtype=np.uint8)
    expected = processor(images=list(frames), return_tensors="pt").pixel_values
    np.testing.assert_allclose(
        transform.normalize(transform.resize_crop(frames)), expected, atol=1e-5
    )
