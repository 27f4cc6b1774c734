"""Small helpers shared by the stage tests."""

from __future__ import annotations

import json
import socket
from pathlib import Path


def index_of(stage_dir: Path) -> dict[str, dict]:
    """A stage folder's index.jsonl as ``{id: line}``."""
    lines = (stage_dir / "index.jsonl").read_text().splitlines()
    return {item["id"]: item for item in map(json.loads, lines)}


def free_port() -> int:
    """A free TCP port on localhost for a torchrun rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
