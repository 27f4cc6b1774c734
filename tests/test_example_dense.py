"""examples/dense.sh runs the whole dense route end to end, here at a tiny size (its sizes come from
the environment; the full size is timed in docs/dense.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "VIDEOS": "6",
    "MIN_S": "10",
    "MAX_S": "14",
    "SIZE": "48",
    "K": "4",
    "PRESET": "tiny",
    "PRETRAIN_STEPS": "3",
    "DENSE_STEPS": "10",
    "CAPTION_STEPS": "10",
}


@pytest.mark.slow
def test_the_dense_example_runs_at_a_tiny_size(tmp_path: Path) -> None:
    env = {**os.environ, **TINY, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    run = tmp_path / "run"
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "dense.sh"), str(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "results" in json.loads((run / "events.json").read_text())
    assert "Story" in done.stdout or "Key moments" in done.stdout
    card = (run / "dense" / "README.md").read_text()
    assert "captioner: oracle (true events)" in card and "| dense model |" in card
