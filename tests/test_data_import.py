"""`vidcap data import` / `vidcap data stats`: each public format as its project publishes it.

The fixtures are small hand-made files in each dataset's published shape, with awkward entries:
unicode, empty sentences, overlapping segments, segments past the video's end, ids with dashes.
Video files are empty stand-ins (only their names are looked up), except in the test that runs the
imported corpus through `vidcap extract`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidcap.cli import app
from vidcap.corpus import Segment, TranscriptLine, VideoRecord, read_corpus, write_corpus
from vidcap.datasets.importers import VideoIndex, corpus_stats, import_corpus
from vidcap.datasets.importers.common import (
    BAD_SEGMENT,
    CLIPPED_SEGMENT,
    EMPTY_CAPTION,
    EMPTY_TRANSCRIPT,
    ORPHAN_CAPTION,
    REPLACED_TRANSCRIPT,
    UNCAPTIONED_SEGMENT,
    split_from_filename,
)
from vidcap.errors import VidcapError

runner = CliRunner()


def data(*args: str | Path):
    return runner.invoke(app, ["data", *map(str, args)])


def write_json(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


def touch(folder: Path, *names: str) -> None:
    """Empty stand-ins for video files: the importers only look their names up."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def by_id(corpus: Path) -> dict[str, VideoRecord]:
    return {r.id: r for r in read_corpus(corpus)}


def spans(record: VideoRecord) -> list[tuple[float, float, list[str]]]:
    return [(s.start, s.end, s.captions) for s in record.segments]


# --------------------------------------------------------------------------------------------------
# YouCook2

YOUCOOK2 = {
    "database": {
        "GLGwzwMvqbc": {
            "duration": 241.62,
            "subset": "training",
            "recipe_type": "113",
            "video_url": "https://www.youtube.com/watch?v=GLGwzwMvqbc",
            "annotations": [
                {
                    "segment": [90, 102],
                    "id": 0,
                    "sentence": "spread margarine on two slices of bread",
                },
                {
                    "segment": [114, 127],
                    "id": 1,
                    "sentence": "place a slice of cheese on the bread",
                },
                # overlaps the one before; unicode and surrounding spaces
                {"segment": [120, 135], "id": 2, "sentence": "  put crème fraîche on it 🍞 "},
                {"segment": [140, 140], "id": 3, "sentence": "zero length"},
                {"segment": [230, 250], "id": 4, "sentence": "runs past the end"},
                {"segment": [150, 160], "id": 5, "sentence": "   "},
            ],
        },
        "-0cIn4Zg_-E": {
            "duration": 175.0,
            "subset": "validation",
            "recipe_type": "201",
            "annotations": [{"segment": [5, 20], "id": 0, "sentence": "boil the noodles"}],
        },
        "xHr8X2Wpmno": {
            "duration": 100.0,
            "subset": "training",
            "recipe_type": "113",
            "annotations": [{"segment": [1, 2], "id": 0, "sentence": "never downloaded"}],
        },
    }
}


def youcook2_fixture(tmp_path: Path) -> tuple[Path, Path]:
    annotations = write_json(tmp_path / "youcookii_annotations_trainval.json", YOUCOOK2)
    videos = tmp_path / "videos"
    touch(videos, "training/113/GLGwzwMvqbc.mp4", "validation/201/-0cIn4Zg_-E.mkv")
    # Near misses that must not match the missing video: another case, not a video, partial.
    touch(videos, "xhr8x2wpmno.mp4", "xHr8X2Wpmno.txt", "xHr8X2Wpmno.mp4.part")
    return annotations, videos


