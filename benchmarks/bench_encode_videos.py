"""Benchmark `vidcap encode` straight from videos against `vidcap extract` then `vidcap encode`.

On the same synthetic corpus and settings, in interleaved repeats (from videos, then extract →
encode, then again...), each timed from the command's start to its manifest:

- ``from videos``: ``run_encode_videos`` (decode + cut + prepare in the decode child, model here);
- ``extract``, ``encode`` and their sum: ``run_extract`` then ``run_encode`` on its folder;
- ``decode alone``: the same decode workers streaming every frame back and dropping it;
- ``decode in child``: the same workers decoding and cutting clips, nothing sent back (the
  decoding that encoding from videos does, without the encoder's step);
- ``decode 4 of 30``: the same, converting and sending only 4 evenly spread frames of each clip
  (what an image model declaring ``frame_indices`` gets).

Reported: the median wall time of each and the CPU time it used (this process and its children),
the ratio from-videos / (extract + encode) per repeat and its median, from-videos / max(decode,
encode alone) for both kinds of decoding, the CPU floor max(decode in child, encode alone, their
CPU time / cores) (no schedule on this machine's cores can beat it), and the bytes each way
writes to disk.
Encoders: the built-in descriptor and a small random-weights CLIP ViT (``--hf``).

``--cold`` (root, Linux) measures a corpus larger than memory, as a real one is (YouCook2's frames
are 3.4 TB): the page cache is dropped before every timed step, so videos and frames are read from
the disk, and each step's time includes flushing what it wrote to the disk (``sync``). Without it,
everything a few test videos write stays in memory and the frame store costs almost nothing.

    python benchmarks/bench_encode_videos.py [--videos 6] [--repeats 3] [--size 224] [--hf] [--cold]
        [--min-s 30 --max-s 60] [--source-height 360]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).parent))

# vidcap is imported inside the functions, not here: the decode children are started with
# `spawn`, which runs this file's top level again in each of them (as `__mp_main__`), and
# importing torch there would add 1.3 s and 250 MB to every child that the `vidcap` command's
# children do not pay (its top level imports no torch).
if TYPE_CHECKING:
    from vidcap.stages.encode import EncodeConfig
    from vidcap.stages.extract import ExtractConfig
    from vidcap.stages.inputs import ResolvedInputs
    from vidcap.synth.plan import SynthConfig


def transcode(corpus: Path, height: int) -> None:
    """Re-encode every video of ``corpus`` in place as H.264, ``height`` px high (aspect kept)."""
    import subprocess

    for video in sorted((corpus / "videos").iterdir()):
        out = video.with_name(f"h264-{video.name}")
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(video), "-vf", f"scale=-2:{height}",
             "-c:v", "libx264", "-pix_fmt", "yuv420p", "-an", str(out)],
            check=True,
        )  # fmt: skip
        out.replace(video)


def synth_config(videos: int, min_s: float | None, max_s: float | None) -> SynthConfig:
    """The benchmark corpus: the generator's short videos, or untrimmed ones of min_s-max_s s."""
    from vidcap.synth.plan import SynthConfig

    synth = SynthConfig(videos=videos, seed=0, workers=os.cpu_count() or 2)
    if min_s is None and max_s is None:
        return synth
    shortest = min_s if min_s is not None else 30.0
    longest = max_s if max_s is not None else max(shortest, 60.0)
    return replace(synth, untrimmed=1.0, untrimmed_duration=(shortest, longest))


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


DROP_CACHES = Path("/proc/sys/vm/drop_caches")


class Disk:
    """Whether steps run against a cold disk (``--cold``): before each, the page cache is dropped;
    after each, what it wrote is flushed, inside its time."""

    def __init__(self, cold: bool) -> None:
        self.cold = cold
        if cold and not os.access(DROP_CACHES, os.W_OK):
            raise SystemExit(f"--cold drops the page cache: it needs root and {DROP_CACHES}.")

    def before(self) -> None:
        if self.cold:
            os.sync()
            DROP_CACHES.write_text("3\n")

    def after(self) -> None:
        if self.cold:
            os.sync()


