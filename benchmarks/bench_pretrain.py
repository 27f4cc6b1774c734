"""Benchmark `vidcap pretrain`: against a bare transformers + torch loop, or its tokens/s and MFU.

A synthetic corpus is run through extract → encode → quantize (k=4, depth 2), then one of two
measurements.

**The loop's overhead** (the default; VideoBERT ``base`` on a CPU):

- ``vidcap pretrain`` (the stage: Accelerate, examples drawn on the fly, metrics, one checkpoint at
  the end) is timed from its first optimizer step to its last;
- the bare loop builds the same model from the same seed and trains it the same way (AdamW, the
  gradient clipped at the stage's norm, transformers' warmup-then-linear schedule) for the same
  number of steps on the same batches in the same order, collated in advance, with nothing else:
  no Accelerate, no on-the-fly drawing, no metrics, no progress.

Prints the median steps/s of each over interleaved pairs of runs and their ratio, and each pair's
ratio with the median of those (goal: >= 0.9). A 2-core machine's speed can drift by tens of
percent within a minute; a pair's two runs follow each other, so its ratio is the less disturbed
figure, and one pair alone says little.

**Throughput** (``--throughput``; the ``paper`` preset in bf16, meant for a GPU): steps/s,
tokens/s and model FLOPs utilisation of ``vidcap pretrain``. The FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` over the forward and backward pass of each timed
batch (as padded); MFU divides the achieved FLOP/s by the device's dense bf16/fp16 peak, known for
a few data-centre GPUs or given with ``--peak-tflops``.

    python benchmarks/bench_pretrain.py [--videos 60] [--steps 200] [--preset base] [--repeats 7]
    python benchmarks/bench_pretrain.py --throughput [--preset paper] [--steps 60] [--batch-size 128]
        [--mixed-precision bf16] [--peak-tflops T]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from transformers import get_linear_schedule_with_warmup

from vidcap.models.presets import model_size
from vidcap.quantize.kmeans import HierarchicalKMeans
from vidcap.stages.encode import EncodeConfig, run_encode
from vidcap.stages.extract import ExtractConfig, run_extract
from vidcap.stages.inputs import resolve_inputs
from vidcap.stages.pretrain import PretrainConfig, run_pretrain
from vidcap.stages.quantize import QuantizeConfig, run_quantize
from vidcap.synth.plan import SynthConfig
from vidcap.synth.records import generate_corpus
from vidcap.text import JointVocabulary
from vidcap.training.examples import (
    ExampleConfig,
    VideoBertExamples,
    collate_videobert,
    load_video_samples,
    split_samples,
)
from vidcap.training.loop import EpochSampler, TrainConfig
from vidcap.training.objectives import VideoBertObjective
from vidcap.training.settings import preset_defaults

# Dense (no sparsity) bf16/fp16 tensor-core peaks in TFLOP/s per GPU, from NVIDIA's data sheets;
# the first name found in the device's name wins.
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}


def synthetic_words(root: Path, videos: int) -> Path:
    """A synthetic corpus run through extract, encode and quantize (k=4, depth 2); the words folder."""
    generate_corpus(root / "synth", SynthConfig(videos=videos, seed=0, workers=2))
    run_extract(
        resolve_inputs([str(root / "synth" / "corpus.jsonl")]),
        root / "frames",
        ExtractConfig(size=96),
    )
    run_encode(root / "frames", root / "features", EncodeConfig())
    run_quantize(root / "features", root / "words", QuantizeConfig(k=4, depth=2))
    return root / "words"


def stage_model_and_batches(
    words_dir: Path, vocab_dir: Path, preset: str, steps: int, batch_size: int
) -> tuple[VideoBertObjective, list[dict[str, torch.Tensor]]]:
    """The stage's VideoBERT (same seed, same weights) and its first ``steps`` batches, in order."""
    from vidcap.models.videobert import build_videobert

    vocab = JointVocabulary.load(vocab_dir)
    samples, _ = load_video_samples(words_dir)
    size = model_size(preset, "videobert")
    tree = HierarchicalKMeans.load(words_dir / "codebook.safetensors")
    torch.manual_seed(0)
    model = build_videobert(vocab, size, None, tree.leaf_centroids)
    objective = VideoBertObjective(model, vocab.visual_range)
    examples = VideoBertExamples(
        split_samples(samples, "train"), vocab, ExampleConfig(max_length=size.max_length)
    )
    collate = partial(collate_videobert, pad_id=vocab.pad_id)
    # The stage's order: a seeded permutation per epoch, cut into batches, the last short one
    # dropped (unless it is the only one, as the stage does).
    sampler, batch_keys = EpochSampler(len(examples), seed=0), []
    while len(batch_keys) < steps:
        epoch_keys = list(sampler)
        epoch_batches = [
            epoch_keys[i : i + batch_size] for i in range(0, len(epoch_keys), batch_size)
        ]
        if len(epoch_keys) >= batch_size and len(epoch_batches[-1]) < batch_size:
            epoch_batches.pop()
        batch_keys += epoch_batches
        sampler.set_epoch(sampler.epoch + 1)
    return objective, [collate(examples.__getitems__(keys)) for keys in batch_keys[:steps]]


