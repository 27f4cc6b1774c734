"""Paragraph scores: R@4 repetition by hand, and whole-paragraph caption metrics (no Java)."""

from __future__ import annotations

import pytest

from vidcap.errors import VidcapError
from vidcap.metrics import captions
from vidcap.metrics.paragraph import paragraph_scores, repetition


@pytest.fixture(autouse=True)
def no_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captions, "java_available", lambda: False)


def test_repetition_by_hand() -> None:
    assert repetition(["a", "b", "c", "d", "e"]) == 0.0  # 2 distinct 4-grams
    # "a b c d a b c d": 5 4-grams, 4 distinct ("a b c d" twice) -> 1/5 repeated.
    assert repetition(["a", "b", "c", "d", "a", "b", "c", "d"]) == pytest.approx(1 / 5)
    assert repetition(["x", "x", "x", "x", "x", "x"]) == pytest.approx(
        2 / 3
    )  # 3 4-grams, 1 distinct
    assert repetition(["too", "short"]) == 0.0


def test_paragraph_scores() -> None:
    references = {
        "v": ["a red circle moves left, then a blue square grows."],
        "w": ["first a star spins, and then it bounces"],
    }
    told = {"v": "A red circle moves left, then a blue square grows.", "w": "a star spins"}
    scores = paragraph_scores(told, references, meteor=False)
    assert scores.captions.bleu4 > 0.5 and scores.captions.count == 2
    assert scores.repetition == 0.0 and scores.reference_repetition == 0.0
    looping = {"v": "a red circle moves left a red circle moves left a red circle moves left"}
    again = paragraph_scores(looping, references, meteor=False)
    # 12 4-grams ("a red circle moves left" x3 is 15 tokens), 5 distinct.
    assert again.repetition == pytest.approx(1 - 5 / 12)
    assert again.as_dict()["R@4"] == again.repetition
    assert again.as_dict()["METEOR"] is None
    with pytest.raises(VidcapError, match="no captions to score"):
        paragraph_scores({}, references)
