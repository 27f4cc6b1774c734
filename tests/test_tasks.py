"""`vidcap finetune --task qa|summary`, `vidcap answer`, `vidcap summarize` and their evaluation
(tiny preset, CPU, through the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidcap.cli import app
from vidcap.metrics.qa import exact_match, normalize_answer, prior_answers
from videos import fork_only, trap_bundle_copy

runner = CliRunner()

TINY = ("--preset", "tiny", "--max-steps", "40", "--lr", "1e-2", "--eval-every", "20")


def invoke(*args: object, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def pretrain(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tasks") / "pretrain"
    result = invoke(
        "pretrain", words_dir, "--out", out, "--preset", "tiny", "--arch", "bart",
        "--max-steps", "5", "--eval-every", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def qa_bundle(pretrain: Path) -> Path:
    out = pretrain.parent / "qa"
    result = invoke("finetune", pretrain, "--out", out, "--task", "qa", *TINY, "--json")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def summary_bundle(pretrain: Path) -> Path:
    out = pretrain.parent / "summary"
    result = invoke("finetune", pretrain, "--out", out, "--task", "summary", *TINY, "--json")
    assert result.exit_code == 0, result.output
    return out


def first_video(synth_corpus: Path, split: str = "test") -> Path:
    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    return synth_corpus.parent / next(r["video"] for r in records if r["split"] == split)


@pytest.mark.slow
def test_qa_bundle_records_its_task_and_val_exact_match(
    qa_bundle: Path, synth_corpus: Path
) -> None:
    info = json.loads((qa_bundle / "vidcap.json").read_text())
    assert info["task"] == "qa" and info["inputs"]["with_transcript"] is True
    val = [json.loads(line) for line in (qa_bundle / "metrics.jsonl").read_text().splitlines()]
    val = [m for m in val if m["split"] == "val"]
    assert [m["step"] for m in val] == [20, 40]
    # Exact match is the share of the val split's questions answered right (rounded to 4 places):
    # a whole number of hits out of the corpus's val questions, not e.g. a token accuracy.
    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    n_val = sum(len(r.get("qa", [])) for r in records if r["split"] == "val")
    assert n_val > 1
    for m in val:
        hits = m["exact_match"] * n_val
        assert abs(hits - round(hits)) <= n_val * 5e-5 and 0 <= round(hits) <= n_val, m


@pytest.mark.slow
def test_answer_questions_from_options_and_stdin(qa_bundle: Path, synth_corpus: Path) -> None:
    video = first_video(synth_corpus)
    questions = ["how many objects are there?", "what colour is the circle?"]
    result = invoke("answer", video, "-q", questions[0], "-q", questions[1], "--model", qa_bundle)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2

    piped = invoke(
        "answer", video, "-q", "-", "--model", qa_bundle, "--json", input="\n".join(questions)
    )
    assert piped.exit_code == 0, piped.output
    answers = json.loads(piped.stdout)["answers"]
    assert [a["question"] for a in answers] == questions
    # the same questions give the same answers, however they were asked
    assert [a["answer"] for a in answers] == result.stdout.splitlines()


@pytest.mark.slow
def test_evaluate_qa_reports_exact_match_per_type_and_the_prior_floor(
    qa_bundle: Path, synth_corpus: Path
) -> None:
    result = invoke("evaluate", qa_bundle, "--task", "qa", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["task"] == "qa" and report["questions"] > 0
    assert set(report["exact_match"]["per_type"]) <= {"count", "colour", "shape", "action"}
    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    test_qa = [(r["id"], q) for r in records if r["split"] == "test" for q in r.get("qa", [])]
    truth = [q["answer"] for _, q in test_qa]
    kinds = [q.get("type") for _, q in test_qa]
    # Every test question is scored, and (7 of them: all fit in the report's 8 examples) each
    # example pairs the question with the corpus's answer.
    assert report["questions"] == report["exact_match"]["count"] == len(test_qa)
    examples = report["examples"]
    assert [(e["video"], e["question"], e["truth"]) for e in examples] == [
        (video, q["question"], q["answer"]) for video, q in test_qa
    ]
    # Overall and per-type exact match, recomputed from the report's own answers.
    hits: dict[str, list[bool]] = {}
    for e, kind in zip(examples, kinds, strict=True):
        hits.setdefault(kind or "untyped", []).append(
            normalize_answer(e["answer"]) == normalize_answer(e["truth"])
        )
    every = [h for group in hits.values() for h in group]
    assert report["exact_match"]["exact_match"] == pytest.approx(sum(every) / len(every))
    assert report["exact_match"]["per_type"] == pytest.approx(
        {kind: sum(group) / len(group) for kind, group in hits.items()}
    )
    # The prior floor: each question's most frequent training answer, scored the same way.
    train = [q for r in records if r["split"] == "train" for q in r.get("qa", [])]
    guesses = prior_answers(
        [q["question"] for _, q in test_qa],
        [q["question"] for q in train],
        [q["answer"] for q in train],
    )
    prior = exact_match(guesses, truth, kinds)
    assert report["prior_floor"]["count"] == report["questions"]
    assert report["prior_floor"]["exact_match"] == pytest.approx(prior["exact_match"])
    assert report["prior_floor"]["per_type"] == pytest.approx(prior["per_type"])


@pytest.mark.slow
def test_a_bundle_is_refused_by_another_tasks_command(
    qa_bundle: Path, summary_bundle: Path, synth_corpus: Path
) -> None:
    video = first_video(synth_corpus)
    for args in (
        ("caption", video, "--model", qa_bundle),
        ("summarize", video, "--model", qa_bundle),
        ("answer", video, "-q", "what?", "--model", summary_bundle),
        ("evaluate", qa_bundle, "--task", "caption"),
    ):
        result = invoke(*args)
        assert result.exit_code == 1, args
        assert "--task" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_summarize_and_evaluate_summary(summary_bundle: Path, synth_corpus: Path) -> None:
    info = json.loads((summary_bundle / "vidcap.json").read_text())
    assert info["task"] == "summary" and info["generation"]["max_new_tokens"] == 96
    video = first_video(synth_corpus)
    result = invoke("summarize", video, "missing.mp4", "--model", summary_bundle, "--json")
    assert result.exit_code == 1  # one of the two failed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["video"] for line in lines] == [str(video), "missing.mp4"]
    assert "summary" in lines[0] and f"error: {lines[1]['error']}" in result.stderr

    report = json.loads(invoke("evaluate", summary_bundle, "--json", "--no-meteor").stdout)
    assert report["task"] == "summary"
    for row in ("captioner", "nearest_neighbour", "reference_ceiling"):
        assert report["scores"][row]["CIDEr"] is not None
    # summaries are paraphrases of each other: leave-one-out agreement is far from zero
    assert report["scores"]["reference_ceiling"]["BLEU-1"] > 0.3


def test_exact_match_normalises_case_and_punctuation() -> None:
    assert normalize_answer("  Moves   Left. ") == "moves left"
    scores = exact_match(
        ["Two", "red", "moves left!"], ["two", "blue", "moves left"], ["count", "colour", None]
    )
    assert scores["exact_match"] == pytest.approx(2 / 3)
    assert scores["per_type"] == {"colour": 0.0, "count": 1.0, "untyped": 1.0}


def test_prior_answers_use_the_most_frequent_training_answer() -> None:
    train_q = ["what colour is the circle?"] * 3 + ["how many objects are there?"]
    train_a = ["red", "red", "blue", "one"]
    guesses = prior_answers(["What colour is the circle", "what is new?"], train_q, train_a)
    assert guesses == ["red", "red"]  # unseen question: the most frequent answer overall


@pytest.mark.slow
def test_demo_runs_every_stage_and_writes_bundle_storyboard_and_metrics(tmp_path: Path) -> None:
    """`vidcap demo` with tiny step counts: every stage folder, the report, a storyboard."""
    out = tmp_path / "demo"
    result = invoke(
        "demo", "--out", out, "--videos", "20", "--pretrain-steps", "5", "--finetune-steps", "10"
    )
    assert result.exit_code == 0, result.output
    for folder in ("synth", "frames", "features", "words", "pretrain", "model"):
        assert (out / folder / "manifest.json").is_file() or folder == "synth", folder
    assert json.loads((out / "model" / "vidcap.json").read_text())["stage"] == "finetune"
    report = json.loads((out / "evaluation.json").read_text())
    assert report["segments"] > 0 and report["scores"]["captioner"]["CIDEr"] is not None
    assert (out / "storyboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test split" in result.stderr and "storyboard" in result.stderr


@pytest.mark.slow
def test_retraining_a_bundle_folder_leaves_nothing_stale(
    pretrain: Path, synth_corpus: Path
) -> None:
    """A run with other settings into the same folder starts afresh: no feature projection of
    the earlier run is loaded with the new model, and its checkpoints are not resumed."""
    out = pretrain.parent / "retrained"
    quick = ("--preset", "tiny", "--max-steps", "4", "--eval-every", "1000", "--beams", "1")
    first = invoke(
        "finetune", pretrain, "--out", out, *quick, "--with-features", "--save-every", "2"
    )
    assert first.exit_code == 0, first.output
    assert (out / "feature_projection.safetensors").is_file()
    second = invoke("finetune", pretrain, "--out", out, *quick, "--resume", "auto", "--json")
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["steps"] == 4  # trained, not resumed from the other run
    assert not (out / "feature_projection.safetensors").exists()
    assert json.loads((out / "vidcap.json").read_text())["inputs"]["with_features"] is False
    caption = invoke("caption", first_video(synth_corpus), "--model", out)
    assert caption.exit_code == 0, caption.output


@pytest.mark.slow
def test_a_finetuned_bundle_goes_on_training_on_another_task(
    pretrain: Path, synth_corpus: Path
) -> None:
    """Caption → QA: the QA run starts from the caption bundle, its feature projection included."""
    from safetensors.numpy import load_file

    quick = ("--preset", "tiny", "--max-steps", "4", "--eval-every", "1000", "--beams", "1")
    captions = pretrain.parent / "captions-for-qa"
    first = invoke("finetune", pretrain, "--out", captions, *quick, "--with-features")
    assert first.exit_code == 0, first.output
    qa = pretrain.parent / "qa-from-captions"
    second = invoke(
        "finetune", captions, "--out", qa, "--task", "qa", *quick, "--with-features", "--json"
    )
    assert second.exit_code == 0, second.output
    info = json.loads((qa / "vidcap.json").read_text())
    assert info["task"] == "qa" and info["pretrained"] == str(captions.resolve())
    # The projection's statistics come from the caption bundle (QA's whole-video clips differ).
    before = load_file(str(captions / "feature_projection.safetensors"))
    after = load_file(str(qa / "feature_projection.safetensors"))
    assert (before["mean"] == after["mean"]).all() and (before["scale"] == after["scale"]).all()
    answer = invoke("answer", first_video(synth_corpus), "-m", qa, "-q", "what colour is it?")
    assert answer.exit_code == 0, answer.output
    for args, message in (
        (("--out", qa.parent / "x", "--task", "qa"), "finetune it with --with-features"),
        (("--out", captions, "--with-features"), "--out must be a new folder"),
        (("--out", qa.parent / "y", "--from-scratch"), "--from-scratch needs a pretrain"),
    ):
        refused = invoke("finetune", captions, *args, *quick)
        assert refused.exit_code == 1 and message in refused.output, refused.output


@fork_only
@pytest.mark.slow
def test_answer_and_summarize_fail_a_hung_or_crashing_decoders_video_only(
    qa_bundle: Path,
    summary_bundle: Path,
    synth_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As caption: a hang costs its --timeout and one sentence, a segfault one sentence."""
    import shutil
    import time

    from vidcap.video.backends import unregister_backend

    video = first_video(synth_corpus)
    hang, crash = tmp_path / "hang.mp4", tmp_path / "crash.mp4"
    for copy in (hang, crash):
        shutil.copy(video, copy)
    try:
        qa = trap_bundle_copy(qa_bundle, tmp_path / "qa", monkeypatch)
        summary = trap_bundle_copy(summary_bundle, tmp_path / "summary", monkeypatch)
        asked = ("-q", "how many objects are there?", "--timeout", "2")
        started = time.monotonic()
        hung = invoke("answer", hang, *asked, "--model", qa)
        assert time.monotonic() - started < 2 + 30  # its 2 s, not the hour the decoder sleeps
        crashed = invoke("answer", crash, *asked, "--model", qa)
        fine = invoke("answer", video, *asked, "--model", qa)
        summaries = invoke(
            "summarize", video, hang, crash, "--model", summary, "--timeout", "2", "--json"
        )
    finally:
        unregister_backend("trap")
    assert (
        hung.exit_code == 1 and "hang.mp4 stalled: the decoder sent nothing for 2 s" in hung.output
    )
    assert crashed.exit_code == 1 and "crashed" in crashed.output and "SIGSEGV" in crashed.output
    assert fine.exit_code == 0 and len(fine.stdout.splitlines()) == 1
    assert "Traceback" not in hung.output + crashed.output + summaries.output
    assert summaries.exit_code == 1
    records = [json.loads(line) for line in summaries.stdout.splitlines()]
    assert [r["video"] for r in records] == [str(video), str(hang), str(crash)]
    assert "summary" in records[0] and "error" not in records[0]
    errors = [line for line in summaries.stderr.splitlines() if line.startswith("error:")]
    assert "hang.mp4 stalled" in errors[0] and "crash.mp4" in errors[1]
    assert [f"error: {r['error']}" for r in records[1:]] == errors[:2]
    assert errors[-1] == "error: 2 of 3 videos could not be summarized."
