"""What decoding in the killable worker costs `vidcap caption` on a short video.

The caption pipeline decodes in a child process and gets the frames back in chunks over a pipe
(`DecodeWorker.stream`), then cuts and encodes them here. This compares, on one synthetic video
(about 10 s, short side 224, descriptor encoder), interleaved:

- in process: `decode_frames` + clips + encode, as captioning did before;
- worker, cold: a fresh `DecodeWorker` (process start included), as for a command's first video;
- worker, warm: the same worker's next video, as for every later video.

    python benchmarks/bench_caption_decode.py [--repeats 5] [--size 224]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidcap.video import DecodeWorker, FrameChunk, decode_frames
from vidcap.video.clips import ClipCutter


def encode_all(chunks: Iterable[FrameChunk], encoder: Any) -> int:
    cutter = ClipCutter(20.0, 30)
    clips = []
    for chunk in chunks:
        clips += cutter.push(chunk.frames)
    clips += cutter.finish()
    return len(encoder.encode(clips))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()

    # Imported here, not at the top: the spawned decode child imports this script's top level,
    # and the caption command's child does not import torch either.
    from vidcap.encoders import build_encoder
    from vidcap.synth.plan import SynthConfig
    from vidcap.synth.records import generate_corpus

    encoder = build_encoder("descriptor")
    times: dict[str, list[float]] = {"in process": [], "worker, cold": [], "worker, warm": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        generate_corpus(Path(tmp_name), SynthConfig(videos=1, seed=3, workers=1))
        video = next(Path(tmp_name).rglob("*.mp4"))
        for _ in range(args.repeats):
            started = time.perf_counter()
            n = encode_all(decode_frames(video, size=args.size), encoder)
            times["in process"].append(time.perf_counter() - started)
            with DecodeWorker() as worker:
                for label in ("worker, cold", "worker, warm"):
                    started = time.perf_counter()
                    assert encode_all(worker.stream(video, size=args.size), encoder) == n
                    times[label].append(time.perf_counter() - started)
    base = statistics.median(times["in process"])
    print(
        f"one {n}-clip synthetic video, short side {args.size}, descriptor; {args.repeats} repeats"
    )
    for label, values in times.items():
        median = statistics.median(values)
        print(
            f"  {label:<14} median {median:6.3f} s  (+{median - base:6.3f} s, x{median / base:.2f})"
        )


if __name__ == "__main__":
    main()
