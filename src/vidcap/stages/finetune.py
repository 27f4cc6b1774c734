"""The finetune stage: train a captioner on the corpus segments and write a self-contained bundle.

``MODEL_DIR`` is the bundle: the Hugging Face checkpoint and its tokenizer, the codebook,
``feature_projection.safetensors`` (``--with-features``) and ``vidcap.json`` with everything needed
to caption a raw video (encoder spec, fps, frame size, clip length, what the model reads). It also
holds ``checkpoints/``, ``metrics.jsonl`` and the stage's manifest, which captioning ignores.
``vidcap.json`` is written last: a folder without it is not a bundle.

``--task dense`` trains Vid2Seq's recipe on the same model: the vocabulary gains ``--time-bins``
time tokens (the model's embeddings grow to match), each video is one input (its clips, at most
``--max-clips``) and its events in order are the target; ``vidcap.json`` records both numbers in
``inputs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vidcap.artifacts import (
    MANIFEST,
    StageDir,
    as_recorded,
    recorded_corpus,
    remove_outputs,
    upstream_folder,
)
from vidcap.artifacts.readers import CODEBOOK, ClipTrack, pipeline_settings, read_tracks
from vidcap.bundle import (
    BUNDLE_INFO,
    FEATURE_PROJECTION,
    OOD_PROFILE,
    TASKS,
    VOCABULARY,
    Bundle,
    Task,
    copy_codebook,
    write_bundle,
)
from vidcap.card import training_facts
from vidcap.distributed import current_processes
from vidcap.errors import VidcapError
from vidcap.inference.localised import LOCALISER, localised_events
from vidcap.inference.ood import fit_profile
from vidcap.inference.refine import DEFAULT_REFINE_SECONDS
from vidcap.metrics.captions import caption_scores
from vidcap.metrics.qa import exact_match
from vidcap.models.decoding import DEFAULT_EVENT_NO_REPEAT_NGRAM
from vidcap.models.inputs import DENSE_MAX_CLIPS, InputConfig
from vidcap.models.localiser import (
    EventLocaliser,
    LocaliserConfig,
    LocaliserTraining,
    clip_labels,
    train_localiser,
)
from vidcap.models.presets import ARCHS, PRESETS, Arch, Preset, model_size
from vidcap.models.seq2seq import (
    CaptionModel,
    build_caption_model,
    describe,
    generate_captions,
)
from vidcap.output.formats import TimedCaption
from vidcap.quantize.kmeans import HierarchicalKMeans
from vidcap.stages.base import (
    StageResult,
    check_resume,
    record_training,
    result_from_index,
    training_details,
    training_up_to_date,
)
from vidcap.text import VOCABULARY_FILE, JointVocabulary, train_vocabulary
from vidcap.text.timing import DEFAULT_TIME_BINS
from vidcap.training.loop import StepReport, resolve_resume, train
from vidcap.training.settings import Phase, TrainingOverrides, training_fingerprint
from vidcap.training.tasks import (
    ITEM_NAMES,
    CaptionExamples,
    TaskItem,
    captioned_segments,
    collate_captions,
    corpus_records,
    task_items,
)

STAGE = "finetune"
DENSE_DECODING = {
    "events": "localiser",
    "event_no_repeat_ngram": DEFAULT_EVENT_NO_REPEAT_NGRAM,
    "refine_seconds": DEFAULT_REFINE_SECONDS,
}
"""How a dense bundle decodes, recorded under ``generation`` in vidcap.json (edit it there): its
events come from its localiser ("localiser") or from its own time tokens ("tokens", Vid2Seq's
way); when from time tokens, no n-gram of this size repeats within one event's caption (0: no
guard), and boundaries move onto feature changes up to this many seconds away (0: not moved)."""
TEXT_VOCAB_SIZE = 4000  # word pieces of a vocabulary trained here (as pretrain's default)


@dataclass(frozen=True)
class FinetuneConfig(TrainingOverrides):
    """Settings of ``vidcap finetune`` (the training ones: :class:`TrainingOverrides`); ``None``
    means the pretrain's (or the preset's) choice."""

    PHASE: ClassVar[Phase] = "finetune"

    task: Task = "caption"
    arch: Arch | None = None
    preset: Preset | None = None
    from_scratch: bool = False
    with_features: bool = False
    with_transcript: bool = False
    beams: int = 4
    time_bins: int = DEFAULT_TIME_BINS  # dense: relative time bins (Vid2Seq's 100)
    max_clips: int = DENSE_MAX_CLIPS  # dense: clips of a video read at most (subsampled evenly)
    localiser_steps: int = LocaliserTraining.steps  # dense: training steps of the event localiser

    def weight_settings(self) -> dict[str, Any]:
        """As :class:`TrainingOverrides`'; the dense settings count only for a dense model (so
        other tasks' fingerprints are what they were before dense models existed)."""
        settings = super().weight_settings()
        if self.task != "dense":
            settings.pop("time_bins")
            settings.pop("max_clips")
            settings.pop("localiser_steps")
        return settings

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise VidcapError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}.")
        if self.arch is not None and self.arch not in ARCHS:
            raise VidcapError(f"--arch must be bart or videobert, got {self.arch!r}.")
        if self.preset is not None and self.preset not in PRESETS:
            raise VidcapError(f"unknown preset {self.preset!r}; use one of {', '.join(PRESETS)}.")
        if self.beams < 1:
            raise VidcapError(f"--beams must be >= 1, got {self.beams}.")
        if self.time_bins < 2:
            raise VidcapError(f"--time-bins must be >= 2, got {self.time_bins}.")
        if self.max_clips < 1:
            raise VidcapError(f"--max-clips must be >= 1, got {self.max_clips}.")
        if self.localiser_steps < 1:
            raise VidcapError(f"--localiser-steps must be >= 1, got {self.localiser_steps}.")


