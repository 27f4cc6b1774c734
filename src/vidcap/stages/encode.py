"""The encode stage: clip frames → one feature vector per clip, by a registered encoder.

Frames are read from the extract stage's ``.npy`` files (memory-mapped: only each clip is read) and
prepared (sampled, resized, normalised — or, for the built-in descriptor, fully computed) in
DataLoader worker processes, while the main process runs the model on batches that span several
videos. A video is written as soon as all of its clips are embedded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vidcap.artifacts import (
    ItemRecord,
    StageDir,
    as_recorded,
    atomic_path,
    fingerprint,
    read_upstream,
    recorded_corpus,
)
from vidcap.artifacts.index import IndexChanged, IndexRecords
from vidcap.artifacts.readers import load_frames
from vidcap.devices import pins_memory, resolve_device
from vidcap.distributed import Processes, Shard
from vidcap.encoders import ClipEncoder, EncoderOptions, build_encoder
from vidcap.encoders.ahead import OneBatchAhead
from vidcap.encoders.dtypes import COMPUTE_DTYPES, ComputeDtype, SaveDtype
from vidcap.errors import ResourceError, VidcapError, as_resource_error
from vidcap.stages.base import Details, ItemRun, StageResult, open_stage
from vidcap.video.clips import Clip, clip_array

STAGE = "encode"
EXTRACT_KEYS = ("fps", "size", "crop", "clip_frames", "backend")
"""The extract settings every encode manifest records (``extract``): what turning a raw video into
the same clips needs (a bundle's ``vidcap.json`` copies them)."""
SAVE_DTYPES = {name: np.dtype(name) for name in get_args(SaveDtype)}


@dataclass(frozen=True)
class EncodeConfig:
    """Settings of ``vidcap encode``."""

    encoder: str = "descriptor"
    batch_size: int = 32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: ComputeDtype = "float32"  # the model's (float16 / bfloat16: autocast on GPU)
    save_dtype: SaveDtype = "float16"  # dtype of the features on disk
    weights: str = "default"  # torchvision encoders: default | none | PATH
    loader_workers: int = 2  # DataLoader processes preparing clips

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise VidcapError(f"--batch-size must be >= 1, got {self.batch_size}.")
        if self.dtype not in COMPUTE_DTYPES:
            raise VidcapError(
                f"--dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {self.dtype!r}."
            )
        if self.save_dtype not in SAVE_DTYPES:
            raise VidcapError(
                f"--save-dtype must be {' or '.join(SAVE_DTYPES)}, got {self.save_dtype!r}."
            )
        if self.loader_workers < 0:
            raise VidcapError(f"--loader-workers must be >= 0, got {self.loader_workers}.")

    def output_settings(self) -> dict[str, Any]:
        """Settings that change the features (not batch size, device or worker count)."""
        return {
            "encoder": self.encoder,
            "dtype": self.dtype,
            "save_dtype": self.save_dtype,
            "weights": self.weights,
        }


@dataclass(frozen=True)
class VideoToEncode:
    """One upstream video to encode: where its frames are. Its clip windows are in its extract
    record, read when the video's turn comes (:func:`clips_of`): an hour's list is 2,400 clips,
    and holding every video's took 147 KiB per video in each process."""

    index: int
    id: str
    frames_path: str
    clip_frames: int


def clips_of(record: ItemRecord) -> list[Clip]:
    """The clip windows an extract record lists."""
    return [Clip(**c) for c in record.info["clips"]]


class _ClipDataset(IterableDataset):
    """Yields ``(video index, clip index, prepared clip | problem)``; workers split videos.

    Clips are prepared and handed over one at a time, so a worker holds one clip (plus the
    loader's prefetched batches), whatever the video's length: preparing a whole video first took
    2.9-5.8 GB per video-hour per worker for an image model. A video that fails midway is one
    problem item after the clips already handed over; the main process then drops them.
    """

    def __init__(
        self,
        videos: list[VideoToEncode],
        upstream: Mapping[str, ItemRecord],
        encoder: ClipEncoder,
    ) -> None:
        self.videos = videos
        self.upstream = upstream
        self.encoder = encoder

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor | Problem]]:
        info = get_worker_info()
        mine = self.videos if info is None else self.videos[info.id :: info.num_workers]
        for video in mine:
            try:
                clips = clips_of(self.upstream[video.id])
            except Exception as e:
                what = f"could not read the clips of {video.id} from its extract record"
                yield video.index, -1, _problem(e, video, what)
                continue
            try:
                frames = load_frames(video.frames_path)
            except Exception as e:
                yield (
                    video.index,
                    -1,
                    _problem(e, video, f"could not read the frames of {video.id}"),
                )
                continue
            for clip in clips:
                try:
                    tensor = self.encoder.prepare(clip_array(frames, clip, video.clip_frames))
                except Exception as e:
                    what = f"could not prepare clip {clip.index} of {video.id}"
                    yield video.index, -1, _problem(e, video, what)
                    break
                yield video.index, clip.index, tensor


