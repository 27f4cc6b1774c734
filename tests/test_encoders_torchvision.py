"""The optional ``torchvision:`` encoder family.

Both sides are covered wherever the tests run: without torchvision, that building one says how to
install it (and, with torchvision installed, that absence is simulated); with torchvision, that the
headless models encode clips, from random weights ("none") or a local file — the published weights
need the internet, so only their failure to download is checked.

PyPI has no torchvision for the CPU torch 2.13.0 that the main test run uses: its Linux x86_64
wheels are built against the CUDA torch, and beside the CPU torch their C++ ops do not load, which
breaks ``import torchvision`` and, through it, transformers. So ``.ci/run`` runs this file (and
``test_encoders_hf.py``, for the torchvision-backed processors) a second time in an environment with
the pair that does import, torch 2.14.1 + torchvision 0.29.1 (CUDA builds, run on the CPU), and sets
``VIDCAP_REQUIRE_TORCHVISION=1`` there so these tests fail instead of skipping.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidcap.encoders import EncoderOptions, build_encoder
from vidcap.encoders import torchvision_video as tvv
from vidcap.encoders.base import sample_indices
from vidcap.errors import VidcapError
from videos import coded_frames

_PROBLEM = tvv.unavailable()
HAVE_TORCHVISION = _PROBLEM is None
if os.environ.get("VIDCAP_REQUIRE_TORCHVISION") == "1" and not HAVE_TORCHVISION:
    raise RuntimeError(f"VIDCAP_REQUIRE_TORCHVISION=1 but torchvision cannot run: {_PROBLEM}")
needs_torchvision = pytest.mark.skipif(
    not HAVE_TORCHVISION,
    reason=f"torchvision cannot run here ({_PROBLEM}); PyPI's torchvision wheels for Linux are "
    "built for the CUDA torch: .ci/run runs these tests in a second environment where it imports",
)


def _clips(n: int = 2, frames: int = 20) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (frames, 48, 64, 3), dtype=np.uint8) for _ in range(n)]


# -- without torchvision -------------------------------------------------------------------------


def _hide_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` → ImportError


def test_missing_torchvision_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_torchvision(monkeypatch)
    reason = tvv.unavailable()
    assert reason is not None and "torchvision==0." in reason and "pip install torch==" in reason
    # torchvision 0.(N+15).P goes with torch 2.N.P; a nightly gets no pair pip could not install.
    for torch_version, said in [
        ("2.13.0+cpu", "`pip install torch==2.13.0 torchvision==0.28.0`"),
        ("2.9.1", "`pip install torch==2.9.1 torchvision==0.24.1`"),
        ("2.14.0.dev20260101", "the torchvision built for your torch 2.14.0.dev20260101"),
    ]:
        monkeypatch.setattr(tvv.torch, "__version__", torch_version)
        assert said in tvv.unavailable()
    with pytest.raises(VidcapError, match=r"cannot run here: torchvision is not installed"):
        build_encoder("torchvision:s3d")


def test_broken_torchvision_says_what_to_reinstall(monkeypatch: pytest.MonkeyPatch) -> None:
    class _Broken:
        """A torchvision built for another torch: importing it raises."""

        def find_spec(self, name: str, *args: object) -> None:
            if name == "torchvision":
                raise RuntimeError("operator torchvision::nms does not exist")

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_Broken(), *sys.meta_path])
    reason = tvv.unavailable()
    assert reason is not None and "does not import" in reason and "nms" in reason


def test_argument_and_name_are_checked_before_torchvision_is_needed() -> None:
    with pytest.raises(VidcapError, match=r"torchvision needs a model: torchvision:<name>"):
        tvv.build(None, EncoderOptions())
    with pytest.raises(VidcapError, match="unknown torchvision video model 'resnet50'"):
        tvv.build("resnet50", EncoderOptions())


# -- with torchvision ----------------------------------------------------------------------------


@pytest.fixture
def tiny_mc3(monkeypatch: pytest.MonkeyPatch) -> str:
    """MC3-18 (the smallest of the video ResNets) on 4 frames of 32x32: the real network, on
    inputs a CPU test can afford."""
    spec = tvv.MODELS["mc3_18"]
    monkeypatch.setitem(
        tvv.MODELS, "mc3_18", dataclasses.replace(spec, frames=4, resize=(36, 48), crop=32)
    )
    return "torchvision:mc3_18"


@needs_torchvision
def test_encodes_clips_with_random_weights(tiny_mc3: str) -> None:
    encoder = build_encoder(tiny_mc3, EncoderOptions(weights="none"))
    assert encoder.dim == 512
    clips = _clips(3)
    assert encoder.prepare(clips[0]).shape == (3, 4, 32, 32)
    features = encoder.encode(clips)
    assert features.shape == (3, 512) and features.dtype == np.float32
    assert np.isfinite(features).all()
    # "none" is seeded: a second build gives the same features.
    again = build_encoder(tiny_mc3, EncoderOptions(weights="none")).encode(clips)
    np.testing.assert_allclose(again, features, atol=1e-6)
    assert np.abs(features[0] - features[1]).max() > 1e-6
    info = encoder.describe()
    assert info["name"] == "torchvision:mc3_18" and info["dim"] == 512
    assert (info["kind"], info["frames"], info["weights"]) == ("video", 4, "none")
    # Pickles without its weights, for DataLoader workers, and rebuilds them when asked.
    blob = pickle.dumps(encoder)
    assert len(blob) < 10_000
    np.testing.assert_allclose(pickle.loads(blob).encode(clips[:1]), features[:1], atol=1e-6)


@needs_torchvision
def test_s3d_gives_the_papers_1024_d_features() -> None:
    encoder = build_encoder("torchvision:s3d", EncoderOptions(weights="none"))
    assert encoder.dim == 1024 and encoder.frames == 30
    assert encoder.prepare(_clips(1, frames=30)[0]).shape == (3, 30, 224, 224)


@needs_torchvision
def test_weights_from_a_local_file(tiny_mc3: str, tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from torchvision.models import get_model

    torch.manual_seed(123)
    state = get_model("mc3_18", weights=None, num_classes=7).state_dict()  # any head
    torch.save(state, tmp_path / "mc3.pt")
    torch.save({"model": state}, tmp_path / "wrapped.pth")  # as training scripts save them
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "mc3.safetensors"))

    clips = _clips(2)
    random = build_encoder(tiny_mc3, EncoderOptions(weights="none")).encode(clips)
    features = [
        build_encoder(tiny_mc3, EncoderOptions(weights=str(tmp_path / f))).encode(clips)
        for f in ("mc3.pt", "wrapped.pth", "mc3.safetensors")
    ]
    np.testing.assert_allclose(features[1], features[0], atol=1e-6)
    np.testing.assert_allclose(features[2], features[0], atol=1e-6)
    assert np.abs(features[0] - random).max() > 1e-6
    described = build_encoder(tiny_mc3, EncoderOptions(weights=str(tmp_path / "mc3.pt")))
    assert described.describe()["weights_id"].startswith("sha256:")


@needs_torchvision
def test_bad_weights_files_are_sentences(tiny_mc3: str, tmp_path: Path) -> None:
    from torchvision.models import get_model

    with pytest.raises(VidcapError, match="is not a file"):
        build_encoder(tiny_mc3, EncoderOptions(weights=str(tmp_path / "missing.pt")))
    # A pickle with objects in it is refused, never unpickled.
    torch.save({"args": argparse.Namespace(lr=1)}, tmp_path / "pickled.pt")
    with pytest.raises(VidcapError, match="cannot read weights"):
        build_encoder(tiny_mc3, EncoderOptions(weights=str(tmp_path / "pickled.pt")))
    # Weights of another network: different shapes, and different names.
    torch.save(get_model("r3d_18", weights=None).state_dict(), tmp_path / "r3d.pt")
    with pytest.raises(VidcapError, match=r"do not fit torchvision:mc3_18: .*size mismatch"):
        build_encoder(tiny_mc3, EncoderOptions(weights=str(tmp_path / "r3d.pt")))
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(VidcapError, match="do not fit torchvision:mc3_18: missing stem"):
        build_encoder(tiny_mc3, EncoderOptions(weights=str(tmp_path / "other.pt")))


@needs_torchvision
def test_published_weights_that_cannot_download_are_a_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torchvision.models._api as api

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise OSError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(VidcapError, match=r"cannot fetch the published weights .*s3d-.*\.pth"):
        build_encoder("torchvision:s3d")


@needs_torchvision
def test_preprocessing_matches_the_published_transforms() -> None:
    from torchvision.models import get_model_weights

    frames = _clips(1, frames=8)[0]
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)  # [T, 3, H, W], as the presets take it
    for name, spec in tvv.MODELS.items():
        preset = get_model_weights(name).DEFAULT.transforms()
        assert list(spec.resize) == list(preset.resize_size), name
        assert [spec.crop, spec.crop] == list(preset.crop_size), name
        assert (list(spec.mean), list(spec.std)) == (list(preset.mean), list(preset.std)), name
        resized = spec.resize_crop(frames)
        assert resized.dtype == torch.uint8 and resized.shape == (8, 3, spec.crop, spec.crop)
        ours = spec.normalize(resized.permute(1, 0, 2, 3)[None])[0]
        torch.testing.assert_close(ours, preset(clip), rtol=0, atol=0)


def _plain_torchvision_features(name: str, clip: np.ndarray) -> torch.Tensor:
    """The same clip through torchvision alone: the seeded random model without its classifier, on
    the preset's steps written out with torchvision's functions."""
    from torchvision.models import get_model
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    spec = tvv.MODELS[name]
    torch.manual_seed(tvv.RANDOM_WEIGHTS_SEED)
    model = get_model(name, weights=None).eval()
    setattr(model, spec.head, torch.nn.Identity())
    x = torch.from_numpy(clip[sample_indices(len(clip), spec.frames)]).permute(0, 3, 1, 2)
    x = TF.resize(x, list(spec.resize), InterpolationMode.BILINEAR, antialias=False)
    x = TF.center_crop(x, [spec.crop, spec.crop])
    x = TF.normalize(TF.convert_image_dtype(x, torch.float), list(spec.mean), list(spec.std))
    with torch.inference_mode():
        return model(x.permute(1, 0, 2, 3)[None])


@needs_torchvision
def test_r2plus1d_features_equal_a_plain_torchvision_forward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # R(2+1)D-18 pools adaptively: 48x48 crops keep the real network affordable on a CPU.
    spec = dataclasses.replace(tvv.MODELS["r2plus1d_18"], resize=(54, 72), crop=48)
    monkeypatch.setitem(tvv.MODELS, "r2plus1d_18", spec)
    clip = coded_frames(30, 90, 160)  # a 1.5 s clip at 20 fps, 16:9
    encoder = build_encoder("torchvision:r2plus1d_18", EncoderOptions(weights="none"))
    features = encoder.encode([clip])
    assert features.shape == (1, 512)
    np.testing.assert_allclose(
        features, _plain_torchvision_features("r2plus1d_18", clip).numpy(), rtol=1e-5, atol=1e-5
    )


@needs_torchvision
@pytest.mark.slow
def test_s3d_features_equal_a_plain_torchvision_forward() -> None:
    """The VideoBERT paper's encoder as vidcap runs it: 30 frames, 256 → 224, 1024-d."""
    clip = coded_frames(30, 144, 256)
    encoder = build_encoder("torchvision:s3d", EncoderOptions(weights="none"))
    assert encoder.frame_indices(30) is None  # S3D reads every frame of the paper's clips
    features = encoder.encode([clip])
    assert features.shape == (1, 1024) and np.isfinite(features).all()
    np.testing.assert_allclose(
        features, _plain_torchvision_features("s3d", clip).numpy(), rtol=1e-4, atol=1e-5
    )


def test_frame_indices_declare_what_prepare_reads() -> None:
    spec = tvv.MODELS["r2plus1d_18"]
    encoder = object.__new__(tvv.TorchvisionVideoEncoder)  # no torchvision needed to ask
    encoder.spec, encoder.frames = spec, spec.frames
    np.testing.assert_array_equal(encoder.frame_indices(30), sample_indices(30, 16))
    assert encoder.frame_indices(16) is None
