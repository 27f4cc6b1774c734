"""The ActivityNet Captions challenge's prediction JSON, so that anyone's dense-captioning
evaluator (densevid_eval, SODA) can score vidcap's output::

    {"version": "VERSION 1.0",
     "results": {"<video id>": [{"timestamp": [start, end], "sentence": "..."}, ...]},
     "external_data": {"used": false}}

A video's id is its file's stem (``v_abc123.mp4`` → ``v_abc123``), as the challenge's files name
videos; times are seconds, rounded to the millisecond.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidcap.errors import VidcapError

if TYPE_CHECKING:
    from vidcap.output.formats import VideoCaptions

ANET_VERSION = "VERSION 1.0"


def anet_document(videos: list[VideoCaptions]) -> dict[str, Any]:
    """The prediction document of ``videos``' timed captions, keyed by each video's file stem.

    Raises:
        VidcapError: two videos have the same stem (the document would keep only one of them).
    """
    results: dict[str, list[dict[str, Any]]] = {}
    for video in videos:
        video_id = Path(video.video).stem
        if video_id in results:
            raise VidcapError(
                f"two videos have the id {video_id!r}; the ActivityNet format keys predictions by file stem, so caption them in separate runs."
            )
        results[video_id] = [
            {"timestamp": [_round_ms(c.start), _round_ms(c.end)], "sentence": c.text}
            for c in video.captions
        ]
    return {"version": ANET_VERSION, "results": results, "external_data": {"used": False}}


def _round_ms(seconds: float) -> float:
    return round(seconds * 1000) / 1000
