"""A video's story from a dense model's events: its key moments, each with its time, and one
paragraph that tells them in order (``vidcap summarize`` with a ``--task dense`` model).

How the story is built, so that a reader knows what the paragraph is and is not:

- **key moments**: the events in order of start; an event that says the same thing (the same
  words, compared case- and punctuation-blind) as the moment before it and overlaps or touches it
  in time is the same moment told twice, and is merged into it (the union of their times);
- **the paragraph**: one sentence per moment, capitalised and ending in a full stop, in order,
  joined by connectives that follow the times: "Meanwhile," for a moment that starts before the
  one before it ends (by more than half of the shorter), "Then", "Next,", "After that," and
  "Later," in turn for the next ones in sequence (one word said before every sentence is the
  4-gram repetition a reader notices first: "Then the red circle …" told over and over), and
  "Finally," for the last of three or more; a sentence already told earlier gets "again" instead of
  being repeated as if new, and a subject already introduced ("a red circle …") is referred to
  as "the red circle …", as a person telling it would (and the reference summaries do).

Nothing is generated here: every word of the paragraph but the connectives is the model's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vidcap.output.formats import EN_DASH, TimedCaption, format_clock

_NOT_WORD = re.compile(r"[^\w]+")
_IN_SEQUENCE = ("Then", "Next,", "After that,", "Later,")
"""The connectives of moments that follow one another, taken in turn."""


@dataclass(frozen=True)
class Story:
    """The key moments of a video and the paragraph that tells them."""

    moments: list[TimedCaption]
    paragraph: str

    def to_json(self) -> dict[str, Any]:
        """``moments`` (start, end, text; times to the ms) and ``summary`` (the paragraph)."""
        return {
            "moments": [
                {
                    "start": round(m.start * 1000) / 1000,
                    "end": round(m.end * 1000) / 1000,
                    "text": m.text,
                }
                for m in self.moments
            ],
            "summary": self.paragraph,
        }

    def to_text(self) -> str:
        """``Key moments:`` with one timed line each, a blank line, then ``Story:`` and the
        paragraph."""
        lines = ["Key moments:"]
        lines += [
            f"  [{format_clock(m.start)}{EN_DASH}{format_clock(m.end)}] {m.text}"
            for m in self.moments
        ]
        if not self.moments:
            lines.append("  (none found)")
        return "\n".join(lines) + f"\n\nStory: {self.paragraph}\n"


def _key(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def key_moments(events: list[TimedCaption]) -> list[TimedCaption]:
    """The events in order, each one that repeats the moment before it merged into it (see the
    module docstring)."""
    moments: list[TimedCaption] = []
    for event in sorted(events, key=lambda e: (e.start, e.end)):
        if not _key(event.text):
            continue
        last = moments[-1] if moments else None
        if last is not None and _key(last.text) == _key(event.text) and event.start <= last.end:
            moments[-1] = TimedCaption(last.start, max(last.end, event.end), last.text)
        else:
            moments.append(TimedCaption(event.start, event.end, " ".join(event.text.split())))
    return moments


def _mention(text: str, introduced: set[tuple[str, ...]]) -> str:
    """``text`` with "a"/"an" turned into "the" when it opens with a subject told before ("a red
    circle grows" after "a red circle moves up" → "the red circle grows"), and that subject noted.

    The subject is the article and the two words after it: long enough not to take "a red
    circle" for "a red square", short enough to find the same subject doing something else.
    """
    words = text.split()
    head = tuple(w.casefold() for w in words[:3])
    if len(head) < 3 or head[0] not in ("a", "an", "the"):
        return text
    subject = head[1:]
    if head[0] != "the" and subject in introduced:
        words[0] = "The" if words[0][:1].isupper() else "the"
    introduced.add(subject)
    return " ".join(words)


def _overlaps(before: TimedCaption, moment: TimedCaption) -> bool:
    shorter = min(before.end - before.start, moment.end - moment.start)
    return before.end - moment.start > shorter / 2


def tell_story(events: list[TimedCaption]) -> Story:
    """The story of a dense model's events (see the module docstring)."""
    moments = key_moments(events)
    told: set[str] = set()
    introduced: set[tuple[str, ...]] = set()
    sentences = []
    in_sequence = 0
    for i, moment in enumerate(moments):
        body = _mention(moment.text.strip().rstrip(".!?;,"), introduced)
        if _key(moment.text) in told:
            body += " again"
        told.add(_key(moment.text))
        if i == 0:
            sentences.append(f"{body[:1].upper()}{body[1:]}.")
            continue
        if _overlaps(moments[i - 1], moment):
            connective = "Meanwhile,"
        elif i == len(moments) - 1 and len(moments) >= 3:
            connective = "Finally,"
        else:
            connective = _IN_SEQUENCE[in_sequence % len(_IN_SEQUENCE)]
            in_sequence += 1
        sentences.append(f"{connective} {body}.")
    return Story(moments, " ".join(sentences))