def test_youcook2_import(tmp_path: Path) -> None:
    annotations, videos = youcook2_fixture(tmp_path)
    out = tmp_path / "corpus.jsonl"
    result = data("import", "youcook2", annotations, "--videos", videos, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["videos"] == 2 and report["segments"] == 5 and report["captions"] == 5
    assert report["splits"] == {"train": 1, "val": 1, "test": 0}
    assert report["missing_videos"] == {"count": 1, "first": ["xHr8X2Wpmno"], "kept": False}
    issues = report["issues"]
    key = f'{annotations}: ["database"]["GLGwzwMvqbc"]["annotations"]'
    assert issues[EMPTY_CAPTION] == {"count": 1, "first": [f'{key}[5]["sentence"]']}
    assert issues[UNCAPTIONED_SEGMENT] == {"count": 1, "first": [f"{key}[5]"]}
    assert issues[BAD_SEGMENT] == {"count": 1, "first": [f"{key}[3] (140..140 s)"]}
    assert issues[CLIPPED_SEGMENT] == {"count": 1, "first": [f"{key}[4] (ends 250 s > 241.62 s)"]}

    records = by_id(out)
    assert list(records) == ["GLGwzwMvqbc", "-0cIn4Zg_-E"]
    glg = records["GLGwzwMvqbc"]
    assert glg.split == "train" and glg.duration == 241.62
    assert glg.video == (videos / "training/113/GLGwzwMvqbc.mp4").resolve()
    assert spans(glg) == [
        (90, 102, ["spread margarine on two slices of bread"]),
        (114, 127, ["place a slice of cheese on the bread"]),
        (120, 135, ["put crème fraîche on it 🍞"]),
        (230, 241.62, ["runs past the end"]),
    ]
    assert glg.meta == {
        "dataset": "youcook2",
        "recipe_type": "113",
        "video_url": "https://www.youtube.com/watch?v=GLGwzwMvqbc",
    }
    dashed = records["-0cIn4Zg_-E"]
    assert dashed.split == "val" and dashed.video.name == "-0cIn4Zg_-E.mkv"
    # The corpus stores video paths relative to its folder, unicode unescaped.
    text = out.read_text(encoding="utf-8")
    assert '"video": "videos/training/113/GLGwzwMvqbc.mp4"' in text and "crème fraîche" in text


def test_youcook2_summary_table_and_keep_missing(tmp_path: Path) -> None:
    annotations, videos = youcook2_fixture(tmp_path)
    out = tmp_path / "corpus.jsonl"
    result = data("import", "youcook2", annotations, "--videos", videos, "--out", out)
    assert result.exit_code == 0, result.output
    assert "1 left out: xHr8X2Wpmno" in result.output and EMPTY_CAPTION in result.output

    # Rerunning onto the same file needs --force; --keep-missing keeps the missing video.
    result = data("import", "youcook2", annotations, "--videos", videos, "--out", out)
    assert result.exit_code == 1 and f"{out} exists; pass --force" in result.output
    args = ("--videos", videos, "--out", out, "--keep-missing", "--force")
    result = data("import", "youcook2", annotations, *args)
    assert result.exit_code == 0, result.output
    missing = by_id(out)["xHr8X2Wpmno"]
    assert missing.video == (videos / "xHr8X2Wpmno.mp4").resolve() and not missing.video.exists()
    assert corpus_stats(read_corpus(out)).missing_videos == ["xHr8X2Wpmno"]


def test_youcook2_test_file_has_no_sentences(tmp_path: Path) -> None:
    test_file = {
        "database": {
            "a1b2c3d4e5f": {
                "duration": 60.0,
                "subset": "testing",
                "recipe_type": "101",
                "annotations": [{"segment": [0, 10], "id": 0}],
            }
        }
    }
    annotations = write_json(tmp_path / "youcookii_annotations_test_segments_only.json", test_file)
    touch(tmp_path / "v", "a1b2c3d4e5f.webm")
    records, report = import_corpus("youcook2", [annotations], tmp_path / "v")
    assert [(r.id, r.split, r.segments) for r in records] == [("a1b2c3d4e5f", "test", [])]
    assert report.issues[UNCAPTIONED_SEGMENT].count == 1


# --------------------------------------------------------------------------------------------------
# MSR-VTT

MSRVTT_TRAIN_VAL = {
    "info": {"contributor": "Microsoft MSM group", "year": "2016"},
    "videos": [
        {
            "category": 9,
            "url": "https://www.youtube.com/watch?v=9lZi22qLlEo",
            "video_id": "video0",
            "start time": 137.72,
            "end time": 149.44,
            "split": "train",
            "id": 0,
        },
        {
            "category": 16,
            "url": "https://www.youtube.com/watch?v=w4JM08PDEng",
            "video_id": "video6513",
            "start time": 10.0,
            "end time": 25.5,
            "split": "validate",
            "id": 6513,
        },
    ],
    "sentences": [
        {"caption": "a car is shown", "video_id": "video0", "sen_id": 0},
        {"caption": "a red car drives down a road", "video_id": "video0", "sen_id": 1},
        {"caption": "", "video_id": "video0", "sen_id": 2},
        {"caption": "people talk about a café", "video_id": "video6513", "sen_id": 3},
        {"caption": "a caption of no listed video", "video_id": "video99999", "sen_id": 4},
    ],
}
MSRVTT_TEST = {
    "videos": [
        {
            "category": 3,
            "url": "https://www.youtube.com/watch?v=abc",
            "video_id": "video7010",
            "start time": 0,
            "end time": 12,
            "split": "test",
            "id": 7010,
        }
    ],
    "sentences": [{"caption": "a man sings", "video_id": "video7010", "sen_id": 140200}],
}


def test_msrvtt_import(tmp_path: Path) -> None:
    train_val = write_json(tmp_path / "train_val_videodatainfo.json", MSRVTT_TRAIN_VAL)
    test = write_json(tmp_path / "test_videodatainfo.json", MSRVTT_TEST)
    videos = tmp_path / "MSRVTT"
    touch(
        videos, "TrainValVideo/video0.mp4", "TrainValVideo/video6513.mp4", "TestVideo/video7010.mp4"
    )
    records, report = import_corpus("msrvtt", [train_val, test], videos)
    got = {r.id: r for r in records}
    assert [(r.id, r.split) for r in records] == [
        ("video0", "train"),
        ("video6513", "val"),
        ("video7010", "test"),
    ]
    # The clip is the whole downloaded file: 0 .. end time - start time (137.72..149.44).
    assert got["video0"].duration == 11.72
    assert spans(got["video0"]) == [
        (0.0, 11.72, ["a car is shown", "a red car drives down a road"])
    ]
    assert got["video0"].meta == {
        "dataset": "msrvtt",
        "start_time": 137.72,
        "end_time": 149.44,
        "video_url": "https://www.youtube.com/watch?v=9lZi22qLlEo",
        "category": 9,
    }
    assert spans(got["video6513"]) == [(0.0, 15.5, ["people talk about a café"])]
    assert spans(got["video7010"]) == [(0.0, 12.0, ["a man sings"])]
    assert report.issues[EMPTY_CAPTION].count == 1
    assert report.issues[ORPHAN_CAPTION].examples == [f'{train_val}: ["sentences"][4]']
    assert report.missing == []


# --------------------------------------------------------------------------------------------------
# ActivityNet Captions

ACTIVITYNET_TRAIN = {
    "v_QOlSCBRmfWY": {
        "duration": 82.73,
        "timestamps": [[0.83, 19.86], [17.37, 60.81], [56.26, 79.42]],
        "sentences": [
            "A young woman is seen standing in a room and leads into her dancing.",
            "  The girl dances around the room while the camera captures her movements.",
            " She continues dancing around the room and ends by laying on the floor.",
        ],
    },
    "v_ehGHCYKzyZ8": {
        "duration": 61.72,
        "timestamps": [[0, 15.12], [15.12, 62.5]],
        "sentences": ["Un homme prépare du café ☕.", "He pours it into a cup."],
    },
}
ACTIVITYNET_VAL_1 = {
    "v_uqiMw7tQ1Cc": {
        "duration": 55.15,
        "timestamps": [[0.28, 55.15], [13.79, 54.32]],
        "sentences": [
            "A weight lifting tutorial is given.",
            "  The coach helps the guy in red with the proper body placement.",
        ],
    }
}
ACTIVITYNET_VAL_2 = {
    "v_uqiMw7tQ1Cc": {
        "duration": 55.15,
        "timestamps": [[0.28, 55.15], [30.0, 50.0]],
        "sentences": ["A man lifts weights.", "He drops the bar."],
    }
}


def test_activitynet_import(tmp_path: Path) -> None:
    files = [
        write_json(tmp_path / "captions/train.json", ACTIVITYNET_TRAIN),
        write_json(tmp_path / "captions/val_1.json", ACTIVITYNET_VAL_1),
        write_json(tmp_path / "captions/val_2.json", ACTIVITYNET_VAL_2),
    ]
    videos = tmp_path / "videos"
    # Video files are named with or without the "v_" prefix.
    touch(videos, "QOlSCBRmfWY.mp4", "v_ehGHCYKzyZ8.webm", "v_uqiMw7tQ1Cc.mp4")
    records, report = import_corpus("activitynet", files, videos)
    got = {r.id: r for r in records}
    assert [(r.id, r.split, r.video.name) for r in records] == [
        ("v_QOlSCBRmfWY", "train", "QOlSCBRmfWY.mp4"),
        ("v_ehGHCYKzyZ8", "train", "v_ehGHCYKzyZ8.webm"),
        ("v_uqiMw7tQ1Cc", "val", "v_uqiMw7tQ1Cc.mp4"),
    ]
    assert spans(got["v_QOlSCBRmfWY"]) == [
        (0.83, 19.86, ["A young woman is seen standing in a room and leads into her dancing."]),
        (
            17.37,
            60.81,
            ["The girl dances around the room while the camera captures her movements."],
        ),
        (56.26, 79.42, ["She continues dancing around the room and ends by laying on the floor."]),
    ]
    assert spans(got["v_ehGHCYKzyZ8"]) == [
        (0.0, 15.12, ["Un homme prépare du café ☕."]),
        (15.12, 61.72, ["He pours it into a cup."]),
    ]
    assert report.issues[CLIPPED_SEGMENT].examples == [
        f'{files[0]}: ["v_ehGHCYKzyZ8"]["timestamps"][1] (ends 62.5 s > 61.72 s)'
    ]
    # val_1 and val_2 annotate the same video: pooled, the shared span keeps both captions.
    assert spans(got["v_uqiMw7tQ1Cc"]) == [
        (0.28, 55.15, ["A weight lifting tutorial is given.", "A man lifts weights."]),
        (13.79, 54.32, ["The coach helps the guy in red with the proper body placement."]),
        (30.0, 50.0, ["He drops the bar."]),
    ]


def test_activitynet_split_from_option_when_the_name_does_not_say(tmp_path: Path) -> None:
    path = write_json(tmp_path / "my_annotations.json", ACTIVITYNET_VAL_2)
    touch(tmp_path / "v", "uqiMw7tQ1Cc.mp4")
    with pytest.raises(VidcapError, match="cannot tell the split from the file name; pass --split"):
        import_corpus("activitynet", [path], tmp_path / "v")
    records, _ = import_corpus("activitynet", [path], tmp_path / "v", split="test")
    assert [(r.id, r.split) for r in records] == [("v_uqiMw7tQ1Cc", "test")]


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("train.json", "train"),
        ("val_1.json", "val"),
        ("val_2.json", "val"),
        ("vatex_training_v1.0.json", "train"),
        ("vatex_validation_v1.0.json", "val"),
        ("vatex_public_test_english_v1.1.json", "test"),
    ],
)
def test_split_from_published_file_names(name: str, split: str) -> None:
    assert split_from_filename(Path(name)) == split