def bare_loop(
    words_dir: Path, vocab_dir: Path, preset: str, steps: int, batch_size: int, lr: float
) -> float:
    """Seconds for ``steps`` plain AdamW steps of the same VideoBERT on the same batches (from
    the first step's end, as the stage is timed)."""
    objective, batches = stage_model_and_batches(words_dir, vocab_dir, preset, steps, batch_size)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=lr)
    defaults = TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(defaults.warmup_ratio * steps), steps
    )
    objective.train()
    started = None
    for step, batch in enumerate(batches):
        if step == 1:
            started = time.perf_counter()
        loss, _ = objective(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), defaults.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return time.perf_counter() - started


def stage_step_ends(words_dir: Path, out_dir: Path, config: PretrainConfig) -> list[float]:
    """Run ``vidcap pretrain``; the time at the end of each optimizer step."""
    marks: list[float] = []
    run_pretrain(
        words_dir, out_dir, config, on_step=lambda report: marks.append(time.perf_counter())
    )
    return marks


def compare(args: argparse.Namespace, words_dir: Path, tmp: Path) -> None:
    """The stage against the bare loop, in interleaved pairs; prints the rates and ratios."""
    defaults = preset_defaults(args.preset, "pretrain")
    batch_size = args.batch_size or defaults.batch_size
    config = PretrainConfig(
        preset=args.preset,
        max_steps=args.steps,
        batch_size=batch_size,
        eval_every=10**9,
        save_every=10**9,
    )
    stage_rates, bare_rates = [], []

    def time_stage(repeat: int) -> None:
        marks = stage_step_ends(words_dir, tmp / f"pretrain-{repeat}", config)
        stage_rates.append((args.steps - 1) / (marks[-1] - marks[0]))

    def time_bare(repeat: int) -> None:
        vocab_dir = tmp / f"pretrain-{repeat}" / "vocabulary"  # the paired stage run's
        bare_s = bare_loop(words_dir, vocab_dir, args.preset, args.steps, batch_size, defaults.lr)
        bare_rates.append((args.steps - 1) / bare_s)

    # Interleaved, the order alternating from pair to pair (the bare loop needs a stage run's
    # vocabulary, so an odd pair's bare loop takes the previous pair's), so that drifts in the
    # machine's speed hit both alike.
    for repeat in range(args.repeats):
        if repeat % 2 == 0:
            time_stage(repeat)
            time_bare(repeat)
        else:
            time_bare(repeat - 1)
            time_stage(repeat)

    stage_rate, bare_rate = statistics.median(stage_rates), statistics.median(bare_rates)
    ratios = [s / b for s, b in zip(stage_rates, bare_rates, strict=True)]
    print(
        f"VideoBERT {args.preset}, batch {batch_size}, {args.steps} steps, {args.videos} synthetic videos, CPU, "
        f"median of {args.repeats} interleaved runs"
    )
    print(f"  {'bare transformers + torch loop':<34}{bare_rate:7.2f} steps/s  1.00")
    print(f"  {'vidcap pretrain':<34}{stage_rate:7.2f} steps/s  {stage_rate / bare_rate:.2f}")
    print(
        f"  per-pair ratios: {', '.join(f'{r:.2f}' for r in sorted(ratios))} "
        f"(median {statistics.median(ratios):.2f})"
    )


