"""The bundle: a model folder that works alone, and every file name in it.

Two stages write one:

- ``vidcap pretrain`` writes ``PRETRAIN/final/``: the Hugging Face checkpoint (loads in plain
  ``transformers``), its tokenizer with ``vidcap_vocabulary.json``, the codebook and ``vidcap.json``.
- ``vidcap finetune`` writes the same into its ``--out`` folder, plus
  ``feature_projection.safetensors`` when the model reads clip features.

``vidcap.json`` records what a raw video needs to become the model's input (extract settings,
encoder, codebook), what the model is (stage, task, architecture, preset) and, for a finetuned
model, how it generates. It is written last: a folder without it is not a bundle.

A bundle is copied around by users, so every file of it is checked where it is read: a missing,
cut or overwritten file becomes one sentence naming it and what to do (:func:`model_remedy`), and
:func:`reading_model` does that for the Hugging Face checkpoint that transformers loads.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from vidcap.artifacts import atomic_write_json
from vidcap.artifacts.damage import check_safetensors, damaged, read_json, reading
from vidcap.artifacts.readers import CODEBOOK
from vidcap.errors import VidcapError

if TYPE_CHECKING:
    from vidcap.quantize.kmeans import HierarchicalKMeans
    from vidcap.text import JointVocabulary

Task = Literal["caption", "qa", "summary", "dense"]
TASKS: tuple[str, ...] = get_args(Task)
"""What a finetuned bundle does: one caption per segment, answers to questions, a summary, or
the timed events of an untrimmed video (dense captioning, Vid2Seq's time tokens)."""
TASK_COMMANDS = {
    "caption": "vidcap caption",
    "qa": "vidcap answer",
    "summary": "vidcap summarize",
    "dense": "vidcap caption",
}
"""The command that uses a bundle of each task."""

BUNDLE_INFO = "vidcap.json"
FINAL = "final"  # the bundle inside a pretrain folder
VOCABULARY = "vocabulary"  # a training stage's joint vocabulary, kept while it trains
FEATURE_PROJECTION = "feature_projection.safetensors"
CONFIG = "config.json"  # the Hugging Face checkpoint's configuration
WEIGHTS = "model.safetensors"  # its weights (or the shards listed in WEIGHTS_INDEX)
WEIGHTS_INDEX = "model.safetensors.index.json"
CARD = "README.md"  # the model card (vidcap.card); a Hugging Face hub shows it as the model's page
EVALUATION = "evaluation.json"  # what `vidcap evaluate` measured, shown on the card
OOD_PROFILE = "ood.json"  # how far from its training clips a video may be (inference.ood)
_TMP = ".tmp-bundle"
_NAMES = {"finetune": "caption model", "pretrain": "pretrain"}

__all__ = [
    "BUNDLE_INFO",
    "CARD",
    "CODEBOOK",
    "EVALUATION",
    "FEATURE_PROJECTION",
    "FINAL",
    "OOD_PROFILE",
    "TASKS",
    "TASK_COMMANDS",
    "VOCABULARY",
    "Bundle",
    "Task",
    "check_model_files",
    "copy_codebook",
    "model_remedy",
    "reading_model",
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
            VidcapError: no ``vidcap.json`` there, or one that is not readable JSON, or not one that
                says which stage and architecture wrote it.
        """
        folder = Path(path)
        if not folder.exists():
            raise VidcapError(f"{path}: no such folder.")
        if stage == "pretrain" and not (folder / BUNDLE_INFO).is_file():
            folder = folder / FINAL
        info_path = folder / BUNDLE_INFO
        remedy = model_remedy(folder, stage)
        if not info_path.is_file():
            if (folder / CONFIG).is_file():  # a model without it: lost, or its writing cut short
                raise damaged(info_path, remedy, "is missing")
            where = (
                "its --out folder, or the final/ in it"
                if stage == "pretrain"
                else "its --out folder"
            )
            raise VidcapError(
                f"{path} is not a {_NAMES.get(stage, stage)}: it has no {BUNDLE_INFO} (give `vidcap {stage}` {where})."
            )
        info = read_json(info_path, remedy)
        missing = [key for key in ("stage", "arch") if key not in info]
        if missing:
            raise damaged(info_path, remedy, f"is damaged (it has no {missing[0]!r})")
        return cls(folder, info)

    @property
    def remedy(self) -> str:
        """What to do about a missing or damaged file of this bundle (see :func:`model_remedy`)."""
        return model_remedy(self.folder, self.stage)

    @property
    def stage(self) -> str:
        """The stage that wrote it: ``pretrain`` or ``finetune``."""
        return str(self.info.get("stage", "unknown"))

    @property
    def task(self) -> str:
        """What a finetuned bundle was trained for: caption, qa, summary or dense."""
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

        return JointVocabulary.load(self.folder, remedy=self.remedy)

    def codebook(self) -> HierarchicalKMeans:
        """The codebook saved with the model."""
        from vidcap.quantize.kmeans import HierarchicalKMeans

        return HierarchicalKMeans.load(self.codebook_path, remedy=self.remedy)


def model_remedy(folder: str | Path, stage: str | None = None) -> str:
    """What to do about a missing or damaged file of the model folder ``folder`` (no full stop):
    copy the folder again, or have ``vidcap {stage}`` (read from its ``vidcap.json`` when not
    given) write it again. A training run's own ``vocabulary/`` is built again by the run."""
    folder = Path(folder)
    if folder.name == VOCABULARY:
        return "rerun the same command with --force to build it again"
    if stage is None:
        try:
            stage = json.loads((folder / BUNDLE_INFO).read_text(encoding="utf-8")).get("stage")
        except (OSError, ValueError, AttributeError):  # not there, not JSON, not an object
            stage = None
    if stage in _NAMES:
        return f"copy the model folder again whole, or rerun `vidcap {stage} --force` to write it again"
    return "copy the model folder again whole, or rerun the `vidcap pretrain` or `vidcap finetune` that wrote it, with --force"


def check_model_files(folder: str | Path, remedy: str) -> None:
    """Check the Hugging Face checkpoint in ``folder`` before transformers loads it, so that a
    missing or cut file is named: ``config.json`` must be a JSON object and the weights
    (``model.safetensors``, or each shard its index lists) complete safetensors files (only their
    headers are read). transformers would report a missing ``config.json`` as weights of the wrong
    sizes, and the others without naming the file.

    Raises:
        VidcapError: one of them is missing or damaged (with ``remedy``).
    """
    folder = Path(folder)
    read_json(folder / CONFIG, remedy)
    shards = [WEIGHTS]
    if (folder / WEIGHTS_INDEX).is_file():
        weight_map = read_json(folder / WEIGHTS_INDEX, remedy).get("weight_map")
        if not isinstance(weight_map, dict):
            raise damaged(folder / WEIGHTS_INDEX, remedy, "is damaged (it has no 'weight_map')")
        shards = sorted({str(name) for name in weight_map.values()})
    for name in shards:
        check_safetensors(folder / name, remedy)


@contextmanager
def reading_model(folder: str | Path, remedy: str | None = None) -> Iterator[None]:
    """Load the Hugging Face checkpoint in ``folder`` (``from_pretrained``) inside: its files are
    checked first (:func:`check_model_files`), and what loading them raises all the same (the
    file system's errors, safetensors' own) becomes one sentence naming the folder, with
    ``remedy`` (by default :func:`model_remedy`'s)."""
    remedy = remedy or model_remedy(folder)
    check_model_files(folder, remedy)
    with reading(folder, remedy):
        yield


def write_bundle(
    folder: str | Path, info: dict[str, Any], write_files: Callable[[Path], None]
) -> None:
    """Write a bundle into ``folder``: ``write_files(tmp)`` saves the model, tokenizer and codebook
    into a temporary folder beside, the model card (``README.md``, :mod:`vidcap.card`) is rendered
    there from ``info``; they are moved in, then ``vidcap.json`` is written last.

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
    from vidcap.card import write_card

    write_card(tmp, info)  # README.md: the model card, rendered from what the bundle records
    (folder / EVALUATION).unlink(missing_ok=True)  # it scored the weights being replaced
    for path in sorted(tmp.iterdir()):
        os.replace(path, folder / path.name)
    tmp.rmdir()
    atomic_write_json(folder / BUNDLE_INFO, info)


def copy_codebook(words_dir: str | Path, folder: Path) -> None:
    """Copy a quantize folder's codebook into a bundle being written."""
    shutil.copy2(Path(words_dir) / CODEBOOK, folder / CODEBOOK)
