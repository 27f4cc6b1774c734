"""Paragraph scores for a video's story: the whole paragraph against reference paragraphs, and how
much it repeats itself.

A dense captioner's events told in order make a paragraph (``vidcap summarize`` with a dense
model); the paragraph-captioning literature scores it as one caption against the reference
paragraphs (here the corpus ``summary``) with the coco-caption metrics, and measures repetition as
**R@4**: the share of a paragraph's 4-grams that repeat one already said, ``1 - unique / all``,
averaged over paragraphs (Park et al., CVPR 2019; Lei et al., MART, ACL 2020). A generator that
says the same thing over and over scores well on recall-heavy metrics and badly here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vidcap.metrics import captions

__all__ = ["ParagraphScores", "paragraph_scores", "repetition"]


def repetition(tokens: list[str], n: int = 4) -> float:
    """The share of the n-grams of ``tokens`` that repeat an earlier one (0 with no n-gram)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


@dataclass
class ParagraphScores:
    """Paragraph metrics: coco-caption scores of whole paragraphs and R@4 repetition.

    Attributes:
        captions: BLEU, METEOR, ROUGE-L, CIDEr of each paragraph against its references.
        repetition: mean R@4 of the paragraphs.
        reference_repetition: mean R@4 of the reference paragraphs (what a human repeats).
    """

    captions: captions.CaptionScores
    repetition: float
    reference_repetition: float
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, float | None]:
        """CIDEr, METEOR, BLEU-4 and R@4 (and the references' R@4) under their usual names."""
        scores = self.captions.as_dict()
        return {
            "CIDEr": scores["CIDEr"],
            "METEOR": scores["METEOR"],
            "BLEU-4": scores["BLEU-4"],
            "R@4": self.repetition,
            "R@4 references": self.reference_repetition,
        }


def paragraph_scores(
    paragraphs: dict[str, str], references: dict[str, list[str]], meteor: bool = True
) -> ParagraphScores:
    """Score each video's paragraph against its reference paragraphs, and its repetition.

    Tokenized as coco-caption does (:func:`vidcap.metrics.captions.tokenize`) for R@4 too.

    Raises:
        VidcapError: as :func:`vidcap.metrics.captions.caption_scores` (no paragraphs, a video
            without references).
    """
    scores = captions.caption_scores(paragraphs, references, meteor=meteor)
    notices = list(scores.notices)
    keys = list(paragraphs)
    texts = [paragraphs[k] for k in keys] + [r for k in keys for r in references[k]]
    tokens = [t.split() for t in captions.tokenize(texts, [])]
    mine = [repetition(t) for t in tokens[: len(keys)]]
    theirs = [repetition(t) for t in tokens[len(keys) :]]
    return ParagraphScores(
        captions=scores,
        repetition=sum(mine) / len(mine),
        reference_repetition=sum(theirs) / len(theirs),
        notices=notices,
    )
