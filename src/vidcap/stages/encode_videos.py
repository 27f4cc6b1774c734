"""``vidcap encode`` straight from videos: decode, cut into clips and encode in one streaming pass.

No frames are stored: each video is decoded in a killable child process
(:class:`~vidcap.video.DecodeWorker`: time limit, crash isolation, backend fallback, exactly as
``vidcap extract``), which also cuts the clips (:func:`~vidcap.video.clip_stream.stream_clips`)
and runs the encoder's CPU step on them (:meth:`~vidcap.encoders.ClipEncoder.decoder_step`; or
the parent runs :meth:`~vidcap.encoders.ClipEncoder.prepare`), converting only the frames the
encoder reads (:meth:`~vidcap.encoders.ClipEncoder.frame_indices`). ``workers`` threads each
drive one child and hand the prepared clips over a bounded queue to the main thread, which runs
the model on batches that span videos, so decoding and encoding overlap. The output is an encode
folder like the one made from an extract folder (same features files, index and manifest, plus
the extract settings in the manifest), and the features are the same.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidcap.artifacts import ItemRecord, StageDir, fingerprint
from vidcap.devices import resolve_device, stack_for
from vidcap.distributed import Processes, Shard
from vidcap.encoders import ClipEncoder, EncoderOptions, build_encoder
from vidcap.encoders.ahead import OneBatchAhead
from vidcap.errors import ResourceError, as_resource_error
from vidcap.stages.base import ItemRun, StageResult, open_stage, with_decode_warnings
from vidcap.stages.encode import (
    EXTRACT_KEYS,
    STAGE,
    EncodeConfig,
    VideoEncoded,
    encode_details,
    write_features,
)
from vidcap.stages.extract import ExtractConfig, video_fingerprint
from vidcap.stages.inputs import ResolvedInputs, VideoInput
from vidcap.video import DecodeWorker
from vidcap.video.clip_stream import stream_clips
from vidcap.video.clips import Clip, clip_frame_mask
from vidcap.video.errors import TRANSIENT_DECODE_ERRORS, DecodeError, DecoderCrashedError


def run_encode_videos(
    inputs: ResolvedInputs,
    out_dir: str | Path,
    config: EncodeConfig,
    extract: ExtractConfig,
    processes: Processes | None = None,
    force: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_video: Callable[[VideoEncoded], None] | None = None,
    allow_failures: bool = False,
    shard: Shard | None = None,
    on_clips: Callable[[int], None] | None = None,
) -> StageResult:
    """Encode every clip of every input video into ``out_dir`` without storing frames.

    Resumes and shards as the stages do (:class:`~vidcap.stages.base.ItemRun`): finished videos
    (same file, same settings) are skipped, failed ones retried; under ``accelerate launch`` /
    ``torchrun`` every process takes every ``world_size``-th remaining video and the main process
    writes the one index and manifest; ``--shard K/N`` jobs fill the folder without a process group.
    ``extract.workers`` videos are decoded at once by each process. ``on_video`` is called as
    each video is recorded, ``on_clips(n)`` as each batch's ``n`` clips are encoded (progress
    within long videos).
    """
    processes = processes or Processes()
    started = time.perf_counter()
    stage = open_stage(out_dir, STAGE, processes, shard)
    device = str(resolve_device(config.device, processes.world_size, processes.rank))
    encoder = build_encoder(
        config.encoder, EncoderOptions(device=device, dtype=config.dtype, weights=config.weights)
    )
    description = encoder.describe()
    extract_settings = extract.output_settings()
    settings = {
        **config.output_settings(),
        "encoder_description": description,
        "extract": extract_settings,
    }
    videos = sorted(inputs.videos, key=lambda v: v.id)
    item_fps = {
        v.id: fingerprint(STAGE, settings, video_fingerprint(extract_settings, v)) for v in videos
    }
    run = ItemRun(
        stage,
        videos,
        item_fps,
        fingerprint=fingerprint(STAGE, settings, sorted(item_fps.items()), *inputs.corpus_state()),
        details=with_decode_warnings(encode_details(description)),
        config=asdict(config),
        upstream={"corpora": [str(c) for c in inputs.corpora], "videos": len(videos)},
        extra={
            "encoder": description,
            "corpus": str(inputs.corpora[0]) if len(inputs.corpora) == 1 else None,
            "extract": {k: extract_settings[k] for k in EXTRACT_KEYS},
            "decode": {"timeout": extract.timeout, "workers": extract.workers},
        },
        started=started,
    )
    return run.run(
        lambda todo: _Streams(
            stage, encoder, torch.device(device), config, extract, item_fps, on_video, on_clips
        ).run(todo),
        processes,
        force=force,
        allow_failures=allow_failures,
        on_start=on_start,
    )


@dataclass(eq=False)  # compared and hashed by identity
class _Progress:
    """One video being encoded: its features so far and, once decoded, its clips and metadata."""

    video: VideoInput
    index: int
    generation: int = 0  # bumped when decoding starts over with another backend
    began: bool = False  # its first clip came (another first clip: decoding started over)
    recorded: bool = False  # in the index, ok or failed
    features: dict[int, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] | None = None  # set when decoding finished


_DONE = object()  # a decode thread has no more videos


class _Streams:
    """Decode threads (each with its child) feeding prepared clips to the model in this thread."""

    def __init__(
        self,
        stage: StageDir,
        encoder: ClipEncoder,
        device: torch.device,
        config: EncodeConfig,
        extract: ExtractConfig,
        item_fps: dict[str, str],
        on_video: Callable[[VideoEncoded], None] | None,
        on_clips: Callable[[int], None] | None = None,
    ) -> None:
        self.stage = stage
        self.encoder = encoder
        self.device = device
        # The model runs a batch ahead of reading features back (a GPU need not wait for us).
        self.ahead: OneBatchAhead[list[tuple[_Progress, int, int]]] = OneBatchAhead(encoder)
        self.config = config
        self.extract = extract
        self.item_fps = item_fps
        self.on_video = on_video
        self.on_clips = on_clips
        self.read = encoder.frame_indices(extract.clip_frames)
        self.step = encoder.decoder_step()  # None: prepare() runs here
        self.keep = clip_frame_mask(self.read, extract.clip_frames)
        # Bounded: decoders wait for the model rather than fill memory with prepared clips.
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=4 * config.batch_size)
        self.stop = threading.Event()
        self.workers: list[DecodeWorker] = []  # the decode threads' workers, to stop them
        self.lock = threading.Lock()

    # -- the decode threads ---------------------------------------------------------------------
    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _decode_all(self, videos: queue.SimpleQueue[_Progress]) -> None:
        worker = DecodeWorker()
        with self.lock:
            self.workers.append(worker)
        try:
            while not self.stop.is_set():
                try:
                    progress = videos.get_nowait()
                except queue.Empty:
                    break
                self._decode_one(worker, progress)
        except _Stopped:
            pass
        except BaseException as e:  # a bug here must reach the main thread, not vanish
            self._put_quietly(("error", e))
        finally:
            worker.close()
            self._put_quietly(_DONE)

    def _prepare(self, frames: np.ndarray) -> np.ndarray:
        """The encoder's CPU step, here, on the frames a child sent (the ones it reads, put back
        in their places in the clip: the others are never looked at)."""
        clip = frames
        if self.read is not None:
            clip = np.zeros((self.extract.clip_frames, *frames.shape[1:]), dtype=frames.dtype)
            clip[self.read] = frames
        return self.encoder.prepare(clip).numpy()

    def _put_quietly(self, item: Any) -> None:
        with contextlib.suppress(_Stopped):
            self._put(item)

    def _decode_one(self, worker: DecodeWorker, progress: _Progress) -> None:
        x = self.extract
        stream = worker.stream_items(
            progress.video.path,
            stream_clips,
            timeout=x.timeout,
            backend=x.backend,
            step=self.step,
            clip_frames=x.clip_frames,
            read=self.read,
            fps=x.fps,
            size=x.size,
            crop=x.crop,
            keep=self.keep,
        )
        chunks = iter(stream)
        try:
            for clip_index, array in chunks:
                if self.step is None:
                    array = self._prepare(array)
                self._put(("clip", progress, clip_index, array))
        except DecodeError as e:
            if isinstance(e, DecoderCrashedError) and "SIGKILL" in (worker.last_exit_reason or ""):
                error: Any = ResourceError(
                    f"the decoder process for {progress.video.path} was killed (SIGKILL), most likely by the out-of-memory killer; lower --workers or --size and rerun the same command: what finished is kept and the rest is done."
                )
                self._put(("error", error))
                return
            self._put(("failed", progress, str(e), not isinstance(e, TRANSIENT_DECODE_ERRORS)))
            return
        except _Stopped:
            raise
        except Exception as e:
            fault = as_resource_error(e, progress.video.path)
            if fault is not None:
                self._put(("error", fault))
                return
            message = f"unexpected {type(e).__name__} while decoding {progress.video.path}: {e}"
            self._put(("failed", progress, message, False))
            return
        finally:
            chunks.close()  # kills the child if we stopped early
        self._put(("decoded", progress, stream.meta))

    # -- the model, in this thread --------------------------------------------------------------
    def run(self, videos: list[VideoInput]) -> None:
        """Encode ``videos``; returns when every one is recorded (ok or failed)."""
        if not videos:
            return
        todo: queue.SimpleQueue[_Progress] = queue.SimpleQueue()
        progresses = [_Progress(video, n) for n, video in enumerate(videos)]
        for progress in progresses:
            todo.put(progress)
        threads = [
            threading.Thread(target=self._decode_all, args=(todo,), daemon=True, name="decode")
            for _ in range(min(self.extract.workers, len(videos)))
        ]
        for thread in threads:
            thread.start()
        running = len(threads)
        batch: list[tuple[_Progress, int, int, np.ndarray]] = []
        try:
            with torch.inference_mode():
                while running:
                    item = self.queue.get()
                    if item is _DONE:
                        running -= 1
                    else:
                        self._take(item, batch)
                    # A full batch runs now; a partial one when no clip is waiting (the decoders
                    # are the bottleneck then, and a video may be waiting for its last clips),
                    # and then its features are read back rather than wait for the next batch.
                    if len(batch) >= self.config.batch_size:
                        self._embed(batch)
                    if self.queue.empty():
                        if batch:
                            self._embed(batch)
                        self._store(self.ahead.collect())
                if batch:
                    self._embed(batch)
                self._store(self.ahead.collect())
            for progress in progresses:
                if not progress.recorded:  # never silently missing from the index
                    self._fail(progress, self._unfinished(progress), False)
        finally:
            # On an error or Ctrl-C: stop the threads, and their decoders now (a thread waiting on
            # a slow video would not notice), so Ctrl-C is immediate and no child outlives us.
            self.stop.set()
            with self.lock:
                for worker in self.workers:
                    worker.interrupt()
            for thread in threads:
                thread.join(timeout=10)

    def _take(
        self, item: tuple[Any, ...], batch: list[tuple[_Progress, int, int, np.ndarray]]
    ) -> None:
        kind = item[0]
        if kind == "error":
            raise item[1]
        if kind == "clip":
            _, progress, clip_index, array = item
            if clip_index == 0:
                if progress.began:
                    progress.generation += 1  # decoding started over: forget what came before
                    progress.features.clear()
                progress.began = True
            batch.append((progress, progress.generation, clip_index, array))
        elif kind == "failed":
            _, progress, error, sticky = item
            self._fail(progress, error, sticky)
        elif kind == "decoded":
            _, progress, meta = item
            progress.meta = meta
            self._finish_if_complete(progress)

    def _embed(self, batch: list[tuple[_Progress, int, int, np.ndarray]]) -> None:
        """Queue ``batch`` on the model (and empty it); store the batch queued before it."""
        tensors = stack_for(self.device, [torch.from_numpy(array) for *_, array in batch])
        keys = [(progress, generation, clip_index) for progress, generation, clip_index, _ in batch]
        batch.clear()
        self._store(self.ahead.submit(keys, tensors))

    def _store(self, embedded: tuple[list[tuple[_Progress, int, int]], np.ndarray] | None) -> None:
        """Keep a batch's features (those of a decoding since started over are dropped)."""
        if embedded is None:
            return
        keys, features = embedded
        touched = []
        for (progress, generation, clip_index), row in zip(keys, features, strict=True):
            if generation == progress.generation and not progress.recorded:
                progress.features[clip_index] = row
                touched.append(progress)
        if self.on_clips is not None and touched:
            self.on_clips(len(touched))
        for progress in dict.fromkeys(touched):
            self._finish_if_complete(progress)

    @staticmethod
    def _unfinished(progress: _Progress) -> str:
        path = progress.video.path
        if progress.meta is None:
            return f"decoding {path} never finished (its decoder sent no end); rerun to retry it."
        return (
            f"encoding {path} ended with {len(progress.features)} of {len(progress.meta['clips'])} "
            "clips encoded (its decoder sent fewer clips than it counted); rerun to retry it."
        )

    def _finish_if_complete(self, progress: _Progress) -> None:
        meta = progress.meta
        if progress.recorded or meta is None or len(progress.features) < len(meta["clips"]):
            return
        video = progress.video
        info = self._info(video)
        clips = [Clip(**c) for c in meta["clips"]]
        if not clips:
            self._fail(progress, f"{video.path} gave no frames.", False)
            return
        features = np.stack([progress.features[c.index] for c in clips])
        decoded = {k: meta[k] for k in ("backend", "n_frames", "duration_s", "height", "width")}
        info = {
            **info,
            **decoded,
            "source": meta["source"],
            "warnings": meta["warnings"],
            # As extract's: the backends that failed before the one that read it, and why.
            "failed_backends": meta.get("failed_backends", {}),
        }
        try:
            record = write_features(
                self.stage, video.id, clips, features, self.config, info, self.item_fps[video.id]
            )
        except OSError as e:
            raise (as_resource_error(e, self.stage.path) or e) from None
        self._record(progress, record, len(clips))

    def _fail(self, progress: _Progress, error: str, sticky: bool) -> None:
        video = progress.video
        record = ItemRecord(
            video.id,
            "failed",
            error=error,
            info=self._info(video),
            fingerprint=self.item_fps[video.id],
            sticky=sticky,
        )
        self._record(progress, record, 0)

    def _info(self, video: VideoInput) -> dict[str, Any]:
        return {"split": video.split, "video": str(video.path)}

    def _record(self, progress: _Progress, record: ItemRecord, n_clips: int) -> None:
        progress.recorded = True
        self.stage.record(record)
        # What a recorded video held is dropped now, not at the end of the run: a process
        # encoding thousands of videos would otherwise keep every feature it wrote.
        progress.features, progress.meta = {}, None
        if self.on_video is not None:
            self.on_video(VideoEncoded(record.id, record.status == "ok", n_clips))


class _Stopped(Exception):
    """The main thread stopped the run (an error, Ctrl-C): a decode thread ends quietly."""
