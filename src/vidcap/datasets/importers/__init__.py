"""Import public video-captioning datasets and subtitle folders into a vidcap corpus.

``import_corpus("youcook2", [annotations], videos_dir)`` returns the corpus records and a report of
what was dropped, changed or missing; the caller writes them with
:func:`vidcap.corpus.write_corpus`. The input shapes are documented in ``docs/datasets.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from vidcap.corpus import VideoRecord, read_corpus
from vidcap.datasets.importers.assemble import build_records, merge_transcripts, summarize
from vidcap.datasets.importers.captions import (
    read_activitynet,
    read_msrvtt,
    read_vatex,
    read_youcook2,
)
from vidcap.datasets.importers.common import (
    MAX_EXAMPLES,
    AnnotationFile,
    Entry,
    ImportReport,
    Issue,
    VideoIndex,
    check_split,
)
from vidcap.datasets.importers.stats import CorpusStats, corpus_stats
from vidcap.datasets.importers.transcripts import read_howto100m, read_subtitles
from vidcap.errors import VidcapError

__all__ = [
    "FORMATS",
    "CorpusStats",
    "ImportReport",
    "Issue",
    "VideoIndex",
    "corpus_stats",
    "import_corpus",
]

_JsonReader = Callable[[AnnotationFile, str | None, ImportReport], list[Entry]]

_JSON_READERS: dict[str, _JsonReader] = {
    "youcook2": read_youcook2,
    "msrvtt": read_msrvtt,
    "activitynet": read_activitynet,
    "vatex": read_vatex,
    "howto100m": read_howto100m,
}

# Every format, with the files it reads.
FORMATS: dict[str, str] = {
    "youcook2": "youcookii_annotations_trainval.json",
    "msrvtt": "train_val_videodatainfo.json / test_videodatainfo.json",
    "activitynet": "ActivityNet Captions train.json / val_1.json / val_2.json",
    "vatex": "vatex_training_v1.0.json / vatex_validation_v1.0.json / vatex_public_test_english_v1.1.json",
    "howto100m": "HowTo100M ASR captions raw_caption.json / caption.json (transcripts)",
    "srt": "folders of SubRip files, one per video (transcripts)",
    "vtt": "folders of WebVTT files, one per video (transcripts)",
}
TRANSCRIPT_FORMATS = ("howto100m", "srt", "vtt")


def import_corpus(
    fmt: str,
    annotations: Sequence[Path],
    videos: Path | None = None,
    *,
    split: str | None = None,
    keep_missing: bool = False,
    merge: Path | None = None,
    on_phase: Callable[[str], object] | None = None,
) -> tuple[list[VideoRecord], ImportReport]:
    """Read annotation files of format ``fmt`` and build corpus records for the videos found.

    Args:
        fmt: one of :data:`FORMATS`.
        annotations: the dataset's annotation files (for ``srt`` / ``vtt``: files or folders).
        videos: the folder searched (recursively, once) for each video by id; for ``srt`` / ``vtt``
            the subtitle folders are searched when it is not given.
        split: ``train``, ``val`` or ``test`` for every video, instead of the source's own split.
        keep_missing: keep videos whose file is not found (their path is ``VIDEOS/<id>.mp4``).
        merge: an existing corpus (transcript formats only): its records get the transcripts of
            the same ids; other ids become new records.
        on_phase: called with a short description as each phase starts (for a spinner).

    Raises:
        VidcapError: an unknown format, a malformed file (naming the file and the JSON path), no
            video found at all, or options that do not fit the format.
    """
    if fmt not in FORMATS:
        raise VidcapError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    check_split(split)
    if not annotations:
        raise VidcapError("give at least one annotation file.")
    if merge is not None and fmt not in TRANSCRIPT_FORMATS:
        raise VidcapError(
            f"--merge adds transcripts to a corpus; it works with {', '.join(TRANSCRIPT_FORMATS)}, "
            f"not {fmt}."
        )
    phase = on_phase or (lambda _: None)
    report = ImportReport(fmt, list(annotations), keep_missing=keep_missing, merged_into=merge)

    phase("reading annotations")
    if fmt in ("srt", "vtt"):
        entries = read_subtitles(fmt, annotations, split, report)
    else:
        entries = []
        for path in annotations:
            entries += _JSON_READERS[fmt](AnnotationFile(path), split, report)
    existing = read_corpus(merge) if merge is not None else None

    phase("finding videos")
    roots = _video_roots(fmt, annotations, videos, merging=merge is not None)
    index = VideoIndex(roots)
    missing_root = (roots[0] if roots else Path()).resolve()
    if existing is not None:
        records = merge_transcripts(existing, entries, index, report, keep_missing, missing_root)
    else:
        records = build_records(entries, index, report, keep_missing, missing_root)
    summarize(records, report)
    if not records:
        if not entries:
            raise VidcapError("the annotation files describe no videos.")
        first = ", ".join(report.missing[:MAX_EXAMPLES])
        where = ", ".join(str(r) for r in roots) or "(no --videos folder given)"
        raise VidcapError(
            f"none of the {len(report.missing)} videos was found under {where} "
            f"(first ids: {first}); check --videos, or pass --keep-missing to keep them."
        )
    return records, report


def _video_roots(
    fmt: str, annotations: Sequence[Path], videos: Path | None, merging: bool
) -> list[Path]:
    if videos is not None:
        return [videos]
    if fmt in ("srt", "vtt"):
        # Subtitles often sit beside their videos.
        return list(dict.fromkeys(p if p.is_dir() else p.parent for p in annotations))
    if merging:
        return []  # only the merged corpus's own records can take transcripts
    raise VidcapError(f"--videos DIR is needed: the folder holding the {fmt} videos.")
