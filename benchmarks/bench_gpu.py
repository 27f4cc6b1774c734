"""GPU figures: NVDEC decoding beside CPU decoding, and hf: encoding in float32 / float16 / bfloat16.

For a machine with a CUDA GPU (vidcap's tests and CI have none; ``--device cpu`` runs the same
code on the CPU, to try the script):

1. decode: each file decoded whole (every frame at its own size, RGB) by torchcodec on the CPU and
   on the GPU (``device="cuda"``: torchcodec's own NVDEC backend and FFmpeg's), and by PyAV on
   the CPU and with FFmpeg's CUDA hwaccel (frames downloaded to memory); frames/s, the median of
   interleaved repeats, and the ratio to the same library on the CPU. A decoder that cannot run
   here is listed with its error.
2. encode: a CLIP ViT with random weights of ViT-B/16's shape (768 wide, 12 layers, 224 px), built
   from a config and saved to a folder (the path a hub id takes), encodes a synthetic corpus at
   each compute dtype: the bare model loop on prepared batches, ``vidcap encode`` from a frames
   folder, and ``vidcap encode`` straight from the videos; clips/s, the ratio to the bare loop, and
   how far float16 / bfloat16 features lie from float32 ones.

    python benchmarks/bench_gpu.py [--files A.mp4 ...] [--videos 24] [--repeats 3]
        [--hidden 768 --layers 12] [--batch-size 64] [--workers 8] [--min-s 30 --max-s 60]
        [--dtypes float32 float16] [--skip-decode|--skip-encode]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

# vidcap and torch are imported inside the functions: the decode and loader children are started
# with `spawn`, which runs this file's top level again in each of them.

DTYPES = ("float32", "float16", "bfloat16")


def torchcodec_decoder(device: str, cuda_backend: str | None = None) -> Callable[[Path], int]:
    """Decode a whole file with torchcodec on ``device``, 64 frames a call; returns the frames.

    ``cuda_backend`` is torchcodec's (0.14+): ``"nvdec"`` (its own, the default) or ``"ffmpeg"``.
    A decoder that fell back to the CPU is an error here, not a GPU figure.
    """

    def decode(path: Path) -> int:
        import contextlib

        from bench_encode import synchronize
        from torchcodec import decoders

        backend = (
            decoders.set_cuda_backend(cuda_backend) if cuda_backend else contextlib.nullcontext()
        )
        # On the CPU, FFmpeg's own thread count (torchcodec's default is 1 thread; PyAV's AUTO).
        threads = {"num_ffmpeg_threads": 0} if device == "cpu" else {}
        with backend:
            decoder = decoders.VideoDecoder(str(path), device=device, **threads)
        total = len(decoder)
        for start in range(0, total, 64):
            decoder.get_frames_in_range(start, min(start + 64, total))
        synchronize(device)  # the GPU's decoding is asynchronous: count it in the time
        fallback = getattr(decoder, "cpu_fallback", None)
        if fallback:
            raise RuntimeError(str(fallback).replace("\n", " "))
        return total

    return decode


def pyav_decoder(hwaccel: bool) -> Callable[[Path], int]:
    """Decode a whole file with PyAV into RGB arrays, on the CPU or through FFmpeg's CUDA
    hwaccel (no software fallback: a stream NVDEC cannot take is an error, not a CPU figure)."""

    def decode(path: Path) -> int:
        import av
        from av.codec.hwaccel import HWAccel

        options = (
            {"hwaccel": HWAccel(device_type="cuda", allow_software_fallback=False)}
            if hwaccel
            else {}
        )
        frames = 0
        with av.open(str(path), **options) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
                frames += 1
            if hwaccel and not stream.codec_context.is_hwaccel:
                raise RuntimeError("FFmpeg decoded this stream without the GPU")
        return frames

    return decode


def bench_decode(files: list[Path], repeats: int, cuda: bool) -> None:
    """Frames/s of each decoder on each file, and the ratio to its library on the CPU."""
    decoders: dict[str, tuple[str, Callable[[Path], int]]] = {
        "torchcodec cpu": ("torchcodec cpu", torchcodec_decoder("cpu")),
        "pyav cpu": ("pyav cpu", pyav_decoder(False)),
    }
    if cuda:
        decoders["torchcodec cuda nvdec"] = ("torchcodec cpu", torchcodec_decoder("cuda", "nvdec"))
        decoders["torchcodec cuda ffmpeg"] = (
            "torchcodec cpu",
            torchcodec_decoder("cuda", "ffmpeg"),
        )
        decoders["pyav cuda hwaccel"] = ("pyav cpu", pyav_decoder(True))
    from bench_decode_backends import time_decoders

    frames, times, failed = time_decoders(
        {path.name: path for path in files},
        {name: decode for name, (_, decode) in decoders.items()},
        repeats,
        (Exception,),  # a GPU decoder's failure is any error of its library: listed, not timed
    )
    print(f"decode, whole files at their own size to RGB; {repeats} interleaved repeats, medians")
    print(f"{'file':<26}{'decoder':<22}{'frames':>7}{'median s':>10}{'frames/s':>10}{'x cpu':>7}")
    for path in files:
        for name, (base, _) in decoders.items():
            key = (path.name, name)
            if key in failed:
                error = f"{type(failed[key]).__name__}: {failed[key]}".splitlines()[0]
                print(f"{path.name:<26}{name:<22} failed: {error[:110]}")
                continue
            med = statistics.median(times[key])
            ratio = (
                f"{statistics.median(times[path.name, base]) / med:>7.2f}"
                if (path.name, base) in times
                else f"{'-':>7}"
            )
            print(
                f"{path.name:<26}{name:<22}{frames[key]:>7}{med:>10.3f}{frames[key] / med:>10.1f}{ratio}"
            )


class SteadyRate:
    """An ``on_video`` callback: clips/s from the moment a tenth of the clips are done to the
    last, which leaves out what a run pays once (starting workers, loading the model), as a long
    corpus does. Videos finish in bursts, one batch at a time: it needs many batches."""

    def __init__(self) -> None:
        self.done: list[tuple[float, int]] = []

    def __call__(self, event: Any) -> None:
        self.done.append((time.perf_counter(), event.n_clips))

    def rate(self) -> float:
        if not self.done:
            return float("nan")
        counts = list(itertools.accumulate(n for _, n in self.done))
        first = next(i for i, c in enumerate(counts) if c >= counts[-1] / 10)
        span = self.done[-1][0] - self.done[first][0]
        return (counts[-1] - counts[first]) / span if span > 1e-3 else float("nan")


def bench_encode(args: argparse.Namespace, tmp: Path) -> None:
    """Clips/s of the bare loop, encode from frames and encode from videos, per dtype."""
    import torch
    from bench_encode import model_seconds, prepared_batches, save_vit
    from bench_encode_videos import synth_config

    from vidcap.encoders import build_encoder
    from vidcap.encoders.base import EncoderOptions
    from vidcap.stages.encode import EncodeConfig, run_encode
    from vidcap.stages.encode_videos import run_encode_videos
    from vidcap.stages.extract import ExtractConfig, run_extract
    from vidcap.stages.inputs import resolve_inputs
    from vidcap.synth.records import generate_corpus

    generate_corpus(tmp / "synth", synth_config(args.videos, args.min_s, args.max_s))
    inputs = resolve_inputs([str(tmp / "synth" / "corpus.jsonl")])
    extract = ExtractConfig(size=224, workers=args.workers)
    assert run_extract(inputs, tmp / "frames", extract).ok
    spec = f"hf:{save_vit(tmp / 'vit', args.hidden, args.layers, 224)}"
    dtypes = args.dtypes if args.device.startswith("cuda") else ["float32"]

    encoders = {
        d: build_encoder(spec, EncoderOptions(device=args.device, dtype=d))
        for d in dict.fromkeys(["float32", *dtypes])
    }
    batches = prepared_batches(tmp / "frames", encoders["float32"], args.batch_size)
    clips = sum(len(b) for b in batches)
    reference = [encoders["float32"].embed(b) for b in batches[:4]]
    rates: dict[tuple[str, str], list[float]] = {}
    for n in range(args.repeats):  # interleaved: every way and dtype once per repeat
        for dtype in dtypes:
            config = EncodeConfig(
                encoder=spec, batch_size=args.batch_size, device=args.device, dtype=dtype,
                loader_workers=args.loader_workers,
            )  # fmt: skip
            rates.setdefault((dtype, "bare"), []).append(
                clips / model_seconds(encoders[dtype], batches)
            )
            for way in ("frames", "videos"):
                out = tmp / f"{way}-{dtype}-{n}"
                done = SteadyRate()
                started = time.perf_counter()
                if way == "frames":
                    result = run_encode(tmp / "frames", out, config, on_video=done)
                else:
                    result = run_encode_videos(inputs, out, config, extract, on_video=done)
                seconds = time.perf_counter() - started
                assert result.ok and result.details["clips"] == clips, result.failures
                rates.setdefault((dtype, f"{way} steady"), []).append(done.rate())
                rates.setdefault((dtype, way), []).append(clips / seconds)

    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"\nencode on {name}: {args.videos} synthetic videos, {clips} clips; hf: CLIP ViT "
        f"{args.hidden} x {args.layers} layers, 224 px, 4 frames per clip, batch "
        f"{args.batch_size}; {args.workers} decode workers, {args.loader_workers} loader "
        f"workers; median clips/s of {args.repeats} interleaved repeats"
    )
    print("clips/s, whole run (and from a tenth of the clips done to the last: no start-up)")
    print(f"{'dtype':<10}{'bare loop':>10}{'from frames':>20}{'x bare':>13}{'from videos':>20}"
          f"{'x bare':>13}  features vs float32")  # fmt: skip
    for dtype in dtypes:
        bare = statistics.median(rates[dtype, "bare"])
        row = f"{dtype:<10}{bare:>10.1f}"
        for way in ("frames", "videos"):
            whole = statistics.median(rates[dtype, way])
            steady = statistics.median(rates[dtype, f"{way} steady"])
            row += f"{whole:>10.1f} ({steady:>7.1f}){whole / bare:>6.2f} ({steady / bare:.2f})"
        if dtype != "float32":
            got = [encoders[dtype].embed(b) for b in batches[:4]]
            rel = max(
                ((g - r).abs().max() / r.abs().max()).item()
                for g, r in zip(got, reference, strict=True)
            )
            cos = min(
                torch.nn.functional.cosine_similarity(g, r, dim=1).min().item()
                for g, r in zip(got, reference, strict=True)
            )
            row += f"  max rel {rel:.1e}, min cos {cos:.5f}"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="+", type=Path, default=[], help="videos to decode")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--videos", type=int, default=24, help="synthetic videos to encode")
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=8, help="decode workers")
    parser.add_argument("--loader-workers", type=int, default=4)
    parser.add_argument("--min-s", type=float, help="untrimmed videos at least this long (s)")
    parser.add_argument("--max-s", type=float, help="and at most this long (s)")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--skip-encode", action="store_true")
    args = parser.parse_args()

    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: pass --device cpu to try the script on the CPU")
    print(f"torch {torch.__version__}" + (f", {torch.cuda.get_device_name()}" if cuda else ""))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_decode:
            if not args.files:
                raise SystemExit("decode: pass the videos to decode with --files")
            bench_decode(args.files, args.repeats, cuda)
        if not args.skip_encode:
            bench_encode(args, tmp)


if __name__ == "__main__":
    main()
