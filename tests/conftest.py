"""Shared fixtures: a small synthetic corpus made once per test session."""

from __future__ import annotations

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
