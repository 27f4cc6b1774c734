"""``vidcap evaluate``: caption metrics of a bundle on a corpus split, read against a floor and a
ceiling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from vidcap.bundle import Task
from vidcap.cli.console import print_error, progress_bar, stderr, stdout
from vidcap.cli.videos import Beams, Timeout
from vidcap.corpus import Split
from vidcap.errors import VidcapError
from vidcap.synth.facts import Field
from vidcap.video.worker import VIDEO_TIMEOUT_S

EvaluateTask = Literal[Task, "classify", "dense"]
"""What ``vidcap evaluate --task`` scores: a finetuned bundle's task, zero-shot classification, or
dense captions (``--predictions``)."""

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
ROWS = (
    ("captioner", "captioner"),
    ("nearest_neighbour", "nearest-neighbour floor"),
    ("reference_ceiling", "reference ceiling"),
)


def print_report(report: dict) -> None:
    """The metrics table (and fact accuracy, notices, examples) of a report's JSON on stderr."""
    table = Table(
        title=f"{report['split']} split: {report['segments']} segments of {report['videos']} videos"
    )
    table.add_column("")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    for key, label in ROWS:
        scores = report["scores"].get(key)
        if scores is not None:
            table.add_row(
                label, *("-" if scores[m] is None else f"{scores[m]:.3f}" for m in METRICS)
            )
    stderr.print(table)
    if report.get("cider_vs_ceiling") is not None:
        stderr.print(f"captioner CIDEr = {report['cider_vs_ceiling']:.2f} x the reference ceiling")
    if report.get("fact_accuracy"):
        facts = Table(title="fact accuracy (share of captions naming the right …)")
        facts.add_column("")
        for column in ("colour", "shape", "action", "all"):
            facts.add_column(column, justify="right")
        for key, label in ROWS[:2]:
            row = report["fact_accuracy"].get(key)
            if row:
                facts.add_row(
                    label, *(f"{row[c]:.2f}" for c in ("colour", "shape", "action", "all"))
                )
        stderr.print(facts)
    for example in report.get("examples", []):
        stderr.print(
            f"  {escape(example['segment'])}: [bold]{escape(example['caption'])}[/]"
            f"  (reference: {escape(example['reference'])})",
            highlight=False,
        )
    for notice in report.get("notices", []):
        stderr.print(f"[yellow]note:[/] {escape(notice)}", highlight=False)
    for failure in report.get("failed", []):
        stderr.print(
            f"[bold red]error:[/] {escape(failure['video'])}: {escape(failure['error'])}",
            highlight=False,
        )


def print_qa_report(report: dict) -> None:
    """Exact-match accuracy per question type, beside the text-only prior floor, on stderr."""
    prior = report.get("prior_floor") or {}
    table = Table(
        title=f"{report['split']} split: {report['questions']} questions about {report['videos']} videos"
    )
    table.add_column("exact match")
    table.add_column("answerer", justify="right")
    table.add_column("prior floor (no video)", justify="right")
    rows = [("all", report["exact_match"]["exact_match"], prior.get("exact_match"))]
    rows += [
        (kind, share, (prior.get("per_type") or {}).get(kind))
        for kind, share in report["exact_match"]["per_type"].items()
    ]
    for name, share, floor in rows:
        table.add_row(name, f"{share:.3f}", "-" if floor is None else f"{floor:.3f}")
    stderr.print(table)
    for example in report.get("examples", []):
        stderr.print(
            f"  {escape(example['video'])}: {escape(example['question'])} → "
            f"[bold]{escape(example['answer'])}[/] (truth: {escape(example['truth'])})",
            highlight=False,
        )
    for notice in report.get("notices", []):
        stderr.print(f"[yellow]note:[/] {escape(notice)}", highlight=False)


