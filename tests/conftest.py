"""Shared fixtures: a small synthetic corpus made once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vidcap.synth.plan import SynthConfig
from vidcap.synth.records import generate_corpus


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``corpus.jsonl`` of 8 short synthetic videos (read-only: copy before changing it)."""
    out = tmp_path_factory.mktemp("synth")
    generate_corpus(out, SynthConfig(videos=8, seed=11, workers=1))
    return out / "corpus.jsonl"


@pytest.fixture(scope="session")
def frames_dir(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``vidcap extract`` of the synthetic corpus at 64 px (read-only)."""
    from vidcap.stages.extract import ExtractConfig, run_extract
    from vidcap.stages.inputs import resolve_inputs

    out = tmp_path_factory.mktemp("frames") / "frames"
    result = run_extract(resolve_inputs([str(synth_corpus)]), out, ExtractConfig(size=64))
    assert result.ok, result.failures
    return out


@pytest.fixture(scope="session")
def features_dir(frames_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``vidcap encode`` (built-in descriptor) of :func:`frames_dir` (read-only)."""
    from vidcap.stages.encode import EncodeConfig, run_encode

    out = tmp_path_factory.mktemp("features") / "features"
    result = run_encode(frames_dir, out, EncodeConfig(loader_workers=0))
    assert result.ok, result.failures
    return out


@pytest.fixture(scope="session")
def words_dir(features_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``vidcap quantize`` (k=4, depth 2: 16 words) of :func:`features_dir` (read-only)."""
    from vidcap.stages.quantize import QuantizeConfig, run_quantize

    out = tmp_path_factory.mktemp("words") / "words"
    assert run_quantize(features_dir, out, QuantizeConfig(k=4, depth=2)).ok
    return out


@pytest.fixture(scope="session")
def caption_bundle(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BART caption bundle (pretrain 10 steps, finetune 30 steps with features), made
    through the CLI as tests/test_finetune_caption.py makes its own (read-only)."""
    from typer.testing import CliRunner

    from vidcap.cli import app

    root = tmp_path_factory.mktemp("caption-bundle")
    runner = CliRunner()
    pretrain = (root / "pretrain", "--preset", "tiny", "--arch", "bart", "--max-steps", "10")
    finetune = (root / "bundle", "--preset", "tiny", "--with-features", "--max-steps", "30", "--lr")
    for args in (
        ("pretrain", words_dir, "--out", *pretrain, "--eval-every", "1000"),
        (
            "finetune",
            root / "pretrain",
            "--out",
            *finetune,
            "1e-2",
            "--eval-every",
            "10",
            "--beams",
            "1",
        ),
    ):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    return root / "bundle"


@pytest.fixture
def fake_backends() -> Iterator[None]:
    """The test-only decoding backends ``hanging``, ``stalling``, ``slow``, ``slow-source`` and
    ``crashing`` (see videos.py), registered for one test; decode workers see them only when started with fork
    (mark the test ``fork_only``)."""
    from vidcap.video.backends import register_backend, unregister_backend
    from videos import (
        HangingReader,
        SlowReader,
        SlowSourceReader,
        StallingReader,
        crashing_reader,
    )

    register_backend("hanging", "av", HangingReader)
    register_backend("stalling", "av", StallingReader)
    register_backend("slow", "av", SlowReader)
    register_backend("slow-source", "av", SlowSourceReader)
    register_backend("crashing", "av", crashing_reader)
    yield
    unregister_backend("hanging")
    unregister_backend("stalling")
    unregister_backend("slow")
    unregister_backend("slow-source")
    unregister_backend("crashing")


@pytest.fixture(scope="session")
def webm_video(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic video (its first 6 s) as VP9 WebM, which every chromium plays (the MPEG-4
    part 2 of the corpus plays in no browser; H.264 is missing from some chromium builds)."""
    from videos import FFMPEG, ffmpeg

    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed (.ci/run installs it): it makes the WebM test video")
    source = synth_corpus.parent / "videos" / "synth-00003.mp4"
    out = tmp_path_factory.mktemp("webm") / "synth video.webm"
    # The first 6 s: enough for several 1.5 s captions, quick to encode.
    ffmpeg("-i", str(source), "-t", "6", "-c:v", "libvpx-vp9", "-b:v", "300k", "-an", str(out))
    return out
