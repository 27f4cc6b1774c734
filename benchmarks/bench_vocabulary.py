"""How long learning a vocabulary takes on a large transcript-like corpus, against `tokenizers`.

Makes ``--lines`` lines of 12 words drawn from ``--types`` made-up words with Zipf frequencies
(as words in transcripts are), then times, twice (the best of 2):

- ``count_words`` in one process and on every core this process may use (the counts must agree);
- ``learn_pieces`` to a ``--size``-piece vocabulary (once);
- `tokenizers`' ``WordPieceTrainer`` on the same lines (counting and merging, multithreaded; the
  trainer vidcap does not use, because its vocabulary changes from run to run).

    python benchmarks/bench_vocabulary.py [--lines 500000] [--types 2000000] [--size 30000]
"""

from __future__ import annotations

import argparse
import time


def corpus(lines: int, types: int, seed: int = 0) -> list[str]:
    """``lines`` lines of 12 words, the words from ``types`` made-up ones with Zipf frequencies."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    letter_p = 1 / np.arange(1, len(letters) + 1) ** 0.9
    letter_p /= letter_p.sum()
    words = ["".join(rng.choice(letters, n, p=letter_p)) for n in rng.integers(2, 12, types)]
    zipf = 1 / np.arange(1, types + 1) ** 1.05
    ids = rng.choice(types, size=(lines, 12), p=zipf / zipf.sum())
    return [" ".join(words[i] for i in row) + "." for row in ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--types", type=int, default=2_000_000)
    parser.add_argument("--size", type=int, default=30_000)
    args = parser.parse_args()

    # Imported here: the counting processes are spawned, and run this file's top level again.
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    from vidcap.text.wordpiece import count_words, learn_pieces

    texts = corpus(args.lines, args.types)
    print(f"{args.lines} lines, {args.lines * 12 / 1e6:.1f} M words, vocabulary {args.size}")
    normalizer, pre_tokenizer = normalizers.BertNormalizer(), pre_tokenizers.BertPreTokenizer()
    times: dict[str, list[float]] = {"one process": [], "every core": [], "tokenizers": []}
    for repeat in range(2):
        counted = []
        for key, processes in (("one process", 1), ("every core", None)):
            started = time.perf_counter()
            counted.append(count_words(texts, normalizer, pre_tokenizer, processes=processes))
            times[key].append(time.perf_counter() - started)
        if counted[0] != counted[1]:
            raise SystemExit("the counts differ between one process and every core")
        if repeat == 0:
            started = time.perf_counter()
            learn_pieces(counted[0], args.size, 2)
            learning = time.perf_counter() - started
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
        trainer = trainers.WordPieceTrainer(
            vocab_size=args.size, min_frequency=2, show_progress=False
        )
        started = time.perf_counter()
        tokenizer.train_from_iterator(texts, trainer)
        times["tokenizers"].append(time.perf_counter() - started)
    print(f"{len(counted[0])} word types")
    print(f"count_words, one process:   {min(times['one process']):7.1f} s")
    print(f"count_words, every core:    {min(times['every core']):7.1f} s")
    print(f"learn_pieces:               {learning:7.1f} s")
    print(f"tokenizers' WordPieceTrainer: {min(times['tokenizers']):5.1f} s (count and merge)")


if __name__ == "__main__":
    main()
