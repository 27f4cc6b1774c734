"""Dense-captioning scores: hand-computed cases, and agreement with the reference evaluators.

The fast tests use the Python tokenizer (no Java) and a hand-written caption similarity for SODA,
so every expected number can be worked out on paper. The Java tests score two fixtures whose
expected numbers were produced by the reference evaluators themselves: densevid_eval's
``evaluate.py`` (ranjaykrishna/densevid_eval at 9d4045a, run under Python 3 with only its print
statements and ``sets`` import modernised, ``-v`` for every metric) and SODA's ``soda.py``
(fujiso/SODA at 9cb3e2c, ``-mr``: best over reference sets), each given the fixture as
ActivityNet ground-truth files (one per reference set) and a prediction file.
"""

from __future__ import annotations

import numpy as np
import pytest

from vidcap.errors import VidcapError
from vidcap.metrics import captions
from vidcap.metrics.dense import TIOUS, dense_scores, soda_c, soda_match, tiou
from vidcap.output.formats import TimedCaption as T

requires_java = pytest.mark.skipif(not captions.java_available(), reason="needs Java (PTB, METEOR)")


@pytest.fixture
def no_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captions, "java_available", lambda: False)


def same_text(pairs: list[tuple[str, str]]) -> list[float]:
    """A caption similarity for hand computation: 1 for the same words, else 0."""
    return [float(h.lower() == r.lower()) for h, r in pairs]


RED = "a red circle moves left"
BLUE = "a blue square grows"
STAR = "a green star spins"


# --------------------------------------------------------------------------------------------------
# tIoU and the ActivityNet protocol by hand


def test_tiou_is_the_evaluators() -> None:
    assert tiou(T(0, 10, ""), T(2.5, 12.5, "")) == pytest.approx(0.6)
    assert tiou(T(0, 10, ""), T(10, 20, "")) == 0.0
    assert tiou(T(0, 10, ""), T(20, 30, "")) == 0.0
    # The 1e-8 in the denominator: an exact match is a hair under 1, a half overlap under 0.5.
    assert 1 - 1e-8 < tiou(T(0, 10, ""), T(0, 10, "")) < 1
    assert tiou(T(0, 10, ""), T(0, 20, "")) < 0.5


def test_exact_match_scores_one(no_java) -> None:
    truth = [T(0, 10, RED), T(12, 20, BLUE), T(25, 40, STAR)]
    scores = dense_scores({"v": list(truth)}, {"v": [truth]})
    assert scores.precision == scores.recall == scores.f1 == 1.0
    for threshold in TIOUS:
        row = scores.per_tiou[threshold]
        assert (row.precision, row.recall) == (1.0, 1.0)
        assert row.bleu4 == pytest.approx(1.0, abs=1e-6)
    assert scores.bleu4 == pytest.approx(1.0, abs=1e-6)
    assert scores.meteor is None and scores.soda is None
    assert "METEOR and SODA_c skipped: Java not found." in scores.notices
    assert scores.missing == [] and scores.videos == 1 and scores.predictions == 3


def test_a_shifted_prediction_counts_at_03_and_05_only(no_java) -> None:
    # tIoU 7.5 / 12.5 = 0.6: above 0.3 and 0.5, below 0.7 and 0.9.
    scores = dense_scores({"v": [T(2.5, 12.5, RED)]}, {"v": [[T(0, 10, RED)]]})
    assert [scores.per_tiou[t].precision for t in TIOUS] == [1, 1, 0, 0]
    assert [scores.per_tiou[t].recall for t in TIOUS] == [1, 1, 0, 0]
    assert scores.precision == scores.recall == scores.f1 == 0.5
    # Paired with its event at 0.3 and 0.5 (BLEU-4 1), with the no-match word at 0.7 and 0.9.
    assert [scores.per_tiou[t].bleu4 for t in TIOUS] == pytest.approx([1, 1, 0, 0], abs=1e-6)


def test_f1_comes_from_the_averaged_precision_and_recall(no_java) -> None:
    # Two predictions, one exact and one far away: precision 1/2, recall 1/1 at every tIoU.
    truth = [T(0, 10, RED)]
    scores = dense_scores({"v": [T(0, 10, RED), T(50, 60, BLUE)]}, {"v": [truth]})
    assert (scores.precision, scores.recall) == (0.5, 1.0)
    assert scores.f1 == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    # The unmatched prediction is scored against a word it does not share: BLEU-4 falls below 1.
    assert scores.bleu4 < 0.9


