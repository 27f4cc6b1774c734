"""Captioning results and the formats they are written in: text, JSON, JSON Lines, SubRip, WebVTT.

A result is a :class:`VideoCaptions`: the video's path and its :class:`TimedCaption` s — one spanning
the whole video for a plain caption, several for dense captioning. Formats:

- ``text``: for people. One video: its caption. Several: ``path<TAB>caption`` per line. Dense results
  get one ``[0:00.0-0:03.2] caption`` line per segment (an en dash between the times), under a line
  with the path when there are several videos (blank line between videos).
- ``json``: always an array of ``{"video", "duration", "captions": [{"start", "end", "text"}]}``, even
  for one video, so scripts read every run the same way. Times in seconds, rounded to the millisecond.
- ``jsonl``: the same objects, one per line.
- ``srt`` / ``vtt``: subtitle files, one video each (several videos need ``--out DIR``).
- ``anet``: the ActivityNet Captions challenge's prediction JSON, every video in one document,
  keyed by file stem (:mod:`vidcap.output.anet`), for anyone's dense-captioning evaluator.

Subtitle cue text is normalised (see :func:`cue_text`): a blank line ends a cue in both formats, so
lines are stripped and blank ones dropped, and a cue left with no text gets :data:`EMPTY_CUE_TEXT`.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, get_args

from vidcap.artifacts import atomic_path, atomic_write_text
from vidcap.errors import VidcapError

Format = Literal["text", "json", "jsonl", "srt", "vtt", "anet"]
"""An output format (``vidcap caption --format``)."""
FORMATS: tuple[str, ...] = get_args(Format)
SUBTITLE_FORMATS = ("srt", "vtt")

# What a cue with no text shows. A cue needs a text line in SubRip (the line after the timing ends
# the cue when blank, and many players drop or mis-number such cues), and a visible mark tells the
# viewer the model said nothing here rather than the file being broken.
EMPTY_CUE_TEXT = "…"
EN_DASH = "\u2013"  # between the times of a range in text output, as typeset


@dataclass(frozen=True)
class TimedCaption:
    """A caption of the stretch of video from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


@dataclass
class VideoCaptions:
    """One video's captioning result: its path as given, its captions and its length if known."""

    video: str
    captions: list[TimedCaption]
    duration: float | None = None
    timed: bool = False  # events of a dense model: shown with their times even when one or none

    @property
    def dense(self) -> bool:
        """True for dense captioning: several timed captions instead of one for the whole video
        (or the events a dense model found, however many)."""
        return self.timed or len(self.captions) > 1

    @property
    def caption(self) -> str:
        """The whole-video caption: the only caption's text, or the segments' texts joined by spaces
        when dense ("" when there are no captions)."""
        if not self.dense:
            return self.captions[0].text if self.captions else ""
        return self.joined(" ")

    def joined(self, separator: str) -> str:
        """The captions' texts on one line, each made one line, the empty ones left out."""
        return separator.join(_one_line(c.text) for c in self.captions if c.text.strip())

    def to_json(self) -> dict[str, Any]:
        """The object written by the ``json`` and ``jsonl`` formats (times rounded to the ms)."""
        return {
            "video": self.video,
            "duration": None if self.duration is None else _round_ms(self.duration),
            "captions": [
                {"start": _round_ms(c.start), "end": _round_ms(c.end), "text": c.text}
                for c in self.captions
            ],
        }


# --------------------------------------------------------------------------------------------------
# Times


def megabytes(size: int) -> str:
    """A size in MB (2^20 bytes) as people give it: ``500 MB``, ``0.05 MB``, ``2,048 MB``."""
    return f"{size / 2**20:,.3f}".rstrip("0").rstrip(".") + " MB"


def format_clock(seconds: float) -> str:
    """A time as people read it, to the tenth of a second: ``M:SS.d``, or ``H:MM:SS.d`` from 1 h."""
    tenths = max(0, round(seconds * 10))
    minutes, tenths = divmod(tenths, 600)
    hours, minutes = divmod(minutes, 60)
    secs = f"{tenths // 10:02d}.{tenths % 10}"
    return f"{hours}:{minutes:02d}:{secs}" if hours else f"{minutes}:{secs}"


def _round_ms(seconds: float) -> float:
    # The same rounding as the subtitle formats (round(x, 3) can differ on float ties).
    return round(seconds * 1000) / 1000


