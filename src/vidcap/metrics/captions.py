"""Caption metrics as coco-caption computes them.

:func:`caption_scores` gives BLEU-1..4, METEOR, ROUGE-L and CIDEr(-D) with the pycocoevalcap scorers,
over all segments at once (each key is one segment), as the coco-caption, YouCook2 and ActivityNet
evaluations do, so numbers are comparable with published ones. :func:`reference_ceiling` scores
the references against each other: what a captioner that writes like a human annotator would get.
:func:`vidcap.synth.facts.fact_accuracy` checks, on the synthetic corpus, whether captions name the
right colour, shape and action, which n-gram metrics only measure indirectly.

METEOR and the PTB tokenizer run in Java. Without Java, METEOR is left out and a Python
approximation of the tokenizer is used; :attr:`CaptionScores.notices` says so.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer import ptbtokenizer

from vidcap.errors import VidcapError

__all__ = [
    "CaptionScores",
    "caption_scores",
    "java_available",
    "meteor_compute",
    "meteor_process",
    "quiet",
    "reference_ceiling",
    "tokenize",
]


@lru_cache(maxsize=1)
def java_available() -> bool:
    """Whether a working ``java`` is on PATH (checked once per process).

    Running ``java -version`` rather than only finding the file catches stubs that are on PATH but
    cannot run anything, such as macOS's ``/usr/bin/java`` without a JDK installed.
    """
    java = shutil.which("java")
    if java is None:
        return False
    try:
        result = subprocess.run([java, "-version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@dataclass
class CaptionScores:
    """Corpus-level caption metrics; ``meteor`` is None when it was not computed.

    Attributes:
        count: number of scored items (segments, or reference pairs for a ceiling).
        notices: what the reader should know about how the scores were computed, e.g.
            ``"METEOR skipped: Java not found."``.
    """

    bleu1: float
    bleu2: float
    bleu3: float
    bleu4: float
    meteor: float | None
    rouge_l: float
    cider: float
    count: int
    notices: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, float | None]:
        """The seven metrics under their usual names (``BLEU-1`` ... ``CIDEr``)."""
        return {
            "BLEU-1": self.bleu1,
            "BLEU-2": self.bleu2,
            "BLEU-3": self.bleu3,
            "BLEU-4": self.bleu4,
            "METEOR": self.meteor,
            "ROUGE-L": self.rouge_l,
            "CIDEr": self.cider,
        }


# --------------------------------------------------------------------------------------------------
# Tokenization


class _TokenizerError(Exception):
    """The Java PTB tokenizer did not produce one line per caption."""


# Characters a Java reader takes as a line break: each caption must stay on one line, or the
# tokenized lines no longer line up with the captions (coco-caption only replaces "\n").
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]")


def _ptb_tokenize(texts: list[str]) -> list[str]:
    """Tokenize like coco-caption's ``PTBTokenizer``: lowercase PTB tokens, punctuation dropped.

    The same jar, options and punctuation list as ``PTBTokenizer.tokenize``, but the text goes
    through stdin instead of a temporary file written next to the jar (which fails when
    site-packages is read-only), and Java's "PTBTokenizer tokenized N tokens" line on stderr is
    captured instead of reaching the user's terminal.
    """
    jar = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
    cmd = ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer"]
    cmd += ["-preserveLines", "-lowerCase"]
    lines = "".join(_LINE_BREAKS.sub(" ", text) + "\n" for text in texts)
    try:
        result = subprocess.run(cmd, input=lines.encode(), capture_output=True, check=False)
    except OSError as e:
        raise _TokenizerError(str(e)) from None
    out = result.stdout.decode("utf-8", errors="replace").split("\n")
    if result.returncode != 0 or len(out) < len(texts):
        error = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise _TokenizerError(error[-1] if error else f"exit status {result.returncode}")
    drop = set(ptbtokenizer.PUNCTUATIONS)
    return [
        " ".join(w for w in line.rstrip().split(" ") if w not in drop) for line in out[: len(texts)]
    ]


# PTB splits these clitics off their word: "don't" -> "do n't", "man's" -> "man 's".
_CLITIC = re.compile(r"(?<=\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
# A number keeps its separators ("3,000", "10:30"), a word its inner hyphens, apostrophes and dots
# ("well-known", "o'clock"), an abbreviation its final dot ("e.g."); any other non-space
# character is a token of its own.
_TOKEN = re.compile(r"'(?:s|re|ve|ll|d|m)\b|\d+(?:[,.:]\d+)+|\w+(?:[-'.&]\w+)*\.?|\.\.\.|--|\S")
_ABBREVIATION = re.compile(r"(?:\w\.){2,}")
# PTB writes brackets as -LRB- etc. With -lowerCase these come out lowercase, and coco-caption's
# punctuation list only has the uppercase forms, so it keeps them as words: so do we.
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
# PTB turns double quotes into `` and '', which coco-caption drops.
_FALLBACK_DROP = frozenset(ptbtokenizer.PUNCTUATIONS) | {'"'}


def _fallback_tokenize(texts: list[str]) -> list[str]:
    """A pure-Python approximation of :func:`_ptb_tokenize` for when Java is missing.

    It agrees with PTB on plain sentences (lowercase words, commas, full stops, quotes, brackets,
    common contractions); rarer constructs such as dates or URLs may tokenize differently.
    """
    tokenized = []
    for text in texts:
        tokens = []
        for token in _TOKEN.findall(_CLITIC.sub(r" \1 ", text.lower())):
            if token[0].isalnum() and token.endswith(".") and not _ABBREVIATION.fullmatch(token):
                tokens += [token[:-1], "."]  # a full stop, not part of the word
            else:
                tokens.append(_BRACKETS.get(token, token))
        tokenized.append(" ".join(t for t in tokens if t not in _FALLBACK_DROP))
    return tokenized


def tokenize(texts: list[str], notices: list[str]) -> list[str]:
    """PTB-tokenize ``texts`` in one Java run as coco-caption does (lowercase, punctuation dropped),
    or approximate it in Python when Java is missing or fails; the reason is appended to
    ``notices``."""
    if java_available():
        try:
            return _ptb_tokenize(texts)
        except _TokenizerError as e:
            notices.append(
                f"The Java PTB tokenizer failed ({e}); captions were tokenized with a Python "
                "approximation, so scores may differ slightly from coco-caption's."
            )
    else:
        notices.append(
            "Java not found: captions were tokenized with a Python approximation of the PTB "
            "tokenizer, so scores may differ slightly from coco-caption's."
        )
    return _fallback_tokenize(texts)


# --------------------------------------------------------------------------------------------------
# Scoring


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow what the scorers print (BLEU's ``{'testlen': ...}`` and the like)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


# The scorer of the outermost open meteor_process() block, which nested blocks reuse.
_open_meteor: list[Meteor] = []


@contextlib.contextmanager
def meteor_process() -> Iterator[Meteor]:
    """A METEOR Java process for any number of :func:`meteor_compute` calls, stopped at the end.

    Starting Java and loading METEOR's paraphrase table takes seconds, so a block nested inside
    another reuses the outer block's process, and only the outermost block stops it.

    Raises:
        OSError: Java could not be started.
    """
    if _open_meteor:
        yield _open_meteor[-1]
        return
    scorer = Meteor()
    _open_meteor.append(scorer)
    try:
        yield scorer
    finally:
        _open_meteor.pop()
        # Stop Java now rather than whenever the scorer is garbage collected: it holds a 2 GB heap.
        process = scorer.meteor_p
        with contextlib.suppress(OSError):
            process.stdin.close()
        process.kill()
        process.wait()


def meteor_compute(
    scorer: Meteor, gts: dict[Any, list[str]], res: dict[Any, list[str]]
) -> tuple[float, list[float]]:
    """pycocoevalcap's ``Meteor.compute_score`` on tokenized captions: the METEOR of the whole set
    (statistics pooled over its items) and each item's own score, in ``gts``'s key order.

    Raises:
        OSError, ValueError: Java failed (e.g. it died or ran out of memory).
    """
    try:
        with quiet():
            score, scores = scorer.compute_score(gts, res)
    finally:
        # compute_score keeps its lock when it raises, and the next call (or Meteor.__del__) takes
        # that lock first: release it, or they would hang.
        if scorer.lock.locked():
            scorer.lock.release()
    return float(score), [float(s) for s in scores]


def _meteor_score(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    """Corpus METEOR from a METEOR Java process (see :func:`meteor_process`).

    Raises:
        OSError, ValueError: Java failed (e.g. it could not start or ran out of memory).
    """
    with meteor_process() as scorer:
        return meteor_compute(scorer, gts, res)[0]


def _validate(hypotheses: dict[str, str], references: dict[str, list[str]]) -> None:
    if not hypotheses:
        raise VidcapError("There are no captions to score: give at least one hypothesis.")
    missing = [key for key in hypotheses if key not in references]
    if missing:
        raise VidcapError(
            f"{len(missing)} hypotheses have no references (first: {missing[0]!r}); every "
            "hypothesis key must also be a reference key."
        )
    for key in hypotheses:
        if not isinstance(hypotheses[key], str):
            raise VidcapError(f"The hypothesis for {key!r} must be a string.")
        refs = references[key]
        if isinstance(refs, str) or not refs:
            raise VidcapError(f"{key!r} needs a non-empty list of reference captions.")
        if not all(isinstance(ref, str) for ref in refs):
            raise VidcapError(f"The reference captions of {key!r} must all be strings.")


def caption_scores(
    hypotheses: dict[str, str], references: dict[str, list[str]], meteor: bool = True
) -> CaptionScores:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of ``hypotheses``, as coco-caption computes them.

    Each key is one segment with one generated caption and its reference captions. All segments
    are scored at once (micro-average): BLEU pools n-gram counts over segments, ROUGE-L and CIDEr
    average per-segment scores, METEOR pools its statistics, and CIDEr's IDF weights come from
    the references of the scored segments, so scores depend on the whole set (CIDEr is 0 for a
    single segment). Captions are PTB-tokenized and lowercased first, as in coco-caption.

    An empty hypothesis is scored as it is (0 or close to it): the pycocoevalcap 1.2 scorers
    accept empty strings, so none is replaced by a stand-in word. References of keys that have no
    hypothesis are ignored.

    Args:
        hypotheses: segment key -> generated caption.
        references: segment key -> reference captions (at least one per hypothesis key).
        meteor: compute METEOR (starts Java and loads its paraphrase table: a few seconds).

    Raises:
        VidcapError: no hypotheses, a hypothesis key without references, or an empty reference
            list.
    """
    _validate(hypotheses, references)
    keys = list(hypotheses)
    notices: list[str] = []

    # One tokenizer run for every caption: each Java start costs about half a second.
    texts = [hypotheses[k] for k in keys] + [ref for k in keys for ref in references[k]]
    tokens = iter(tokenize(texts, notices))
    res = {k: [next(tokens)] for k in keys}
    gts = {k: [next(tokens) for _ in references[k]] for k in keys}

    with quiet():
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        rouge_l, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
    if len(keys) == 1:
        notices.append("CIDEr is 0 for a single segment: its word weights come from the set.")

    meteor_score = None
    if meteor and not java_available():
        notices.append("METEOR skipped: Java not found.")
    elif meteor:
        try:
            meteor_score = _meteor_score(gts, res)
        except (OSError, ValueError) as e:
            notices.append(f"METEOR skipped: its Java process failed ({e}).")

    return CaptionScores(
        bleu1=float(bleu[0]),
        bleu2=float(bleu[1]),
        bleu3=float(bleu[2]),
        bleu4=float(bleu[3]),
        meteor=meteor_score,
        rouge_l=float(rouge_l),
        cider=float(cider),
        count=len(keys),
        notices=notices,
    )


