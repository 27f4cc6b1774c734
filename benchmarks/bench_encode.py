"""Benchmark `vidcap encode`: the hf: path against a bare model loop, and the built-in descriptor.

1. ``hf:`` — a CLIP-style ViT (random weights, built from a config and saved to a temp folder: the
   same loading path as a hub id) encodes every clip of a synthetic corpus. `vidcap encode` (frames
   read from disk, clips prepared in DataLoader workers, batches across videos, features written)
   is compared with a bare loop calling the same model on the same, already prepared batches —
   i.e. the model's own throughput, the ceiling for any pipeline. Goal: ratio >= 0.9.
2. ``descriptor`` — clips/s and seconds of video encoded per second of wall time.

    python benchmarks/bench_encode.py [--videos 24] [--batch-size 32] [--hidden 384] [--layers 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import transformers

from vidcap.encoders import build_encoder
from vidcap.stages.encode import EncodeConfig, run_encode
from vidcap.stages.extract import ExtractConfig, run_extract
from vidcap.stages.inputs import resolve_inputs


def save_vit(path: Path, hidden: int, layers: int, image_size: int) -> Path:
    """A CLIP vision tower of a given size with random weights, saved like a hub checkpoint."""
    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(
        hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), image_size=image_size, patch_size=16,
    )  # fmt: skip
    transformers.CLIPVisionModel(config).save_pretrained(path)
    processor = {
        "image_processor_type": "CLIPImageProcessor", "do_resize": True,
        "size": {"shortest_edge": image_size}, "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.481, 0.458, 0.408], "image_std": [0.269, 0.261, 0.276],
    }  # fmt: skip
    (path / "preprocessor_config.json").write_text(json.dumps(processor))
    return path


def prepared_batches(frames_dir: Path, encoder: Any, batch_size: int) -> list[torch.Tensor]:
    """Every clip of an extract folder, prepared by ``encoder``, stacked into batches."""
    import numpy as np

    from vidcap.artifacts import read_upstream
    from vidcap.video.clips import Clip, clip_array

    _, items = read_upstream(frames_dir, "extract")
    prepared = []
    for item in items.values():
        frames = np.load(frames_dir / item.outputs["frames"], mmap_mode="r")
        for clip in item.info["clips"]:
            prepared.append(
                encoder.prepare(clip_array(frames, Clip(**clip), item.info["clip_frames"]))
            )
    return [torch.stack(prepared[i : i + batch_size]) for i in range(0, len(prepared), batch_size)]


def synchronize(device: Any) -> None:
    """Wait for the GPU's queued work (nothing on the CPU), so that a timer counts it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def model_seconds(encoder: Any, batches: list[torch.Tensor]) -> float:
    """Seconds for the model alone on prepared batches: to the device, normalise, forward, in
    the encoder's compute dtype."""
    from vidcap.encoders.precision import autocast

    synchronize(encoder.device)
    started = time.perf_counter()
    with torch.inference_mode(), autocast(encoder.device, encoder.options.dtype):
        for batch in batches:
            encoder.forward_features(encoder.pixel_values(batch))
    synchronize(encoder.device)
    return time.perf_counter() - started


def bare_loop(frames_dir: Path, spec: str, batch_size: int) -> tuple[int, float]:
    """The same model on the same prepared batches, nothing else: (clips, seconds)."""
    encoder = build_encoder(spec)
    batches = prepared_batches(frames_dir, encoder, batch_size)
    return sum(len(b) for b in batches), model_seconds(encoder, batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--loader-workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from vidcap.synth.plan import SynthConfig
    from vidcap.synth.records import generate_corpus

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        generate_corpus(tmp / "synth", SynthConfig(videos=args.videos, seed=0, workers=2))
        frames_dir = tmp / "frames"
        run_extract(
            resolve_inputs([str(tmp / "synth" / "corpus.jsonl")]),
            frames_dir,
            ExtractConfig(size=128),
        )
        spec = f"hf:{save_vit(tmp / 'vit', args.hidden, args.layers, args.image_size)}"

        # Interleaved repeats (bare, vidcap, bare, vidcap, ...): the ratio of each pair, then the
        # median, so that the load of a shared machine weighs on both alike.
        ratios, rates = [], []
        for n in range(args.repeats):
            clips, bare_s = bare_loop(frames_dir, spec, args.batch_size)
            started = time.perf_counter()
            result = run_encode(
                frames_dir,
                tmp / f"hf{n}",
                EncodeConfig(
                    encoder=spec, batch_size=args.batch_size, loader_workers=args.loader_workers
                ),
            )
            vidcap_s = time.perf_counter() - started
            assert result.ok and result.details["clips"] == clips
            rates.append((clips / bare_s, clips / vidcap_s))
            ratios.append(bare_s / vidcap_s)

        started = time.perf_counter()
        result = run_encode(
            frames_dir, tmp / "desc", EncodeConfig(loader_workers=args.loader_workers)
        )
        desc_s = time.perf_counter() - started
        seconds_of_video = sum(
            json.loads(line)["duration_s"]
            for line in (frames_dir / "index.jsonl").read_text().splitlines()
        )

    bare_rate = statistics.median(b for b, _ in rates)
    vidcap_rate = statistics.median(v for _, v in rates)
    print(f"{args.videos} synthetic videos, {clips} clips of 30 frames (short side 128)")
    print(
        f"hf: CLIP ViT hidden {args.hidden} x {args.layers} layers, {args.image_size} px, 4 frames per clip, batch {args.batch_size}"
    )
    print(f"  {'bare model loop (prepared batches)':<42}{bare_rate:8.1f} clips/s  1.00")
    print(
        f"  {'vidcap encode (read + prepare + model + write)':<42}{vidcap_rate:8.1f} clips/s  "
        f"{statistics.median(ratios):.2f} (median of {args.repeats} interleaved: "
        f"{' '.join(f'{r:.2f}' for r in ratios)})"
    )
    print("descriptor:")
    print(
        f"  {'vidcap encode --encoder descriptor':<42}{clips / desc_s:8.1f} clips/s  {seconds_of_video / desc_s:.1f} s of video per s"
    )


if __name__ == "__main__":
    main()
