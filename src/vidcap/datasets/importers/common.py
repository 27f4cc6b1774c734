"""What every importer shares: reading annotation JSON with precise errors, finding videos by id,
mapping split names, and the report of what was dropped, changed or missing.

Importers turn a file into :class:`Entry` objects (one per source video, times still as the source
gives them); :mod:`vidcap.datasets.importers.assemble` turns entries into corpus records.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap.corpus import SPLITS, VIDEO_EXTENSIONS, TranscriptLine, walk_videos
from vidcap.errors import VidcapError

_EXTENSION_RANK = {ext: rank for rank, ext in enumerate(VIDEO_EXTENSIONS)}
MAX_EXAMPLES = 5


# --------------------------------------------------------------------------------------------------
# Reading annotation files


def json_path(keys: Sequence[str | int]) -> str:
    """``["v_abc"]["timestamps"][2]`` for ``("v_abc", "timestamps", 2)``; ``top level`` for ``()``."""
    if not keys:
        return "top level"
    return "".join(
        f"[{k}]" if isinstance(k, int) else f"[{json.dumps(k, ensure_ascii=False)}]" for k in keys
    )


def _describe(value: Any) -> str:
    """A short description of a wrong value for an error sentence."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value}"
    kind = names.get(type(value), type(value).__name__)
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"{kind} {json.dumps(shown, ensure_ascii=False)}"
    return kind


class AnnotationFile:
    """One annotation file being read; its checks raise a :class:`VidcapError` that names the file
    and the JSON path of the wrong value, e.g. ``train.json: ["v_abc"]["timestamps"][2]: ...``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> Any:
        """The decoded JSON of the file."""
        if self.path.is_dir():
            raise VidcapError(f"{self.path} is a folder; give the annotation file in it.")
        if not self.path.is_file():
            raise VidcapError(f"{self.path}: annotation file not found.")
        try:
            with self.path.open(encoding="utf-8-sig") as f:  # -sig: tolerate a BOM
                return json.load(f)
        except json.JSONDecodeError as e:
            raise VidcapError(
                f"{self.path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})."
            ) from None
        except UnicodeDecodeError:
            raise VidcapError(f"{self.path}: not a UTF-8 text file.") from None

    def place(self, keys: Sequence[str | int]) -> str:
        """Where a value is, for messages: ``file: ["id"]["key"][i]``."""
        return f"{self.path}: {json_path(keys)}"

    def fail(self, keys: Sequence[str | int], problem: str) -> VidcapError:
        """The error to raise for ``problem`` at ``keys`` (a sentence naming file and place)."""
        return VidcapError(f"{self.place(keys)}: {problem}.")

    def obj(self, value: Any, keys: Sequence[str | int], what: str = "an object") -> dict:
        """``value`` when it is a JSON object; ``what`` describes the expected shape otherwise."""
        if not isinstance(value, dict):
            raise self.fail(keys, f"expected {what}, got {_describe(value)}")
        return value

    def array(self, value: Any, keys: Sequence[str | int], what: str = "a list") -> list:
        """``value`` when it is a JSON array."""
        if not isinstance(value, list):
            raise self.fail(keys, f"expected {what}, got {_describe(value)}")
        return value

    def key(self, obj: dict, key: str, keys: Sequence[str | int]) -> Any:
        """``obj[key]``, or an error naming the missing key and where it should be."""
        if key not in obj:
            raise self.fail(keys, f"missing key {json.dumps(key)}")
        return obj[key]

    def number(self, value: Any, keys: Sequence[str | int]) -> float:
        """A finite number (not a numeric string: the published files use numbers)."""
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise self.fail(keys, f"expected a number of seconds, got {_describe(value)}")
        return float(value)

    def text(self, value: Any, keys: Sequence[str | int]) -> str:
        """A string (possibly empty: callers decide what an empty one means)."""
        if not isinstance(value, str):
            raise self.fail(keys, f"expected a string, got {_describe(value)}")
        return value

    def span(self, value: Any, keys: Sequence[str | int]) -> tuple[float, float]:
        """A ``[start, end]`` pair of numbers (the order is checked later, with the duration)."""
        if (
            not isinstance(value, list)
            or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
            or not all(math.isfinite(v) for v in value)
        ):
            raise self.fail(keys, f"expected [start, end] in seconds, got {_short_json(value)}")
        return float(value[0]), float(value[1])

    def video_id(self, value: Any, keys: Sequence[str | int]) -> str:
        """A non-empty id string (the corpus keeps ids verbatim: any characters are allowed)."""
        text = self.text(value, keys)
        if not text.strip():
            raise self.fail(keys, "expected a video id, got an empty string")
        return text


def _short_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------------------------
# Splits


_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def map_split(name: Any, source: AnnotationFile, keys: Sequence[str | int]) -> str:
    """The corpus split for a split name as a dataset spells it (``training``, ``validate``…)."""
    split = _SPLIT_WORDS.get(name.lower()) if isinstance(name, str) else None
    if split is None:
        known = ", ".join(sorted(_SPLIT_WORDS))
        raise source.fail(keys, f"unknown split {_describe(name)} (known: {known})")
    return split


def split_from_filename(path: Path) -> str:
    """The split a file name says, as the datasets name their files (``train.json``,
    ``val_1.json``, ``vatex_validation_v1.0.json``, ``vatex_public_test_english_v1.1.json``)."""
    words = set(re.split(r"[^a-z0-9]+", path.stem.lower()))
    found = {_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS}
    if len(found) != 1:
        raise VidcapError(
            f"{path}: cannot tell the split from the file name; pass --split ({', '.join(SPLITS)})."
        )
    return found.pop()


def check_split(split: str | None) -> str | None:
    """Validate a ``--split`` override."""
    if split is not None and split not in SPLITS:
        raise VidcapError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}.")
    return split


# --------------------------------------------------------------------------------------------------
# Finding videos


class VideoIndex:
    """Every video file under some folders, indexed by file stem (exact, case-sensitive).

    The folders are walked once (symlinked folders followed, loops skipped), so looking up a
    million ids costs a dict access each. Stems are matched exactly because YouTube ids differ by
    case and use ``-`` and ``_``.
    """

    def __init__(self, roots: Iterable[Path] = ()) -> None:
        self.roots = [Path(r) for r in roots]
        self._by_stem: dict[str, Path] = {}
        for root in self.roots:
            if not root.is_dir():
                raise VidcapError(f"--videos {root}: no such folder.")
            for found in walk_videos(root):
                # The folder is resolved, not the file: a symlinked video keeps its name (its id).
                path = _real_folder(found.parent) / found.name
                best = self._by_stem.get(path.stem)
                if best is None or _preference(path) < _preference(best):
                    self._by_stem[path.stem] = path

    def __len__(self) -> int:
        """How many distinct stems (ids) have a video."""
        return len(self._by_stem)

    def find(self, stems: Iterable[str]) -> tuple[str, Path] | None:
        """The first of ``stems`` that names a video, with its path; None when none does."""
        for stem in stems:
            path = self._by_stem.get(stem)
            if path is not None:
                return stem, path
        return None


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: Path) -> Path:
    return Path(os.path.realpath(folder))


def _preference(path: Path) -> tuple[int, str]:
    return _EXTENSION_RANK[path.suffix.lower()], str(path)


# --------------------------------------------------------------------------------------------------
# What importers produce


@dataclass
class DraftSegment:
    """A segment as the source gives it, with where it came from (for reports)."""

    start: float
    end: float
    captions: list[str]
    place: str


@dataclass(frozen=True)
class SourceClip:
    """The annotated clip is ``start..end`` seconds of a longer source video named ``stem``.

    When only the source video is found (VATEX downloads named by YouTube id), the segments, given
    relative to the clip, are shifted by ``start`` into the source video's time.
    """

    stem: str
    start: float
    end: float


@dataclass
class Entry:
    """One video as an annotation file describes it, before its file is found."""

    id: str
    split: str
    stems: tuple[str, ...]  # file stems to try, in order
    duration: float | None = None
    segments: list[DraftSegment] = field(default_factory=list)
    transcript: list[TranscriptLine] = field(default_factory=list)
    transcript_places: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    source_clip: SourceClip | None = None
    place: str = ""
    # Subtitles: the id is the stem that matched (``ID.en.vtt`` → ``ID``), not the file's stem.
    id_from_match: bool = False


# --------------------------------------------------------------------------------------------------
# The report


@dataclass
class Issue:
    """Items of one kind that were dropped or changed, with the first few places."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, place: str) -> None:
        """Count one more, remembering the place while there are few."""
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(place)


