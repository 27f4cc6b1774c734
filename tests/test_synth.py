"""The synthetic corpus generator: its ground truth, its text, its videos and its guarantees; and
reading the ground truth back (segment facts, fact accuracy, classification labels)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidcap.corpus import SPLITS, Segment, VideoRecord, read_corpus
from vidcap.errors import VidcapError
from vidcap.synth.facts import Facts, fact_accuracy, normal_label, segment_facts, truth_text
from vidcap.synth.lexicon import (
    ACTION_SYNONYMS,
    ACTIONS,
    COLOUR_SYNONYMS,
    COLOURS,
    SHAPE_SYNONYMS,
    SHAPES,
    find_mentions,
)
from vidcap.synth.plan import (
    Combo,
    SynthConfig,
    VideoPlan,
    held_out_combos,
    plan_corpus,
)
from vidcap.synth.records import build_record, generate_corpus

# One small rendered corpus shared by the tests that only read it (rendering is the slow part).
CONFIG = SynthConfig(videos=20, seed=7, held_out_combos=2, workers=2)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    calls: list[int] = []
    records = generate_corpus(out, CONFIG, progress=calls.append)
    assert calls == list(range(1, CONFIG.videos + 1))
    assert [r.id for r in records] == [f"synth-{i:05d}" for i in range(CONFIG.videos)]
    return out


@pytest.fixture(scope="module")
def records(corpus_dir: Path) -> list:
    return read_corpus(corpus_dir / "corpus.jsonl")


@pytest.fixture(scope="module")
def plans() -> list[VideoPlan]:
    # Planning without rendering is cheap, so properties can be checked on many videos.
    return plan_corpus(SynthConfig(videos=120, seed=3, held_out_combos=8))


def _hue(bgr: tuple[int, int, int] | np.ndarray) -> tuple[int, int]:
    """OpenCV (hue 0..179, saturation 0..255) of one BGR colour."""
    pixel = np.uint8([[list(bgr)]])
    h, s, _ = cv2.cvtColor(pixel, cv2.COLOR_BGR2HSV)[0, 0]
    return int(h), int(s)


def _chroma(bgr: tuple[int, int, int]) -> int:
    return max(bgr) - min(bgr)


def _nearest_colour(bgr: np.ndarray) -> str:
    """The palette colour whose hue is closest to a pixel's (hue is circular)."""
    hue, _ = _hue(bgr)

    def distance(name: str) -> int:
        d = abs(_hue(COLOURS[name])[0] - hue)
        return min(d, 180 - d)

    return min(COLOURS, key=distance)


# --------------------------------------------------------------------------------------------------
# Config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"videos": 0},
        {"workers": 0},
        {"held_out_combos": -1},
        {"seed": -1},
        {"videos": 2.5},
        {"held_out_combos": 33, "videos": 1000},
        {"held_out_combos": 3, "videos": 10},  # only 2 val and 2 test videos to show them in
    ],
)
def test_config_rejects_bad_values_with_a_sentence(kwargs: dict) -> None:
    with pytest.raises(VidcapError, match=r"\.$"):
        SynthConfig(**kwargs)


# --------------------------------------------------------------------------------------------------
# Vocabulary


def test_vocabulary_is_rich_saturated_and_unambiguous() -> None:
    assert len(COLOURS) >= 8 and len(SHAPES) >= 4 and len(ACTIONS) >= 8
    assert {"move_left", "move_right", "move_up", "move_down", "grow", "shrink"} <= set(ACTIONS)
    assert {"rotate", "bounce", "stay"} <= set(ACTIONS)
    hues = []
    for bgr in COLOURS.values():
        hue, saturation = _hue(bgr)
        assert saturation > 150, "object colours must be saturated"
        hues.append(hue)
    for i, a in enumerate(hues):  # hues far apart, so a pixel's hue names one colour
        for b in hues[i + 1 :]:
            assert min(abs(a - b), 180 - abs(a - b)) >= 10
    words = [
        w
        for table in (COLOUR_SYNONYMS, SHAPE_SYNONYMS, ACTION_SYNONYMS)
        for ws in table.values()
        for w in ws
    ]
    assert len(words) == len(set(words)), "a synonym must name one thing only"
    assert set(COLOUR_SYNONYMS) == set(COLOURS) and set(SHAPE_SYNONYMS) == set(SHAPES)
    assert set(ACTION_SYNONYMS) == set(ACTIONS)


