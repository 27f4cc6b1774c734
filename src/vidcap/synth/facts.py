"""Ground truth of the synthetic corpus, read back from corpus records and checked in captions.

:func:`segment_facts` reads what a segment shows from its record's ``meta["events"]`` (which
:mod:`vidcap.synth.records` writes); :func:`fact_accuracy` checks whether captions name the right
colour, shape and action, which n-gram metrics only measure indirectly; :func:`truth_text` turns
a fact into the label zero-shot classification ranks (:data:`FIELDS` are the fields it can
classify).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from vidcap.corpus import Segment, VideoRecord
from vidcap.synth.lexicon import canonical_phrase, find_mentions

__all__ = [
    "FIELDS",
    "Facts",
    "Field",
    "fact_accuracy",
    "normal_label",
    "segment_facts",
    "truth_text",
]

Field = Literal["colour", "shape", "action"]
"""A ground-truth field zero-shot classification can be scored on."""
FIELDS: tuple[str, ...] = get_args(Field)


@dataclass(frozen=True)
class Facts:
    """What a segment shows: the acting object's colour and shape and its action (canonical
    names from :mod:`vidcap.synth.lexicon`, e.g. ``Facts("red", "circle", "move_left")``)."""

    colour: str
    shape: str
    action: str


def _event_facts(event: object) -> Facts | None:
    """Facts of one ``meta["events"]`` entry, or None when it is not a ground-truth event."""
    if not isinstance(event, dict):
        return None
    values = [event.get(name) for name in ("colour", "shape", "action")]
    if not all(isinstance(v, str) for v in values):
        return None
    return Facts(*values)


def _overlap(event: dict, segment: Segment) -> float | None:
    """Seconds ``event`` and ``segment`` share, or None when the event has no valid times."""
    start, end = event.get("start"), event.get("end")
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (start, end)):
        return None
    return min(end, segment.end) - max(start, segment.start)


def segment_facts(record: VideoRecord, segment: Segment) -> Facts | None:
    """The ground truth of ``segment``: the event of ``record.meta["events"]`` it overlaps most.

    ``meta["events"]`` is what the synthetic corpus stores (see
    :mod:`vidcap.synth.records`): dicts with ``start``, ``end``, ``colour``, ``shape`` and
    ``action``. Returns None when the record has no such events or none overlaps the segment
    (a zero-length segment matches the event it lies in).
    """
    events = (record.meta or {}).get("events")
    if not isinstance(events, list):
        return None
    best: tuple[float, Facts] | None = None
    for event in events:
        facts = _event_facts(event)
        overlap = _overlap(event, segment) if facts is not None else None
        if facts is None or overlap is None or overlap < 0:
            continue
        if overlap == 0 and segment.end > segment.start:
            continue  # only touching at one end: the event is before or after the segment
        if best is None or overlap > best[0]:  # ties: the earlier event
            best = (overlap, facts)
    return best[1] if best else None


def fact_accuracy(hypotheses: dict[str, str], facts: dict[str, Facts]) -> dict[str, float]:
    """Share of hypotheses that name the true colour, shape, action, and all three.

    A hypothesis names the right colour when the true colour is among the colours it mentions
    (:func:`~vidcap.synth.lexicon.find_mentions`, synonyms included), and likewise for shape
    and action: a two-object caption may rightly name the other object too, e.g. "while the blue
    square stays still", which also mentions the ``stay`` action. So a caption naming every
    colour would score full marks on colour; read this next to the n-gram metrics.

    Only keys with both a hypothesis and facts are counted.

    Returns:
        ``colour``, ``shape``, ``action`` and ``all`` (fractions in [0, 1]) and ``count`` (the
        number of hypotheses counted); an empty dict when no hypothesis has facts.
    """
    keys = [key for key in hypotheses if key in facts]
    if not keys:
        return {}
    hits = {"colour": 0, "shape": 0, "action": 0, "all": 0}
    for key in keys:
        truth, mentions = facts[key], find_mentions(hypotheses[key])
        right = {
            "colour": truth.colour in mentions.colours,
            "shape": truth.shape in mentions.shapes,
            "action": truth.action in mentions.actions,
        }
        right["all"] = all(right.values())
        for name, ok in right.items():
            hits[name] += ok
    accuracy: dict[str, float] = {name: n / len(keys) for name, n in hits.items()}
    accuracy["count"] = len(keys)
    return accuracy


# --------------------------------------------------------------------------------------------------
# Zero-shot classification labels


def truth_text(facts: Facts, field: str) -> str:
    """The ground truth of ``field`` as a label: colours and shapes by their canonical names,
    actions by their canonical phrase ("move_left" → "moves left"), as captions say them."""
    value = getattr(facts, field)
    return canonical_phrase(value) if field == "action" else value


def normal_label(label: str) -> str:
    """``label`` as labels are compared: lowercase, single spaces."""
    return " ".join(label.lower().split())
