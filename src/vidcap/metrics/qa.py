"""Exact-match accuracy of generated answers, overall and per question type."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence

_PUNCTUATION = re.compile(r"[^\w\s]")


def normalize_answer(text: str) -> str:
    """Lowercase, punctuation dropped, spaces collapsed: "Moves left." and "moves  left" match."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def exact_match(
    predictions: Sequence[str], answers: Sequence[str], kinds: Sequence[str | None]
) -> dict[str, float | dict[str, float] | int]:
    """``{"exact_match": share, "count": n, "per_type": {type: share}}`` of normalised matches."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for prediction, answer, kind in zip(predictions, answers, kinds, strict=True):
        hits[kind or "untyped"].append(normalize_answer(prediction) == normalize_answer(answer))
    every = [h for group in hits.values() for h in group]
    return {
        "exact_match": sum(every) / len(every) if every else 0.0,
        "count": len(every),
        "per_type": {kind: sum(group) / len(group) for kind, group in sorted(hits.items())},
    }


def prior_answers(
    questions: Sequence[str], train_questions: Sequence[str], train_answers: Sequence[str]
) -> list[str]:
    """A floor that never looks at the video: each question's most frequent training answer,
    normalised (the most frequent answer overall for a question never seen in training)."""
    by_question: dict[str, Counter[str]] = defaultdict(Counter)
    for question, answer in zip(train_questions, train_answers, strict=True):
        by_question[normalize_answer(question)][normalize_answer(answer)] += 1
    overall = Counter(normalize_answer(a) for a in train_answers)
    fallback = overall.most_common(1)[0][0] if overall else ""
    return [
        (by_question.get(normalize_answer(q)) or Counter({fallback: 1})).most_common(1)[0][0]
        for q in questions
    ]
