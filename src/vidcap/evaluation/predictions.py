"""Timed events for a corpus split's videos, from raw video, as ``vidcap evaluate --task dense``
scores them (ActivityNet Captions protocol, SODA_c).

- A dense model (``--task dense``): its own events, from the whole video (and the video's
  transcript when the model reads one, as Vid2Seq is given ASR).
- A caption bundle: events cut without learning, each captioned by the bundle, the rows a dense
  model is read against: ``whole`` (one event, the whole video), ``fixed`` (windows of
  ``segment_seconds``), ``change`` (cuts where the features jump, ``vidcap caption --dense``),
  and ``oracle`` (the corpus's true events, so only the captions can be wrong: what perfect
  localisation would give).

Every video goes through the bundle's own extract → encode → quantize settings, as in
``vidcap caption``; one that cannot be read is reported in ``failed`` and left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import numpy as np

from vidcap.corpus import VideoRecord
from vidcap.errors import VidcapError
from vidcap.inference.captioner import Captioner
from vidcap.inference.pipeline import VideoClips
from vidcap.inference.segments import change_segments, fixed_segments
from vidcap.models.inputs import segment_inputs
from vidcap.models.seq2seq import generate_captions
from vidcap.output.formats import TimedCaption
from vidcap.training.tasks import segment_narration

Cuts = Literal["whole", "fixed", "change", "oracle"]
CUTS: tuple[str, ...] = get_args(Cuts)
"""How a caption bundle's events are cut (a dense model cuts its own)."""


def dense_predictions(
    captioner: Captioner,
    records: Sequence[VideoRecord],
    cuts: Cuts | None = None,
    segment_seconds: float = 10.0,
    beams: int | None = None,
    on_video: Callable[[str], None] | None = None,
    failed: list[tuple[str, str]] | None = None,
) -> dict[str, list[TimedCaption]]:
    """Each readable video's events (video id → events in order), see the module docstring.

    Args:
        captioner: a dense model (``cuts`` None), or a caption bundle (``cuts`` says how).
        records: the corpus videos to caption.
        cuts: ``whole``, ``fixed``, ``change`` or ``oracle``, for a caption bundle.
        segment_seconds: the window length of ``fixed``.
        beams: beam width (default: the bundle's).
        on_video: called with each video's id once it is read (progress).
        failed: gets ``(video id, error sentence)`` for each video that could not be read.

    Raises:
        VidcapError: ``cuts`` given for a dense model, or missing or unknown for a caption bundle.
    """
    if captioner.is_dense and cuts is not None:
        raise VidcapError("a dense model cuts its own events; cuts are for a caption bundle.")
    if not captioner.is_dense and cuts not in CUTS:
        raise VidcapError(
            f"{captioner.folder} is a --task {captioner.task} model; say how to cut the events ({', '.join(CUTS)}), or give a dense model."
        )
    read = _read(captioner, records, on_video, failed)
    if captioner.is_dense:
        transcripts = [[(t.start, t.end, t.text) for t in r.transcript] for r, _ in read]
        found = captioner.events([clips for _, clips in read], transcripts, beams=beams)
        return {record.id: events for (record, _), events in zip(read, found, strict=True)}
    return _cut_and_caption(captioner, read, cuts, segment_seconds, beams)


def cut_predictions(
    captioner: Captioner,
    records: Sequence[VideoRecord],
    cuts: Sequence[Cuts],
    segment_seconds: float = 10.0,
    beams: int | None = None,
    on_video: Callable[[str], None] | None = None,
    failed: list[tuple[str, str]] | None = None,
) -> dict[str, dict[str, list[TimedCaption]]]:
    """A caption bundle's events cut each of several ways (cut -> video id -> events), every
    video decoded once for all of them; arguments as :func:`dense_predictions`.

    Raises:
        VidcapError: a dense model, or an unknown cut.
    """
    if captioner.is_dense or not all(c in CUTS for c in cuts):
        raise VidcapError(
            f"cuts ({', '.join(CUTS)}) are for a caption bundle; {captioner.folder} is a --task {captioner.task} model."
        )
    read = _read(captioner, records, on_video, failed)
    return {cut: _cut_and_caption(captioner, read, cut, segment_seconds, beams) for cut in cuts}


def _read(
    captioner: Captioner,
    records: Sequence[VideoRecord],
    on_video: Callable[[str], None] | None,
    failed: list[tuple[str, str]] | None,
) -> list[tuple[VideoRecord, VideoClips]]:
    """Each readable record with its clips, through the bundle's own pipeline."""
    read: list[tuple[VideoRecord, VideoClips]] = []
    for record in records:
        try:
            read.append((record, captioner.clips(record.video)))
        except VidcapError as error:
            if failed is not None:
                failed.append((record.id, str(error)))
        if on_video is not None:
            on_video(record.id)
    return read


def _spans(
    record: VideoRecord, clips: VideoClips, cuts: str, segment_seconds: float
) -> list[tuple[float, float, np.ndarray]]:
    """``(start, end, clip indices)`` of each event of one video."""
    n = len(clips.words)
    if cuts == "oracle":
        events = sorted((s.start, s.end) for s in record.segments if s.captions)
        return [(start, end, clips.between(start, end)) for start, end in events]
    if cuts == "whole":
        ranges = [(0, n)]
    elif cuts == "fixed":
        ranges = fixed_segments(clips, segment_seconds)
    else:
        ranges = change_segments(clips.features)
    return [
        (float(clips.start_s[a]), float(clips.end_s[b - 1]), np.arange(a, b)) for a, b in ranges
    ]


def _cut_and_caption(
    captioner: Captioner,
    read: list[tuple[VideoRecord, VideoClips]],
    cuts: str,
    segment_seconds: float,
    beams: int | None,
) -> dict[str, list[TimedCaption]]:
    """A caption bundle's caption for each cut event, generated in shared batches."""
    spans = [_spans(record, clips, cuts, segment_seconds) for record, clips in read]
    inputs = [
        segment_inputs(
            captioner.vocab,
            clips.words[idx],
            clips.features[idx],
            segment_narration(record, start, end),
            captioner.inputs,
        )
        for (record, clips), video_spans in zip(read, spans, strict=True)
        for start, end, idx in video_spans
    ]
    generation = captioner.info["generation"]
    texts = iter(
        generate_captions(
            captioner.model,
            captioner.vocab,
            inputs,
            beams=beams or int(generation["beams"]),
            max_new_tokens=int(generation["max_new_tokens"]),
        )
    )
    return {
        record.id: [TimedCaption(start, end, next(texts)) for start, end, _ in video_spans]
        for (record, _), video_spans in zip(read, spans, strict=True)
    }