def _problem(error: Exception, video: VideoToEncode, what: str) -> Problem:
    """A bad frames file or clip fails its video, not the run (a sentence); a failing disk stops
    the run, handed over as it is (an exception raised in a loader worker would reach the main
    process wrapped in a traceback)."""
    if isinstance(error, IndexChanged):  # the extract folder is being rewritten: stop
        return ResourceError(str(error))
    return as_resource_error(error, video.frames_path) or f"{what}: {error}"


Problem = str | ResourceError  # a video's failure sentence, or a fault that stops the run


def _collate(
    items: list[tuple[int, int, torch.Tensor | Problem]],
) -> tuple[list[tuple[int, int]], torch.Tensor | None, list[tuple[int, Problem]]]:
    keys = [(v, c) for v, c, x in items if isinstance(x, torch.Tensor)]
    tensors = [x for _, _, x in items if isinstance(x, torch.Tensor)]
    errors = [(v, x) for v, _, x in items if not isinstance(x, torch.Tensor)]
    return keys, (torch.stack(tensors) if tensors else None), errors


@dataclass(frozen=True)
class VideoEncoded:
    """Progress event: one video finished (ok or failed) in this process, with the clips it
    encoded (none when it failed)."""

    id: str
    ok: bool
    n_clips: int


def run_encode(
    frames_dir: str | Path,
    out_dir: str | Path,
    config: EncodeConfig,
    processes: Processes | None = None,
    force: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_video: Callable[[VideoEncoded], None] | None = None,
    shard: Shard | None = None,
) -> StageResult:
    """Encode every clip of every ``ok`` video of an extract folder into ``out_dir``.

    Resumes, and shares the videos between processes or ``--shard`` jobs, as every stage does
    (:class:`~vidcap.stages.base.ItemRun`).
    """
    processes = processes or Processes()
    started = time.perf_counter()
    stage = open_stage(out_dir, STAGE, processes, shard)
    upstream_manifest, upstream_items = read_upstream(frames_dir, "extract")
    device = str(resolve_device(config.device, processes.world_size, processes.rank))
    encoder = build_encoder(
        config.encoder, EncoderOptions(device=device, dtype=config.dtype, weights=config.weights)
    )
    description = encoder.describe()
    settings = {**config.output_settings(), "encoder_description": description}
    item_fps: dict[str, str] = {}
    found: list[tuple[str, str, int]] = []  # a record at a time: none is held (VideoToEncode)
    for item in upstream_items.records():
        item_fps[item.id] = fingerprint(STAGE, settings, item.fingerprint)
        frames = str(Path(frames_dir) / item.outputs["frames"])
        found.append((item.id, frames, int(item.info["clip_frames"])))
    if not found:
        raise VidcapError(
            f"{frames_dir} holds no extracted videos (every one failed: its index says why); "
            "extract some first."
        )
    videos = [VideoToEncode(n, *video) for n, video in enumerate(sorted(found))]
    run = ItemRun(
        stage,
        videos,
        item_fps,
        fingerprint=fingerprint(
            STAGE, settings, upstream_manifest["fingerprint"], sorted(item_fps.items())
        ),
        details=encode_details(description),
        config=asdict(config),
        upstream={
            "path": str(Path(frames_dir).resolve()),
            "fingerprint": upstream_manifest["fingerprint"],
        },
        extra={
            "encoder": description,
            "corpus": as_recorded(recorded_corpus(frames_dir, upstream_manifest)),
            "extract": {k: upstream_manifest["config"][k] for k in EXTRACT_KEYS},
        },
        started=started,
    )
    return run.run(
        lambda todo: _encode_videos(
            stage, todo, encoder, torch.device(device), config, upstream_items, item_fps, on_video
        ),
        processes,
        force=force,
        on_start=on_start,
    )


