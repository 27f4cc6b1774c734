"""Entries (videos as annotation files describe them) → corpus records: find each video's file,
merge what several files say about one video, check segment times, and count what was dropped."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from vidcap.artifacts import sanitize_id
from vidcap.corpus import Segment, VideoRecord
from vidcap.datasets.importers.common import (
    BAD_SEGMENT,
    CLIPPED_SEGMENT,
    REPLACED_TRANSCRIPT,
    UNCAPTIONED_SEGMENT,
    DraftSegment,
    Entry,
    ImportReport,
    VideoIndex,
)
from vidcap.errors import VidcapError

# Ends past the duration by less than this are float noise (or rounding in the source): cut
# silently instead of reporting them.
_END_SLACK_S = 1e-3


def build_records(
    entries: Sequence[Entry],
    index: VideoIndex,
    report: ImportReport,
    keep_missing: bool,
    missing_root: Path,
) -> list[VideoRecord]:
    """Find each entry's video and turn the entries into records, in order of first appearance.

    Entries for the same video (ActivityNet's ``val_1.json`` and ``val_2.json``) are merged: their
    segments are pooled and segments with the same span become one segment with every caption. A
    video whose file is not found is listed in ``report.missing`` and left out unless
    ``keep_missing`` (then its path is ``missing_root/<id>.mp4``, for a later download).
    """
    resolved: dict[str, Entry] = {}
    videos: dict[str, Path] = {}
    missing = set(report.missing)
    for entry in entries:
        found = _resolve(entry, index)
        if found is None:
            if entry.id not in missing:
                missing.add(entry.id)
                report.missing.append(entry.id)
            if not keep_missing:
                continue
            found = (entry, missing_root / f"{sanitize_id(entry.stems[0])}.mp4")
        entry, video = found
        if entry.id in resolved:
            _merge_into(resolved[entry.id], entry)
        else:
            resolved[entry.id] = entry
            videos[entry.id] = video
    return [_record(e, videos[e.id], report) for e in resolved.values()]


def merge_transcripts(
    existing: Sequence[VideoRecord],
    entries: Sequence[Entry],
    index: VideoIndex,
    report: ImportReport,
    keep_missing: bool,
    missing_root: Path,
) -> list[VideoRecord]:
    """Give the records of an existing corpus the transcripts of the entries with their ids.

    A transcript replaces the record's old one (so importing twice changes nothing); entries
    whose id is not in the corpus become new records when their video is found.
    """
    position = {r.id: i for i, r in enumerate(existing)}
    records = list(existing)
    updated_by: dict[str, str] = {}
    new_entries = []
    for entry in entries:
        ids = entry.stems if entry.id_from_match else (entry.id,)
        match = next((i for i in ids if i in position), None)
        if match is None:
            new_entries.append(entry)
            continue
        if match in updated_by:
            raise VidcapError(
                f"two transcripts for video {match!r}: {updated_by[match]} and {entry.place}; "
                "keep one of them."
            )
        updated_by[match] = entry.place
        old = records[position[match]]
        if old.transcript:
            report.note(REPLACED_TRANSCRIPT, entry.place)
        records[position[match]] = dataclasses.replace(
            old, transcript=sorted(entry.transcript, key=lambda t: (t.start, t.end))
        )
    added = build_records(new_entries, index, report, keep_missing, missing_root)
    clash = next((r.id for r in added if r.id in position), None)
    if clash is not None:
        raise VidcapError(f"video {clash!r} would be added twice to the corpus.")
    report.updated, report.added = len(updated_by), len(added)
    return records + added


def summarize(records: Sequence[VideoRecord], report: ImportReport) -> None:
    """Fill the report's totals from the records written."""
    report.videos = len(records)
    report.segments = sum(len(r.segments) for r in records)
    report.captions = sum(len(s.captions) for r in records for s in r.segments)
    report.transcript_lines = sum(len(r.transcript) for r in records)
    splits = Counter(r.split for r in records)
    report.splits = {s: splits[s] for s in ("train", "val", "test")}


def _resolve(entry: Entry, index: VideoIndex) -> tuple[Entry, Path] | None:
    """The entry (times made relative to the file found) and its video file, or None."""
    found = index.find(entry.stems)
    if found is not None:
        stem, path = found
        if entry.id_from_match:
            entry = dataclasses.replace(entry, id=stem)
        if entry.source_clip is not None:
            entry = dataclasses.replace(entry, meta={**entry.meta, "video_is": "clip"})
        return entry, path
    clip = entry.source_clip
    if clip is None:
        return None
    found = index.find([clip.stem])
    if found is None:
        return None
    # Only the long source video is here: the clip is clip.start..clip.end inside it.
    segments = [
        DraftSegment(s.start + clip.start, s.end + clip.start, s.captions, s.place)
        for s in entry.segments
    ]
    meta = {**entry.meta, "video_is": "source"}
    return dataclasses.replace(entry, segments=segments, duration=None, meta=meta), found[1]


def _merge_into(first: Entry, other: Entry) -> None:
    """Pool what a second annotation says about a video into the first one."""
    if other.split != first.split:
        raise VidcapError(
            f"video {first.id!r} is in split {first.split!r} at {first.place} but in "
            f"{other.split!r} at {other.place}; import the files separately or pass --split."
        )
    if first.transcript and other.transcript:
        raise VidcapError(
            f"two transcripts for video {first.id!r}: {first.place} and {other.place}; "
            "keep one of them."
        )
    first.segments.extend(other.segments)
    first.transcript.extend(other.transcript)
    if first.duration is None:
        first.duration = other.duration
    first.meta = {**other.meta, **first.meta}


def _record(entry: Entry, video: Path, report: ImportReport) -> VideoRecord:
    return VideoRecord(
        id=entry.id,
        video=video,
        split=entry.split,
        duration=entry.duration,
        segments=_segments(entry.segments, entry.duration, report),
        transcript=sorted(entry.transcript, key=lambda t: (t.start, t.end)),
        meta=entry.meta or None,
    )


def _segments(
    drafts: Sequence[DraftSegment], duration: float | None, report: ImportReport
) -> list[Segment]:
    """Checked segments in time order; identical spans share one segment with all captions.

    Overlapping segments are legal (dense-captioning datasets overlap a lot) and kept.
    """
    by_span: dict[tuple[float, float], list[str]] = {}
    for draft in drafts:
        if not draft.captions:
            report.note(UNCAPTIONED_SEGMENT, draft.place)
            continue
        start, end = draft.start, draft.end
        if end <= start or start < 0 or (duration is not None and start >= duration):
            report.note(BAD_SEGMENT, f"{draft.place} ({start:g}..{end:g} s)")
            continue
        if duration is not None and end > duration:
            if end > duration + _END_SLACK_S:
                report.note(CLIPPED_SEGMENT, f"{draft.place} (ends {end:g} s > {duration:g} s)")
            end = duration
        by_span.setdefault((start, end), []).extend(draft.captions)
    return [Segment(s, e, captions) for (s, e), captions in sorted(by_span.items())]
