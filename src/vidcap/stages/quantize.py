"""The quantize stage: clip features → visual words by hierarchical k-means (VideoBERT).

The tree is fitted once, on the clips of the train split (or a random sample of them), then every
clip of every video is assigned a word. Unlike extract and encode this stage is global — one fit
over all videos — so it runs in one process; it is fast next to the stages around it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts import (
    ItemRecord,
    StageDir,
    as_recorded,
    atomic_write_text,
    fingerprint,
    read_upstream,
    recorded_corpus,
    upstream_folder,
)
from vidcap.artifacts.readers import CODEBOOK, features_shape, load_features, load_words
from vidcap.errors import VidcapError
from vidcap.quantize.kmeans import HierarchicalKMeans, KMeansConfig, top_words
from vidcap.quantize.settings import Normalization
from vidcap.stages.base import StageResult, finished_result, result_from_index

STAGE = "quantize"


@dataclass(frozen=True)
class QuantizeConfig:
    """Settings of ``vidcap quantize`` (VideoBERT: k=12, depth 4 → 20,736 words)."""

    k: int = 12
    depth: int = 4
    fit_samples: int | None = None  # fit on this many random train clips (None: all of them)
    normalize: Normalization = "l2"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.fit_samples is not None and self.fit_samples < 1:
            raise VidcapError(f"--fit-samples must be >= 1, got {self.fit_samples}.")
        self.kmeans()  # validates k, depth, normalize, device

    def kmeans(self) -> KMeansConfig:
        return KMeansConfig(
            k=self.k, depth=self.depth, normalize=self.normalize, seed=self.seed, device=self.device
        )


def run_quantize(
    features_dir: str | Path,
    out_dir: str | Path,
    config: QuantizeConfig,
    force: bool = False,
    on_phase: Callable[[str], None] | None = None,
) -> StageResult:
    """Fit the word tree on the train clips of ``features_dir`` and assign every clip a word."""
    started = time.perf_counter()
    upstream_manifest, items = read_upstream(features_dir, "encode")
    if not items:
        raise VidcapError(f"{features_dir} has no successfully encoded videos to quantize.")
    stage = StageDir(out_dir, STAGE)
    settings = asdict(config)
    stage_fp = fingerprint(STAGE, settings, upstream_manifest["fingerprint"])
    if not force and (result := finished_result(stage, stage_fp, started, _details)) is not None:
        result.details.update(_summary(quantize_report(out_dir)))
        return result
    with stage.locked():
        stage.prepare(force=True)  # one global fit: nothing from an older run can be kept

        # Streamed, a video at a time: only the fitted clips are ever held together (holding
        # every feature of the folder took 3-8 MB per video-hour at 183-d, terabytes for
        # HowTo100M).
        ordered = sorted((_what_is_read(r) for r in items.records()), key=lambda r: r.id)
        paths = [Path(features_dir) / r.outputs["features"] for r in ordered]
        lengths = _clip_counts(ordered, paths)
        fit_rows = _fit_rows(ordered, lengths, config)
        if on_phase is not None:
            on_phase(f"fitting k={config.k}, depth={config.depth} on {len(fit_rows):,} clips")
        fit_features = _gather_rows(paths, lengths, fit_rows)
        tree = HierarchicalKMeans.fit(fit_features, config.kmeans())
        del fit_features
        tree.save(stage.path / CODEBOOK)

        if on_phase is not None:
            on_phase(f"assigning {sum(lengths):,} clips")
        device = config.kmeans().resolved_device()
        counts = np.zeros(tree.vocab_size, dtype=np.int64)  # clips per word, over the folder
        for record, path, n in zip(ordered, paths, lengths, strict=True):
            data = load_features(path)
            try:
                words = tree.assign(data["features"], device=device)
            except VidcapError as error:  # NaN features, a dim other than the fitted one
                raise VidcapError(f"{record.id}: {error}") from None
            counts += np.bincount(words, minlength=tree.vocab_size)
            out = stage.item_file(record.id)
            payload = {
                "id": record.id,
                "words": words.tolist(),
                "start_s": data["start_s"].tolist(),
                "end_s": data["end_s"].tolist(),
            }
            atomic_write_text(out, json.dumps(payload) + "\n")
            stage.record(
                ItemRecord(
                    record.id,
                    "ok",
                    outputs={"words": stage.relative(out)},
                    info={
                        "split": record.info.get("split"),
                        "video": record.info.get("video"),
                        "n_clips": n,
                    },
                    fingerprint=stage_fp,
                )
            )

        description = tree.describe()
        report = {
            "vocab_size": tree.vocab_size,
            "words_used": int(np.count_nonzero(counts)),
            "level_inertia": [round(float(x), 4) for x in tree.level_inertia],
            "top_words": [[w, c] for w, c in top_words(counts, 20)],
            "fit_clips": len(fit_rows),
            "clips": int(counts.sum()),
        }
        stage.finalize(
            config=settings,
            stage_fingerprint=stage_fp,
            upstream={
                "path": str(Path(features_dir).resolve()),
                "fingerprint": upstream_manifest["fingerprint"],
            },
            wall_time_s=time.perf_counter() - started,
            extra={
                "codebook": CODEBOOK,
                "tree": description,
                "report": report,
                "encoder": upstream_manifest.get("encoder"),
                "corpus": as_recorded(recorded_corpus(features_dir, upstream_manifest)),
            },
        )
    result = result_from_index(stage, started, _details)
    result.details.update(_summary(report))
    return result


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report's figures for the end table."""
    return {
        "words used": f"{report['words_used']:,} of {report['vocab_size']:,}",
        "fitted on": f"{report['fit_clips']:,} clips",
        "inertia per level": ", ".join(f"{x:.4g}" for x in report["level_inertia"]),
        "top words": ", ".join(f"{w} ({c})" for w, c in report["top_words"][:5]),
    }


