"""Benchmark `vidcap extract` against a bare sequential decord decode of the same videos.

Both read the same H.264 videos and produce frames at 20 fps with the short side resized to --size.
The bare baseline is the fastest obvious loop a user would write: decord ``VideoReader``, the 20 fps
frame indices fetched with ``get_batch`` in chunks of 32, each frame resized with OpenCV, nothing
written. `vidcap extract` additionally resamples by timestamps, writes ``.npy`` files atomically and
runs each video in a killable child process. Each method runs in its own subprocess so its peak
memory (max RSS of the largest process, from ``getrusage``) is measured alone.

    python benchmarks/bench_extract.py [--videos 6] [--seconds 30] [--size 224]

Prints frames/s of each and the ratio vidcap / bare (goal: >= 0.8).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_videos(folder: Path, count: int, seconds: int) -> list[Path]:
    """H.264 640x360 30 fps test videos made with ffmpeg's testsrc2 (moving, detailed content)."""
    paths = []
    for i in range(count):
        path = folder / f"video{i}.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size=640x360:rate=30:duration={seconds}", "-vf", f"hue=h={i * 40}",
             "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )  # fmt: skip
        paths.append(path)
    return paths


def bare_decord(paths: list[Path], fps: float, size: int) -> int:
    """The baseline: sequential decord decode at `fps`, resized so the short side is `size`."""
    import cv2
    import decord
    import numpy as np

    frames = 0
    for path in paths:
        reader = decord.VideoReader(str(path))
        source_fps = reader.get_avg_fps()
        n_out = int(len(reader) / source_fps * fps)
        indices = np.minimum((np.arange(n_out) * source_fps / fps).astype(int), len(reader) - 1)
        for start in range(0, len(indices), 32):
            batch = reader.get_batch(indices[start : start + 32].tolist()).asnumpy()
            for frame in batch:
                h, w = frame.shape[:2]
                scale = size / min(h, w)
                cv2.resize(
                    frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
                )
                frames += 1
    return frames


def vidcap_extract(paths: list[Path], fps: float, size: int, workers: int) -> int:
    from vidcap.stages.extract import ExtractConfig, run_extract
    from vidcap.stages.inputs import resolve_inputs

    with tempfile.TemporaryDirectory() as out:
        result = run_extract(
            resolve_inputs([str(p) for p in paths]),
            out,
            ExtractConfig(fps=fps, size=size, workers=workers),
        )
    assert result.ok, result.failures
    return int(result.details["frames"])


def run_one(mode: str, paths: list[Path], fps: float, size: int) -> dict[str, float]:
    """Run one method in this process and report frames, seconds and peak RSS."""
    started = time.perf_counter()
    if mode == "bare":
        frames = bare_decord(paths, fps, size)
    else:
        frames = vidcap_extract(paths, fps, size, workers=int(mode.split("-")[1]))
    seconds = time.perf_counter() - started
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {"frames": frames, "seconds": seconds, "peak_mb": peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--fps", type=float, default=20.0)
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # internal: run one method
    parser.add_argument("--paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.mode:
        print(json.dumps(run_one(args.mode, [Path(p) for p in args.paths], args.fps, args.size)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_videos(Path(tmp), args.videos, args.seconds)
        results = {}
        for mode in ("bare", "vidcap-1", "vidcap-2"):
            out = subprocess.run(
                [sys.executable, __file__, "--mode", mode, "--size", str(args.size),
                 "--fps", str(args.fps), "--paths", *map(str, paths)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["bare"]["frames"] / results["bare"]["seconds"]
    print(
        f"{args.videos} videos x {args.seconds} s, 640x360 H.264 -> {args.fps:g} fps, short side {args.size}"
    )
    print(f"{'method':<28}{'frames':>8}{'frames/s':>10}{'ratio':>8}{'peak MB':>9}")
    for mode, r in results.items():
        rate = r["frames"] / r["seconds"]
        name = {"bare": "bare decord loop", "vidcap-1": "vidcap extract --workers 1",
                "vidcap-2": "vidcap extract --workers 2"}[mode]  # fmt: skip
        print(f"{name:<28}{r['frames']:>8}{rate:>10.0f}{rate / base:>8.2f}{r['peak_mb']:>9.0f}")


if __name__ == "__main__":
    main()
