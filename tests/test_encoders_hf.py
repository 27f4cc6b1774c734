"""The ``hf:`` encoder family on tiny models saved to disk (the code path a hub id takes).

Every model here is a 2-layer, 32-wide network on 32x32 inputs; each is saved with
``save_pretrained`` next to its image processor, saved the same way. Where torchvision is installed
the processors run on its backend (video models through their video processors), elsewhere on
Pillow's; either way vidcap's pixels must equal the processor's own output.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vidcap.encoders import EncoderOptions, build_encoder
from vidcap.encoders.hf import IMAGE_FRAMES_PER_CLIP, HFClipEncoder, build
from vidcap.errors import VidcapError

transformers = pytest.importorskip("transformers")
HAVE_TORCHVISION = importlib.util.find_spec("torchvision") is not None

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


def _processors() -> dict[str, Any]:
    """The image processors the tiny models are saved with (the hub's settings, scaled to 32 px)."""
    t = transformers
    clip = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}
    return {
        # CLIP: shortest edge + centre crop, bicubic.
        "clip": t.CLIPImageProcessor(**clip, image_mean=CLIP_MEAN, image_std=CLIP_STD),
        # DINOv2: BiT's processor, resized past the crop (256 → 224 on the hub).
        "bit": t.BitImageProcessor(
            size={"shortest_edge": 36},
            crop_size={"height": 32, "width": 32},
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
        ),
        # ViT: a square, no crop.
        "vit": t.ViTImageProcessor(size={"height": 32, "width": 32}),
        # ConvNeXt: the shortest edge to size / crop_pct, then a centre crop of size.
        "convnext": t.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875),
        "videomae": t.VideoMAEImageProcessor(**clip),
        # ViViT: rescaled to [-1, 1] (its processor's offset) before normalising.
        "vivit": t.VivitImageProcessor(**clip),
        "xclip": t.VideoMAEImageProcessor(**clip, image_mean=CLIP_MEAN, image_std=CLIP_STD),
    }


def _models() -> dict[str, tuple[Any, dict[str, Any]]]:
    """name → (a tiny randomly initialised model, its processor config)."""
    t = transformers
    p = _processors()
    return {
        "clip_vision": (t.CLIPVisionModel(t.CLIPVisionConfig(**TINY)), p["clip"]),
        "clip": (
            t.CLIPModel(t.CLIPConfig(text_config=TINY_TEXT, vision_config=TINY, projection_dim=16)),
            p["clip"],
        ),
        "dinov2": (
            t.Dinov2Model(
                t.Dinov2Config(**{k: v for k, v in TINY.items() if k != "intermediate_size"})
            ),
            p["bit"],
        ),
        # Saved from a classifier, as google/vit-base-patch16-224 is: AutoModel finds no pooler.
        "vit_classifier": (
            t.ViTForImageClassification(t.ViTConfig(**TINY, num_labels=3)),
            p["vit"],
        ),
        "convnext": (
            t.ConvNextModel(t.ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1])),
            p["convnext"],
        ),
        "videomae": (
            t.VideoMAEModel(t.VideoMAEConfig(**TINY, num_frames=4, tubelet_size=2)),
            p["videomae"],
        ),
        "timesformer": (
            t.TimesformerModel(t.TimesformerConfig(**TINY, num_frames=4)),
            p["videomae"],
        ),
        "vivit": (
            t.VivitModel(
                t.VivitConfig(
                    **{k: v for k, v in TINY.items() if k != "patch_size"},
                    num_frames=4,
                    tubelet_size=[2, 8, 8],
                )
            ),
            p["vivit"],
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
            p["xclip"],
        ),
    }


# name → (kind, dim, frames per clip, pooling) the encoder must settle on.
EXPECTED = {
    "clip_vision": ("image", 32, IMAGE_FRAMES_PER_CLIP, "pooler"),
    "clip": ("image", 16, IMAGE_FRAMES_PER_CLIP, "image_features"),
    "dinov2": ("image", 32, IMAGE_FRAMES_PER_CLIP, "pooler"),
    "vit_classifier": ("image", 32, IMAGE_FRAMES_PER_CLIP, "mean"),
    "convnext": ("image", 64, IMAGE_FRAMES_PER_CLIP, "pooler"),
    "videomae": ("video", 32, 4, "mean"),
    "timesformer": ("video", 32, 4, "cls"),
    "vivit": ("video", 32, 4, "cls"),
    "xclip": ("video", 16, 4, "video_features"),
}


