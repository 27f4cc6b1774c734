"""``vidcap evaluate``: caption a split's videos end to end and score them against a floor and a
ceiling.

- The captioner: each corpus segment of the split is captioned from the raw video, through the
  bundle's own extract → encode → quantize settings (the same path as ``vidcap caption``).
- The floor, a nearest-neighbour retrieval baseline: each segment gets the first reference caption
  of the training segment whose mean clip feature is most similar (cosine) to its own.
- The ceiling, reference agreement: each reference scored against the others (leave-one-out).
- Fact accuracy, when segments carry ground truth in ``meta`` (the synthetic corpus does): the
  share of captions naming the right colour, shape and action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidcap.artifacts import upstream_folder
from vidcap.artifacts.readers import ClipTrack, TrackFeatures, read_tracks
from vidcap.corpus import Segment, VideoRecord, corpus_to_score, iter_corpus
from vidcap.errors import VidcapError
from vidcap.evaluation.dense_bundle import DenseEvaluation, evaluate_dense_bundle
from vidcap.inference.captioner import Captioner
from vidcap.inference.pipeline import VideoClips
from vidcap.metrics.captions import (
    CaptionScores,
    caption_scores,
    reference_ceiling,
)
from vidcap.models.inputs import segment_inputs
from vidcap.models.seq2seq import generate_captions
from vidcap.training.tasks import ITEM_NAMES, TaskItem, task_items
from vidcap.video.worker import VIDEO_TIMEOUT_S


class FactChecker(Protocol):
    """Ground truth that a corpus carries in its segments' ``meta`` (the synthetic corpus's world
    does: ``vidcap.synth.facts`` is one), and the share of captions that name it right."""

    def segment_facts(self, record: VideoRecord, segment: Segment) -> Any | None:
        """The segment's true facts, or None when the corpus records none."""

    def fact_accuracy(self, hypotheses: dict[str, str], facts: dict[str, Any]) -> dict[str, float]:
        """Per fact kind (and ``all``), the share of hypotheses naming the right value."""


@dataclass
class EvaluationReport:
    """Scores of the captioner, the nearest-neighbour floor and the reference ceiling."""

    split: str
    segments: int
    videos: int
    captioner: CaptionScores
    baseline: CaptionScores | None
    ceiling: CaptionScores | None
    facts: dict[str, dict[str, float]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    task: str = "caption"
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Every segment: its video, times, the caption, the references and, where the corpus has
    ground truth, its facts and the ones the caption got wrong (for ``--html``; not in JSON)."""

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready (``--json``)."""
        rows = {"captioner": self.captioner, "nearest_neighbour": self.baseline}
        rows["reference_ceiling"] = self.ceiling
        cider_ceiling = self.ceiling.cider if self.ceiling else None
        return {
            "task": self.task,
            "split": self.split,
            "segments": self.segments,
            "videos": self.videos,
            "scores": {k: v.as_dict() if v else None for k, v in rows.items()},
            "cider_vs_ceiling": (
                round(self.captioner.cider / cider_ceiling, 4) if cider_ceiling else None
            ),
            "fact_accuracy": self.facts,
            "notices": self.notices,
            "failed": [{"video": v, "error": e} for v, e in self.failed],
            "examples": self.examples,
        }


def _train_segment_features(
    captioner: Captioner, notices: list[str]
) -> tuple[np.ndarray, list[str]] | None:
    """Mean clip feature (unit length) and first caption of every training segment, from the
    corpus and features the bundle was trained on; None (with a notice) when they are gone.

    The features are read a video at a time, the train videos' only: what is held is one vector
    per training segment, not the corpus's features (14.8 MB per video-hour at 768-d in float32).
    """
    provenance = captioner.info.get("provenance") or {}
    folders = [provenance.get("words"), provenance.get("features")]
    words, corpus = folders[0], provenance.get("corpus")
    if not all(f and Path(f).is_dir() for f in folders) or not corpus or not Path(corpus).is_file():
        notices.append(
            "nearest-neighbour baseline skipped: the training corpus or features the bundle was trained on are not on this machine."
        )
        return None
    tracks, _, words_manifest = read_tracks(words)
    train_videos = [r for r in iter_corpus(corpus) if r.split == "train"]
    train = task_items(captioner.task, train_videos, tracks)
    if not train:
        notices.append("nearest-neighbour baseline skipped: no training segments.")
        return None
    features_of = TrackFeatures(upstream_folder(words, words_manifest))  # as the words were made
    by_video: dict[str, list[int]] = {}
    for i, segment in enumerate(train):
        by_video.setdefault(segment.video_id, []).append(i)
    means: list[np.ndarray] = [np.empty(0)] * len(train)
    for video_id, segments in by_video.items():
        features = features_of(video_id, len(tracks[video_id].words))
        for i in segments:
            means[i] = _unit(features[train[i].clips].mean(0))
    return np.stack(means), [s.captions[0] for s in train]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-8)


