"""The extract stage: videos → clip-aligned frames at a fixed rate and size, one ``.npy`` per video.

Each video is decoded in a killable child process (:class:`vidcap.video.DecodeWorker`) under a time
limit on its silence, so a hanging or crashing decoder fails that video only. ``workers`` threads each drive one
child. Under ``accelerate launch`` / ``torchrun`` every process takes a disjoint share of the videos
and the main process writes the one index and manifest; ``--shard K/N`` jobs fill one folder the
same way without a process group (:class:`~vidcap.stages.base.ItemRun`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from vidcap.artifacts import ItemRecord, StageDir, fingerprint
from vidcap.distributed import Processes, Shard
from vidcap.errors import ResourceError, VidcapError, as_resource_error
from vidcap.stages.base import ItemRun, StageResult, open_stage, with_decode_warnings
from vidcap.stages.inputs import ResolvedInputs, VideoInput
from vidcap.video import DecodeWorker
from vidcap.video.backends import BuiltinBackend
from vidcap.video.errors import (
    TRANSIENT_DECODE_ERRORS,
    DecodeError,
    DecoderCrashedError,
)
from vidcap.video.worker import VIDEO_TIMEOUT_S

STAGE = "extract"
ExtractBackend = Literal["auto", BuiltinBackend]
"""``vidcap extract --backend``: auto (decord, then PyAV, torchcodec, OpenCV) or one of them."""
BACKENDS: tuple[str, ...] = get_args(ExtractBackend)


# The frame sizes --size takes: below 8 px nothing is left to see; above 4K's short side a frame
# only gets larger (no clip encoder reads more; --size 5000 wrote 13 GB for a 7-second video).
MIN_SIZE, MAX_SIZE = 8, 2160


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of ``vidcap extract`` (VideoBERT's defaults: 20 fps, 30-frame clips of 1.5 s)."""

    fps: float = 20.0
    size: int = 224  # short side after resizing, in pixels
    crop: bool = False  # centre-crop to a size-by-size square
    clip_frames: int = 30
    backend: ExtractBackend = "auto"
    timeout: float = VIDEO_TIMEOUT_S  # seconds a decoder may go without frames before it is killed
    workers: int = 1  # videos decoded at once by this process

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise VidcapError(f"--fps must be > 0, got {self.fps}.")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise VidcapError(f"--size must be {MIN_SIZE} to {MAX_SIZE} pixels, got {self.size}.")
        if self.clip_frames < 1:
            raise VidcapError(f"--clip-frames must be >= 1, got {self.clip_frames}.")
        if self.backend not in BACKENDS:
            raise VidcapError(
                f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}."
            )
        if not self.timeout > 0:
            raise VidcapError(f"--timeout must be > 0 seconds, got {self.timeout}.")
        if self.workers < 1:
            raise VidcapError(f"--workers must be >= 1, got {self.workers}.")

    def output_settings(self) -> dict[str, Any]:
        """The settings that change the output (not timeout or workers): what fingerprints hash."""
        return {k: v for k, v in asdict(self).items() if k not in ("timeout", "workers")}


@dataclass(frozen=True)
class VideoDone:
    """Progress event: one video finished (ok or failed) in this process."""

    id: str
    ok: bool
    n_frames: int


def video_fingerprint(settings: dict[str, Any], video: VideoInput) -> str:
    """Changes when the settings or the file (path, size, modification time) change."""
    try:
        stat = video.path.stat()
        file_state: Any = [stat.st_size, stat.st_mtime_ns]
    except OSError:
        file_state = "missing"
    return fingerprint(STAGE, settings, str(video.path.resolve()), file_state)


