"""Untrimmed synthetic videos for dense captioning: the plan (durations, events, gaps), the
records, the pixels of the gaps, the CLI, and a corpus mixing short and untrimmed videos through
every stage."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidcap.cli import app
from vidcap.corpus import read_corpus
from vidcap.errors import VidcapError
from vidcap.synth.plan import (
    Combo,
    SynthConfig,
    assign_kinds,
    assign_splits,
    frame_seconds,
    held_out_combos,
    plan_corpus,
)
from vidcap.synth.records import CAPTIONS_PER_SEGMENT, build_record
from vidcap.synth.render import _frames

runner = CliRunner()

UNTRIMMED = SynthConfig(videos=40, seed=5, untrimmed=1.0, held_out_combos=3)


@pytest.fixture(scope="module")
def plans():
    return plan_corpus(UNTRIMMED)


def gaps_of(plan) -> list[int]:
    """Frames before, between and after the events."""
    ends = [0, *(e.end_frame for e in plan.events)]
    starts = [*(e.start_frame for e in plan.events), plan.frames]
    return [s - e for e, s in zip(ends, starts, strict=True)]


def test_untrimmed_plans_follow_the_issue(plans) -> None:
    assert all(p.untrimmed for p in plans)
    assert all(30.0 <= p.duration <= 180.0 for p in plans)
    assert all(3 <= len(p.events) <= 10 for p in plans)
    lengths, gaps = [], []
    for plan in plans:
        for event in plan.events:
            seconds = (event.end_frame - event.start_frame) / plan.fps
            assert 2.0 < seconds <= 30.0
            lengths.append(seconds)
            assert event.action != "stay"  # stillness is what a gap looks like
        plan_gaps = gaps_of(plan)
        assert min(plan_gaps) >= 0  # in order, never overlapping, inside the video
        assert sum(plan_gaps) + sum(e.end_frame - e.start_frame for e in plan.events) == plan.frames
        gaps += [g / plan.fps for g in plan_gaps]
    # Events from a couple of seconds to half a minute; gaps from none to long.
    assert min(lengths) < 3 and max(lengths) > 20
    assert sum(g == 0 for g in gaps) > 0.1 * len(gaps)
    assert max(gaps) > 10 and np.median(gaps) > 0.5
    # Shorter videos with --untrimmed-duration: the same rules, within the new range.
    short = plan_corpus(SynthConfig(videos=10, seed=5, untrimmed=1.0, untrimmed_duration=(9, 12)))
    assert all(9 <= p.duration <= 12.05 and len(p.events) >= 3 for p in short)
    assert all(min(gaps_of(p)) >= 0 for p in short)


def test_held_out_combinations_and_determinism(plans) -> None:
    def shown(plan) -> set[Combo]:
        return {Combo(f.colour, f.shape, f.action) for f in map(plan.facts, plan.events)}

    held = set(held_out_combos(UNTRIMMED))
    for plan in plans:
        if plan.split == "train":
            assert not shown(plan) & held
    for combo in held:
        for split in ("val", "test"):
            assert any(combo in shown(p) for p in plans if p.split == split)
    assert plans == plan_corpus(UNTRIMMED)
    again = SynthConfig(**{**vars(UNTRIMMED), "workers": 2})
    assert plans == plan_corpus(again)


def test_records_events_are_segments_with_the_usual_text(plans) -> None:
    for plan in plans[:10]:
        record = build_record(plan, Path("v.mp4"))
        assert record.meta is not None and record.meta["untrimmed"] is True
        assert [(s.start, s.end) for s in record.segments] == [
            (frame_seconds(e.start_frame, plan.fps), frame_seconds(e.end_frame, plan.fps))
            for e in plan.events
        ]
        assert all(len(s.captions) == CAPTIONS_PER_SEGMENT for s in record.segments)
        assert len(record.summary) == 4 and record.qa
        # Speech: one line at a time, each near the start of an event (up to 2.5 s before it).
        lines = record.transcript
        assert all(a.end <= b.start for a, b in itertools.pairwise(lines))
        for segment in record.segments:
            if segment.narration is not None:
                line = next(t for t in lines if t.text == segment.narration)
                assert segment.start - 2.5 - 1e-6 <= line.start
    # Short videos keep their meta as it was (no "untrimmed" key).
    short = plan_corpus(SynthConfig(videos=3, seed=5))
    assert all("untrimmed" not in build_record(p, Path("v.mp4")).meta for p in short)


def test_mixed_corpus_shares_each_split() -> None:
    config = SynthConfig(videos=20, seed=2, untrimmed=0.5)
    splits = assign_splits(config)
    kinds = assign_kinds(config, splits)
    for split in ("train", "val", "test"):
        members = [k for k, s in zip(kinds, splits, strict=True) if s == split]
        assert sum(members) == int(0.5 * len(members) + 0.5)
    plans = plan_corpus(config)
    assert [p.untrimmed for p in plans] == kinds
    short = [p for p in plans if not p.untrimmed]
    assert short and all(p.duration <= 12.05 for p in short)


def test_gaps_are_still_and_events_move() -> None:
    config = SynthConfig(videos=4, seed=9, untrimmed=1.0, untrimmed_duration=(9, 11))
    plan = next(p for p in plan_corpus(config) if max(gaps_of(p)) >= 3)
    frames = list(_frames(plan))
    assert len(frames) == plan.frames
    moving = np.zeros(plan.frames, dtype=bool)
    for event in plan.events:
        moving[event.start_frame : event.end_frame] = True
    for f in range(1, plan.frames):
        same = np.array_equal(frames[f], frames[f - 1])
        if not moving[f] and not moving[f - 1]:
            assert same, f"gap frame {f} changed"
    # Every event changes the picture (no action is "stays still"; a bounce or a rotation may
    # end as it started, so any frame of the event may differ from its first).
    for event in plan.events:
        span = frames[event.start_frame : event.end_frame]
        assert any(not np.array_equal(span[0], frame) for frame in span[1:])


def test_cli_untrimmed_and_its_errors(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    args = ["synth", str(out), "--videos", "2", "--untrimmed", "--untrimmed-duration", "9", "12"]
    result = runner.invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.output
    records = read_corpus(out / "corpus.jsonl")
    assert all(r.meta["untrimmed"] and len(r.segments) >= 3 for r in records)
    assert "untrimmed videos" in result.output
    info = json.loads((out / "synth.json").read_text())
    assert info["config"]["untrimmed"] == 1.0
    assert info["config"]["untrimmed_duration"] == [9.0, 12.0]

    bad = runner.invoke(app, [*args, "--untrimmed-share", "0.5"])
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", bad.output).split())  # out of Click's box
    assert bad.exit_code == 2 and "--untrimmed makes every video untrimmed" in flat
    bad = runner.invoke(app, ["synth", str(tmp_path / "x"), "--untrimmed-duration", "5", "6"])
    assert bad.exit_code == 1 and "at least 8 s" in bad.output


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"untrimmed": 1.5}, "between 0 and 1"),
        ({"untrimmed": -0.1}, "between 0 and 1"),
        ({"untrimmed_duration": (60.0, 30.0)}, "shortest first"),
        ({"untrimmed_duration": (4.0, 30.0)}, "at least 8 s"),
    ],
)
def test_bad_untrimmed_config(kwargs: dict, message: str) -> None:
    with pytest.raises(VidcapError, match=message):
        SynthConfig(**kwargs)


@pytest.mark.slow
def test_a_mixed_corpus_goes_through_every_stage(tmp_path: Path) -> None:
    """Short and untrimmed videos in one corpus: synth → extract → encode → quantize → pretrain
    → finetune, through the CLI with tiny settings."""

    def run(*args: object) -> None:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output

    syn = tmp_path / "syn"
    run("synth", syn, "-n", "8", "--untrimmed-share", "0.5", "--untrimmed-duration", "12", "18")
    records = read_corpus(syn / "corpus.jsonl")
    assert {bool(r.meta.get("untrimmed")) for r in records} == {True, False}
    run("extract", syn / "corpus.jsonl", "--out", tmp_path / "frames", "--size", "48")
    run("encode", tmp_path / "frames", "--out", tmp_path / "features")
    run("quantize", tmp_path / "features", "--out", tmp_path / "words", "--k", "4", "--depth", "2")
    for stage in ("frames", "features", "words"):
        manifest = json.loads((tmp_path / stage / "manifest.json").read_text())
        assert manifest["counts"] == {"ok": 8, "failed": 0, "skipped": 0}, stage
    run("pretrain", tmp_path / "words", "--out", tmp_path / "pretrain", "--preset", "tiny",
        "--arch", "bart", "--max-steps", "3", "--eval-every", "1000")  # fmt: skip
    run("finetune", tmp_path / "pretrain", "--out", tmp_path / "model", "--preset", "tiny",
        "--with-features", "--max-steps", "3", "--eval-every", "3", "--beams", "1")  # fmt: skip
    assert (tmp_path / "model" / "vidcap.json").is_file()