def test_empty_predictions_score_zero(no_java) -> None:
    scores = dense_scores({"v": []}, {"v": [[T(0, 10, RED), T(10, 20, BLUE)]]})
    assert scores.as_dict() == {
        "Precision": 0.0,
        "Recall": 0.0,
        "F1": 0.0,
        "METEOR": None,
        "CIDEr": 0.0,
        "BLEU-4": 0.0,
        "SODA_c": None,
    }
    assert scores.missing == []  # predicted, but nothing found


def test_a_video_missing_from_predictions_scores_zero(no_java) -> None:
    references = {"a": [[T(0, 10, RED)]], "b": [[T(0, 5, BLUE)]]}
    scores = dense_scores({"a": [T(0, 10, RED)]}, references)
    assert scores.missing == ["b"]
    assert scores.videos == 2
    assert scores.precision == scores.recall == 0.5  # averaged over both videos
    assert scores.bleu4 == pytest.approx(0.5, abs=1e-6)
    assert any("1 of 2 videos have no predictions" in n for n in scores.notices)


def test_reference_sets_best_of_for_detection_every_set_for_captions(no_java) -> None:
    # Set 0 has the event the prediction finds, set 1 two it does not: recall is set 0's 1.
    sets = [[T(0, 10, RED)], [T(30, 40, BLUE), T(50, 60, STAR)]]
    scores = dense_scores({"v": [T(0, 10, RED)]}, {"v": sets})
    assert scores.recall == 1.0 and scores.precision == 1.0
    # Captions pair with the overlapping events of every set: here only set 0's.
    assert scores.bleu4 == pytest.approx(1.0, abs=1e-6)


def test_only_the_first_max_proposals_count(no_java) -> None:
    preds = {"v": [T(50, 60, BLUE), T(0, 10, RED)]}
    refs = {"v": [[T(0, 10, RED)]]}
    assert dense_scores(preds, refs).recall == 1.0
    assert dense_scores(preds, refs, max_proposals=1).recall == 0.0


def test_non_ascii_is_a_space_as_in_the_evaluators(no_java) -> None:
    # "café" and "cafè" both become "caf ": the captions match word for word.
    preds = {"v": [T(0, 10, "the café opens its doors")]}
    scores = dense_scores(preds, {"v": [[T(0, 10, "the cafè opens its doors")]]})
    assert scores.bleu4 == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ({}, {}, "no reference events"),
        (
            {"x": []},
            {"v": [[T(0, 1, RED)]]},
            "1 predicted videos have no reference events .first: 'x'",
        ),
        ({}, {"v": []}, "needs at least one reference set"),
        ({}, {"v": [[]]}, "needs at least one event"),
        ({"v": [T(5, 1, RED)]}, {"v": [[T(0, 1, RED)]]}, r"ends \(1 s\) before it starts \(5 s\)"),
        ({"v": [T(0, float("nan"), RED)]}, {"v": [[T(0, 1, RED)]]}, "not a finite number"),
        ({"v": [(0, 1, RED)]}, {"v": [[T(0, 1, RED)]]}, "must be a TimedCaption"),
        ({"v": "0 1 red"}, {"v": [[T(0, 1, RED)]]}, "must be a list of timed captions"),
    ],
)
def test_bad_input_is_a_sentence(predictions, references, message: str) -> None:
    with pytest.raises(VidcapError, match=message):
        dense_scores(predictions, references, meteor=False)


def test_bad_thresholds() -> None:
    with pytest.raises(VidcapError, match="tIoU thresholds"):
        dense_scores({}, {"v": [[T(0, 1, RED)]]}, tious=[1.5])


# --------------------------------------------------------------------------------------------------
# SODA by hand


def test_soda_matching_keeps_order() -> None:
    # Greedy would take 0.7 first and stop; in order, (0, 0) then (1, 1) gives 1.1.
    assert soda_match(np.array([[0.6, 0.7], [0.0, 0.5]])) == pytest.approx(1.1)
    # Crossing pairs cannot both be kept (a bipartite matching would give 1.7).
    assert soda_match(np.array([[0.0, 0.9], [0.8, 0.0]])) == pytest.approx(0.9)
    assert soda_match(np.zeros((3, 0))) == 0.0


def test_soda_by_hand() -> None:
    # Three true events; two predictions, the first exact (tIoU ~1, same words), the second
    # covering events 2 and 3 (tIoU 10/20 and 5/20 with them), saying event 3's caption.
    truth = [T(0, 10, RED), T(10, 20, BLUE), T(20, 25, STAR)]
    preds = [T(0, 10, RED), T(10, 30, STAR)]
    soda = soda_c({"v": preds}, {"v": [truth]}, same_text)
    # Matrix (true x predicted) of tIoU x same words: [[1, 0], [0, 0], [0, 0.25]] -> 1.25.
    matched = tiou(truth[0], preds[0]) + tiou(truth[2], preds[1])
    assert matched == pytest.approx(1.25)
    assert soda.precision == pytest.approx(matched / 2)
    assert soda.recall == pytest.approx(matched / 3)
    assert soda.f1 == pytest.approx(2 * (1.25 / 2) * (1.25 / 3) / (1.25 / 2 + 1.25 / 3))


