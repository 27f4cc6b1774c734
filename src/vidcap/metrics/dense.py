"""Dense-captioning scores: the ActivityNet Captions protocol and SODA_c, as the field computes them.

A dense captioner gives, for each untrimmed video, events with a start, an end and a caption
(:class:`~vidcap.output.formats.TimedCaption`). Two reference evaluators define how they are scored,
and :func:`dense_scores` computes both, agreeing with them number for number (``docs/dense.md``
shows a worked example and where the two evaluators differ):

- **The ActivityNet Captions protocol** (densevid_eval's ``evaluate.py``, Krishna et al. 2017). For
  each tIoU threshold (0.3, 0.5, 0.7, 0.9): *precision*, the share of a video's predicted events
  that overlap some true event by more than the threshold, and *recall*, the share of true events
  overlapped by some prediction, each the best over the reference sets and averaged over videos;
  and the caption metrics of every prediction paired with *each* true event (of every reference
  set) it overlaps by at least the threshold, a prediction overlapping none being paired with a
  reference that shares no word with anything (so it counts, and scores nothing). The caption
  metrics are computed per video over its pairs (CIDEr's word weights too) and averaged over
  videos. Everything is averaged over the thresholds; F1 comes from the averaged precision and
  recall, as Vid2Seq and PDVC report it. A video's first 1000 predictions count.
- **SODA_c** (Fujita et al., ECCV 2020, ``soda.py``). Per video and reference set, predictions and
  true events, each in time order, are matched one-to-one *keeping their order* by dynamic
  programming on tIoU x METEOR; the matched sum over the number of predictions is the precision,
  over the number of true events the recall; the video keeps the reference set with the best
  F-measure; precision, recall and F are averaged over videos. SODA_c is that F.

Both evaluators replace non-ASCII characters by spaces and PTB-tokenize captions as coco-caption
does; so does vidcap (with Java; see :func:`vidcap.metrics.captions.tokenize` without it). METEOR
needs Java: without it METEOR and SODA_c are left out and :attr:`DenseScores.notices` says so.

A video with no predictions scores 0 everywhere (densevid_eval does so; SODA's code leaves such a
video out, which flatters a system that skips hard videos).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor

from vidcap.errors import VidcapError
from vidcap.metrics import captions
from vidcap.output.formats import TimedCaption

__all__ = [
    "MAX_PROPOSALS",
    "TIOUS",
    "DenseScores",
    "SodaScores",
    "ThresholdScores",
    "dense_scores",
    "soda_c",
    "soda_match",
    "tiou",
]

TIOUS: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
"""The tIoU thresholds of the ActivityNet Captions protocol."""
MAX_PROPOSALS = 1000
"""Predictions per video that count (densevid_eval's default ``--max-proposals-per-video``)."""

Events = Sequence[TimedCaption]
ReferenceSets = Sequence[Events]
PairScorer = Callable[[list[tuple[str, str]]], list[float]]
"""Scores (hypothesis, reference) caption pairs, one number per pair (SODA's caption score)."""

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_METEOR_CHUNK = 2000  # caption pairs per METEOR request when scoring pairs one by one


def tiou(a: TimedCaption, b: TimedCaption) -> float:
    """Temporal intersection over union of two events, exactly as both reference evaluators compute
    it: the union is the smaller of the hull and the summed lengths, and 1e-8 is added to it (so an
    exact match is a hair under 1, and a tIoU of exactly 0.5 is not "at least 0.5")."""
    intersection = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    union = min(max(a.end, b.end) - min(a.start, b.start), (a.end - a.start) + (b.end - b.start))
    return intersection / (union + 1e-8)


@dataclass
class ThresholdScores:
    """The ActivityNet protocol's scores at one tIoU threshold (METEOR None without Java)."""

    precision: float
    recall: float
    meteor: float | None
    cider: float
    bleu4: float

    @property
    def f1(self) -> float:
        return _f1(self.precision, self.recall)


@dataclass
class SodaScores:
    """SODA's precision, recall and F-measure (SODA_c is ``f1``), averaged over videos."""

    precision: float
    recall: float
    f1: float


@dataclass
class DenseScores:
    """Dense-captioning scores of a set of videos.

    ``precision``, ``recall``, ``meteor``, ``cider`` and ``bleu4`` are averaged over the tIoU
    thresholds (``per_tiou`` has each); ``f1`` is the F-measure of the averaged precision and
    recall. ``meteor`` and ``soda`` are None without Java.

    Attributes:
        videos: number of videos scored (every video with references).
        missing: videos with references but no predictions (scored 0).
        notices: what the reader should know about how the scores were computed.
    """

    precision: float
    recall: float
    f1: float
    meteor: float | None
    cider: float
    bleu4: float
    soda: SodaScores | None
    per_tiou: dict[float, ThresholdScores]
    videos: int
    predictions: int
    missing: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def soda_c(self) -> float | None:
        return None if self.soda is None else self.soda.f1

    def as_dict(self) -> dict[str, float | None]:
        """The headline numbers under their usual names (``Precision`` ... ``SODA_c``)."""
        return {
            "Precision": self.precision,
            "Recall": self.recall,
            "F1": self.f1,
            "METEOR": self.meteor,
            "CIDEr": self.cider,
            "BLEU-4": self.bleu4,
            "SODA_c": self.soda_c,
        }

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready: the headline numbers, SODA's P/R/F and each threshold's."""
        return {
            **self.as_dict(),
            "SODA": None if self.soda is None else vars(self.soda),
            "per_tiou": {str(t): {**vars(s), "f1": s.f1} for t, s in sorted(self.per_tiou.items())},
            "videos": self.videos,
            "predictions": self.predictions,
            "missing": list(self.missing),
            "notices": list(self.notices),
        }


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


# --------------------------------------------------------------------------------------------------
# Checking the input


def _check_events(events: object, what: str) -> list[TimedCaption]:
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise VidcapError(f"{what} must be a list of timed captions.")
    for i, event in enumerate(events):
        if not isinstance(event, TimedCaption):
            raise VidcapError(f"{what}[{i}] must be a TimedCaption, got {type(event).__name__}.")
        if not all(math.isfinite(t) for t in (event.start, event.end)):
            raise VidcapError(f"{what}[{i}] has a time that is not a finite number.")
        if event.end < event.start:
            raise VidcapError(
                f"{what}[{i}] ends ({event.end:g} s) before it starts ({event.start:g} s)."
            )
        if not isinstance(event.text, str):
            raise VidcapError(f"{what}[{i}] has a caption that is not a string.")
    return list(events)


def _check(
    predictions: Mapping[str, Events], references: Mapping[str, ReferenceSets]
) -> tuple[dict[str, list[TimedCaption]], dict[str, list[list[TimedCaption]]]]:
    if not references:
        raise VidcapError("There are no reference events to score against.")
    refs: dict[str, list[list[TimedCaption]]] = {}
    for video, sets in references.items():
        if isinstance(sets, (str, bytes)) or not isinstance(sets, Sequence) or not sets:
            raise VidcapError(f"Video {video!r} needs at least one reference set of events.")
        refs[video] = [_check_events(s, f"{video!r} reference set {k}") for k, s in enumerate(sets)]
        if not all(refs[video]):
            raise VidcapError(f"Every reference set of video {video!r} needs at least one event.")
    unknown = [video for video in predictions if video not in refs]
    if unknown:
        raise VidcapError(
            f"{len(unknown)} predicted videos have no reference events (first: {unknown[0]!r})."
        )
    preds = {video: _check_events(events, repr(video)) for video, events in predictions.items()}
    return preds, refs


# --------------------------------------------------------------------------------------------------
# The ActivityNet Captions protocol (densevid_eval)


def _detection(
    preds: list[TimedCaption], sets: list[list[TimedCaption]], threshold: float
) -> tuple[float, float]:
    """(precision, recall) of one video at ``threshold``, each the best over reference sets.

    densevid_eval counts an overlap here only when tIoU is *above* the threshold (the caption
    pairing below takes *at least*), and maximises precision and recall separately.
    """
    best_precision = best_recall = 0.0
    for refs in sets:
        hit = [[tiou(p, r) > threshold for r in refs] for p in preds]
        if preds:
            best_precision = max(best_precision, sum(any(row) for row in hit) / len(preds))
        covered = sum(any(row[j] for row in hit) for j in range(len(refs)))
        best_recall = max(best_recall, covered / len(refs))
    return best_precision, best_recall


def _no_match_token(hypotheses: list[str]) -> str:
    """A one-word reference that shares nothing with any hypothesis.

    densevid_eval pairs a prediction that overlaps no true event with a random string of 10-20
    letters; any one word that no hypothesis contains scores the same (BLEU's brevity penalty sees
    a one-word reference either way), and this one is the same on every run.
    """
    words = {w for h in hypotheses for w in h.split()}
    token = "zqxjvkwpqz"
    while token in words:
        token += "q"
    return token


def _video_metrics(
    pairs: list[tuple[str, str]], meteor: Meteor | None
) -> tuple[float | None, float, float]:
    """(METEOR, CIDEr, BLEU-4) of one video's (hypothesis, reference) pairs, pooled over them."""
    res = {i: [h] for i, (h, _) in enumerate(pairs)}
    gts = {i: [r] for i, (_, r) in enumerate(pairs)}
    with captions.quiet():
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        cider, _ = Cider().compute_score(gts, res)
    meteor_score = None if meteor is None else captions.meteor_compute(meteor, gts, res)[0]
    return meteor_score, float(cider), float(bleu[3])


def _anet_threshold(
    preds: dict[str, list[TimedCaption]],
    refs: dict[str, list[list[TimedCaption]]],
    threshold: float,
    garbage: str,
    meteor: Meteor | None,
) -> ThresholdScores:
    totals = np.zeros(5)  # precision, recall, METEOR, CIDEr, BLEU-4 summed over videos
    for video, sets in refs.items():
        mine = preds.get(video, [])
        precision, recall = _detection(mine, sets, threshold)
        pairs = []
        for p in mine:
            matched = [(p.text, r.text) for s in sets for r in s if tiou(p, r) >= threshold]
            pairs += matched or [(p.text, garbage)]
        scores = _video_metrics(pairs, meteor) if pairs else (0.0, 0.0, 0.0)
        totals += [precision, recall, scores[0] or 0.0, scores[1], scores[2]]
    p, r, m, c, b = (float(x) for x in totals / len(refs))
    return ThresholdScores(precision=p, recall=r, meteor=m if meteor else None, cider=c, bleu4=b)


# --------------------------------------------------------------------------------------------------
# SODA


def soda_match(scores: np.ndarray) -> float:
    """The largest sum of ``scores[i, j]`` over an order-preserving one-to-one matching.

    Rows are true events and columns predictions, both in time order; matched pairs (i, j) must
    increase in both i and j. This is SODA's dynamic programme,
    ``dp[i, j] = max(dp[i-1, j], dp[i, j-1], dp[i-1, j-1] + scores[i, j])``, on non-negative
    scores (so an empty row or column adds nothing).
    """
    rows, cols = scores.shape
    dp = np.zeros((rows + 1, cols + 1))
    for i in range(rows):
        for j in range(cols):
            dp[i + 1, j + 1] = max(dp[i, j + 1], dp[i + 1, j], dp[i, j] + scores[i, j])
    return float(dp[rows, cols])


def _by_start(events: list[TimedCaption]) -> list[TimedCaption]:
    return sorted(events, key=lambda e: e.start)  # stable: ties keep their given order


def soda_c(
    predictions: Mapping[str, Events],
    references: Mapping[str, ReferenceSets],
    similarity: PairScorer,
) -> SodaScores:
    """SODA_c of ``predictions``: order-preserving matching on tIoU x ``similarity``.

    SODA_c proper uses per-pair METEOR of tokenized captions (what :func:`dense_scores` passes);
    ``similarity`` receives the captions as they are in the events. Predictions and each reference
    set are put in time order first (a stable sort on the start, as SODA does). Every video with
    references counts; one without predictions scores 0.

    Raises:
        VidcapError: malformed events or a predicted video without references.
    """
    preds, refs = _check(predictions, references)
    ordered = {video: _by_start(events) for video, events in preds.items()}
    jobs = []  # (video, set, predictions, true events) whose pairs need scoring
    for video, sets in refs.items():
        for k, gold in enumerate(sets):
            if ordered.get(video):
                jobs.append((video, k, ordered[video], _by_start(gold)))
    # Each distinct pair is scored once, and all in one call (one METEOR round trip).
    distinct = list(
        dict.fromkeys((p.text, g.text) for *_, mine, gold in jobs for g in gold for p in mine)
    )
    score_of = dict(zip(distinct, similarity(distinct) if distinct else [], strict=True))

    best: dict[str, tuple[float, float, float]] = {video: (0.0, 0.0, 0.0) for video in refs}
    for video, _, mine, gold in jobs:
        matrix = np.array([[tiou(p, g) * score_of[(p.text, g.text)] for p in mine] for g in gold])
        total = soda_match(matrix)
        precision, recall = total / len(mine), total / len(gold)
        f1 = _f1(precision, recall)
        if f1 > best[video][2]:  # the first best set wins ties, as SODA's argmax does
            best[video] = (precision, recall, f1)
    p, r, f = (float(np.mean([b[i] for b in best.values()])) for i in range(3))
    return SodaScores(precision=p, recall=r, f1=f)


# --------------------------------------------------------------------------------------------------
# Both


def _tokenized(
    preds: dict[str, list[TimedCaption]],
    refs: dict[str, list[list[TimedCaption]]],
    notices: list[str],
) -> tuple[dict[str, list[TimedCaption]], dict[str, list[list[TimedCaption]]]]:
    """The same events with their captions ASCII-only and PTB-tokenized, in one tokenizer run."""
    texts = [e.text for events in preds.values() for e in events]
    texts += [e.text for sets in refs.values() for s in sets for e in s]
    tokens = iter(captions.tokenize([_NON_ASCII.sub(" ", t) for t in texts], notices))
    new_preds = {v: [replace(e, text=next(tokens)) for e in events] for v, events in preds.items()}
    new_refs = {
        v: [[replace(e, text=next(tokens)) for e in s] for s in sets] for v, sets in refs.items()
    }
    return new_preds, new_refs


def dense_scores(
    predictions: Mapping[str, Events],
    references: Mapping[str, ReferenceSets],
    tious: Sequence[float] = TIOUS,
    meteor: bool = True,
    max_proposals: int = MAX_PROPOSALS,
) -> DenseScores:
    """Dense-captioning scores of ``predictions`` against ``references`` (see the module docstring).

    Args:
        predictions: video id -> predicted events, in any order. Videos with references but no
            entry here score 0; an empty list is a video for which the system found no event.
        references: video id -> reference sets, each a non-empty list of true events (several
            sets are several annotators' versions of the video, like ActivityNet's val_1 and val_2).
        tious: the tIoU thresholds of the ActivityNet protocol.
        meteor: compute METEOR and SODA_c (they need Java; skipped with a notice without it).
        max_proposals: predictions per video that count in the ActivityNet protocol (the first
            ones given, as densevid_eval; SODA counts all).

    Raises:
        VidcapError: no references, a reference set without events, an event ending before it
            starts or with a time that is not finite, or a predicted video without references.
    """
    if not tious or not all(0 <= t < 1 for t in tious):
        raise VidcapError(f"tIoU thresholds must be numbers in [0, 1), got {list(tious)}.")
    preds, refs = _check(predictions, references)
    notices: list[str] = []
    preds, refs = _tokenized(preds, refs, notices)
    missing = [video for video in refs if video not in preds]
    if missing:
        notices.append(
            f"{len(missing)} of {len(refs)} videos have no predictions and score 0 "
            f"(first: {missing[0]!r})."
        )
    use_meteor = meteor and captions.java_available()
    if meteor and not use_meteor:
        notices.append("METEOR and SODA_c skipped: Java not found.")
    capped = {video: events[:max_proposals] for video, events in preds.items()}
    garbage = _no_match_token([e.text for events in capped.values() for e in events])

    soda = None
    per_tiou: dict[float, ThresholdScores] = {}
    if use_meteor:
        try:
            with captions.meteor_process() as process:
                per_tiou = {t: _anet_threshold(capped, refs, t, garbage, process) for t in tious}

                def pair_meteor(pairs: list[tuple[str, str]]) -> list[float]:
                    # SODA's code hands pycocoevalcap the prediction as the reference and the true
                    # caption as the hypothesis (METEOR weighs recall 9:1 over precision, so the
                    # order matters); its published numbers are so computed, and so are these.
                    # Per-pair scores do not depend on the batch: chunks keep METEOR's one-line
                    # request small on a large split.
                    scores: list[float] = []
                    for at in range(0, len(pairs), _METEOR_CHUNK):
                        chunk = pairs[at : at + _METEOR_CHUNK]
                        res = {i: [r] for i, (_, r) in enumerate(chunk)}
                        gts = {i: [h] for i, (h, _) in enumerate(chunk)}
                        scores += captions.meteor_compute(process, gts, res)[1]
                    return scores

                soda = soda_c(preds, refs, pair_meteor)
        except (OSError, ValueError) as e:
            notices.append(f"METEOR and SODA_c skipped: METEOR's Java process failed ({e}).")
            use_meteor = False
    if not use_meteor:
        per_tiou = {t: _anet_threshold(capped, refs, t, garbage, None) for t in tious}

    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    rows = list(per_tiou.values())
    precision, recall = mean([s.precision for s in rows]), mean([s.recall for s in rows])
    return DenseScores(
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        meteor=mean([s.meteor for s in rows if s.meteor is not None]) if use_meteor else None,
        cider=mean([s.cider for s in rows]),
        bleu4=mean([s.bleu4 for s in rows]),
        soda=soda,
        per_tiou=per_tiou,
        videos=len(refs),
        predictions=sum(len(events) for events in preds.values()),
        missing=missing,
        notices=notices,
    )