def _what_is_read(record: ItemRecord) -> ItemRecord:
    """What quantize reads of an encode record: its features file, split and video (a full
    record takes 2.8 KB in memory, and every video's is held through the run)."""
    info = {k: record.info.get(k) for k in ("split", "video")}
    return ItemRecord(record.id, record.status, outputs=record.outputs, info=info)


def _clip_counts(records: list[ItemRecord], paths: list[Path]) -> list[int]:
    """Every video's clip count, from its features file's header (no values read), checking that
    all have the same dim before anything is fitted.

    Raises:
        VidcapError: a damaged features file, or two videos with different feature dims (the
            message names them).
    """
    counts, dim, first = [], 0, ""
    for record, path in zip(records, paths, strict=True):
        n, d = features_shape(path)
        if not counts:
            dim, first = d, record.id
        elif d != dim:
            raise VidcapError(
                f"Features have different dims: {first} has {dim} but {record.id} has {d}; "
                "encode every video with the same encoder."
            )
        counts.append(n)
    return counts


def _gather_rows(paths: list[Path], lengths: list[int], rows: np.ndarray) -> np.ndarray:
    """float32 ``[len(rows), dim]``: the clips at ``rows`` of the folder's features stacked in
    ``paths`` order (``lengths`` clips each), read a video at a time."""
    out: np.ndarray | None = None
    starts = np.cumsum([0, *lengths])
    for i, path in enumerate(paths):
        lo, hi = np.searchsorted(rows, [starts[i], starts[i + 1]])
        if lo == hi:
            continue
        features = load_features(path)["features"]
        if out is None:  # every video's dim is the same (checked by _clip_counts)
            out = np.empty((len(rows), features.shape[1]), dtype=np.float32)
        out[lo:hi] = features[rows[lo:hi] - starts[i]]
    assert out is not None  # rows is never empty (see _fit_rows)
    return out


def _fit_rows(records: list[ItemRecord], lengths: list[int], config: QuantizeConfig) -> np.ndarray:
    """Row indices (into the folder's features stacked in ``records`` order) of the clips to fit
    on: the train split's, when splits are known, else every clip; then a seeded random sample
    of ``fit_samples``.

    The sample is drawn among the train clips' positions and mapped to rows, so a list of every
    train clip is never made (8 bytes a clip: gigabytes for HowTo100M's 322 million).
    """
    has_splits = any(r.info.get("split") for r in records)
    train = [i for i, r in enumerate(records) if not has_splits or r.info.get("split") == "train"]
    if not train:
        raise VidcapError(
            "no train-split videos to fit the visual words on; add train videos to the corpus."
        )
    train_lengths = np.array([lengths[i] for i in train], dtype=np.int64)
    n_train = int(train_lengths.sum())
    if n_train == 0:
        raise VidcapError(
            "the train-split videos have no clips to fit the visual words on; add longer train "
            "videos to the corpus."
        )
    if config.fit_samples is None or config.fit_samples >= n_train:
        positions = np.arange(n_train)
    else:
        rng = np.random.default_rng(config.seed)
        positions = np.sort(rng.choice(n_train, size=config.fit_samples, replace=False))
    starts = np.cumsum([0, *lengths])[:-1]  # each video's first row in the folder's stack
    train_starts = np.cumsum([0, *train_lengths])[:-1]  # ... and among the train clips
    video = np.searchsorted(train_starts, positions, side="right") - 1
    return starts[np.array(train)][video] + (positions - train_starts[video])


