"""The synthetic corpus's records: transcripts, ground truth, and the whole corpus on disk.

:func:`build_record` writes a planned video's captions, summaries, transcript, questions and
ground truth from the video's own text stream; :func:`generate_corpus` plans, renders and writes a
whole corpus (``corpus.jsonl``, ``synth.json`` and the videos).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts import atomic_write_json, remove_stale_temp_files
from vidcap.card import SYNTH_GENERATOR
from vidcap.corpus import QAPair, Segment, TranscriptLine, VideoRecord, write_corpus
from vidcap.synth.lexicon import (
    ACTIONS,
    COLOURS,
    SHAPES,
    event_captions,
    narration_aside,
    narration_line,
    question_answers,
    video_summaries,
)
from vidcap.synth.plan import (
    TEXT_STREAM,
    VIDEO_STREAM,
    Combo,
    SynthConfig,
    VideoPlan,
    frame_seconds,
    held_out_combos,
    plan_corpus,
    random_stream,
    split_sizes,
)
from vidcap.synth.render import render_all

__all__ = ["CAPTIONS_PER_SEGMENT", "build_record", "generate_corpus"]

CAPTIONS_PER_SEGMENT = 5


def _transcript(
    rng: np.random.Generator, plan: VideoPlan
) -> tuple[list[TranscriptLine], list[str | None]]:
    """Narration like instructional-video ASR, and the line spoken in each event (or None).

    Lines start near their event (jittered), sometimes describe a neighbouring event instead, and
    some events get no line at all, as in real narrated videos.
    """
    duration = plan.duration
    lines: list[TranscriptLine] = []
    spoken: list[str | None] = []
    free_from = 0.0  # lines never overlap: a speaker says one thing at a time
    if rng.random() < 0.3:
        text = narration_aside(rng)
        end = min(duration, len(text.split()) * rng.uniform(0.25, 0.35))
        lines.append(TranscriptLine(0.0, round(end, 3), text))
        free_from = end
    for k, event in enumerate(plan.events):
        roll = rng.random()
        neighbours = [j for j in (k - 1, k + 1) if 0 <= j < len(plan.events)]
        if roll < 0.2:
            spoken.append(None)
            continue
        about = plan.events[int(rng.choice(neighbours))] if roll < 0.35 and neighbours else event
        text = narration_line(rng, plan.facts(about))
        # Speech in an untrimmed video wanders further from its event, as narrators do when they
        # have time: some lines start in the gap before it.
        lead = (-2.5, 1.5) if plan.untrimmed else (-0.5, 1.0)
        start = max(frame_seconds(event.start_frame, plan.fps) + rng.uniform(*lead), free_from, 0.0)
        if start > duration - 0.5:
            spoken.append(None)
            continue
        end = min(duration, start + len(text.split()) * rng.uniform(0.28, 0.42))
        lines.append(TranscriptLine(round(start, 3), round(end, 3), text))
        spoken.append(text)
        free_from = end + 0.05
    return lines, spoken


def _meta(plan: VideoPlan, held: frozenset[Combo]) -> dict[str, Any]:
    """The ground truth, for evaluation and for checking the generator."""
    events = []
    for event in plan.events:
        actor = plan.objects[event.actor]
        entry: dict[str, Any] = {
            "start": frame_seconds(event.start_frame, plan.fps),
            "end": frame_seconds(event.end_frame, plan.fps),
            "colour": actor.colour,
            "shape": actor.shape,
            "action": event.action,
            "held_out": Combo(actor.colour, actor.shape, event.action) in held,
            "from": event.start[event.actor].to_json(),
            "to": event.end[event.actor].to_json(),
            "others": [
                {"colour": o.colour, "shape": o.shape, **event.start[i].to_json()}
                for i, o in enumerate(plan.objects)
                if i != event.actor
            ],
        }
        if event.action == "bounce":
            entry["bounce_height"] = round(event.bounce_height, 1)
            entry["bounces"] = event.bounces
        events.append(entry)
    kind = {"untrimmed": True} if plan.untrimmed else {}  # short videos' meta is unchanged
    return {
        "generator": SYNTH_GENERATOR,  # how general code (the model card) knows this world
        **kind,
        "objects": [
            {"colour": o.colour, "shape": o.shape, "bgr": list(o.bgr)} for o in plan.objects
        ],
        "events": events,
        "fps": plan.fps,
        "frames": plan.frames,
        "width": plan.width,
        "height": plan.height,
        "background": plan.background,
        "noise_sigma": round(plan.noise_sigma, 2),
    }


def build_record(plan: VideoPlan, video: Path, held: frozenset[Combo] = frozenset()) -> VideoRecord:
    """The corpus record of a planned video: captions, summaries, transcript, QA and ground truth.

    Text is drawn from the video's own random stream, so it is the same however videos are
    rendered. ``held`` marks events showing a held-out combination in ``meta``.
    """
    rng = random_stream(plan.seed, VIDEO_STREAM, plan.index, TEXT_STREAM)
    facts = [plan.facts(e) for e in plan.events]
    transcript, spoken = _transcript(rng, plan)
    segments = [
        Segment(
            start=frame_seconds(event.start_frame, plan.fps),
            end=frame_seconds(event.end_frame, plan.fps),
            captions=event_captions(rng, f, CAPTIONS_PER_SEGMENT),
            narration=line,
        )
        for event, f, line in zip(plan.events, facts, spoken, strict=True)
    ]
    qa = [
        QAPair(q, a, kind)
        for q, a, kind in question_answers([(o.colour, o.shape) for o in plan.objects], facts)
    ]
    return VideoRecord(
        id=plan.id,
        video=video,
        split=plan.split,
        duration=plan.duration,
        segments=segments,
        summary=video_summaries(rng, facts),
        transcript=transcript,
        qa=qa,
        meta=_meta(plan, held),
    )


def generate_corpus(
    out_dir: Path, config: SynthConfig, progress: Callable[[int], None] | None = None
) -> list[VideoRecord]:
    """Write a synthetic corpus into ``out_dir`` and return its records.

    Writes ``videos/<id>.mp4`` (each atomically), ``synth.json`` (the config and the held-out
    combinations) and, last, ``corpus.jsonl``, so a corpus file is only there once every video is.
    ``progress(n)`` is called with the number of videos rendered so far.

    With ``config.workers > 1`` videos are rendered in spawned processes (forking a process that
    runs threads can deadlock), so a script calling this must guard its entry point with
    ``if __name__ == "__main__":``, as :mod:`multiprocessing` requires.

    Raises:
        VidcapError: OpenCV cannot write mp4 videos.
    """
    out_dir = Path(out_dir).expanduser().resolve()  # absolute, so corpus paths come out relative
    video_dir = out_dir / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(video_dir)
    plans = plan_corpus(config)
    jobs = [(plan, video_dir / f"{plan.id}.mp4") for plan in plans]
    render_all(jobs, config.workers, progress)

    held = held_out_combos(config)
    records = [build_record(plan, path, frozenset(held)) for plan, path in jobs]
    train, val, test = split_sizes(config.videos)
    atomic_write_json(
        out_dir / "synth.json",
        {
            "generator": "vidcap.synth",
            "config": asdict(config),
            "held_out_combos": [list(c) for c in held],
            "splits": {"train": train, "val": val, "test": test},
            "colours": {name: list(bgr) for name, bgr in COLOURS.items()},
            "shapes": list(SHAPES),
            "actions": list(ACTIONS),
        },
    )
    write_corpus(out_dir / "corpus.jsonl", records)
    return records
