"""A model card: what a finetuned bundle is and how it was made, in one JSON-ready dict.

Shown in the report pages (``vidcap caption --html``) and by ``vidcap serve`` at ``GET /v1/model``,
so a person looking at captions, and a program calling the service, see the same description.
Everything comes from the bundle folder itself (``vidcap.json``; ``manifest.json`` and
``metrics.jsonl`` when ``vidcap finetune`` left them there), so a copied bundle describes itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidcap.bundle import Bundle


def _last_eval(folder: Path) -> dict[str, Any] | None:
    """The last validation line of ``metrics.jsonl``, or None when there is none (a copied bundle
    need not have it; a damaged line is skipped: the card is a description, not a check)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return None
    last = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and row.get("split") == "val":
            last = row
    return last


def _training(folder: Path) -> dict[str, Any]:
    """Steps, learning rate, batch size and wall time from ``manifest.json``, plus the last
    validation figures; {} when the bundle was copied without them."""
    figures: dict[str, Any] = {}
    manifest = folder / "manifest.json"
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}
        train = (data.get("config") or {}).get("train") or {}
        for key in ("max_steps", "lr", "batch_size"):
            if key in train:
                figures[key] = train[key]
        if "wall_time_s" in data:
            figures["wall_time_s"] = data["wall_time_s"]
    last = _last_eval(folder)
    if last is not None:
        figures["validation"] = {k: v for k, v in last.items() if k != "split"}
    return figures


def model_card(bundle: Bundle) -> dict[str, Any]:
    """The bundle's name, task, architecture, encoder, vocabulary size, extract and generation
    settings, and training figures (see the module docstring)."""
    info = bundle.info
    extract = info.get("extract", {})
    clip_s = float(extract["clip_frames"]) / float(extract["fps"]) if extract else None
    return {
        "name": Path(bundle.folder).resolve().name,
        "path": str(Path(bundle.folder).resolve()),
        "task": info.get("task", "caption"),
        "arch": info.get("arch"),
        "preset": info.get("preset"),
        "parameters": (info.get("model") or {}).get("parameters"),
        "encoder": (info.get("encoder") or {}).get("spec"),
        "vocabulary_size": len(bundle.vocabulary()),
        "visual_words": info.get("n_visual"),
        "extract": {
            "fps": extract.get("fps"),
            "clip_frames": extract.get("clip_frames"),
            "clip_seconds": clip_s,
            "frame_size": extract.get("size"),
        },
        "inputs": info.get("inputs", {}),
        "generation": info.get("generation", {}),
        "training": _training(Path(bundle.folder)),
    }
