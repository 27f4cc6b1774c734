"""Peak memory of `vidcap encode` (from videos) and `vidcap caption` on a short and a long video.

Makes 1080p testsrc2 H.264 videos of two lengths with ffmpeg (low bitrate, small files), runs each
command once per video in a subprocess, and polls the whole process tree (the vidcap process and
its decode child) with psutil every 20 ms. Reported per run: peak RSS of the parent, of the
largest child, and of the tree summed at one instant; and the ratio long / short (flat: close to 1).

    python benchmarks/bench_memory.py --model BUNDLE [--short 18] [--long 180] [--height 1080]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_video(path: Path, seconds: int, height: int) -> Path:
    """A testsrc2 H.264 video, 30 fps, 16:9, about 500 kbit/s (an existing file is reused)."""
    if path.exists():
        return path
    width = height * 16 // 9 // 2 * 2
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "500k", "-pix_fmt", "yuv420p",
         str(path)],
        check=True,
    )  # fmt: skip
    return path


def peak_rss(command: list[str], interval: float = 0.02) -> dict[str, float]:
    """Run ``command``; peak RSS in MiB of the parent, the largest descendant and the tree's sum."""
    import psutil

    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = psutil.Process(proc.pid)
    peaks = {"parent": 0.0, "child": 0.0, "tree": 0.0}
    start = time.perf_counter()
    while proc.poll() is None:
        try:
            rss_parent = parent.memory_info().rss
            children = []
            for child in parent.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # a child that just ended
                    children.append(child.memory_info().rss)
        except psutil.Error:
            break
        peaks["parent"] = max(peaks["parent"], rss_parent / 2**20)
        peaks["child"] = max(peaks["child"], max(children, default=0) / 2**20)
        peaks["tree"] = max(peaks["tree"], (rss_parent + sum(children)) / 2**20)
        time.sleep(interval)
    stderr = proc.communicate()[1].decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr[-2000:]}")
    peaks["seconds"] = time.perf_counter() - start
    return peaks


def commands(video: Path, out: Path, model: Path | None) -> dict[str, list[str]]:
    """The commands measured for one video (caption only when a bundle is given)."""
    vidcap = [sys.executable, "-m", "vidcap"]
    runs = {"encode": [*vidcap, "encode", str(video), "--out", str(out / "features")]}
    if model is not None:
        runs["caption"] = [*vidcap, "caption", str(video), "--model", str(model),
                           "--format", "jsonl", "--out", str(out / "captions.jsonl")]  # fmt: skip
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a bundle for `vidcap caption`")
    parser.add_argument("--short", type=int, default=18, help="seconds")
    parser.add_argument("--long", type=int, default=180, help="seconds")
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--videos", type=Path, help="keep the test videos here (reused if present)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results: dict[tuple[str, int], dict[str, float]] = {}
        for seconds in (args.short, args.long):
            folder = args.videos or tmp
            video = make_video(folder / f"v{seconds}_{args.height}p.mp4", seconds, args.height)
            size = video.stat().st_size / 2**20
            print(f"{seconds} s {args.height}p video: {size:.1f} MiB", flush=True)
            for name, command in commands(video, tmp / f"out{seconds}", args.model).items():
                results[name, seconds] = peak_rss(command)
                r = results[name, seconds]
                print(
                    f"  {name:<8} parent {r['parent']:7.0f} MiB  child {r['child']:7.0f} MiB  "
                    f"tree {r['tree']:7.0f} MiB  ({r['seconds']:.0f} s)",
                    flush=True,
                )
        for name in sorted({n for n, _ in results}):
            short, long = results[name, args.short], results[name, args.long]
            print(
                f"{name}: peak tree RSS {args.long} s / {args.short} s = "
                f"{long['tree'] / short['tree']:.3f} (parent {long['parent'] / short['parent']:.3f},"
                f" child {long['child'] / short['child']:.3f})"
            )


if __name__ == "__main__":
    main()