def evaluate_command(
    model: Annotated[
        Path | None,
        typer.Argument(
            help="A bundle written by `vidcap finetune` (--task classify: a videobert pretrain "
            "folder; not needed with --predictions).",
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        EvaluateTask | None,
        typer.Option(
            "--task",
            help="Default: the bundle's task; classify scores a videobert pretrain zero-shot.",
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            help="--task classify: text with one [MASK], e.g. 'a [MASK] square'.",
        ),
    ] = None,
    field: Annotated[
        Field | None,
        typer.Option("--field", help="--task classify: the ground-truth attribute to classify."),
    ] = None,
    split: Annotated[Split, typer.Option("--split", help="The corpus split to score.")] = "test",
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="corpus.jsonl (default: the one the bundle was trained on)."),
    ] = None,
    beams: Beams = None,
    meteor: Annotated[
        bool,
        typer.Option(
            "--meteor/--no-meteor", help="METEOR needs Java; skipped with a notice without it."
        ),
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout.")
    ] = False,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="--task dense: score this ActivityNet prediction file (any system's) against "
            "the corpus split's events, instead of a model.",
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write DIR/index.html: per segment the caption beside the references, wrong facts marked.",
        ),
    ] = None,
    timeout: Timeout = VIDEO_TIMEOUT_S,
    captioner: Annotated[
        Path | None,
        typer.Option(
            "--captioner",
            help="--task dense: a --task caption bundle whose rows go beside the dense model's on "
            "the same videos: whole video, fixed windows, change-point cuts, oracle (true events).",
        ),
    ] = None,
    segment_seconds: Annotated[
        float,
        typer.Option(
            "--segment-seconds",
            min=0.5,
            help="--task dense --captioner: the fixed windows' length.",
        ),
    ] = 10.0,
) -> None:
    """Score a model on a corpus split: caption metrics, QA exact match or zero-shot accuracy.

    Caption and summary bundles: BLEU-1..4, METEOR, ROUGE-L and CIDEr (pycocoevalcap,
    micro-averaged over segments). QA bundles: exact-match accuracy per question type. --task
    classify: zero-shot top-1 / top-5 accuracy of a VideoBERT pretrain.

    Each segment is captioned from its raw video with the bundle's own pipeline. The scores come
    with a nearest-neighbour retrieval floor and the leave-one-out reference-agreement ceiling, and,
    when the corpus has ground truth in meta, fact accuracy (colour, shape, action).

    --task dense --predictions FILE: the ActivityNet Captions protocol (precision, recall, F1,
    METEOR, CIDEr, BLEU-4 over tIoU 0.3/0.5/0.7/0.9) and SODA_c, as densevid_eval and SODA compute
    them, beside a whole-video floor and a reference ceiling. A dense MODEL (--task dense) is run
    on the split's videos and scored the same way; --captioner BUNDLE adds that caption bundle's
    rows on the same videos.
    """
    if (captioner is not None or segment_seconds != 10.0) and predictions is not None:
        raise typer.BadParameter(
            "--captioner and --segment-seconds add rows beside a dense MODEL; a prediction file is scored alone.",
            param_hint="'--captioner'",
        )
    if html is not None and (predictions is not None or task == "classify"):
        raise typer.BadParameter(
            "--html shows a model's captions beside their references; it does not apply here.",
            param_hint="'--html'",
        )
    if predictions is not None:
        if task not in (None, "dense"):
            raise typer.BadParameter(
                "a prediction file holds dense captions: use --task dense.", param_hint="'--task'"
            )
        _evaluate_predictions(predictions, model, corpus, split, meteor, as_json)
        return
    if model is None:
        raise typer.BadParameter(
            "give the MODEL to evaluate (or, for dense captions, --predictions FILE).",
            param_hint="'MODEL'",
        )
    if task == "classify":
        if not template or not field:
            raise typer.BadParameter(
                "classify needs --template (with one [MASK]) and --field.", param_hint="'--task'"
            )
        _evaluate_classify(model, template, field, split, corpus, as_json, timeout)
        return
    from vidcap.bundle import Bundle

    bundle_task = Bundle.load(model, "finetune").task
    if bundle_task == "dense" and task not in (None, "dense"):
        raise VidcapError(
            f"{model} is a dense model (events with times): evaluate it with --task dense."
        )
    if task == "dense" or (task is None and bundle_task == "dense"):
        if html is not None:
            raise typer.BadParameter(
                "--html shows a segment captioner's captions beside their references; for a dense model use --json.",
                param_hint="'--html'",
            )
        _evaluate_dense(
            model, split, corpus, captioner, segment_seconds, beams, meteor, as_json, timeout
        )
        return
    if captioner is not None or segment_seconds != 10.0:
        raise typer.BadParameter(
            "--captioner and --segment-seconds add rows beside a dense model (--task dense).",
            param_hint="'--captioner'",
        )
    from vidcap.evaluation.evaluate import evaluate_bundle
    from vidcap.synth import facts as synth_facts

    if task is not None:
        from vidcap.inference.captioner import Captioner

        Captioner.load(model, task=task)  # refuses a bundle finetuned for another task
    card = _html_card(html, model) if html is not None else None
    with progress_bar() as progress:
        bar = progress.add_task("captioning videos", total=None)
        evaluation = evaluate_bundle(
            model,
            split=split,
            corpus=corpus,
            beams=beams,
            meteor=meteor,
            on_video=lambda _: progress.advance(bar),
            facts=synth_facts,
            timeout=timeout,
        )
    report = evaluation.to_json()
    if html is not None and card is not None:
        from vidcap.output.html import write_evaluation_page

        index = write_evaluation_page(html, report, evaluation.rows, card)  # type: ignore[union-attr]
        stderr.print(f"report {escape(str(index))}", highlight=False)
    card_note = _record_in_card(model, report, corpus)
    if as_json:
        stdout.print_json(json.dumps(report))
    elif report["task"] == "qa":
        print_qa_report(report)
    else:
        print_report(report)
    stderr.print(card_note, highlight=False, soft_wrap=True)
    if report["failed"]:
        print_error(
            f"{len(report['failed'])} videos could not be captioned; the scores leave them out."
        )
        raise typer.Exit(1)


