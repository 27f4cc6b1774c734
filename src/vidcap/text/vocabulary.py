"""The joint vocabulary: text word pieces, one token per visual word, and the special tokens.

VideoBERT reads ``[CLS] text [>] visual-words [SEP]``; BART reads the same material as a sequence to
denoise. Both need one embedding table that covers text pieces and visual words, so the vocabulary is
a single Hugging Face fast tokenizer whose added tokens include ``[V0] … [V{n-1}]``. It is saved with
``save_pretrained`` (so plain ``AutoTokenizer.from_pretrained`` loads it) plus a small
``vidcap_vocabulary.json`` that records where the visual words sit.

Two ways to get one:

- :func:`train_vocabulary` trains a WordPiece tokenizer on the corpus text. The special tokens come
  first (ids 0-5, in :data:`SPECIALS` order), then the visual words (ids 6 … 6+n-1), then the text
  pieces.
- :func:`extend_pretrained` loads a pretrained tokenizer (BERT, BART, ... — whatever a ``--tokenizer``
  or ``--init`` checkpoint has) and appends ``[>]`` and the visual words as added tokens, keeping the
  tokenizer's own ``[MASK]``/``<mask>``, pad, ``[CLS]``/``<s>`` and ``[SEP]``/``</s>``.

Either way the visual words form one contiguous id range, ``visual_offset + word``, so mapping words
to ids (and back) is a vectorised add, never a dictionary lookup per clip.

A dense-captioning model (Vid2Seq) also needs time tokens ``[T0] … [T{n-1}]``, one per relative
time bin: :meth:`JointVocabulary.with_time_tokens` appends them after every other id, so the ids
that were there keep their meaning and a pretrain's embeddings only grow by ``n`` rows.
``vidcap_vocabulary.json`` records them (``n_time``, ``time_offset``); a vocabulary saved before
they existed loads with none.

transformers is imported lazily: ``import vidcap.text`` stays cheap for commands that never build a
tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidcap.artifacts import atomic_write_json
from vidcap.artifacts.damage import read_json, reading
from vidcap.bundle import CONFIG, model_remedy
from vidcap.errors import VidcapError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

SPECIALS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[>]")
"""Special tokens of a trained vocabulary, in id order; ``[>]`` joins text and video (VideoBERT)."""

JOIN_TOKEN = "[>]"
VOCABULARY_FILE = "vidcap_vocabulary.json"
TOKENIZER_FILE = "tokenizer.json"  # the fast tokenizer itself (save_pretrained)
TOKENIZER_CONFIG = "tokenizer_config.json"
VOCABULARY_FORMAT = 1


def visual_token(word: int) -> str:
    """The token string of visual word ``word``: ``visual_token(123) == "[V123]"``."""
    return f"[V{int(word)}]"


def time_token(bin_index: int) -> str:
    """The token string of relative time bin ``bin_index``: ``time_token(7) == "[T7]"``."""
    return f"[T{int(bin_index)}]"


def _check_n_visual(n_visual: int) -> int:
    if isinstance(n_visual, bool) or not isinstance(n_visual, (int, np.integer)) or n_visual < 1:
        raise VidcapError(
            f"the number of visual words must be a whole number of at least 1, not {n_visual!r}; "
            "it is the codebook's size (k ** depth)."
        )
    return int(n_visual)


def _as_numpy(ids: Any) -> np.ndarray:
    """Ids as an int64 numpy array, whether they came as a list, an array or a (GPU) tensor."""
    if hasattr(ids, "detach"):  # a torch tensor: avoid importing torch just to recognise one
        ids = ids.detach().cpu().numpy()
    return np.asarray(ids, dtype=np.int64)


class JointVocabulary:
    """A fast tokenizer plus where its visual words live.

    Attributes:
        tokenizer: the Hugging Face fast tokenizer (what ``save_pretrained`` writes).
        n_visual: number of visual words (the codebook size).
        visual_offset: token id of visual word 0; word ``w`` is token ``visual_offset + w``.
        pad_id, unk_id, cls_id, sep_id, mask_id: the usual special ids.
        join_id: id of ``[>]``, the text/video separator.
        bos_id, eos_id: what BART starts and ends a sequence with (``[CLS]``/``[SEP]`` for a trained
            vocabulary; ``<s>``/``</s>`` for an extended BART tokenizer).
        text_id_range: ``[lo, hi)`` ids that are ordinary text pieces, for BERT's random replacement.
        kind: ``"trained"`` or ``"extended"``; base: the pretrained tokenizer it extends, if any.
        n_time, time_offset: how many time tokens (0 for a vocabulary without) and the id of
            ``[T0]``; bin ``b`` is token ``time_offset + b``.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerFast,
        n_visual: int,
        visual_offset: int,
        text_id_range: tuple[int, int],
        *,
        kind: str,
        base: str | None = None,
        n_time: int = 0,
        time_offset: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.n_visual = _check_n_visual(n_visual)
        self.visual_offset = int(visual_offset)
        self.text_id_range = (int(text_id_range[0]), int(text_id_range[1]))
        self.kind = kind
        self.base = base
        self.pad_id = self._required_id("pad_token")
        self.unk_id = self._required_id("unk_token")
        self.mask_id = self._required_id("mask_token")
        # BERT tokenizers have no bos/eos and BART ones name <s>/</s> both ways: fall back so every
        # vocabulary answers all four.
        self.cls_id = self._first_id("cls_token", "bos_token")
        self.sep_id = self._first_id("sep_token", "eos_token")
        self.bos_id = self.cls_id if kind == "trained" else self._first_id("bos_token", "cls_token")
        self.eos_id = self.sep_id if kind == "trained" else self._first_id("eos_token", "sep_token")
        self.join_id = self._token_id(JOIN_TOKEN)
        # Cached: with 20k added tokens, len(tokenizer) costs about a millisecond per call. The
        # tokenizer must not gain tokens after this (they would fall outside every range here).
        self._size = len(tokenizer)
        self._special_array = np.fromiter(sorted(self.special_ids), dtype=np.int64)
        self._check_visual_range()
        self.n_time = int(n_time)
        self.time_offset = self._size if time_offset is None else int(time_offset)
        self._check_time_range()

    # -- construction helpers ------------------------------------------------------------------
    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or (token != self.tokenizer.unk_token and token_id == self.unk_id):
            raise VidcapError(f"the tokenizer has no {token} token; rebuild the vocabulary.")
        return int(token_id)

    def _required_id(self, attribute: str) -> int:
        token_id = getattr(self.tokenizer, f"{attribute}_id", None)
        if token_id is None:
            raise VidcapError(
                f"the tokenizer has no {attribute.replace('_', ' ')}; rebuild the vocabulary."
            )
        return int(token_id)

    def _first_id(self, *attributes: str) -> int:
        for attribute in attributes:
            token_id = getattr(self.tokenizer, f"{attribute}_id", None)
            if token_id is not None:
                return int(token_id)
        return self._required_id(attributes[0])

    def _check_visual_range(self) -> None:
        """The first and last visual tokens must sit where the offset says (cheap sanity check)."""
        first, last = self.visual_range
        got = self.tokenizer.convert_tokens_to_ids(
            [visual_token(0), visual_token(self.n_visual - 1)]
        )
        if got != [first, last - 1] or last > self._size:
            raise VidcapError(
                f"the tokenizer's visual words are not at ids {first}..{last - 1} as its "
                f"{VOCABULARY_FILE} says; rebuild the vocabulary."
            )

    def _check_time_range(self) -> None:
        """The time tokens must sit where the offset says, if there are any."""
        if not self.n_time:
            return
        first, last = self.time_range
        got = self.tokenizer.convert_tokens_to_ids([time_token(0), time_token(self.n_time - 1)])
        if got != [first, last - 1] or last > self._size:
            raise VidcapError(
                f"the tokenizer's time tokens are not at ids {first}..{last - 1} as its "
                f"{VOCABULARY_FILE} says; rebuild the vocabulary."
            )

    def with_time_tokens(self, n_time: int) -> JointVocabulary:
        """This vocabulary plus ``n_time`` time tokens ``[T0] … [T{n-1}]`` after every other id
        (a copy: this one is left as it is). One that already has exactly ``n_time`` is returned.

        Raises:
            VidcapError: ``n_time`` < 2, or the vocabulary already has a different number.
        """
        import copy

        from tokenizers import AddedToken

        if isinstance(n_time, bool) or not isinstance(n_time, (int, np.integer)) or n_time < 2:
            raise VidcapError(f"the number of time bins must be at least 2, not {n_time!r}.")
        if self.n_time == n_time:
            return self
        if self.n_time:
            raise VidcapError(
                f"this vocabulary already has {self.n_time} time tokens, not {n_time}; "
                f"finetune with --time-bins {self.n_time}, or from a model without time tokens."
            )
        tokenizer = copy.deepcopy(self.tokenizer)
        offset = len(tokenizer)
        # normalized=False as for visual words: an uncased tokenizer must not lowercase "[T5]".
        tokenizer.add_tokens(
            [AddedToken(time_token(b), special=True, normalized=False) for b in range(n_time)],
            special_tokens=True,
        )
        return JointVocabulary(
            tokenizer,
            self.n_visual,
            self.visual_offset,
            self.text_id_range,
            kind=self.kind,
            base=self.base,
            n_time=int(n_time),
            time_offset=offset,
        )

    # -- ids -----------------------------------------------------------------------------------
    @property
    def time_range(self) -> tuple[int, int]:
        """``[lo, hi)`` token ids of the time tokens (empty when there are none)."""
        return self.time_offset, self.time_offset + self.n_time

    def time_ids(self, bins: np.ndarray | Sequence[int]) -> np.ndarray:
        """Token ids (int64) of time bins ``bins``.

        Raises:
            VidcapError: the vocabulary has no time tokens, or a bin is outside ``0 … n_time-1``.
        """
        bins = _as_numpy(bins)
        if not self.n_time:
            raise VidcapError("this vocabulary has no time tokens (it is not a dense model's).")
        if bins.size and (bins.min() < 0 or bins.max() >= self.n_time):
            raise VidcapError(f"time bins must be in 0..{self.n_time - 1}, got {bins.tolist()}.")
        return bins + self.time_offset

    def bins_from_ids(self, ids: np.ndarray | Sequence[int] | torch.Tensor) -> np.ndarray:
        """Time bin of each token id (int64, same shape), ``-1`` where the id is not a time token."""
        ids = _as_numpy(ids)
        lo, hi = self.time_range
        return np.where((ids >= lo) & (ids < hi), ids - lo, -1)

    @property
    def visual_range(self) -> tuple[int, int]:
        """``[lo, hi)`` token ids of the visual words."""
        return self.visual_offset, self.visual_offset + self.n_visual

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of every special token (pad, unk, cls, sep, mask, ``[>]``, bos, eos, and others)."""
        ids = {self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id, self.join_id}
        ids |= {self.bos_id, self.eos_id}
        ids |= {int(i) for i in self.tokenizer.all_special_ids}
        return frozenset(ids)

    def non_text_ids(self) -> list[int]:
        """Ids a generated caption may never hold: visual words and every special but ``eos``.

        Caption targets are word pieces then ``eos``, so a decoder that emits one of these ids has
        produced nothing a reader sees; generation rules them out.
        """
        lo, hi = self.visual_range
        specials = sorted(self.special_ids - {self.eos_id})
        return specials + list(range(lo, hi)) + list(range(*self.time_range))

    def non_dense_ids(self) -> list[int]:
        """Ids a generated dense sequence may never hold: :meth:`non_text_ids` but the time
        tokens, which a dense sequence interleaves with its captions."""
        lo, hi = self.visual_range
        return sorted(self.special_ids - {self.eos_id}) + list(range(lo, hi))

    def __len__(self) -> int:
        """Total vocabulary size: the number of embedding rows a model needs."""
        return self._size

    def visual_ids(self, words: np.ndarray | Sequence[int]) -> np.ndarray:
        """Token ids (int64) of visual words ``words`` (any shape).

        Raises:
            VidcapError: a word is outside ``0 … n_visual-1`` (words from another codebook).
        """
        words = _as_numpy(words)
        if words.size and (words.min() < 0 or words.max() >= self.n_visual):
            bad = int(words.min()) if words.min() < 0 else int(words.max())
            raise VidcapError(
                f"visual word {bad} is outside this vocabulary's {self.n_visual} visual words; "
                "the words and the vocabulary come from different codebooks."
            )
        return words + self.visual_offset

    def words_from_ids(self, ids: np.ndarray | Sequence[int] | torch.Tensor) -> np.ndarray:
        """Visual word of each token id (int64, same shape), ``-1`` where the id is not visual."""
        ids = _as_numpy(ids)
        lo, hi = self.visual_range
        return np.where((ids >= lo) & (ids < hi), ids - lo, -1)

    def is_visual(self, ids: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the visual-word ids in ``ids`` (a tensor, or a numpy array)."""
        lo, hi = self.visual_range
        return (ids >= lo) & (ids < hi)

    # -- text ----------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        """Word-piece ids of ``text``, without ``[CLS]``/``[SEP]`` or any other special token.

        Special-token strings inside the text (a transcript that says ``[SEP]`` or ``[V12]``) are
        tokenized as ordinary text, so corpus text can never inject a separator or a visual word.
        """
        return self.encode_texts([text])[0]

    def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode_text` for many texts at once (the backend tokenizes them in parallel)."""
        if not texts:
            return []
        backend = self.tokenizer.backend_tokenizer
        # encode_special_tokens makes the backend treat added-token strings as plain text. It is a
        # switch on the shared backend, so it is put back for anyone using the tokenizer directly.
        before = backend.encode_special_tokens
        backend.encode_special_tokens = True
        try:
            encodings = backend.encode_batch(list(texts), add_special_tokens=False)
        finally:
            backend.encode_special_tokens = before
        return [list(e.ids) for e in encodings]

    def decode_text(self, ids: np.ndarray | Sequence[int] | torch.Tensor) -> str:
        """The text of ``ids``, leaving out special tokens, visual words and time tokens."""
        ids = _as_numpy(ids).reshape(-1)
        lo, hi = self.visual_range
        keep = (ids >= 0) & (ids < self._size) & ~((ids >= lo) & (ids < hi))
        keep &= self.bins_from_ids(ids) < 0
        keep &= ~np.isin(ids, self._special_array)
        return self.tokenizer.decode(ids[keep].tolist(), skip_special_tokens=True).strip()

    # -- files ---------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """What ``vidcap_vocabulary.json`` records (ids are informative; the tokenizer is the truth)."""
        return {
            "format": VOCABULARY_FORMAT,
            "kind": self.kind,
            "base": self.base,
            "n_visual": self.n_visual,
            "visual_offset": self.visual_offset,
            "visual_token_format": "[V{word}]",
            "join_token": JOIN_TOKEN,
            "text_id_range": list(self.text_id_range),
            "n_time": self.n_time,
            "time_offset": self.time_offset if self.n_time else None,
            "time_token_format": "[T{bin}]",
            "vocab_size": len(self),
            "ids": {
                "pad": self.pad_id,
                "unk": self.unk_id,
                "cls": self.cls_id,
                "sep": self.sep_id,
                "mask": self.mask_id,
                "join": self.join_id,
                "bos": self.bos_id,
                "eos": self.eos_id,
            },
        }

    def save(self, path: str | Path) -> None:
        """Write the tokenizer (``save_pretrained``) and ``vidcap_vocabulary.json`` into ``path``.

        The JSON file is written last and atomically, so a folder that has it holds a complete
        tokenizer; :meth:`load` refuses a folder without it.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(path))
        atomic_write_json(path / VOCABULARY_FILE, self.metadata())

    @classmethod
    def load(cls, path: str | Path, remedy: str | None = None) -> JointVocabulary:
        """Load a vocabulary written by :meth:`save`.

        ``remedy`` is what to do when one of its files is missing or damaged (by default
        :func:`vidcap.bundle.model_remedy`'s: copy the model folder again, or write it again).

        Raises:
            VidcapError: a file of it is missing or damaged, or it was written by a newer vidcap.
        """
        path = Path(path)
        remedy = remedy or model_remedy(path)
        meta_path = path / VOCABULARY_FILE
        meta = read_json(meta_path, remedy)
        with reading(meta_path, remedy, KeyError, TypeError, ValueError, IndexError):
            n_visual, offset = int(meta["n_visual"]), int(meta["visual_offset"])
            text_range = (int(meta["text_id_range"][0]), int(meta["text_id_range"][1]))
            kind = str(meta["kind"])
            n_time = int(meta.get("n_time") or 0)  # absent: saved before time tokens existed
            time_offset = int(meta["time_offset"]) if n_time else None
            newer = int(meta.get("format", 0)) > VOCABULARY_FORMAT
        if newer:
            raise VidcapError(
                f"{meta_path} was written by a newer vidcap (format {meta['format']}); upgrade vidcap."
            )
        # Whole JSON first, so that a cut file is named (transformers would not name it; it reads
        # a model's config.json too, for the tokenizer's class). Without its tokenizer_config.json
        # the tokenizer would load, its special tokens unset.
        read_json(path / TOKENIZER_FILE, remedy)
        read_json(path / TOKENIZER_CONFIG, remedy)
        if (path / CONFIG).exists():
            read_json(path / CONFIG, remedy)
        tokenizer = _load_fast_tokenizer(str(path))
        return cls(
            tokenizer,
            n_visual,
            offset,
            text_range,
            kind=kind,
            base=meta.get("base"),
            n_time=n_time,
            time_offset=time_offset,
        )

    def __repr__(self) -> str:
        return (
            f"JointVocabulary(kind={self.kind!r}, size={len(self)}, n_visual={self.n_visual}, "
            f"visual_offset={self.visual_offset}, n_time={self.n_time})"
        )


# --------------------------------------------------------------------------------------------------
# Building


def train_vocabulary(
    texts: Iterable[str],
    n_visual: int,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> JointVocabulary:
    """Train a WordPiece vocabulary on ``texts`` (transcripts and captions) and add visual words.

    Args:
        texts: the corpus text, read once (a generator is fine).
        n_visual: number of visual words (codebook size).
        vocab_size: how many text pieces at most (specials and visual words come on top).
        min_frequency: a merge must occur this often to become a piece.
        lowercase: lowercase and strip accents, as BERT-uncased does.

    Raises:
        VidcapError: ``n_visual`` < 1, a non-positive size, or no text at all.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from vidcap.text.wordpiece import count_words, learn_pieces

    n_visual = _check_n_visual(n_visual)
    if vocab_size < 1 or min_frequency < 1:
        raise VidcapError(
            f"the vocabulary size ({vocab_size}) and minimum frequency ({min_frequency}) must be "
            "at least 1."
        )

    # Specials then visual words get the first ids, in that order, before any text piece, so visual
    # words are the contiguous range len(SPECIALS) … len(SPECIALS)+n_visual-1. The pieces are
    # learned by vidcap.text.wordpiece (the same on every run), not by tokenizers' trainer.
    specials = [*SPECIALS, *(visual_token(w) for w in range(n_visual))]
    normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counter = _CountingTexts(texts)
    words = count_words(counter, normalizer, pre_tokenizer)
    if counter.nonempty == 0:
        raise VidcapError(
            "the corpus has no caption or transcript text to train a vocabulary on; add text to "
            "corpus.jsonl or pass --tokenizer with a pretrained one."
        )
    reserved = set(specials)
    pieces = [p for p in learn_pieces(words, vocab_size, min_frequency) if p not in reserved]
    vocab = {token: i for i, token in enumerate([*specials, *pieces])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(specials)

    cls_id, sep_id = SPECIALS.index("[CLS]"), SPECIALS.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        extra_special_tokens=[JOIN_TOKEN],
        # WordPiece decoding leaves "word ," — merge such spaces as BERT's tokenizer does.
        clean_up_tokenization_spaces=True,
    )
    offset = len(SPECIALS)
    return JointVocabulary(
        tokenizer, n_visual, offset, (offset + n_visual, len(tokenizer)), kind="trained"
    )


def extend_pretrained(name_or_path: str | Path, n_visual: int) -> JointVocabulary:
    """Load a pretrained fast tokenizer and append ``[>]`` and the visual words to it.

    ``name_or_path`` is a hub id or a local folder (a ``--tokenizer`` or an ``--init`` checkpoint).
    The tokenizer keeps its own special tokens; any of pad, unk, mask, cls/bos, sep/eos it lacks is
    added (before ``[>]``) as ``[PAD]``, ``[UNK]``, ``[MASK]``, ``[CLS]``, ``[SEP]``. Added tokens get
    consecutive ids after the existing ones, so the visual words stay contiguous. A folder that is
    already a vidcap vocabulary with the same number of visual words is loaded as it is.

    Raises:
        VidcapError: ``n_visual`` < 1, ``name_or_path`` holds no (fast) tokenizer, it already holds
            visual words of another codebook, or the visual words could not be made contiguous.
    """
    from tokenizers import AddedToken

    n_visual = _check_n_visual(n_visual)
    if (Path(name_or_path) / VOCABULARY_FILE).is_file():
        vocab = JointVocabulary.load(name_or_path)
        if vocab.n_visual != n_visual:
            raise VidcapError(
                f"{name_or_path} holds a vocabulary for {vocab.n_visual} visual words, but the "
                f"codebook has {n_visual}; start from a checkpoint made with this codebook."
            )
        return vocab

    tokenizer = _load_fast_tokenizer(str(name_or_path))
    existing = tokenizer.get_vocab()
    clashes = [
        t for t in (JOIN_TOKEN, visual_token(0), visual_token(n_visual - 1)) if t in existing
    ]
    if clashes:
        raise VidcapError(
            f"the tokenizer at {name_or_path} already has {clashes[0]} but no {VOCABULARY_FILE}; "
            "start from a tokenizer without vidcap's tokens."
        )
    base_size = len(tokenizer)
    # Ids the base already reserves (its specials and added tokens): text pieces lie between them.
    reserved = {int(i) for i in tokenizer.added_tokens_decoder} | {
        int(i) for i in tokenizer.all_special_ids
    }
    text_range = _longest_free_run(reserved, base_size)

    missing = {
        attr: token
        for attr, token in [
            ("pad_token", "[PAD]"),
            ("unk_token", "[UNK]"),
            ("mask_token", "[MASK]"),
        ]
        if getattr(tokenizer, attr) is None
    }
    if tokenizer.cls_token is None and tokenizer.bos_token is None:
        missing["cls_token"] = "[CLS]"
    if tokenizer.sep_token is None and tokenizer.eos_token is None:
        missing["sep_token"] = "[SEP]"

    # normalized=False: an uncased tokenizer must not lowercase "[V5]" into something unmatched.
    # No lstrip (unlike BART's own <mask>): the tokens' strings would then carry the stripped space
    # and `convert_tokens_to_ids(tokenize(text))` would map them to unk. The price is that
    # byte-level BPE reads a space before "[V5]" as a "Ġ" token of its own — vidcap builds its
    # sequences from ids, never from such strings.
    def added(token: str) -> AddedToken:
        return AddedToken(token, special=True, normalized=False)

    # Missing specials, then [>] (registered as an extra special token, so it is saved as one),
    # then the visual words: each call appends consecutive ids after the last.
    missing_specials: dict[str, Any] = dict(missing)
    missing_specials["extra_special_tokens"] = [added(JOIN_TOKEN)]
    tokenizer.add_special_tokens(missing_specials, replace_extra_special_tokens=False)
    join_id = int(tokenizer.convert_tokens_to_ids(JOIN_TOKEN))
    n_added = tokenizer.add_tokens(
        [added(visual_token(w)) for w in range(n_visual)], special_tokens=True
    )
    offset = join_id + 1
    if (
        n_added != n_visual
        or tokenizer.convert_tokens_to_ids(visual_token(0)) != offset
        or offset + n_visual != len(tokenizer)
    ):
        raise VidcapError(
            f"could not give the visual words of {name_or_path} a contiguous id range; "
            "use a different --tokenizer."
        )
    return JointVocabulary(
        tokenizer, n_visual, offset, text_range, kind="extended", base=str(name_or_path)
    )


# --------------------------------------------------------------------------------------------------
# Helpers


class _CountingTexts:
    """Iterates over the corpus text once, passing on the non-blank texts and counting them."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = texts
        self.nonempty = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            if text and text.strip():
                self.nonempty += 1
                yield text


def _longest_free_run(reserved: set[int], size: int) -> tuple[int, int]:
    """The longest ``[lo, hi)`` inside ``[0, size)`` that contains no reserved id."""
    cuts = sorted(i for i in reserved if 0 <= i < size)
    best, start = (0, 0), 0
    for cut in [*cuts, size]:
        if cut - start > best[1] - best[0]:
            best = (start, cut)
        start = cut + 1
    return best


def _load_fast_tokenizer(name_or_path: str) -> PreTrainedTokenizerFast:
    """``AutoTokenizer.from_pretrained`` that turns every failure into one sentence."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except Exception as e:  # hub, file and format errors all mean "not a tokenizer here"
        raise VidcapError(
            f"{name_or_path} is not a tokenizer that transformers can load "
            f"({type(e).__name__}); give a folder with tokenizer.json or a hub model id."
        ) from None
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise VidcapError(
            f"{name_or_path} has only a slow (Python) tokenizer; vidcap needs a fast one "
            "(a folder with tokenizer.json)."
        )
    return tokenizer
