"""The pretrain stage: VideoBERT or BART on text + visual words, saving a Hugging Face checkpoint.

``PRETRAIN_DIR`` holds the joint vocabulary (``vocabulary/``), Accelerate checkpoints
(``checkpoints/step-N``), ``metrics.jsonl``, and at the end ``final/``: a plain transformers
checkpoint (safetensors) with its tokenizer, the codebook and ``vidcap.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch

from vidcap.artifacts import StageDir, as_recorded, recorded_corpus, remove_outputs
from vidcap.artifacts.readers import pipeline_settings
from vidcap.bundle import CODEBOOK, FINAL, VOCABULARY, copy_codebook, write_bundle
from vidcap.card import training_facts
from vidcap.distributed import current_processes
from vidcap.errors import VidcapError
from vidcap.models.presets import ARCHS, Arch, Preset, model_size
from vidcap.quantize.kmeans import HierarchicalKMeans
from vidcap.stages.base import (
    StageResult,
    check_resume,
    record_training,
    result_from_index,
    training_details,
    training_up_to_date,
)
from vidcap.text import VOCABULARY_FILE, JointVocabulary, extend_pretrained, train_vocabulary
from vidcap.training.examples import (
    BartExamples,
    ExampleConfig,
    VideoBertExamples,
    VideoSample,
    collate_bart,
    collate_videobert,
    load_video_samples,
    split_samples,
)
from vidcap.training.loop import StepReport, resolve_resume, train
from vidcap.training.objectives import Seq2SeqObjective, VideoBertObjective
from vidcap.training.settings import Phase, TrainingOverrides, training_fingerprint

STAGE = "pretrain"


@dataclass(frozen=True)
class PretrainConfig(TrainingOverrides):
    """Settings of ``vidcap pretrain`` (the training ones: :class:`TrainingOverrides`)."""

    PHASE: ClassVar[Phase] = "pretrain"

    arch: Arch = "videobert"
    preset: Preset = "base"
    init: str | None = None
    tokenizer: str | None = None
    text_vocab_size: int = 4000
    freeze_visual: bool = False

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise VidcapError(f"--arch must be videobert or bart, got {self.arch!r}.")
        model_size(self.preset, self.arch)  # validates the preset


def _texts(samples: list[VideoSample]) -> list[str]:
    return [text for sample in samples for unit in sample.units for text in unit.texts]


def _vocabulary(
    out_dir: Path,
    samples: list[VideoSample],
    n_visual: int,
    config: PretrainConfig,
    is_main: bool,
    barrier: Callable[[], None],
) -> JointVocabulary:
    """Build (main process) or load (the others, and a resumed run) the joint vocabulary."""
    path = out_dir / VOCABULARY
    if is_main and not (path / VOCABULARY_FILE).is_file():
        base = config.tokenizer or config.init
        if base is not None:
            vocab = extend_pretrained(base, n_visual)
        else:
            texts = _texts(split_samples(samples, "train"))
            if not texts:
                raise VidcapError(
                    "the corpus has no text (captions or transcripts) in the train split to build a vocabulary from; pass --tokenizer to start from a pretrained one."
                )
            vocab = train_vocabulary(texts, n_visual, vocab_size=config.text_vocab_size)
        vocab.save(path)
    barrier()
    return JointVocabulary.load(path)


def run_pretrain(
    words_dir: str | Path,
    out_dir: str | Path,
    config: PretrainConfig,
    resume: str | None = None,
    force: bool = False,
    on_step: Callable[[StepReport], None] | None = None,
) -> StageResult:
    """Pretrain on the words folder's videos and their corpus text; write ``out_dir/final``."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    processes = current_processes()
    samples, words_manifest = load_video_samples(words_dir)
    stage = StageDir(out_dir, STAGE, processes.rank, processes.world_size)
    train_config = config.train_config(config.preset)
    stage_fp = training_fingerprint(STAGE, config, train_config, words_manifest["fingerprint"])
    if (
        finished := training_up_to_date(stage, stage_fp, resume, force, started, processes)
    ) is not None:
        return finished
    with stage.locked():
        check_resume(stage, stage_fp, resume, force, processes)
        fresh = resolve_resume(out_dir, resume, stage_fp) is None
        if (force or fresh) and processes.is_main:
            # A fresh start owes nothing to an earlier run in this folder (other words, another
            # corpus), as in finetune: its vocabulary was built from that run's text and codebook
            # (loaded again, it put a 16-word vocabulary beside a 9-word codebook).
            remove_outputs(out_dir, (FINAL, VOCABULARY, "checkpoints", "metrics.jsonl"))
        processes.barrier()
        if processes.is_main:
            stage.prepare()
        processes.barrier()

        tree = HierarchicalKMeans.load(Path(words_dir) / CODEBOOK)
        vocab = _vocabulary(
            out_dir, samples, tree.vocab_size, config, processes.is_main, processes.barrier
        )
        size = model_size(config.preset, config.arch)
        torch.manual_seed(config.seed)  # identical initial weights on every process
        examples = ExampleConfig(max_length=size.max_length, seed=config.seed)
        train_samples, val_samples = split_samples(samples, "train"), split_samples(samples, "val")
        if config.arch == "videobert":
            from vidcap.models.videobert import build_videobert

            model = build_videobert(
                vocab, size, config.init, tree.leaf_centroids, config.freeze_visual
            )
            objective: torch.nn.Module = VideoBertObjective(model, vocab.visual_range)
            train_set, val_set = (
                VideoBertExamples(train_samples, vocab, examples),
                VideoBertExamples(val_samples, vocab, replace(examples, seed=config.seed + 1)),
            )
            collate = partial(collate_videobert, pad_id=vocab.pad_id)
        else:
            from vidcap.models.bart import build_bart

            model = build_bart(vocab, size, config.init, tree.leaf_centroids, config.freeze_visual)
            objective = Seq2SeqObjective(model, vocab.visual_range)
            train_set, val_set = (
                BartExamples(train_samples, vocab, examples),
                BartExamples(val_samples, vocab, replace(examples, seed=config.seed + 1)),
            )
            collate = partial(
                collate_bart,
                pad_id=vocab.pad_id,
                decoder_start_id=model.config.decoder_start_token_id,
            )

        outcome = train(
            objective,
            train_set,
            val_set,
            collate,
            out_dir,
            train_config,
            resume=resume,
            on_step=on_step,
            run=stage_fp,
        )
        if processes.is_main:
            remove_outputs(out_dir, (FINAL,))  # a bundle's files come from one run only
            model = outcome["objective"].model

            def write_files(folder: Path) -> None:
                model.save_pretrained(folder, safe_serialization=True)
                vocab.save(folder)
                copy_codebook(words_dir, folder)

            write_bundle(
                out_dir / FINAL,
                {
                    "stage": STAGE,
                    "arch": config.arch,
                    "preset": config.preset,
                    "n_visual": vocab.n_visual,
                    "visual_offset": vocab.visual_offset,
                    "codebook": CODEBOOK,
                    "quantize": words_manifest.get("tree"),
                    # extract settings and encoder, so `vidcap classify` can read raw videos
                    **pipeline_settings(words_dir, words_manifest),
                    # what the model card (README.md) says it was trained on, and how far
                    "training": training_facts(
                        words_dir, outcome["steps"], out_dir / "metrics.jsonl"
                    ),
                },
                write_files,
            )
            record_training(stage, FINAL, FINAL, outcome, stage_fp)
            stage.finalize(
                config={**asdict(config), "train": asdict(train_config)},
                stage_fingerprint=stage_fp,
                upstream={
                    "path": str(Path(words_dir).resolve()),
                    "fingerprint": words_manifest["fingerprint"],
                },
                wall_time_s=time.perf_counter() - started,
                extra={
                    "corpus": as_recorded(recorded_corpus(words_dir, words_manifest)),
                    "encoder": words_manifest.get("encoder"),
                    "processes": outcome["processes"],
                    "final": FINAL,
                },
            )
    processes.barrier()
    return result_from_index(stage, started, training_details)
