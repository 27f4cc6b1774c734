"""Zero-shot classification (tiny VideoBERT pretrain, CPU): template parsing, the input sequence,
slot fills, label ranking, `vidcap classify` on raw videos, refusals, and `evaluate_classifier`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidcap.cli import app
from vidcap.cli.evaluate import print_classify_report
from vidcap.corpus import read_corpus
from vidcap.errors import VidcapError
from vidcap.inference.zeroshot import ZeroShotClassifier, parse_template
from vidcap.stages.pretrain import PretrainConfig, run_pretrain
from vidcap.synth.facts import segment_facts
from vidcap.synth.zeroshot import evaluate_classifier
from vidcap.training.examples import JOINT, ExampleConfig, VideoBertExamples

runner = CliRunner()
LABELS = ["red", "green", "blue", "stays still", "rotates"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def pretrain(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny VideoBERT pretrain folder (read-only to tests)."""
    out = tmp_path_factory.mktemp("zeroshot") / "pretrain"
    config = PretrainConfig(preset="tiny", max_steps=20, eval_every=1000, save_every=1000)
    assert run_pretrain(words_dir, out, config).ok
    return out


@pytest.fixture(scope="module")
def classifier(pretrain: Path) -> ZeroShotClassifier:
    return ZeroShotClassifier.load(pretrain, device="cpu")


@pytest.fixture(scope="module")
def video(synth_corpus: Path) -> Path:
    return synth_corpus.parent / read_corpus(synth_corpus)[0].video


def test_template_parsing(classifier: ZeroShotClassifier) -> None:
    vocab = classifier.vocab
    with pytest.raises(VidcapError, match=r"no \[MASK\] slot"):
        parse_template(vocab, "a red circle")
    parsed = parse_template(vocab, "A Red [MASK] moves [mask]")  # any case, in the text too
    assert parsed.slots == 2
    assert parsed.pieces == (
        tuple(vocab.encode_text("a red")),
        tuple(vocab.encode_text("moves")),
        (),
    )
    ids, positions = parsed.ids(vocab.mask_id, [2, 1])
    assert [ids[p] for p in positions] == [vocab.mask_id] * 3
    assert ids.count(vocab.mask_id) == 3 and positions == [2, 3, 5]
    words = np.array([0, 1])
    with pytest.raises(VidcapError, match="exactly one"):
        classifier.rank(words, "a [MASK] [MASK]", ["red"])
    with pytest.raises(VidcapError, match="does not know"):
        classifier.rank(words, "a [MASK]", ["red", "日本"])  # characters never seen: [UNK]
    with pytest.raises(VidcapError, match="no words"):
        classifier.rank(words, "a [MASK]", ["red", "  "])


def test_sequence_is_pretrainings_joint_sequence(classifier: ZeroShotClassifier) -> None:
    vocab = classifier.vocab
    text = np.array(vocab.encode_text("a red circle moves left"))
    words = np.array([3, 1, 4, 1, 5])
    examples = VideoBertExamples([], vocab, ExampleConfig(max_length=classifier.max_length))
    want_ids, want_types = examples._sequence(text, vocab.visual_ids(words), JOINT)
    ids, types = classifier.sequence(text.tolist(), words)
    assert ids == want_ids.tolist() and types == want_types.tolist()
    # Too many clips: subsampled evenly to the model's length, first and last kept.
    long = np.arange(1000) % vocab.n_visual
    ids, types = classifier.sequence(text.tolist(), long)
    assert len(ids) == len(types) == classifier.max_length
    video = vocab.words_from_ids(ids[len(text) + 2 : -1])
    assert video[0] == long[0] and video[-1] == long[-1]
    assert types == [0] * (1 + len(text)) + [1] * (len(ids) - 1 - len(text))


