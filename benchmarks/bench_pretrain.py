"""Benchmark `vidcap pretrain` against a bare transformers + torch loop on the same model and batches.

A synthetic corpus is run through extract → encode → quantize (k=4, depth 2), then:

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

    python benchmarks/bench_pretrain.py [--videos 60] [--steps 200] [--preset base] [--repeats 7]
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

from vidcap.datasets.synth import SynthConfig, generate_corpus
from vidcap.models.presets import model_size, train_defaults
from vidcap.quantize.kmeans import HierarchicalKMeans
from vidcap.stages.encode import EncodeConfig, run_encode
from vidcap.stages.extract import ExtractConfig, run_extract
from vidcap.stages.inputs import resolve_inputs
from vidcap.stages.pretrain import PretrainConfig, run_pretrain
from vidcap.stages.quantize import QuantizeConfig, run_quantize
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


def bare_loop(
    words_dir: Path, vocab_dir: Path, preset: str, steps: int, batch_size: int, lr: float
) -> float:
    """Seconds for ``steps`` plain AdamW steps of the same VideoBERT on the same kind of batches."""
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
    # The stage's batches, in its order: a seeded permutation per epoch, cut into batches, the
    # last short one dropped (unless it is the only one, as the stage does).
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
    batches = [collate(examples.__getitems__(keys)) for keys in batch_keys[:steps]]
    optimizer = torch.optim.AdamW(objective.parameters(), lr=lr)
    defaults = TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(defaults.warmup_ratio * steps), steps
    )
    objective.train()
    started = None
    for step, batch in enumerate(batches):
        if step == 1:
            started = time.perf_counter()  # as for the stage: from the first step's end
        loss, _ = objective(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), defaults.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    batch_size = train_defaults(args.preset).batch_size
    lr = train_defaults(args.preset).lr

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        generate_corpus(tmp / "synth", SynthConfig(videos=args.videos, seed=0, workers=2))
        run_extract(
            resolve_inputs([str(tmp / "synth" / "corpus.jsonl")]),
            tmp / "frames",
            ExtractConfig(size=96),
        )
        run_encode(tmp / "frames", tmp / "features", EncodeConfig())
        run_quantize(tmp / "features", tmp / "words", QuantizeConfig(k=4, depth=2))

        stage_rates, bare_rates = [], []

        def time_stage(repeat: int) -> None:
            marks: list[float] = []
            run_pretrain(
                tmp / "words",
                tmp / f"pretrain-{repeat}",
                PretrainConfig(
                    preset=args.preset, max_steps=args.steps, eval_every=10**9, save_every=10**9
                ),
                on_step=lambda report: marks.append(time.perf_counter()),
            )
            stage_rates.append((args.steps - 1) / (marks[-1] - marks[0]))

        def time_bare(repeat: int) -> None:
            vocab_dir = tmp / f"pretrain-{repeat}" / "vocabulary"  # the paired stage run's
            bare_s = bare_loop(tmp / "words", vocab_dir, args.preset, args.steps, batch_size, lr)
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


if __name__ == "__main__":
    main()