def decode_alone(
    inputs: ResolvedInputs, extract: ExtractConfig, keep: Any = None, send: bool = True
) -> float:
    """Every frame (or the ``keep`` ones) streamed back from the decode workers and dropped; or,
    ``send=False``, decoded and cut into clips in the workers, nothing sent back."""
    import numpy as np

    from vidcap.video import DecodeWorker
    from vidcap.video.clip_stream import stream_clips

    todo = list(inputs.videos)
    lock = threading.Lock()

    def run() -> None:
        with DecodeWorker() as worker:
            while True:
                with lock:
                    if not todo:
                        return
                    video = todo.pop()
                options = dict(
                    timeout=extract.timeout, backend=extract.backend, fps=extract.fps,
                    size=extract.size, crop=extract.crop, keep=keep,
                )  # fmt: skip
                if send:
                    stream = worker.stream(video.path, **options)
                else:  # every clip's frames [] (none): the parent gets only the clip count
                    nothing = np.zeros(0, dtype=int)
                    stream = worker.stream_items(
                        video.path, stream_clips, step=None, clip_frames=extract.clip_frames,
                        read=nothing, **options,
                    )  # fmt: skip
                for _ in stream:
                    pass

    started = time.perf_counter()
    threads = [threading.Thread(target=run) for _ in range(extract.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def cpu_seconds() -> float:
    """CPU time used so far by this process and its finished children (decoders, loaders)."""
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_round(tmp: Path, n: int, inputs: ResolvedInputs, encode: EncodeConfig,
              extract: ExtractConfig, disk: Disk) -> dict[str, float]:  # fmt: skip
    from vidcap.encoders.base import sample_indices
    from vidcap.stages.encode import run_encode
    from vidcap.stages.encode_videos import run_encode_videos
    from vidcap.stages.extract import run_extract
    from vidcap.video.clips import clip_frame_mask

    times: dict[str, float] = {}

    def timed(key: str, step: Any) -> Any:
        disk.before()
        cpu = cpu_seconds()
        started = time.perf_counter()
        result = step()
        disk.after()
        times[key] = time.perf_counter() - started
        times[f"cpu {key}"] = cpu_seconds() - cpu
        return result

    result = timed(
        "from videos", lambda: run_encode_videos(inputs, tmp / f"direct{n}", encode, extract)
    )
    assert result.ok, result.failures
    assert timed("extract", lambda: run_extract(inputs, tmp / f"frames{n}", extract)).ok
    assert timed("encode", lambda: run_encode(tmp / f"frames{n}", tmp / f"features{n}", encode)).ok
    times["extract + encode"] = times["extract"] + times["encode"]
    timed("decode alone", lambda: decode_alone(inputs, extract))
    timed("decode in child", lambda: decode_alone(inputs, extract, send=False))
    # What an image model reading 4 frames per clip lets the decoder skip (frame_indices).
    four = clip_frame_mask(sample_indices(extract.clip_frames, 4), extract.clip_frames)
    timed("decode 4 of 30", lambda: decode_alone(inputs, extract, four))
    times["bytes from videos"] = folder_bytes(tmp / f"direct{n}")
    times["bytes extract + encode"] = folder_bytes(tmp / f"frames{n}") + folder_bytes(
        tmp / f"features{n}"
    )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=1, help="decode workers (both ways)")
    parser.add_argument("--loader-workers", type=int, default=2)
    parser.add_argument("--hf", action="store_true", help="also a small CLIP ViT (hf:)")
    parser.add_argument("--hf-only", action="store_true", help="only the small CLIP ViT")
    parser.add_argument(
        "--cold", action="store_true", help="read from the disk, not memory (root; see above)"
    )
    parser.add_argument(
        "--source-height", type=int,
        help="re-encode the synthetic videos as H.264 (ffmpeg's libx264 defaults) this many "
        "pixels high, e.g. 360: what a corpus from the web holds (the synthetic ones are "
        "128-256 px MPEG-4, cheap to decode, and upscaled to --size)",
    )  # fmt: skip
    parser.add_argument("--min-s", type=float, help="untrimmed videos at least this long (s)")
    parser.add_argument("--max-s", type=float, help="and at most this long (s)")
    args = parser.parse_args()
    disk = Disk(args.cold)

    from bench_encode import save_vit

    from vidcap.stages.encode import EncodeConfig
    from vidcap.stages.extract import ExtractConfig
    from vidcap.stages.inputs import resolve_inputs
    from vidcap.synth.records import generate_corpus

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        generate_corpus(tmp / "synth", synth_config(args.videos, args.min_s, args.max_s))
        if args.source_height:
            transcode(tmp / "synth", args.source_height)
        inputs = resolve_inputs([str(tmp / "synth" / "corpus.jsonl")])
        extract = ExtractConfig(size=args.size, workers=args.workers)
        encoders = {} if args.hf_only else {"descriptor": "descriptor"}
        if args.hf or args.hf_only:
            encoders["hf: CLIP ViT 384x6"] = f"hf:{save_vit(tmp / 'vit', 384, 6, 224)}"
        source = f"H.264 {args.source_height} px high, " if args.source_height else ""
        print(
            f"{args.videos} synthetic videos, {source}short side {args.size}, "
            f"{args.workers} decode worker(s), {args.loader_workers} loader workers; "
            f"{args.repeats} interleaved repeats; "
            + (
                "cold disk (page cache dropped before each step)"
                if args.cold
                else "warm (in memory)"
            )
        )
        cores = os.cpu_count() or 1
        for label, spec in encoders.items():
            encode = EncodeConfig(encoder=spec, loader_workers=args.loader_workers)
            rounds = [
                one_round(tmp / f"{label[:2]}{n}", n, inputs, encode, extract, disk)
                for n in range(args.repeats)
            ]
            print(f"{label}:")
            keys = ("from videos", "extract", "encode", "extract + encode", "decode alone")
            for key in (*keys, "decode in child", "decode 4 of 30"):
                values = [r[key] for r in rounds]
                shown = " ".join(f"{v:.2f}" for v in values)
                cpu = "" if key == "extract + encode" else (
                    f"  cpu {statistics.median(r['cpu ' + key] for r in rounds):6.2f} s"
                )  # fmt: skip
                print(f"  {key:<20} median {statistics.median(values):7.2f} s  ({shown}){cpu}")
            ratios = [r["from videos"] / r["extract + encode"] for r in rounds]
            print(
                f"  from videos / (extract + encode): median {statistics.median(ratios):.2f} "
                f"({' '.join(f'{r:.2f}' for r in ratios)})"
            )
            ways = {
                "max(decode alone, encode alone)": lambda r: max(r["decode alone"], r["encode"]),
                "max(decode in child, encode alone)": lambda r: max(
                    r["decode in child"], r["encode"]
                ),
                f"CPU floor on {cores} cores": lambda r: max(
                    r["decode in child"],
                    r["encode"],
                    (r["cpu decode in child"] + r["cpu encode"]) / cores,
                ),
            }
            for name, denominator in ways.items():
                bound = [r["from videos"] / denominator(r) for r in rounds]
                print(
                    f"  from videos / {name}: median "
                    f"{statistics.median(bound):.2f} ({' '.join(f'{r:.2f}' for r in bound)})"
                )
            direct, staged = rounds[0]["bytes from videos"], rounds[0]["bytes extract + encode"]
            print(
                f"  disk written: from videos {direct / 1e6:.2f} MB, extract + encode "
                f"{staged / 1e6:.1f} MB ({staged / direct:.0f}x)"
            )


if __name__ == "__main__":
    main()
