"""Zero-shot classification with a VideoBERT pretrain: fill ``[MASK]`` slots of a text template
from what the video shows, as the VideoBERT paper does with "now let me show you how to [MASK] the
[MASK]".

    from vidcap.inference.zeroshot import ZeroShotClassifier
    classifier = ZeroShotClassifier.load("runs/pretrain")
    result = classifier.classify("video.mp4", "a [MASK] square", labels=["red", "blue"])
    result.ranked[0].label                                  # the best label
    result = classifier.classify("video.mp4", "a red [MASK]")  # the vocabulary's best fills

The model reads exactly what pretraining's joint objective showed it,
``[CLS] template [>] visual-words [SEP]`` with token type 0 for ``[CLS]`` and the text and 1 for
``[>]``, the video and ``[SEP]``, and its masked-LM head predicts each masked slot.

Scoring candidate labels: a label may be several word pieces ("moves left", or a word the
vocabulary splits), so the template's one slot is widened to as many ``[MASK]`` as the label has
pieces, and the label's score is the *mean* log-probability of its pieces at those positions (all
predicted in the same pass, each given the video and the template but not the other pieces). The
mean, not the sum: a sum adds one negative term per piece, so every two-piece label would lose to
every one-piece label whatever the video shows. Labels with the same number of pieces share one
forward pass, and the passes for the different piece counts go in one batch.

Probabilities are the masked-LM softmax renormalised over ordinary text pieces (no special tokens,
no visual words): a slot in a template is a word, so the mass the head puts elsewhere is not a
choice the answer can take.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidcap.artifacts.readers import ClipTrack
from vidcap.bundle import Bundle, reading_model
from vidcap.errors import VidcapError
from vidcap.inference.pipeline import BundleModel
from vidcap.text import JointVocabulary
from vidcap.video.worker import VIDEO_TIMEOUT_S

MASK_MARKER = re.compile(r"\[MASK\]", re.IGNORECASE)
"""How a slot is written in a template (any case: ``[mask]`` too)."""


@dataclass(frozen=True)
class Template:
    """A parsed template: text pieces around the slots; ``len(pieces) == slots + 1``."""

    text: str
    pieces: tuple[tuple[int, ...], ...]

    @property
    def slots(self) -> int:
        """Number of ``[MASK]`` slots."""
        return len(self.pieces) - 1

    def ids(self, mask_id: int, widths: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """Text ids with ``widths[i]`` masks in slot ``i`` (1 each by default), and the positions
        (in the text) of every mask, slot by slot."""
        widths = widths if widths is not None else [1] * self.slots
        ids: list[int] = list(self.pieces[0])
        positions: list[int] = []
        for width, after in zip(widths, self.pieces[1:], strict=True):
            positions += range(len(ids), len(ids) + width)
            ids += [mask_id] * width
            ids += after
        return ids, positions


def parse_template(vocab: JointVocabulary, template: str) -> Template:
    """Split ``template`` at its ``[MASK]`` markers and encode the text around them.

    The pieces are encoded separately with :meth:`JointVocabulary.encode_text` (which lowercases
    for an uncased vocabulary and reads special-token strings as plain text, so a marker must be
    cut out first). The WordPiece pre-tokenizer splits on whitespace and punctuation anyway, so
    this gives the same ids as encoding the sentence with the slot word in place.

    Raises:
        VidcapError: the template has no ``[MASK]``.
    """
    parts = MASK_MARKER.split(template)
    if len(parts) < 2:
        raise VidcapError(
            f"the template {template!r} has no [MASK] slot; write the word to predict as [MASK], "
            'e.g. "a [MASK] square".'
        )
    return Template(template, tuple(tuple(ids) for ids in vocab.encode_texts(parts)))


@dataclass(frozen=True)
class TokenFill:
    """One candidate word piece for a slot."""

    token: str
    id: int
    probability: float


@dataclass(frozen=True)
class LabelScore:
    """A candidate label's score: mean log-probability of its ``pieces`` word pieces."""

    label: str
    score: float
    pieces: int