def test_find_mentions_reads_synonyms_and_prefers_longest_phrases() -> None:
    m = find_mentions("first the Crimson disc bounces up and down, then an azure box gets bigger")
    assert m.colours == {"red", "blue"}
    assert m.shapes == {"circle", "square"}
    assert m.actions == {"bounce", "grow"}  # "up and down" is not read as moving up or down


# --------------------------------------------------------------------------------------------------
# Ground truth (planned, not rendered)


def test_plans_respect_ranges_and_event_rules(plans: list[VideoPlan]) -> None:
    for plan in plans:
        assert 20 <= plan.fps <= 30
        assert 3.0 <= plan.duration <= 12.0
        for side in (plan.width, plan.height):
            assert 128 <= side <= 256 and side % 16 == 0
        assert 1 <= len(plan.objects) <= 2
        assert (
            len({o.colour for o in plan.objects})
            == len({o.shape for o in plan.objects})
            == len(plan.objects)
        )
        assert 1 <= len(plan.events) <= 4
        assert plan.events[0].start_frame == 0 and plan.events[-1].end_frame == plan.frames
        for before, after in itertools.pairwise(plan.events):
            assert before.end_frame == after.start_frame
            assert (before.actor, before.action) != (after.actor, after.action)
        for event in plan.events:
            assert (event.end_frame - event.start_frame) / plan.fps >= 2.0
            shape = plan.objects[event.actor].shape
            assert not (shape == "circle" and event.action == "rotate")
            a, b = event.start[event.actor], event.end[event.actor]
            if event.action in ("move_left", "move_right"):
                assert abs(b.x - a.x) >= 0.25 * plan.width
                assert (b.x < a.x) == (event.action == "move_left")
            if event.action in ("move_up", "move_down"):
                assert abs(b.y - a.y) >= 0.25 * plan.height
                assert (b.y < a.y) == (event.action == "move_up")  # image y grows downwards
            if event.action == "grow":
                assert b.size >= 1.5 * a.size
            if event.action == "shrink":
                assert a.size >= 1.5 * b.size
            if event.action == "rotate":
                assert abs(b.angle - a.angle) >= np.pi - 1e-6
            if event.action == "bounce":
                assert event.bounces >= 2 and event.bounce_height >= 0.25 * plan.height
            # Every object stays inside the frame throughout the event.
            for i in range(len(plan.objects)):
                for p in np.linspace(0, 1, 21):
                    pose = event.pose(i, float(p))
                    assert pose.size <= pose.x <= plan.width - pose.size
                    assert pose.size <= pose.y <= plan.height - pose.size


def test_plans_cover_the_vocabulary(plans: list[VideoPlan]) -> None:
    colours, shapes, actions = Counter(), Counter(), Counter()
    for plan in plans:
        for event in plan.events:
            actor = plan.objects[event.actor]
            colours[actor.colour] += 1
            shapes[actor.shape] += 1
            actions[event.action] += 1
    assert len(colours) >= 8 and set(colours) == set(COLOURS)
    assert len(shapes) >= 4 and set(shapes) == set(SHAPES)
    assert len(actions) >= 8 and set(actions) == set(ACTIONS)
    backgrounds = Counter(p.background for p in plans)
    assert set(backgrounds) == {"plain", "gradient", "texture"}
    assert len({len(p.objects) for p in plans}) == 2


def test_splits_are_about_70_15_15(plans: list[VideoPlan]) -> None:
    counts = Counter(p.split for p in plans)
    assert set(counts) == set(SPLITS)
    assert counts == {"train": 84, "val": 18, "test": 18}


def test_held_out_combos_stay_out_of_train_and_appear_in_val_and_test(
    plans: list[VideoPlan],
) -> None:
    held = set(held_out_combos(SynthConfig(videos=120, seed=3, held_out_combos=8)))
    assert len(held) == 8
    seen: dict[str, set[Combo]] = {s: set() for s in SPLITS}
    for plan in plans:
        for event in plan.events:
            actor = plan.objects[event.actor]
            seen[plan.split].add(Combo(actor.colour, actor.shape, event.action))
    assert not held & seen["train"]
    assert held <= seen["val"] and held <= seen["test"]


