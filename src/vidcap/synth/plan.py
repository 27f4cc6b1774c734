"""The synthetic corpus's plan: config, splits, held-out combinations and every video's ground truth.

:func:`plan_corpus` draws every video's ground truth (cheap, in the calling process) before any
pixel is drawn (:mod:`vidcap.synth.render`) or any record written (:mod:`vidcap.synth.records`),
so that the corpus text never depends on how videos are rendered. Every video draws from its own
random streams derived from ``(seed, index)`` (:func:`random_stream`), so the corpus is the same
whatever the number of workers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from vidcap.errors import VidcapError
from vidcap.synth.lexicon import (
    ACTIONS,
    COLOURS,
    ROTATION_INVARIANT_SHAPES,
    SHAPES,
    EventFacts,
)

__all__ = [
    "BACKGROUNDS",
    "Combo",
    "EventPlan",
    "Pose",
    "SceneObject",
    "SynthConfig",
    "VideoPlan",
    "assign_kinds",
    "assign_splits",
    "held_out_combos",
    "plan_corpus",
    "plan_video",
]

DURATION_RANGE_S = (3.0, 12.0)
# Untrimmed videos (dense captioning): minutes long, several events with still gaps between them.
UNTRIMMED_DURATION_S = (30.0, 180.0)
UNTRIMMED_EVENTS = (3, 10)  # inclusive
MAX_UNTRIMMED_EVENT_S = 30.0
BUSY_RANGE = (0.5, 0.9)  # the share of an untrimmed video its events fill, at most
NO_GAP_CHANCE = 0.3  # each gap (before, between or after events) is left out with this chance
MIN_UNTRIMMED_S = 8.0  # room for the fewest events (each over 2 s) and some gaps
FPS_RANGE = (20, 30)  # inclusive
FRAME_SIDES = tuple(range(128, 257, 16))  # width and height are drawn from these
MIN_EVENT_S = 2.0
MAX_EVENTS = 4
MAX_OBJECTS = 2
VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
MAX_HELD_OUT = 32
BACKGROUNDS = ("plain", "gradient", "texture")
NOISE_SIGMA_RANGE = (4.0, 10.0)
# A move covers at least this fraction of the frame (width for left/right, height for up/down).
MIN_MOVE_FRACTION = 0.3

_MARGIN_PX = 2.0

# Random stream keys: (VIDEO_STREAM, index, stream) per video, stream being _PLAN, TEXT_STREAM or
# RENDER_STREAM; the others are corpus-wide.
VIDEO_STREAM, _SPLITS, _HELD_OUT, _KINDS = 0, 1, 2, 3
_PLAN, TEXT_STREAM, RENDER_STREAM = 0, 1, 2


def random_stream(seed: int, *key: int) -> np.random.Generator:
    """An independent random stream for ``key`` under ``seed`` (stable across numpy versions)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


# --------------------------------------------------------------------------------------------------
# Configuration, splits and held-out combinations