def _to_ms(seconds: float) -> int:
    # Subtitle formats have no negative times; a slightly negative start (float noise) becomes 0.
    return max(0, round(seconds * 1000))


def _cue_ms(caption: TimedCaption) -> tuple[int, int]:
    """A cue's start and end in ms, the end at least 1 ms after the start.

    Zero-length (or reversed) cues are invalid in WebVTT and dropped by some SubRip players.
    """
    start = _to_ms(caption.start)
    return start, max(_to_ms(caption.end), start + 1)


def _timestamp(ms: int, separator: str) -> str:
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{ms:03d}"


# --------------------------------------------------------------------------------------------------
# Writing subtitles


def cue_text(text: str) -> str:
    """The text a caption has inside a subtitle cue, and so after a round trip through a file.

    Lines are stripped and blank ones dropped (a blank line would end the cue); a text with no line
    left becomes :data:`EMPTY_CUE_TEXT`.
    """
    return "\n".join(_cue_lines(text))


def _cue_lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line] or [EMPTY_CUE_TEXT]


def to_srt(captions: list[TimedCaption]) -> str:
    """SubRip text: cues numbered from 1, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, blank line between.

    Times are rounded to the millisecond; a cue ends at least 1 ms after it starts. SubRip has no
    escaping: ``&`` and ``<`` are written as they are (players may read ``<i>`` as a tag).
    """
    cues = []
    for number, caption in enumerate(captions, start=1):
        start, end = _cue_ms(caption)
        timing = f"{_timestamp(start, ',')} --> {_timestamp(end, ',')}"
        cues.append(f"{number}\n{timing}\n{cue_text(caption.text)}\n")
    return "\n".join(cues)


