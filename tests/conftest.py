"""Shared fixtures: a small synthetic corpus made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidcap.datasets.synth import SynthConfig, generate_corpus


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``corpus.jsonl`` of 8 short synthetic videos (read-only: copy before changing it)."""
    out = tmp_path_factory.mktemp("synth")
    generate_corpus(out, SynthConfig(videos=8, seed=11, workers=1))
    return out / "corpus.jsonl"
