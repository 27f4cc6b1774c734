"""Caption metrics against pycocoevalcap used directly, the no-Java path, the reference ceiling
and fact accuracy.

Java starts are the slow part (METEOR loads a 60 MB paraphrase table), so the tests that need
Java share one module fixture and one METEOR process, and the others use the Python tokenizer.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from vidcap.corpus import Segment, VideoRecord
from vidcap.datasets.synth import SynthConfig, build_record, plan_corpus
from vidcap.errors import VidcapError
from vidcap.evaluation import metrics
from vidcap.evaluation.metrics import (
    CaptionScores,
    Facts,
    caption_scores,
    fact_accuracy,
    java_available,
    reference_ceiling,
    segment_facts,
)

requires_java = pytest.mark.skipif(not java_available(), reason="needs Java (PTB, METEOR)")

# Four segments with 2-5 references; capitals and punctuation so that tokenization matters.
REFERENCES = {
    "v1#0": [
        "A red circle moves left.",
        "The crimson disc slides to the left.",
        "we see a red dot moving left",
        "A scarlet circle glides left, slowly.",
        "there is a red circle that moves to the left",
    ],
    "v1#1": ["A blue square grows.", "the azure box gets bigger", "A cobalt block expands!"],
    "v2#0": ["a green star rotates", "The emerald star spins in place."],
    "v3#0": [
        "A yellow triangle bounces; it's fast.",
        "the golden wedge hops",
        "a lemon triangle jumps up and down",
        "We see a yellow triangle bouncing.",
    ],
}
HYPOTHESES = {
    "v1#0": "a red circle moves left",  # exact (after tokenization)
    "v1#1": "A blue box gets bigger.",  # partial
    "v2#0": "a green star spins",  # partial
    "v3#0": "the video is dark",  # poor
}
METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def _coco_recipe(
    hypotheses: dict[str, str], references: dict[str, list[str]], meteor: Meteor
) -> dict[str, float]:
    """The coco-caption evaluation (pycocoevalcap's eval.py), written out."""
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in refs] for k, refs in references.items()})
    res = tokenizer.tokenize({k: [{"caption": h}] for k, h in hypotheses.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {
        "BLEU-1": bleu[0],
        "BLEU-2": bleu[1],
        "BLEU-3": bleu[2],
        "BLEU-4": bleu[3],
        "METEOR": meteor.compute_score(gts, res)[0],
        "ROUGE-L": Rouge().compute_score(gts, res)[0],
        "CIDEr": Cider().compute_score(gts, res)[0],
    }


@pytest.fixture(scope="module")
def coco_and_ours() -> tuple[dict[str, float], CaptionScores, subprocess.Popen]:
    """The example scored directly with pycocoevalcap and with caption_scores, and METEOR's Java.

    Both use one METEOR process (caption_scores gets it in place of a new one), which saves a
    multi-second Java start; caption_scores stops it when done.
    """
    if not java_available():
        pytest.skip("needs Java (PTB, METEOR)")
    shared = Meteor()
    direct = _coco_recipe(HYPOTHESES, REFERENCES, shared)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(metrics, "Meteor", lambda: shared)
        ours = caption_scores(HYPOTHESES, REFERENCES)
    return direct, ours, shared.meteor_p


@pytest.fixture
def no_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "java_available", lambda: False)


# --------------------------------------------------------------------------------------------------
# caption_scores


@requires_java
def test_caption_scores_equal_pycocoevalcap(coco_and_ours) -> None:
    direct, ours, _ = coco_and_ours
    scores = ours.as_dict()
    assert list(scores) == list(METRICS)
    for name in METRICS:
        assert scores[name] == pytest.approx(direct[name], abs=1e-9), name
    assert ours.count == 4
    assert ours.notices == []
    # The example is neither perfect nor hopeless, so equality above compares real numbers.
    assert 0.3 < ours.bleu1 < 0.95
    assert 0 < ours.bleu4 < ours.bleu1
    assert 0 < ours.meteor < 1
    assert 0 < ours.rouge_l < 1
    assert 0.5 < ours.cider < 10
    assert isinstance(ours.cider, float) and not hasattr(ours.cider, "dtype")


@requires_java
def test_the_meteor_process_is_stopped(coco_and_ours) -> None:
    # The fixture handed caption_scores its METEOR scorer: Java must be gone afterwards, not left
    # running with its 2 GB heap until garbage collection.
    _, _, meteor_java = coco_and_ours
    assert meteor_java.poll() is not None


def test_without_java_meteor_is_skipped_and_the_rest_computed(no_java) -> None:
    scores = caption_scores(HYPOTHESES, REFERENCES)
    assert scores.meteor is None
    assert scores.as_dict()["METEOR"] is None
    assert "METEOR skipped: Java not found." in scores.notices
    assert any("Python approximation" in n for n in scores.notices)
    assert 0 < scores.bleu4 < scores.bleu1 < 1
    assert 0 < scores.rouge_l < 1 and scores.cider > 0.5


@requires_java
def test_without_java_scores_agree_with_ptb(coco_and_ours, no_java) -> None:
    _, with_java, _ = coco_and_ours
    without = caption_scores(HYPOTHESES, REFERENCES, meteor=False)
    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert without.as_dict()[name] == pytest.approx(with_java.as_dict()[name], abs=1e-9)


@requires_java
def test_fallback_tokenizer_matches_ptb() -> None:
    texts = [
        "A Red Circle moves left.",
        "",
        "...",
        "The man's dog, (runs) \"fast\"! Don't-stop; e.g. U.S. 3.5 cats--ok?",
        "We can't see it; they're here: I'm sure, it'll go.",
        "a well-known o'clock [x] {y} - z -- w",
        "it costs 3,000 dollars at 10:30, or 3.5.",
        "line\nbreak\tand  spaces",
        "the crimson disc slides to the left while the azure box stays still",
    ]
    assert metrics._fallback_tokenize(texts) == metrics._ptb_tokenize(texts)


def test_fallback_tokenizer_output() -> None:
    assert metrics._fallback_tokenize(["A Red (big) Circle, isn't it?", "...", ""]) == [
        "a red -lrb- big -rrb- circle is n't it",
        "",
        "",
    ]


def test_exact_hypotheses_score_one(no_java) -> None:
    refs = {"a": ["a red circle moves left", "the red dot slides left"], "b": ["a box grows"]}
    scores = caption_scores({"a": "A red circle moves left.", "b": "a box grows"}, refs)
    for value in (scores.bleu1, scores.bleu2, scores.bleu3, scores.bleu4, scores.rouge_l):
        assert value == pytest.approx(1.0, abs=1e-6)


def test_empty_hypothesis_is_scored_not_fatal(no_java) -> None:
    refs = {"a": ["a red circle moves left"], "b": ["a blue box grows", "the azure box expands"]}
    scores = caption_scores({"a": "a red circle moves left", "b": ""}, refs)
    assert scores.rouge_l == pytest.approx(0.5)  # 1 for the exact one, 0 for the empty one
    only_empty = caption_scores({"a": "", "b": "..."}, refs)  # "..." tokenizes to nothing
    assert only_empty.rouge_l == 0.0
    assert only_empty.cider == 0.0
    assert only_empty.bleu1 < 1e-6


def test_single_segment_cider_notice(no_java) -> None:
    scores = caption_scores({"a": "a box grows"}, {"a": ["a box grows"]}, meteor=False)
    assert scores.cider == 0.0
    assert any("CIDEr is 0" in n for n in scores.notices)


def test_meteor_failure_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    """A METEOR Java process that dies: notice, no hang, the process stopped, the lock free."""
    # A stand-in process that, like METEOR, waits on stdin.
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )

    class DyingMeteor:
        def __init__(self) -> None:
            self.meteor_p = process
            self.lock = threading.Lock()

        def compute_score(self, gts, res):
            self.lock.acquire()  # as pycocoevalcap does, and it never releases on errors
            raise ValueError("could not convert string to float: ''")

    scorer: list[DyingMeteor] = []
    monkeypatch.setattr(metrics, "java_available", lambda: True)
    monkeypatch.setattr(metrics, "_ptb_tokenize", metrics._fallback_tokenize)
    monkeypatch.setattr(metrics, "Meteor", lambda: scorer.append(DyingMeteor()) or scorer[0])
    scores = caption_scores(HYPOTHESES, REFERENCES)
    assert scores.meteor is None
    assert any(n.startswith("METEOR skipped: its Java process failed") for n in scores.notices)
    assert scores.bleu1 > 0.3
    assert process.poll() is not None
    assert not scorer[0].lock.locked()