def test_different_seeds_give_different_plans() -> None:
    a = plan_corpus(SynthConfig(videos=5, seed=1))
    b = plan_corpus(SynthConfig(videos=5, seed=2))
    assert a != b
    assert a == plan_corpus(SynthConfig(videos=5, seed=1, workers=3))


# --------------------------------------------------------------------------------------------------
# The written corpus


def test_corpus_files_and_read_back(corpus_dir: Path, records: list) -> None:
    assert len(records) == CONFIG.videos
    text = (corpus_dir / "corpus.jsonl").read_text(encoding="utf-8")
    assert '"video": "videos/synth-00000.mp4"' in text  # stored relative to the corpus
    for record in records:
        assert record.video == corpus_dir.resolve() / "videos" / f"{record.id}.mp4"
        assert record.video.is_file()
    assert not list((corpus_dir / "videos").glob(".tmp-*"))
    info = json.loads((corpus_dir / "synth.json").read_text(encoding="utf-8"))
    assert info["config"]["seed"] == CONFIG.seed
    assert [tuple(c) for c in info["held_out_combos"]] == held_out_combos(CONFIG)


def test_segments_are_contiguous_long_enough_and_well_captioned(records: list) -> None:
    for record in records:
        segments = record.segments
        assert segments[0].start == 0.0
        assert segments[-1].end == pytest.approx(record.duration)
        for before, after in itertools.pairwise(segments):
            assert before.end == after.start
        for segment, truth in zip(segments, record.meta["events"], strict=True):
            assert segment.end - segment.start >= 2.0
            assert (segment.start, segment.end) == (truth["start"], truth["end"])
            assert len(set(segment.captions)) == len(segment.captions) >= 4
            for caption in segment.captions:
                m = find_mentions(caption)
                assert truth["colour"] in m.colours, caption
                assert truth["shape"] in m.shapes, caption
                assert truth["action"] in m.actions, caption
                named_others = m.colours - {truth["colour"]}
                assert named_others <= {o["colour"] for o in truth["others"]}, caption


def test_summaries_transcript_and_qa_follow_the_ground_truth(records: list) -> None:
    kinds: Counter[str] = Counter()
    for record in records:
        truth = record.meta
        assert len(set(record.summary)) == len(record.summary) >= 3
        actors = {e["colour"] for e in truth["events"]}
        for summary in record.summary:
            assert actors <= find_mentions(summary).colours, summary
            assert {e["action"] for e in truth["events"]} <= find_mentions(summary).actions
        for line in record.transcript:
            assert line.text == line.text.lower() and line.text.strip()
            assert 0.0 <= line.start <= line.end <= record.duration
        for qa in record.qa:
            kinds[qa.type] += 1
            if qa.type == "colour":
                assert qa.answer in COLOURS
            elif qa.type == "shape":
                assert qa.answer in SHAPES
        objects = {(o["colour"], o["shape"]) for o in truth["objects"]}
        count = {q.question: q.answer for q in record.qa}["how many objects are there?"]
        assert count == ["one", "two"][len(objects) - 1]
        for qa in record.qa:
            if qa.question.startswith("what colour is the ") and qa.question.count(" ") == 4:
                shape = qa.question.split()[-1].rstrip("?")
                assert (qa.answer, shape) in objects
    assert set(kinds) == {"colour", "shape", "action", "count"}
    # Narration is noisy: some events have none, and the words are not always the captions'.
    narrations = [s.narration for r in records for s in r.segments]
    assert any(n is None for n in narrations) and any(n for n in narrations)


def test_held_out_combos_in_the_written_corpus(records: list) -> None:
    held = set(held_out_combos(CONFIG))
    by_split: dict[str, set[Combo]] = {s: set() for s in SPLITS}
    for record in records:
        for e in record.meta["events"]:
            combo = Combo(e["colour"], e["shape"], e["action"])
            by_split[record.split].add(combo)
            assert e["held_out"] == (combo in held)
    assert held and not held & by_split["train"]
    assert held <= by_split["val"] and held <= by_split["test"]