def _encode_videos(
    stage: StageDir,
    videos: list[VideoToEncode],
    encoder: ClipEncoder,
    device: torch.device,
    config: EncodeConfig,
    upstream_items: IndexRecords,
    item_fps: dict[str, str],
    on_video: Callable[[VideoEncoded], None] | None,
) -> None:
    """Run the DataLoader over ``videos``; write each video once all of its clips are embedded.

    Batches for a GPU arrive in page-locked memory, and the model runs one batch ahead of reading
    features back (:class:`~vidcap.encoders.ahead.OneBatchAhead`), so the GPU does not wait while
    this process fetches batches and writes videos.
    """
    if not videos:
        return
    by_index = {v.index: v for v in videos}
    pending: dict[int, dict[int, np.ndarray]] = {v.index: {} for v in videos}
    # The videos in flight only: each one's extract record and clips, read once when its first
    # clip comes back (an hour's record lists 2,400 clips).
    in_flight: dict[int, tuple[ItemRecord, list[Clip]]] = {}
    loader = DataLoader(
        # This process's videos' records only: a loader worker started by spawn gets a copy.
        _ClipDataset(videos, upstream_items.select(v.id for v in videos), encoder),
        batch_size=config.batch_size,
        num_workers=min(config.loader_workers, len(videos)),
        collate_fn=_collate,
        pin_memory=pins_memory(device),
    )
    ahead: OneBatchAhead[list[tuple[int, int]]] = OneBatchAhead(encoder)

    def clips_in_flight(video: VideoToEncode) -> list[Clip]:
        if video.index not in in_flight:
            record = upstream_items[video.id]
            in_flight[video.index] = record, clips_of(record)
        return in_flight[video.index][1]

    def finish(video: VideoToEncode, features: np.ndarray | None, error: str | None) -> None:
        # A video that failed before any of its clips came back is not in flight.
        upstream, video_clips = in_flight.pop(video.index, None) or (upstream_items[video.id], [])
        info = {"split": upstream.info.get("split"), "video": upstream.info.get("video")}
        if error is None and features is not None:
            try:
                record = write_features(
                    stage, video.id, video_clips, features, config, info, item_fps[video.id]
                )
            except OSError as e:
                raise (as_resource_error(e, stage.path) or e) from None
        else:
            record = ItemRecord(
                video.id, "failed", error=error, info=info, fingerprint=item_fps[video.id]
            )
        stage.record(record)
        pending.pop(video.index, None)
        if on_video is not None:
            ok = record.status == "ok"
            on_video(VideoEncoded(video.id, ok, len(video_clips) if ok else 0))

    def store(embedded: tuple[list[tuple[int, int]], np.ndarray] | None) -> None:
        if embedded is None:
            return
        keys, features = embedded
        for (video_index, clip_index), row in zip(keys, features, strict=True):
            if video_index not in pending:
                continue  # the video already failed
            got = pending[video_index]
            got[clip_index] = row
            video = by_index[video_index]
            video_clips = clips_in_flight(video)
            if len(got) == len(video_clips):
                finish(video, np.stack([got[c.index] for c in video_clips]), None)

    with torch.inference_mode():
        for keys, batch, errors in loader:
            for video_index, error in errors:
                if isinstance(error, ResourceError):
                    raise error
                if video_index in pending:
                    finish(by_index[video_index], None, error)
            if batch is not None:
                store(ahead.submit(keys, batch))
        store(ahead.collect())
    for index in list(pending):  # never silently missing from the index
        video = by_index[index]
        finish(video, None, f"{video.id} has no clips to encode (its extract record lists none).")


def write_features(
    stage: StageDir,
    video_id: str,
    clips: list[Clip],
    features: np.ndarray,
    config: EncodeConfig,
    info: dict[str, Any],
    item_fp: str,
) -> ItemRecord:
    """Write one video's features (and its clips' times) atomically, or fail it on NaN/inf."""
    from safetensors.numpy import save_file

    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features).all(axis=1)).sum())
        error = f"the encoder produced NaN or infinite features for {bad} of {len(features)} clips of {video_id}."
        return ItemRecord(video_id, "failed", error=error, info=info, fingerprint=item_fp)
    path = stage.item_file(video_id)
    tensors = {
        "features": np.ascontiguousarray(features.astype(SAVE_DTYPES[config.save_dtype])),
        "start_s": np.array([c.start_s for c in clips], dtype=np.float64),
        "end_s": np.array([c.end_s for c in clips], dtype=np.float64),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"id": video_id, "encoder": config.encoder})
    return ItemRecord(
        video_id,
        "ok",
        outputs={"features": stage.relative(path)},
        info={**info, "n_clips": len(clips), "dim": int(features.shape[1])},
        fingerprint=item_fp,
    )


def encode_details(description: dict[str, Any]) -> Details:
    def details(ok: Iterable[ItemRecord]) -> dict[str, Any]:
        clips = sum(int(r.info.get("n_clips", 0)) for r in ok)
        return {"encoder": description["name"], "dim": description["dim"], "clips": clips}

    return details
