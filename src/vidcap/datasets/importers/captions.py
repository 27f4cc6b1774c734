"""Captioning datasets as their projects publish them: YouCook2, MSR-VTT, ActivityNet Captions, VATEX.

Each reader turns one annotation file into :class:`Entry` objects; times stay as the source gives
them and are checked when the records are assembled. The exact input shapes are in
``docs/datasets.md``.
"""

from __future__ import annotations

import re
from typing import Any

from vidcap.datasets.importers.common import (
    EMPTY_CAPTION,
    ORPHAN_CAPTION,
    AnnotationFile,
    DraftSegment,
    Entry,
    ImportReport,
    SourceClip,
    map_split,
    split_from_filename,
)

Keys = tuple[str | int, ...]


def caption_list(value: Any, source: AnnotationFile, keys: Keys, report: ImportReport) -> list[str]:
    """One caption, stripped, as a list; ``[]`` (and a note) when it is empty.

    Unicode is kept as it is; only surrounding whitespace goes (ActivityNet sentences often start
    with a space).
    """
    text = source.text(value, keys).strip()
    if not text:
        report.note(EMPTY_CAPTION, source.place(keys))
        return []
    return [text]


def _optional_meta(item: dict, names: dict[str, str]) -> dict[str, Any]:
    """Source fields worth keeping in ``meta`` (under vidcap's names), when present."""
    return {ours: item[theirs] for theirs, ours in names.items() if item.get(theirs) is not None}


# --------------------------------------------------------------------------------------------------
# YouCook2: youcookii_annotations_trainval.json


def read_youcook2(source: AnnotationFile, split: str | None, report: ImportReport) -> list[Entry]:
    """``{"database": {id: {"duration", "subset", "annotations": [{"segment", "sentence"}]}}}``.

    ``subset`` "training" / "validation" / "testing" become train / val / test. The test file
    (``youcookii_annotations_test_segments_only.json``) has segments without sentences: its videos
    are kept (for pretraining) and its segments dropped as uncaptioned.
    """
    data = source.obj(source.load(), (), 'an object {"database": {video id: {...}}}')
    database = source.obj(
        source.key(data, "database", ()), ("database",), "an object of videos keyed by YouTube id"
    )
    entries = []
    for video_id, item in database.items():
        keys: Keys = ("database", video_id)
        source.video_id(video_id, keys)
        item = source.obj(item, keys)
        subset = item.get("subset")
        item_split = split or map_split(source.key(item, "subset", keys), source, (*keys, "subset"))
        duration = source.number(source.key(item, "duration", keys), (*keys, "duration"))
        annotations = source.array(
            source.key(item, "annotations", keys), (*keys, "annotations"), "a list of segments"
        )
        segments = []
        for i, annotation in enumerate(annotations):
            akeys: Keys = (*keys, "annotations", i)
            annotation = source.obj(annotation, akeys)
            start, end = source.span(source.key(annotation, "segment", akeys), (*akeys, "segment"))
            if subset == "testing" and "sentence" not in annotation:
                captions: list[str] = []  # the published test file has no sentences
            else:
                sentence = source.key(annotation, "sentence", akeys)
                captions = caption_list(sentence, source, (*akeys, "sentence"), report)
            segments.append(DraftSegment(start, end, captions, source.place(akeys)))
        meta = {
            "dataset": "youcook2",
            **_optional_meta(item, {"recipe_type": "recipe_type", "video_url": "video_url"}),
        }
        entries.append(
            Entry(
                id=video_id,
                split=item_split,
                stems=(video_id,),
                duration=duration,
                segments=segments,
                meta=meta,
                place=source.place(keys),
            )
        )
    return entries


# --------------------------------------------------------------------------------------------------
# MSR-VTT: train_val_videodatainfo.json, test_videodatainfo.json


def read_msrvtt(source: AnnotationFile, split: str | None, report: ImportReport) -> list[Entry]:
    """``{"videos": [{"video_id", "start time", "end time", "split"}], "sentences": [{"video_id",
    "caption"}]}``.

    The downloaded ``videoN.mp4`` is already cut from its YouTube source, so one segment covers the
    whole clip (``0 .. end time - start time``) with every caption; the source times stay in meta.
    ``split`` "train" / "validate" / "test" become train / val / test.
    """
    data = source.obj(source.load(), (), 'an object {"videos": [...], "sentences": [...]}')
    videos = source.array(source.key(data, "videos", ()), ("videos",))
    sentences = source.array(source.key(data, "sentences", ()), ("sentences",))
    entries: dict[str, Entry] = {}
    for i, video in enumerate(videos):
        keys: Keys = ("videos", i)
        video = source.obj(video, keys)
        video_id = source.video_id(source.key(video, "video_id", keys), (*keys, "video_id"))
        if video_id in entries:
            raise source.fail((*keys, "video_id"), f"video {video_id!r} is listed twice")
        start = source.number(source.key(video, "start time", keys), (*keys, "start time"))
        end = source.number(source.key(video, "end time", keys), (*keys, "end time"))
        item_split = split or map_split(source.key(video, "split", keys), source, (*keys, "split"))
        length = round(end - start, 3)  # 149.44 - 137.72 = 11.719999… → 11.72
        meta = {
            "dataset": "msrvtt",
            "start_time": start,
            "end_time": end,
            **_optional_meta(video, {"url": "video_url", "category": "category"}),
        }
        place = source.place(keys)
        entries[video_id] = Entry(
            id=video_id,
            split=item_split,
            stems=(video_id,),
            duration=length if length > 0 else None,
            segments=[DraftSegment(0.0, length, [], place)],
            meta=meta,
            place=place,
        )
    for i, sentence in enumerate(sentences):
        keys = ("sentences", i)
        sentence = source.obj(sentence, keys)
        video_id = source.video_id(source.key(sentence, "video_id", keys), (*keys, "video_id"))
        captions = caption_list(
            source.key(sentence, "caption", keys), source, (*keys, "caption"), report
        )
        if video_id not in entries:
            report.note(ORPHAN_CAPTION, source.place(keys))
            continue
        entries[video_id].segments[0].captions.extend(captions)
    return list(entries.values())


