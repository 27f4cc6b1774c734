"""WordPiece pieces learned the same way on every run.

`tokenizers`' ``WordPieceTrainer`` learns pieces as BPE merges, but gives the continuing pieces
("##s") their ids in hash-map order and breaks ties between equally frequent merges by those ids,
so training twice on the same text gives different vocabularies (huggingface/tokenizers#1794; the
fix, #2066, is not released). A vocabulary that changes from run to run changes the model trained
on it: four `vidcap pretrain` runs on the same visual words and text gave four vocabularies, and
captioners finetuned from them scored CIDEr 1.64 to 1.76 on the demo's test split.

The merges are learned here, by hand, with the same rule and a fixed tie-break: the most frequent
adjacent pair of pieces merges first, and of equally frequent pairs the one whose text sorts first.
Words come from the tokenizer's own normaliser and pre-tokeniser, and the pieces are given to
`tokenizers`' WordPiece model, which tokenises with them exactly as it does with trained ones.
"""

from __future__ import annotations

import collections
import concurrent.futures
import heapq
import itertools
import multiprocessing
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from itertools import pairwise
from typing import Any

CONTINUING = "##"
"""The prefix of a piece that continues a word (WordPiece's, and BERT's)."""

Pair = tuple[str, str]


def count_words(
    texts: Iterable[str], normalizer: Any, pre_tokenizer: Any, processes: int | None = None
) -> Counter[str]:
    """How often each word occurs in ``texts``, the words as ``normalizer`` and ``pre_tokenizer``
    (a `tokenizers` normaliser and pre-tokeniser) cut them.

    ``texts`` is read once, in chunks of :data:`CHUNK_TEXTS`; a corpus of more than one chunk is
    counted by ``processes`` worker processes (default: one per CPU core this process may use;
    1: here), at most two chunks each in memory at a time. The counts are the same either way.
    """
    chunks = _chunks(texts, CHUNK_TEXTS)
    head = list(itertools.islice(chunks, 2))  # one chunk only: no processes to start
    chunks = itertools.chain(head, chunks)
    if processes is None:
        processes = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    counts: Counter[str] = Counter()
    if len(head) < 2 or processes <= 1:
        for chunk in chunks:
            counts.update(_count_chunk(chunk, normalizer, pre_tokenizer))
        return counts
    # `spawn`: the caller may hold threads (torch), which a fork would copy in an unknown state.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        waiting: collections.deque[concurrent.futures.Future[Counter[str]]] = collections.deque()
        for chunk in chunks:
            waiting.append(pool.submit(_count_chunk, chunk, normalizer, pre_tokenizer))
            while len(waiting) >= 2 * processes:
                counts.update(waiting.popleft().result())
        while waiting:
            counts.update(waiting.popleft().result())
    return counts


CHUNK_TEXTS = 20_000
"""Texts counted together by :func:`count_words` (a few MB of transcript lines)."""


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _count_chunk(texts: list[str], normalizer: Any, pre_tokenizer: Any) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        words = pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
        counts.update(word for word, _ in words)
    return counts


def learn_pieces(word_counts: Mapping[str, int], size: int, min_frequency: int) -> list[str]:
    """The pieces of a WordPiece vocabulary of about ``size``: every character seen, as a word's
    start and inside a word, then the merged pieces in the order they were learned.

    A pair of adjacent pieces merges when it occurs at least ``min_frequency`` times (counted over
    the words, each as often as it occurs); the most frequent first, ties to the pair whose text
    sorts first. Learning stops at ``size`` pieces or when no pair is frequent enough; the
    characters are kept even when they alone exceed ``size`` (without them words become [UNK]).
    """
    words = [_spell(word) for word in word_counts]
    counts = list(word_counts.values())
    # Every character seen, both as a word's start and inside a word, so that any word made of
    # them can be spelled (a character seen only inside words may start a new one).
    characters = {c for word in word_counts for c in word}
    pieces = sorted(characters | {CONTINUING + c for c in characters})
    known = set(pieces)
    pair_counts: Counter[Pair] = Counter()
    where: defaultdict[Pair, set[int]] = defaultdict(set)
    for i, spelled in enumerate(words):
        for pair in pairwise(spelled):
            pair_counts[pair] += counts[i]
            where[pair].add(i)
    # A max-heap by count, then by text. Every pair has an entry at least as high as its count:
    # a merge pushes the pairs it made more frequent; an entry higher than its pair's count (the
    # pair was made rarer since) is stale, and goes back in at the pair's count when it comes out.
    heap = [(-n, pair) for pair, n in pair_counts.items()]
    heapq.heapify(heap)
    while heap and len(pieces) < size:
        negative, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -negative:
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < min_frequency:
            break
        merged = pair[0] + pair[1][len(CONTINUING) :]
        if merged not in known:
            known.add(merged)
            pieces.append(merged)
        # The change in every pair's count from this merge, applied once it is known: the pairs
        # a word keeps around its merged ones cancel out and are neither touched nor pushed.
        delta: defaultdict[Pair, int] = defaultdict(int)
        for i in where.pop(pair, ()):
            before = words[i]
            after = _merge(before, pair, merged)
            before_pairs, new_pairs = list(pairwise(before)), list(pairwise(after))
            for old in before_pairs:
                delta[old] -= counts[i]
            old_pairs = set(before_pairs)
            for new in new_pairs:
                delta[new] += counts[i]
                if new not in old_pairs:
                    where[new].add(i)
            for gone in old_pairs.difference(new_pairs):
                where[gone].discard(i)
            words[i] = after
        del pair_counts[pair]
        delta.pop(pair, None)
        for other, change in delta.items():
            if change == 0:
                continue
            now = pair_counts[other] + change
            if now > 0:
                pair_counts[other] = now
                if change > 0:
                    heapq.heappush(heap, (-now, other))
            else:
                del pair_counts[other]
                where.pop(other, None)
    return pieces


def _spell(word: str) -> list[str]:
    """``word`` as its characters: the first as it is, the others continuing it."""
    return [word[0], *(CONTINUING + c for c in word[1:])] if word else []


def _merge(spelled: list[str], pair: Pair, merged: str) -> list[str]:
    """``spelled`` with every occurrence of ``pair``, left to right, made one piece."""
    out: list[str] = []
    i = 0
    while i < len(spelled):
        if i + 1 < len(spelled) and (spelled[i], spelled[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(spelled[i])
            i += 1
    return out