@dataclass(frozen=True)
class _Source:
    """Where finetuning starts: a pretrain's final/, a finetuned bundle, or nothing; and the words
    folder under it."""

    words_dir: Path
    pretrained: Path | None  # the checkpoint to start from (None: fresh weights)
    vocabulary: Path | None  # the pretrain's (or bundle's) vocabulary (None: train one)
    arch: str
    preset: str
    fingerprint: str
    bundle: bool = False  # pretrained is a finetuned bundle (its feature projection included)


def _read_manifest(folder: Path) -> dict[str, Any]:
    # Whose folder it is, a damaged manifest cannot tell: a pretrain's, a bundle's or a words one.
    remedy = (
        f"rerun the `vidcap pretrain` (or finetune, or quantize) that wrote {folder}, with --force"
    )
    manifest = StageDir(folder, STAGE).read_manifest(remedy)
    if manifest is None:
        raise VidcapError(
            f"{folder} has no {MANIFEST}: give a folder written by `vidcap pretrain` or `vidcap finetune` (or, with --from-scratch, by `vidcap quantize`)."
        )
    return manifest


def resolve_source(source: str | Path, config: FinetuneConfig) -> _Source:
    """Read a pretrain folder, a finetuned bundle (training goes on from it, e.g. on another
    task), or, with ``--from-scratch``, a words folder."""
    folder = Path(source)
    manifest = _read_manifest(folder)
    stage = manifest.get("stage")
    if stage == STAGE:
        return _bundle_source(folder, manifest, config)
    if stage == "pretrain":
        pretrained = Bundle.load(folder, "pretrain")
        info = pretrained.info
        arch = config.arch or info["arch"]
        if arch != info["arch"] and not config.from_scratch:
            raise VidcapError(
                f"{folder} holds a {info['arch']} pretrain; finetune it as {info['arch']}, or add --from-scratch to train a {arch} without it."
            )
        return _Source(
            upstream_folder(folder, manifest),
            None if config.from_scratch else pretrained.folder,
            pretrained.folder,
            arch,
            config.preset or info.get("preset", "base"),
            manifest["fingerprint"],
        )
    if stage == "quantize":
        if not config.from_scratch:
            raise VidcapError(
                f"{folder} is a `vidcap quantize` folder: pretrain on it first, or add --from-scratch."
            )
        return _Source(
            folder,
            None,
            None,
            config.arch or "bart",
            config.preset or "base",
            manifest["fingerprint"],
        )
    raise VidcapError(
        f"{folder} was written by `vidcap {stage}`; finetune needs a pretrain or finetune (or, with --from-scratch, a quantize) folder."
    )