def _save(model: Any, processor: Any, path: Path) -> Path:
    model.save_pretrained(path)
    if processor is not None:
        processor.save_pretrained(path)
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


# Operators that read a tensor's values back to the host: on a GPU each one waits for all the work
# queued before it, which would stop the model running a batch ahead of the stage reading it.
_HOST_READS = {"_local_scalar_dense", "is_nonzero", "nonzero", "equal", "masked_select", "unique"}


class _HostReads(TorchDispatchMode):
    """Records the operators of ``_HOST_READS`` run under it (on any device: here, the CPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        if name in _HOST_READS:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_embedding_never_reads_values_back(name: str, encoders: dict[str, HFClipEncoder]) -> None:
    """Preprocessing and the model only queue work: the stage reads the features back itself,
    a batch later (``OneBatchAhead``), so a GPU is not left waiting between batches."""
    encoder = encoders[name]
    batch = torch.stack([encoder.prepare(clip) for clip in _clips()])
    with _HostReads() as reads:
        encoder.embed(batch)
    assert reads.seen == []
    # The recorder does see a read-back when one happens.
    with _HostReads() as reads:
        encoder.embed(batch).sum().item()
    assert reads.seen == ["_local_scalar_dense"]


def test_building_probes_an_image_model_with_one_frame_and_a_video_model_with_its_clip(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Building runs the model on a blank input to read the feature size; an image model sees
    # frames one by one, so a single frame does (a 4-frame clip cost 4x the compute).
    seen: list[tuple[int, ...]] = []
    forward = HFClipEncoder.forward_features

    def recording(self: HFClipEncoder, pixel_values: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(pixel_values.shape[:2]))
        return forward(self, pixel_values)

    monkeypatch.setattr(HFClipEncoder, "forward_features", recording)
    assert build_encoder(f"hf:{model_dirs['clip']}").frames == IMAGE_FRAMES_PER_CLIP
    assert build_encoder(f"hf:{model_dirs['videomae']}").frames == 4
    assert seen == [(1, 1), (1, 4)]


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
    with pytest.raises(VidcapError, match="no usable image processor"):
        build_encoder(f"hf:{tmp_path / 'vit'}")


def test_processor_that_does_not_fit_the_model_is_a_sentence(tmp_path: Path) -> None:
    model = transformers.ViTModel(transformers.ViTConfig(**TINY))
    processor = transformers.ViTImageProcessor(size={"height": 48, "width": 48})
    _save(model, processor, tmp_path / "vit")
    with pytest.raises(VidcapError, match="cannot encode a frame at 48x48"):
        build_encoder(f"hf:{tmp_path / 'vit'}")


def test_checkpoint_missing_weights_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = _save(
        transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**TINY)),
        _processors()["clip"],
        tmp_path / "clip",
    )
    weights = load_file(str(path / "model.safetensors"))
    del weights[next(k for k in weights if "layers.1.mlp.fc1.weight" in k)]
    save_file(weights, str(path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(VidcapError, match="lacks weights"):
        build_encoder(f"hf:{path}")


def _one_sentence(error: pytest.ExceptionInfo[VidcapError]) -> str:
    text = str(error.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_folder_without_weights_is_a_sentence(tmp_path: Path) -> None:
    path = _save(
        transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**TINY)),
        _processors()["clip"],
        tmp_path / "clip",
    )
    (path / "model.safetensors").unlink()
    with pytest.raises(VidcapError, match="cannot load the model's weights") as error:
        build_encoder(f"hf:{path}")
    assert _one_sentence(error).startswith(f"hf:{path}: ")


def test_hub_id_that_cannot_be_reached_is_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # Offline, as this machine is: the answer comes at once instead of after the hub's retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(VidcapError, match="cannot load a transformers model config") as error:
        build_encoder("hf:nobody-here/no-such-model")
    said = _one_sentence(error)
    assert "neither a local model folder nor a reachable Hugging Face hub id" in said
    # A compute node without network is told how to get the model there.
    assert "(`hf download nobody-here/no-such-model --local-dir DIR`) and give hf:DIR." in said
    assert "HF_HUB_OFFLINE=1" not in said  # set already: the cache was looked in


def test_a_hub_out_of_reach_online_also_points_to_offline_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without HF_HUB_OFFLINE the hub was tried (6 times over 23 s): set it to use a cache."""
    import huggingface_hub.constants
    from transformers import AutoConfig

    def unreachable(source: str, **_: object) -> None:
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(AutoConfig, "from_pretrained", unreachable)
    with pytest.raises(VidcapError) as error:
        build_encoder("hf:nobody-here/no-such-model")
    said = _one_sentence(error)
    assert "--local-dir DIR`) and give hf:DIR; or, with a hub cache" in said
    assert "set HF_HUB_OFFLINE=1 here" in said


