"""benchmarks/bench_gpu.py: its figures come from a GPU machine (docs/encode.md); here the same
code runs on the CPU (``--device cpu``), so that the script a GPU user runs is known to work."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.benchmark_modules import BENCHMARKS, load_benchmark

BENCH = BENCHMARKS / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_gpu")


def test_steady_rate_counts_from_a_tenth_of_the_clips_to_the_last(bench):
    rate = bench.SteadyRate()
    # (time, clips): the first video (a tenth) is done at 1 s, the last at 4 s.
    rate.done = [(1.0, 10), (2.0, 30), (3.0, 30), (4.0, 30)]
    assert rate.rate() == pytest.approx(90 / 3)
    rate.done = [(1.0, 50), (1.0, 50)]  # one burst: no span to measure
    assert math.isnan(rate.rate())
    assert math.isnan(bench.SteadyRate().rate())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_that_is_not_there_says_so():
    run = subprocess.run(
        [sys.executable, str(BENCH), "--skip-decode"], capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "no CUDA GPU here: pass --device cpu" in run.stderr


@pytest.mark.slow
def test_runs_end_to_end_on_the_cpu(synth_corpus: Path):
    video = sorted((synth_corpus.parent).rglob("*.mp4"))[0]
    run = subprocess.run(
        [sys.executable, str(BENCH), "--device", "cpu", "--files", str(video), "--repeats", "1",
         "--videos", "2", "--hidden", "32", "--layers", "1", "--workers", "1",
         "--loader-workers", "0", "--batch-size", "4"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    frames = re.search(
        rf"{re.escape(video.name)}\s+pyav cpu\s+(\d+)\s+[\d.]+\s+[\d.]+\s+1\.00", out
    )
    assert frames and int(frames.group(1)) > 0, out
    # torchcodec is measured or listed with the reason it could not run; no GPU rows on a CPU.
    assert re.search(rf"{re.escape(video.name)}\s+torchcodec cpu\s+(\d+|failed)", out), out
    assert "cuda" not in out.split("encode on")[0]
    row = re.search(r"^float32\s+([\d.]+)\s+([\d.]+) \(\s*([\d.]+|nan)\)\s+([\d.]+)", out, re.M)
    assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0, out
    assert "float16" not in out  # reduced precision is a GPU's
