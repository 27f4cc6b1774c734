"""WordPiece pieces learned the same way on every run (vidcap.text.wordpiece)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from tokenizers import normalizers, pre_tokenizers

from vidcap.text import train_vocabulary
from vidcap.text.wordpiece import count_words, learn_pieces

# Templated captions, like the synthetic corpus's: many pairs occur equally often, so the order of
# equal merges decides the vocabulary.
CAPTIONS = [
    f"a {colour} {shape} {action}"
    for colour in ("red", "green", "blue", "pink")
    for shape in ("circle", "square", "star", "diamond")
    for action in ("grows", "shrinks", "moves left", "moves right", "rotates")
]


def test_words_are_cut_by_the_tokenizers_own_normaliser_and_pre_tokeniser() -> None:
    words = count_words(
        ["The Red circle, grows.", "", "a red circle"],
        normalizers.BertNormalizer(lowercase=True),
        pre_tokenizers.BertPreTokenizer(),
    )
    assert words == {"the": 1, "red": 2, "circle": 2, ",": 1, "grows": 1, ".": 1, "a": 1}


def test_a_large_corpus_is_counted_in_chunks_by_worker_processes_to_the_same_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vidcap.text import wordpiece

    monkeypatch.setattr(wordpiece, "CHUNK_TEXTS", 7)  # 100 texts: 15 chunks
    texts = [f"{CAPTIONS[i % len(CAPTIONS)]}, take {i % 13}. Très bien!" for i in range(100)]
    normalizer, pre_tokenizer = normalizers.BertNormalizer(), pre_tokenizers.BertPreTokenizer()
    one = count_words(iter(texts), normalizer, pre_tokenizer, processes=1)
    two = count_words(iter(texts), normalizer, pre_tokenizer, processes=2)
    assert one == two and list(one) == list(two)  # the same counts, words in the same order
    # 11 words in each text ("a red circle grows" "," "take" "3" "." "tres" "bien" "!"), and one
    # more in the 40 that "move left" or "right"
    assert one["take"] == 100 and one["tres"] == 100 and one["moves"] == 40
    assert sum(one.values()) == 100 * 11 + 40


def test_most_frequent_pair_merges_first_and_ties_go_to_the_text_that_sorts_first() -> None:
    # "a"+"##b" occurs 5 times; "c"+"##d" and "b"+"##b" 3 times each (a tie: "b" sorts first).
    pieces = learn_pieces({"ab": 5, "cd": 3, "bb": 3}, size=100, min_frequency=1)
    alphabet = ["##a", "##b", "##c", "##d", "a", "b", "c", "d"]
    assert pieces == [*alphabet, "ab", "bb", "cd"]
    # the size counts the alphabet: room for one merge, the most frequent
    assert learn_pieces({"ab": 5, "cd": 3, "bb": 3}, size=9, min_frequency=1) == [*alphabet, "ab"]
    # a pair rarer than min_frequency never merges
    assert learn_pieces({"ab": 5, "cd": 3, "bb": 3}, size=100, min_frequency=4) == [
        *alphabet,
        "ab",
    ]


def test_merges_build_on_merges_and_keep_continuation() -> None:
    pieces = learn_pieces({"grows": 4, "rows": 4, "shrinks": 2}, size=100, min_frequency=2)
    assert "grows" in pieces and "rows" in pieces
    assert "##rows" in pieces  # "g" + "##rows": the inside of a word stays a continuing piece
    assert pieces.index("##rows") < pieces.index("grows")


def test_the_pieces_do_not_depend_on_the_order_words_come_in() -> None:
    words = dict(
        count_words(CAPTIONS, normalizers.BertNormalizer(), pre_tokenizers.BertPreTokenizer())
    )
    shuffled = list(words.items())
    random.Random(1).shuffle(shuffled)
    assert learn_pieces(words, 60, 2) == learn_pieces(dict(shuffled), 60, 2)


def _pieces_by_recounting(words: dict[str, int], size: int, min_frequency: int) -> list[str]:
    """The rule, plainly: recount every pair before each merge (slow, obviously right)."""
    spelled = {w: [w[0], *("##" + c for c in w[1:])] for w in words}
    letters = {c for w in words for c in w}
    pieces = sorted(letters | {"##" + c for c in letters})
    while len(pieces) < size:
        counts: dict[tuple[str, str], int] = {}
        for word, parts in spelled.items():
            for pair in pairwise(parts):
                counts[pair] = counts.get(pair, 0) + words[word]
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        if counts[pair] < min_frequency:
            break
        merged = pair[0] + pair[1][2:]
        if merged not in pieces:
            pieces.append(merged)
        for word, parts in spelled.items():
            out, i = [], 0
            while i < len(parts):
                if parts[i : i + 2] == list(pair):
                    out.append(merged)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            spelled[word] = out
    return pieces


def test_the_pieces_are_those_of_recounting_every_pair_before_each_merge() -> None:
    """The fast learner (pair index, heap of possibly stale counts) follows the plain rule."""
    rng = random.Random(7)
    for trial in range(12):
        letters = "abcdeé"[: 2 + trial % 5]
        words = {
            "".join(rng.choice(letters) for _ in range(rng.randint(1, 7))): rng.randint(1, 9)
            for _ in range(rng.randint(5, 60))
        }
        size, min_frequency = rng.randint(5, 80), rng.randint(1, 3)
        assert learn_pieces(words, size, min_frequency) == _pieces_by_recounting(
            words, size, min_frequency
        ), (words, size, min_frequency)


def test_training_twice_in_separate_processes_gives_the_same_vocabulary(tmp_path: Path) -> None:
    # tokenizers' own WordPiece trainer breaks ties in hash-map order, which changes per process
    # (huggingface/tokenizers#1794): each process here has its own hash seed as well.
    script = (
        "import sys; from vidcap.text import train_vocabulary; "
        "lines = open(sys.argv[1]).read().splitlines(); "
        "train_vocabulary(lines, n_visual=8, vocab_size=60).save(sys.argv[2])"
    )
    corpus = tmp_path / "captions.txt"
    corpus.write_text("\n".join(CAPTIONS), encoding="utf-8")
    saved = []
    for run in range(3):
        out = tmp_path / f"vocab{run}"
        env = {**os.environ, "PYTHONHASHSEED": str(run)}
        subprocess.run([sys.executable, "-c", script, corpus, out], check=True, env=env)
        saved.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert saved[0] == saved[1] == saved[2]


def test_a_trained_vocabulary_spells_words_with_its_pieces() -> None:
    vocab = train_vocabulary(CAPTIONS, n_visual=8, vocab_size=200)
    pieces = vocab.tokenizer.tokenize("a pink diamond shrinks")
    assert "".join(p.removeprefix("##") for p in pieces) == "apinkdiamondshrinks"
    assert "[UNK]" not in pieces
    assert vocab.tokenizer.tokenize("a red star") == ["a", "red", "star"]
    # a word never seen, of characters seen only inside words ("w" in "yellow"), is spelled
    assert "[UNK]" not in vocab.tokenizer.tokenize("we wow")