# --------------------------------------------------------------------------------------------------
# ActivityNet Captions: train.json, val_1.json, val_2.json


def activitynet_stems(video_id: str) -> tuple[str, ...]:
    """File stems to try: the id as given, then with the ``v_`` prefix dropped (or added)."""
    if video_id.startswith("v_"):
        return (video_id, video_id[2:])
    return (video_id, f"v_{video_id}")


def read_activitynet(
    source: AnnotationFile, split: str | None, report: ImportReport
) -> list[Entry]:
    """``{id: {"duration", "timestamps": [[start, end], …], "sentences": […]}}``, one file per split.

    The split comes from the file name (``train``, ``val_1`` / ``val_2`` → val) unless given.
    ``val_1`` and ``val_2`` annotate the same videos twice: importing both pools their segments.
    """
    data = source.obj(source.load(), (), "an object of videos keyed by id")
    file_split = split or split_from_filename(source.path)
    entries = []
    for video_id, item in data.items():
        keys: Keys = (video_id,)
        source.video_id(video_id, keys)
        item = source.obj(item, keys)
        duration = source.number(source.key(item, "duration", keys), (*keys, "duration"))
        timestamps = source.array(source.key(item, "timestamps", keys), (*keys, "timestamps"))
        sentences = source.array(source.key(item, "sentences", keys), (*keys, "sentences"))
        if len(timestamps) != len(sentences):
            raise source.fail(
                keys,
                f"{len(timestamps)} timestamps but {len(sentences)} sentences "
                "(each timestamp needs its sentence)",
            )
        segments = []
        for i, (span, sentence) in enumerate(zip(timestamps, sentences, strict=True)):
            start, end = source.span(span, (*keys, "timestamps", i))
            captions = caption_list(sentence, source, (*keys, "sentences", i), report)
            segments.append(
                DraftSegment(start, end, captions, source.place((*keys, "timestamps", i)))
            )
        entries.append(
            Entry(
                id=video_id,
                split=file_split,
                stems=activitynet_stems(video_id),
                duration=duration,
                segments=segments,
                meta={"dataset": "activitynet"},
                place=source.place(keys),
            )
        )
    return entries


# --------------------------------------------------------------------------------------------------
# VATEX: vatex_training_v1.0.json, vatex_validation_v1.0.json, vatex_public_test_english_v1.1.json

# A YouTube id (which may itself contain "_"), then the clip's start and end in whole seconds.
_VATEX_ID = re.compile(r"(.+)_(\d+)_(\d+)")


def read_vatex(source: AnnotationFile, split: str | None, report: ImportReport) -> list[Entry]:
    """``[{"videoID": "YOUTUBEID_START_END", "enCap": [...], "chCap": [...]}]``, one file per split.

    Each entry is a 10 s clip of a YouTube video. A file named by the full videoID is the clip
    (one segment covering it); a file named by the YouTube id alone is the whole source video (the
    segment is START..END inside it, and ``meta.video_is`` says "source"). ``chCap`` is ignored.
    """
    data = source.array(source.load(), (), 'a list of clips [{"videoID", "enCap"}]')
    file_split = split or split_from_filename(source.path)
    entries = []
    for i, item in enumerate(data):
        keys: Keys = (i,)
        item = source.obj(item, keys)
        video_id = source.video_id(source.key(item, "videoID", keys), (*keys, "videoID"))
        match = _VATEX_ID.fullmatch(video_id)
        if match is None:
            raise source.fail(
                (*keys, "videoID"),
                f"expected YOUTUBEID_START_END like 'Ptf_2VRj-V0_000122_000132', got {video_id!r}",
            )
        youtube_id, start, end = match.group(1), int(match.group(2)), int(match.group(3))
        en_caps = source.array(source.key(item, "enCap", keys), (*keys, "enCap"))
        captions = [
            c
            for j, value in enumerate(en_caps)
            for c in caption_list(value, source, (*keys, "enCap", j), report)
        ]
        length = float(end - start)
        place = source.place(keys)
        entries.append(
            Entry(
                id=video_id,
                split=file_split,
                stems=(video_id,),
                duration=length if length > 0 else None,
                segments=[DraftSegment(0.0, length, captions, place)],
                meta={
                    "dataset": "vatex",
                    "youtube_id": youtube_id,
                    "clip_start": start,
                    "clip_end": end,
                },
                source_clip=SourceClip(youtube_id, float(start), float(end)),
                place=place,
            )
        )
    return entries