# The kinds of issue, as the summary shows them.
EMPTY_CAPTION = "empty captions dropped"
UNCAPTIONED_SEGMENT = "segments left without a caption, dropped"
BAD_SEGMENT = "segments ending before they start or outside the video, dropped"
CLIPPED_SEGMENT = "segments running past the video's end, cut at the end"
ORPHAN_CAPTION = "captions of videos not in the file, dropped"
EMPTY_TRANSCRIPT = "empty transcript lines dropped"
BAD_TRANSCRIPT = "transcript lines ending before they start, dropped"
REPLACED_TRANSCRIPT = "existing transcripts replaced"


@dataclass
class ImportReport:
    """What an import found, wrote, dropped and could not find."""

    format: str
    files: list[Path]
    videos: int = 0
    segments: int = 0
    captions: int = 0
    transcript_lines: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    keep_missing: bool = False
    merged_into: Path | None = None
    updated: int = 0  # records of the merged corpus given a transcript
    added: int = 0  # records new to the merged corpus
    issues: dict[str, Issue] = field(default_factory=dict)

    def note(self, kind: str, place: str) -> None:
        """Record one dropped or changed item of ``kind`` at ``place``."""
        self.issues.setdefault(kind, Issue()).add(place)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON (for ``--json``)."""
        return {
            "format": self.format,
            "files": [str(f) for f in self.files],
            "videos": self.videos,
            "segments": self.segments,
            "captions": self.captions,
            "transcript_lines": self.transcript_lines,
            "splits": self.splits,
            "missing_videos": {
                "count": len(self.missing),
                "first": self.missing[:MAX_EXAMPLES],
                "kept": self.keep_missing,
            },
            "merged_into": None if self.merged_into is None else str(self.merged_into),
            "updated": self.updated,
            "added": self.added,
            "issues": {
                kind: {"count": i.count, "first": i.examples} for kind, i in self.issues.items()
            },
        }
