"""``vidcap evaluate DENSE_MODEL --task dense``: run a dense model on a split's videos from the raw
files and score its events (:func:`vidcap.evaluation.dense.score_dense`), beside the rows the
issue reads it against.

With a caption bundle (``--captioner``), the same videos are also cut without learning and each
cut captioned by that bundle (:func:`vidcap.evaluation.predictions.cut_predictions`): one event per
video, fixed windows, change-point cuts (``vidcap caption --dense``) and the oracle (the true
events, what perfect localisation gives that captioner). The whole-video floor and the reference
ceiling come from :func:`score_dense` itself.

A video that either bundle cannot read is reported in ``failed`` and left out of every row (floor
and ceiling included), so all rows are scored on the same videos.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap.corpus import corpus_to_score, read_corpus
from vidcap.errors import VidcapError
from vidcap.evaluation.dense import DenseReport, score_dense
from vidcap.evaluation.predictions import Cuts, cut_predictions, dense_predictions
from vidcap.inference.captioner import Captioner
from vidcap.video.worker import VIDEO_TIMEOUT_S

MODEL_ROW = "model"
CUT_ROWS: tuple[Cuts, ...] = ("whole", "fixed", "change", "oracle")
"""The caption bundle's rows, in display order (each keyed ``captioner_<cut>``)."""


def _cut_label(cut: str, segment_seconds: float) -> str:
    return {
        "whole": "captioner: whole video",
        "fixed": f"captioner: fixed {segment_seconds:g} s windows",
        "change": "captioner: change-point cuts",
        "oracle": "captioner: oracle (true events)",
    }[cut]


@dataclass
class DenseEvaluation:
    """A dense model's scores (:class:`DenseReport`), and the videos that could not be read."""

    report: DenseReport
    failed: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report's JSON with ``failed`` added (``vidcap evaluate --task dense --json``)."""
        return {
            **self.report.to_json(),
            "failed": [{"video": v, "error": e} for v, e in self.failed],
        }


def evaluate_dense_bundle(
    model_dir: str | Path,
    split: str = "test",
    corpus: str | Path | None = None,
    captioner_dir: str | Path | None = None,
    segment_seconds: float = 10.0,
    beams: int | None = None,
    meteor: bool = True,
    on_video: Callable[[str], None] | None = None,
    timeout: float | None = VIDEO_TIMEOUT_S,
) -> DenseEvaluation:
    """Score the dense model in ``model_dir`` on ``split`` of ``corpus`` (default: the corpus it
    was trained on), with a caption bundle's comparison rows when ``captioner_dir`` is given.

    ``on_video`` is called once per video per bundle read (the dense model, then the captioner).

    Raises:
        VidcapError: not a dense model, a captioner that is not a caption bundle, no corpus, a
            split without events, or no video that could be read.
    """
    model = _load(model_dir, "dense", timeout)
    captioner = _load(captioner_dir, "caption", timeout) if captioner_dir is not None else None
    recorded = (model.info.get("provenance") or {}).get("corpus")
    corpus_path = corpus_to_score(corpus, recorded, "model")
    records = read_corpus(corpus_path)
    scored = [r for r in records if r.split == split and r.segments]
    if not scored:
        raise VidcapError(
            f"{corpus_path} has no videos with segments (events) in split {split!r}; a dense model is scored on a corpus whose videos have timed events."
        )
    failed: list[tuple[str, str]] = []
    found = dense_predictions(model, scored, beams=beams, on_video=on_video, failed=failed)
    cut = {}
    if captioner is not None:
        cut = cut_predictions(
            captioner, scored, CUT_ROWS, segment_seconds, beams, on_video=on_video, failed=failed
        )
    gone = {video for video, _ in failed}
    if len(gone) == len(scored):
        raise VidcapError(f"no video of split {split!r} could be read.")
    kept = [r for r in records if r.id not in gone]

    def keep(predictions: dict[str, Any]) -> dict[str, Any]:
        return {v: events for v, events in predictions.items() if v not in gone}

    report = score_dense(
        keep(found), kept, split=split, meteor=meteor, name=MODEL_ROW, label="dense model"
    )
    if cut:
        rows, labels, stories = {MODEL_ROW: report.rows[MODEL_ROW]}, {MODEL_ROW: "dense model"}, {}
        stories[MODEL_ROW] = report.stories[MODEL_ROW]
        for name, predictions in cut.items():
            key = f"captioner_{name}"
            row = score_dense(
                keep(predictions), kept, split=split, meteor=meteor, name=key,
                label=_cut_label(name, segment_seconds), baselines=False,
            )  # fmt: skip
            rows[key], labels[key], stories[key] = row.rows[key], row.labels[key], row.stories[key]
            report.notices += [n for n in row.notices if n not in report.notices]
        for key in report.rows:  # the floor and ceiling last
            if key != MODEL_ROW:
                rows[key], labels[key] = report.rows[key], report.labels[key]
                stories[key] = report.stories[key]
        report.rows, report.labels, report.stories = rows, labels, stories
    if failed:
        report.notices.append(
            f"{len(gone)} videos could not be read and are left out of every row (scored on "
            f"{report.videos} videos)."
        )
    return DenseEvaluation(report=report, failed=failed)


def _load(folder: str | Path, task: str, timeout: float | None) -> Captioner:
    """The bundle in ``folder``, refusing one finetuned for another task with what to do instead."""
    captioner = Captioner.load(folder, timeout=timeout)
    if captioner.task == task:
        return captioner
    if task == "dense":
        raise VidcapError(
            f"{folder} is a --task {captioner.task} model, not a dense one: evaluate it with "
            f"--task {captioner.task}, give it as --captioner beside a dense model, or score its "
            "`vidcap caption --dense --format anet` output with --predictions."
        )
    raise VidcapError(
        f"--captioner {folder} is a --task {captioner.task} model; the comparison rows need a "
        "--task caption bundle."
    )