def _escape_vtt(line: str) -> str:
    # Escaping ">" also keeps "-->" (which would start a new cue) out of the cue text.
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(captions: list[TimedCaption]) -> str:
    """WebVTT text: ``WEBVTT``, then cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` with escaped text.

    Times as in :func:`to_srt`; ``&``, ``<`` and ``>`` become ``&amp;``, ``&lt;`` and ``&gt;``.
    """
    parts = ["WEBVTT\n"]
    for caption in captions:
        start, end = _cue_ms(caption)
        timing = f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}"
        text = "\n".join(_escape_vtt(line) for line in _cue_lines(caption.text))
        parts.append(f"{timing}\n{text}\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# Reading subtitles (strict: used to check what we write, and what other tools make of it)

_SRT_TIME = r"(\d+):([0-5]\d):([0-5]\d)[,.](\d{3})"
_SRT_TIMING = re.compile(rf"{_SRT_TIME}[ \t]+-->[ \t]+{_SRT_TIME}")
_SRT_NUMBER = re.compile(r"[0-9]+")
# WebVTT hours are optional (at least two digits when present); cue settings may follow the end.
_VTT_TIME = r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_VTT_TIMING = re.compile(rf"{_VTT_TIME}[ \t]+-->[ \t]+{_VTT_TIME}(?:[ \t].*)?")
_VTT_HEADER = re.compile(r"WEBVTT(?:[ \t].*)?")
_VTT_SKIPPED_BLOCK = re.compile(r"(?:NOTE|STYLE|REGION)(?:[ \t].*)?")
_VTT_TAG = re.compile(r"<[^>]*>")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _seconds(hours: str | None, minutes: str, seconds: str, ms: str) -> float:
    # Summing whole milliseconds first gives the float nearest the written time.
    total_ms = ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(ms)
    return total_ms / 1000


def _blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """Blocks of non-blank lines, each with the (1-based) number of its first line."""
    block: list[str] = []
    first = 0
    for number, line in enumerate(_LINE_BREAK.split(text.removeprefix("\ufeff")), start=1):
        if line.strip():
            if not block:
                first = number
            block.append(line)
        elif block:
            yield first, block
            block = []
    if block:
        yield first, block


def _timed(match: re.Match[str], kind: str, line_no: int, text: str) -> TimedCaption:
    groups = match.groups()
    start, end = _seconds(*groups[:4]), _seconds(*groups[4:8])
    if end < start:
        raise VidcapError(f"{kind} line {line_no}: the cue ends before it starts.")
    return TimedCaption(start, end, text)


def parse_srt(text: str) -> list[TimedCaption]:
    """Read SubRip text: cue number, ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` (``.`` accepted), text lines.

    Text lines are stripped and joined with ``\\n``; tags are kept (SubRip has no escaping).

    Raises:
        VidcapError: a block without a cue number or a timing line, or a cue ending before it starts.
    """
    captions = []
    for line_no, lines in _blocks(text):
        if not _SRT_NUMBER.fullmatch(lines[0].strip()):
            raise VidcapError(f"SRT line {line_no}: expected a cue number, found {lines[0]!r}.")
        match = _SRT_TIMING.fullmatch(lines[1].strip()) if len(lines) > 1 else None
        if match is None:
            found = repr(lines[1]) if len(lines) > 1 else "nothing"
            raise VidcapError(
                f"SRT line {line_no + 1}: expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm', found {found}."
            )
        body = "\n".join(line.strip() for line in lines[2:])
        captions.append(_timed(match, "SRT", line_no + 1, body))
    return captions


def parse_vtt(text: str) -> list[TimedCaption]:
    """Read WebVTT text: the ``WEBVTT`` header, then cues (an optional identifier, the timing line
    with optional settings, text lines). ``NOTE``, ``STYLE`` and ``REGION`` blocks are skipped.

    Cue text is returned plain: tags removed, character references (``&amp;``…) decoded, lines
    stripped and joined with ``\\n``.

    Raises:
        VidcapError: no header, a block without a timing line, ``-->`` in cue text (a WebVTT reader
            would start a new cue there) or a cue ending before it starts.
    """
    blocks = list(_blocks(text))
    if not blocks or blocks[0][0] != 1 or not _VTT_HEADER.fullmatch(blocks[0][1][0]):
        raise VidcapError("A WebVTT file must start with a line 'WEBVTT'.")
    header_no, header = blocks[0]
    for offset, line in enumerate(header):
        if "-->" in line:
            raise VidcapError(
                f"WebVTT line {header_no + offset}: a blank line must separate the header from the cues."
            )
    captions = []
    for line_no, lines in blocks[1:]:
        if _VTT_SKIPPED_BLOCK.fullmatch(lines[0]):
            continue
        if "-->" not in lines[0]:  # a cue identifier comes first
            line_no, lines = line_no + 1, lines[1:]
        match = _VTT_TIMING.fullmatch(lines[0].strip()) if lines else None
        if match is None:
            found = repr(lines[0]) if lines else "nothing"
            raise VidcapError(
                f"WebVTT line {line_no}: expected 'HH:MM:SS.mmm --> HH:MM:SS.mmm', found {found}."
            )
        body = lines[1:]
        for offset, line in enumerate(body, start=1):
            if "-->" in line:
                raise VidcapError(
                    f"WebVTT line {line_no + offset}: cue text must not contain '-->' "
                    "(write '--&gt;')."
                )
        plain = "\n".join(html.unescape(_VTT_TAG.sub("", line.strip())) for line in body)
        captions.append(_timed(match, "WebVTT", line_no, plain))
    return captions


# --------------------------------------------------------------------------------------------------
# Rendering and writing results


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise VidcapError(f"Unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}.")


def _one_line(text: str) -> str:
    # Text output keeps one caption per line, so line breaks inside a caption become spaces.
    return " ".join(text.split())


def _subtitles(captions: list[TimedCaption], fmt: str) -> str:
    return to_srt(captions) if fmt == "srt" else to_vtt(captions)


def failure_record(video: str, error: str) -> dict[str, str]:
    """A video that could not be processed, as the JSON outputs list it in its place."""
    return {"video": video, "error": error}


class Renderer:
    """The text of results in format ``fmt``, a result at a time: :meth:`piece` as each result
    comes, in order, then :meth:`end`. A caller can write each piece at once (a pipeline reading
    stdout gets every video as soon as it is captioned) and hold none of the results.

    ``videos``: how many results there will be at most (the ``text`` format shows the path of
    each video when there are several). ``timed``: the ``text`` format shows every video with
    timed lines (a dense model, or segments asked for), else one line per video.

    Raises:
        VidcapError: an unknown format, or ``srt``/``vtt`` for several videos.
    """

    def __init__(self, fmt: str, videos: int, timed: bool) -> None:
        _check_format(fmt)
        if fmt in SUBTITLE_FORMATS and videos > 1:
            raise VidcapError(
                f"A {fmt.upper()} file holds one video's captions, but there are {videos} "
                f"videos; use --out DIR to write one .{fmt} file per video."
            )
        self.fmt, self.several, self.timed = fmt, videos > 1, timed
        self.count = 0
        self._anet_ids: dict[str, str] = {}  # id -> the video filed under it

    def piece(self, result: VideoCaptions) -> str:
        """The text of the next result (after the head of the document, for the first)."""
        first = self.count == 0
        self.count += 1
        if self.fmt in SUBTITLE_FORMATS:
            return _subtitles(result.captions, self.fmt)
        if self.fmt == "jsonl":
            return json.dumps(result.to_json(), ensure_ascii=False) + "\n"
        if self.fmt == "json":  # the bytes of json.dumps(every result, indent=2), in pieces
            return ("[\n" if first else ",\n") + _indented(result.to_json(), "  ")
        if self.fmt == "anet":
            from vidcap.output.anet import anet_entry  # it reads this module's results

            return anet_entry(result, self._anet_ids, first)
        if not self.timed:
            if not self.several:
                return f"{result.caption}\n"
            return f"{result.video}\t{_one_line(result.caption)}\n"
        lines = [result.video] if self.several else []
        lines += [
            f"[{format_clock(c.start)}{EN_DASH}{format_clock(c.end)}] {_one_line(c.text)}".rstrip()
            for c in result.captions
        ]
        return ("" if first else "\n") + "".join(f"{line}\n" for line in lines)

    def failure(self, video: str, error: str) -> str:
        """The text of a video that could not be captioned, in its place: a ``{"video", "error"}``
        object in ``json``/``jsonl`` (a consumer tells "failed" from "not given" without reading
        stderr); nothing in the other formats, whose files hold captions only."""
        if self.fmt not in ("json", "jsonl"):
            return ""
        record = failure_record(video, error)
        first = self.count == 0
        self.count += 1
        if self.fmt == "jsonl":
            return json.dumps(record, ensure_ascii=False) + "\n"
        return ("[\n" if first else ",\n") + _indented(record, "  ")

    def end(self) -> str:
        """What closes the document (with no result: the whole of an empty one)."""
        if self.fmt == "json":
            return "\n]\n" if self.count else "[]\n"
        if self.fmt == "anet":
            from vidcap.output.anet import anet_end

            return anet_end(started=self.count > 0)
        return ""


def _indented(obj: Any, prefix: str) -> str:
    """``obj`` as JSON indented by 2, every line after ``prefix``: how ``json.dumps(indent=2)``
    lays out a value nested one level down (a JSON text holds no raw line break in a string)."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    return "\n".join(prefix + line for line in text.split("\n"))


def render(results: list[VideoCaptions], fmt: str) -> str:
    """The results as one text in format ``fmt`` (see the module docstring), ending with a newline.

    When any result is dense, the ``text`` format shows every video with timed lines. ``json`` is
    always an array, even for one video.

    Raises:
        VidcapError: an unknown format, or ``srt``/``vtt`` for other than exactly one video.
    """
    renderer = Renderer(fmt, len(results), timed=any(r.dense for r in results))
    if fmt in SUBTITLE_FORMATS and not results:
        raise VidcapError(f"There are no captions to write as {fmt.upper()}.")
    return "".join(renderer.piece(r) for r in results) + renderer.end()


def file_stems(videos: list[str]) -> list[str]:
    """Each video's file stem, made unique with ``-2``, ``-3``… in order of appearance.

    Compared case-insensitively so the files stay distinct on macOS and Windows too.
    """
    used: set[str] = set()
    return [unique_stem(video, used) for video in videos]


def unique_stem(video: str, used: set[str]) -> str:
    """``video``'s file stem, made unique among ``used`` (case-folded), which it joins: called
    for each video in turn, the stems :func:`file_stems` gives."""
    stem = Path(video).stem or "video"
    candidate, n = stem, 2
    while candidate.casefold() in used:
        candidate, n = f"{stem}-{n}", n + 1
    used.add(candidate.casefold())
    return candidate


class CaptionsWriter:
    """Writes results in format ``fmt`` as they come, in order, holding none of them.

    - ``out`` None: each result's text goes to ``stream`` at once (flushed at the end of each
      line), so a pipeline reading stdout gets every video as soon as it is captioned. Without a
      ``stream``, ``sys.stdout`` as it is at each write: a progress bar on a terminal may print
      it above itself meanwhile.
    - ``text``/``json``/``jsonl``/``anet``: ``out`` is one file, written beside it under a
      temporary name and renamed by :meth:`close`, so a reader never sees half of it.
    - ``srt``/``vtt``, one video: ``out`` is the file, or, when it is an existing folder,
      ``out/<video stem>.<fmt>``.
    - ``srt``/``vtt``, several videos: ``out`` is a folder (created if needed) that gets one
      ``<video stem>.<fmt>`` per video as it comes; equal stems get ``-2``, ``-3``… in order.

    No result (and no failure recorded by :meth:`add_failure`): no file. Use it as a context
    manager: leaving with an exception before :meth:`close` removes the unfinished file. ``videos`` and ``timed`` are :class:`Renderer`'s.

    Raises:
        VidcapError: an unknown format, a folder where a file is needed or a file where a folder
            is, or ``srt``/``vtt`` for several videos without ``out``.
    """

    def __init__(
        self, fmt: str, out: Path | None, videos: int, timed: bool, stream: IO[str] | None = None
    ) -> None:
        self.fmt, self.out, self.stream = fmt, None if out is None else Path(out), stream
        self.files = fmt in SUBTITLE_FORMATS and videos > 1 and out is not None
        self.renderer = Renderer(fmt, 1 if self.files else videos, timed)
        if self.out is not None and self.files and self.out.exists() and not self.out.is_dir():
            raise VidcapError(
                f"--out {self.out} is a file, but {videos} videos need a folder for their .{fmt} files."
            )
        if self.out is not None and fmt not in SUBTITLE_FORMATS and self.out.is_dir():
            raise VidcapError(f"--out {self.out} is a folder, but {fmt} output goes to one file.")
        self.written: list[Path] = []
        self._stems: set[str] = set()
        self._stack = contextlib.ExitStack()
        self._file: IO[str] | None = None  # the single output file, under its temporary name
        self._tail = ""  # stdout: the start of a line not printed yet
        self._closed = False

    def __enter__(self) -> CaptionsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:  # the temporary file goes
            self._stack.__exit__(*exc)

    def add(self, result: VideoCaptions) -> None:
        """Write the next result."""
        if self.files or (self.fmt in SUBTITLE_FORMATS and self.out is not None):
            self._write_subtitles(result)
            return
        self._write(self.renderer.piece(result))

    def add_failure(self, video: str, error: str) -> None:
        """Record, in its place, a video that could not be captioned (json/jsonl only: see
        :meth:`Renderer.failure`)."""
        text = self.renderer.failure(video, error)
        if text:
            self._write(text)

    def _write(self, text: str) -> None:
        """Write a result's text: to the output file (opened under its temporary name at the
        first) or stdout."""
        if self.out is None:
            self._print(text)
            return
        if self._file is None:
            tmp = self._stack.enter_context(atomic_path(self.out))
            file = open(tmp, "w", encoding="utf-8")  # noqa: SIM115 (the stack closes it)
            self._file = self._stack.enter_context(file)
            self.written.append(self.out)
        self._file.write(text)

    def close(self) -> list[Path]:
        """Finish the output (the end of the document, the file renamed into place); returns the
        files written, in result order."""
        if not self._closed:
            self._closed = True
            if self.renderer.count:  # the end of a json or anet document ("" for the others)
                text = self.renderer.end()
                if self._file is not None:
                    self._file.write(text)
                else:
                    self._print(text)
            if self._tail:  # a last line without its line break: as it is
                self._flush(self._tail)
                self._tail = ""
            self._stack.close()
        return self.written

    def _print(self, text: str) -> None:
        """Write the whole lines so far and flush them; a partial line (a json object's closing
        brace, which the next piece's comma follows) waits for its end, since a progress bar on
        a terminal prints what it is given as whole lines."""
        text = self._tail + text
        cut = text.rfind("\n") + 1
        self._tail = text[cut:]
        if cut:
            self._flush(text[:cut])

    def _flush(self, text: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(text)
        stream.flush()

    def _write_subtitles(self, result: VideoCaptions) -> None:
        assert self.out is not None
        path = self.out
        if self.files or self.out.is_dir():
            path = self.out / f"{unique_stem(result.video, self._stems)}.{self.fmt}"
        atomic_write_text(path, self.renderer.piece(result))
        self.written.append(path)
