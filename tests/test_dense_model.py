"""`vidcap finetune --task dense` (BART and VideoBERT routes) and what reads a dense bundle:
`vidcap caption`, `vidcap summarize`, the model-running part of `vidcap evaluate --task dense`
(tiny preset, CPU, through the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidcap.cli import app

runner = CliRunner()

TINY = ("--preset", "tiny", "--max-steps", "30", "--lr", "1e-2", "--eval-every", "30")


def invoke(*args: object, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def _pretrain(words_dir: Path, out: Path, arch: str) -> Path:
    result = invoke(
        "pretrain", words_dir, "--out", out, "--preset", "tiny", "--arch", arch,
        "--max-steps", "3", "--eval-every", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def bart_dense(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dense")
    pretrain = _pretrain(words_dir, root / "pretrain", "bart")
    out = root / "dense"
    result = invoke(
        "finetune", pretrain, "--out", out, "--task", "dense", "--with-features",
        "--with-transcript", "--time-bins", "50", *TINY, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def caption_bundle(bart_dense: Path) -> Path:
    out = bart_dense.parent / "caption"
    result = invoke("finetune", bart_dense.parent / "pretrain", "--out", out, *TINY, "--json")
    assert result.exit_code == 0, result.output
    return out


def first_video(synth_corpus: Path, split: str = "test") -> Path:
    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    return synth_corpus.parent / next(r["video"] for r in records if r["split"] == split)


@pytest.mark.slow
def test_bart_dense_bundle_records_task_and_time_bins(bart_dense: Path) -> None:
    info = json.loads((bart_dense / "vidcap.json").read_text())
    assert info["task"] == "dense" and info["arch"] == "bart"
    inputs = info["inputs"]
    assert inputs["time_bins"] == 50 and inputs["max_clips"] == 100
    assert inputs["with_features"] and inputs["with_transcript"]
    vocabulary = json.loads((bart_dense / "vidcap_vocabulary.json").read_text())
    assert vocabulary["n_time"] == 50
    config = json.loads((bart_dense / "config.json").read_text())
    assert config["vocab_size"] == vocabulary["vocab_size"]  # the embeddings grew with the tokens
    val = [json.loads(x) for x in (bart_dense / "metrics.jsonl").read_text().splitlines()]
    val = [m for m in val if m["split"] == "val"]
    assert val and 0 <= val[-1]["event_recall_iou"] <= 1 and "cider" in val[-1]


@pytest.mark.slow
def test_videobert_dense_bundle(words_dir: Path, tmp_path: Path) -> None:
    pretrain = _pretrain(words_dir, tmp_path / "pretrain", "videobert")
    out = tmp_path / "dense"
    result = invoke("finetune", pretrain, "--out", out, "--task", "dense", *TINY, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads((out / "vidcap.json").read_text())
    assert (info["task"], info["arch"], info["inputs"]["time_bins"]) == ("dense", "videobert", 100)
    config = json.loads((out / "config.json").read_text())
    n_vocab = json.loads((out / "vidcap_vocabulary.json").read_text())["vocab_size"]
    assert config["encoder"]["vocab_size"] == config["decoder"]["vocab_size"] == n_vocab
