"""The corpus: one JSON object per line describing a video, its captions and anything else known.

See ``docs/corpus.md`` for the format. Reading validates every line and reports the first problem as
``file:line: field: what is wrong``, so a user can fix a corpus of thousands of lines quickly.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from vidcap.artifacts import atomic_write_text
from vidcap.errors import CorpusError

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = get_args(Split)

# The names a video file may end in (any case), in order of preference where one id has several
# files (an .mp4 beside a half-converted .mkv): containers for the web, then cameras' and discs'
# (AVCHD .mts/.m2ts, DVD .vob, broadcast .mxf).
VIDEO_EXTENSIONS = (
    ".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ts", ".wmv",
    ".3gp", ".3g2", ".ogv", ".mts", ".m2ts", ".vob", ".mxf", ".m2v", ".asf", ".f4v", ".dv",
)  # fmt: skip
_VIDEO_EXTENSIONS = frozenset(VIDEO_EXTENSIONS)


def is_video_name(name: str) -> bool:
    """Whether a file name is a video's: a video extension, and not hidden (a macOS ``._clip.mp4``
    beside each copied video, an editor's or downloader's temporary file)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in _VIDEO_EXTENSIONS


def walk_videos(root: Path) -> Iterator[Path]:
    """Every video file below ``root`` (:func:`is_video_name`), as ``root / relative path``, in
    sorted order: symlinked folders are followed (a loop is walked once), hidden ones skipped."""
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:  # a symlink loop: already walked
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if is_video_name(name) and os.path.isfile(os.path.join(folder, name)):
                yield Path(folder, name)


@dataclass(frozen=True)
class Segment:
    """A timed event of a video with at least one reference caption."""

    start: float
    end: float
    captions: list[str]
    narration: str | None = None