def test_fill_gives_text_pieces_with_probabilities(classifier: ZeroShotClassifier) -> None:
    vocab = classifier.vocab
    slots = classifier.fill(np.array([0, 5, 9]), "a [MASK] circle [MASK]", top=7)
    assert len(slots) == 2
    lo, hi = vocab.text_id_range
    for fills in slots:
        assert len(fills) == 7
        probabilities = [f.probability for f in fills]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6
        for f in fills:
            assert lo <= f.id < hi and f.id not in vocab.special_ids
            assert vocab.words_from_ids([f.id])[0] == -1
            assert f.token == vocab.tokenizer.convert_ids_to_tokens(f.id)


def _mean_log_prob(classifier: ZeroShotClassifier, text: str, label: str, words) -> float:
    """A label's score computed the long way: the full model, the masked sentence typed out."""
    vocab = classifier.vocab
    pieces = vocab.encode_text(label)
    before = vocab.encode_text(text.split("[MASK]")[0])
    after = vocab.encode_text(text.split("[MASK]")[1])
    ids = [vocab.cls_id, *before, *[vocab.mask_id] * len(pieces), *after, vocab.join_id]
    ids += [*vocab.visual_ids(words).tolist(), vocab.sep_id]
    types = [0] * (1 + len(before) + len(pieces) + len(after))
    types += [1] * (len(ids) - len(types))
    with torch.no_grad():
        logits = classifier.model(
            input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])
        ).prediction_logits[0]
    text_ids = classifier._text_ids
    total = 0.0
    for i, piece in enumerate(pieces):
        log_p = torch.log_softmax(logits[1 + len(before) + i, text_ids], dim=-1)
        total += float(log_p[int((text_ids == piece).nonzero())])
    return total / len(pieces)


def test_rank_scores_every_label_by_mean_log_prob(classifier: ZeroShotClassifier) -> None:
    words = np.array([2, 7, 7, 11])
    labels = [*LABELS, "hexagonal", "red"]  # a duplicate is scored once
    assert len(classifier.vocab.encode_text("stays still")) == 2
    assert len(classifier.vocab.encode_text("hexagonal")) > 1  # not a corpus word: split
    ranked = classifier.rank(words, "the [MASK] shape", labels)
    assert sorted(r.label for r in ranked) == sorted(set(labels))
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True) and all(s < 0 for s in scores)
    for row in ranked:
        assert row.pieces == len(classifier.vocab.encode_text(row.label))
        want = _mean_log_prob(classifier, "the [MASK] shape", row.label, words)
        assert row.score == pytest.approx(want, abs=1e-4), row.label
    # The video is read: other visual words, other scores.
    other = classifier.rank(np.array([0, 0, 15, 15]), "the [MASK] shape", labels)
    assert {r.label: r.score for r in other} != {r.label: r.score for r in ranked}