def _bundle_source(folder: Path, manifest: dict[str, Any], config: FinetuneConfig) -> _Source:
    """A finetuned bundle to train on: same architecture, vocabulary, words and feature input."""
    info = Bundle.load(folder, STAGE).info
    if config.from_scratch:
        raise VidcapError(
            f"{folder} is a finetuned model; --from-scratch needs a pretrain or quantize folder."
        )
    if config.arch is not None and config.arch != info["arch"]:
        raise VidcapError(f"{folder} is a {info['arch']} model; it cannot go on as {config.arch}.")
    reads_features = bool(info["inputs"]["with_features"])
    if config.with_features != reads_features:
        wanted = "with" if reads_features else "without"
        raise VidcapError(
            f"{folder} was trained {wanted} clip features; finetune it {wanted} --with-features."
        )
    return _Source(
        Path(manifest["words"]),
        folder,
        folder,
        info["arch"],
        config.preset or info.get("preset", "base"),
        manifest["fingerprint"],
        bundle=True,
    )


def _vocabulary(source: _Source, segments: list[TaskItem], n_visual: int) -> JointVocabulary:
    """The pretrain's vocabulary (also for --from-scratch, so the two routes tokenise alike), or
    one trained on the train split's captions and narration."""
    if source.vocabulary is not None:
        return JointVocabulary.load(source.vocabulary)
    texts = [c for s in segments if s.split == "train" for c in s.captions]
    texts += [s.narration for s in segments if s.split == "train" and s.narration]
    if not texts:
        raise VidcapError("the train split has no captions to finetune on.")
    return train_vocabulary(texts, n_visual, vocab_size=TEXT_VOCAB_SIZE)


