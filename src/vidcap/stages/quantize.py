"""The quantize stage: clip features → visual words by hierarchical k-means (VideoBERT).

The tree is fitted once, on the clips of the train split (or a random sample of them), then every
clip of every video is assigned a word. Unlike extract and encode this stage is global — one fit
over all videos — so it runs in one process; it is fast next to the stages around it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts import (
    ItemRecord,
    StageDir,
    atomic_write_text,
    fingerprint,
    read_upstream,
)
from vidcap.artifacts.readers import CODEBOOK, load_features, load_words
from vidcap.errors import VidcapError
from vidcap.quantize.kmeans import (
    HierarchicalKMeans,
    KMeansConfig,
    stack_features,
    top_words,
)
from vidcap.quantize.settings import Normalization
from vidcap.stages.base import StageResult, result_from_index

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
    if not force and stage.is_complete(stage_fp):
        result = result_from_index(stage, started, _details, up_to_date=True)
        result.details.update(_summary(quantize_report(out_dir)))
        return result
    with stage.locked():
        stage.prepare(force=True)  # one global fit: nothing from an older run can be kept

        # Streamed, a video at a time: only the fitted clips are ever held together (holding
        # every feature of the folder took 3-8 MB per video-hour at 183-d, terabytes for
        # HowTo100M).
        ordered = sorted(items.values(), key=lambda r: r.id)
        paths = [Path(features_dir) / r.outputs["features"] for r in ordered]
        lengths = [_clip_count(record, path) for record, path in zip(ordered, paths, strict=True)]
        fit_rows = _fit_rows(ordered, lengths, config)
        if on_phase is not None:
            on_phase(f"fitting k={config.k}, depth={config.depth} on {len(fit_rows):,} clips")
        fit_features = _gather_rows(ordered, paths, lengths, fit_rows)
        tree = HierarchicalKMeans.fit(fit_features, config.kmeans())
        del fit_features
        tree.save(stage.path / CODEBOOK)

        if on_phase is not None:
            on_phase(f"assigning {sum(lengths):,} clips")
        device = config.kmeans().resolved_device()
        counts = np.zeros(tree.vocab_size, dtype=np.int64)  # clips per word, over the folder
        for record, path, n in zip(ordered, paths, lengths, strict=True):
            data = _features_of(record, path, n)
            try:
                words = tree.assign(data["features"], device=device)
            except VidcapError as error:  # NaN features, a dim other than the fitted one
                raise VidcapError(f"{record.id}: {error}") from None
            counts += np.bincount(words, minlength=tree.vocab_size)
            out = stage.item_path(record.id, ".json", subdir="words")
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
            "top_words": [[w, c] for w, c in _most_used(counts, 20)],
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
                "corpus": upstream_manifest.get("corpus"),
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


def _clip_count(record: ItemRecord, path: Path) -> int:
    """A video's clip count: from the encode index (every encode since it records ``n_clips``),
    else from its features file."""
    n = record.info.get("n_clips")
    return int(n) if isinstance(n, int) else len(load_features(path)["features"])


def _features_of(record: ItemRecord, path: Path, n: int) -> dict[str, np.ndarray]:
    """A video's features file, checked against the clip count the rows were numbered by."""
    data = load_features(path)
    if len(data["features"]) != n:
        raise VidcapError(
            f"{path} holds {len(data['features'])} clips but the encode index says {n} for "
            f"{record.id}; rerun `vidcap encode` into that folder."
        )
    return data


def _gather_rows(
    records: list[ItemRecord], paths: list[Path], lengths: list[int], rows: np.ndarray
) -> np.ndarray:
    """float32 ``[len(rows), dim]``: the clips at ``rows`` of the folder's features stacked in
    ``records`` order, read a video at a time.

    Raises:
        VidcapError: two videos with different feature dims (the message names them).
    """
    out: np.ndarray | None = None
    first = ""
    starts = np.cumsum([0, *lengths])
    for i, (record, path) in enumerate(zip(records, paths, strict=True)):
        lo, hi = np.searchsorted(rows, [starts[i], starts[i + 1]])
        if lo == hi:
            continue
        features = _features_of(record, path, lengths[i])["features"]
        if out is None:
            out, first = np.empty((len(rows), features.shape[1]), dtype=np.float32), record.id
        elif features.shape[1] != out.shape[1]:
            raise VidcapError(
                f"Features have different dims: {first} has {out.shape[1]} but {record.id} has "
                f"{features.shape[1]}; encode every video with the same encoder."
            )
        out[lo:hi] = features[rows[lo:hi] - starts[i]]
    assert out is not None  # rows is never empty (see _fit_rows)
    return out


def _most_used(counts: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The ``n`` most used words as ``(word, clips)``, most used first (ties: the lower id)."""
    used = np.flatnonzero(counts)
    order = used[np.lexsort((used, -counts[used]))][:n]
    return [(int(w), int(counts[w])) for w in order]


def _fit_rows(records: list[ItemRecord], lengths: list[int], config: QuantizeConfig) -> np.ndarray:
    """Row indices (into the folder's features stacked in ``records`` order) of the clips to fit
    on: the train split's, when splits are known, else every clip; then a seeded random sample
    of ``fit_samples``."""
    has_splits = any(r.info.get("split") for r in records)
    rows, offset = [], 0
    for record, n in zip(records, lengths, strict=True):
        if not has_splits or record.info.get("split") == "train":
            rows.append(np.arange(offset, offset + n))
        offset += n
    if not rows:
        raise VidcapError(
            "no train-split videos to fit the visual words on; add train videos to the corpus."
        )
    fit = np.concatenate(rows)
    if config.fit_samples is not None and config.fit_samples < len(fit):
        rng = np.random.default_rng(config.seed)
        fit = np.sort(rng.choice(fit, size=config.fit_samples, replace=False))
    return fit


def _details(ok: list[ItemRecord]) -> dict[str, Any]:
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
    features_dir = Path(manifest["upstream"]["path"])
    features_manifest, feature_items = read_upstream(features_dir, "encode")
    if frames_dir is None:
        frames_dir = features_manifest["upstream"].get("path")
        if frames_dir is None:
            raise VidcapError(
                f"{features_dir} was encoded straight from videos, so there are no frames to draw; pass --frames, the folder of a `vidcap extract` with the same settings."
            )
    _, frame_items = read_upstream(frames_dir, "extract")
    tree = HierarchicalKMeans.load(Path(words_dir) / CODEBOOK)

    # Every clip: (video id, clip index, word), and its feature for the distance to the centroid.
    clips: list[tuple[str, int, int]] = []
    arrays = []
    for video_id in sorted(items):
        words = load_words(Path(words_dir) / items[video_id].outputs["words"])
        clips += [(video_id, i, w) for i, w in enumerate(words.words)]
        arrays.append(
            load_features(features_dir / feature_items[video_id].outputs["features"])["features"]
        )
    features = stack_features(arrays)
    if tree.normalize == "l2":
        features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    word_of_clip = np.array([w for _, _, w in clips])

    rows = []
    for word, count in top_words(word_of_clip, top):
        members = np.flatnonzero(word_of_clip == word)
        distances = np.linalg.norm(features[members] - tree.leaf_centroids[word], axis=1)
        nearest = members[np.argsort(distances, kind="stable")[:per_word]]
        thumbs = []
        for row in nearest:
            video_id, clip_index, _ = clips[row]
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
