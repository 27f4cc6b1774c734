"""Caption metrics against pycocoevalcap used directly, the no-Java path and the reference
ceiling.

Java starts are the slow part (METEOR loads a 60 MB paraphrase table), so the tests that need
Java share one module fixture and one METEOR process, and the others use the Python tokenizer.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from vidcap.errors import VidcapError
from vidcap.metrics import captions as metrics
from vidcap.metrics.captions import (
    CaptionScores,
    caption_scores,
    java_available,
    reference_ceiling,
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
@pytest.mark.slow
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
@pytest.mark.slow
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
@pytest.mark.slow
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
