"""`vidcap encode` as a user runs it: descriptor and hf: encoders, failures, resume, 2 processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from typer.testing import CliRunner

from stage_helpers import index_of, two_processes
from vidcap.artifacts.readers import load_features
from vidcap.cli import app
from vidcap.encoders import ClipEncoder, EncoderOptions, register
from vidcap.stages.encode import EncodeConfig, run_encode

runner = CliRunner()


def encode(*args: str):
    return runner.invoke(app, ["encode", *args])


def test_descriptor_features_per_clip(frames_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    result = encode(str(frames_dir), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"ok": 8, "failed": 0, "skipped": 0}
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["encoder"]["name"] == "descriptor" and manifest["encoder"]["dim"] == summary["dim"]
    )
    assert manifest["corpus"] == json.loads((frames_dir / "manifest.json").read_text())["corpus"]
    upstream = index_of(frames_dir)
    for video_id, item in index_of(out).items():
        data = load_features(out / item["outputs"]["features"])
        clips = upstream[video_id]["clips"]
        assert data["features"].shape == (len(clips), summary["dim"])
        assert data["features"].dtype == np.float16
        assert np.isfinite(data["features"]).all()
        assert data["start_s"].tolist() == [c["start_s"] for c in clips]
        assert data["end_s"].tolist() == [c["end_s"] for c in clips]
        assert item["split"] == upstream[video_id]["split"] and item["n_clips"] == len(clips)
    again = encode(str(frames_dir), "--out", str(out), "--json")
    assert json.loads(again.stdout)["up_to_date"] is True


def test_descriptor_settings_in_the_spec(frames_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    result = encode(
        str(frames_dir), "--out", str(out), "--encoder", "descriptor:objects=2", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dim"] == 233
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["encoder"]["config"]["objects"] == 2
    for spec, message in (
        ("descriptor:objects=3", "objects must be 1 or 2"),
        ("descriptor:colour=1", "name=value pairs"),
        ("descriptor:flow=maybe", "flow must be true or false"),
        ("descriptor:downscale=cubic", "downscale must be one of pyramid, area"),
    ):
        bad = encode(str(frames_dir), "--out", str(tmp_path / "bad"), "--encoder", spec)
        assert bad.exit_code == 1 and message in bad.output, bad.output
        assert "Traceback" not in bad.output


def test_descriptor_descriptions_record_only_what_changed_since_earlier_versions() -> None:
    """Bundles and features of earlier versions recorded no ``objects`` (1) and no ``downscale``
    (area): a setting added later is recorded only where it differs from what they did, so
    their descriptions still name what made them. The new default downscale is recorded."""
    from vidcap.encoders.descriptor import DescriptorConfig
    from vidcap.encoders.descriptor_encoder import DescriptorEncoder

    config = DescriptorEncoder().describe()["config"]
    assert "objects" not in config and config["downscale"] == "pyramid"
    assert DescriptorEncoder(DescriptorConfig(objects=2)).describe()["config"]["objects"] == 2
    assert (
        "downscale"
        not in DescriptorEncoder(DescriptorConfig(downscale="area")).describe()["config"]
    )


def test_a_bundle_from_before_downscale_still_gets_area_downscaling(
    words_dir: Path, tmp_path: Path
) -> None:
    """A bundle whose recorded description has no ``downscale`` was trained on features made
    with area downscaling: captioning rebuilds that descriptor, not today's default (whose
    features would differ at frames over twice the working size), and accepts the bundle."""
    from vidcap.artifacts import read_upstream
    from vidcap.artifacts.readers import pipeline_settings
    from vidcap.bundle import Bundle
    from vidcap.encoders import build_encoder
    from vidcap.inference.pipeline import VideoPipeline

    manifest, _ = read_upstream(words_dir, "quantize")
    info = {"stage": "finetune", "arch": "bart", **pipeline_settings(words_dir, manifest)}
    assert info["encoder"]["description"]["config"]["downscale"] == "pyramid"
    with VideoPipeline(Bundle(words_dir, info)) as today:
        assert today.encoder.descriptor.config.downscale == "pyramid"
    del info["encoder"]["description"]["config"]["downscale"]  # as recorded before the setting
    with VideoPipeline(Bundle(words_dir, info)) as older:
        assert older.encoder.descriptor.config.downscale == "area"
    info["encoder"]["description"] = None  # recorded before descriptions were
    with VideoPipeline(Bundle(words_dir, info)) as oldest:
        assert oldest.encoder.descriptor.config.downscale == "area"
    # A setting the spec names is the spec's; nothing is pinned without a recording.
    spec = "descriptor:downscale=pyramid,objects=2"
    assert build_encoder(spec, recorded={}).descriptor.config.downscale == "pyramid"
    assert build_encoder("descriptor").descriptor.config.downscale == "pyramid"


def test_loader_workers_do_not_change_features(frames_dir: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        encode(
            str(frames_dir), "--out", str(a), "--loader-workers", "0", "--save-dtype", "float32"
        ).exit_code
        == 0
    )
    assert (
        encode(
            str(frames_dir),
            "--out",
            str(b),
            "--loader-workers",
            "2",
            "--batch-size",
            "5",
            "--save-dtype",
            "float32",
        ).exit_code
        == 0
    )
    for video_id, item in index_of(a).items():
        fa = load_features(a / item["outputs"]["features"])["features"]
        fb = load_features(b / index_of(b)[video_id]["outputs"]["features"])["features"]
        assert np.array_equal(fa, fb)


def _tiny_clip_model(path: Path) -> Path:
    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8,
    )  # fmt: skip
    transformers.CLIPVisionModel(config).save_pretrained(path)
    processor = {
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 32},
        "do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.481, 0.458, 0.408], "image_std": [0.269, 0.261, 0.276],
    }  # fmt: skip
    (path / "preprocessor_config.json").write_text(json.dumps(processor))
    return path


def test_hf_model_from_a_local_path(frames_dir: Path, tmp_path: Path) -> None:
    model = _tiny_clip_model(tmp_path / "tiny-clip")
    out = tmp_path / "features"
    result = encode(
        str(frames_dir),
        "--out",
        str(out),
        "--encoder",
        f"hf:{model}",
        "--batch-size",
        "4",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dim"] == 32
    item = next(iter(index_of(out).values()))
    assert load_features(out / item["outputs"]["features"])["features"].shape[1] == 32
    missing = encode(str(frames_dir), "--out", str(out), "--encoder", f"hf:{tmp_path / 'nope'}")
    assert missing.exit_code == 1 and "Traceback" not in missing.output


class _NanEncoder(ClipEncoder):
    """Gives NaN for clips of videos whose first pixel is dark: some videos fail, others not."""

    name = "nan-test"
    dim = 3

    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        value = float("nan") if clip[0, 0, 0, 0] < 128 else 1.0
        return torch.full((3,), value)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


@register("nan-test", "test encoder", examples=("nan-test",), dims="3")
def _build_nan(argument: str | None, options: EncoderOptions) -> ClipEncoder:
    return _NanEncoder()


def test_nan_features_and_unreadable_frames_fail_their_video_only(
    frames_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "features"
    result = encode(
        str(frames_dir),
        "--out",
        str(out),
        "--encoder",
        "nan-test",
        "--loader-workers",
        "0",
        "--json",
    )
    summary = json.loads(result.stdout)
    failed = {f["id"]: f["error"] for f in summary["failures"]}
    assert 0 < len(failed) < 8  # the fixed synthetic corpus has dark and light backgrounds
    assert result.exit_code == 1
    for error in failed.values():
        assert "NaN or infinite" in error
    assert summary["counts"]["ok"] + len(failed) == 8

    broken = tmp_path / "frames"
    subprocess.run(["cp", "-r", str(frames_dir), str(broken)], check=True)
    victim = next(iter(index_of(broken).values()))
    (broken / victim["outputs"]["frames"]).write_bytes(b"not an npy file")
    out2 = tmp_path / "features2"
    result = encode(str(broken), "--out", str(out2), "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["counts"]["ok"] == 7
    assert summary["failures"][0]["id"] == victim["id"]
    assert "could not read the frames" in summary["failures"][0]["error"]


def test_list_and_sentences(tmp_path: Path) -> None:
    listed = encode("--list")
    assert listed.exit_code == 0
    for name in ("descriptor", "hf:", "torchvision:s3d"):
        assert name in listed.output
    # --list needs nothing else; without it, no inputs or no --out is a usage error (exit 2,
    # before anything is read), as every missing required option is.
    assert encode("--list", "--out", str(tmp_path / "o")).exit_code == 0
    no_out = encode(str(tmp_path))
    assert no_out.exit_code == 2 and "Missing option '--out'" in no_out.output
    no_inputs = encode("--out", str(tmp_path / "o"))
    assert no_inputs.exit_code == 2 and "Missing argument" in no_inputs.output
    assert not (tmp_path / "o").exists()
    assert encode(str(tmp_path), "--out", str(tmp_path / "o")).exit_code == 1
    no_manifest = encode(str(tmp_path), "--out", str(tmp_path / "o"))
    assert "has no manifest.json" in no_manifest.output
    unknown = runner.invoke(app, ["encode", str(tmp_path), "--out", "x", "--encoder", "nope"])
    assert unknown.exit_code == 1


@pytest.mark.slow
def test_two_processes_match_one(frames_dir: Path, tmp_path: Path) -> None:
    single, double = tmp_path / "single", tmp_path / "double"
    assert encode(str(frames_dir), "--out", str(single), "--loader-workers", "0").exit_code == 0
    result = two_processes(
        "-m", "vidcap", "encode", frames_dir, "--out", double, "--loader-workers", "0"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = index_of(single), index_of(double)
    assert set(one) == set(two) and len(one) == 8
    for video_id in one:
        a = load_features(single / one[video_id]["outputs"]["features"])["features"]
        b = load_features(double / two[video_id]["outputs"]["features"])["features"]
        assert np.array_equal(a, b)


def test_a_video_with_no_clips_is_failed_not_lost(frames_dir: Path, tmp_path: Path) -> None:
    """An extract record listing no clips (an older or hand-edited index) gives nothing to
    encode: the video is failed with a sentence, not left out of the index."""
    import json
    import shutil

    frames = tmp_path / "frames"
    shutil.copytree(frames_dir, frames)
    lines = (frames / "index.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["clips"] = []
    (frames / "index.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    result = run_encode(frames, tmp_path / "features", EncodeConfig(loader_workers=0))
    assert dict(result.failures) == {
        first["id"]: f"{first['id']} has no clips to encode (its extract record lists none)."
    }
    assert result.counts["ok"] == len(lines) - 1


def test_a_loader_worker_hands_over_each_clip_as_it_is_prepared(frames_dir: Path) -> None:
    """One clip at a time, whatever the video's length (preparing a whole video first took
    gigabytes per video-hour per worker); a video failing midway is one problem item after the
    clips already handed over, which the main process then drops with the video."""
    from vidcap.artifacts import read_upstream
    from vidcap.stages.encode import VideoToEncode, _ClipDataset, clips_of

    _, items = read_upstream(frames_dir, "extract")
    item = items[sorted(items)[0]]
    video = VideoToEncode(
        index=0,
        id=item.id,
        frames_path=str(frames_dir / item.outputs["frames"]),
        clip_frames=int(item.info["clip_frames"]),
    )
    assert len(clips_of(item)) >= 3

    class FailsOnTheThird(ClipEncoder):
        name, dim, calls = "third", 1, 0

        def prepare(self, clip: np.ndarray) -> torch.Tensor:
            self.calls += 1
            if self.calls == 3:
                raise ValueError("clip 2 is bad")
            return torch.zeros(1)

        def embed(self, batch: torch.Tensor) -> torch.Tensor:
            return batch

    encoder = FailsOnTheThird()
    items_out = iter(_ClipDataset([video], items, encoder))
    assert next(items_out)[:2] == (0, 0) and encoder.calls == 1
    rest = list(items_out)
    assert [key[:2] for key in rest] == [(0, 1), (0, -1)]
    assert rest[-1][2] == f"could not prepare clip 2 of {item.id}: clip 2 is bad"


class _FailsOnTheThirdClip(ClipEncoder):
    """Each clip's mean colour; the third clip prepared (in one loader) cannot be prepared."""

    name = "third-fails-test"
    dim = 3

    def __init__(self, fail: bool) -> None:
        self.fail, self.calls = fail, 0

    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        self.calls += 1
        if self.fail and self.calls == 3:
            raise ValueError("clip 2 is bad")
        return torch.from_numpy(clip.reshape(-1, 3).mean(axis=0, dtype=np.float32))

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


