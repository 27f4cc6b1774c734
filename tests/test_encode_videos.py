"""`vidcap encode` straight from videos: the features of extract → encode without storing frames,
resumable, sharded over processes, only the frames an encoder reads, and the downstream stages
finding the extract settings in the encode manifest."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stage_helpers import index_of, two_processes
from vidcap.artifacts import read_upstream
from vidcap.artifacts.readers import load_features, pipeline_settings
from vidcap.cli import app
from vidcap.distributed import cores_per_process
from vidcap.encoders import ClipEncoder, EncoderOptions, register
from vidcap.stages.encode import EncodeConfig, run_encode
from vidcap.stages.encode_videos import run_encode_videos
from vidcap.stages.extract import ExtractConfig
from vidcap.stages.inputs import resolve_inputs
from vidcap.stages.quantize import QuantizeConfig, run_quantize
from vidcap.video import Clip, clip_array, read_frames
from videos import fork_only, trap_reader

runner = CliRunner()
IDS = ("synth-00000", "synth-00001", "synth-00002")


def encode(*args: object):
    return runner.invoke(app, ["encode", *[str(a) for a in args]])


def video_files(synth_corpus: Path, ids=IDS) -> list[Path]:
    return [synth_corpus.parent / "videos" / f"{i}.mp4" for i in ids]


def assert_same_features(a_dir: Path, b_dir: Path, ids) -> None:
    a_index, b_index = index_of(a_dir), index_of(b_dir)
    for video_id in ids:
        a = load_features(a_dir / a_index[video_id]["outputs"]["features"])
        b = load_features(b_dir / b_index[video_id]["outputs"]["features"])
        assert a.keys() == b.keys()
        for name in a:
            assert a[name].dtype == b[name].dtype
            assert np.array_equal(a[name], b[name]), (video_id, name)


@pytest.mark.slow
def test_from_videos_equals_extract_then_encode(
    synth_corpus: Path, features_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "features"
    run = encode(*video_files(synth_corpus), "--out", out, "--size", "64", "--json")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["counts"] == {"ok": 3, "failed": 0, "skipped": 0}
    assert_same_features(features_dir, out, IDS)
    assert not list(out.rglob("*.npy"))  # features only
    ours, theirs = (json.loads((d / "manifest.json").read_text()) for d in (out, features_dir))
    assert ours["extract"] == theirs["extract"] == {
        "fps": 20.0, "size": 64, "crop": False, "clip_frames": 30, "backend": "auto",
    }  # fmt: skip
    assert ours["encoder"] == theirs["encoder"]
    assert ours["decode"]["workers"] == cores_per_process()  # -j auto: a decoder per core
    item = index_of(out)["synth-00000"]
    assert item["n_clips"] == len(load_features(out / item["outputs"]["features"])["features"])
    assert item["backend"] and item["n_frames"] > 0

    # Downstream: quantize reads it as any encode folder; finetune/pretrain find the settings.
    words = tmp_path / "words"
    assert run_quantize(out, words, QuantizeConfig(k=2, depth=1)).ok
    settings = pipeline_settings(words, read_upstream(words, "quantize")[0])
    assert settings["extract"] == ours["extract"]
    assert settings["encoder"]["spec"] == "descriptor"
    figure = runner.invoke(
        app, ["quantize", "inspect", str(words), "--out", str(tmp_path / "w.png")]
    )
    assert figure.exit_code == 1 and "encoded straight from videos" in figure.output


@pytest.mark.slow
def test_resume_skips_done_videos_and_retries_failed_ones(
    synth_corpus: Path, tmp_path: Path
) -> None:
    files = video_files(synth_corpus)
    # Missing at first (read from stdin, as `find | vidcap encode -` may race a copy): a failed
    # item, retried by the rerun.
    late = tmp_path / "late.mp4"
    out = tmp_path / "features"

    def run(*options: str):
        args = ["encode", str(files[0]), str(files[1]), "-", "--out", str(out), *options]
        return runner.invoke(app, [*args, "--json"], input=f"{late}\n")

    first = run("--size", "48")
    assert first.exit_code == 1
    summary = json.loads(first.stdout)
    assert summary["counts"] == {"ok": 2, "failed": 1, "skipped": 0}
    assert "late.mp4 does not exist" in summary["failures"][0]["error"]
    shutil.copy(files[2], late)
    second = run("--size", "48")
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["counts"] == {"ok": 3, "failed": 0, "skipped": 2}
    assert json.loads(run("--size", "48").stdout)["up_to_date"] is True
    changed = run("--size", "32")
    assert json.loads(changed.stdout)["counts"] == {"ok": 3, "failed": 0, "skipped": 0}


def test_extract_options_with_a_frames_folder_are_refused(
    frames_dir: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    run = encode(frames_dir, "--out", tmp_path / "f", "--fps", "10", "--timeout", "5")
    assert run.exit_code == 1
    assert "--fps, --timeout apply to encoding from videos" in run.output
    one = encode(frames_dir, "--out", tmp_path / "f", "-j", "2")
    assert one.exit_code == 1 and "-j applies" not in one.output
    assert "--workers applies to encoding from videos" in one.output
    # ... and the one option of an extract folder, with videos
    video = video_files(synth_corpus)[0]
    loaders = encode(video, "--out", tmp_path / "g", "--loader-workers", "3")
    assert loaders.exit_code == 1
    assert "--loader-workers applies to encoding from an extract folder" in loaders.output
    assert not (tmp_path / "f").exists() and not (tmp_path / "g").exists()


class PickTwo(ClipEncoder):
    """Reads frames 7 and 22 of each clip only (as an image model sampling a clip would)."""

    name = "picktwo"
    dim = 6

    def frame_indices(self, clip_frames: int) -> np.ndarray:
        return np.array([7, 22])

    def prepare(self, clip: np.ndarray) -> torch.Tensor:
        picked = clip[[7, 22]].astype(np.float32)
        return torch.from_numpy(picked.mean(axis=(1, 2)).reshape(-1))

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


class PickTwoHere(PickTwo):
    """The same, prepared in the parent (as models with heavy imports are)."""

    name = "picktwo-here"

    def decoder_step(self) -> None:
        return None


@register("picktwo", "test: two frames per clip", ("picktwo",), "6")
def _build(argument: str | None, options: EncoderOptions) -> ClipEncoder:
    return PickTwo()


@register("picktwo-here", "test: two frames per clip, prepared here", ("picktwo-here",), "6")
def _build_here(argument: str | None, options: EncoderOptions) -> ClipEncoder:
    return PickTwoHere()


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["picktwo", "picktwo-here"])
def test_an_encoder_reading_two_frames_gets_the_same_features(
    synth_corpus: Path, frames_dir: Path, tmp_path: Path, spec: str
) -> None:
    """Only frames 7 and 22 of each clip (and the last frame) are converted and sent back,
    prepared in the decode child or (decoder_step None) in the parent."""
    config = EncodeConfig(encoder=spec, loader_workers=0, save_dtype="float32")
    assert run_encode(frames_dir, tmp_path / "a", config).ok
    inputs = resolve_inputs([str(p) for p in video_files(synth_corpus)])
    batches: list[int] = []  # on_clips: the progress within videos
    result = run_encode_videos(
        inputs, tmp_path / "b", config, ExtractConfig(size=64), on_clips=batches.append
    )
    assert result.ok, result.failures
    assert_same_features(tmp_path / "a", tmp_path / "b", IDS)
    assert sum(batches) == sum(item["n_clips"] for item in index_of(tmp_path / "b").values())
    assert all(0 < n <= config.batch_size for n in batches)


@pytest.mark.slow
def test_a_written_video_holds_no_memory_until_the_run_ends(
    synth_corpus: Path, tmp_path: Path
) -> None:
    """Each video's features are dropped once it is recorded: a process encoding thousands of
    videos must not keep every feature it wrote (memory flat over a corpus, not only a video)."""
    import gc

    from vidcap.stages import encode_videos

    held: list[int] = []

    def on_video(done: object) -> None:  # after each video is recorded
        recorded = [
            o for o in gc.get_objects() if type(o) is encode_videos._Progress and o.recorded
        ]
        held.append(sum(len(p.features) for p in recorded))

    inputs = resolve_inputs([str(p) for p in video_files(synth_corpus)])
    config = EncodeConfig(loader_workers=0)
    result = run_encode_videos(
        inputs, tmp_path / "out", config, ExtractConfig(size=32), on_video=on_video
    )
    assert result.ok and len(held) == len(IDS)
    assert held == [0] * len(IDS)


@pytest.mark.slow
def test_two_processes_match_one(synth_corpus: Path, tmp_path: Path) -> None:
    files = [str(p) for p in video_files(synth_corpus)]
    single, double = tmp_path / "single", tmp_path / "double"
    assert encode(*files, "--out", single, "--size", "32").exit_code == 0
    result = two_processes("-m", "vidcap", "encode", *files, "--out", double, "--size", 32)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(index_of(double)) == set(IDS)
    assert not list(double.glob("index.part*"))
    assert_same_features(single, double, IDS)


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("ffmpeg") is None or not Path("/proc").is_dir(), reason="ffmpeg, /proc"
)
def test_ctrl_c_stops_with_130_keeps_finished_videos_and_kills_the_decoder(
    synth_corpus: Path, tmp_path: Path
) -> None:
    from tests.videos import ffmpeg, interrupt_while_decoding

    long = tmp_path / "zlong.mp4"  # 10 minutes: still decoding when the interrupt comes
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=20:duration=600", str(long))
    out = tmp_path / "features"
    first = video_files(synth_corpus)[0]  # "zlong" sorts after "synth-…": this is done first

    def first_done() -> bool:
        index = out / "index.jsonl"
        return index.is_file() and "synth-00000" in index.read_text()

    returncode, stderr, children = interrupt_while_decoding(
        ["encode", str(first), str(long), "--out", str(out), "--size", "32"], ready=first_done
    )
    assert returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        "error: interrupted; what finished is kept: rerun the same command to do the rest."
    )
    for child in children:
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    assert set(index_of(out)) == {"synth-00000"}  # the finished video is kept; nothing half-written
    assert not list(out.rglob(".tmp-*"))


@fork_only
@pytest.mark.slow
def test_a_hung_or_crashing_decoder_fails_its_video_only(
    synth_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder that hangs costs one --timeout and a sentence; one that segfaults, a sentence;
    the videos around them are encoded as if they were not there."""
    import functools
    import time

    from vidcap.stages import encode_videos
    from vidcap.stages import extract as extract_stage
    from vidcap.video import DecodeWorker
    from vidcap.video.backends import register_backend, unregister_backend

    good = video_files(synth_corpus)[:2]
    hang, crash = tmp_path / "hang.mp4", tmp_path / "crash.mp4"
    for copy in (hang, crash):
        shutil.copy(good[0], copy)
    # fork: the decode children inherit the test-only backend registered here.
    register_backend("trap", "av", trap_reader)
    monkeypatch.setattr(extract_stage, "BACKENDS", (*extract_stage.BACKENDS, "trap"))
    monkeypatch.setattr(encode_videos, "DecodeWorker", functools.partial(DecodeWorker, "fork"))
    try:
        inputs = resolve_inputs([str(p) for p in (good[0], hang, crash, good[1])])
        extract = ExtractConfig(size=48, backend="trap", timeout=2.0, workers=1)
        started = time.monotonic()
        result = run_encode_videos(inputs, tmp_path / "out", EncodeConfig(), extract)
        elapsed = time.monotonic() - started
    finally:
        unregister_backend("trap")
    assert result.counts["ok"] == 2, result.failures
    errors = dict(result.failures)
    assert set(errors) == {"hang", "crash"}
    assert "stalled: the decoder sent nothing for 2 s" in errors["hang"]
    assert "crashed" in errors["crash"] and "SIGSEGV" in errors["crash"]
    assert elapsed < 2.0 + 20  # the hang cost its 2 s (an hour's sleep otherwise)
    # The good videos' features are those of a run without the bad ones.
    alone = run_encode_videos(
        resolve_inputs([str(p) for p in good]), tmp_path / "alone", EncodeConfig(),
        ExtractConfig(size=48, backend="pyav"),
    )  # fmt: skip
    assert alone.ok
    assert_same_features(tmp_path / "alone", tmp_path / "out", [p.stem for p in good])