def _details(ok: Iterable[ItemRecord]) -> dict[str, Any]:
    return {"clips": sum(int(r.info.get("n_clips", 0)) for r in ok)}


def quantize_report(out_dir: str | Path) -> dict[str, Any]:
    """The finished stage's report: vocabulary size, words used, inertia per level, top words."""
    manifest = StageDir(out_dir, STAGE).read_manifest()
    if manifest is None:
        raise VidcapError(f"{out_dir} has no manifest.json: run `vidcap quantize` into it first.")
    return manifest["report"]


def inspect_words(
    words_dir: str | Path,
    out_png: str | Path,
    frames_dir: str | Path | None = None,
    top: int = 20,
    per_word: int = 8,
) -> Path:
    """Draw the ``top`` most frequent words, each with the middle frames of the clips nearest its
    centroid (the VideoBERT paper's figure), so a user can see what the words mean.

    ``frames_dir`` defaults to the extract folder the features were made from.
    """
    from vidcap.quantize.figure import render_word_grid

    manifest, items = read_upstream(words_dir, STAGE)
    features_dir = upstream_folder(words_dir, manifest)
    features_manifest, feature_items = read_upstream(features_dir, "encode")
    if frames_dir is None:
        frames_dir = upstream_folder(features_dir, features_manifest)
        if frames_dir is None:
            raise VidcapError(
                f"{features_dir} was encoded straight from videos, so there are no frames to draw; pass --frames, the folder of a `vidcap extract` with the same settings."
            )
    _, frame_items = read_upstream(frames_dir, "extract")
    tree = HierarchicalKMeans.load(Path(words_dir) / CODEBOOK)

    # Two passes over the videos, one at a time (holding every clip's feature took the corpus's
    # features): the words' counts, then each top word's clips nearest its centroid, ties
    # broken by the clips' order.
    words_of = {r.id: Path(words_dir) / r.outputs["words"] for r in items.records()}
    videos = sorted(words_of)
    counts = np.zeros(tree.vocab_size, dtype=np.int64)
    for video_id in videos:
        words = load_words(words_of[video_id]).words
        counts += np.bincount(np.asarray(words, dtype=np.int64), minlength=tree.vocab_size)
    chosen = top_words(counts, top)
    centroids = tree.leaf_centroids
    nearest: dict[int, list[tuple[float, int, str, int]]] = {w: [] for w, _ in chosen}
    row = 0  # each clip's place in the folder's order
    for video_id in videos:
        words = np.asarray(load_words(words_of[video_id]).words)
        wanted = np.flatnonzero(np.isin(words, list(nearest)))
        if len(wanted):
            path = features_dir / feature_items[video_id].outputs["features"]
            features = load_features(path)["features"].astype(np.float32)[wanted]
            if features.shape[1] != centroids.shape[1]:
                raise VidcapError(
                    f"{path} holds {features.shape[1]}-d features, but {words_dir}'s words are {centroids.shape[1]}-d; give --frames the folder these words came from."
                )
            if tree.normalize == "l2":
                norms = np.linalg.norm(features, axis=1, keepdims=True)
                features = features / np.maximum(norms, 1e-12)
            distances = np.linalg.norm(features - centroids[words[wanted]], axis=1)
            for clip, distance in zip(wanted, distances, strict=True):
                best = nearest[int(words[clip])]
                best.append((float(distance), row + int(clip), video_id, int(clip)))
                best.sort()
                del best[per_word:]
        row += len(words)

    rows = []
    for word, count in chosen:
        thumbs = []
        for _, _, video_id, clip_index in nearest[word]:
            frame_item = frame_items.get(video_id)
            if frame_item is None:
                continue
            clip = frame_item.info["clips"][clip_index]
            frames = np.load(Path(frames_dir) / frame_item.outputs["frames"], mmap_mode="r")
            thumbs.append(np.asarray(frames[(clip["start_frame"] + clip["end_frame"] - 1) // 2]))
        rows.append((f"word {word}\n{count} clips", thumbs))
    if not rows:
        raise VidcapError(f"{words_dir} has no words to draw.")
    return render_word_grid(rows, out_png, max_thumbs=per_word)
