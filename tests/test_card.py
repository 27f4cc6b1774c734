"""The model card (README.md) in every bundle and pretrain final/: its fields, its metadata (valid
YAML that huggingface_hub reads), `vidcap evaluate` adding its scores, `vidcap info --model`, and
bundles from before cards (no README.md) that still caption."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vidcap.card import (
    CARD,
    EVALUATION,
    card_metadata,
    final_losses,
    is_synthetic,
    record_evaluation,
    render_card,
)
from vidcap.cli import app
from vidcap.corpus import read_corpus

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def metadata_of(card: str) -> dict:
    """The YAML block between the first two '---' lines, parsed by PyYAML itself."""
    assert card.startswith("---\n"), card[:80]
    block = card[4:].split("\n---\n", 1)[0]
    return yaml.safe_load(block)


# --------------------------------------------------------------------------------------------------
# Without training: the corpus marker and the metrics log


def test_synthetic_corpus_is_recognised_from_its_records(synth_corpus: Path) -> None:
    records = read_corpus(synth_corpus)
    assert is_synthetic(records)
    # The file's name plays no part: the same records copied under another name still are...
    assert is_synthetic([replace(r, id=f"clip{i}") for i, r in enumerate(records)])
    # ...and records without the generator's mark (a real corpus) are not, whatever the name.
    assert not is_synthetic([replace(r, meta=None) for r in records])
    assert not is_synthetic([replace(records[0], meta={"generator": "camera"}), *records[1:]])
    assert not is_synthetic([])


def test_final_losses_are_the_last_rows(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    rows = [
        {"step": 10, "split": "train", "loss": 3.0, "lr": 1e-3},
        {"step": 10, "split": "val", "loss": 3.5, "cider": 0.1},
        {"step": 20, "split": "train", "loss": 2.0, "lr": 1e-3},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 30, "spl')  # torn
    assert final_losses(log) == {"train": {"loss": 2.0}, "val": {"loss": 3.5, "cider": 0.1}}
    assert final_losses(tmp_path / "none.jsonl") == {}


# --------------------------------------------------------------------------------------------------
# A trained bundle (tiny BART, through the CLI)


@pytest.fixture(scope="module")
def trained(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(pretrain folder, finetuned bundle) of a few steps each (read-only to tests)."""
    root = tmp_path_factory.mktemp("card")
    common = ("--preset", "tiny", "--eval-every", "5", "--lr", "1e-2")
    run = invoke(
        "pretrain", words_dir, "--out", root / "pretrain", "--arch", "bart", "--max-steps", "5",
        *common,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    run = invoke(
        "finetune", root / "pretrain", "--out", root / "bundle", "--with-features",
        "--max-steps", "10", "--beams", "1", *common,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    return root / "pretrain", root / "bundle"


@pytest.mark.slow
def test_finetuned_bundle_has_a_card_with_every_field(
    trained: tuple[Path, Path], synth_corpus: Path
) -> None:
    _, bundle = trained
    card = (bundle / CARD).read_text()
    info = json.loads((bundle / "vidcap.json").read_text())
    meta = metadata_of(card)
    assert meta["library_name"] == "vidcap" and "synthetic-data" in meta["tags"]
    assert "model-index" not in meta  # not evaluated yet
    body = card.split("\n---\n", 1)[1]
    for heading in ("## Intended use", "## Known limits", "## Model", "## Training data"):
        assert heading in body, heading
    assert "knows only the synthetic shapes world" in body
    assert "Not evaluated yet" in body
    # Model: task, architecture and preset, encoder and clip settings, the codebook
    assert "| task | caption |" in body and "BART, preset tiny" in body
    assert "`descriptor`" in body and "30 frames at 20 fps (1.5 s), frames 64 px" in body
    assert "k=4, depth 2: 16 words" in body
    # Training data: what the corpus holds, counted from it
    records = read_corpus(synth_corpus)
    splits = {s: sum(r.split == s for r in records) for s in ("test", "train", "val")}
    corpus = info["training"]["corpus"]
    assert corpus["corpus"] == str(synth_corpus.resolve()) and corpus["synthetic"] is True
    assert corpus["videos"] == len(records) and corpus["splits"] == splits
    assert corpus["segments"] == sum(len(r.segments) for r in records)
    assert corpus["hours"] == round(sum(r.duration for r in records) / 3600, 3)
    assert f"| videos | {len(records)} (" in body
    assert f"| captioned segments | {corpus['segments']} |" in body
    assert "+ 16 visual words" in body  # the joint vocabulary's size
    # Training: steps and the final losses of its metrics log
    assert info["training"]["steps"] == 10 and "| steps | 10 |" in body
    last_train = [
        json.loads(line)
        for line in (bundle / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["split"] == "train"
    ][-1]
    assert f"| final train loss | {last_train['loss']:.3f} |" in body


@pytest.mark.slow
def test_card_loads_with_huggingface_hub(trained: tuple[Path, Path]) -> None:
    from huggingface_hub import ModelCard

    for folder in (trained[1], trained[0] / "final"):
        card = ModelCard.load(folder / CARD)
        assert card.data.library_name == "vidcap"
        assert "## Known limits" in card.text
        assert card.data.to_dict() == metadata_of((folder / CARD).read_text())


@pytest.mark.slow
def test_pretrain_final_has_a_card(trained: tuple[Path, Path]) -> None:
    final = trained[0] / "final"
    card = (final / CARD).read_text()
    assert "pretraining" in metadata_of(card)["tags"]
    assert "starting point for `vidcap finetune`" in card
    assert "knows only the synthetic shapes world" in card
    assert "| steps | 5 |" in card and "## Evaluation" not in card


@pytest.mark.slow
def test_evaluate_writes_its_scores_into_the_card(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained[1], bundle)
    run = invoke("evaluate", bundle, "--split", "train", "--json", "--no-meteor")
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    assert "model card updated" in run.stderr
    card = (bundle / CARD).read_text()
    assert "Not evaluated yet" not in card
    assert "### train split of" in card
    captioner = report["scores"]["captioner"]
    row = next(line for line in card.splitlines() if line.startswith("| captioner |"))
    assert f"| {captioner['CIDEr']:.3f} |" in row and f"| {captioner['BLEU-4']:.3f} |" in row
    assert "| nearest-neighbour floor |" in card and "| reference ceiling |" in card
    results = metadata_of(card)["model-index"][0]["results"]
    assert [r["dataset"]["split"] for r in results] == ["train"]
    cider = next(m for m in results[0]["metrics"] if m["name"] == "CIDEr")
    assert cider["value"] == round(captioner["CIDEr"], 4)
    from huggingface_hub import ModelCard  # reads model-index into its eval results

    results = ModelCard.load(bundle / CARD).data.eval_results  # one per metric
    assert {r.dataset_split for r in results} == {"train"}
    assert {r.metric_name: r.metric_value for r in results}["CIDEr"] == cider["value"]
    # A second split is added beside the first; the same split again replaces its entry.
    assert invoke("evaluate", bundle, "--json", "--no-meteor").exit_code == 0
    assert invoke("evaluate", bundle, "--json", "--no-meteor").exit_code == 0
    results = metadata_of((bundle / CARD).read_text())["model-index"][0]["results"]
    assert sorted(r["dataset"]["split"] for r in results) == ["test", "train"]
    assert len(json.loads((bundle / EVALUATION).read_text())["evaluations"]) == 2


@pytest.mark.slow
def test_info_model_prints_the_card(trained: tuple[Path, Path]) -> None:
    pretrain, bundle = trained
    run = invoke("info", "--model", bundle)
    assert run.exit_code == 0, run.output
    assert run.stdout == (bundle / CARD).read_text()
    run = invoke("info", "--model", pretrain)  # a pretrain folder: its final/'s card
    assert run.exit_code == 0 and run.stdout == (pretrain / "final" / CARD).read_text()
    run = invoke("info", "--model", bundle, "--json")
    assert json.loads(run.stdout)["metadata"]["library_name"] == "vidcap"
    run = invoke("info", "--model", pretrain / "nothing")
    assert run.exit_code == 1 and run.stderr.startswith("error:") and "Traceback" not in run.output


@pytest.mark.slow
def test_a_bundle_without_a_card_still_captions(
    trained: tuple[Path, Path], synth_corpus: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "old"
    shutil.copytree(trained[1], bundle)
    (bundle / CARD).unlink()  # as an older vidcap wrote it
    video = read_corpus(synth_corpus)[0].video
    run = invoke("caption", video, "--model", bundle)
    assert run.exit_code == 0, run.output
    assert run.stdout.strip()
    run = invoke("info", "--model", bundle)
    assert run.exit_code == 0 and run.stdout == ""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has no model card (README.md)" in lines[0], run.stderr
    # `vidcap evaluate` writes one from its vidcap.json and the scores.
    assert invoke("evaluate", bundle, "--json", "--no-meteor").exit_code == 0
    assert "### test split of" in (bundle / CARD).read_text()


def test_a_card_from_a_real_corpus_says_what_it_knows(tmp_path: Path) -> None:
    info = {
        "stage": "finetune",
        "task": "caption",
        "arch": "bart",
        "preset": "base",
        "training": {
            "corpus": {
                "corpus": "/data/msrvtt/corpus.jsonl",
                "videos": 10000,
                "splits": {"train": 9000, "test": 1000},
                "hours": 41.2,
                "segments": 10000,
                "caption_words": 23000,
                "synthetic": False,
            },
            "steps": 20000,
            "final": {"train": {"loss": 1.5}},
        },
    }
    card = render_card(tmp_path, info)
    assert "synthetic" not in card
    assert "It knows only what its training corpus shows (10000 videos, 41.2 hours)" in card
    assert card_metadata(card)["pipeline_tag"] == "video-text-to-text"
    report = {
        "task": "caption",
        "split": "test",
        "segments": 3,
        "videos": 2,
        "scores": {
            "captioner": {
                "BLEU-1": 0.5,
                "BLEU-4": 0.2,
                "METEOR": None,
                "ROUGE-L": 0.4,
                "CIDEr": 0.3,
            },
            "nearest_neighbour": None,
            "reference_ceiling": None,
        },
        "cider_vs_ceiling": None,
        "fact_accuracy": {},
    }
    (tmp_path / "vidcap.json").write_text(json.dumps(info))
    record_evaluation(tmp_path, info, report, "/data/msrvtt/corpus.jsonl")
    card = (tmp_path / CARD).read_text()
    assert "| captioner | 0.500 | 0.200 | - | 0.400 | 0.300 |" in card
    assert "nearest-neighbour floor |" not in card  # no floor was measured
    metrics = card_metadata(card)["model-index"][0]["results"][0]["metrics"]
    assert {m["name"] for m in metrics} == {"BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"}


def test_the_card_names_a_local_encoder_folder_by_its_name_only() -> None:
    """The card is on every report page and served at /v1/model: an hf: model read from a
    folder is shown by the folder's name, not its place on this machine; hub ids as they are."""
    from vidcap.card import _shown_encoder

    assert _shown_encoder("hf:/home/me/models/dinov2-small") == "hf:dinov2-small"
    assert _shown_encoder("hf:~/models/clip") == "hf:clip"
    assert _shown_encoder("hf:facebook/dinov2-small") == "hf:facebook/dinov2-small"
    assert _shown_encoder("descriptor") == "descriptor" and _shown_encoder(None) is None
