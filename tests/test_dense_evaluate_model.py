"""`vidcap evaluate DENSE_MODEL --task dense [--captioner BUNDLE]`: a dense model run on a split's
videos and scored beside a caption bundle's rows, and every bad input the issue lists answered
with a sentence through the CLI (tiny presets, CPU)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidcap.cli import app
from vidcap.corpus import read_corpus, write_corpus
from videos import encode

runner = CliRunner()
TINY = ("--preset", "tiny", "--max-steps", "30", "--lr", "1e-2", "--eval-every", "30")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture(scope="module")
def dense_model(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dense-eval")
    pretrain = root / "pretrain"
    result = invoke(
        "pretrain", words_dir, "--out", pretrain, "--preset", "tiny", "--arch", "bart",
        "--max-steps", "3", "--eval-every", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = root / "dense"
    result = invoke(
        "finetune", pretrain, "--out", out, "--task", "dense", "--with-features",
        "--time-bins", "50", *TINY, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _corpus_copy(synth_corpus: Path, tmp_path: Path) -> Path:
    """A writable copy of the corpus, its val video moved to test (two test videos); the videos
    stay where they are (absolute paths)."""
    records = [
        replace(r, split="test") if r.split == "val" else r for r in read_corpus(synth_corpus)
    ]
    copy = tmp_path / "corpus.jsonl"
    write_corpus(copy, records)
    return copy


@pytest.mark.slow
def test_evaluate_a_dense_model_beside_a_captioners_rows(
    dense_model: Path, caption_bundle: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    model = tmp_path / "dense"
    shutil.copytree(dense_model, model)  # the card is written into the bundle
    args = ("evaluate", model, "--corpus", synth_corpus, "--no-meteor")
    result = invoke(*args, "--captioner", caption_bundle, "--segment-seconds", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["task"] == "dense" and report["failed"] == []
    assert list(report["scores"]) == [
        "model",
        "captioner_whole",
        "captioner_fixed",
        "captioner_change",
        "captioner_oracle",
        "whole_video",
        "reference_ceiling",
    ]
    assert set(report["story"]) == set(report["scores"])
    oracle = report["scores"]["captioner_oracle"]["per_tiou"]
    assert oracle["0.9"]["precision"] == oracle["0.9"]["recall"] == 1.0  # the true events
    assert report["labels"]["captioner_fixed"] == "captioner: fixed 2 s windows"
    assert all(0 <= s["F1"] <= 1 for s in report["scores"].values())
    card = (model / "README.md").read_text()
    assert (
        card.index("| dense model |") < card.index("oracle (true events)") < card.index("floor |")
    )

    table = invoke(*args)  # no --captioner: the model, the floor and the ceiling
    assert table.exit_code == 0, table.output
    text = flat(table.output)
    assert "dense model" in text and "whole-video floor" in text and "oracle" not in text


@pytest.mark.slow
def test_an_unreadable_video_is_reported_and_the_others_scored(
    dense_model: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    corpus = _corpus_copy(synth_corpus, tmp_path)
    records = read_corpus(corpus)
    i, broken = next((i, r) for i, r in enumerate(records) if r.split == "test")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    records[i] = replace(broken, video=tmp_path / "broken.mp4")
    write_corpus(corpus, records)
    n_test = sum(r.split == "test" and bool(r.segments) for r in records)
    result = invoke("evaluate", dense_model, "--corpus", corpus, "--no-meteor", "--json")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    report = json.loads(result.stdout)
    assert [f["video"] for f in report["failed"]] == [broken.id]
    assert report["videos"] == n_test - 1  # every row leaves it out
    assert "could not be read" in flat(result.output)


@pytest.mark.slow
def test_bad_input_is_a_sentence(
    dense_model: Path, caption_bundle: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    def refused(*args: object, message: str, code: int = 1) -> None:
        result = invoke("evaluate", *args)
        assert result.exit_code == code, result.output
        assert message in flat(result.output), result.output
        assert "Traceback" not in result.output

    corpus = _corpus_copy(synth_corpus, tmp_path)
    # A dense bundle asked for caption scores, a caption bundle for dense ones.
    refused(dense_model, "--task", "caption", message="evaluate it with --task dense")
    refused(caption_bundle, "--task", "dense", message="not a dense one")
    refused(dense_model, "--captioner", dense_model, message="need a --task caption bundle")
    refused(caption_bundle, "--captioner", caption_bundle, message="beside a dense model", code=2)
    refused(dense_model, "--html", tmp_path / "page", message="use --json", code=2)

    # Prediction files: the wrong shape, unknown videos, end <= start, outside the video.
    record = next(r for r in read_corpus(corpus) if r.split == "test")
    bad = {
        "shape": ({"results": [1, 2]}, "results"),
        "unknown": ({"results": {"nope": [{"timestamp": [0, 1], "sentence": "x"}]}}, "nope"),
        "reversed": (
            {"results": {record.id: [{"timestamp": [2, 1], "sentence": "x"}]}},
            "ends before it starts",
        ),
        "outside": (
            {"results": {record.id: [{"timestamp": [0, record.duration + 60], "sentence": "x"}]}},
            "outside the video",
        ),
    }
    for name, (content, message) in bad.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(content))
        refused("--task", "dense", "--predictions", path, "--corpus", corpus, message=message)

    # A corpus whose split has no segments.
    records = [replace(r, segments=[]) for r in read_corpus(corpus)]
    bare = tmp_path / "bare.jsonl"
    write_corpus(bare, records)
    refused(dense_model, "--corpus", bare, message="no videos with segments")

    # A video shorter than one clip (0.125 s): one short clip, captioned and scored, nothing lost.
    short = tmp_path / "short.mp4"
    encode(short, np.zeros((3, 64, 64, 3), np.uint8), fps=24)
    records = read_corpus(corpus)
    i, first = next((i, r) for i, r in enumerate(records) if r.split == "test")
    records[i] = replace(first, video=short)
    write_corpus(corpus, records)
    result = invoke("evaluate", dense_model, "--corpus", corpus, "--no-meteor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["failed"] == [] and report["videos"] == 2
    assert report["scores"]["model"]["missing"] == []