@dataclass
class Classification:
    """What :meth:`ZeroShotClassifier.classify` found for one video (or a stretch of it).

    ``ranked`` (labels given) holds every label, best first; otherwise ``slots`` holds the top
    vocabulary fills of each slot.
    """

    video: str
    template: str
    clips: int
    start_s: float
    end_s: float
    ranked: list[LabelScore] | None = None
    slots: list[list[TokenFill]] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (``vidcap classify --json``)."""
        out: dict[str, Any] = {
            "video": self.video,
            "template": self.template,
            "clips": self.clips,
            "start": round(self.start_s, 3),
            "end": round(self.end_s, 3),
        }
        if self.ranked is not None:
            out["ranked"] = [
                {"label": r.label, "score": round(r.score, 4), "pieces": r.pieces}
                for r in self.ranked
            ]
        if self.slots is not None:
            out["slots"] = [
                [{"token": f.token, "probability": round(f.probability, 4)} for f in slot]
                for slot in self.slots
            ]
        return out


class ZeroShotClassifier(BundleModel):
    """A VideoBERT pretrain ready to fill template slots from videos (see the module docstring)."""

    def __init__(
        self, bundle: Bundle, device: str = "auto", timeout: float | None = VIDEO_TIMEOUT_S
    ) -> None:
        import transformers

        super().__init__(bundle, device, timeout)
        with reading_model(bundle.folder, bundle.remedy):
            model = transformers.BertForPreTraining.from_pretrained(bundle.folder)
        self.model = model.to(self.device).eval()
        self.max_length = int(self.model.config.max_position_embeddings)
        lo, hi = self.vocab.text_id_range
        allowed = np.zeros(len(self.vocab), dtype=bool)
        allowed[lo:hi] = True
        allowed[self.vocab.words_from_ids(np.arange(len(self.vocab))) >= 0] = False
        allowed[sorted(self.vocab.special_ids)] = False
        # Logits of ids outside ordinary text pieces are dropped before the softmax (see above);
        # _column maps a token id to its column among the kept ones (-1: not kept).
        text_ids = np.flatnonzero(allowed)
        self._text_ids = torch.from_numpy(text_ids).to(self.device)
        self._column = np.full(len(self.vocab), -1, dtype=np.int64)
        self._column[text_ids] = np.arange(len(text_ids))

    @classmethod
    def load(
        cls, model_dir: str | Path, device: str = "auto", timeout: float | None = VIDEO_TIMEOUT_S
    ) -> ZeroShotClassifier:
        """Load a ``vidcap pretrain --arch videobert`` folder (or its ``final/``); ``timeout``:
        seconds each video's decoder may take (see :class:`~vidcap.inference.pipeline.VideoPipeline`).

        Raises:
            VidcapError: not a pretrain (no ``vidcap.json``, or a finetuned caption bundle), or a
                BART pretrain, which has no masked-LM head to fill slots with.
        """
        bundle = Bundle.load(model_dir, "pretrain")
        if bundle.stage != "pretrain":
            raise VidcapError(
                f"{model_dir} is a {bundle.stage} folder, not a VideoBERT pretrain; zero-shot classification needs the masked-LM head of `vidcap pretrain --arch videobert`."
            )
        if bundle.info.get("arch") != "videobert":
            raise VidcapError(
                f"{model_dir} is a {bundle.info.get('arch')} pretrain; zero-shot classification fills [MASK] slots with VideoBERT's masked-LM head, so it needs `vidcap pretrain --arch videobert`."
            )
        return cls(bundle, device, timeout)

    # -- inputs --------------------------------------------------------------------------------
    def template(self, template: str) -> Template:
        """Parse ``template`` with this model's vocabulary (see :func:`parse_template`)."""
        return parse_template(self.vocab, template)

    def label_pieces(self, labels: Sequence[str]) -> dict[str, tuple[int, ...]]:
        """Word-piece ids of each distinct label, in the order given.

        Raises:
            VidcapError: no labels, a blank label, or one with words the vocabulary does not know
                (its ``[UNK]`` piece has no probability to score).
        """
        labels = list(dict.fromkeys(labels))
        if not labels:
            raise VidcapError("no candidate labels given.")
        pieces = dict(zip(labels, self.vocab.encode_texts(labels), strict=True))
        for label, ids in pieces.items():
            if not ids:
                raise VidcapError(f"the label {label!r} has no words.")
            if self.vocab.unk_id in ids:
                raise VidcapError(
                    f"the label {label!r} has words this model's vocabulary does not know; remove or rephrase it."
                )
        return {label: tuple(ids) for label, ids in pieces.items()}

    def sequence(self, text: Sequence[int], video_words: np.ndarray) -> tuple[list[int], list[int]]:
        """``[CLS] text [>] video [SEP]`` ids and token types, as pretraining's joint objective
        builds them; a video too long for the model is subsampled evenly, so the whole stretch
        stays in view (the text, the question, is never cut).

        Raises:
            VidcapError: no visual words, or the text alone leaves no room for video.
        """
        v = self.vocab
        if len(video_words) == 0:
            raise VidcapError("there are no visual words to classify.")
        budget = self.max_length - 3
        room = budget - len(text)
        if room < 1:
            raise VidcapError(
                f"the template is {len(text)} word pieces long; this model reads at most {budget - 1} with the video."
            )
        words = np.asarray(video_words)
        if len(words) > room:
            words = words[np.linspace(0, len(words) - 1, room).round().astype(int)]
        video = v.visual_ids(words).tolist()
        ids = [v.cls_id, *text, v.join_id, *video, v.sep_id]
        types = [0] * (1 + len(text)) + [1] * (2 + len(video))
        return ids, types

    def _log_probs(
        self, rows: Sequence[tuple[list[int], list[int]]], positions: Sequence[Sequence[int]]
    ) -> list[torch.Tensor]:
        """One batched forward pass: for each row, ``[len(positions), n_text_ids]`` log-probs
        over the text pieces at the given positions (text positions, after ``[CLS]``)."""
        length = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), length), self.vocab.pad_id, dtype=torch.long)
        token_types = torch.zeros((len(rows), length), dtype=torch.long)
        attention = torch.zeros((len(rows), length), dtype=torch.long)
        for r, (ids, types) in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            token_types[r, : len(ids)] = torch.tensor(types)
            attention[r, : len(ids)] = 1
        with torch.inference_mode():
            hidden = self.model.bert(
                input_ids=input_ids.to(self.device),
                token_type_ids=token_types.to(self.device),
                attention_mask=attention.to(self.device),
            ).last_hidden_state
            out = []
            for r, where in enumerate(positions):
                at = torch.tensor([1 + p for p in where], device=self.device)  # +1: [CLS]
                # The LM head on the slot positions only: a [positions, vocab] matrix, not
                # [batch, length, vocab].
                logits = self.model.cls.predictions(hidden[r, at])
                out.append(torch.log_softmax(logits[:, self._text_ids].float(), dim=-1).cpu())
        return out

    # -- classification ------------------------------------------------------------------------
    def fill(self, video_words: np.ndarray, template: str, top: int = 5) -> list[list[TokenFill]]:
        """The ``top`` most likely text pieces for each slot of ``template``, given the visual
        words of a video (codebook indices), best first."""
        if top < 1:
            raise VidcapError(f"--top must be at least 1, got {top}.")
        parsed = self.template(template)
        ids, positions = parsed.ids(self.vocab.mask_id)
        (log_probs,) = self._log_probs([self.sequence(ids, video_words)], [positions])
        values, index = log_probs.topk(min(top, log_probs.shape[1]), dim=-1)
        token_ids = self._text_ids.cpu()[index]
        return [
            [
                TokenFill(self.vocab.tokenizer.convert_ids_to_tokens(int(t)), int(t), float(p))
                for t, p in zip(token_ids[s], values[s].exp(), strict=True)
            ]
            for s in range(parsed.slots)
        ]

    def rank(
        self, video_words: np.ndarray, template: str, labels: Sequence[str]
    ) -> list[LabelScore]:
        """Every label of ``labels`` scored in the one slot of ``template``, best first (see the
        module docstring for the score); ties keep the labels' order.

        Raises:
            VidcapError: the template has more than one slot, or a label cannot be scored.
        """
        parsed = self.template(template)
        if parsed.slots != 1:
            raise VidcapError(
                f"ranking labels needs a template with exactly one [MASK] slot; {template!r} has {parsed.slots}."
            )
        pieces = self.label_pieces(labels)
        widths = sorted({len(p) for p in pieces.values()})
        rows, positions = [], []
        for width in widths:
            ids, where = parsed.ids(self.vocab.mask_id, [width])
            rows.append(self.sequence(ids, video_words))
            positions.append(where)
        log_probs = dict(zip(widths, self._log_probs(rows, positions), strict=True))
        scores = []
        for label, ids in pieces.items():
            table = log_probs[len(ids)]
            columns = self._column[list(ids)]
            # Known pieces are ordinary text pieces; -inf for any other is only a safety net.
            values = [
                float(table[i, c]) if c >= 0 else float("-inf") for i, c in enumerate(columns)
            ]
            scores.append(LabelScore(label, sum(values) / len(values), len(ids)))
        return sorted(scores, key=lambda s: -s.score)

    def classify(
        self,
        video: str | Path,
        template: str,
        labels: Sequence[str] | None = None,
        top: int = 5,
        start: float | None = None,
        end: float | None = None,
    ) -> Classification:
        """Classify a raw video file (or its clips overlapping ``[start, end]`` seconds): rank
        ``labels`` in the template's slot, or, without labels, the ``top`` fills of every slot."""
        clips = self.pipeline.clips(video)
        keep = clip_range(clips.start_s, clips.end_s, start, end)
        words = clips.words[keep]
        result = Classification(
            video=str(video),
            template=template,
            clips=len(words),
            start_s=float(clips.start_s[keep].min()),
            end_s=float(clips.end_s[keep].max()),
        )
        if labels is not None:
            result.ranked = self.rank(words, template, labels)
        else:
            result.slots = self.fill(words, template, top)
        return result


def clip_range(
    start_s: np.ndarray, end_s: np.ndarray, start: float | None, end: float | None
) -> np.ndarray:
    """Indices of the clips overlapping ``[start, end]`` (open ends: the video's ends); the
    nearest clip when none overlaps, as pretraining's units and captioning's segments do."""
    if start is None and end is None:
        return np.arange(len(start_s))
    lo = float(start_s.min()) if start is None else start
    hi = float(end_s.max()) if end is None else end
    if hi < lo:
        raise VidcapError(f"the end ({hi} s) is before the start ({lo} s).")
    return ClipTrack(np.zeros(len(start_s), dtype=np.int64), start_s, end_s).between(lo, hi)