def test_videos_decode_with_decord_and_opencv(records: list) -> None:
    decord = pytest.importorskip("decord")
    for record in records:
        frames, fps = record.meta["frames"], record.meta["fps"]
        assert frames == round(record.duration * fps)
        reader = decord.VideoReader(str(record.video))
        assert len(reader) == frames
        assert reader.get_avg_fps() == pytest.approx(fps)
        assert reader[0].shape == (record.meta["height"], record.meta["width"], 3)
        capture = cv2.VideoCapture(str(record.video))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
        capture.release()
    # Reading every frame (not just the header's count) on one video.
    capture = cv2.VideoCapture(str(records[0].video))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    assert decoded == records[0].meta["frames"]


def _first_frame(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


def test_the_actor_is_drawn_in_its_colour_where_the_ground_truth_says(records: list) -> None:
    for record in records:
        frame = _first_frame(record.video)
        first = record.meta["events"][0]
        x, y = round(first["from"]["x"]), round(first["from"]["y"])
        pixel = np.median(frame[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3), axis=0)
        assert _hue(pixel.astype(np.uint8))[1] > 100, record.id  # an object, not the background
        assert _nearest_colour(pixel.astype(np.uint8)) == first["colour"], record.id


def test_backgrounds_are_never_saturated(records: list) -> None:
    for record in records:
        frame = _first_frame(record.video)
        first = record.meta["events"][0]
        ys, xs = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]]
        background = np.ones(frame.shape[:2], dtype=bool)
        for obj in [first["from"], *first["others"]]:  # everything drawn in the first frame
            near = np.hypot(xs - obj["x"], ys - obj["y"]) <= obj["size"] + 4
            background &= ~near
        # Chroma (max - min channel), not HSV saturation, which explodes on dark greys.
        chroma = frame.max(axis=2).astype(int) - frame.min(axis=2)
        assert np.percentile(chroma[background], 99) < 50, record.id
        assert _chroma(COLOURS[first["colour"]]) > 120


def test_same_seed_gives_a_byte_identical_corpus_whatever_the_workers(
    corpus_dir: Path, tmp_path: Path
) -> None:
    again = SynthConfig(
        videos=CONFIG.videos, seed=CONFIG.seed, held_out_combos=CONFIG.held_out_combos, workers=1
    )
    generate_corpus(tmp_path, again)
    expected = (corpus_dir / "corpus.jsonl").read_bytes()
    assert (tmp_path / "corpus.jsonl").read_bytes() == expected


def test_a_relative_out_dir_still_gives_relative_video_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    generate_corpus(Path("rel"), SynthConfig(videos=2, seed=1))
    lines = (tmp_path / "rel" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["video"] for line in lines] == [
        "videos/synth-00000.mp4",
        "videos/synth-00001.mp4",
    ]
    assert len(read_corpus(tmp_path / "rel" / "corpus.jsonl")) == 2


def test_noise_changes_pixels_but_not_the_content(tmp_path: Path) -> None:
    clean = generate_corpus(tmp_path / "clean", SynthConfig(videos=2, seed=5))
    noisy = generate_corpus(tmp_path / "noisy", SynthConfig(videos=2, seed=5, noise=True))
    for a, b in zip(clean, noisy, strict=True):
        assert a.segments == b.segments and a.meta["events"] == b.meta["events"]
        assert a.meta["noise_sigma"] == 0 and b.meta["noise_sigma"] > 0
        frame_a = _first_frame(a.video).astype(np.int16)
        frame_b = _first_frame(b.video).astype(np.int16)
        assert np.abs(frame_a - frame_b).mean() > 2.0
        # Noise shows as pixel-to-pixel variation on the smooth background.
        assert np.abs(np.diff(frame_b, axis=1)).mean() > np.abs(np.diff(frame_a, axis=1)).mean() + 1


# --------------------------------------------------------------------------------------------------
# Reading the ground truth back: segment_facts, fact_accuracy, classification labels


