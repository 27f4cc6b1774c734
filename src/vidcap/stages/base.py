"""What every stage run returns, for the CLI to show and for scripts to inspect."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcap.artifacts import ItemRecord, StageDir


@dataclass
class StageResult:
    """The outcome of one stage run.

    ``up_to_date`` is True when a finished run with the same inputs and config was found and nothing
    was done. ``failures`` lists ``(item id, reason)`` for every failed item.
    """

    stage: str
    out_dir: Path
    counts: dict[str, int]
    failures: list[tuple[str, str]] = field(default_factory=list)
    wall_time_s: float = 0.0
    up_to_date: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


def result_from_index(
    stage: StageDir,
    started: float,
    details: Callable[[list[ItemRecord]], dict[str, Any]],
    skipped: int = 0,
    up_to_date: bool = False,
) -> StageResult:
    """The result of a stage run, read back from its (merged) index.

    ``details`` turns the ``ok`` items into the stage's own figures (frames, clips, ...). When the
    stage was already up to date, every ``ok`` item counts as skipped.
    """
    items = stage.read_index()
    failures = sorted((r.id, r.error or "failed") for r in items.values() if r.status == "failed")
    ok = [r for r in items.values() if r.status == "ok"]
    return StageResult(
        stage=stage.stage,
        out_dir=stage.path,
        counts={
            "ok": len(ok),
            "failed": len(failures),
            "skipped": len(ok) if up_to_date else skipped,
        },
        failures=failures,
        wall_time_s=time.perf_counter() - started,
        up_to_date=up_to_date,
        details=details(ok),
    )


def training_details(ok: list[ItemRecord]) -> dict[str, Any]:
    """A training stage's figures: its steps and last val statistics."""
    if not ok:
        return {}
    info = ok[0].info
    return {
        "steps": info.get("steps"),
        **{f"val {k}": v for k, v in (info.get("val") or {}).items()},
    }