@register("third-fails-test", "test encoder", examples=("third-fails-test",), dims="3")
def _build_third_fails(argument: str | None, options: EncoderOptions) -> ClipEncoder:
    return _FailsOnTheThirdClip(fail=argument != "never")


def test_a_video_failing_midway_drops_its_clips_and_no_other(
    frames_dir: Path, tmp_path: Path
) -> None:
    """Clips are handed over one at a time, so a video may fail after some of its clips were
    embedded (in flight, a batch ahead): it is recorded failed with its sentence, and every other
    video gets exactly the features of a run without the failure."""
    config = ("--loader-workers", "0", "--batch-size", "2", "--save-dtype", "float32", "--json")
    failing = encode(
        str(frames_dir), "--out", str(tmp_path / "a"), "-e", "third-fails-test", *config
    )
    plain = encode(
        str(frames_dir), "--out", str(tmp_path / "b"), "-e", "third-fails-test:never", *config
    )
    assert failing.exit_code == 1 and plain.exit_code == 0, plain.output
    first = sorted(index_of(frames_dir))[0]
    (failure,) = json.loads(failing.stdout)["failures"]
    assert failure == {"id": first, "error": f"could not prepare clip 2 of {first}: clip 2 is bad"}
    ours, theirs = index_of(tmp_path / "a"), index_of(tmp_path / "b")
    assert ours[first]["status"] == "failed" and len(ours) == len(theirs) == 8
    for video_id in sorted(theirs)[1:]:
        a, b = (load_features(d / i[video_id]["outputs"]["features"]) for d, i in (
            (tmp_path / "a", ours), (tmp_path / "b", theirs)))  # fmt: skip
        np.testing.assert_array_equal(a["features"], b["features"])


