"""The bundle: a model folder that works alone, and every file name in it.

Two stages write one:

- ``vidcap pretrain`` writes ``PRETRAIN/final/``: the Hugging Face checkpoint (loads in plain
  ``transformers``), its tokenizer with ``vidcap_vocabulary.json``, the codebook and ``vidcap.json``.
- ``vidcap finetune`` writes the same into its ``--out`` folder, plus
  ``feature_projection.safetensors`` when the model reads clip features.

``vidcap.json`` records what a raw video needs to become the model's input (extract settings,
encoder, codebook), what the model is (stage, task, architecture, preset) and, for a finetuned
model, how it generates. It is written last: a folder without it is not a bundle.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from vidcap.artifacts import atomic_write_json
from vidcap.artifacts.readers import CODEBOOK
from vidcap.errors import VidcapError

if TYPE_CHECKING:
    from vidcap.quantize.kmeans import HierarchicalKMeans
    from vidcap.text import JointVocabulary

Task = Literal["caption", "qa", "summary"]
TASKS: tuple[str, ...] = get_args(Task)
"""What a finetuned bundle does: one caption per segment, answers to questions, or a summary."""
TASK_COMMANDS = {"caption": "vidcap caption", "qa": "vidcap answer", "summary": "vidcap summarize"}
"""The command that uses a bundle of each task."""

BUNDLE_INFO = "vidcap.json"
FINAL = "final"  # the bundle inside a pretrain folder
VOCABULARY = "vocabulary"  # a training stage's joint vocabulary, kept while it trains
FEATURE_PROJECTION = "feature_projection.safetensors"
_TMP = ".tmp-bundle"
_NAMES = {"finetune": "caption model", "pretrain": "pretrain"}

__all__ = [
    "BUNDLE_INFO",
    "CODEBOOK",
    "FEATURE_PROJECTION",
    "FINAL",
    "TASKS",
    "TASK_COMMANDS",
    "VOCABULARY",
    "Bundle",
    "Task",
    "copy_codebook",
    "write_bundle",
]


@dataclass(frozen=True)
class Bundle:
    """A bundle folder and its ``vidcap.json``."""

    folder: Path
    info: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path, stage: str) -> Bundle:
        """Read the bundle at ``path`` that ``vidcap {stage}`` wrote: a finetuned model's folder,
        or a pretrain folder (or its ``final/``). Whether it is the right stage's is the caller's
        to check, with a remedy of its own.

        Raises:
            VidcapError: no ``vidcap.json`` there, or one that is not readable JSON.
        """
        folder = Path(path)
        if stage == "pretrain" and not (folder / BUNDLE_INFO).is_file():
            folder = folder / FINAL
        info_path = folder / BUNDLE_INFO
        if not info_path.is_file():
            where = (
                "its --out folder, or the final/ in it"
                if stage == "pretrain"
                else "its --out folder"
            )
            raise VidcapError(
                f"{path} is not a {_NAMES.get(stage, stage)}: it has no {BUNDLE_INFO} (give `vidcap {stage}` {where})."
            )
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise VidcapError(
                f"{info_path} cannot be read ({e}); copy the model folder again whole, or rerun the stage that wrote it."
            ) from None
        if not isinstance(info, dict):
            raise VidcapError(
                f"{info_path} is not a vidcap.json object; copy the model folder again whole, or rerun the stage that wrote it."
            )
        return cls(folder, info)

    @property
    def stage(self) -> str:
        """The stage that wrote it: ``pretrain`` or ``finetune``."""
        return str(self.info.get("stage", "unknown"))

    @property
    def task(self) -> str:
        """What a finetuned bundle was trained for: caption, qa or summary."""
        return str(self.info.get("task", "caption"))

    @property
    def arch(self) -> str:
        """``bart`` or ``videobert``."""
        return str(self.info["arch"])

    @property
    def codebook_path(self) -> Path:
        """The hierarchical k-means tree that turns clip features into this model's visual words."""
        return self.folder / self.info.get("codebook", CODEBOOK)

    def vocabulary(self) -> JointVocabulary:
        """The joint vocabulary (tokenizer and visual-word ids) saved with the model."""
        from vidcap.text import JointVocabulary

        return JointVocabulary.load(self.folder)

    def codebook(self) -> HierarchicalKMeans:
        """The codebook saved with the model."""
        from vidcap.quantize.kmeans import HierarchicalKMeans

        return HierarchicalKMeans.load(self.codebook_path)


def write_bundle(
    folder: str | Path, info: dict[str, Any], write_files: Callable[[Path], None]
) -> None:
    """Write a bundle into ``folder``: ``write_files(tmp)`` saves the model, tokenizer and codebook
    into a temporary folder beside; they are moved in, then ``vidcap.json`` is written last.

    ``folder`` stops being a bundle (its ``vidcap.json`` goes) before anything is replaced, so a
    run killed half-way never leaves a bundle whose files disagree.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BUNDLE_INFO).unlink(missing_ok=True)
    tmp = folder / _TMP
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_files(tmp)
    for path in sorted(tmp.iterdir()):
        os.replace(path, folder / path.name)
    tmp.rmdir()
    atomic_write_json(folder / BUNDLE_INFO, info)


def copy_codebook(words_dir: str | Path, folder: Path) -> None:
    """Copy a quantize folder's codebook into a bundle being written."""
    shutil.copy2(Path(words_dir) / CODEBOOK, folder / CODEBOOK)