def _miscounting_stream_clips(path: Path, **options: object) -> dict:
    """stream_clips, counting one clip more than it sent (a clip cutter and a clip counter that
    disagree): a video whose last clip never comes."""
    from vidcap.video.clip_stream import stream_clips

    meta = stream_clips(path, **options)
    last = meta["clips"][-1]
    meta["clips"].append({**last, "index": last["index"] + 1})
    return meta


@fork_only
@pytest.mark.slow
def test_a_video_whose_clips_do_not_all_come_back_is_failed_not_lost(
    synth_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functools

    from vidcap.stages import encode_videos
    from vidcap.video import DecodeWorker

    # fork: the child runs this module's function, as the parent's monkeypatch left it.
    monkeypatch.setattr(encode_videos, "stream_clips", _miscounting_stream_clips)
    monkeypatch.setattr(encode_videos, "DecodeWorker", functools.partial(DecodeWorker, "fork"))
    path = video_files(synth_corpus)[0]
    out = tmp_path / "out"
    result = run_encode_videos(
        resolve_inputs([str(path)]), out, EncodeConfig(), ExtractConfig(size=48)
    )
    assert result.counts["failed"] == 1 and result.counts["ok"] == 0
    ((video_id, error),) = result.failures
    assert video_id == path.stem
    assert "ended with" in error and "clips encoded" in error and "rerun to retry it" in error
    assert index_of(out)[path.stem]["status"] == "failed"


def _child_threads() -> int:
    import torch as child_torch

    return child_torch.get_num_threads()


def test_decode_children_run_torch_and_opencv_on_one_thread() -> None:
    """`--workers` children share the cores with the model in the parent."""
    import cv2

    from vidcap.video import DecodeWorker

    assert cv2.getNumThreads() > 1 or (os.cpu_count() or 1) == 1  # the parent keeps its pool
    with DecodeWorker() as worker:
        assert worker.call(_child_threads, timeout=60) == 1
        assert worker.call(eval, "__import__('cv2').getNumThreads()", timeout=60) == 1


def test_the_descriptor_runs_in_a_decode_child_that_never_imports_torch(
    synth_corpus: Path,
) -> None:
    """Its step is OpenCV and numpy: a child importing torch starts 1.3 s slower and 250 MB
    larger, at every restart. Models with heavy imports prepare their clips in the parent."""
    from vidcap.encoders import build_encoder
    from vidcap.encoders.base import LazyModelEncoder
    from vidcap.video import DecodeWorker
    from vidcap.video.clip_stream import stream_clips

    encoder = build_encoder("descriptor")
    step = encoder.decoder_step()
    path = video_files(synth_corpus)[0]
    with DecodeWorker() as worker:
        stream = worker.stream_items(
            path, stream_clips, step=step, clip_frames=30, read=None, size=32
        )
        items = list(stream)
        # (a function from this module would import torch: it does)
        assert not worker.call(eval, "'torch' in __import__('sys').modules", timeout=60)
    clips = stream.meta["clips"]
    assert [i for i, _ in items] == list(range(len(clips))) and clips
    frames = read_frames(path, size=32)
    first = encoder.prepare(clip_array(frames, Clip(**clips[0]), 30)).numpy()
    np.testing.assert_array_equal(items[0][1], first)
    assert LazyModelEncoder.decoder_step(encoder) is None and PickTwoHere().decoder_step() is None
    assert PickTwo().decoder_step() is not None