def split_sizes(videos: int) -> tuple[int, int, int]:
    """(train, val, test) counts for ``videos`` videos: about 70/15/15."""
    val = int(videos * VAL_FRACTION + 0.5)
    test = int(videos * TEST_FRACTION + 0.5)
    return videos - val - test, val, test


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. The same config always gives the same corpus.jsonl.

    Attributes:
        videos: number of videos.
        seed: random seed (>= 0); different seeds give different corpora.
        noise: add camera-like gaussian pixel noise and a small per-frame jitter.
        held_out_combos: number of (colour, shape, action) combinations kept out of the train
            split; each appears in at least one val and one test video.
        workers: processes that render videos; the result does not depend on it.
        untrimmed: the share of videos (0 to 1) that are untrimmed, for dense captioning: minutes
            long, 3 to 10 events with still gaps between them. In each split that share is.
        untrimmed_duration: (shortest, longest) untrimmed video, in seconds.
    """

    videos: int = 200
    seed: int = 0
    noise: bool = False
    held_out_combos: int = 0
    workers: int = 1
    untrimmed: float = 0.0
    untrimmed_duration: tuple[float, float] = UNTRIMMED_DURATION_S

    def __post_init__(self) -> None:
        for name in ("videos", "seed", "held_out_combos", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise VidcapError(f"synth {name} must be a whole number, got {value!r}.")
        if self.videos < 1:
            raise VidcapError(f"synth needs at least 1 video, got videos={self.videos}.")
        if self.seed < 0:
            raise VidcapError(f"synth seed must be 0 or more, got {self.seed}.")
        if self.workers < 1:
            raise VidcapError(f"synth needs at least 1 worker, got workers={self.workers}.")
        if self.held_out_combos < 0:
            raise VidcapError(
                f"held_out_combos must be 0 or more, got held_out_combos={self.held_out_combos}."
            )
        if self.held_out_combos > MAX_HELD_OUT:
            raise VidcapError(
                f"held_out_combos={self.held_out_combos} is too many: at most {MAX_HELD_OUT} "
                "(colour, shape, action) combinations can be held out."
            )
        if not 0.0 <= self.untrimmed <= 1.0:
            raise VidcapError(
                f"the untrimmed share must be between 0 and 1, got untrimmed={self.untrimmed}."
            )
        shortest, longest = self.untrimmed_duration
        if not MIN_UNTRIMMED_S <= shortest <= longest:
            raise VidcapError(
                f"untrimmed videos need a duration range of at least {MIN_UNTRIMMED_S:g} s (room "
                f"for {UNTRIMMED_EVENTS[0]} events) with the shortest first, got "
                f"{shortest:g} to {longest:g} s."
            )
        _, val, test = split_sizes(self.videos)
        if self.held_out_combos > min(val, test):
            raise VidcapError(
                f"held_out_combos={self.held_out_combos} needs at least {self.held_out_combos} "
                f"validation and test videos to show each held-out combination in, but "
                f"videos={self.videos} gives {val} validation and {test} test videos; "
                "use more videos or fewer held-out combinations."
            )


class Combo(NamedTuple):
    """A (colour, shape, action) combination, e.g. ``Combo("red", "star", "rotate")``."""

    colour: str
    shape: str
    action: str


def _allowed(shape: str, action: str) -> bool:
    return not (action == "rotate" and shape in ROTATION_INVARIANT_SHAPES)


def held_out_combos(config: SynthConfig) -> list[Combo]:
    """The combinations kept out of train for ``config`` (sorted; empty when none are asked for).

    ``stay`` is never held out: an idle object "stays still" in other objects' events, so a
    held-out stay combination could not be kept out of the train captions.
    """
    candidates = [
        Combo(c, s, a)
        for c in COLOURS
        for s in SHAPES
        for a in ACTIONS
        if a != "stay" and _allowed(s, a)
    ]
    rng = random_stream(config.seed, _HELD_OUT)
    chosen = rng.choice(len(candidates), size=config.held_out_combos, replace=False)
    return sorted(candidates[int(i)] for i in chosen)


def assign_kinds(config: SynthConfig, splits: list[str]) -> list[bool]:
    """Whether each video is untrimmed: ``config.untrimmed`` of each split's videos (halves round
    up), chosen by a seeded shuffle, so train, val and test all hold both kinds in a mixed
    corpus."""
    untrimmed = [False] * config.videos
    order = random_stream(config.seed, _KINDS).permutation(config.videos)
    for split in ("train", "val", "test"):
        members = [int(i) for i in order if splits[int(i)] == split]
        for index in members[: int(config.untrimmed * len(members) + 0.5)]:
            untrimmed[index] = True
    return untrimmed


def assign_splits(config: SynthConfig) -> list[str]:
    """The split of every video, by index: a seeded shuffle cut at about 70/15/15."""
    train, val, _ = split_sizes(config.videos)
    order = random_stream(config.seed, _SPLITS).permutation(config.videos)
    splits = [""] * config.videos
    for rank, index in enumerate(order):
        splits[int(index)] = "train" if rank < train else "val" if rank < train + val else "test"
    return splits


# --------------------------------------------------------------------------------------------------
# The plan: a video's ground truth, before any pixel is drawn


@dataclass(frozen=True)
class Pose:
    """Where an object is: centre (px), circumradius (px) and rotation (radians)."""

    x: float
    y: float
    size: float
    angle: float = 0.0

    def to_json(self) -> dict[str, float]:
        return {
            "x": round(self.x, 1),
            "y": round(self.y, 1),
            "size": round(self.size, 1),
            "angle": round(self.angle, 3),
        }


@dataclass(frozen=True)
class SceneObject:
    """A persistent object of a video; ``bgr`` is its palette colour, slightly darkened at random."""

    colour: str
    shape: str
    bgr: tuple[int, int, int]


@dataclass(frozen=True)
class EventPlan:
    """One event: frames ``[start_frame, end_frame)``, its actor's action and every object's pose.

    Poses are interpolated linearly from ``start`` to ``end``; a bounce adds ``bounces`` hops of
    ``bounce_height`` px on top.
    """

    start_frame: int
    end_frame: int
    actor: int
    action: str
    start: tuple[Pose, ...]
    end: tuple[Pose, ...]
    bounce_height: float = 0.0
    bounces: int = 0

    def pose(self, obj: int, p: float) -> Pose:
        """Object ``obj``'s pose at progress ``p`` in [0, 1] through the event."""
        a, b = self.start[obj], self.end[obj]
        y = a.y + (b.y - a.y) * p
        if obj == self.actor and self.action == "bounce":
            y -= self.bounce_height * abs(math.sin(math.pi * self.bounces * p))
        return Pose(
            a.x + (b.x - a.x) * p,
            y,
            a.size + (b.size - a.size) * p,
            a.angle + (b.angle - a.angle) * p,
        )