def run_finetune(
    source: str | Path,
    out_dir: str | Path,
    config: FinetuneConfig,
    resume: str | None = None,
    force: bool = False,
    on_step: Callable[[StepReport], None] | None = None,
) -> StageResult:
    """Finetune a model for ``config.task`` from ``source``: a pretrain folder, a finetuned bundle
    to train further, or (``--from-scratch``) a words folder."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    processes = current_processes()
    src = resolve_source(source, config)
    if src.bundle and src.pretrained.resolve() == out_dir.resolve():
        raise VidcapError(f"--out must be a new folder: {out_dir} is the model being finetuned.")
    dense = config.task == "dense"
    # A dense model's localiser reads the clip features whether or not its seq2seq does.
    tracks, _, words_manifest = read_tracks(src.words_dir, config.with_features or dense)
    records = corpus_records(words_manifest, src.words_dir)
    segments = task_items(config.task, records, tracks)
    train_segments = [s for s in segments if s.split == "train"]
    val_segments = [s for s in segments if s.split == "val"]
    if not train_segments:
        raise VidcapError(
            f"no {ITEM_NAMES[config.task]} in the train split of {src.words_dir}'s corpus."
        )
    train_config = config.train_config(src.preset)
    stage = StageDir(out_dir, STAGE, processes.rank, processes.world_size)
    stage_fp = training_fingerprint(STAGE, config, train_config, src.fingerprint)
    if (
        finished := training_up_to_date(stage, stage_fp, resume, force, started, processes)
    ) is not None:
        return finished
    with stage.locked():
        check_resume(stage, stage_fp, resume, force, processes)
        fresh = resolve_resume(out_dir, resume, stage_fp) is None
        if (force or fresh) and processes.is_main:
            # A fresh start owes nothing to an earlier run in this folder: its checkpoints, vocabulary
            # and bundle files (a stale feature projection would be loaded with the new model).
            remove_outputs(out_dir, ("checkpoints", VOCABULARY, FEATURE_PROJECTION, BUNDLE_INFO))
        processes.barrier()
        if processes.is_main:
            stage.prepare()
            (out_dir / BUNDLE_INFO).unlink(missing_ok=True)  # not a bundle until training ends
        processes.barrier()
        # Read now: a missing upstream folder fails here, not after training.
        bundle_settings = pipeline_settings(src.words_dir, words_manifest)

        tree = HierarchicalKMeans.load(src.words_dir / CODEBOOK)
        vocab_dir = out_dir / VOCABULARY
        if processes.is_main and not (vocab_dir / VOCABULARY_FILE).is_file():
            built = _vocabulary(src, segments, tree.vocab_size)
            if config.task == "dense":
                built = built.with_time_tokens(config.time_bins)
            built.save(vocab_dir)
        processes.barrier()
        vocab = JointVocabulary.load(vocab_dir)
        inputs = InputConfig.for_task(
            config.task,
            config.with_features,
            config.with_transcript,
            time_bins=vocab.n_time if config.task == "dense" else 0,
            max_clips=config.max_clips,
        )
        feature_dim = _feature_dim(tracks) if config.with_features else None
        torch.manual_seed(config.seed)
        if src.bundle:
            model = CaptionModel.load(src.pretrained, src.arch).train()
            model.fit_vocabulary(vocab)  # a caption bundle trained further as a dense one
            if model.features is not None and model.features.mean.numel() != feature_dim:
                raise VidcapError(
                    f"{src.pretrained} reads {model.features.mean.numel()}-dim clip features but {src.words_dir}'s are {feature_dim}-dim."
                )
        else:
            model = build_caption_model(
                src.arch,
                vocab,
                src.pretrained,
                None if src.pretrained else model_size(src.preset, src.arch),
                tree.leaf_centroids,
                feature_dim,
            )
        if config.task == "dense":  # a whole video and all its events: as long as the model takes
            inputs = replace(
                inputs,
                max_source=model.max_positions,
                # generation holds the decoder's start token as well as max_target new ones
                max_target=min(inputs.max_target, model.max_positions - 1),
            )
        if model.features is not None and not src.bundle:  # a bundle keeps its statistics
            model.features.fit_statistics(
                np.concatenate([tracks[s.video_id].features[s.clips] for s in train_segments])
            )
        localiser = None
        trained_on = train_segments
        if dense:
            # The localiser places the events; the seq2seq learns Vid2Seq's whole-video sequences
            # and, to caption the events it places, every event on its own clips.
            localiser = train_localiser(
                [localiser_example(tracks[s.video_id], s) for s in train_segments],
                LocaliserConfig(
                    dim=_feature_dim(tracks),
                    min_event_s=float(
                        np.percentile(
                            [e.end - e.start for s in train_segments for e in s.events], 5
                        )
                    ),
                ),
                LocaliserTraining(steps=config.localiser_steps, seed=config.seed),
            )
            trained_on = train_segments + [
                e for e in captioned_segments(records, tracks) if e.split == "train"
            ]
        train_set = CaptionExamples(trained_on, tracks, vocab, inputs)
        collate = partial(
            collate_captions,
            pad_id=vocab.pad_id,
            decoder_start_id=model.seq2seq.config.decoder_start_token_id,
        )
        val_set = CaptionExamples(val_segments, tracks, vocab, inputs) if val_segments else None

        def val_captions(objective: torch.nn.Module, step: int) -> dict[str, float]:
            """Val CIDEr and BLEU-4 (qa: exact match; dense: paragraph CIDEr and event recall)
            with greedy decoding (beam search at the end), on the main process. Under a launcher
            every process generates its share of the val split: one process generating it all
            kept the others waiting in their next collective, which NCCL ends after 10 minutes
            (a beam search over thousands of val segments takes longer), and took N times as long.
            """
            if not val_segments:
                return {}
            beams = 1 if step < train_config.max_steps else config.beams
            if localiser is not None:
                found = processes.share_out(
                    val_segments,
                    lambda share: localised_events(
                        objective,
                        vocab,
                        localiser,
                        [tracks[s.video_id] for s in share],
                        inputs,
                        beams=beams,
                        max_new_tokens=inputs.max_target,
                    ),
                )
                objective.train()
                return _dense_val(val_segments, found) if processes.is_main else {}
            hypotheses = processes.share_out(
                val_set.inputs,
                lambda share: generate_captions(
                    objective, vocab, share, beams=beams, max_new_tokens=inputs.max_target
                ),
            )
            objective.train()
            if not processes.is_main:
                return {}
            if config.task == "qa":
                answers = [s.captions[0] for s in val_segments]
                matched = exact_match(hypotheses, answers, [s.kind for s in val_segments])
                return {"exact_match": round(float(matched["exact_match"]), 4)}
            scores = caption_scores(
                {s.key: h for s, h in zip(val_segments, hypotheses, strict=True)},
                {s.key: list(s.captions) for s in val_segments},
                meteor=False,
            )
            return {"cider": round(scores.cider, 4), "bleu4": round(scores.bleu4, 4)}

        outcome = train(
            model,
            train_set,
            val_set,
            collate,
            out_dir,
            train_config,
            resume=resume,
            on_step=on_step,
            run=stage_fp,
            extra_eval=val_captions,
        )
        if processes.is_main:
            trained: CaptionModel = outcome["objective"]
            _write_bundle(
                out_dir,
                trained,
                vocab,
                src,
                config,
                words_manifest,
                inputs,
                bundle_settings,
                outcome["steps"],
                localiser,
            )
            record_training(stage, "bundle", ".", outcome, stage_fp)
            stage.finalize(
                config={**asdict(config), "train": asdict(train_config)},
                stage_fingerprint=stage_fp,
                upstream={"path": str(Path(source).resolve()), "fingerprint": src.fingerprint},
                wall_time_s=time.perf_counter() - started,
                extra={
                    "corpus": as_recorded(recorded_corpus(src.words_dir, words_manifest)),
                    "words": str(src.words_dir.resolve()),
                },
            )
    processes.barrier()
    return result_from_index(stage, started, training_details)


def _dense_val(items: list[TaskItem], found: list[list[TimedCaption]]) -> dict[str, float]:
    """A dense model's val scores while it trains: CIDEr of its events' captions told in order
    against the reference paragraphs, and event recall, the mean over true events of the best
    temporal IoU of a found event (the full densevid and SODA scores are ``vidcap evaluate``'s)."""
    scores = caption_scores(
        {s.key: " ".join(e.text for e in events) for s, events in zip(items, found, strict=True)},
        {s.key: list(s.captions) for s in items},
        meteor=False,
    )
    best = [
        max((_tiou((t.start, t.end), (e.start, e.end)) for e in events), default=0.0)
        for s, events in zip(items, found, strict=True)
        for t in s.events
    ]
    return {
        "cider": round(scores.cider, 4),
        "event_recall_iou": round(float(np.mean(best)), 4) if best else 0.0,
        "events_per_video": round(sum(map(len, found)) / len(found), 2),
    }


def _tiou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal IoU of two ``(start, end)`` intervals."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _feature_dim(tracks: dict[str, ClipTrack]) -> int:
    return int(next(iter(tracks.values())).features.shape[1])


def _write_bundle(
    out_dir: Path,
    model: CaptionModel,
    vocab: JointVocabulary,
    src: _Source,
    config: FinetuneConfig,
    words_manifest: dict[str, Any],
    inputs: InputConfig,
    settings: dict[str, Any],
    steps: int = 0,
    localiser: EventLocaliser | None = None,
) -> None:
    """The bundle's files into ``out_dir``, ``vidcap.json`` last."""

    def write_files(folder: Path) -> None:
        model.save(folder)
        if localiser is not None:
            localiser.save(folder / LOCALISER)
        vocab.save(folder)
        copy_codebook(src.words_dir, folder)
        fit_profile(src.words_dir).save(folder / OOD_PROFILE)  # for caption's out-of-domain warning

    write_bundle(
        out_dir,
        {
            "stage": STAGE,
            "task": config.task,
            "arch": model.arch,
            "preset": src.preset,
            "model": describe(model),
            "pretrained": str(src.pretrained.resolve()) if src.pretrained else None,
            "inputs": asdict(inputs),
            **({"localiser": localiser.config.to_json()} if localiser is not None else {}),
            "generation": {
                "beams": config.beams,
                "max_new_tokens": inputs.max_target,
                **(DENSE_DECODING if config.task == "dense" else {}),
            },
            "codebook": CODEBOOK,
            "n_visual": vocab.n_visual,
            "quantize": words_manifest.get("tree"),
            **settings,
            "provenance": {
                "corpus": as_recorded(recorded_corpus(src.words_dir, words_manifest)),
                "words": str(src.words_dir.resolve()),
                "features": as_recorded(upstream_folder(src.words_dir, words_manifest)),
            },
            # what the model card (README.md) says it was trained on, and how far
            "training": training_facts(src.words_dir, steps, out_dir / "metrics.jsonl"),
        },
        write_files,
    )


def localiser_example(track: ClipTrack, item: TaskItem) -> tuple[np.ndarray, np.ndarray]:
    """A dense item's clip features and their localiser targets (:func:`clip_labels`)."""
    assert track.features is not None
    events = [(e.start, e.end) for e in item.events]
    return track.features, clip_labels(track.start_s, track.end_s, events)
