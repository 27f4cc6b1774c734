"""The joint vocabulary: trained WordPiece + visual words, extended pretrained BERT / BART tokenizers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import ByteLevelBPETokenizer, Tokenizer, decoders, models, normalizers, processors
from tokenizers import pre_tokenizers as pre
from tokenizers.trainers import WordPieceTrainer
from transformers import AutoTokenizer, BertTokenizerFast, PreTrainedTokenizerFast

from vidcap.errors import VidcapError
from vidcap.text import (
    SPECIALS,
    VOCABULARY_FILE,
    JointVocabulary,
    extend_pretrained,
    train_vocabulary,
    visual_token,
)

SENTENCES = [
    "The man cuts the onion on the board.",
    "A woman pours water into the bowl, then adds salt.",
    "Stir the sauce slowly and add pepper.",
    "The chef fries an egg in hot oil.",
    "Cut the tomatoes and put them in the pan.",
    "She whisks the eggs with a fork.",
] * 20


@pytest.fixture(scope="module")
def trained() -> JointVocabulary:
    return train_vocabulary(SENTENCES, n_visual=20, vocab_size=200)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT-style (WordPiece, [CLS]/[SEP]/[MASK]) tokenizer saved like a hub checkpoint."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        SENTENCES, WordPieceTrainer(vocab_size=150, special_tokens=specials, show_progress=False)
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    path = tmp_path_factory.mktemp("bert")
    BertTokenizerFast(tokenizer_object=tok).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BART-style (byte-level BPE, <s>/</s>/<mask>) tokenizer saved like a hub checkpoint."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        SENTENCES,
        vocab_size=300,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    bpe._tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        mask_token="<mask>",
        unk_token="<unk>",
    )
    path = tmp_path_factory.mktemp("bart")
    tokenizer.save_pretrained(path)
    return path


# --------------------------------------------------------------------------------------------------
# Trained vocabulary


def test_trained_layout(trained: JointVocabulary) -> None:
    """Specials at 0-5, visual words contiguous right after them, text pieces after that."""
    tok = trained.tokenizer
    assert tok.convert_tokens_to_ids(list(SPECIALS)) == list(range(6))
    assert (trained.pad_id, trained.unk_id, trained.cls_id, trained.sep_id) == (0, 1, 2, 3)
    assert (trained.mask_id, trained.join_id) == (4, 5)
    assert (trained.bos_id, trained.eos_id) == (trained.cls_id, trained.sep_id)
    assert trained.visual_offset == 6
    words = [visual_token(w) for w in range(20)]
    assert tok.convert_tokens_to_ids(words) == list(range(6, 26))
    assert trained.text_id_range == (26, len(trained))
    assert len(trained) == len(tok) <= 26 + 200
    # The text budget is on top of the specials and visual words: common words are whole pieces.
    assert tok.tokenize("the onion") == ["the", "onion"]


def test_visual_ids_round_trip(trained: JointVocabulary) -> None:
    words = np.array([[0, 5], [19, 3]])
    ids = trained.visual_ids(words)
    assert ids.shape == (2, 2) and ids.dtype == np.int64
    assert np.array_equal(ids, words + 6)
    assert np.array_equal(trained.words_from_ids(ids), words)
    mixed = [trained.cls_id, *trained.encode_text("the onion"), trained.join_id, *ids[0], 3]
    got = trained.words_from_ids(mixed)
    assert got.tolist() == [-1, -1, -1, -1, 0, 5, -1]
    mask = trained.is_visual(torch.tensor(mixed))
    assert mask.dtype == torch.bool and mask.tolist() == [v >= 0 for v in got]
    assert trained.words_from_ids(torch.tensor(ids)).tolist() == words.tolist()
    with pytest.raises(VidcapError, match="different codebooks"):
        trained.visual_ids([3, 20])
    with pytest.raises(VidcapError):
        trained.visual_ids([-1])
    assert trained.visual_ids([]).size == 0


def test_text_round_trip_and_no_injection(trained: JointVocabulary) -> None:
    ids = trained.encode_text("The man cuts the onion, slowly.")
    assert trained.cls_id not in ids and trained.sep_id not in ids
    assert trained.decode_text(ids) == "the man cuts the onion, slowly."
    # Special-token strings in corpus text stay text: no separator or visual word sneaks in.
    sneaky = trained.encode_text("the [SEP] onion [V3] [>]")
    assert not set(sneaky) & {trained.sep_id, trained.join_id, trained.visual_offset + 3}
    assert trained.encode_texts(["the onion", "a bowl"]) == [
        trained.encode_text("the onion"),
        trained.encode_text("a bowl"),
    ]
    # Decoding skips specials and visual words.
    mixed = [trained.cls_id, *ids, trained.join_id, *trained.visual_ids([1, 2]), trained.sep_id]
    assert trained.decode_text(np.array(mixed)) == "the man cuts the onion, slowly."


def test_save_load_and_plain_autotokenizer(trained: JointVocabulary, tmp_path: Path) -> None:
    trained.save(tmp_path / "vocab")
    meta = json.loads((tmp_path / "vocab" / VOCABULARY_FILE).read_text())
    assert meta["n_visual"] == 20 and meta["visual_offset"] == 6 and meta["join_token"] == "[>]"

    loaded = JointVocabulary.load(tmp_path / "vocab")
    assert len(loaded) == len(trained)
    assert loaded.text_id_range == trained.text_id_range
    assert loaded.encode_text("the onion") == trained.encode_text("the onion")

    plain = AutoTokenizer.from_pretrained(tmp_path / "vocab")
    assert isinstance(plain, PreTrainedTokenizerFast)
    assert plain.tokenize("cut [V12] [>][V3] onion") == ["cut", "[V12]", "[>]", "[V3]", "onion"]
    enc = plain("the onion [V12]")["input_ids"]
    assert enc[0] == 2 and enc[-1] == 3 and enc[-2] == 6 + 12
    assert plain.mask_token == "[MASK]" and plain.pad_token_id == 0


def test_full_size_codebook_stays_contiguous(tmp_path: Path) -> None:
    """20,736 visual words (k=12, depth 4): the ids and the saved file stay consistent."""
    vocab = train_vocabulary(SENTENCES, n_visual=20736, vocab_size=200)
    assert vocab.visual_range == (6, 6 + 20736)
    vocab.save(tmp_path)
    loaded = JointVocabulary.load(tmp_path)
    last = visual_token(20735)
    assert loaded.tokenizer.convert_tokens_to_ids(last) == 6 + 20735
    assert loaded.tokenizer.tokenize(f"onion {last}") == ["onion", last]


def test_training_errors() -> None:
    with pytest.raises(VidcapError, match="no caption or transcript text"):
        train_vocabulary(["", "   "], n_visual=4)
    with pytest.raises(VidcapError, match="no caption or transcript text"):
        train_vocabulary(iter([]), n_visual=4)
    for bad in (0, -3, 2.5):
        with pytest.raises(VidcapError, match="number of visual words"):
            train_vocabulary(SENTENCES, n_visual=bad)  # type: ignore[arg-type]


def test_generator_corpus_and_cased(tmp_path: Path) -> None:
    vocab = train_vocabulary((s for s in SENTENCES), n_visual=3, vocab_size=100, lowercase=False)
    assert "The" in vocab.tokenizer.tokenize("The man")


def test_load_errors(tmp_path: Path, trained: JointVocabulary) -> None:
    with pytest.raises(
        VidcapError, match=rf"{re.escape(VOCABULARY_FILE)} is missing; copy the model folder"
    ):
        JointVocabulary.load(tmp_path)
    trained.save(tmp_path / "v")
    (tmp_path / "v" / VOCABULARY_FILE).write_text("{not json")
    with pytest.raises(VidcapError, match=r"is damaged \(not valid JSON"):
        JointVocabulary.load(tmp_path / "v")
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / VOCABULARY_FILE).write_text(
        json.dumps({"kind": "trained", "n_visual": 20, "visual_offset": 6, "text_id_range": [0, 1]})
    )
    with pytest.raises(VidcapError, match=r"tokenizer\.json is missing"):
        JointVocabulary.load(tmp_path / "w")


# --------------------------------------------------------------------------------------------------
# Extended pretrained tokenizers


def test_extend_bert(bert_dir: Path, tmp_path: Path) -> None:
    base = AutoTokenizer.from_pretrained(bert_dir)
    vocab = extend_pretrained(bert_dir, n_visual=50)
    assert vocab.kind == "extended" and vocab.base == str(bert_dir)
    # The base keeps its ids; [>] and the visual words follow, contiguous.
    assert vocab.join_id == len(base)
    assert (
        vocab.visual_range == (len(base) + 1, len(base) + 51) == (vocab.visual_offset, len(vocab))
    )
    assert (vocab.mask_id, vocab.pad_id, vocab.cls_id, vocab.sep_id) == (
        base.mask_token_id,
        base.pad_token_id,
        base.cls_token_id,
        base.sep_token_id,
    )
    # BERT has no bos/eos: BART-style use falls back to [CLS]/[SEP].
    assert (vocab.bos_id, vocab.eos_id) == (vocab.cls_id, vocab.sep_id)
    assert vocab.text_id_range == (5, len(base))
    ids = vocab.encode_text("The man cuts the onion.")
    assert ids == base("The man cuts the onion.", add_special_tokens=False)["input_ids"]
    assert vocab.decode_text([vocab.cls_id, *ids, vocab.join_id, vocab.visual_offset]) == (
        "the man cuts the onion."
    )

    vocab.save(tmp_path / "x")
    plain = AutoTokenizer.from_pretrained(tmp_path / "x")
    assert plain.tokenize("onion [>] [V7][V49]") == ["onion", "[>]", "[V7]", "[V49]"]
    assert plain.convert_tokens_to_ids("[V49]") == len(vocab) - 1
    loaded = JointVocabulary.load(tmp_path / "x")
    assert loaded.visual_range == vocab.visual_range and loaded.kind == "extended"
    # Starting again from a vidcap checkpoint (--init) reuses its vocabulary as it is.
    again = extend_pretrained(tmp_path / "x", n_visual=50)
    assert len(again) == len(vocab)
    with pytest.raises(VidcapError, match="50 visual words"):
        extend_pretrained(tmp_path / "x", n_visual=60)


def test_extend_bart(bart_dir: Path, tmp_path: Path) -> None:
    base = AutoTokenizer.from_pretrained(bart_dir)
    vocab = extend_pretrained(str(bart_dir), n_visual=144)
    assert (vocab.bos_id, vocab.eos_id) == (base.bos_token_id, base.eos_token_id) == (0, 2)
    assert vocab.mask_id == base.mask_token_id == 4
    assert vocab.pad_id == 1 and vocab.unk_id == 3
    assert vocab.join_id == len(base) and vocab.visual_offset == len(base) + 1
    assert len(vocab) == len(base) + 145
    assert vocab.text_id_range == (5, len(base))
    words = np.arange(144)
    assert vocab.tokenizer.convert_tokens_to_ids([visual_token(w) for w in words]) == list(
        vocab.visual_ids(words)
    )
    ids = vocab.encode_text("The man cuts the onion.")
    mixed = [vocab.bos_id, *ids, vocab.join_id, *vocab.visual_ids([3, 4]), vocab.eos_id]
    assert vocab.decode_text(mixed) == "The man cuts the onion."

    vocab.save(tmp_path / "x")
    plain = AutoTokenizer.from_pretrained(tmp_path / "x")
    tokens = plain.tokenize("onion[>][V3][V143]")
    assert tokens[-3:] == ["[>]", "[V3]", "[V143]"]
    assert plain.convert_tokens_to_ids(tokens[-2:]) == [vocab.visual_offset + 3, len(vocab) - 1]
    assert JointVocabulary.load(tmp_path / "x").eos_id == 2


def test_extend_errors(tmp_path: Path, bert_dir: Path, trained: JointVocabulary) -> None:
    with pytest.raises(VidcapError, match="not a tokenizer"):
        extend_pretrained(tmp_path, n_visual=4)  # an empty folder
    with pytest.raises(VidcapError, match="not a tokenizer"):
        extend_pretrained(tmp_path / "missing" / "folder", n_visual=4)
    with pytest.raises(VidcapError, match="number of visual words"):
        extend_pretrained(bert_dir, n_visual=0)
    # A tokenizer that already has vidcap tokens but no vidcap_vocabulary.json is refused.
    trained.tokenizer.save_pretrained(tmp_path / "bare")
    with pytest.raises(VidcapError, match="already has"):
        extend_pretrained(tmp_path / "bare", n_visual=20)