def evaluate_bundle(
    model_dir: str | Path,
    split: str = "test",
    corpus: str | Path | None = None,
    beams: int | None = None,
    meteor: bool = True,
    on_video: Callable[[str], None] | None = None,
    n_examples: int = 5,
    facts: FactChecker | None = None,
    timeout: float | None = VIDEO_TIMEOUT_S,
) -> EvaluationReport | QAReport | DenseEvaluation:
    """Evaluate a finetuned bundle on ``split`` of ``corpus`` (default: the corpus it was trained on).

    With ``facts``, captions are also scored on the ground truth the corpus carries (the CLI
    passes the synthetic world's, ``vidcap.synth.facts``, which finds none in other corpora).
    ``timeout``: seconds each video's decoder may go without delivering frames (a hung one is one
    failed video).
    """
    captioner = Captioner.load(model_dir, timeout=timeout)
    recorded = (captioner.info.get("provenance") or {}).get("corpus")
    corpus_path = corpus_to_score(corpus, recorded, "bundle")
    task = captioner.task
    if task == "dense":  # events, not segment captions: scored by the dense protocols
        return evaluate_dense_bundle(
            model_dir, split, corpus, beams=beams, meteor=meteor, on_video=on_video, timeout=timeout
        )
    has_targets = {"caption": "segments", "qa": "qa", "summary": "summary"}[task]
    records = [r for r in iter_corpus(corpus_path) if r.split == split and getattr(r, has_targets)]
    if not records:
        raise VidcapError(
            f"{corpus_path} has no videos with {ITEM_NAMES[task]} in split {split!r}."
        )

    notices: list[str] = []
    failed: list[tuple[str, str]] = []
    tracks: dict[str, ClipTrack] = {}
    kept: list[VideoRecord] = []
    for record in records:
        try:
            clips: VideoClips = captioner.clips(record.video)
        except VidcapError as error:
            failed.append((record.id, str(error)))
        else:
            tracks[record.id] = clips
            kept.append(record)
        if on_video is not None:
            on_video(record.id)
    segments = task_items(task, kept, tracks)
    if not segments:
        raise VidcapError(f"no video of split {split!r} could be read.")
    inputs = [
        segment_inputs(
            captioner.vocab,
            tracks[s.video_id].words[s.clips],
            tracks[s.video_id].features[s.clips],
            s.narration,
            captioner.inputs,
        )
        for s in segments
    ]
    texts = generate_captions(
        captioner.model,
        captioner.vocab,
        inputs,
        beams=beams or int(captioner.info["generation"]["beams"]),
        max_new_tokens=int(captioner.info["generation"]["max_new_tokens"]),
    )
    if task == "qa":
        return _qa_report(captioner, split, segments, texts, len(kept), notices, failed)
    hypotheses = {s.key: t for s, t in zip(segments, texts, strict=True)}
    references = {s.key: list(s.captions) for s in segments}
    scores = caption_scores(hypotheses, references, meteor=meteor)
    notices += scores.notices

    baseline = None
    train_features = _train_segment_features(captioner, notices)
    nn_hypotheses: dict[str, str] = {}
    if train_features is not None:
        means, train_captions = train_features
        for s in segments:
            query = _unit(tracks[s.video_id].features[s.clips].mean(0))
            nn_hypotheses[s.key] = train_captions[int(np.argmax(means @ query))]
        baseline = caption_scores(nn_hypotheses, references, meteor=meteor)
        notices += [f"floor: {n}" for n in baseline.notices if n not in scores.notices]

    ceiling = None
    if any(len(r) > 1 for r in references.values()):
        ceiling = reference_ceiling(references, meteor=meteor)
        notices += [f"ceiling: {n}" for n in ceiling.notices if n not in scores.notices]
    else:
        notices.append("reference ceiling skipped: every segment has a single reference.")

    fact_table: dict[str, dict[str, float]] = {}
    if facts is not None and task == "caption":  # facts are per event, not per paragraph
        by_record = {r.id: r for r in kept}
        truth = {}
        for s in segments:
            found = facts.segment_facts(
                by_record[s.video_id], by_record[s.video_id].segments[s.index]
            )
            if found is not None:
                truth[s.key] = found
        if truth:
            fact_table["captioner"] = facts.fact_accuracy(hypotheses, truth)
            if nn_hypotheses:
                fact_table["nearest_neighbour"] = facts.fact_accuracy(nn_hypotheses, truth)

    rows = _segment_rows(segments, kept, hypotheses, facts if task == "caption" else None)
    examples = [
        {
            "segment": s.key,
            "start": s.start,
            "end": s.end,
            "caption": hypotheses[s.key],
            "reference": s.captions[0],
        }
        for s in segments[:n_examples]
    ]
    return EvaluationReport(
        task=task,
        split=split,
        segments=len(segments),
        videos=len(kept),
        captioner=scores,
        baseline=baseline,
        ceiling=ceiling,
        facts=fact_table,
        notices=notices,
        failed=failed,
        examples=examples,
        rows=rows,
    )