@dataclass(frozen=True)
class VideoPlan:
    """Everything about one video except its pixels."""

    id: str
    index: int
    seed: int
    split: str
    fps: int
    width: int
    height: int
    frames: int
    background: str
    noise_sigma: float  # 0 when the corpus has no noise
    objects: tuple[SceneObject, ...]
    events: tuple[EventPlan, ...]
    untrimmed: bool = False  # events with still gaps between them (frames no event covers)

    @property
    def duration(self) -> float:
        return frame_seconds(self.frames, self.fps)

    def facts(self, event: EventPlan) -> EventFacts:
        """The caption grammar's view of an event."""
        actor = self.objects[event.actor]
        others = tuple((o.colour, o.shape) for i, o in enumerate(self.objects) if i != event.actor)
        return EventFacts(actor.colour, actor.shape, event.action, others)


def frame_seconds(frame: int, fps: int) -> float:
    # Millisecond precision keeps corpus.jsonl short and stable.
    return round(frame / fps, 3)


def _event_bounds(rng: np.random.Generator, frames: int, events: int, min_frames: int) -> list[int]:
    """Frame boundaries ``[0, b1, ..., frames]`` with every event at least ``min_frames`` long."""
    spare = frames - events * min_frames
    cuts = np.sort(rng.integers(0, spare + 1, size=events - 1))
    lengths = np.diff(np.concatenate([[0], cuts, [spare]])) + min_frames
    return [0, *(int(b) for b in np.cumsum(lengths))]


