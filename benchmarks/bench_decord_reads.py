"""decord's reads with vidcap's read plan against letting decord seek to every frame it skips to.

decord reaches a frame that is not the next one by skipping inside a group of pictures, and by
rewinding and seeking when a keyframe lies in between (``VideoReader.SeekAccurate``). vidcap reads
through a short gap that crosses one keyframe instead (``decord_backend.read_plan``). This measures
both ways through ``open_frames(backend="decord")``, the path extract and encode take, with the
plan swapped for "ask for the wanted frames only" in the other way, on the same files, the ways
interleaved in each repeat:

- files: 640x360 25 fps testsrc2 clips made with ffmpeg, in MPEG-4 Part 2 (ffmpeg's default
  12-frame groups of pictures), H.264 with 2-second groups, H.264 with x264's default of 250
  frames, and MJPEG (every frame a keyframe);
- reads: every output frame at 20 fps (what extract and the descriptor read), 4 of each clip's 30
  frames (an image model's ``frame_indices``), and 1 frame per second;
- the consumer: taking the frames at once, or busy for ``--work-ms`` per frame between chunks (as
  an encoder is; simulated by sleeping, so that only the decoder's own CPU time is counted).

Reported: the median CPU time of the process (decord's threads included, until they stop) and
wall time without the consumer's time, per file, read and consumer, with the ratio plan / seek.

    python benchmarks/bench_decord_reads.py [--repeats 3] [--seconds 30] [--work-ms 1.5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

CODECS = {
    "mpeg4_gop12.mp4": ["-c:v", "mpeg4", "-q:v", "5"],
    "h264_gop50.mp4": ["-c:v", "libx264", "-preset", "veryfast", "-g", "50"],
    "h264_gop250.mp4": ["-c:v", "libx264", "-preset", "veryfast"],
    "mjpeg_intra.avi": ["-c:v", "mjpeg", "-q:v", "5"],
}
CLIP_FRAMES = 30


def make_videos(folder: Path, seconds: int) -> dict[str, Path]:
    src = f"testsrc2=size=640x360:rate=25:duration={seconds}"
    out = {}
    for name, args in CODECS.items():
        path = folder / name
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", src, *args,
             "-pix_fmt", "yuvj420p" if "mjpeg" in name else "yuv420p", str(path)],
            check=True,
        )  # fmt: skip
        out[name] = path
    return out


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_once(
    path: Path, fps: float, keep: np.ndarray | None, work_s: float
) -> tuple[float, float]:
    """(CPU seconds, wall seconds without the consumer's work) of one decode of ``path``."""
    from vidcap.video import open_frames

    cpu, started, worked = cpu_seconds(), time.perf_counter(), 0.0
    with open_frames(path, fps=fps, size=224, backend="decord", keep=keep) as stream:
        for chunk in stream:
            if work_s:
                busy = work_s * len(chunk)
                time.sleep(busy)
                worked += busy
    wall = time.perf_counter() - started - worked
    return settled_cpu_seconds() - cpu, wall


def settled_cpu_seconds() -> float:
    """CPU time once decord's threads have stopped: work they still do after the last read (up
    to 0.4 s of it was seen) belongs to this read, not to the next one measured."""
    now = cpu_seconds()
    while True:
        time.sleep(0.05)
        later = cpu_seconds()
        if later - now < 0.002:
            return later
        now = later


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30, help="length of each video")
    parser.add_argument("--work-ms", type=float, default=1.5, help="consumer's work per frame")
    args = parser.parse_args()

    from vidcap.encoders.base import sample_indices
    from vidcap.video.backends import decord_backend
    from vidcap.video.clips import clip_frame_mask

    four = clip_frame_mask(sample_indices(CLIP_FRAMES, 4), CLIP_FRAMES)
    reads = {"20 fps": (20.0, None), "4 of 30": (20.0, four), "1 fps": (1.0, None)}
    planned = decord_backend.read_plan

    def seek_to_each(wanted: np.ndarray, keys: np.ndarray) -> np.ndarray:
        return wanted

    ways = {"plan": planned, "seek": seek_to_each}
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_videos(Path(tmp), args.seconds)
        results: dict[tuple[str, str, str, str], list[tuple[float, float]]] = {}
        consumers = {"at once": 0.0, f"{args.work_ms:g} ms/frame": args.work_ms / 1000}
        for _ in range(args.repeats):
            for name, path in videos.items():
                for read, (fps, keep) in reads.items():
                    for consumer, work_s in consumers.items():
                        for way, plan in ways.items():
                            decord_backend.read_plan = plan  # type: ignore[assignment]
                            measured = read_once(path, fps, keep, work_s)
                            results.setdefault((name, read, consumer, way), []).append(measured)
        decord_backend.read_plan = planned

    print(
        f"{args.seconds} s videos, 640x360 at 25 fps, decoded to short side 224; median of "
        f"{args.repeats}; CPU s (wall s without the consumer's work)"
    )
    print(
        f"{'file':<18} {'read':<8} {'consumer':<14} {'plan':>13} {'seek':>13} {'CPU plan/seek':>14}"
    )
    for name in videos:
        for read in reads:
            for consumer in consumers:
                row = []
                for way in ways:
                    values = results[(name, read, consumer, way)]
                    row.append(
                        (
                            statistics.median(v[0] for v in values),
                            statistics.median(v[1] for v in values),
                        )
                    )
                (plan_cpu, plan_wall), (seek_cpu, seek_wall) = row
                print(
                    f"{name:<18} {read:<8} {consumer:<14} {plan_cpu:6.2f} ({plan_wall:4.2f}) "
                    f"{seek_cpu:6.2f} ({seek_wall:4.2f}) {plan_cpu / seek_cpu:14.2f}"
                )


if __name__ == "__main__":
    main()
