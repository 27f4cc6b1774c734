"""Memory stays flat with video length: `vidcap encode` (from videos) and `vidcap caption`.

A 6-second and a 36-second 720p video go through each command in a subprocess; the peak RSS of the
process tree (the vidcap process plus its decode child, summed at each 20 ms poll) may grow by less
than 20 % (docs/scale.md has the 18 s / 3 min 1080p figures). Each video runs twice and the smaller
peak counts: growth with length shows in every run, while a one-off spike does not (one CI run
measured 700 / 1031 MB, where every local run gave 541-557 MB for both; the cause was not found).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests import test_finetune_caption as captioning
from tests.test_finetune_caption import Run, bart_bundle
from tests.videos import FFMPEG, ffmpeg, ffmpeg_encoders

psutil = pytest.importorskip("psutil")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        FFMPEG is None or "libx264" not in ffmpeg_encoders(), reason="ffmpeg with libx264"
    ),
]

bart = captioning.bart  # the tiny BART bundle fixture (and what it needs)
videos = captioning.videos


def _video(path: Path, seconds: int) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
           "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "300k", "-pix_fmt", "yuv420p",
           str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def short_and_long(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("lengths")
    return _video(folder / "short.mp4", 6), _video(folder / "long.mp4", 36)


def peak_tree_rss(args: list[str]) -> int:
    """Run ``python -m vidcap *args``; the largest sum of RSS over it and its descendants."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidcap", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            total = 0
            for p in tree:
                with contextlib.suppress(psutil.Error):  # a child that just ended
                    total += p.memory_info().rss
        except psutil.Error:
            break
        peak = max(peak, total)
        time.sleep(0.02)
    stderr = proc.communicate(timeout=600)[1].decode(errors="replace")
    assert proc.returncode == 0, stderr[-2000:]
    return peak


def smaller_peak(args: list[str], out: Path) -> int:
    """The smaller peak of two runs of ``vidcap *args --out``, each into its own ``out``."""
    return min(
        peak_tree_rss([*args, "--out", str(out.with_name(f"{run}-{out.name}"))]) for run in range(2)
    )


def test_encode_from_videos_memory_is_flat(
    short_and_long: tuple[Path, Path], tmp_path: Path
) -> None:
    short, long = (
        smaller_peak(["encode", str(video)], tmp_path / video.stem) for video in short_and_long
    )
    assert long < 1.2 * short, (short / 2**20, long / 2**20)


def test_caption_memory_is_flat(
    short_and_long: tuple[Path, Path], bart: Run, tmp_path: Path
) -> None:
    options = ["--model", str(bart_bundle(bart)), "--dense", "--format", "jsonl"]
    short, long = (
        smaller_peak(["caption", str(video), *options], tmp_path / f"{video.stem}.jsonl")
        for video in short_and_long
    )
    assert long < 1.2 * short, (short / 2**20, long / 2**20)