def test_soda_is_the_best_reference_set_per_video_and_zero_without_predictions() -> None:
    truth_a = [T(0, 10, RED)]
    truth_b = [T(0, 10, BLUE), T(10, 20, STAR)]
    soda = soda_c({"v": [T(0, 10, RED)]}, {"v": [truth_b, truth_a], "w": [truth_a]}, same_text)
    # v: set 1 matches fully (F ~1); w has no predictions (0). Averaged over the two videos.
    assert soda.f1 == pytest.approx(0.5)
    assert soda.precision == pytest.approx(0.5) and soda.recall == pytest.approx(0.5)


def test_an_order_violation_lowers_soda_but_not_detection(no_java) -> None:
    truth = [T(0, 10, RED), T(10, 20, BLUE)]
    # Both predictions span both events (tIoU 0.5 with each). In order, each can be matched to
    # the event it describes; told backwards, only one of them can.
    in_order = [T(0, 20, RED), T(0, 20, BLUE)]
    backwards = [T(0, 20, BLUE), T(0, 20, RED)]
    good = soda_c({"v": in_order}, {"v": [truth]}, same_text)
    bad = soda_c({"v": backwards}, {"v": [truth]}, same_text)
    assert good.f1 == pytest.approx(0.5)  # matched 2 x 0.5 = 1 of 2 predictions, 2 events
    assert bad.f1 == pytest.approx(0.25)  # matched 0.5
    in_order_scores = dense_scores({"v": in_order}, {"v": [truth]})
    backwards_scores = dense_scores({"v": backwards}, {"v": [truth]})
    for threshold in TIOUS:
        a, b = in_order_scores.per_tiou[threshold], backwards_scores.per_tiou[threshold]
        assert (a.precision, a.recall) == (b.precision, b.recall)
        assert a.bleu4 == pytest.approx(b.bleu4)  # the same pairs, in another order
    assert in_order_scores.per_tiou[0.3].recall == 1.0  # tIoU 0.5 - 1e-8: counted at 0.3 only
    assert in_order_scores.per_tiou[0.5].recall == 0.0


# --------------------------------------------------------------------------------------------------
# Agreement with densevid_eval and SODA (Java)

# Fixture 1: two reference sets of one video with the same times (like two annotators' captions
# of the same events), a second video in set 0 only, a prediction that matches nothing.
FIXTURE1_PREDICTIONS = {
    "v1": [
        T(0, 10, "a red circle moves left"),
        T(14.5, 24.5, "a blue box grows"),
        T(30, 40, "something else"),
    ],
    "v2": [T(0, 30, "a star bounces")],
}
FIXTURE1_REFERENCES = {
    "v1": [
        [T(0, 10, "A red circle moves left."), T(12, 20, "a blue square grows")],
        [T(0, 10, "the crimson disc slides left"), T(12, 20, "the azure box gets bigger")],
    ],
    "v2": [[T(0, 5, "a star spins"), T(5, 30, "a star bounces")]],
}
# Per tIoU 0.3, 0.5, 0.7, 0.9, from densevid_eval; SODA's (precision, recall, F) from soda.py.
FIXTURE1_EXPECTED = {
    "precision": [0.8333333333333333, 0.6666666666666666, 0.6666666666666666, 0.16666666666666666],
    "recall": [0.75, 0.5, 0.5, 0.25],
    "meteor": [0.647002774116058, 0.6463699883772399, 0.6463699883772399, 0.1463699883772399],
    "cider": [1.345367808671757, 1.2683823529411764, 1.2683823529411764, 1.2683823529411764],
    "bleu4": [0.19546344424366746, 0.20083208938961744, 0.20083208938961744, 0.18502070110134972],
    "soda": [0.606265742669128, 0.4927319474759142, 0.5052966690548054],
}