def test_java_available_false_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    assert java_available.__wrapped__() is False


@pytest.mark.parametrize(
    ("hypotheses", "references", "message"),
    [
        ({}, {"a": ["x"]}, "no captions to score"),
        ({"a": "x", "b": "y"}, {"a": ["x"]}, "1 hypotheses have no references .first: 'b'"),
        ({"a": "x"}, {"a": []}, "non-empty list of reference captions"),
        ({"a": "x"}, {"a": "x"}, "non-empty list of reference captions"),
        ({"a": "x"}, {"a": ["x", None]}, "must all be strings"),
        ({"a": None}, {"a": ["x"]}, "must be a string"),
    ],
)
def test_caption_scores_validation(hypotheses, references, message: str) -> None:
    with pytest.raises(VidcapError, match=message):
        caption_scores(hypotheses, references)


# --------------------------------------------------------------------------------------------------
# reference_ceiling


def test_reference_ceiling_is_leave_one_out(no_java) -> None:
    references = {**REFERENCES, "v4#0": ["a pink hexagon shrinks"]}  # single reference: skipped
    ceiling = reference_ceiling(references, meteor=False)

    hypotheses, held_out = {}, {}
    for key, refs in REFERENCES.items():
        for i, ref in enumerate(refs):
            hypotheses[f"{key}/{i}"] = ref
            held_out[f"{key}/{i}"] = [r for j, r in enumerate(refs) if j != i]
    expected = caption_scores(hypotheses, held_out, meteor=False)

    assert ceiling.count == 5 + 3 + 2 + 4
    assert ceiling.as_dict() == expected.as_dict()
    assert "1 of 5 segments have a single reference and were skipped." in ceiling.notices
    # Paraphrases of one event: far better than the poor hypothesis, far from perfect.
    assert 0.3 < ceiling.bleu1 < 1 and 0 < ceiling.rouge_l < 1


