"""Zero-shot classification accuracy of a VideoBERT pretrain on the synthetic world's ground truth
(``vidcap evaluate --task classify``).

Every segment of the split whose ground truth is known (``meta["events"]``, which the synthetic
corpus records; see :func:`~vidcap.synth.facts.segment_facts`) is classified from its raw
video's clips overlapping it: the candidate labels (by default every value the field takes in the
corpus, as text) are ranked in the template's slot, and top-1 / top-5 accuracy are read beside two
baselines that need no video: chance (1/n and min(5, n)/n for n labels) and the majority class
(always answer the split's most frequent true value; for top-5, its five most frequent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vidcap.artifacts import StageDir, as_recorded, recorded_corpus
from vidcap.corpus import corpus_to_score, read_corpus
from vidcap.errors import VidcapError
from vidcap.inference.zeroshot import ZeroShotClassifier, clip_range
from vidcap.synth.facts import FIELDS, normal_label, segment_facts, truth_text
from vidcap.video.worker import VIDEO_TIMEOUT_S

TOP = 5
N_EXAMPLES = 5


def _pretrain_corpus(folder: Path) -> str | None:
    """The corpus recorded in the manifest of the pretrain folder that holds ``folder`` (final/)."""
    for candidate in (folder, folder.parent):
        manifest = StageDir(candidate, "pretrain").read_manifest()  # a damaged one: a sentence
        if manifest is not None and manifest.get("corpus"):
            return as_recorded(recorded_corpus(candidate, manifest))
    return None


def evaluate_classifier(
    model_dir: str | Path,
    template: str,
    field: str,
    split: str = "test",
    corpus: str | Path | None = None,
    labels: Sequence[str] | None = None,
    *,
    device: str = "auto",
    on_video: Callable[[str], None] | None = None,
    timeout: float | None = VIDEO_TIMEOUT_S,
) -> dict[str, Any]:
    """Top-1 / top-5 accuracy of zero-shot classification of ``field`` (colour, shape or action)
    over the segments of ``split`` (see the module docstring); a JSON-ready report.

    ``corpus`` defaults to the one the pretrain was trained on; ``labels`` to every value of
    ``field`` in the corpus's ground truth. Each video is decoded once; ``on_video`` is called
    after each. Videos that cannot be read are listed under ``failed`` and left out.

    Raises:
        VidcapError: an unknown field, a template without exactly one slot, no corpus, no ground
            truth, or no segment that could be classified.
    """
    if field not in FIELDS:
        raise VidcapError(f"--field must be one of {', '.join(FIELDS)}, got {field!r}.")
    classifier = ZeroShotClassifier.load(model_dir, device=device, timeout=timeout)
    slots = classifier.template(template).slots
    if slots != 1:
        raise VidcapError(
            f"classification ranks labels in one [MASK] slot; the template {template!r} has {slots}."
        )
    corpus_path = corpus_to_score(corpus, _pretrain_corpus(classifier.folder), "pretrain")
    records = read_corpus(corpus_path)
    facts = {
        (record.id, index): found
        for record in records
        for index, segment in enumerate(record.segments)
        if (found := segment_facts(record, segment)) is not None
    }
    if not facts:
        raise VidcapError(
            f"{corpus_path} records no ground truth (meta events with colour, shape and action) to score against."
        )
    if labels is None:
        labels = sorted({truth_text(f, field) for f in facts.values()})
    labels = list(dict.fromkeys(labels))
    classifier.label_pieces(labels)  # refuse unusable labels before decoding any video
    chosen = [
        r
        for r in records
        if r.split == split and any((r.id, i) in facts for i in range(len(r.segments)))
    ]
    if not chosen:
        raise VidcapError(f"{corpus_path} has no segments with ground truth in split {split!r}.")

    rows: list[tuple[str, str, list[str]]] = []  # (segment key, truth, labels best first)
    failed: list[dict[str, str]] = []
    for record in chosen:
        try:
            clips = classifier.pipeline.clips(record.video)
        except VidcapError as error:
            failed.append({"video": record.id, "error": str(error)})
        else:
            for index, segment in enumerate(record.segments):
                if (record.id, index) not in facts:
                    continue
                keep = clip_range(clips.start_s, clips.end_s, segment.start, segment.end)
                ranked = classifier.rank(clips.words[keep], template, labels)
                truth = truth_text(facts[(record.id, index)], field)
                rows.append((f"{record.id}#{index}", truth, [r.label for r in ranked]))
        if on_video is not None:
            on_video(record.id)
    if not rows:
        raise VidcapError(f"no video of split {split!r} could be read.")
    return _report(classifier, corpus_path, split, field, template, labels, rows, failed)


def _report(
    classifier: ZeroShotClassifier,
    corpus: str | Path,
    split: str,
    field: str,
    template: str,
    labels: list[str],
    rows: list[tuple[str, str, list[str]]],
    failed: list[dict[str, str]],
) -> dict[str, Any]:
    n, total = len(labels), len(rows)
    truths = Counter(truth for _, truth, _ in rows)
    frequent = [t for t, _ in truths.most_common(TOP)]
    hits1 = [normal_label(ranked[0]) == normal_label(truth) for _, truth, ranked in rows]
    hits5 = [normal_label(truth) in map(normal_label, ranked[:TOP]) for _, truth, ranked in rows]
    per_class: dict[str, dict[str, int]] = {
        label: {"count": 0, "top1": 0, "top5": 0, "predicted": 0} for label in labels
    }
    for (_, truth, ranked), hit1, hit5 in zip(rows, hits1, hits5, strict=True):
        per_class[ranked[0]]["predicted"] += 1
        row = per_class.setdefault(truth, {"count": 0, "top1": 0, "top5": 0, "predicted": 0})
        row["count"] += 1
        row["top1"] += hit1
        row["top5"] += hit5
    known = {normal_label(label) for label in labels}
    return {
        "model": str(classifier.folder),
        "corpus": str(corpus),
        "split": split,
        "field": field,
        "template": template,
        "labels": labels,
        "segments": total,
        "videos": len({key.rsplit("#", 1)[0] for key, _, _ in rows}),
        "top1": sum(hits1) / total,
        "top5": sum(hits5) / total,
        "chance_top1": 1 / n,
        "chance_top5": min(TOP, n) / n,
        "majority": truths.most_common(1)[0][1] / total,
        "majority_class": truths.most_common(1)[0][0],
        "majority_top5": sum(truths[t] for t in frequent) / total,
        "not_in_labels": sum(c for t, c in truths.items() if normal_label(t) not in known),
        "per_class": per_class,
        "examples": [
            {"segment": key, "truth": truth, "predicted": ranked[:TOP]}
            for key, truth, ranked in rows[:N_EXAMPLES]
        ],
        "failed": failed,
    }
