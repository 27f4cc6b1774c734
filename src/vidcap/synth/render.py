"""Rendering a planned synthetic video: backgrounds, shapes, camera noise, mp4 files.

:func:`render_video` draws one :class:`~vidcap.synth.plan.VideoPlan` from its own random stream,
so a video's pixels never depend on which process renders it; :func:`render_all` renders many, in
a pool of spawned processes when asked for more than one worker.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
import numpy as np

from vidcap.artifacts import atomic_path
from vidcap.errors import VidcapError
from vidcap.synth.plan import (
    RENDER_STREAM,
    VIDEO_STREAM,
    EventPlan,
    Pose,
    SceneObject,
    VideoPlan,
    random_stream,
)

__all__ = ["JITTER_PX", "render_all", "render_video"]

JITTER_PX = 2  # the camera's whole-frame jitter, at most this many pixels each way

_FOURCC = "mp4v"
_SUBPIXEL_BITS = 4  # OpenCV fixed-point drawing: coordinates in 1/16 px, for smooth slow motion


def _regular_polygon(
    corners: int, start_deg: float, radii: tuple[float, ...] = (1.0,)
) -> np.ndarray:
    """Unit-circumradius polygon vertices (x right, y down), radii alternating (for the star)."""
    angles = np.deg2rad(start_deg + np.arange(corners) * 360.0 / corners)
    r = np.resize(np.array(radii), corners)
    return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)


# Shapes as unit polygons, pointing up at angle 0; a pose scales, rotates and moves them.
_UNIT_SHAPES: dict[str, np.ndarray] = {
    "square": _regular_polygon(4, 45),
    "triangle": _regular_polygon(3, -90),
    "star": _regular_polygon(10, -90, (1.0, 0.45)),
    # Narrower than tall, so a diamond never looks like a square turned by 45 degrees.
    "diamond": _regular_polygon(4, -90) * np.array([0.65, 1.0]),
    "hexagon": _regular_polygon(6, 0),
}


def _draw(frame: np.ndarray, obj: SceneObject, pose: Pose) -> None:
    """Draw an anti-aliased, sub-pixel-positioned object onto ``frame`` in place."""
    scale = 1 << _SUBPIXEL_BITS
    if obj.shape == "circle":
        centre = (round(pose.x * scale), round(pose.y * scale))
        cv2.circle(
            frame, centre, round(pose.size * scale), obj.bgr, -1, cv2.LINE_AA, _SUBPIXEL_BITS
        )
        return
    c, s = math.cos(pose.angle), math.sin(pose.angle)
    rotation = np.array([[c, -s], [s, c]])
    points = _UNIT_SHAPES[obj.shape] @ rotation.T * pose.size + (pose.x, pose.y)
    cv2.fillPoly(
        frame, [np.round(points * scale).astype(np.int32)], obj.bgr, cv2.LINE_AA, _SUBPIXEL_BITS
    )


def _background(rng: np.random.Generator, kind: str, width: int, height: int) -> np.ndarray:
    """A low-saturation background, so it is never mistaken for an object colour.

    A grey level map times a slight tint (at most 7% per channel) keeps the chroma (max - min
    channel) below ~35, far from the palette colours' (> 130).
    """
    if kind == "plain":
        grey = np.full((height, width), rng.uniform(40, 215), dtype=np.float32)
    elif kind == "gradient":
        a = rng.uniform(40, 215)
        b = float(np.clip(a + rng.choice([-1, 1]) * rng.uniform(50, 120), 30, 225))
        theta = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        t = xs * math.cos(theta) + ys * math.sin(theta)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        grey = a + (b - a) * t
    else:  # texture: smooth blobs, from coarse noise upsampled
        cell = int(rng.integers(6, 25))
        coarse = rng.normal(size=(height // cell + 2, width // cell + 2)).astype(np.float32)
        blobs = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        grey = rng.uniform(70, 185) + rng.uniform(12, 30) * blobs
    # Never near black or white, where objects would lose contrast.
    grey = np.clip(grey, 35, 225)
    tint = 1.0 + rng.uniform(-0.07, 0.07, size=3).astype(np.float32)
    return np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)


class _Camera:
    """Camera-like degradation: gaussian pixel noise and a small whole-frame jitter.

    Noise comes from random crops of one bank drawn per video, twice the frame size, which is far
    cheaper than fresh gaussian noise for every frame and looks the same. The bank is split into
    its positive and negative parts so that adding it is two saturating uint8 OpenCV operations.
    """

    def __init__(self, rng: np.random.Generator, sigma: float, width: int, height: int) -> None:
        self.rng = rng
        self.width, self.height = width, height
        bank = np.round(rng.normal(0.0, sigma, size=(2 * height, 2 * width, 3)))
        self.lighter = np.clip(bank, 0, 255).astype(np.uint8)
        self.darker = np.clip(-bank, 0, 255).astype(np.uint8)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        # Jitter: crop a shifted window out of the frame padded by repeating its edges.
        pad = JITTER_PX
        dx, dy = (int(v) for v in self.rng.integers(-pad, pad + 1, size=2))
        padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        shifted = padded[pad + dy : pad + dy + self.height, pad + dx : pad + dx + self.width]
        oy = int(self.rng.integers(self.height))
        ox = int(self.rng.integers(self.width))
        window = (slice(oy, oy + self.height), slice(ox, ox + self.width))
        return cv2.subtract(cv2.add(shifted, self.lighter[window]), self.darker[window])


def _frames(plan: VideoPlan) -> Iterator[np.ndarray]:
    """Yield the video's frames (BGR uint8) in order.

    Frames no event covers (an untrimmed video's gaps) show every object still, where the
    previous event left it (before the first event: where the first event starts).
    """
    rng = random_stream(plan.seed, VIDEO_STREAM, plan.index, RENDER_STREAM)
    background = _background(rng, plan.background, plan.width, plan.height)
    camera = _Camera(rng, plan.noise_sigma, plan.width, plan.height) if plan.noise_sigma else None

    def still(event: EventPlan, p: float, order: list[int], frames: int) -> Iterator[np.ndarray]:
        frame = background.copy()  # drawn once: nothing moves
        for i in order:
            _draw(frame, plan.objects[i], event.pose(i, p))
        for _ in range(frames):
            yield camera(frame) if camera is not None else frame

    cursor = 0
    previous: EventPlan | None = None
    for event in plan.events:
        length = event.end_frame - event.start_frame
        # Idle objects first: the actor is drawn on top, so its action is never hidden.
        order = [i for i in range(len(plan.objects)) if i != event.actor] + [event.actor]
        if event.start_frame > cursor:
            held, p = (event, 0.0) if previous is None else (previous, 1.0)
            yield from still(held, p, order, event.start_frame - cursor)
        for f in range(length):
            p = f / (length - 1)
            frame = background.copy()
            for i in order:
                _draw(frame, plan.objects[i], event.pose(i, p))
            yield camera(frame) if camera is not None else frame
        cursor, previous = event.end_frame, event
    if previous is not None and plan.frames > cursor:
        yield from still(previous, 1.0, order, plan.frames - cursor)


def render_video(plan: VideoPlan, path: Path) -> None:
    """Render ``plan`` to an mp4 (MPEG-4 part 2) at ``path``, written atomically.

    Raises:
        VidcapError: OpenCV cannot write mp4 files here (it was built without a video backend).
    """
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(
            str(tmp), cv2.VideoWriter_fourcc(*_FOURCC), plan.fps, (plan.width, plan.height)
        )
        if not writer.isOpened():
            raise VidcapError(
                f"OpenCV cannot write {_FOURCC} mp4 videos to {tmp.parent}; install an "
                "opencv-python build with FFmpeg (the PyPI wheels have it)."
            )
        try:
            for frame in _frames(plan):
                writer.write(frame)
        finally:
            writer.release()


def _init_worker() -> None:
    # One thread per process: the workers already use every core we were given.
    cv2.setNumThreads(1)


def render_all(
    jobs: list[tuple[VideoPlan, Path]], workers: int, progress: Callable[[int], None] | None
) -> None:
    """Render every job, in ``workers`` processes when more than one."""
    if workers == 1 or len(jobs) <= 1:
        for done, (plan, path) in enumerate(jobs, start=1):
            render_video(plan, path)
            if progress is not None:
                progress(done)
        return
    # Biggest videos first, so no worker is left with a long one at the end.
    jobs = sorted(jobs, key=lambda j: -j[0].frames * j[0].width * j[0].height)
    # "spawn": forking a process that runs threads (a progress bar, torch) can deadlock.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=context, initializer=_init_worker
    )
    try:
        futures = [pool.submit(render_video, plan, path) for plan, path in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            future.result()
            if progress is not None:
                progress(done)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