def test_cli_classifies_raw_videos(pretrain: Path, video: Path, tmp_path: Path) -> None:
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("# colours\nred\n\ngreen\n  blue  \n# actions\nstays still\n")
    result = invoke(
        "classify", video, "--model", pretrain / "final", "--template", "a [MASK] circle",
        "--labels-file", labels_file, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (row,) = payload["results"]
    assert row["video"] == str(video) and row["clips"] > 0
    assert [r["label"] for r in row["ranked"]].count("blue") == 1
    assert sorted(r["label"] for r in row["ranked"]) == ["blue", "green", "red", "stays still"]
    scores = [r["score"] for r in row["ranked"]]
    assert scores == sorted(scores, reverse=True)
    assert "stays still" in result.stderr  # the table

    # Plain output: video<TAB>labels; a bad file in the middle is an error line, the rest go on.
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    result = invoke(
        "classify", video, bad, video, "-m", pretrain, "-t", "a [MASK] circle",
        "-l", labels_file, "--top", "2",
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    path, top = lines[0].split("\t")
    assert path == str(video) and len(top.split(",")) == 2
    assert set(top.split(",")) <= {"red", "green", "blue", "stays still"}
    assert len(error_lines(result.stderr)) == 2 and "broken.mp4" in result.stderr

    # No labels: the vocabulary's top fills, one column per slot.
    result = invoke("classify", video, "-m", pretrain, "-t", "a [MASK] [MASK]", "--top", "3")
    assert result.exit_code == 0, result.output
    columns = result.stdout.rstrip("\n").split("\t")
    assert len(columns) == 3 and all(len(c.split(",")) == 3 for c in columns[1:])


def test_refusals_are_one_line_errors(
    pretrain: Path, words_dir: Path, video: Path, tmp_path: Path
) -> None:
    bart = tmp_path / "bart"
    config = PretrainConfig(arch="bart", preset="tiny", max_steps=2, eval_every=1000)
    assert run_pretrain(words_dir, bart, config).ok
    finetuned = tmp_path / "finetuned"
    shutil.copytree(pretrain / "final", finetuned)
    info = json.loads((finetuned / "vidcap.json").read_text())
    (finetuned / "vidcap.json").write_text(json.dumps({**info, "stage": "finetune"}))
    cases = {bart: "videobert", finetuned: "finetune", tmp_path: "no vidcap.json"}
    for model, message in cases.items():
        result = invoke("classify", video, "-m", model, "-t", "a [MASK] circle")
        assert result.exit_code == 1
        assert len(error_lines(result.stderr)) == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.output
    result = invoke("classify", video, "-m", pretrain, "-t", "a red circle")
    assert result.exit_code == 1 and "[MASK]" in error_lines(result.stderr)[0]


def test_evaluate_classifier_report(pretrain: Path, synth_corpus: Path) -> None:
    records = read_corpus(synth_corpus)
    colours = {f.colour for r in records for s in r.segments if (f := segment_facts(r, s))}
    test_segments = [
        s for r in records if r.split == "test" for s in r.segments if segment_facts(r, s)
    ]
    report = evaluate_classifier(pretrain, "a [MASK] circle", "colour")
    assert report["labels"] == sorted(colours)
    assert report["segments"] == len(test_segments) > 0
    n = len(colours)
    assert report["chance_top1"] == pytest.approx(1 / n)
    assert report["chance_top5"] == pytest.approx(min(5, n) / n)
    assert report["top5"] >= report["top1"]
    per_class = report["per_class"].values()
    assert sum(c["count"] for c in per_class) == report["segments"]
    assert sum(c["predicted"] for c in per_class) == report["segments"]
    assert report["top1"] == pytest.approx(sum(c["top1"] for c in per_class) / report["segments"])
    assert report["top5"] == pytest.approx(sum(c["top5"] for c in per_class) / report["segments"])
    counts = [c["count"] for c in per_class]
    assert report["majority"] == pytest.approx(max(counts) / report["segments"])
    top_counts = sorted(counts, reverse=True)[:5]
    assert report["majority_top5"] == pytest.approx(sum(top_counts) / report["segments"])
    # The examples list every scored segment here (at most 5 are listed): the accuracies again,
    # from each segment's truth and ranked labels.
    examples = report["examples"]
    assert len(examples) == report["segments"]
    top1 = [e["predicted"][0] == e["truth"] for e in examples]
    top5 = [e["truth"] in e["predicted"][:5] for e in examples]
    assert report["top1"] == pytest.approx(sum(top1) / len(examples))
    assert report["top5"] == pytest.approx(sum(top5) / len(examples))
    print_classify_report(report)  # renders

    actions = evaluate_classifier(
        pretrain / "final", "it [MASK]", "action", labels=["stays still", "rotates"]
    )
    assert actions["labels"] == ["stays still", "rotates"] and actions["chance_top1"] == 0.5
    assert actions["top5"] == 1 - actions["not_in_labels"] / actions["segments"]
    with pytest.raises(VidcapError, match="--field"):
        evaluate_classifier(pretrain, "a [MASK]", "size")
