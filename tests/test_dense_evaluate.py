"""Scoring dense predictions against a corpus split: `score_dense`, its floor and ceiling rows,
bad input, and `vidcap evaluate --task dense --predictions` (no Java: the Python tokenizer, no
METEOR, so these stay fast; the metrics themselves are checked in test_dense_metrics.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidcap.cli import app
from vidcap.corpus import Segment, VideoRecord, write_corpus
from vidcap.errors import VidcapError
from vidcap.evaluation.dense import reference_sets, score_dense
from vidcap.metrics import captions
from vidcap.output.anet import anet_document
from vidcap.output.formats import TimedCaption as T
from vidcap.output.formats import VideoCaptions

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captions, "java_available", lambda: False)


def record(video_id: str, split: str, segments: list[Segment], duration: float = 60.0):
    return VideoRecord(video_id, Path(f"{video_id}.mp4"), split, duration, segments)


RED = ["a red circle moves left", "the crimson disc slides left"]
BLUE = ["a blue square grows", "the azure box gets bigger"]
STAR = ["a green star spins", "the emerald star rotates"]

CORPUS = [
    record("t1", "train", [Segment(0, 10, RED), Segment(20, 30, BLUE)]),
    record("t2", "train", [Segment(5, 15, BLUE)]),
    record("v1", "val", [Segment(0, 8, STAR)]),
    record("x1", "test", [Segment(2, 12, RED), Segment(30, 45, STAR), Segment(45, 50, BLUE)]),
    record("x2", "test", [Segment(0, 20, BLUE), Segment(25, 40, RED)], duration=40.0),
    record("x3", "test", []),  # no events: not scored
]


def truth(video_id: str) -> list[T]:
    return reference_sets(next(r for r in CORPUS if r.id == video_id))[0]


def test_reference_sets_are_the_kth_captions() -> None:
    sets = reference_sets(CORPUS[0])
    assert sets == [
        [T(0, 10, RED[0]), T(20, 30, BLUE[0])],
        [T(0, 10, RED[1]), T(20, 30, BLUE[1])],
    ]
    uneven = record("u", "test", [Segment(0, 1, RED), Segment(1, 2, ["only one"])])
    assert len(reference_sets(uneven)) == 1  # as many sets as the segment with fewest captions
    assert reference_sets(CORPUS[-1]) == []


def test_perfect_predictions_with_floor_and_ceiling() -> None:
    report = score_dense({"x1": truth("x1"), "x2": truth("x2")}, CORPUS, split="test")
    assert (report.videos, report.events) == (2, 5)
    assert list(report.rows) == ["predictions", "whole_video", "reference_ceiling"]
    system = report.rows["predictions"]
    assert system.precision == system.recall == 1.0
    # Its captions are reference set 0's: each is paired with itself and with set 1's paraphrase.
    assert 0.3 < system.bleu4 < 1
    floor = report.rows["whole_video"]
    # One event over each whole video. x1 (60 s): tIoU 10/60, 15/60, 5/60, none over 0.3. x2
    # (40 s): 20/40 (a hair under 0.5) and 15/40, both over 0.3, so recall (0 + 1) / 2 at 0.3.
    assert floor.per_tiou[0.3].recall == pytest.approx((0 + 1) / 2)
    assert floor.per_tiou[0.5].recall == 0.0
    assert floor.f1 < system.f1
    ceiling = report.rows["reference_ceiling"]
    assert ceiling.precision == ceiling.recall == 1.0  # the same times, other captions
    assert ceiling.bleu4 < system.bleu4  # set 0 against set 1 only: no exact pair
    # The story: set 0's events told, against each set's told paragraph (no summaries here).
    story = report.stories["predictions"]
    assert story.captions.bleu4 == pytest.approx(1.0, abs=1e-6)
    assert story.repetition == 0.0 == story.reference_repetition
    assert report.stories["reference_ceiling"].captions.bleu4 < 0.9  # set 1's paragraphs only
    data = report.to_json()
    assert data["task"] == "dense" and data["scores"]["predictions"]["F1"] == 1.0
    assert data["story"]["whole_video"]["R@4"] == 0.0
    assert data["labels"]["whole_video"] == "whole-video floor"
    assert "METEOR and SODA_c skipped: Java not found." in data["notices"]
    json.dumps(data)


def test_stories_are_scored_against_summaries() -> None:
    summary = "a red circle moves left, then a blue square grows"
    corpus = [
        VideoRecord("s", Path("s.mp4"), "test", 30.0, [Segment(0, 10, RED)], summary=[summary])
    ]
    told = [T(0, 10, "a red circle moves left"), T(12, 20, "a blue square grows")]
    report = score_dense({"s": told}, corpus, baselines=False)
    # Summaries, when the corpus has them, are the reference paragraphs.
    assert report.stories["predictions"].captions.bleu1 > 0.8


def test_the_floor_caption_is_the_most_common_training_caption() -> None:
    report = score_dense({}, CORPUS, split="test", baselines=True)
    # "a blue square grows" is the first caption of two training segments, RED of one.
    floor = report.rows["whole_video"]
    assert floor.predictions == 2
    assert report.rows["predictions"].missing == ["x1", "x2"]
    assert report.rows["predictions"].f1 == 0.0


def test_other_splits_are_ignored_and_unknown_videos_refused() -> None:
    report = score_dense({"x1": truth("x1"), "v1": []}, CORPUS, split="test", baselines=False)
    assert report.ignored == ["v1"] and list(report.rows) == ["predictions"]
    assert any("1 predicted videos are not test videos" in n for n in report.notices)
    assert report.rows["predictions"].missing == ["x2"]
    with pytest.raises(
        VidcapError, match=r"name 1 videos the corpus does not have \(first: 'nope'"
    ):
        score_dense({"nope": []}, CORPUS)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([T(45, 50, "late")], "outside the video, which lasts 40 s"),
        ([T(30, 40.6, "past the end")], "outside the video"),
    ],
)
def test_events_outside_the_video_are_refused(events: list[T], message: str) -> None:
    with pytest.raises(VidcapError, match=message):
        score_dense({"x2": events}, CORPUS)
    # Within the half second of slack a container's duration may differ by: accepted.
    score_dense({"x2": [T(30, 40.4, "just past the end")]}, CORPUS, baselines=False)


def test_a_split_without_events_is_a_sentence() -> None:
    corpus = [record("a", "test", []), record("b", "train", [Segment(0, 1, RED)])]
    with pytest.raises(VidcapError, match=r"no videos with segments \(events\) in split 'test'"):
        score_dense({}, corpus)


# --------------------------------------------------------------------------------------------------
# The CLI


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, CORPUS)
    results = [
        VideoCaptions("videos/x1.mp4", [T(2, 12, RED[0]), T(31, 44, "a star")]),
        VideoCaptions("elsewhere/x2.mp4", [T(0, 20, BLUE[0])]),
    ]
    predictions = tmp_path / "anet.json"
    predictions.write_text(json.dumps(anet_document(results)))
    return corpus, predictions


def flat(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_cli_scores_a_prediction_file(files: tuple[Path, Path]) -> None:
    corpus, predictions = files
    args = [
        "evaluate",
        "--task",
        "dense",
        "--predictions",
        str(predictions),
        "--corpus",
        str(corpus),
    ]
    result = runner.invoke(app, [*args, "--json", "--no-meteor"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report["scores"]) == ["predictions", "whole_video", "reference_ceiling"]
    system = report["scores"]["predictions"]
    # x1: 2 of 3 events found, both predictions right; x2: 1 of 2 found, its one prediction right.
    assert system["per_tiou"]["0.5"]["recall"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert system["per_tiou"]["0.5"]["precision"] == 1.0
    assert system["METEOR"] is None and system["SODA_c"] is None
    assert report["labels"]["predictions"] == "anet.json"

    table = runner.invoke(app, [*args, "--no-meteor"])
    assert table.exit_code == 0, table.output
    for word in ("Precision", "SODA_c", "anet.json", "whole-video", "floor", "ceiling", "R@4"):
        assert word in table.output


def test_cli_errors_are_sentences(files: tuple[Path, Path], tmp_path: Path) -> None:
    corpus, predictions = files
    no_corpus = runner.invoke(
        app, ["evaluate", "--task", "dense", "--predictions", str(predictions)]
    )
    assert no_corpus.exit_code == 2 and "give the corpus" in flat(no_corpus.output)
    wrong_task = runner.invoke(
        app, ["evaluate", "--task", "caption", "--predictions", str(predictions)]
    )
    assert wrong_task.exit_code == 2 and "use --task dense" in flat(wrong_task.output)
    nothing = runner.invoke(app, ["evaluate"])
    assert nothing.exit_code == 2 and "give the MODEL" in flat(nothing.output)

    broken = tmp_path / "broken.json"
    broken.write_text('{"results": {"x1": [{"timestamp": [3, 1], "sentence": "x"}]}}')
    bad = runner.invoke(
        app, ["evaluate", "--task", "dense", "--predictions", str(broken), "--corpus", str(corpus)]
    )
    assert bad.exit_code == 1
    assert "ends before it starts" in flat(bad.output) and "Traceback" not in bad.output