def training_flops(objective: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    """FLOPs of one forward and backward pass of ``objective`` on ``batch``, as counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss, _ = objective(batch)
        loss.backward()
    objective.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def peak_tflops(device: torch.device, mixed_precision: str) -> float | None:
    """The device's dense bf16/fp16 peak, when it is a GPU listed in :data:`PEAK_TFLOPS`."""
    if device.type != "cuda" or mixed_precision == "no":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS.items() if key in name), None)


def throughput(args: argparse.Namespace, words_dir: Path, tmp: Path) -> None:
    """Steps/s, tokens/s and MFU of ``vidcap pretrain``; prints them."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mixed_precision = args.mixed_precision or ("bf16" if device.type == "cuda" else "no")
    batch_size = args.batch_size or preset_defaults(args.preset, "pretrain").batch_size
    skip = max(1, args.steps // 5)  # warm-up steps (allocator, kernel choices) left out
    if args.steps < skip + 2:
        raise SystemExit(f"--steps must be at least {skip + 2} to time anything.")
    config = PretrainConfig(
        preset=args.preset,
        max_steps=args.steps,
        batch_size=batch_size,
        mixed_precision=mixed_precision,
        eval_every=10**9,
        save_every=10**9,
    )
    marks = stage_step_ends(words_dir, tmp / "pretrain", config)
    seconds = marks[-1] - marks[skip - 1]  # steps skip+1 .. steps, batches skip .. steps-1
    objective, batches = stage_model_and_batches(
        words_dir, tmp / "pretrain" / "vocabulary", args.preset, args.steps, batch_size
    )
    timed = batches[skip:]
    objective.to(device).train()
    flops = sum(
        training_flops(objective, {k: v.to(device) for k, v in batch.items()}) for batch in timed
    )
    tokens = sum(int(batch["attention_mask"].sum()) for batch in timed)
    padded = sum(batch["attention_mask"].numel() for batch in timed)
    params = sum(p.numel() for p in objective.parameters())
    size = model_size(args.preset, "videobert")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"VideoBERT {args.preset} ({size.layers} layers x {size.hidden}, {params / 1e6:.0f} M parameters), "
        f"batch {batch_size}, {mixed_precision}, {where}, steps {skip + 1}-{args.steps} of {args.steps} timed"
    )
    print(f"  steps/s          {len(timed) / seconds:10.2f}")
    print(
        f"  tokens/s         {tokens / seconds:10.0f}  (real tokens; {tokens / padded:.0%} of the padded batches)"
    )
    achieved = flops / seconds / 1e12
    print(f"  model TFLOP/s    {achieved:10.4g}  (forward + backward, counted by FlopCounterMode)")
    peak = args.peak_tflops or peak_tflops(device, mixed_precision)
    if peak:
        print(f"  MFU              {achieved / peak:10.1%}  (of a {peak:g} TFLOP/s peak)")
    else:
        print("  MFU              unknown: give the device's peak with --peak-tflops")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--steps", type=int, default=None, help="200; 60 with --throughput")
    parser.add_argument("--preset", default=None, help="base; paper with --throughput")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=None, help="the preset's")
    parser.add_argument("--throughput", action="store_true", help="tokens/s and MFU instead")
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=None)
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    args.steps = args.steps or (60 if args.throughput else 200)
    args.preset = args.preset or ("paper" if args.throughput else "base")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        words_dir = synthetic_words(tmp, args.videos)
        (throughput if args.throughput else compare)(args, words_dir, tmp)


if __name__ == "__main__":
    main()
