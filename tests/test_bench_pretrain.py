"""benchmarks/bench_pretrain.py runs end to end on the tiny preset (its figures come from real
runs, so this only checks that both measurements run and print what they claim)."""

from __future__ import annotations

import argparse
import re

import pytest
from tests.benchmark_modules import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_pretrain")


def options(**overrides) -> argparse.Namespace:
    values = dict(
        videos=8,
        steps=6,
        preset="tiny",
        repeats=2,
        batch_size=4,
        throughput=False,
        mixed_precision=None,
        peak_tflops=None,
    )
    return argparse.Namespace(**{**values, **overrides})


@pytest.mark.slow
def test_compare_prints_both_rates_and_every_pairs_ratio(bench, words_dir, tmp_path, capsys):
    bench.compare(options(), words_dir, tmp_path)
    out = capsys.readouterr().out
    assert re.search(r"bare transformers \+ torch loop\s+[\d.]+ steps/s\s+1\.00", out)
    assert re.search(r"vidcap pretrain\s+[\d.]+ steps/s\s+[\d.]+", out)
    ratios = re.search(r"per-pair ratios: (.*) \(median", out).group(1).split(", ")
    assert len(ratios) == 2


@pytest.mark.slow
def test_throughput_counts_flops_and_gives_mfu_for_a_given_peak(bench, words_dir, tmp_path, capsys):
    bench.throughput(options(throughput=True, steps=10, peak_tflops=1e-3), words_dir, tmp_path)
    out = capsys.readouterr().out
    assert "steps 3-10 of 10 timed" in out
    tokens = float(re.search(r"tokens/s\s+([\d.]+)", out).group(1))
    tflops = float(re.search(r"model TFLOP/s\s+([\d.e+-]+)", out).group(1))
    mfu = float(re.search(r"MFU\s+([\d.]+)%", out).group(1))
    assert tokens > 0 and tflops > 0
    assert mfu == pytest.approx(tflops / 1e-3 * 100, rel=0.05)


def test_training_flops_match_a_linear_layers_count(bench):
    import torch

    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 3, bias=False)

        def forward(self, batch):
            return self.layer(batch["x"]).sum(), {}

    # Forward 2*n*8*3 multiply-adds, backward as much again for the weight's gradient (the input
    # needs none).
    assert bench.training_flops(Linear(), {"x": torch.ones(5, 8)}) == 2 * (2 * 5 * 8 * 3)


def test_peak_is_known_only_for_listed_gpus_in_mixed_precision(bench):
    import torch

    assert bench.peak_tflops(torch.device("cpu"), "bf16") is None