# --------------------------------------------------------------------------------------------------
# VATEX

VATEX_TRAIN = [
    {
        "videoID": "Ptf_2VRj-V0_000122_000132",
        "enCap": [
            "A man is playing the bagpipes on a stage.",
            "",
            "Un homme joue de la cornemuse — très fort.",
        ],
        "chCap": ["一个男人在舞台上吹风笛。"],
    },
    {
        "videoID": "--8Ck1TWtZU_000004_000014",
        "enCap": ["Kids dance in a gym."],
        "chCap": ["孩子们在体育馆跳舞。"],
    },
    {"videoID": "abcdefghijk_000001_000011", "enCap": ["Never downloaded."], "chCap": ["没有"]},
]


def test_vatex_import_clip_files_and_source_files(tmp_path: Path) -> None:
    annotations = write_json(tmp_path / "vatex_training_v1.0.json", VATEX_TRAIN)
    videos = tmp_path / "videos"
    # One clip named by its full videoID; one source video named by its YouTube id alone.
    touch(videos, "Ptf_2VRj-V0_000122_000132.mp4", "--8Ck1TWtZU.mkv")
    out = tmp_path / "corpus.jsonl"
    result = data("import", "vatex", annotations, "--videos", videos, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["missing_videos"]["first"] == ["abcdefghijk_000001_000011"]
    records = by_id(out)
    clip = records["Ptf_2VRj-V0_000122_000132"]
    assert clip.split == "train" and clip.duration == 10.0
    assert spans(clip) == [
        (
            0.0,
            10.0,
            [
                "A man is playing the bagpipes on a stage.",
                "Un homme joue de la cornemuse — très fort.",
            ],
        )
    ]
    assert clip.meta == {
        "dataset": "vatex",
        "youtube_id": "Ptf_2VRj-V0",
        "clip_start": 122,
        "clip_end": 132,
        "video_is": "clip",
    }
    source = records["--8Ck1TWtZU_000004_000014"]
    assert source.video.name == "--8Ck1TWtZU.mkv" and source.duration is None
    assert spans(source) == [(4.0, 14.0, ["Kids dance in a gym."])]
    assert source.meta["video_is"] == "source" and source.meta["youtube_id"] == "--8Ck1TWtZU"
    assert "风笛" not in out.read_text(encoding="utf-8")  # chCap is ignored


# --------------------------------------------------------------------------------------------------
# HowTo100M ASR captions and subtitles (transcripts)

HOWTO100M = {
    "-0y--mU1qvI": {
        "start": [0.0, 4.2, 9.5],
        "end": [5.1, 9.8, 12.0],
        "text": ["so today we're gonna make", "", "a delicious pan con tomate, señor"],
    },
    "newvideo123": {"start": [1.0], "end": [2.5], "text": ["hello"]},
    "zzzzzzzzzzz": {"start": [1.0], "end": [2.0], "text": ["nobody has this video"]},
}


def test_howto100m_merges_into_an_existing_corpus(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    touch(videos, "-0y--mU1qvI.mp4", "keep-me.mp4", "newvideo123.webm")
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(
        corpus,
        [
            VideoRecord(
                "keep-me", videos / "keep-me.mp4", "val", 3.0, [Segment(0, 1, ["a caption"])]
            ),
            VideoRecord(
                "-0y--mU1qvI",
                videos / "-0y--mU1qvI.mp4",
                "test",
                12.5,
                segments=[Segment(0, 5, ["slice the bread"])],
                transcript=[TranscriptLine(0, 1, "an old transcript")],
            ),
        ],
    )
    annotations = write_json(tmp_path / "raw_caption.json", HOWTO100M)
    # Merging in place: --out may be the merged corpus itself, no --force needed.
    args = ("--videos", videos, "--merge", corpus, "--out", corpus, "--json")
    result = data("import", "howto100m", annotations, *args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["updated"], report["added"], report["videos"]) == (1, 1, 3)
    assert report["missing_videos"]["first"] == ["zzzzzzzzzzz"]
    assert report["issues"][EMPTY_TRANSCRIPT]["first"] == [
        f'{annotations}: ["-0y--mU1qvI"]["text"][1]'
    ]
    assert report["issues"][REPLACED_TRANSCRIPT]["count"] == 1

    records = read_corpus(corpus)
    assert [(r.id, r.split) for r in records] == [
        ("keep-me", "val"),
        ("-0y--mU1qvI", "test"),
        ("newvideo123", "train"),
    ]
    merged = records[1]
    assert merged.segments == [Segment(0, 5, ["slice the bread"])] and merged.duration == 12.5
    assert merged.transcript == [
        TranscriptLine(0.0, 5.1, "so today we're gonna make"),
        TranscriptLine(9.5, 12.0, "a delicious pan con tomate, señor"),
    ]
    assert records[0].transcript == [] and records[2].transcript == [
        TranscriptLine(1, 2.5, "hello")
    ]


SRT_TALK = """1
00:00:00,500 --> 00:00:02,000
Hello and welcome
to the talk — ünïcode

2
00:00:02,000 --> 00:00:03,000

3
00:00:03,500 --> 00:00:05,250
First, the eggs.
"""

VTT_EN = """WEBVTT

NOTE made by hand

intro
00:00.000 --> 00:01.500 align:start
<c>whisk</c> the eggs &amp; milk

00:00:02.000 --> 00:00:04.000
now fry them
"""


def test_srt_folder_starts_a_corpus(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    (subs / "nested").mkdir(parents=True)
    (subs / "talk-01.srt").write_text(SRT_TALK, encoding="utf-8")
    (subs / "nested/Ptf_2VRj-V0.en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nhi\n")
    (subs / "orphan.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nno video\n")
    # The videos sit beside their subtitles: no --videos needed.
    touch(subs, "talk-01.mp4", "nested/Ptf_2VRj-V0.mp4")
    records, report = import_corpus("srt", [subs], split="val")
    assert [(r.id, r.split, r.video.name) for r in records] == [
        ("Ptf_2VRj-V0", "val", "Ptf_2VRj-V0.mp4"),  # the ".en" language tag is not part of the id
        ("talk-01", "val", "talk-01.mp4"),
    ]
    assert records[1].transcript == [
        TranscriptLine(0.5, 2.0, "Hello and welcome to the talk — ünïcode"),
        TranscriptLine(3.5, 5.25, "First, the eggs."),
    ]
    assert report.issues[EMPTY_TRANSCRIPT].examples == [f"{subs / 'talk-01.srt'}: cue 2"]
    assert report.missing == ["orphan"] and report.transcript_lines == 3


def test_vtt_merges_by_id_and_bad_subtitles_name_the_file(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    touch(videos, "cooking-01.mp4")
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, [VideoRecord("cooking-01", videos / "cooking-01.mp4", "train")])
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "cooking-01.en-US.vtt").write_text(VTT_EN, encoding="utf-8")
    out = tmp_path / "with_speech.jsonl"
    records, report = import_corpus("vtt", [subs], videos, merge=corpus)
    assert report.updated == 1 and report.added == 0
    assert records[0].transcript == [
        TranscriptLine(0.0, 1.5, "whisk the eggs & milk"),
        TranscriptLine(2.0, 4.0, "now fry them"),
    ]

    bad = subs / "broken.vtt"
    bad.write_text("00:00.000 --> 00:01.000\nno header line\n")
    result = data("import", "vtt", subs, "--merge", corpus, "--out", out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: {bad}: A WebVTT file must start with a line 'WEBVTT'." in result.output
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# Malformed input: the file and the JSON path of what is wrong, as one sentence


@pytest.mark.parametrize(
    ("fmt", "name", "content", "message"),
    [
        (
            "activitynet",
            "train.json",
            {
                "v_abc": {
                    "duration": 9,
                    "timestamps": [[0, 1], [2, 3], [4]],
                    "sentences": ["a", "b", "c"],
                }
            },
            '["v_abc"]["timestamps"][2]: expected [start, end] in seconds, got [4].',
        ),
        (
            "activitynet",
            "train.json",
            [],
            "top level: expected an object of videos keyed by id, got a list.",
        ),
        (
            "activitynet",
            "val_1.json",
            {"v_abc": {"duration": 9, "timestamps": [[0, 1]], "sentences": ["a", "b"]}},
            '["v_abc"]: 1 timestamps but 2 sentences (each timestamp needs its sentence).',
        ),
        (
            "youcook2",
            "youcookii_annotations_trainval.json",
            {"database": {"abc": {"duration": 10, "subset": "training"}}},
            '["database"]["abc"]: missing key "annotations".',
        ),
        (
            "youcook2",
            "youcookii_annotations_trainval.json",
            {
                "database": {
                    "abc": {
                        "duration": 10,
                        "subset": "training",
                        "annotations": [{"segment": ["1", 2], "sentence": "x"}],
                    }
                }
            },
            '["database"]["abc"]["annotations"][0]["segment"]: expected [start, end] in seconds, got ["1", 2].',
        ),
        (
            "youcook2",
            "youcookii_annotations_trainval.json",
            {"database": {"abc": {"duration": 10, "subset": "train2", "annotations": []}}},
            '["database"]["abc"]["subset"]: unknown split a string "train2"',
        ),
        (
            "msrvtt",
            "train_val_videodatainfo.json",
            {
                "videos": [
                    {"video_id": "video0", "start time": "10.5", "end time": 20, "split": "train"}
                ],
                "sentences": [],
            },
            '["videos"][0]["start time"]: expected a number of seconds, got a string "10.5".',
        ),
        (
            "msrvtt",
            "test_videodatainfo.json",
            {"videos": []},
            'top level: missing key "sentences".',
        ),
        (
            "vatex",
            "vatex_training_v1.0.json",
            [{"videoID": "Ptf_2VRj-V0", "enCap": ["x"]}],
            "[0][\"videoID\"]: expected YOUTUBEID_START_END like 'Ptf_2VRj-V0_000122_000132', got 'Ptf_2VRj-V0'.",
        ),
        (
            "vatex",
            "vatex_training_v1.0.json",
            [{"videoID": "a_000001_000002"}],
            '[0]: missing key "enCap".',
        ),
        (
            "howto100m",
            "raw_caption.json",
            {"abc": {"start": [0, 1], "end": [1], "text": ["a", "b"]}},
            '["abc"]: "start", "end" and "text" have 2, 1 and 2 entries',
        ),
    ],
)
def test_malformed_files_fail_with_file_and_place(
    tmp_path: Path, fmt: str, name: str, content: object, message: str
) -> None:
    path = write_json(tmp_path / name, content)
    (tmp_path / "videos").mkdir()
    result = data(
        "import", fmt, path, "--videos", tmp_path / "videos", "--out", tmp_path / "c.jsonl"
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"error: {path}: {message}" in result.output
    assert not (tmp_path / "c.jsonl").exists()


def test_bad_usage_is_a_sentence(tmp_path: Path) -> None:
    annotations, videos = youcook2_fixture(tmp_path)
    bad_json = tmp_path / "train.json"
    bad_json.write_text('{"v_abc": {"duration": 1,}}')
    (tmp_path / "empty").mkdir()
    out = tmp_path / "c.jsonl"
    cases = [
        (("youcook2", annotations, "--out", out), "--videos DIR is needed"),
        (("youcook2", annotations, "--videos", tmp_path / "nope", "--out", out), "no such folder"),
        (
            ("youcook2", annotations, "--videos", videos, "--merge", out, "--out", out),
            "--merge adds transcripts",
        ),
        (
            ("youcook2", annotations, "--videos", tmp_path / "empty", "--out", out),
            "none of the 3 videos was found",
        ),
        (
            ("activitynet", bad_json, "--videos", videos, "--out", out),
            f"{bad_json}: not valid JSON",
        ),
        (
            ("activitynet", tmp_path / "absent.json", "--videos", videos, "--out", out),
            "annotation file not found",
        ),
    ]
    for args, message in cases:
        result = data("import", *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()
    assert data("import", "youkook2", annotations, "--out", out).exit_code == 2  # usage error
    bad_split = data(
        "import", "youcook2", annotations, "--videos", videos, "--split", "dev", "--out", out
    )
    assert bad_split.exit_code == 2 and "Invalid value for '--split'" in bad_split.output


# --------------------------------------------------------------------------------------------------
# Finding videos


def test_video_index_is_recursive_exact_and_prefers_mp4(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "a/b/c/Ptf_2VRj-V0.MKV",
        "x/clip.mkv",
        "y/clip.mp4",
        "notes/clip2.txt",
        ".hidden.mp4",
        "v.mpeg",
    )
    os.symlink(tmp_path / "a", tmp_path / "a/b/loop")  # a symlink loop must not hang the walk
    index = VideoIndex([tmp_path])
    assert len(index) == 3  # stems: Ptf_2VRj-V0, clip, v
    assert index.find(["Ptf_2VRj-V0"]) == ("Ptf_2VRj-V0", (tmp_path / "a/b/c/Ptf_2VRj-V0.MKV"))
    assert index.find(["ptf_2vrj-v0"]) is None  # YouTube ids are case-sensitive
    assert index.find(["clip"]) == ("clip", tmp_path / "y/clip.mp4")
    assert index.find(["missing", "v"]) == ("v", tmp_path / "v.mpeg")
    assert index.find(["clip2", ".hidden"]) is None


def test_a_symlinked_video_keeps_its_name(tmp_path: Path) -> None:
    touch(tmp_path, "store/blob-0001")
    (tmp_path / "videos").mkdir()
    os.symlink(tmp_path / "store/blob-0001", tmp_path / "videos/GLGwzwMvqbc.mp4")
    index = VideoIndex([tmp_path / "videos"])
    assert index.find(["GLGwzwMvqbc"]) == ("GLGwzwMvqbc", tmp_path / "videos/GLGwzwMvqbc.mp4")


# --------------------------------------------------------------------------------------------------
# Stats


def test_stats(tmp_path: Path) -> None:
    touch(tmp_path, "a.mp4", "b.mp4")
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(
        corpus,
        [
            VideoRecord(
                "a",
                tmp_path / "a.mp4",
                "train",
                3600.0,
                [Segment(0, 1, ["A cat sat.", "the CAT sat"]), Segment(1, 2, ["Don't stop"])],
            ),
            VideoRecord(
                "b", tmp_path / "b.mp4", "val", None, transcript=[TranscriptLine(0, 1, "um hi")]
            ),
            VideoRecord(
                "c-missing",
                tmp_path / "c.mp4",
                "test",
                1800.0,
                [Segment(0, 3, ["Café au lait", "a café", "cats"])],
            ),
        ],
    )
    result = data("stats", corpus, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "videos": 3,
        "segments": 3,
        "captions": 6,
        "captions_per_segment": {"mean": 2.0, "min": 1, "max": 3},
        # a cat sat the don't stop café au lait cats
        "vocabulary": 10,
        "hours": 1.5,
        "videos_without_duration": 1,
        "splits": {"train": 1, "val": 1, "test": 1},
        "missing_videos": {"count": 1, "first": ["c-missing"]},
        "transcripts": {"videos": 1, "lines": 1},
    }
    table = data("stats", corpus)
    assert table.exit_code == 0
    for text in ("1.500 + 1 videos of unknown duration", "10 words", "1: c-missing"):
        assert text in table.output, table.output
    assert data("stats", tmp_path / "absent.jsonl").exit_code == 1


# --------------------------------------------------------------------------------------------------
# The imported corpus runs through `vidcap extract` unchanged


def test_imported_youcook2_corpus_extracts(tmp_path: Path) -> None:
    from videos import coded_frames, write_cv2

    videos = tmp_path / "raw_videos"
    for split, video_id in [("training", "GLGwzwMvqbc"), ("validation", "-0cIn4Zg_-E")]:
        (videos / split).mkdir(parents=True)
        write_cv2(videos / split / f"{video_id}.avi", coded_frames(20, 48, 64), fps=10)
    annotations = write_json(
        tmp_path / "youcookii_annotations_trainval.json",
        {
            "database": {
                "GLGwzwMvqbc": {
                    "duration": 2.0,
                    "subset": "training",
                    "annotations": [{"segment": [0, 1], "id": 0, "sentence": "crack an egg"}],
                },
                "-0cIn4Zg_-E": {
                    "duration": 2.0,
                    "subset": "validation",
                    "annotations": [{"segment": [0.5, 2], "id": 0, "sentence": "stir"}],
                },
            }
        },
    )
    corpus = tmp_path / "corpus.jsonl"
    result = data("import", "youcook2", annotations, "--videos", videos, "--out", corpus)
    assert result.exit_code == 0, result.output
    frames = tmp_path / "frames"
    result = runner.invoke(
        app, ["extract", str(corpus), "--out", str(frames), "--size", "32", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"ok": 2, "failed": 0, "skipped": 0}
    index = [json.loads(line) for line in (frames / "index.jsonl").read_text().splitlines()]
    assert {(i["id"], i["split"]) for i in index} == {
        ("GLGwzwMvqbc", "train"),
        ("-0cIn4Zg_-E", "val"),
    }
