"""Decode in a child process that can be killed: a time limit on a stalled decoder, crash isolation.

Native decoders can hang (decord deadlocks on some broken frame counts) or crash the process (a
segfault on a corrupt stream). Running each video's decode in a child process turns both into an
ordinary :class:`DecodeError` for that video, and the next video gets a fresh child.

:class:`DecodeWorker` keeps one child alive between videos (starting a Python process and importing
numpy, OpenCV and the decoders costs ~0.5 s, more than decoding a short clip) and replaces it after
a timeout, a crash, or ``max_tasks`` videos. :func:`run_with_timeout` and
:func:`extract_frames_with_timeout` are one-shot conveniences.

Children are started with ``spawn`` by default: forking a parent that holds threads (PyTorch,
decoders) or a CUDA context is unsafe. Under ``spawn`` the function and its arguments must be
picklable (module-level functions), and a script that uses this must guard its entry point with
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import math
import multiprocessing as mp
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Generator, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from vidcap.errors import VidcapError
from vidcap.video import child
from vidcap.video.decode import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_FPS,
    DEFAULT_SIZE,
    BackendChoice,
    FrameChunk,
    FrameStream,
    decode_with_fallback,
    resolve_backends,
)
from vidcap.video.errors import (
    AfterStallOrCrashError,
    DecodeError,
    DecoderCrashedError,
    DecodeTimeoutError,
)
from vidcap.video.extract import extract_frames

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 600.0
VIDEO_TIMEOUT_S = 120.0
"""How long a decoder of the commands that decode user videos may go without delivering anything
before it is stopped (``--timeout``'s default)."""


def _child_main(conn: Connection, quiet: bool, start_method: str) -> None:
    """The child's loop: run each ``(fn, args, kwargs)`` received, send back its result or error."""
    child.connect(conn)
    if start_method == "fork":
        # What the parent held is never garbage-collected here: freeing an inherited object that
        # holds native decoder state (a PyAV codec context whose FFmpeg threads stayed in the
        # parent) blocked the child forever in pthread_cond_destroy.
        gc.freeze()
    # A child is one core's worth of work (`--workers` children share the machine with the
    # model in the parent): torch's default of one thread per core in every child would
    # oversubscribe the cores, and its OpenMP threads spin while they wait. OpenCV's pool
    # likewise: beside the decoder's threads it only added CPU time (the descriptor's step,
    # 23 ms of CPU per clip on 2 threads against 17.5 ms on 1, in the same wall time).
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["OPENCV_FOR_THREADS_NUM"] = "1"  # read when cv2 is imported
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if "cv2" in sys.modules and start_method != "fork":
        # A forked child has OpenCV's pool without its threads: setting its size there hangs
        # (it keeps the parent's setting instead).
        sys.modules["cv2"].setNumThreads(1)
    if quiet:
        # Native decoders log to file descriptor 2 directly (decord cannot be silenced otherwise);
        # errors come back to the parent through the pipe, as sentences.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        faulthandler.disable()  # a crash is reported to the parent; no stack dump on the terminal
    # Ctrl-C reaches the whole process group; the parent decides what happens to the child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args, kwargs = message
        try:
            reply: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except BaseException as e:
            reply = ("error", _portable(e))
        try:
            child.send(reply)
        except Exception as e:  # an unpicklable result
            child.send(("error", _portable(e)))


_POLL_SLICE_S = 86_400.0  # Connection.poll refuses waits past about 24.8 days: wait in slices


def _wait_for(conn: Connection, timeout: float | None) -> bool:
    """Whether a message came within ``timeout`` seconds (None or infinity: no limit)."""
    if timeout is None or math.isinf(timeout):
        return conn.poll(None)
    left = timeout
    while left > _POLL_SLICE_S:
        if conn.poll(_POLL_SLICE_S):
            return True
        left -= _POLL_SLICE_S
    return conn.poll(left)


def _portable(error: BaseException) -> tuple[BaseException, str]:
    """The exception (or a stand-in that pickles) and its traceback text."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        error = RuntimeError(f"{type(error).__name__}: {error}")
    return error, text


class DecodeWorker:
    """A reusable child process that runs one call at a time, killed when it overruns or dies.

    Use as a context manager (or call :meth:`close`). Not thread-safe: one worker per thread.
    ``max_tasks`` calls after it started, the child is replaced (native decoders leak a little).
    ``quiet`` sends the child's stderr (FFmpeg and decord log lines) to /dev/null.
    """

    def __init__(
        self, start_method: str = "spawn", max_tasks: int | None = 200, quiet: bool = True
    ) -> None:
        self._ctx = mp.get_context(start_method)
        self._max_tasks = max_tasks
        self._quiet = quiet
        self._proc: Any = None
        self._conn: Connection | None = None
        self._tasks = 0
        self.last_exit_reason = ""  # how the last crashed child died, e.g. "killed by SIGSEGV"

    # -- process management ----------------------------------------------------------------------
    def _ensure_child(self) -> Connection:
        recycle = self._max_tasks is not None and self._tasks >= self._max_tasks
        if self._proc is None or not self._proc.is_alive() or recycle:
            self.close()
            parent, child = self._ctx.Pipe()
            self._proc = self._ctx.Process(
                target=_child_main,
                args=(child, self._quiet, self._ctx.get_start_method()),
                daemon=True,
                name="vidcap-decode",
            )
            self._proc.start()
            child.close()
            self._conn = parent
            self._tasks = 0
        assert self._conn is not None
        return self._conn

    def _kill(self, on_event: Callable[[str, str], None] | None = None) -> int | None:
        """Kill the child now; returns its exit code.

        Events it sent but the parent had not read yet (the path of a temporary file, say) are
        still delivered to ``on_event``.
        """
        code = None
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
            code = self._proc.exitcode
            if code is not None:
                self._proc.close()
            self._proc = None
        if self._conn is not None:
            with contextlib.suppress(EOFError, OSError, pickle.UnpicklingError):
                while on_event is not None and self._conn.poll(0):
                    kind, payload = self._conn.recv()
                    if kind == "event":
                        on_event(*payload)
            self._conn.close()
            self._conn = None
        return code

    def interrupt(self) -> None:
        """Kill the child now; safe from another thread (the one that stops a run). The call
        running in the worker's own thread then ends with :class:`DecoderCrashedError`, and that
        thread reaps the child."""
        proc = self._proc
        if proc is not None:
            # ValueError, OSError: closed or gone meanwhile; AttributeError: still starting
            # (multiprocessing has no process to kill yet), so the call is not running either.
            with contextlib.suppress(ValueError, OSError, AttributeError):
                proc.kill()

    def close(self) -> None:
        """Stop the child (politely, then by force)."""
        if self._proc is not None and self._conn is not None:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(None)
            self._proc.join(2)
        self._kill()

    def __enter__(self) -> DecodeWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls ---------------------------------------------------------------------------------
    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout: float | None,
        what: str | None = None,
        on_event: Callable[[str, Any], None] | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` in the child and return its result.

        Args:
            timeout: seconds the child may go without sending anything (an event or its answer)
                before it is killed (None: no limit). Every event starts the count again, so a
                long video that keeps sending progress is never cut short, and a hung decoder
                costs this much after its last sign of life.
            what: how to name the work in error sentences (default: the function's name).
            on_event: receives ``(kind, value)`` for each event ``fn`` sends
                (:func:`~vidcap.video.child.send_event`, :func:`~vidcap.video.child.sign_of_life`).

        Raises:
            DecodeTimeoutError: ``fn`` sent nothing for ``timeout`` seconds; the child was killed.
            DecoderCrashedError: the child died (a native crash) before answering.
            Whatever ``fn`` raised (a ``VidcapError`` as it is; any other exception with the
            child's traceback attached as a note).
        """
        exchange = self._exchange(fn, args, kwargs, timeout, what, on_event)
        try:
            while True:
                try:
                    kind, value = next(exchange)
                except StopIteration as done:
                    return done.value
                if on_event is not None:
                    on_event(kind, value)
        finally:
            exchange.close()  # an exception in on_event (Ctrl-C) kills the child

    def _exchange(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        what: str | None,
        on_late_event: Callable[[str, Any], None] | None = None,
    ) -> Generator[tuple[str, Any], None, T]:
        """Run ``fn`` in the child; yield its events as they come, return its result.

        The time limit is on the child's silence: it counts only the time spent waiting for the
        child since its last message, not the time the caller spends between two events
        (encoding the frames it was sent, say). Closing the generator early kills the child (it
        may be blocked sending). ``on_late_event`` gets the events still in the pipe when the
        child is killed.
        """
        what = what or f"{getattr(fn, '__name__', 'the call')}()"
        conn = self._ensure_child()
        self._tasks += 1
        child_error: BaseException | None = None
        try:
            conn.send((fn, args, kwargs))
            while True:
                if not _wait_for(conn, timeout):
                    self._kill(on_late_event)
                    raise DecodeTimeoutError(
                        f"{what} stalled: the decoder sent nothing for {timeout:g} s (the time "
                        "limit) and was stopped."
                    )
                kind, payload = conn.recv()
                if kind == "event":
                    yield payload
                    continue
                if kind == "ok":
                    return payload
                error, child_traceback = payload
                if not isinstance(error, VidcapError) and hasattr(error, "add_note"):
                    error.add_note(f"In the decode worker process:\n{child_traceback}")
                child_error = error
                raise error
        except (EOFError, BrokenPipeError, ConnectionResetError):
            code = self._kill(on_late_event)
            self.last_exit_reason = _exit_reason(code)
            first = code == 1 and self._tasks == 1  # a new child that died at once
            hint = _unguarded_script_hint(self._ctx.get_start_method()) if first else ""
            raise DecoderCrashedError(
                f"the decoder process crashed ({self.last_exit_reason}) during {what}.{hint}"
            ) from None
        except BaseException as e:
            # The child's own error leaves it waiting for the next call. Anything else (Ctrl-C, a
            # caller that stopped reading, an error here) may leave it mid-call, and its late
            # reply would answer the next call: never leave such a child running.
            if e is not child_error:
                self._kill()
            raise

    def extract(
        self,
        path: str | Path,
        out_path: str | Path,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        backend: BackendChoice = "auto",
        **options: Any,
    ) -> dict[str, Any]:
        """:func:`~vidcap.video.extract.extract_frames` in the child, stopped if it hangs.

        ``timeout`` is the longest the decoder may go without giving a frame (see :meth:`call`
        and :mod:`vidcap.video.child`). If the child crashes or stalls while one backend runs, the
        next backends are tried in a fresh child, each with the whole time limit. A crashed or
        killed child's temporary output file is removed.

        Raises:
            DecodeError: as :func:`extract_frames` does, plus :class:`DecodeTimeoutError` and
                :class:`DecoderCrashedError`.
        """
        candidates = resolve_backends(backend)
        crashed: dict[str, str] = {}
        while True:
            events: list[tuple[str, str]] = []
            try:
                meta = self.call(
                    _extract_in_child,
                    path,
                    out_path,
                    backend=candidates,
                    timeout=timeout,
                    what=f"decoding {path}",
                    on_event=lambda kind, value, events=events: (
                        events.append((kind, value)) if kind in ("attempt", "temp") else None
                    ),
                    **options,
                )
            except (DecoderCrashedError, DecodeTimeoutError) as e:
                _remove_temp_files(events)
                running = [v for k, v in events if k == "attempt"]
                candidates = _backends_after(e, running, candidates, crashed, path, self)
                continue
            except DecodeError as e:
                _remove_temp_files(events)
                raise _after_fallbacks(e, crashed) from None
            meta["failed_backends"] = {**crashed, **meta["failed_backends"]}
            return meta

    def stream(
        self,
        path: str | Path,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        backend: BackendChoice = "auto",
        **options: Any,
    ) -> StreamedVideo:
        """Decode ``path`` in the child and hand its frames over chunk by chunk.

        ``options`` are those of :func:`~vidcap.video.decode.open_frames` (``fps``, ``size``,
        ``crop``, ``chunk_frames``, ``keep``). With ``keep`` (the frames of each clip an encoder
        reads), the frames it leaves out are never converted nor sent: their rows are zeros.

        Backend fallback is extract's: a backend that fails, crashes or stalls is replaced by the
        next one (in a fresh child after a crash or a stall). When that happens after chunks were
        handed out, decoding
        starts over and the next chunk has ``start == 0`` again: the consumer drops what it had.
        ``timeout`` is the longest the decoder may go without giving a frame (the time the
        consumer spends on each chunk does not count); the child cannot run ahead more than one
        chunk (the pipe blocks it), so memory stays flat.

        Raises:
            DecodeError: as :func:`open_frames`, plus :class:`DecodeTimeoutError` and
                :class:`DecoderCrashedError`.
        """
        return self.stream_items(path, _frames_in_child, timeout, backend, _unpack, **options)

    def stream_items(
        self,
        path: str | Path,
        child: Callable[..., dict[str, Any]],
        timeout: float | None = DEFAULT_TIMEOUT_S,
        backend: BackendChoice = "auto",
        unpack: Callable[[Any], Any] | None = None,
        **options: Any,
    ) -> StreamedVideo:
        """Like :meth:`stream`, for any module-level ``child(path, backend=[names], **options)``
        that decodes with :func:`decode_with_restarts` and sends its items with
        ``send_event("item", payload)`` (:mod:`vidcap.video.child`): they are yielded here (through ``unpack``), and the
        dict it returns becomes ``meta``. A restart (another backend) yields the first item again.
        """
        return StreamedVideo(self, Path(path), child, timeout, backend, unpack, options)


class StreamedVideo:
    """What a child sends while it decodes one video (see :meth:`DecodeWorker.stream`).

    Iterate it once; afterwards ``meta`` holds what the child returned (for frames: ``backend``,
    ``n_frames``, ``height``, ``width``, ``source``, ``warnings``, ``failed_backends``).
    """

    def __init__(
        self,
        worker: DecodeWorker,
        path: Path,
        child: Callable[..., dict[str, Any]],
        timeout: float | None,
        backend: BackendChoice,
        unpack: Callable[[Any], Any] | None,
        options: dict[str, Any],
    ) -> None:
        self.worker = worker
        self.path = path
        self.child = child
        self.timeout = timeout
        self.candidates = resolve_backends(backend)
        self.unpack = unpack
        self.options = options
        self.meta: dict[str, Any] = {}

    def __iter__(self) -> Iterator[Any]:
        candidates = self.candidates
        crashed: dict[str, str] = {}
        while True:
            attempts: list[str] = []
            exchange = self.worker._exchange(
                self.child,
                (self.path,),
                {"backend": candidates, **self.options},
                self.timeout,
                f"decoding {self.path}",
            )
            try:
                while True:
                    try:
                        kind, value = next(exchange)
                    except StopIteration as done:
                        self.meta = {**done.value}
                        failed = self.meta.get("failed_backends", {})
                        self.meta["failed_backends"] = {**crashed, **failed}
                        return
                    if kind == "attempt":
                        attempts.append(value)
                    elif kind == "item":
                        yield value if self.unpack is None else self.unpack(value)
            except (DecoderCrashedError, DecodeTimeoutError) as e:
                candidates = _backends_after(
                    e, attempts, candidates, crashed, self.path, self.worker
                )
            except DecodeError as e:
                raise _after_fallbacks(e, crashed) from None
            finally:
                exchange.close()


def _after_fallbacks(error: DecodeError, stalled_or_crashed: dict[str, str]) -> DecodeError:
    """The video's failure when the backends tried after one that stalled or crashed failed
    too: still one a rerun may cure (a stall is often a busy machine's), as the first failure
    was, and it says what happened to the first ones."""
    if not stalled_or_crashed:
        return error
    before = "; ".join(f"{name}: {reason}" for name, reason in stalled_or_crashed.items())
    return AfterStallOrCrashError(f"{str(error).rstrip('.')}. Before it, {before}")


def _backends_after(
    error: DecoderCrashedError | DecodeTimeoutError,
    attempts: list[str],
    candidates: list[str],
    failed: dict[str, str],
    path: Path | str,
    worker: DecodeWorker,
) -> list[str]:
    """The backends left to try after the child crashed or stalled running ``attempts[-1]``
    (recorded in ``failed``): a decoder that crashes on a file, or stalls on it (decord on a
    DVD's MPEG-2 .VOB: 98 s of silence where PyAV takes 2 s), is not the file's last chance.

    Raises:
        the error itself when no backend is left (or none had started).
    """
    if not attempts:
        raise error
    name = attempts[-1]
    rest = candidates[candidates.index(name) + 1 :]
    failed[name] = str(error)
    if rest:
        return rest
    if isinstance(error, DecoderCrashedError):
        raise DecoderCrashedError(
            f"the {name} decoder crashed while reading {path} ({worker.last_exit_reason})."
        ) from None
    raise error


def decode_with_restarts(
    path: Path,
    backend: list[str],
    consume: Callable[[FrameStream], None],
    fps: float = DEFAULT_FPS,
    size: int | None = DEFAULT_SIZE,
    crop: bool = False,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    keep: np.ndarray | None = None,
) -> dict[str, Any]:
    """In a worker child: :func:`~vidcap.video.decode.decode_with_fallback`, each backend's
    attempt reported to the parent (its parent must start over too when ``consume`` does).
    Returns the decoding metadata (as :meth:`StreamedVideo.meta`)."""
    return decode_with_fallback(
        path,
        consume,
        fps,
        size,
        crop,
        backend,
        chunk_frames,
        on_attempt=lambda name: child.send_event("attempt", name),
        keep=keep,
    )


def _frames_in_child(path: Path, backend: list[str], **options: Any) -> dict[str, Any]:
    keep = options.get("keep")

    def consume(stream: FrameStream) -> None:
        for chunk in stream:
            child.send_event("item", _pack(chunk, keep))

    return decode_with_restarts(path, backend, consume, **options)


def _pack(chunk: FrameChunk, keep: np.ndarray | None) -> tuple[Any, ...]:
    """A chunk for the pipe: only the rows ``keep`` wants (the others are zeros anyway), and its
    last row, which may be the video's last frame (always converted: it pads a partial clip)."""
    if keep is None:
        return chunk.start, chunk.fps, chunk.source_times, None, chunk.frames
    rows = np.asarray(keep, dtype=bool)[(chunk.start + np.arange(len(chunk))) % len(keep)]
    rows[-1] = True
    return chunk.start, chunk.fps, chunk.source_times, rows, chunk.frames[rows]


def _unpack(packed: tuple[Any, ...]) -> FrameChunk:
    start, fps, source_times, rows, frames = packed
    if rows is not None:
        full = np.zeros((len(rows), *frames.shape[1:]), dtype=np.uint8)
        full[rows] = frames
        frames = full
    return FrameChunk(frames, start, fps, source_times)


def _extract_in_child(path: str | Path, out_path: str | Path, **options: Any) -> dict[str, Any]:
    return extract_frames(
        path,
        out_path,
        on_attempt=lambda name: child.send_event("attempt", name),
        on_temp=lambda tmp: child.send_event("temp", str(tmp)),
        **options,
    )


def _remove_temp_files(events: list[tuple[str, str]]) -> None:
    """Delete the temporary outputs of a child that was killed before it could clean up."""
    for kind, value in events:
        if kind == "temp":
            Path(value).unlink(missing_ok=True)


def _unguarded_script_hint(start_method: str) -> str:
    """What to do when a new child exited at once with code 1 and the program is a Python script
    without ``if __name__ == "__main__":``: a ``spawn`` child starts by importing the script,
    which ran its captioning again and failed there (Python refuses a process started while
    another starts). "" for anything else."""
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if start_method == "fork" or not script:
        return ""
    try:
        text = Path(script).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    if "__main__" in text:
        return ""
    return (
        f' {script} has no `if __name__ == "__main__":`: put its code under one (each decoder '
        "process imports the script as it starts, as with any Python multiprocessing)."
    )


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "it did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def run_with_timeout(
    fn: Callable[..., T],
    *args: Any,
    timeout: float | None,
    what: str | None = None,
    start_method: str = "spawn",
    **kwargs: Any,
) -> T:
    """Run ``fn(*args, **kwargs)`` in a fresh child process, killed after ``timeout`` seconds.

    ``fn`` must be picklable (a module-level function). See :meth:`DecodeWorker.call` for errors.
    """
    with DecodeWorker(start_method=start_method) as worker:
        return worker.call(fn, *args, timeout=timeout, what=what, **kwargs)


def extract_frames_with_timeout(
    path: str | Path,
    out_path: str | Path,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    **options: Any,
) -> dict[str, Any]:
    """:func:`~vidcap.video.extract.extract_frames` in a fresh child process (see
    :meth:`DecodeWorker.extract`); for many videos keep one :class:`DecodeWorker` instead."""
    with DecodeWorker() as worker:
        return worker.extract(path, out_path, timeout=timeout, **options)