def _evaluate_dense(
    model: Path,
    split: str,
    corpus: Path | None,
    captioner: Path | None,
    segment_seconds: float,
    beams: int | None,
    meteor: bool,
    as_json: bool,
    timeout: float,
) -> None:
    """Run a dense model (and ``captioner``'s rows) on the split's videos, score, print, record."""
    from vidcap.evaluation.dense_bundle import evaluate_dense_bundle

    with progress_bar() as progress:
        bar = progress.add_task("reading videos", total=None)
        evaluation = evaluate_dense_bundle(
            model,
            split=split,
            corpus=corpus,
            captioner_dir=captioner,
            segment_seconds=segment_seconds,
            beams=beams,
            meteor=meteor,
            on_video=lambda _: progress.advance(bar),
            timeout=timeout,
        )
    report = evaluation.to_json()
    card_note = _record_in_card(model, report, corpus)
    if as_json:
        stdout.print_json(json.dumps(report))
    else:
        print_dense_report(report)
    stderr.print(card_note, highlight=False, soft_wrap=True)
    for failure in report["failed"]:
        print_error(f"{failure['video']}: {failure['error']}")
    if report["failed"]:
        gone = len({f["video"] for f in report["failed"]})
        print_error(f"{gone} videos could not be read; every row leaves them out.")
        raise typer.Exit(1)


def _record_in_card(model: Path, report: dict[str, Any], corpus: Path | None) -> str:
    """Add the scores to the bundle's model card (README.md); what happened, as a line to show."""
    from vidcap.bundle import Bundle
    from vidcap.card import record_evaluation
    from vidcap.errors import VidcapError

    bundle = Bundle.load(model, "finetune")
    corpus_path = corpus or (bundle.info.get("provenance") or {}).get("corpus")
    try:
        card = record_evaluation(bundle.folder, bundle.info, report, corpus_path)
    except VidcapError as error:  # a read-only bundle: the scores are still shown
        return f"[yellow]note:[/] {escape(str(error))}"
    return f"model card updated: {escape(str(card))}"


def _html_card(folder: Path, model: Path) -> dict[str, Any]:
    """The model card for ``--html``, after checking the page can be written (before the work)."""
    from vidcap.bundle import Bundle
    from vidcap.card import model_card

    if folder.exists() and not folder.is_dir():
        raise VidcapError(f"--html {folder} is a file; the page goes in a folder.")
    card = model_card(Bundle.load(model, "finetune"))
    if card["task"] == "qa":
        raise VidcapError(
            "--html shows captions beside their references; a qa model's answers have none (use --json)."
        )
    return card