def test_encode_from_frames_reads_each_videos_clips_when_its_turn_comes(
    frames_dir: Path, tmp_path: Path
) -> None:
    """An extract record lists its video's clips (2,400 for an hour): holding every video's list
    from the start took 147 KiB per video in each process, plus a copy in each loader worker.
    A video's list is read from its record when the video is reached, and dropped with it."""
    import gc

    from vidcap.stages.encode import VideoEncoded
    from vidcap.video.clips import Clip

    total = sum(len(item["clips"]) for item in index_of(frames_dir).values())
    alive: list[int] = []

    def count_clips(done: VideoEncoded) -> None:
        alive.append(sum(type(o) is Clip for o in gc.get_objects()))

    config = EncodeConfig(batch_size=2, loader_workers=0)
    result = run_encode(frames_dir, tmp_path / "f", config, on_video=count_clips)
    assert result.counts["ok"] == 8 and result.details["clips"] == total
    # At most the videos in flight: the one just written, and the next one (loader and model).
    assert max(alive) <= 2 * max(len(i["clips"]) for i in index_of(frames_dir).values())
    assert max(alive) < total / 2, (alive, total)


def test_a_frames_folder_where_every_video_failed_is_refused(tmp_path: Path) -> None:
    # It gave an empty features folder with a manifest, exit 0, for quantize to find empty.
    frames = tmp_path / "frames"
    gone = f"{tmp_path / 'gone.mp4'}\n"
    failed = runner.invoke(
        app, ["extract", "-", "--out", str(frames), "--allow-failures"], input=gone
    )
    assert failed.exit_code == 0 and (frames / "manifest.json").is_file()
    result = encode(str(frames), "--out", str(tmp_path / "features"))
    assert result.exit_code == 1
    assert "holds no extracted videos (every one failed: its index says why)" in (
        " ".join(result.output.split())
    )
    assert not (tmp_path / "features" / "manifest.json").exists()
