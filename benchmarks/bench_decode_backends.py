"""Decode speed of every installed backend (decord, PyAV, OpenCV, torchcodec) on the same files.

Each backend decodes each file to the extract settings (20 fps, short side 224, no crop) through
``vidcap.video.open_frames`` — the path extract, encode and caption use — in one process, the
backends interleaved within each repeat so that load on a shared machine hits them alike. Reported:
output frames/s per backend and file (median of the repeats) and the ratio to the baseline backend
measured in the same run (the figures to compare; absolute speeds depend on the machine's load).

Files: synthetic corpus videos (vidcap's own generator), and ffmpeg-made 1080p testsrc2 clips in
H.264 and VP9 (the formats of most web corpora); or, with ``--files``, the files given (where no
ffmpeg is installed to make the clips, or to measure a corpus of your own).

    python benchmarks/bench_decode_backends.py [--repeats 5] [--seconds 6] [--baseline pyav]
        [--files A.mp4 B.webm ...]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def make_1080p(folder: Path, seconds: int) -> dict[str, Path]:
    """1920x1080 30 fps testsrc2 clips: H.264 (x264) and VP9 (libvpx, realtime speed)."""
    src = f"testsrc2=size=1920x1080:rate=30:duration={seconds}"
    codecs = {
        "h264_1080p.mp4": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "28"],
        "vp9_1080p.webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                           "-b:v", "2M"],
    }  # fmt: skip
    out = {}
    for name, args in codecs.items():
        path = folder / name
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", src, *args,
             "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )  # fmt: skip
        out[name] = path
    return out


def decode(path: Path, backend: str, fps: float, size: int) -> int:
    """Output frames of one decode of ``path`` with ``backend``, through vidcap's own path."""
    from vidcap.video import open_frames

    n = 0
    with open_frames(path, fps=fps, size=size, crop=False, backend=backend) as stream:
        for chunk in stream:
            n += len(chunk)
    return n


Key = tuple[str, str]  # (file name, decoder name)


def time_decoders(
    files: dict[str, Path],
    decoders: dict[str, Callable[[Path], int]],
    repeats: int,
    errors: tuple[type[BaseException], ...],
) -> tuple[dict[Key, int], dict[Key, list[float]], dict[Key, BaseException]]:
    """Each file by each decoder: a warm-up round (imports, first-open costs, page cache), then
    ``repeats`` interleaved timed rounds, so that load on a shared machine hits them alike.

    A decoder that raises one of ``errors`` in the warm-up is kept with its error, not timed.
    Returns the frames, the seconds of each round and those errors, keyed by (file, decoder).
    """
    frames: dict[Key, int] = {}
    failed: dict[Key, BaseException] = {}
    for name, path in files.items():
        for decoder, run in decoders.items():
            try:
                frames[name, decoder] = run(path)
            except errors as e:  # reported in the table, not timed
                failed[name, decoder] = e
    times: dict[Key, list[float]] = {}
    for _ in range(repeats):
        for name, path in files.items():
            for decoder, run in decoders.items():
                if (name, decoder) in failed:
                    continue
                started = time.perf_counter()
                run(path)
                times.setdefault((name, decoder), []).append(time.perf_counter() - started)
    return frames, times, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=6, help="length of the 1080p clips")
    parser.add_argument("--synthetic", type=int, default=2, help="synthetic corpus videos")
    parser.add_argument("--baseline", default="pyav")
    parser.add_argument("--fps", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--files", nargs="+", type=Path, help="decode these files instead")
    args = parser.parse_args()

    from vidcap.errors import VidcapError
    from vidcap.synth.plan import SynthConfig
    from vidcap.synth.records import generate_corpus
    from vidcap.video.backends import available_backends

    backends = available_backends()
    if args.baseline not in backends:
        raise SystemExit(f"the baseline backend {args.baseline} is not installed")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.files:
            files = {p.name: p for p in args.files}
        else:
            generate_corpus(tmp / "synth", SynthConfig(videos=args.synthetic, seed=0, workers=1))
            files = {p.name: p for p in sorted((tmp / "synth").rglob("*.mp4"))[: args.synthetic]}
            files.update(make_1080p(tmp, args.seconds))
        frames, times, failed = time_decoders(
            files,
            {
                b: functools.partial(decode, backend=b, fps=args.fps, size=args.size)
                for b in backends
            },
            args.repeats,
            (VidcapError,),
        )
        print(
            f"backends: {', '.join(backends)}; {args.repeats} interleaved repeats, medians; "
            f"{args.fps:g} fps, short side {args.size}; ratio = speed / {args.baseline}'s"
        )
        print(
            f"{'file':<28}{'backend':<12}{'frames':>7}{'median s':>10}{'frames/s':>10}{'ratio':>7}"
        )
        for name in files:
            base = statistics.median(times[name, args.baseline])
            for backend in backends:
                if (name, backend) in failed:
                    print(f"{name:<28}{backend:<12} failed: {str(failed[name, backend])[-90:]}")
                    continue
                med = statistics.median(times[name, backend])
                print(
                    f"{name:<28}{backend:<12}{frames[name, backend]:>7}{med:>10.3f}"
                    f"{frames[name, backend] / med:>10.1f}{base / med:>7.2f}"
                )
        ok = [n for n in files if not any((n, b) in failed for b in backends)]
        totals = {b: sum(statistics.median(times[n, b]) for n in ok) for b in backends}
        print("files every backend decoded, sum of medians: " + ", ".join(
            f"{b} {totals[b]:.2f} s (x{totals[args.baseline] / totals[b]:.2f})" for b in backends
        ))  # fmt: skip


if __name__ == "__main__":
    main()