def _record(meta: dict | None) -> VideoRecord:
    return VideoRecord(id="v", video=Path("v.mp4"), split="test", meta=meta)


EVENTS = [
    {"start": 0.0, "end": 2.0, "colour": "red", "shape": "circle", "action": "move_left"},
    {"start": 2.0, "end": 5.0, "colour": "blue", "shape": "square", "action": "grow"},
    {"start": 5.0, "end": 6.0, "note": "not an event"},  # skipped: no facts
]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.0, 2.0, Facts("red", "circle", "move_left")),  # touches the next event only
        (1.5, 4.5, Facts("blue", "square", "grow")),  # overlaps both, the second more
        (0.5, 3.0, Facts("red", "circle", "move_left")),  # 1.5 s against 1 s
        (1.0, 1.0, Facts("red", "circle", "move_left")),  # zero-length, inside the first
        (5.0, 7.0, None),  # after every event with facts
    ],
)
def test_segment_facts_picks_the_most_overlapping_event(start, end, expected) -> None:
    assert segment_facts(_record({"events": EVENTS}), Segment(start, end, ["x"])) == expected


@pytest.mark.parametrize("meta", [None, {}, {"events": "none"}, {"events": []}])
def test_segment_facts_none_without_events(meta) -> None:
    assert segment_facts(_record(meta), Segment(0.0, 2.0, ["x"])) is None


def test_synthetic_references_name_their_facts() -> None:
    """On the generated corpus every segment maps to its event and every reference is right."""
    records = [build_record(p, Path("v.mp4")) for p in plan_corpus(SynthConfig(videos=6, seed=3))]
    hypotheses, facts = {}, {}
    for record in records:
        assert record.meta is not None
        for s, (segment, event) in enumerate(
            zip(record.segments, record.meta["events"], strict=True)
        ):
            found = segment_facts(record, segment)
            assert found == Facts(event["colour"], event["shape"], event["action"])
            for c, caption in enumerate(segment.captions):
                hypotheses[f"{record.id}/{s}/{c}"] = caption
                facts[f"{record.id}/{s}/{c}"] = found
    accuracy = fact_accuracy(hypotheses, facts)
    assert accuracy == {"colour": 1.0, "shape": 1.0, "action": 1.0, "all": 1.0, "count": 50}


def test_fact_accuracy_counts_synonyms_and_wrong_attributes() -> None:
    truth = Facts("red", "circle", "move_left")
    hypotheses = {
        "synonyms": "a crimson disc slides to the left",  # all right
        "wrong_shape": "a scarlet box glides left",  # colour and action right
        "other_object": "a green star rotates while the red circle stays still",  # not the action
        "nothing": "the video is dark",
        "no_facts": "a red circle moves left",  # not counted: no facts for it
    }
    facts = {key: truth for key in hypotheses if key != "no_facts"}
    facts["unmatched"] = truth  # facts without a hypothesis: not counted either
    assert fact_accuracy(hypotheses, facts) == {
        "colour": 3 / 4,
        "shape": 2 / 4,
        "action": 2 / 4,
        "all": 1 / 4,
        "count": 4,
    }


def test_fact_accuracy_stay() -> None:
    truth = Facts("blue", "square", "stay")
    assert fact_accuracy({"a": "the azure block remains motionless"}, {"a": truth})["all"] == 1.0


def test_fact_accuracy_without_facts_is_empty() -> None:
    assert fact_accuracy({"a": "a red circle"}, {}) == {}
    assert fact_accuracy({}, {"a": Facts("red", "circle", "grow")}) == {}


def test_truth_text_names_actions_as_captions_do() -> None:
    facts = Facts("red", "circle", "move_left")
    assert [truth_text(facts, field) for field in ("colour", "shape", "action")] == [
        "red",
        "circle",
        "moves left",
    ]
    assert normal_label("  Moves   LEFT ") == normal_label("moves left") == "moves left"


def test_importing_the_package_is_cheap() -> None:
    """``import vidcap.synth`` (and the facts the evaluation reads) pays for neither OpenCV nor
    torch."""
    code = (
        "import sys, vidcap.synth, vidcap.synth.facts; "
        "assert 'cv2' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