def reference_ceiling(references: dict[str, list[str]], meteor: bool = True) -> CaptionScores:
    """How well one human reference scores against the others: a ceiling for a captioner.

    Leave-one-out: for every segment with at least two references, and every reference of it,
    that reference is the hypothesis and the segment's other references are its references. All
    these items are scored together with :func:`caption_scores`; ``count`` is their number.
    Segments with a single reference are skipped. A captioner is scored against one reference
    more than these items are, so the ceiling is slightly conservative (BLEU rises with the
    number of references).

    Raises:
        VidcapError: no segment has two or more references.
    """
    hypotheses: dict[str, str] = {}
    held_out: dict[str, list[str]] = {}
    segments = 0
    for refs in references.values():
        if len(refs) < 2:
            continue
        segments += 1
        for i, ref in enumerate(refs):
            key = str(len(hypotheses))  # segment keys may be anything; these are unique
            hypotheses[key] = ref
            held_out[key] = refs[:i] + refs[i + 1 :]
    if not hypotheses:
        raise VidcapError(
            "The reference ceiling needs segments with at least two reference captions; none has."
        )
    scores = caption_scores(hypotheses, held_out, meteor=meteor)
    skipped = len(references) - segments
    if skipped:
        scores.notices.append(
            f"{skipped} of {len(references)} segments have a single reference and were skipped."
        )
    return scores