def _untrimmed_bounds(rng: np.random.Generator, frames: int, fps: int) -> list[tuple[int, int]]:
    """Event spans ``[start, end)`` of an untrimmed video: 3 to 10 events of ~2 to 30 s each, in
    order, with gaps of varying length between them (and before the first and after the last),
    some of them none.

    Events fill a drawn share of the video (:data:`BUSY_RANGE`), each starting at its minimum
    length plus a Dirichlet share of the rest, so lengths vary widely; what they leave is cut
    into gaps the same way, each gap dropped with :data:`NO_GAP_CHANCE` (so events sometimes
    follow each other directly).
    """
    min_frames = int(MIN_EVENT_S * fps) + 1  # over 2 s even after rounding times to the ms
    max_frames = int(MAX_UNTRIMMED_EVENT_S * fps)
    busy = int(rng.uniform(*BUSY_RANGE) * frames)
    most = min(UNTRIMMED_EVENTS[1], busy // min_frames)
    count = int(rng.integers(UNTRIMMED_EVENTS[0], max(UNTRIMMED_EVENTS[0], most) + 1))
    spare = max(0, busy - count * min_frames)
    extra = np.floor(rng.dirichlet(np.full(count, 0.7)) * spare).astype(int)
    lengths = np.minimum(min_frames + extra, max(max_frames, min_frames))
    gap_total = frames - int(lengths.sum())
    weights = rng.exponential(1.0, size=count + 1) * (rng.random(count + 1) >= NO_GAP_CHANCE)
    if not weights.any():
        weights[int(rng.integers(count + 1))] = 1.0
    gaps = np.floor(weights / weights.sum() * gap_total).astype(int)
    gaps[int(np.argmax(weights))] += gap_total - int(gaps.sum())  # rounding: still every frame
    spans, cursor = [], int(gaps[0])
    for length, gap in zip(lengths, gaps[1:], strict=True):
        spans.append((cursor, cursor + int(length)))
        cursor += int(length) + int(gap)
    return spans


def _pick_objects(
    rng: np.random.Generator, count: int, forced: Combo | None
) -> tuple[SceneObject, ...]:
    """``count`` objects with distinct colours and distinct shapes, so each word names one."""
    colours = [c for c in COLOURS if forced is None or c != forced.colour]
    shapes = [s for s in SHAPES if forced is None or s != forced.shape]
    chosen_c = [colours[int(i)] for i in rng.permutation(len(colours))]
    chosen_s = [shapes[int(i)] for i in rng.permutation(len(shapes))]
    if forced is not None:
        chosen_c.insert(0, forced.colour)
        chosen_s.insert(0, forced.shape)
    objects = []
    for colour, shape in zip(chosen_c[:count], chosen_s[:count], strict=True):
        # Slightly darker variants: the hue (what a caption names) is kept exactly.
        scale = rng.uniform(0.85, 1.0)
        bgr = tuple(round(v * scale) for v in COLOURS[colour])
        objects.append(SceneObject(colour, shape, bgr))  # type: ignore[arg-type]
    return tuple(objects)


def _pick_roles(
    rng: np.random.Generator,
    objects: tuple[SceneObject, ...],
    events: int,
    banned: frozenset[Combo],
    forced: Combo | None,
    actions: tuple[str, ...] = ACTIONS,
) -> list[tuple[int, str]]:
    """(actor, action) per event, among ``actions``: never a banned combo, never the same twice
    in a row."""
    roles: list[tuple[int, str] | None] = [None] * events
    if forced is not None:
        roles[int(rng.integers(events))] = (0, forced.action)  # object 0 is the forced one
    for i in range(events):
        if roles[i] is not None:
            continue
        neighbours = {roles[j] for j in (i - 1, i + 1) if 0 <= j < events}
        while True:
            actor = int(rng.integers(len(objects)))
            obj = objects[actor]
            options = [
                a
                for a in actions
                if _allowed(obj.shape, a)
                and Combo(obj.colour, obj.shape, a) not in banned
                and (actor, a) not in neighbours
            ]
            if options:
                roles[i] = (actor, options[int(rng.integers(len(options)))])
                break
    return [r for r in roles if r is not None]


def _symmetry(shape: str) -> float:
    """The smallest rotation that maps a shape onto itself (radians)."""
    return {"square": 90, "triangle": 120, "star": 72, "diamond": 180, "hexagon": 60}[shape] * (
        math.pi / 180
    )


# An actor's motion in one event: start pose, end pose, bounce height (px) and bounce count.
_Motion = tuple[Pose, Pose, float, int]


def _bounce_count(rng: np.random.Generator, seconds: float) -> int:
    # 2 to 5 hops, each at least ~0.6 s so every hop is seen.
    return int(rng.integers(2, max(2, min(5, int(seconds / 0.6))) + 1))


def _rotation_sweep(rng: np.random.Generator, shape: str) -> float:
    """Whole turns of the shape's symmetry, so it ends upright (a square never ends up looking
    like a diamond), and at least half a turn so the rotation is obvious."""
    step = _symmetry(shape)
    turns = int(rng.integers(math.ceil(math.pi / step), math.floor(4 * math.pi / step) + 1))
    return turns * step * (1 if rng.random() < 0.5 else -1)


def _continue_motion(
    rng: np.random.Generator,
    action: str,
    shape: str,
    width: int,
    height: int,
    seconds: float,
    pose: Pose,
) -> _Motion | None:
    """The motion starting where the actor already is, or None when the action does not fit there
    (e.g. moving left from the left edge)."""
    m = min(width, height)
    inner = pose.size + _MARGIN_PX  # the closest the centre may come to an edge
    if action.startswith("move_"):
        horizontal = action in ("move_left", "move_right")
        extent = width if horizontal else height
        here = pose.x if horizontal else pose.y
        forward = action in ("move_right", "move_down")  # towards larger pixel coordinates
        room = extent - inner - here if forward else here - inner
        if room < MIN_MOVE_FRACTION * extent:
            return None
        travel = min(rng.uniform(MIN_MOVE_FRACTION, 0.6) * extent, room) * (1 if forward else -1)
        dx, dy = (travel, 0.0) if horizontal else (0.0, travel)
        return pose, replace(pose, x=pose.x + dx, y=pose.y + dy), 0.0, 0
    if action == "grow":
        edges = (pose.x, width - pose.x, pose.y, height - pose.y)
        limit = min(0.25 * m, *(e - _MARGIN_PX for e in edges))
        if limit < 1.8 * pose.size:
            return None
        return pose, replace(pose, size=min(pose.size * rng.uniform(1.8, 2.5), limit)), 0.0, 0
    if action == "shrink":
        if pose.size < 1.8 * 0.05 * m:
            return None
        small = max(pose.size / rng.uniform(1.8, 2.5), 0.05 * m)
        return pose, replace(pose, size=small), 0.0, 0
    if action == "rotate":
        return pose, replace(pose, angle=pose.angle + _rotation_sweep(rng, shape)), 0.0, 0
    if action == "bounce":
        if pose.y - inner < 0.25 * height:
            return None
        bounce_height = min(rng.uniform(0.25, 0.4) * height, pose.y - inner)
        return pose, pose, bounce_height, _bounce_count(rng, seconds)
    return pose, pose, 0.0, 0  # stay


def _sample_motion(
    rng: np.random.Generator,
    action: str,
    shape: str,
    width: int,
    height: int,
    seconds: float,
    previous: Pose | None = None,
) -> _Motion:
    """The actor's motion for one event.

    It continues from ``previous`` (where the actor was left) when the action fits from there, so
    most videos play without jumps; otherwise the actor starts afresh somewhere else.
    """
    if previous is not None:
        motion = _continue_motion(rng, action, shape, width, height, seconds, previous)
        if motion is not None:
            return motion
    m = min(width, height)
    size = rng.uniform(0.09, 0.16) * m

    def span(extent: int, radius: float, travel: float = 0.0) -> float:
        """A coordinate that keeps the object inside ``extent`` px even after moving ``travel``."""
        return rng.uniform(radius + _MARGIN_PX, extent - radius - _MARGIN_PX - travel)

    if action in ("move_left", "move_right"):
        travel = min(rng.uniform(MIN_MOVE_FRACTION, 0.6) * width, width - 2 * (size + _MARGIN_PX))
        x0, y = span(width, size, travel), span(height, size)
        x1 = x0 + travel
        if action == "move_left":
            x0, x1 = x1, x0
        return Pose(x0, y, size), Pose(x1, y, size), 0.0, 0
    if action in ("move_up", "move_down"):
        travel = min(rng.uniform(MIN_MOVE_FRACTION, 0.6) * height, height - 2 * (size + _MARGIN_PX))
        x, y0 = span(width, size), span(height, size, travel)
        y1 = y0 + travel  # image y grows downwards
        if action == "move_up":
            y0, y1 = y1, y0
        return Pose(x, y0, size), Pose(x, y1, size), 0.0, 0
    if action in ("grow", "shrink"):
        small = rng.uniform(0.06, 0.09) * m
        big = min(small * rng.uniform(1.8, 2.5), 0.25 * m)
        x, y = span(width, big), span(height, big)
        if action == "shrink":
            small, big = big, small
        return Pose(x, y, small), Pose(x, y, big), 0.0, 0
    if action == "rotate":
        x, y = span(width, size), span(height, size)
        return Pose(x, y, size), Pose(x, y, size, _rotation_sweep(rng, shape)), 0.0, 0
    if action == "bounce":
        bounce_height = rng.uniform(0.25, 0.4) * height
        bounces = _bounce_count(rng, seconds)
        x = span(width, size)
        y = rng.uniform(size + _MARGIN_PX + bounce_height, height - size - _MARGIN_PX)
        return Pose(x, y, size), Pose(x, y, size), bounce_height, bounces
    x, y = span(width, size), span(height, size)  # stay
    return Pose(x, y, size), Pose(x, y, size), 0.0, 0


def _clearance(pose: Pose, path: list[Pose]) -> float:
    """Gap (px) between an idle object and the closest point of the actor's path."""
    return min(math.hypot(pose.x - q.x, pose.y - q.y) - pose.size - q.size for q in path)


def _place_idle(
    rng: np.random.Generator, previous: Pose | None, path: list[Pose], width: int, height: int
) -> Pose:
    """Where an idle object sits during an event: where it was, unless the actor would hit it.

    Tries random places otherwise and keeps the one farthest from the actor's path, so objects
    rarely overlap (an overlap is harmless: the actor is drawn on top).
    """
    if previous is not None and _clearance(previous, path) >= 4:
        return previous
    size = previous.size if previous is not None else rng.uniform(0.09, 0.16) * min(width, height)
    best: Pose | None = None
    for _ in range(40):
        pose = Pose(
            rng.uniform(size + _MARGIN_PX, width - size - _MARGIN_PX),
            rng.uniform(size + _MARGIN_PX, height - size - _MARGIN_PX),
            size,
        )
        if best is None or _clearance(pose, path) > _clearance(best, path):
            best = pose
        if _clearance(best, path) >= 4:
            break
    assert best is not None
    return best


def plan_video(
    config: SynthConfig,
    index: int,
    split: str,
    banned: frozenset[Combo] = frozenset(),
    forced: Combo | None = None,
    untrimmed: bool = False,
) -> VideoPlan:
    """Draw one video's ground truth from its own random stream.

    Args:
        config: the corpus config (its seed and noise matter here).
        index: the video's position in the corpus; with the seed it fixes the random stream.
        split: the video's split, recorded in the plan.
        banned: combinations no event may show (the held-out ones, for train videos).
        forced: a combination one event must show (a held-out one, for some val/test videos).
        untrimmed: an untrimmed video (see :func:`_untrimmed_bounds`) instead of a short one.
    """
    rng = random_stream(config.seed, VIDEO_STREAM, index, _PLAN)
    fps = int(rng.integers(FPS_RANGE[0], FPS_RANGE[1] + 1))
    width = int(FRAME_SIDES[int(rng.integers(len(FRAME_SIDES)))])
    height = int(FRAME_SIDES[int(rng.integers(len(FRAME_SIDES)))])
    if untrimmed:
        frames = round(rng.uniform(*config.untrimmed_duration) * fps)
        spans = _untrimmed_bounds(rng, frames, fps)
    else:
        frames = round(rng.uniform(*DURATION_RANGE_S) * fps)
        # One frame more than 2 s, so events stay >= 2 s after times are rounded to milliseconds.
        min_frames = int(MIN_EVENT_S * fps) + 1
        n_events = int(rng.integers(1, min(MAX_EVENTS, frames // min_frames) + 1))
        spans = list(itertools.pairwise(_event_bounds(rng, frames, n_events, min_frames)))
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    # Drawn either way, so turning noise on or off changes the pixels and nothing else.
    noise_sigma = float(rng.uniform(*NOISE_SIGMA_RANGE))
    if not config.noise:
        noise_sigma = 0.0
    objects = _pick_objects(rng, int(rng.integers(1, MAX_OBJECTS + 1)), forced)
    # In an untrimmed video stillness is what the gaps show, so no event is "stays still".
    actions = tuple(a for a in ACTIONS if a != "stay") if untrimmed else ACTIONS
    roles = _pick_roles(rng, objects, len(spans), banned, forced, actions)

    events = []
    poses: list[Pose | None] = [None] * len(objects)
    for (start_f, end_f), (actor, action) in zip(spans, roles, strict=True):
        seconds = (end_f - start_f) / fps
        shape = objects[actor].shape
        first, last, bounce_height, bounces = _sample_motion(
            rng, action, shape, width, height, seconds, poses[actor]
        )
        # The actor's path, sampled, for keeping idle objects out of its way.
        draft = EventPlan(0, 1, 0, action, (first,), (last,), bounce_height, bounces)
        path = [draft.pose(0, p) for p in np.linspace(0.0, 1.0, 9)]
        start, end = [], []
        for i in range(len(objects)):
            if i == actor:
                start.append(first)
                end.append(last)
            else:
                idle = _place_idle(rng, poses[i], path, width, height)
                start.append(idle)
                end.append(idle)
        poses = list(end)
        events.append(
            EventPlan(
                start_f, end_f, actor, action, tuple(start), tuple(end), bounce_height, bounces
            )
        )
    return VideoPlan(
        id=f"synth-{index:05d}",
        index=index,
        seed=config.seed,
        split=split,
        fps=fps,
        width=width,
        height=height,
        frames=frames,
        background=background,
        noise_sigma=noise_sigma,
        objects=objects,
        events=tuple(events),
        untrimmed=untrimmed,
    )


def plan_corpus(config: SynthConfig) -> list[VideoPlan]:
    """Every video's ground truth, without rendering anything (fast).

    Train videos never show a held-out combination; the k-th held-out combination is forced into
    the k-th val video and the k-th test video, so each one can be evaluated.
    """
    held = held_out_combos(config)
    splits = assign_splits(config)
    untrimmed = assign_kinds(config, splits)
    forced: dict[int, Combo] = {}
    for split in ("val", "test"):
        members = [i for i, s in enumerate(splits) if s == split]
        # SynthConfig checks there are at least as many val (and test) videos as held-out combos.
        for combo, index in zip(held, members, strict=False):
            forced[index] = combo
    banned = frozenset(held)
    return [
        plan_video(
            config,
            i,
            splits[i],
            banned=banned if splits[i] == "train" else frozenset(),
            forced=forced.get(i),
            untrimmed=untrimmed[i],
        )
        for i in range(config.videos)
    ]
