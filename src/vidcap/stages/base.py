"""What every stage run returns, for the CLI to show and for scripts to inspect."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