# Fixture 2: reference sets with different times (like ActivityNet's val_1 and val_2),
# overlapping true events, predictions out of time order, punctuation, brackets, a non-ASCII
# letter, a video ("c") only in set 1 and one ("b") only in set 0.
FIXTURE2_PREDICTIONS = {
    "a": [
        T(30, 46, "a green star spins"),
        T(1, 13, "a red circle moves left"),
        T(12, 26, "a blue square grows"),
        T(52, 58, "a red circle moves right"),
    ],
    "b": [T(0, 30, "a yellow triangle bounces and shrinks")],
    "c": [T(6, 12, "a pink hexagon moves up"), T(0, 20, "a hexagon")],
}
FIXTURE2_REFERENCES = {
    "a": [
        [
            T(2, 14.5, "A red circle moves to the left."),
            T(10, 25, "Then the blue square grows, quickly!"),
            T(31, 47.25, "The café's green star spins (twice)."),
        ],
        [
            T(0, 15, "a crimson disc slides left"),
            T(16, 24, "an azure box gets bigger"),
            T(30, 50, "a green star rotates"),
        ],
    ],
    "b": [[T(0, 8, "a yellow triangle bounces"), T(8, 30, "the yellow triangle shrinks")]],
    "c": [[T(5, 12, "a hexagon moves up")]],
}
FIXTURE2_EXPECTED = {
    "precision": [0.9166666666666666, 0.75, 0.75, 0.0],
    "recall": [0.8333333333333334, 0.8333333333333334, 0.8333333333333334, 0.0],
    "meteor": [0.33347159728275383, 0.32273316621368525, 0.3333932491740012, 0.0],
    "cider": [0.7463574002958895, 1.5188968898609776, 1.6359327188517785, 0.0],
    "bleu4": [0.07547609801641697, 0.07547448212721646, 0.08628585409288504, 1.941487507145244e-16],
    "soda": [0.21668078169407048, 0.26228378185105705, 0.2225653442553345],
}


@pytest.fixture(scope="module")
def meteor_java():
    """One METEOR process for every Java test here (each start loads a 60 MB paraphrase table)."""
    if not captions.java_available():
        pytest.skip("needs Java (PTB, METEOR)")
    with captions.meteor_process() as process:
        yield process


@requires_java
@pytest.mark.slow
@pytest.mark.parametrize(
    ("predictions", "references", "expected"),
    [
        (FIXTURE1_PREDICTIONS, FIXTURE1_REFERENCES, FIXTURE1_EXPECTED),
        (FIXTURE2_PREDICTIONS, FIXTURE2_REFERENCES, FIXTURE2_EXPECTED),
    ],
    ids=["same-times", "different-times"],
)
def test_agrees_with_densevid_eval_and_soda(meteor_java, predictions, references, expected) -> None:
    scores = dense_scores(predictions, references)
    assert scores.notices == []
    for name in ("precision", "recall", "meteor", "cider", "bleu4"):
        got = [getattr(scores.per_tiou[t], name) for t in TIOUS]
        assert got == pytest.approx(expected[name], abs=1e-9), name
        assert getattr(scores, name) == pytest.approx(np.mean(expected[name]), abs=1e-9), name
    p, r = np.mean(expected["precision"]), np.mean(expected["recall"])
    assert scores.f1 == pytest.approx(2 * p * r / (p + r))
    assert scores.soda is not None
    soda = (scores.soda.precision, scores.soda.recall, scores.soda.f1)
    assert soda == pytest.approx(tuple(expected["soda"]), abs=1e-9)
    assert scores.soda_c == scores.soda.f1
    # The process is shared: it is still running for the next test.
    assert meteor_java.meteor_p.poll() is None


@requires_java
@pytest.mark.slow
def test_order_violation_with_meteor(meteor_java) -> None:
    truth = [T(0, 10, RED), T(10, 20, BLUE)]
    in_order = dense_scores({"v": [T(0, 20, RED), T(0, 20, BLUE)]}, {"v": [truth]})
    backwards = dense_scores({"v": [T(0, 20, BLUE), T(0, 20, RED)]}, {"v": [truth]})
    assert in_order.soda_c is not None and backwards.soda_c is not None
    assert backwards.soda_c < 0.75 * in_order.soda_c
    assert (in_order.precision, in_order.recall) == (backwards.precision, backwards.recall)
    assert in_order.meteor == pytest.approx(backwards.meteor)


@requires_java
@pytest.mark.slow
def test_soda_pairs_scored_in_chunks_agree(meteor_java, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidcap.metrics import dense

    monkeypatch.setattr(dense, "_METEOR_CHUNK", 3)  # many METEOR requests instead of one
    scores = dense_scores(FIXTURE2_PREDICTIONS, FIXTURE2_REFERENCES)
    assert scores.soda is not None
    soda = (scores.soda.precision, scores.soda.recall, scores.soda.f1)
    assert soda == pytest.approx(tuple(FIXTURE2_EXPECTED["soda"]), abs=1e-9)