def run_extract(
    inputs: ResolvedInputs,
    out_dir: str | Path,
    config: ExtractConfig,
    processes: Processes | None = None,
    force: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_video: Callable[[VideoDone], None] | None = None,
    allow_failures: bool = False,
    shard: Shard | None = None,
) -> StageResult:
    """Extract frames for every input video into ``out_dir`` (see ``docs/extract.md``).

    A rerun retries every failed video; with ``allow_failures`` a finished run whose failures are
    all sticky (files that are not videos) is up to date. A resource fault (full disk, no memory)
    stops the run at once with a :class:`~vidcap.errors.ResourceError`.

    ``on_start(to_do, skipped)`` is called once this process knows its share; ``on_video`` after
    each video. Returns the whole stage's result (on every process; complete on the main one).
    ``shard``: this job's share of the videos (``--shard K/N``, see :class:`ItemRun`); its result
    counts that share.
    """
    processes = processes or Processes()
    stage = open_stage(out_dir, STAGE, processes, shard)
    settings = config.output_settings()
    videos = sorted(inputs.videos, key=lambda v: v.id)
    item_fps = {v.id: video_fingerprint(settings, v) for v in videos}
    run = ItemRun(
        stage,
        videos,
        item_fps,
        fingerprint=fingerprint(STAGE, settings, sorted(item_fps.items()), *inputs.corpus_state()),
        details=with_decode_warnings(_details),
        config=asdict(config),
        upstream={"corpora": [str(c) for c in inputs.corpora], "videos": len(videos)},
        extra={"corpus": str(inputs.corpora[0]) if len(inputs.corpora) == 1 else None},
    )
    return run.run(
        lambda todo: _extract_videos(stage, todo, config, item_fps, on_video),
        processes,
        force=force,
        allow_failures=allow_failures,
        on_start=on_start,
    )


def _extract_videos(
    stage: StageDir,
    videos: list[VideoInput],
    config: ExtractConfig,
    item_fps: dict[str, str],
    on_video: Callable[[VideoDone], None] | None,
) -> None:
    """Decode ``videos`` with ``config.workers`` threads, each driving its own decode process."""
    lock = threading.Lock()  # index appends and progress callbacks from several threads
    local = threading.local()
    workers: list[DecodeWorker] = []

    def worker() -> DecodeWorker:
        if not hasattr(local, "worker"):
            local.worker = DecodeWorker()
            with lock:
                workers.append(local.worker)
        return local.worker

    def one(video: VideoInput) -> None:
        record = _extract_one(stage, video, config, item_fps[video.id], worker())
        with lock:
            stage.record(record)
            if on_video is not None:
                on_video(VideoDone(video.id, record.status == "ok", record.info.get("n_frames", 0)))

    try:
        with ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="extract") as pool:
            # A few videos queued per thread, not the whole list: a future per video of a
            # million-video shard would hold gigabytes before the first one is done.
            running: set[Future[None]] = set()
            try:
                for video in videos:
                    if len(running) >= 2 * config.workers:
                        done, running = wait(running, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()
                    running.add(pool.submit(one, video))
                for future in running:
                    future.result()
            except BaseException:
                for future in running:  # a resource fault stops the run: start no other video
                    future.cancel()
                raise
    finally:
        for w in workers:
            w.close()


def _extract_one(
    stage: StageDir,
    video: VideoInput,
    config: ExtractConfig,
    item_fp: str,
    worker: DecodeWorker,
) -> ItemRecord:
    """Decode one video; any error becomes a failed record with its sentence, never an exception."""
    out_path = stage.item_file(video.id)
    info: dict[str, Any] = {"video": str(video.path), "split": video.split}
    try:
        meta = worker.extract(
            video.path,
            out_path,
            timeout=config.timeout,
            backend=config.backend,
            fps=config.fps,
            size=config.size,
            crop=config.crop,
            clip_frames=config.clip_frames,
        )
    except DecodeError as e:
        if isinstance(e, DecoderCrashedError) and "SIGKILL" in (worker.last_exit_reason or ""):
            raise ResourceError(
                f"the decoder process for {video.path} was killed (SIGKILL), most likely by the out-of-memory killer; lower --workers or --size and rerun the same command: what finished is kept and the rest is done."
            ) from None
        sticky = not isinstance(e, TRANSIENT_DECODE_ERRORS)
        return ItemRecord(
            video.id, "failed", error=str(e), info=info, fingerprint=item_fp, sticky=sticky
        )
    except Exception as e:
        fault = as_resource_error(e, out_path)
        if fault is not None:
            raise fault from None
        # a bug in a decoder binding must not stop the other videos
        error = f"unexpected {type(e).__name__} while decoding {video.path}: {e}"
        return ItemRecord(video.id, "failed", error=error, info=info, fingerprint=item_fp)
    return ItemRecord(
        video.id,
        "ok",
        outputs={"frames": stage.relative(out_path)},
        info={**info, **meta},
        fingerprint=item_fp,
    )


def _details(ok: Iterable[ItemRecord]) -> dict[str, Any]:
    frames = clips = 0
    seconds = 0.0
    for r in ok:
        frames += int(r.info.get("n_frames", 0))
        clips += len(r.info.get("clips", []))
        seconds += float(r.info.get("duration_s", 0))
    return {"frames": frames, "clips": clips, "seconds of video": round(seconds, 1)}
