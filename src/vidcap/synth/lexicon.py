"""The vocabulary of the synthetic corpus: colours, shapes, actions and the words used for them.

Every reference caption names its facts with words from these tables, so an evaluator can read back
which colour, shape and action a caption (or a generated one) names with :func:`find_mentions`.
Synonyms are unique across entries: a word names one canonical colour, shape or action only.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Saturated colours (BGR, as OpenCV draws them). Hues are at least ~30 degrees apart, so a pixel's
# hue tells them apart even after video compression and noise.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (36, 28, 237),
    "orange": (0, 140, 255),
    "yellow": (0, 225, 250),
    "green": (40, 190, 20),
    "cyan": (230, 220, 0),
    "blue": (230, 80, 20),
    "purple": (200, 30, 140),
    "pink": (190, 100, 255),
}

# Canonical colour -> words used for it in captions (the canonical word first).
COLOUR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange", "amber", "tangerine"),
    "yellow": ("yellow", "golden", "lemon"),
    "green": ("green", "emerald", "jade"),
    "cyan": ("cyan", "turquoise", "aqua"),
    "blue": ("blue", "azure", "cobalt"),
    "purple": ("purple", "violet", "amethyst"),
    "pink": ("pink", "magenta", "fuchsia"),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "hexagon")

SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "dot"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "wedge"),
    "star": ("star",),
    "diamond": ("diamond", "rhombus", "lozenge"),
    "hexagon": ("hexagon",),
}

ACTIONS: tuple[str, ...] = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "grow",
    "shrink",
    "rotate",
    "bounce",
    "stay",
)

# Canonical action -> (present tense, gerund) phrase pairs; the first pair is the canonical one and
# its present form is the answer to action questions.
ACTION_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "move_left": (
        ("moves left", "moving left"),
        ("moves to the left", "moving to the left"),
        ("slides to the left", "sliding to the left"),
        ("travels leftward", "travelling leftward"),
        ("glides left", "gliding left"),
    ),
    "move_right": (
        ("moves right", "moving right"),
        ("moves to the right", "moving to the right"),
        ("slides to the right", "sliding to the right"),
        ("travels rightward", "travelling rightward"),
        ("glides right", "gliding right"),
    ),
    "move_up": (
        ("moves up", "moving up"),
        ("rises", "rising"),
        ("slides upward", "sliding upward"),
        ("travels up", "travelling up"),
        ("floats upward", "floating upward"),
    ),
    "move_down": (
        ("moves down", "moving down"),
        ("sinks", "sinking"),
        ("slides downward", "sliding downward"),
        ("descends", "descending"),
        ("drops down", "dropping down"),
    ),
    "grow": (
        ("grows", "growing"),
        ("gets bigger", "getting bigger"),
        ("expands", "expanding"),
        ("becomes larger", "becoming larger"),
        ("increases in size", "increasing in size"),
    ),
    "shrink": (
        ("shrinks", "shrinking"),
        ("gets smaller", "getting smaller"),
        ("contracts", "contracting"),
        ("becomes smaller", "becoming smaller"),
        ("decreases in size", "decreasing in size"),
    ),
    "rotate": (
        ("rotates", "rotating"),
        ("spins", "spinning"),
        ("turns around", "turning around"),
        ("spins in place", "spinning in place"),
        ("rotates in place", "rotating in place"),
    ),
    "bounce": (
        ("bounces", "bouncing"),
        ("bounces up and down", "bouncing up and down"),
        ("hops", "hopping"),
        ("jumps up and down", "jumping up and down"),
    ),
    "stay": (
        ("stays still", "staying still"),
        ("does not move", "not moving"),
        ("remains motionless", "remaining motionless"),
        ("stays in place", "staying in place"),
        ("sits still", "sitting still"),
    ),
}

# Canonical action -> every phrase that names it in captions (present and gerund forms).
ACTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    action: tuple(dict.fromkeys(p for pair in pairs for p in pair))
    for action, pairs in ACTION_PHRASES.items()
}

# A circle looks the same at every angle, so it never gets the rotate action.
ROTATION_INVARIANT_SHAPES: frozenset[str] = frozenset({"circle"})


def canonical_phrase(action: str) -> str:
    """The canonical present-tense phrase for an action, e.g. ``"moves left"``."""
    return ACTION_PHRASES[action][0][0]


@dataclass(frozen=True)
class Mentions:
    """The canonical colours, shapes and actions a text names."""

    colours: frozenset[str]
    shapes: frozenset[str]
    actions: frozenset[str]


@lru_cache(maxsize=1)
def _phrase_table() -> list[tuple[re.Pattern[str], str, str]]:
    """(pattern, kind, canonical) for every synonym, longest phrase first.

    Longest first so that "bounces up and down" is read as a bounce and not as moving up/down.
    """
    entries: list[tuple[str, str, str]] = []
    for kind, table in (
        ("colour", COLOUR_SYNONYMS),
        ("shape", SHAPE_SYNONYMS),
        ("action", ACTION_SYNONYMS),
    ):
        for canonical, words in table.items():
            entries.extend((word, kind, canonical) for word in words)
    entries.sort(key=lambda e: (-len(e[0]), e[0]))
    return [(re.compile(rf"\b{re.escape(w)}\b"), kind, canonical) for w, kind, canonical in entries]


def find_mentions(text: str) -> Mentions:
    """Which canonical colours, shapes and actions ``text`` names (case-insensitive).

    Matched phrases are blanked out as they are found, longest first, so overlapping phrases count
    once. Note that a two-object caption may name the idle object with a ``stay`` phrase ("while the
    blue square stays still"), so ``stay`` can appear next to the actor's action.
    """
    rest = text.lower()
    found: dict[str, set[str]] = {"colour": set(), "shape": set(), "action": set()}
    for pattern, kind, canonical in _phrase_table():
        if pattern.search(rest):
            found[kind].add(canonical)
            rest = pattern.sub(" ", rest)
    return Mentions(
        frozenset(found["colour"]), frozenset(found["shape"]), frozenset(found["action"])
    )


# --------------------------------------------------------------------------------------------------
# The caption grammar: sentences built from the facts of an event, with synonyms drawn at random.


@dataclass(frozen=True)
class EventFacts:
    """What happens in one event: who acts, how, and which objects stay still meanwhile."""

    colour: str
    shape: str
    action: str
    others: tuple[tuple[str, str], ...] = ()  # (colour, shape) of the idle objects


# Sentence templates for one event. ``{a}``/``{the}``: the actor's noun phrase with its article;
# ``{vp}``: present tense ("moves left"); ``{ving}``: gerund ("moving left"). The first template,
# filled with canonical words, is every segment's first caption.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "{a} {vp}",
    "{the} {vp}",
    "there is {a} that {vp}",
    "we see {a} {ving}",
    "{a} is {ving}",
    "the video shows {a} {ving}",
    "{a} can be seen {ving}",
    "here {the} {vp}",
)

# Clauses naming an idle object: while the actor moves, or next to an actor that also stays still.
_IDLE_WHILE_MOVING = (
    " while {o_the} stays still",
    " while {o_a} does not move",
    " and {o_the} stays in place",
    " next to {o_a}",
    " as {o_the} remains motionless",
)
_IDLE_WHILE_STILL = (" next to {o_a}", " beside {o_the}", " near {o_a}")

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")


def _with_article(noun_phrase: str) -> str:
    """``a``/``an`` before a noun phrase ("an orange circle", "an amber box")."""
    return ("an " if noun_phrase[0] in "aeiou" else "a ") + noun_phrase


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _noun_phrase(rng: np.random.Generator, colour: str, shape: str, canonical: bool) -> str:
    if canonical:
        return f"{colour} {shape}"
    return f"{_pick(rng, COLOUR_SYNONYMS[colour])} {_pick(rng, SHAPE_SYNONYMS[shape])}"


def _verb_phrases(rng: np.random.Generator, action: str, canonical: bool) -> tuple[str, str]:
    pairs = ACTION_PHRASES[action]
    return pairs[0] if canonical else pairs[int(rng.integers(len(pairs)))]


def event_captions(rng: np.random.Generator, facts: EventFacts, count: int = 5) -> list[str]:
    """``count`` distinct reference captions for one event (lowercase, no final full stop).

    The first uses the canonical words ("a red circle moves left"); the others each use another
    template and random synonyms. With idle objects, the second caption (and about half of the rest)
    also names one of them, as people describing the scene would.
    """
    if not 1 <= count <= len(CAPTION_TEMPLATES):
        raise ValueError(f"count must be in 1..{len(CAPTION_TEMPLATES)}, got {count}")
    order = [0, *(1 + rng.permutation(len(CAPTION_TEMPLATES) - 1))]
    captions: list[str] = []
    for k, template_index in enumerate(order[:count]):
        canonical = k == 0
        noun = _noun_phrase(rng, facts.colour, facts.shape, canonical)
        vp, ving = _verb_phrases(rng, facts.action, canonical)
        text = CAPTION_TEMPLATES[template_index].format(
            a=_with_article(noun), the=f"the {noun}", vp=vp, ving=ving
        )
        if facts.others and (k == 1 or (k > 1 and rng.random() < 0.5)):
            colour, shape = facts.others[int(rng.integers(len(facts.others)))]
            other = _noun_phrase(rng, colour, shape, canonical=False)
            clauses = _IDLE_WHILE_STILL if facts.action == "stay" else _IDLE_WHILE_MOVING
            text += _pick(rng, clauses).format(o_a=_with_article(other), o_the=f"the {other}")
        captions.append(text)
    # Distinct templates give distinct sentences; this guards the promise if templates change.
    if len(set(captions)) != len(captions):
        raise AssertionError(f"duplicate captions generated: {captions}")
    return captions


def _summary_clauses(
    rng: np.random.Generator, events: list[EventFacts], canonical: bool, gerund: bool
) -> list[tuple[str, str]]:
    """(subject, verb phrase) per event; an object is "a ..." when first named, then "the ...".

    Each object keeps the same words throughout one summary, so the clauses read as one story;
    outside canonical summaries an object acting twice in a row is sometimes just "it".
    """
    nouns: dict[tuple[str, str], str] = {}
    clauses = []
    previous: tuple[str, str] | None = None
    for facts in events:
        key = (facts.colour, facts.shape)
        if key == previous and not canonical and not gerund and rng.random() < 0.5:
            subject = "it"
        elif key in nouns:
            subject = f"the {nouns[key]}"
        else:
            nouns[key] = _noun_phrase(rng, facts.colour, facts.shape, canonical)
            subject = _with_article(nouns[key])
        vp, ving = _verb_phrases(rng, facts.action, canonical)
        clauses.append((subject, ving if gerund else vp))
        previous = key
    return clauses


def _sequence(clauses: list[tuple[str, str]], first: str, then: str, last: str) -> str:
    """Join clauses as ``{first}c1, {then}c2, ..., {last}cN``."""
    texts = [f"{subject} {verb}" for subject, verb in clauses]
    if len(texts) == 1:
        return first + texts[0]
    middle = "".join(f", {then}{t}" for t in texts[1:-1])
    return f"{first}{texts[0]}{middle}, {last}{texts[-1]}"


def video_summaries(rng: np.random.Generator, events: list[EventFacts]) -> list[str]:
    """Four distinct whole-video summaries, the first in canonical words.

    e.g. "a red circle moves left, then a blue square grows" and "first the crimson disc slides to
    the left, and then the azure box gets bigger". Each uses a different sentence frame, so they
    are distinct whatever synonyms are drawn.
    """
    if not events:
        raise ValueError("a summary needs at least one event")
    plain = _summary_clauses(rng, events, canonical=True, gerund=False)
    ordered = _summary_clauses(rng, events, canonical=False, gerund=False)
    shown = _summary_clauses(rng, events, canonical=False, gerund=True)
    framed = _summary_clauses(rng, events, canonical=False, gerund=False)
    if len(events) == 1:
        subject, verb = framed[0]
        return [
            _sequence(plain, "", "", ""),
            _sequence(ordered, "in this video ", "", ""),
            _sequence(shown, "the video shows ", "", ""),
            f"there is {subject} that {verb}",
        ]
    last = "and then " if len(events) == 2 else "and finally "
    return [
        _sequence(plain, "", "then ", "then "),
        _sequence(ordered, "first ", "then ", last),
        _sequence(shown, "the video shows ", "then ", "then "),
        _sequence(framed, "at the start ", "then ", "and at the end "),
    ]


# --------------------------------------------------------------------------------------------------
# Narration: how someone talking over the video would say it, as an ASR system would write it down.

_SPOKEN_ACTIONS: dict[str, tuple[str, ...]] = {
    "move_left": ("is going to move to the left", "goes to the left", "moves over to the left"),
    "move_right": ("is going to move to the right", "goes to the right", "moves over to the right"),
    "move_up": ("goes up", "is gonna go up", "moves up to the top"),
    "move_down": ("goes down", "is gonna drop down", "moves down to the bottom"),
    "grow": ("gets bigger", "is getting bigger and bigger", "grows"),
    "shrink": ("gets smaller", "is getting smaller", "shrinks down"),
    "rotate": ("spins around", "is spinning", "turns around"),
    "bounce": ("bounces", "is bouncing around", "hops up and down"),
    "stay": ("just sits there", "doesn't move", "stays put"),
}
_SPOKEN_SUBJECTS = ("the {c} {s}", "this {c} {s}", "our {c} {s}", "the {c} one", "the {s}")
_OPENERS = ("okay", "so", "um", "uh", "alright", "now", "and", "okay so", "so um", "and then", "")
_PREFIXES = ("", "", "you can see", "here", "you know", "watch how")
_CLOSERS = ("", "", "", "you know", "okay", "there", "like that", "see")
_ASIDES = (
    "okay so in this video we have some shapes",
    "alright let's watch this one",
    "um so here is another clip",
    "okay let's see what happens",
)
# Words an ASR system mishears, as it would in a real transcript.
_MISHEARD = {
    "red": "read",
    "blue": "blew",
    "right": "write",
    "circle": "circles",
    "star": "start",
    "grows": "goes",
    "there": "their",
    "square": "scare",
}


def narration_line(rng: np.random.Generator, facts: EventFacts) -> str:
    """A spoken, lowercase, unpunctuated line about an event, with fillers and misheard words."""
    subject = _pick(rng, _SPOKEN_SUBJECTS).format(c=facts.colour, s=facts.shape)
    words = " ".join(
        part
        for part in (
            _pick(rng, _OPENERS),
            _pick(rng, _PREFIXES),
            subject,
            _pick(rng, _SPOKEN_ACTIONS[facts.action]),
            _pick(rng, _CLOSERS),
        )
        if part
    ).split()
    heard = [_MISHEARD[w] if w in _MISHEARD and rng.random() < 0.08 else w for w in words]
    return " ".join(heard)


def narration_aside(rng: np.random.Generator) -> str:
    """An off-topic remark, as narrators make at the start of a clip."""
    return _pick(rng, _ASIDES)


# --------------------------------------------------------------------------------------------------
# Questions and answers from the ground truth.


def number_word(n: int) -> str:
    """``2`` -> ``"two"`` (answers to count questions are words, as people would say them)."""
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def question_answers(
    objects: list[tuple[str, str]], events: list[EventFacts]
) -> list[tuple[str, str, str]]:
    """(question, answer, type) pairs about a video; types are colour, shape, action and count.

    Only questions with one correct answer are asked: e.g. "what colour is the object that moves
    left?" is skipped when two events move left.
    """
    qa: list[tuple[str, str, str]] = [
        ("how many objects are there?", number_word(len(objects)), "count"),
        ("how many events are there in the video?", number_word(len(events)), "count"),
    ]
    for colour, shape in objects:
        qa.append((f"what colour is the {shape}?", colour, "colour"))
        qa.append((f"what shape is the {colour} object?", shape, "shape"))
        acts = [e.action for e in events if (e.colour, e.shape) == (colour, shape)]
        if len(acts) == 1:
            qa.append((f"what does the {colour} {shape} do?", canonical_phrase(acts[0]), "action"))
        elif acts:
            qa.append(
                (f"what does the {colour} {shape} do first?", canonical_phrase(acts[0]), "action")
            )
            follows = list(itertools.pairwise(acts))
            for before, after in follows:
                if [b for b, _ in follows].count(before) == 1:
                    qa.append(
                        (
                            f"what does the {colour} {shape} do after it {canonical_phrase(before)}?",
                            canonical_phrase(after),
                            "action",
                        )
                    )
    action_count = {a: sum(e.action == a for e in events) for a in ACTIONS}
    for facts in events:
        # With two objects the idle one also "stays still", so a stay question would be ambiguous.
        if action_count[facts.action] != 1 or (facts.action == "stay" and len(objects) > 1):
            continue
        vp = canonical_phrase(facts.action)
        qa.append((f"what colour is the object that {vp}?", facts.colour, "colour"))
        qa.append((f"which shape {vp}?", facts.shape, "shape"))
    return qa
