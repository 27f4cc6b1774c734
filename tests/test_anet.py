"""The ActivityNet challenge's prediction JSON: written from results, read back, refused when
malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidcap.errors import VidcapError
from vidcap.output.anet import (
    ANET_VERSION,
    anet_document,
    anet_video_ids,
    parse_anet_predictions,
    read_anet_predictions,
)
from vidcap.output.formats import TimedCaption as T
from vidcap.output.formats import VideoCaptions


def results() -> list[VideoCaptions]:
    return [
        VideoCaptions(
            "clips/v_abc.mp4",
            [T(0.0, 3.2004, "a red circle moves left"), T(3.5, 9.0, "a square grows")],
            9.5,
        ),
        VideoCaptions("other/v_abc.webm", [T(1.0, 2.0, "a star spins")], 4.0),
        VideoCaptions("/data/x/cooking.mp4", [], 30.0),
    ]


def test_document_has_the_challenge_shape_and_reads_back(tmp_path: Path) -> None:
    document = anet_document(results())
    assert document["version"] == ANET_VERSION == "VERSION 1.0"
    assert document["external_data"] == {"used": False, "details": ""}
    # Ids are file stems, the second v_abc made unique; times rounded to the millisecond.
    assert document["results"] == {
        "v_abc": [
            {"sentence": "a red circle moves left", "timestamp": [0.0, 3.2]},
            {"sentence": "a square grows", "timestamp": [3.5, 9.0]},
        ],
        "v_abc-2": [{"sentence": "a star spins", "timestamp": [1.0, 2.0]}],
        "cooking": [],
    }
    path = tmp_path / "anet.json"
    path.write_text(json.dumps(document))
    assert read_anet_predictions(path) == {
        "v_abc": [T(0.0, 3.2, "a red circle moves left"), T(3.5, 9.0, "a square grows")],
        "v_abc-2": [T(1.0, 2.0, "a star spins")],
        "cooking": [],
    }


def test_corpus_ids_win_and_stems_avoid_them() -> None:
    videos = results()
    ids = {"/data/x/cooking.mp4": "v_abc", "other/v_abc.webm": "yc2-17"}
    # cooking.mp4 is filed as corpus id v_abc, so the stem v_abc of clips/v_abc.mp4 moves aside.
    assert anet_video_ids(videos, ids) == ["v_abc-2", "yc2-17", "v_abc"]
    document = anet_document(videos, ids, external_data={"used": True, "details": "S3D"})
    assert list(document["results"]) == ["v_abc-2", "yc2-17", "v_abc"]
    assert document["external_data"] == {"used": True, "details": "S3D"}


def test_two_results_with_one_corpus_id_are_refused() -> None:
    videos = results()
    ids = {"clips/v_abc.mp4": "same", "other/v_abc.webm": "same"}
    with pytest.raises(VidcapError, match="are both video 'same'"):
        anet_document(videos, ids)


def test_only_results_is_required() -> None:
    # SODA asks for results alone; densevid_eval's version and external_data are optional here.
    assert parse_anet_predictions({"results": {"v": [{"timestamp": [1, 2], "sentence": "x"}]}}) == {
        "v": [T(1.0, 2.0, "x")]
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"is not valid JSON \(Expecting property name .* at line 1, column 2\)"),
        ("[1, 2]", 'has no "results" object'),
        ('{"version": "VERSION 1.0"}', 'has no "results" object'),
        ('{"results": [1]}', 'has no "results" object'),
        ('{"results": {"v": {"timestamp": [0, 1]}}}', r"results\['v'\] must be a list of events"),
        ('{"results": {"v": [7]}}', r"results\['v'\]\[0\] must be an object"),
        ('{"results": {"v": [{"timestamp": [0, 1]}]}}', "needs a sentence"),
        ('{"results": {"v": [{"timestamp": [0], "sentence": "x"}]}}', "two numbers"),
        ('{"results": {"v": [{"timestamp": "0-1", "sentence": "x"}]}}', "two numbers"),
        ('{"results": {"v": [{"timestamp": [true, 1], "sentence": "x"}]}}', "two numbers"),
        ('{"results": {"v": [{"timestamp": [-1, 1], "sentence": "x"}]}}', "from 0 on"),
        ('{"results": {"v": [{"timestamp": [0, NaN], "sentence": "x"}]}}', "finite numbers"),
        ('{"results": {"v": [{"timestamp": [5, 1], "sentence": "x"}]}}', "ends before it starts"),
    ],
)
def test_malformed_files_are_one_sentence(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "anet.json"
    path.write_text(content)
    with pytest.raises(VidcapError, match=message) as caught:
        read_anet_predictions(path)
    assert str(caught.value).count(". ") <= 1 and "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_folder_and_binary(tmp_path: Path) -> None:
    with pytest.raises(VidcapError, match="prediction file not found"):
        read_anet_predictions(tmp_path / "nope.json")
    with pytest.raises(VidcapError, match="is a folder"):
        read_anet_predictions(tmp_path)
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(VidcapError, match="not UTF-8"):
        read_anet_predictions(binary)