def _segment_rows(
    segments: list[TaskItem],
    records: list[VideoRecord],
    hypotheses: dict[str, str],
    facts: FactChecker | None,
) -> list[dict[str, Any]]:
    """One row per segment (see :attr:`EvaluationReport.rows`)."""
    by_id = {r.id: r for r in records}
    rows = []
    for s in segments:
        record = by_id[s.video_id]
        row: dict[str, Any] = {
            "segment": s.key,
            "video": str(record.video),
            "start": s.start,
            "end": s.end,
            "caption": hypotheses[s.key],
            "references": list(s.captions),
            "facts": None,
            "wrong": [],
        }
        truth = facts.segment_facts(record, record.segments[s.index]) if facts else None
        if truth is not None and facts is not None:
            # The same check as the fact accuracy table, one caption at a time.
            right = facts.fact_accuracy({s.key: hypotheses[s.key]}, {s.key: truth})
            row["facts"] = dict(vars(truth))  # e.g. colour, shape, action
            row["wrong"] = [k for k in row["facts"] if not right.get(k)]
        rows.append(row)
    return rows


@dataclass
class QAReport:
    """Exact-match accuracy of a QA bundle, overall and per question type, beside a text-only
    floor (each question's most frequent training answer)."""

    split: str
    questions: int
    videos: int
    accuracy: dict[str, Any]
    prior: dict[str, Any] | None
    notices: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready (``--json``)."""
        return {
            "task": "qa",
            "split": self.split,
            "questions": self.questions,
            "videos": self.videos,
            "exact_match": self.accuracy,
            "prior_floor": self.prior,
            "notices": self.notices,
            "failed": [{"video": v, "error": e} for v, e in self.failed],
            "examples": self.examples,
        }


def _qa_report(
    captioner: Captioner,
    split: str,
    items: list[TaskItem],
    answers: list[str],
    videos: int,
    notices: list[str],
    failed: list[tuple[str, str]],
    n_examples: int = 8,
) -> QAReport:
    from vidcap.metrics.qa import exact_match, prior_answers

    truth = [s.captions[0] for s in items]
    kinds = [s.kind for s in items]
    prior = None
    corpus = (captioner.info.get("provenance") or {}).get("corpus")
    if corpus and Path(corpus).is_file():
        train = [
            (q.question, q.answer) for r in iter_corpus(corpus) if r.split == "train" for q in r.qa
        ]
        guesses = prior_answers(
            [s.narration for s in items], [q for q, _ in train], [a for _, a in train]
        )
        prior = exact_match(guesses, truth, kinds)
    else:
        notices.append("prior floor skipped: the training corpus is not on this machine.")
    examples = [
        {"video": s.video_id, "question": s.narration, "answer": a, "truth": t}
        for s, a, t in list(zip(items, answers, truth, strict=True))[:n_examples]
    ]
    return QAReport(
        split=split,
        questions=len(items),
        videos=videos,
        accuracy=exact_match(answers, truth, kinds),
        prior=prior,
        notices=notices,
        failed=failed,
        examples=examples,
    )
