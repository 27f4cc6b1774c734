"""Turn command-line inputs (a corpus, video files, folders, or ``-`` for stdin) into videos."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vidcap.artifacts import file_sha256
from vidcap.corpus import iter_corpus, walk_videos
from vidcap.errors import VidcapError


@dataclass(frozen=True)
class VideoInput:
    """A video to process: its id (from the corpus, or derived from its path) and its split."""

    id: str
    path: Path
    split: str | None = None


@dataclass(frozen=True)
class ResolvedInputs:
    """The videos to process and the corpus files they came from (if any)."""

    videos: list[VideoInput]
    corpora: list[Path]

    def corpus_state(self) -> list[str]:
        """The corpus files as a stage's fingerprint takes them, by content (a sha256 each; none
        for bare videos): the same videos given through a corpus, through another or as bare
        files are not the same input, since later stages read the splits and captions from it.
        By content, so a corpus touched, copied or written again unchanged retrains nothing."""
        return [file_sha256(corpus) for corpus in self.corpora]


def _folder_videos(folder: Path) -> list[VideoInput]:
    """The videos below ``folder``, each with its path inside it as id: without its extension, or
    with it where only the extension tells two files apart (``d/clip.mp4``, ``d/clip.webm``), so
    that ids never depend on how the folder itself was written."""
    found = sorted(walk_videos(folder))
    stems = [p.relative_to(folder).with_suffix("").as_posix() for p in found]
    # Stems that differ only in case are shared too (:func:`_unique_ids`).
    shared = {stem for stem, n in Counter(s.casefold() for s in stems).items() if n > 1}
    return [
        VideoInput(p.relative_to(folder).as_posix() if stem.casefold() in shared else stem, p)
        for p, stem in zip(found, stems, strict=True)
    ]


def resolve_inputs(inputs: Iterable[str], stdin_lines: Iterable[str] = ()) -> ResolvedInputs:
    """Expand inputs into videos with unique ids.

    - ``*.jsonl``: a corpus; ids and splits come from it.
    - a folder: every file with a video extension below it; the id is its path inside the folder
      without extension.
    - ``-``: one path per line from ``stdin_lines``.
    - anything else: a video file, id = file name without extension; one that does not exist is
      refused (a typo). A missing file read from stdin or a corpus is kept instead: it becomes a
      failed item with a reason (``find … | vidcap extract -`` may race deletions).

    Raises:
        VidcapError: no input at all, a path given that does not exist, or two videos that
            would share an id.
    """
    videos: list[VideoInput] = []
    corpora: list[Path] = []
    for raw in inputs:
        if raw == "-":
            videos += [
                VideoInput(Path(s).stem, Path(s)) for s in (x.strip() for x in stdin_lines) if s
            ]
            continue
        path = Path(raw).expanduser()
        if path.suffix == ".jsonl":
            corpora.append(path.resolve())
            # A record at a time: a corpus's transcripts and captions are not needed here.
            videos += [VideoInput(r.id, r.video, r.split) for r in iter_corpus(path)]
        elif path.is_dir():
            videos += _folder_videos(path)
        elif not os.path.lexists(path):  # a typo: a "finished" folder of one failure helps nobody
            raise VidcapError(f"{path}: no such file or folder.")
        else:
            videos.append(VideoInput(path.stem, path))
    if not videos and corpora:
        raise VidcapError(f"{', '.join(map(str, corpora))} holds no videos.")
    if not videos:
        raise VidcapError("no videos to process: give a corpus.jsonl, video files, folders or -.")
    return ResolvedInputs(_unique_ids(videos), corpora)


def _unique_ids(videos: list[VideoInput]) -> list[VideoInput]:
    """Drop repeats of the same file and give different files distinct ids.

    Ids derived from a path (file stem) that clash are replaced by the path as given, without its
    extension (``a/clip`` and ``b/clip``), or with it where only the extension tells the files
    apart (``clip.mp4`` and ``clip.webm``: an original and its transcode). A clash involving a
    corpus id is an error, since corpus ids are the user's own; so is one that remains. Ids that
    differ only in case clash too: their files would be one file on a case-insensitive disk
    (macOS, Windows, exFAT, SMB shares), one video's frames written over the other's.
    """
    unique: dict[tuple[str, Path], VideoInput] = {}
    for video in videos:
        unique.setdefault((video.id, video.path.resolve()), video)
    result = []
    for group in _by_id(unique.values()).values():
        if len(group) == 1:
            result.append(group[0])
            continue
        if any(v.split is not None for v in group):
            raise _clash(group)
        ids = [v.path.with_suffix("").as_posix() for v in group]
        if len({i.casefold() for i in ids}) < len(ids):
            ids = [v.path.as_posix() for v in group]
        result += [VideoInput(new_id, v.path) for new_id, v in zip(ids, group, strict=True)]
    # A renamed id may meet another video's own (a file named like another's folder path).
    for group in _by_id(result).values():
        if len(group) > 1:
            raise _clash(group)
    return result


def _by_id(videos: Iterable[VideoInput]) -> dict[str, list[VideoInput]]:
    """The videos grouped by id, ids that differ only in case together."""
    by_id: dict[str, list[VideoInput]] = {}
    for video in videos:
        by_id.setdefault(video.id.casefold(), []).append(video)
    return by_id


def _clash(group: list[VideoInput]) -> VidcapError:
    paths = ", ".join(str(v.path) for v in group[:3])
    ids = sorted({v.id for v in group})
    if len(ids) > 1:  # only the case differs
        shown = ", ".join(repr(i) for i in ids[:3])
        where = "" if all(v.id == v.path.as_posix() for v in group) else f" ({paths})"
        return VidcapError(
            f"the ids {shown}{where} differ only in case: on a case-insensitive disk their "
            "files would be one; rename one of the files, or give the videos ids of their own in "
            "a corpus.jsonl."
        )
    return VidcapError(
        f"several videos share the id {ids[0]!r} ({paths}); ids must be unique: rename one "
        "of the files, or give the videos ids of their own in a corpus.jsonl."
    )