def _evaluate_predictions(
    predictions: Path,
    model: Path | None,
    corpus: Path | None,
    split: str,
    meteor: bool,
    as_json: bool,
) -> None:
    from vidcap.evaluation.dense import score_prediction_file

    if corpus is None and model is not None:
        from vidcap.bundle import Bundle

        found = (Bundle.load(model, "finetune").info.get("provenance") or {}).get("corpus")
        corpus = Path(found) if found else None
    if corpus is None:
        raise typer.BadParameter(
            "give the corpus whose events the predictions are scored against.",
            param_hint="'--corpus'",
        )
    with progress_bar() as progress:
        progress.add_task("scoring dense captions", total=None)
        report = score_prediction_file(predictions, corpus, split=split, meteor=meteor).to_json()
    if as_json:
        stdout.print_json(json.dumps(report))
    else:
        print_dense_report(report)


DENSE_METRICS = ("Precision", "Recall", "F1", "METEOR", "CIDEr", "BLEU-4", "SODA_c")
STORY_METRICS = ("CIDEr", "METEOR", "BLEU-4", "R@4", "R@4 references")


def print_dense_report(report: dict[str, Any]) -> None:
    """The dense-captioning table (one row per system, floor and ceiling) and notices on stderr."""
    tious = "/".join(f"{t:g}" for t in report["tious"])
    table = Table(
        title=f"{report['split']} split: {report['events']} events in {report['videos']} videos",
        caption=f"P, R, METEOR, CIDEr, BLEU-4: mean over tIoU {tious}; F1 of the mean P and R",
    )
    table.add_column("")
    for metric in DENSE_METRICS:
        table.add_column(metric, justify="right")
    for key, scores in report["scores"].items():
        table.add_row(
            escape(report["labels"].get(key, key)),
            *("-" if scores[m] is None else f"{scores[m]:.3f}" for m in DENSE_METRICS),
        )
    stderr.print(table)
    if report.get("story"):
        story = Table(title="story: each row's events in time order as one paragraph")
        story.add_column("")
        for metric in STORY_METRICS:
            story.add_column(metric, justify="right")
        for key, scores in report["story"].items():
            story.add_row(
                escape(report["labels"].get(key, key)),
                *("-" if scores[m] is None else f"{scores[m]:.3f}" for m in STORY_METRICS),
            )
        stderr.print(story)
    for notice in report.get("notices", []):
        stderr.print(f"[yellow]note:[/] {escape(notice)}", highlight=False)


def _evaluate_classify(
    model: Path,
    template: str,
    field: str,
    split: str,
    corpus: Path | None,
    as_json: bool,
    timeout: float,
) -> None:
    from vidcap.synth.zeroshot import evaluate_classifier

    report = evaluate_classifier(
        model, template, field, split=split, corpus=corpus, timeout=timeout
    )
    if as_json:
        stdout.print_json(json.dumps(report))
    else:
        print_classify_report(report)


def print_classify_report(report: dict[str, Any]) -> None:
    """The accuracy table (against chance and the majority class) and per-class counts on stderr."""
    table = Table(
        title=f"zero-shot {report['field']}, {report['split']} split",
        caption=f"{report['segments']} segments of {report['videos']} videos, "
        f"{len(report['labels'])} labels; template: {escape(report['template'])}",
    )
    table.add_column("")
    table.add_column("top-1", justify="right")
    table.add_column("top-5", justify="right")
    table.add_row("VideoBERT", f"{report['top1']:.3f}", f"{report['top5']:.3f}")
    table.add_row("chance", f"{report['chance_top1']:.3f}", f"{report['chance_top5']:.3f}")
    table.add_row(
        f"majority ({escape(report['majority_class'])})",
        f"{report['majority']:.3f}",
        f"{report['majority_top5']:.3f}",
    )
    stderr.print(table)
    classes = Table(title="per class")
    for column in ("label", "segments", "top-1 right", "top-5 right", "predicted"):
        classes.add_column(column, justify="left" if column == "label" else "right")
    for label, row in report["per_class"].items():
        classes.add_row(
            escape(label), *(str(row[k]) for k in ("count", "top1", "top5", "predicted"))
        )
    stderr.print(classes)
    if report.get("not_in_labels"):
        stderr.print(
            f"[yellow]note:[/] {report['not_in_labels']} segments' true value is not among the labels (always wrong).",
            highlight=False,
        )
    for failure in report.get("failed", []):
        stderr.print(
            f"[bold red]error:[/] {escape(failure['video'])}: {escape(failure['error'])}",
            highlight=False,
        )
