"""Speech for pretraining: HowTo100M ASR captions and folders of SubRip / WebVTT subtitle files.

Both become a record's ``transcript`` (no segments: speech is not a caption of what is seen).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from vidcap.corpus import TranscriptLine
from vidcap.datasets.importers.common import (
    BAD_TRANSCRIPT,
    EMPTY_TRANSCRIPT,
    AnnotationFile,
    Entry,
    ImportReport,
)
from vidcap.errors import VidcapError
from vidcap.output.formats import parse_srt, parse_vtt

# Videos found only through their speech have no split of their own: pretraining data.
DEFAULT_SPLIT = "train"

# ``ID.en.vtt``, ``ID.pt-BR.srt``: the language tag that yt-dlp and most players put before the
# extension.
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def read_howto100m(source: AnnotationFile, split: str | None, report: ImportReport) -> list[Entry]:
    """``{id: {"start": [...], "end": [...], "text": [...]}}`` (``raw_caption.json`` /
    ``caption.json``): one transcript line per index; empty texts are dropped."""
    data = source.obj(
        source.load(), (), 'an object {video id: {"start": [...], "end": [...], "text": [...]}}'
    )
    entries = []
    for video_id, item in data.items():
        keys: tuple[str | int, ...] = (video_id,)
        source.video_id(video_id, keys)
        item = source.obj(item, keys)
        columns = {
            name: source.array(source.key(item, name, keys), (*keys, name))
            for name in ("start", "end", "text")
        }
        sizes = [len(c) for c in columns.values()]
        if len(set(sizes)) > 1:
            raise source.fail(
                keys,
                f'"start", "end" and "text" have {sizes[0]}, {sizes[1]} and {sizes[2]} entries; '
                "they must have one per line",
            )
        lines = []
        for i in range(sizes[0]):
            start = source.number(columns["start"][i], (*keys, "start", i))
            end = source.number(columns["end"][i], (*keys, "end", i))
            text = source.text(columns["text"][i], (*keys, "text", i)).strip()
            place = source.place((*keys, "text", i))
            if not text:
                report.note(EMPTY_TRANSCRIPT, place)
            elif start < 0 or end < start:
                report.note(BAD_TRANSCRIPT, f"{place} ({start:g}..{end:g} s)")
            else:
                lines.append(TranscriptLine(start, end, text))
        entries.append(
            Entry(
                id=video_id,
                split=split or DEFAULT_SPLIT,
                stems=(video_id,),
                transcript=lines,
                meta={"dataset": "howto100m"},
                place=source.place(keys),
            )
        )
    return entries


def subtitle_files(fmt: str, paths: Sequence[Path]) -> list[Path]:
    """The ``.srt`` / ``.vtt`` files given: files as they are, folders searched recursively."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == f".{fmt}"
            )
        elif path.is_file():
            files.append(path)
        else:
            raise VidcapError(f"{path}: no such file or folder.")
    if not files:
        shown = ", ".join(str(p) for p in paths)
        raise VidcapError(f"no .{fmt} files in {shown}.")
    return files


def subtitle_stems(path: Path) -> tuple[str, ...]:
    """Ids a subtitle file may belong to: its stem, then its stem without a language tag."""
    stem = path.stem
    base, dot, tag = stem.rpartition(".")
    if dot and base and _LANGUAGE_TAG.fullmatch(tag):
        return (stem, base)
    return (stem,)


def read_subtitles(
    fmt: str, paths: Sequence[Path], split: str | None, report: ImportReport
) -> list[Entry]:
    """One entry per subtitle file; cues become transcript lines (their lines joined by spaces).

    The entry's id is whichever of :func:`subtitle_stems` names a video (or a record, when merging).
    """
    parse = parse_srt if fmt == "srt" else parse_vtt
    entries = []
    for path in subtitle_files(fmt, paths):
        try:
            cues = parse(path.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError:
            raise VidcapError(f"{path}: not UTF-8 text; convert it to UTF-8 first.") from None
        except VidcapError as e:
            raise VidcapError(f"{path}: {e}") from None
        lines = []
        for number, cue in enumerate(cues, start=1):
            text = " ".join(line.strip() for line in cue.text.splitlines() if line.strip())
            if not text:
                report.note(EMPTY_TRANSCRIPT, f"{path}: cue {number}")
                continue
            lines.append(TranscriptLine(cue.start, cue.end, text))
        stems = subtitle_stems(path)
        entries.append(
            Entry(
                id=stems[0],
                split=split or DEFAULT_SPLIT,
                stems=stems,
                transcript=lines,
                place=str(path),
                id_from_match=True,
            )
        )
    return entries
