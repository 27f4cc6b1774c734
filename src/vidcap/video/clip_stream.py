"""In a decode child: decode one video, cut it into clips and send each clip (or what a CPU step
made of it) to the parent as it comes.

This runs in :class:`~vidcap.video.DecodeWorker` children (``vidcap encode`` straight from
videos). It lives in the video layer and imports neither torch nor an encoder module, so a child
starts in a fraction of a second and stays small: importing torch cost each child about 1.3 s and
250 MB, paid again at every restart after a failed video.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.video.child import send_event
from vidcap.video.clips import ClipCutter, clip_windows
from vidcap.video.decode import FrameStream
from vidcap.video.worker import decode_with_restarts

ClipStep = Callable[[np.ndarray], np.ndarray]
"""A picklable CPU step run on each ``[T, H, W, 3]`` uint8 clip in the child (numpy in and out)."""


def stream_clips(
    path: Path,
    backend: list[str],
    step: ClipStep | None,
    clip_frames: int,
    read: np.ndarray | None,
    **options: Any,
) -> dict[str, Any]:
    """Decode ``path`` and send ``send_event("item", (index, array))`` for each clip, in order.

    With a ``step``, the array is ``step(clip)``: each clip goes through it on a second thread
    while the next frames decode (decoders, OpenCV and numpy release the GIL), at most two
    waiting, so a heavy step (the descriptor's whole work) does not add its time to the decoding.
    Without one, the array is the clip's ``read`` frames (all of them when None), for the parent
    to prepare. Returns the decoding metadata plus ``clips`` (each clip's window, as a dict).
    """

    def consume(stream: FrameStream) -> None:
        cutter = ClipCutter(stream.fps, clip_frames)

        def clips() -> Iterator[np.ndarray]:
            for chunk in stream:
                yield from cutter.push(chunk.frames)
            yield from cutter.finish()

        index = itertools.count()
        if step is None:
            for clip in clips():
                send_event("item", (next(index), clip if read is None else clip[read]))
            return
        waiting: collections.deque[concurrent.futures.Future[np.ndarray]] = collections.deque()

        def send(keep: int) -> None:
            while len(waiting) > keep:
                send_event("item", (next(index), waiting.popleft().result()))

        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="clip-step") as pool:
            for clip in clips():
                waiting.append(pool.submit(step, clip))
                send(2)
            send(0)

    # Chunks as long as a clip: each clip is then a view of its chunk, never copied.
    meta = decode_with_restarts(path, backend, consume, **{"chunk_frames": clip_frames, **options})
    meta["clips"] = [c.to_dict() for c in clip_windows(meta["n_frames"], meta["fps"], clip_frames)]
    return meta