def test_a_hub_that_answers_gets_no_offline_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt id on a machine that reached the hub: no advice about networks."""
    from transformers import AutoConfig

    def missing(source: str, **_: object) -> None:
        raise OSError(f"{source} is not a local folder and is not a valid model identifier")

    monkeypatch.setattr(AutoConfig, "from_pretrained", missing)
    with pytest.raises(VidcapError, match="not a valid model identifier") as error:
        build_encoder("hf:nobody-here/no-such-model")
    assert "hf download" not in _one_sentence(error)


@pytest.mark.slow
def test_a_hub_id_loads_from_the_hub_cache_and_records_its_commit(tmp_path: Path) -> None:
    """A hub id takes the hub's own path (here offline, from a cache laid out as a download
    leaves it), and the encoder records the commit it loaded, for the bundle's provenance."""
    import os
    import subprocess
    import sys

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--vidcap-test--tiny-clip"
    torch.manual_seed(0)
    model, processor = _models()["clip_vision"]
    _save(model, processor, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    # A fresh process: huggingface_hub reads its cache location when imported.
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    code = (
        "import json; from vidcap.encoders import build_encoder; "
        "print(json.dumps(build_encoder('hf:vidcap-test/tiny-clip').describe()))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    described = json.loads(run.stdout.strip().splitlines()[-1])
    assert described["name"] == "hf:vidcap-test/tiny-clip" and described["revision"] == commit
    assert described["dim"] == EXPECTED["clip_vision"][1]
    # A local folder has no commit to record.
    assert "revision" not in build_encoder(f"hf:{repo / 'snapshots' / commit}").describe()


def test_torchvision_that_does_not_import_is_a_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torchvision built for another torch (PyPI's CUDA wheel beside a CPU torch) breaks every
    transformers processor; vidcap says so before transformers tries."""
    import importlib.abc
    import importlib.util
    import sys

    from vidcap.encoders.hf import load_processor

    class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name: str, *args: object) -> Any:
            if name == "torchvision":
                return importlib.util.spec_from_loader(name, self)
            return None

        def create_module(self, spec: Any) -> None:
            return None

        def exec_module(self, module: Any) -> None:
            raise RuntimeError("operator torchvision::nms does not exist")

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(
        VidcapError, match=r"torchvision is installed but does not import \(operator"
    ) as error:
        load_processor("some/model", video=False)
    assert "reinstall the torchvision release built for your torch" in _one_sentence(error)


def test_unknown_device_and_dtype_are_sentences(model_dirs: dict[str, Path]) -> None:
    with pytest.raises(VidcapError, match="dtype"):
        build_encoder(f"hf:{model_dirs['dinov2']}", EncoderOptions(dtype="float8"))
    with pytest.raises(VidcapError, match="device"):
        build_encoder(f"hf:{model_dirs['dinov2']}", EncoderOptions(device="tpu"))


# -- the model's own processor -----------------------------------------------------------------


def _processor_output(path: Path, kind: str, frames: np.ndarray) -> torch.Tensor:
    """What transformers' own processor, loaded on its own, makes of ``frames`` in one call."""
    if kind == "video" and HAVE_TORCHVISION:
        processor = transformers.AutoVideoProcessor.from_pretrained(path)
        output = processor(videos=[frames], do_sample_frames=False, return_tensors="pt")
        return next(iter(output.values()))[0]
    processor = transformers.AutoImageProcessor.from_pretrained(path)
    pixels = processor(list(frames), return_tensors="pt").pixel_values
    return pixels.reshape(-1, *pixels.shape[-3:])  # video models' image processors: [1, T, ...]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_pixels_equal_the_models_own_processor(
    name: str, encoders: dict[str, HFClipEncoder], model_dirs: dict[str, Path]
) -> None:
    encoder = encoders[name]
    # A clip at a size and shape none of the processors produce: every step does something.
    clip = np.random.default_rng(3).integers(0, 256, (30, 45, 80, 3), dtype=np.uint8)
    expected = _processor_output(
        model_dirs[name], encoder.kind, clip[encoder.frame_indices(len(clip))]
    )
    ours = encoder.pixel_values(encoder.prepare(clip)[None])[0]
    assert ours.dtype == torch.float32 and ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    assert encoder.describe()["input_size"] == list(expected.shape[-2:])


def test_convnext_crops_as_its_processor_does(encoders: dict[str, HFClipEncoder]) -> None:
    """ConvNeXt's ``crop_pct``: the shortest edge to 32 / 0.875 = 36, then the centre 32x32.

    A bar in the frame's left and right 8% survives a stretch to 32x32 but not that crop.
    """
    frame = np.zeros((1, 36, 72, 3), np.uint8)
    frame[:, :, :6] = frame[:, :, -6:] = 255
    pixels = encoders["convnext"].processor.resize_crop(frame)
    assert pixels.shape == (1, 3, 32, 32)
    assert int(pixels.max()) == 0


def test_frame_indices_name_what_prepare_reads(encoders: dict[str, HFClipEncoder]) -> None:
    image, video = encoders["dinov2"], encoders["videomae"]
    np.testing.assert_array_equal(image.frame_indices(30), [3, 11, 18, 26])
    assert len(video.frame_indices(30)) == 4
    # Frames outside the indices do not change what prepare gives.
    clip = np.random.default_rng(4).integers(0, 256, (30, 40, 56, 3), dtype=np.uint8)
    sparse = np.zeros_like(clip)
    for encoder in (image, video):
        keep = encoder.frame_indices(len(clip))
        sparse[:] = 0
        sparse[keep] = clip[keep]
        assert torch.equal(encoder.prepare(sparse), encoder.prepare(clip))


def test_processor_without_a_fixed_size_is_a_sentence(tmp_path: Path) -> None:
    # The shortest edge resized and nothing cropped: a wide and a tall video would not batch.
    processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32}, do_center_crop=False)
    _save(transformers.ViTModel(transformers.ViTConfig(**TINY)), processor, tmp_path / "vit")
    with pytest.raises(VidcapError, match="gives frames of different sizes"):
        build_encoder(f"hf:{tmp_path / 'vit'}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["clip_vision", "videomae"])
def test_from_videos_equals_extract_then_encode(
    name: str, model_dirs: dict[str, Path], synth_corpus: Path, frames_dir: Path, tmp_path: Path
) -> None:
    """Encoding straight from the videos (the clips' read frames sent from the decode child,
    prepared here) gives the features of extract then encode."""
    from vidcap.artifacts.readers import load_features
    from vidcap.stages.encode import EncodeConfig, run_encode
    from vidcap.stages.encode_videos import run_encode_videos
    from vidcap.stages.extract import ExtractConfig
    from vidcap.stages.inputs import resolve_inputs

    videos = sorted((synth_corpus.parent / "videos").glob("*.mp4"))[:2]
    config = EncodeConfig(encoder=f"hf:{model_dirs[name]}", loader_workers=0, save_dtype="float32")
    assert run_encode(frames_dir, tmp_path / "a", config).ok
    inputs = resolve_inputs([str(v) for v in videos])
    result = run_encode_videos(inputs, tmp_path / "b", config, ExtractConfig(size=64))
    assert result.ok, result.failures
    for video in videos:
        a = load_features(next((tmp_path / "a").rglob(f"{video.stem}*.safetensors")))
        b = load_features(next((tmp_path / "b").rglob(f"{video.stem}*.safetensors")))
        assert a["features"].shape == b["features"].shape
        assert np.allclose(a["features"], b["features"], atol=1e-5), video.stem