@pytest.mark.parametrize("references", [{"a": ["x"], "b": ["y"]}, {}])
def test_reference_ceiling_needs_two_references(references) -> None:
    with pytest.raises(VidcapError, match="at least two reference captions"):
        reference_ceiling(references)


# --------------------------------------------------------------------------------------------------
# segment_facts and fact_accuracy


def _record(meta: dict | None) -> VideoRecord:
    return VideoRecord(id="v", video=Path("v.mp4"), split="test", meta=meta)


EVENTS = [
    {"start": 0.0, "end": 2.0, "colour": "red", "shape": "circle", "action": "move_left"},
    {"start": 2.0, "end": 5.0, "colour": "blue", "shape": "square", "action": "grow"},
    {"start": 5.0, "end": 6.0, "note": "not an event"},  # skipped: no facts
]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.0, 2.0, Facts("red", "circle", "move_left")),  # touches the next event only
        (1.5, 4.5, Facts("blue", "square", "grow")),  # overlaps both, the second more
        (0.5, 3.0, Facts("red", "circle", "move_left")),  # 1.5 s against 1 s
        (1.0, 1.0, Facts("red", "circle", "move_left")),  # zero-length, inside the first
        (5.0, 7.0, None),  # after every event with facts
    ],
)
def test_segment_facts_picks_the_most_overlapping_event(start, end, expected) -> None:
    assert segment_facts(_record({"events": EVENTS}), Segment(start, end, ["x"])) == expected


@pytest.mark.parametrize("meta", [None, {}, {"events": "none"}, {"events": []}])
def test_segment_facts_none_without_events(meta) -> None:
    assert segment_facts(_record(meta), Segment(0.0, 2.0, ["x"])) is None


def test_synthetic_references_name_their_facts() -> None:
    """On the generated corpus every segment maps to its event and every reference is right."""
    records = [build_record(p, Path("v.mp4")) for p in plan_corpus(SynthConfig(videos=6, seed=3))]
    hypotheses, facts = {}, {}
    for record in records:
        assert record.meta is not None
        for s, (segment, event) in enumerate(
            zip(record.segments, record.meta["events"], strict=True)
        ):
            found = segment_facts(record, segment)
            assert found == Facts(event["colour"], event["shape"], event["action"])
            for c, caption in enumerate(segment.captions):
                hypotheses[f"{record.id}/{s}/{c}"] = caption
                facts[f"{record.id}/{s}/{c}"] = found
    accuracy = fact_accuracy(hypotheses, facts)
    assert accuracy == {"colour": 1.0, "shape": 1.0, "action": 1.0, "all": 1.0, "count": 50}


def test_fact_accuracy_counts_synonyms_and_wrong_attributes() -> None:
    truth = Facts("red", "circle", "move_left")
    hypotheses = {
        "synonyms": "a crimson disc slides to the left",  # all right
        "wrong_shape": "a scarlet box glides left",  # colour and action right
        "other_object": "a green star rotates while the red circle stays still",  # not the action
        "nothing": "the video is dark",
        "no_facts": "a red circle moves left",  # not counted: no facts for it
    }
    facts = {key: truth for key in hypotheses if key != "no_facts"}
    facts["unmatched"] = truth  # facts without a hypothesis: not counted either
    assert fact_accuracy(hypotheses, facts) == {
        "colour": 3 / 4,
        "shape": 2 / 4,
        "action": 2 / 4,
        "all": 1 / 4,
        "count": 4,
    }


def test_fact_accuracy_stay() -> None:
    truth = Facts("blue", "square", "stay")
    assert fact_accuracy({"a": "the azure block remains motionless"}, {"a": truth})["all"] == 1.0


def test_fact_accuracy_without_facts_is_empty() -> None:
    assert fact_accuracy({"a": "a red circle"}, {}) == {}
    assert fact_accuracy({}, {"a": Facts("red", "circle", "grow")}) == {}
