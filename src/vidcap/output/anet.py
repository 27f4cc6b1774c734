"""The ActivityNet Captions challenge's prediction file, written and read.

Dense-captioning systems are compared by handing this JSON to the challenge's evaluator
(densevid_eval) or to SODA; vidcap writes it (``vidcap caption --format anet``) and scores it
(``vidcap evaluate --task dense --predictions FILE``)::

    {"version": "VERSION 1.0",
     "results": {"v_uqiMw7tQ1Cc": [{"sentence": "a man throws a ball", "timestamp": [1.23, 4.53]},
                                   ...]},
     "external_data": {"used": false, "details": ""}}

Times are seconds from the start of the video. A video's id is its corpus id when the caller knows
it (``vidcap evaluate`` does), else its file stem, which is what ActivityNet and YouCook2 ids are
(``v_uqiMw7tQ1Cc.mp4`` → ``v_uqiMw7tQ1Cc``); two videos with the same stem get ``-2``, ``-3``…
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vidcap.errors import VidcapError
from vidcap.output.formats import TimedCaption, VideoCaptions

__all__ = [
    "ANET_VERSION",
    "anet_document",
    "anet_video_ids",
    "parse_anet_predictions",
    "read_anet_predictions",
]

ANET_VERSION = "VERSION 1.0"
"""The ``version`` the challenge's sample submission gives."""

_SHAPE = (
    '{"results": {"VIDEO_ID": [{"timestamp": [START, END], "sentence": "..."}]}} (times in seconds)'
)


def anet_video_ids(
    videos: Sequence[VideoCaptions], ids: Mapping[str, str] | None = None
) -> list[str]:
    """Each result's id in the prediction file: ``ids[result.video]`` when given, else the file
    stem, made unique with ``-2``, ``-3``… and never equal to another result's corpus id.

    Raises:
        VidcapError: two results map to the same corpus id.
    """
    ids = ids or {}
    used: dict[str, str] = {}  # id -> the video filed under it
    for result in videos:
        if result.video in ids:
            video_id = ids[result.video]
            if video_id in used:
                raise VidcapError(
                    f"{used[video_id]} and {result.video} are both video {video_id!r}; an "
                    "ActivityNet file holds one entry per video."
                )
            used[video_id] = result.video
    return [ids[r.video] if r.video in ids else _stem_id(r.video, used) for r in videos]


def _stem_id(video: str, used: dict[str, str]) -> str:
    """``video``'s file stem, made unique among ``used`` (id -> video), which it is added to."""
    stem = Path(video).stem or "video"
    candidate, n = stem, 2
    while candidate in used:
        candidate, n = f"{stem}-{n}", n + 1
    used[candidate] = video
    return candidate


def _events(result: VideoCaptions) -> list[dict[str, Any]]:
    return [
        {"sentence": c.text, "timestamp": [_round_ms(c.start), _round_ms(c.end)]}
        for c in result.captions
    ]


def anet_entry(result: VideoCaptions, used: dict[str, str], first: bool) -> str:
    """``result``'s entry in the document, filed under its file stem made unique among ``used``
    (which it joins), as :func:`anet_document` lays it out with ``indent=2``; the ``first``
    entry comes after the document's head. :func:`anet_end` closes it."""
    head = '{\n  "version": ' + json.dumps(ANET_VERSION) + ',\n  "results": {\n' if first else ",\n"
    events = json.dumps(_events(result), indent=2, ensure_ascii=False).replace("\n", "\n    ")
    return f"{head}    {json.dumps(_stem_id(result.video, used), ensure_ascii=False)}: {events}"


def anet_end(started: bool) -> str:
    """What follows the last :func:`anet_entry` (``started``), or the whole document without a
    result."""
    if not started:
        return json.dumps(anet_document([]), indent=2, ensure_ascii=False) + "\n"
    external = json.dumps({"used": False, "details": ""}, indent=2).replace("\n", "\n  ")
    return f'\n  }},\n  "external_data": {external}\n}}\n'


def _round_ms(seconds: float) -> float:
    return round(seconds * 1000) / 1000


def anet_document(
    videos: Sequence[VideoCaptions],
    ids: Mapping[str, str] | None = None,
    external_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ActivityNet prediction document of ``videos`` (see the module docstring).

    Args:
        videos: captioning results; each caption becomes one event (times rounded to the ms).
        ids: video path as given in the result -> the id to file it under (a corpus id); videos
            not in it are filed under their file stem.
        external_data: the challenge's declaration of data used beyond its training set; default
            ``{"used": false, "details": ""}``.
    """
    results = {
        video_id: _events(result)
        for video_id, result in zip(anet_video_ids(videos, ids), videos, strict=True)
    }
    return {
        "version": ANET_VERSION,
        "results": results,
        "external_data": dict(external_data or {"used": False, "details": ""}),
    }


def _event(item: Any, where: str) -> TimedCaption:
    if not isinstance(item, dict):
        raise VidcapError(f"{where} must be an object with a timestamp and a sentence; {_SHAPE}.")
    sentence = item.get("sentence")
    if not isinstance(sentence, str):
        raise VidcapError(f"{where} needs a sentence (a string); {_SHAPE}.")
    stamp = item.get("timestamp")
    if (
        not isinstance(stamp, list)
        or len(stamp) != 2
        or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in stamp)
    ):
        raise VidcapError(f"{where} needs a timestamp [start, end] of two numbers (seconds).")
    start, end = float(stamp[0]), float(stamp[1])
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
        raise VidcapError(
            f"{where} has timestamp {stamp}: times must be finite numbers of seconds from 0 on."
        )
    if end < start:
        raise VidcapError(f"{where} has timestamp {stamp}: it ends before it starts.")
    return TimedCaption(start, end, sentence)


def parse_anet_predictions(
    document: Any, source: str = "the prediction file"
) -> dict[str, list[TimedCaption]]:
    """Read a decoded ActivityNet prediction document: video id -> events, in the file's order.

    Only ``results`` is needed (SODA asks no more; densevid_eval also wants ``version`` and
    ``external_data``, which :func:`anet_document` always writes).

    Raises:
        VidcapError: the document is not in that shape (one sentence naming the first problem).
    """
    if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
        raise VidcapError(
            f'{source} has no "results" object; an ActivityNet prediction file is {_SHAPE}.'
        )
    predictions: dict[str, list[TimedCaption]] = {}
    for video_id, events in document["results"].items():
        if not isinstance(events, list):
            raise VidcapError(
                f"{source}: results[{video_id!r}] must be a list of events; {_SHAPE}."
            )
        predictions[video_id] = [
            _event(item, f"{source}: results[{video_id!r}][{i}]") for i, item in enumerate(events)
        ]
    return predictions


def read_anet_predictions(path: str | Path) -> dict[str, list[TimedCaption]]:
    """Read an ActivityNet prediction file: video id -> events, in the file's order.

    Raises:
        VidcapError: the file is missing, unreadable, not JSON or not in the challenge's shape.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VidcapError(f"{path}: prediction file not found.") from None
    except IsADirectoryError:
        raise VidcapError(f"{path} is a folder; give the prediction JSON file.") from None
    except UnicodeDecodeError:
        raise VidcapError(f"{path} is not UTF-8 text; a prediction file is JSON.") from None
    except OSError as e:
        raise VidcapError(f"{path} cannot be read ({e.strerror or e}).") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise VidcapError(
            f"{path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})."
        ) from None
    return parse_anet_predictions(document, str(path))
