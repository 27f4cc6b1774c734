"""A dense model's events from its localiser: where each event is, then what happens in it.

:class:`~vidcap.models.localiser.EventLocaliser` finds the events of a video from its clip
features; the bundle's seq2seq model — finetuned on every event's own clips beside the whole-video
sequences (``vidcap finetune --task dense``) — then captions each event from its clips, as a
captioning model captions a segment. This is the two-stage recipe of dense captioning (event
proposals, then a captioner; Krishna et al. 2017, PDVC's localisation head), chosen over reading
times from the model's own time tokens because it places events far better after the training a
toolkit user's corpus affords (docs/dense.md, "What each design choice bought").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts.readers import ClipTrack
from vidcap.errors import VidcapError
from vidcap.models.inputs import InputConfig, segment_inputs
from vidcap.models.localiser import (
    EventLocaliser,
    LocaliserConfig,
    decode_events,
    min_event_clips,
)
from vidcap.models.seq2seq import CaptionModel, generate_captions
from vidcap.output.formats import TimedCaption
from vidcap.text import JointVocabulary

CAPTION_TOKENS = InputConfig.max_target
"""An event's caption is at most as long as a captioning model's."""

LOCALISER = "localiser.safetensors"
"""The localiser's weights in a dense bundle (its shape is ``localiser`` in vidcap.json)."""


def load_localiser(folder: str | Path, info: dict[str, Any]) -> EventLocaliser | None:
    """The localiser of the bundle in ``folder`` (None for a dense bundle from before localisers,
    which reads its events from its time tokens).

    Raises:
        VidcapError: vidcap.json names a localiser whose file is missing or damaged.
    """
    shape = info.get("localiser")
    if not shape:
        return None
    path = Path(folder) / LOCALISER
    config = LocaliserConfig(
        dim=int(shape["dim"]),
        hidden=int(shape["hidden"]),
        dilations=tuple(int(d) for d in shape["dilations"]),
        min_event_s=float(shape.get("min_event_s", 0.0)),
    )
    try:
        return EventLocaliser.load(path, config)
    except Exception as e:  # missing, truncated, or not this shape
        raise VidcapError(
            f"{folder}'s event localiser ({LOCALISER}) cannot be read ({type(e).__name__}: {e}); copy the bundle again or finetune it again."
        ) from None


def localised_events(
    model: CaptionModel,
    vocab: JointVocabulary,
    localiser: EventLocaliser,
    tracks: Sequence[ClipTrack],
    inputs: InputConfig,
    beams: int,
    max_new_tokens: int,
    transcripts: Sequence[Sequence[tuple[float, float, str]]] | None = None,
    threshold: float = 0.5,
) -> list[list[TimedCaption]]:
    """Each video's events: placed by ``localiser`` (to the clip), captioned by ``model`` from the
    event's own clips (and, for a model trained ``--with-transcript``, the ``(start, end, text)``
    transcript lines overlapping the event), all videos' events generated in shared batches."""
    spans: list[list[tuple[int, int]]] = []
    prompts = []
    lines = transcripts or [()] * len(tracks)
    for track, said in zip(tracks, lines, strict=True):
        if track.features is None:
            raise VidcapError("a dense model's localiser needs the clips' features.")
        clip_s = float(np.median(track.end_s - track.start_s)) if len(track.end_s) else 0.0
        least = min_event_clips(localiser.config.min_event_s, clip_s)
        found = decode_events(localiser.probabilities(track.features), threshold, least)
        spans.append(found)
        for a, b in found:
            start, end = float(track.start_s[a]), float(track.end_s[b])
            narration = " ".join(text for s, e, text in said if s < end and e > start)
            prompts.append(
                segment_inputs(
                    vocab, track.words[a : b + 1], track.features[a : b + 1], narration, inputs
                )
            )
    texts = iter(
        generate_captions(
            model, vocab, prompts, beams=beams, max_new_tokens=min(max_new_tokens, CAPTION_TOKENS)
        )
        if prompts
        else []
    )
    return [
        [TimedCaption(float(t.start_s[a]), float(t.end_s[b]), next(texts)) for a, b in found]
        for t, found in zip(tracks, spans, strict=True)
    ]
