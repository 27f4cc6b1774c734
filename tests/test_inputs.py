"""Command-line inputs (files, folders, a corpus, stdin) resolved to videos with unique ids."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vidcap.errors import VidcapError
from vidcap.stages.inputs import resolve_inputs


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_files_that_differ_only_in_extension_both_stay(tmp_path: Path) -> None:
    # An original and its transcode (clip.mp4, clip.webm): both were given the id "d/clip", and
    # one was silently never processed.
    d = tmp_path / "d"
    _touch(d / "clip.mp4", d / "clip.webm", d / "other.mp4")
    for inputs in ([str(d / "clip.mp4"), str(d / "clip.webm")], [str(d)]):
        videos = resolve_inputs(inputs).videos
        assert sorted(v.path.name for v in videos if "clip" in v.id) == ["clip.mp4", "clip.webm"]
        assert len({v.id for v in videos}) == len(videos)
    # From a folder, the ids are paths inside it (with the extension where it is the difference),
    # however the folder is written.
    for written in (str(d), f"{d}/", str(Path(os.path.relpath(d)))):
        ids = {v.id for v in resolve_inputs([written]).videos}
        assert ids == {"clip.mp4", "clip.webm", "other"}


def test_same_names_in_different_folders_keep_their_folders(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4")
    videos = resolve_inputs([str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b" / "clip.mp4")])
    assert sorted(v.id for v in videos.videos) == [
        (tmp_path / "a" / "clip").as_posix(),
        (tmp_path / "b" / "clip").as_posix(),
    ]


def test_the_same_file_twice_is_one_video(tmp_path: Path) -> None:
    _touch(tmp_path / "clip.mp4")
    videos = resolve_inputs([str(tmp_path / "clip.mp4"), str(tmp_path / "." / "clip.mp4")])
    assert [v.id for v in videos.videos] == ["clip"]


def test_a_corpus_id_that_a_file_also_takes_is_a_sentence(tmp_path: Path) -> None:
    _touch(tmp_path / "x.mp4", tmp_path / "other" / "clip.mp4")
    corpus = tmp_path / "corpus.jsonl"
    record = {"id": "clip", "video": "x.mp4", "split": "train", "segments": []}
    corpus.write_text(json.dumps(record) + "\n")
    with pytest.raises(VidcapError, match=r"several videos share the id 'clip'.*rename one"):
        resolve_inputs([str(corpus), str(tmp_path / "other" / "clip.mp4")])


def test_ids_that_differ_only_in_case_are_told_apart_or_refused(tmp_path: Path) -> None:
    """On a case-insensitive disk (macOS, exFAT, an SMB share) `Clip` and `clip` are one file:
    one video's frames were written over the other's (and a failed one deleted the other's)."""
    _touch(tmp_path / "a" / "Clip.mp4", tmp_path / "b" / "clip.mp4")
    videos = resolve_inputs([str(tmp_path / "a" / "Clip.mp4"), str(tmp_path / "b" / "clip.mp4")])
    assert sorted(v.id for v in videos.videos) == [
        (tmp_path / "a" / "Clip").as_posix(),
        (tmp_path / "b" / "clip").as_posix(),
    ]
    # In one folder, told apart by their extensions, however the folder is written.
    _touch(tmp_path / "d" / "Clip.mp4", tmp_path / "d" / "clip.webm")
    for written in (str(tmp_path / "d"), os.path.relpath(tmp_path / "d")):
        ids = sorted(v.id for v in resolve_inputs([written]).videos)
        assert ids == ["Clip.mp4", "clip.webm"], written
    _touch(tmp_path / "c" / "Clip.mp4", tmp_path / "c" / "clip.mp4")
    with pytest.raises(VidcapError, match=r"Clip.mp4', '[^(]*/c/clip.mp4' differ only in case"):
        resolve_inputs([str(tmp_path / "c")])
    corpus = tmp_path / "corpus.jsonl"
    records = [
        {"id": id_, "video": "a/Clip.mp4", "split": "train", "segments": []}
        for id_ in ("v_AbC", "v_abc")
    ]
    records[1]["video"] = "b/clip.mp4"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(VidcapError, match=r"'v_AbC', 'v_abc' \(.*\) differ only in case"):
        resolve_inputs([str(corpus)])


def test_a_folder_gives_camera_and_disc_videos_and_leaves_hidden_files(tmp_path: Path) -> None:
    # A camera card's AVCHD .MTS / .m2ts and a DVD's .VOB were skipped without a word, and the
    # macOS "._" file copied beside each video was taken for one (and failed the run).
    root = tmp_path / "card"
    _touch(
        root / "00001.MTS",
        root / "00002.m2ts",
        root / "VIDEO_TS" / "VTS_01_1.VOB",
        root / "clip.mp4",
        root / "._clip.mp4",
        root / ".Trash-1000" / "old.mp4",
        root / "notes.txt",
    )
    (tmp_path / "elsewhere").mkdir()
    _touch(tmp_path / "elsewhere" / "linked.mkv")
    (root / "link").symlink_to(tmp_path / "elsewhere")
    ids = [v.id for v in resolve_inputs([str(root)]).videos]
    assert ids == ["00001", "00002", "VIDEO_TS/VTS_01_1", "clip", "link/linked"]


def test_an_empty_corpus_is_named(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n")
    with pytest.raises(VidcapError, match=r"corpus.jsonl holds no videos\.$"):
        resolve_inputs([str(corpus)])