@dataclass(frozen=True)
class TranscriptLine:
    """A stretch of speech, as an ASR system or a subtitle file gives it."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class QAPair:
    """A question about the video and its answer; ``type`` groups questions for evaluation."""

    question: str
    answer: str
    type: str | None = None


@dataclass(frozen=True)
class VideoRecord:
    """One corpus line. ``video`` is resolved against the corpus file's folder when read."""

    id: str
    video: Path
    split: str
    duration: float | None = None
    segments: list[Segment] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    transcript: list[TranscriptLine] = field(default_factory=list)
    qa: list[QAPair] = field(default_factory=list)
    meta: dict[str, Any] | None = None

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        """Return the JSON object for this record; ``video`` is made relative when possible."""
        video = self.video
        if relative_to is not None:
            with contextlib.suppress(ValueError):  # outside the corpus folder: keep absolute
                video = self.video.relative_to(relative_to)
        obj: dict[str, Any] = {"id": self.id, "video": video.as_posix(), "split": self.split}
        if self.duration is not None:
            obj["duration"] = self.duration
        if self.segments:
            obj["segments"] = [_drop_none(vars(s)) for s in self.segments]
        if self.summary:
            obj["summary"] = list(self.summary)
        if self.transcript:
            obj["transcript"] = [vars(t) for t in self.transcript]
        if self.qa:
            obj["qa"] = [_drop_none(vars(q)) for q in self.qa]
        if self.meta is not None:
            obj["meta"] = self.meta
        return obj


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class _LineChecker:
    """Type checks that raise a CorpusError naming the file, line and field."""

    def __init__(self, path: Path, line_no: int) -> None:
        self.where = f"{path}:{line_no}"

    def fail(self, field_name: str, problem: str) -> CorpusError:
        return CorpusError(f"{self.where}: {field_name}: {problem}")

    def string(self, obj: dict[str, Any], key: str, name: str, required: bool = True) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                raise self.fail(name, "is missing")
            return None
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, got {type(value).__name__}")
        return value

    def number(
        self, obj: dict[str, Any], key: str, name: str, required: bool = True
    ) -> float | None:
        value = obj.get(key)
        if value is None:
            if required:
                raise self.fail(name, "is missing")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(name, f"must be a number, got {type(value).__name__}")
        if value < 0 or value != value or value == float("inf"):
            raise self.fail(name, f"must be a finite number >= 0, got {value}")
        return float(value)

    def objects(self, obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = obj.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{key}[{i}]", f"must be an object, got {type(item).__name__}")
        return value

    def strings(self, obj: dict[str, Any], key: str, name: str, min_len: int = 0) -> list[str]:
        value = obj.get(key, [])
        if not isinstance(value, list):
            raise self.fail(name, f"must be a list of strings, got {type(value).__name__}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(f"{name}[{i}]", "must be a non-empty string")
        if len(value) < min_len:
            raise self.fail(name, f"needs at least {min_len} entry, got {len(value)}")
        return list(value)

    def span(self, item: dict[str, Any], name: str) -> tuple[float, float]:
        start = self.number(item, "start", f"{name}.start")
        end = self.number(item, "end", f"{name}.end")
        assert start is not None and end is not None
        if end < start:
            raise self.fail(name, f"ends ({end}) before it starts ({start})")
        return start, end


_KNOWN_FIELDS = {
    "id",
    "video",
    "split",
    "duration",
    "segments",
    "summary",
    "transcript",
    "qa",
    "meta",
}


def parse_record(obj: Any, base_dir: Path, path: Path, line_no: int) -> VideoRecord:
    """Validate one decoded corpus line and build its record."""
    check = _LineChecker(path, line_no)
    if not isinstance(obj, dict):
        raise check.fail("line", f"must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _KNOWN_FIELDS)
    if unknown:
        raise check.fail(
            unknown[0], f"is not a corpus field (known: {', '.join(sorted(_KNOWN_FIELDS))})"
        )
    video_id = check.string(obj, "id", "id")
    assert video_id is not None
    if not video_id.strip():
        raise check.fail("id", "must not be empty")
    video = check.string(obj, "video", "video")
    assert video is not None
    if not video.strip():
        raise check.fail("video", "must not be empty")
    split = check.string(obj, "split", "split")
    if split not in SPLITS:
        raise check.fail("split", f"must be one of {', '.join(SPLITS)}, got {split!r}")
    duration = check.number(obj, "duration", "duration", required=False)

    segments = []
    for i, seg in enumerate(check.objects(obj, "segments")):
        name = f"segments[{i}]"
        start, end = check.span(seg, name)
        captions = check.strings(seg, "captions", f"{name}.captions", min_len=1)
        narration = check.string(seg, "narration", f"{name}.narration", required=False)
        segments.append(Segment(start, end, captions, narration))

    transcript = []
    for i, line in enumerate(check.objects(obj, "transcript")):
        name = f"transcript[{i}]"
        start, end = check.span(line, name)
        text = check.string(line, "text", f"{name}.text")
        assert text is not None
        transcript.append(TranscriptLine(start, end, text))

    qa = []
    for i, pair in enumerate(check.objects(obj, "qa")):
        name = f"qa[{i}]"
        question = check.string(pair, "question", f"{name}.question")
        answer = check.string(pair, "answer", f"{name}.answer")
        kind = check.string(pair, "type", f"{name}.type", required=False)
        assert question is not None and answer is not None
        qa.append(QAPair(question, answer, kind))

    meta = obj.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise check.fail("meta", f"must be an object, got {type(meta).__name__}")

    video_path = Path(video).expanduser()
    if not video_path.is_absolute():
        video_path = base_dir / video_path
    return VideoRecord(
        id=video_id,
        video=video_path,
        split=split,
        duration=duration,
        segments=segments,
        summary=check.strings(obj, "summary", "summary"),
        transcript=transcript,
        qa=qa,
        meta=meta,
    )


def read_corpus(path: str | Path) -> list[VideoRecord]:
    """Read and validate a corpus.jsonl file; relative video paths resolve against its folder.

    Raises:
        CorpusError: the file is missing or a line is invalid (the message names file, line, field),
            or two lines share an id.
    """
    return list(iter_corpus(path))


def corpus_to_score(given: str | Path | None, recorded: str | None, model: str) -> Path:
    """The corpus a command scores a model on: ``given`` (``--corpus``), else the one ``model``
    (its kind: "bundle", "pretrain") recorded it was trained on.

    Raises:
        CorpusError: the one given is not a file, or the recorded one is gone (moved, deleted)
            and none was given.
    """
    if given is not None:
        _check_corpus_file(Path(given), f"--corpus {given}")
        return Path(given)
    if recorded is None:
        raise CorpusError(f"the {model} records no corpus; pass --corpus corpus.jsonl.")
    if not Path(recorded).is_file():
        raise CorpusError(
            f"the corpus the {model} was trained on ({recorded}) is not here (moved or "
            "deleted?); pass --corpus corpus.jsonl."
        )
    return Path(recorded)


def _check_corpus_file(path: Path, named: str) -> None:
    """Refuse a corpus path (``named`` so in the sentence) that is a folder or is not there."""
    if path.is_dir():
        raise CorpusError(f"{named} is a folder, not a corpus file (corpus.jsonl).")
    if not path.is_file():
        raise CorpusError(f"{named}: corpus file not found.")


def iter_corpus(path: str | Path) -> Iterator[VideoRecord]:
    """:func:`read_corpus` a record at a time, for readers that keep little of each: a corpus
    with its transcripts (HowTo100M's ASR: 136 million lines of speech) would take gigabytes
    held whole. Only each id's line number is kept, to refuse a repeated id.

    Raises:
        CorpusError: as :func:`read_corpus`, when the reader reaches the line.
    """
    path = Path(path)
    _check_corpus_file(path, str(path))
    base_dir = path.resolve().parent
    first_line_of: dict[str, int] = {}
    with path.open("rb") as f:  # bytes: a line that is not UTF-8 is named by its number
        for line_no, raw in enumerate(f, start=1):
            try:  # the first line may start with a BOM, as Windows tools write
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(
                    f"{path}:{line_no}: line: is not UTF-8 text (byte {raw[e.start]:#04x} at "
                    f"column {e.start + 1}); save the corpus as UTF-8."
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}:{line_no}: line: is not valid JSON ({e.msg}).") from None
            record = parse_record(obj, base_dir, path, line_no)
            if record.id in first_line_of:
                raise CorpusError(
                    f"{path}:{line_no}: id: {record.id!r} is already used on line "
                    f"{first_line_of[record.id]}; ids must be unique."
                )
            first_line_of[record.id] = line_no
            yield record


def format_corpus(records: Iterable[VideoRecord], relative_to: Path | None = None) -> str:
    """Serialise records as corpus.jsonl text (stable key order, UTF-8, one line each)."""
    return "".join(
        json.dumps(r.to_json(relative_to), ensure_ascii=False, sort_keys=False) + "\n"
        for r in records
    )


def write_corpus(path: str | Path, records: Iterable[VideoRecord]) -> None:
    """Write records atomically; video paths under the file's folder are stored relative to it."""
    path = Path(path)
    atomic_write_text(path, format_corpus(records, relative_to=path.resolve().parent))
