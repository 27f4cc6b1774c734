"""The stage artifact contract (see ``docs/artifacts.md``), implemented once for every stage.

A stage folder holds ``manifest.json`` (written last, atomically), ``index.jsonl`` (one line per item,
appended as items finish, so a killed run resumes where it stopped) and the item files, each written
atomically under a name derived from a sanitized id.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from vidcap.artifacts.damage import damaged, read_json, rerun_stage
from vidcap.artifacts.index import IndexRecords, ItemRecord, index_lines
from vidcap.errors import VidcapError, VidcapWarning

if TYPE_CHECKING:
    from vidcap.distributed import Shard

MANIFEST = "manifest.json"
INDEX = "index.jsonl"
LOCK = ".vidcap.lock"  # held (flock) by the run writing the folder
_INDEX_PART = "index.part{rank}.jsonl"
# A --shard K/N job's own index (see vidcap.artifacts.shards); merged like the parts above.
_SHARD_INDEX = "index.shard{index}of{count}.jsonl"
_INDEX_PARTS = ("index.part*.jsonl", "index.shard*.jsonl")
SHARDS = ".vidcap-shards"  # the state of each --shard job while a job array fills the folder
# Each item stage's one file per item: (its folder in the stage folder, its suffix).
ITEM_FILES = {
    "extract": ("frames", ".npy"),
    "encode": ("features", ".safetensors"),
    "quantize": ("words", ".json"),
}
_TMP_PREFIX = ".tmp-"


# --------------------------------------------------------------------------------------------------
# Atomic writes


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    For writers that want a file name (OpenCV, safetensors, PIL). The temporary name starts with
    ``.tmp-`` so it is never mistaken for an output; on any exception it is removed. The rename is
    atomic on POSIX, so a reader (or a process killed mid-write) never sees a half-written file.
    The name also records this host and process (``.tmp-<host>_<pid>_<random>``), so a writer
    without a stage folder can tell a temporary file abandoned by a killed process from one that a
    live run is writing (:func:`remove_abandoned_temp_files`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(), suffix=path.suffix, dir=path.parent)
    except PermissionError as e:  # named after the folder, not a temporary name nobody knows
        raise PermissionError(e.errno, e.strerror, str(path.parent)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        # mkstemp makes the file readable by its owner only; the output gets the mode a plain
        # open() would give it (a team sharing a stage folder reads it as the umask allows). Set
        # once written (an existing read-only file's 0444 would stop the writing), and left
        # when the file system refuses it (FAT and exFAT drives have no such modes).
        with contextlib.suppress(OSError):
            os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_file_mode(path: Path) -> int:
    """The permission bits ``open(path, "w")`` would leave: an existing file's own, else
    ``0o666`` less the process's umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(path.stat().st_mode)
    return 0o666 & ~_umask()


def _umask() -> int:
    """This process's umask, read without changing it where Linux shows it (setting it to read
    it back would, for that instant, give other threads' new files no umask at all)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def remove_outputs(folder: str | Path, names: tuple[str, ...]) -> None:
    """Delete ``folder/name`` for each name, file or folder, when it exists."""
    for name in names:
        target = Path(folder) / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def _temp_prefix() -> str:
    return f"{_TMP_PREFIX}{_host()}_{os.getpid()}_"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_abandoned_temp_files(folder: str | Path, recursive: bool = False) -> int:
    """Delete the temporary files in ``folder`` (below it too when ``recursive``) that a process of
    this host left when it was killed mid-write; returns how many were removed.

    For outputs written while other runs may write beside them (``vidcap caption --out/--preview``,
    a ``--shard`` job of a stage), where no lock says that nobody else writes: a file is removed
    only when its name says it was made on this host by a process that no longer runs, so a
    concurrent run's file (or another machine's, on a shared disk) is never touched.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for tmp in (folder.rglob if recursive else folder.glob)(f"{_TMP_PREFIX}*"):
        host, _, rest = tmp.name[len(_TMP_PREFIX) :].partition("_")
        pid = rest.partition("_")[0]
        if host != _host() or not pid.isdigit() or _process_alive(int(pid)) or not tmp.is_file():
            continue
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def remove_stale_temp_files(folder: str | Path) -> int:
    """Delete the temporary files and folders (a half-saved checkpoint) left by a killed writer;
    returns how many were removed. Call it only while no run writes the folder (under its lock)."""
    removed = 0
    for tmp in sorted(Path(folder).rglob(f"{_TMP_PREFIX}*"), reverse=True):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink(missing_ok=True)
        else:
            continue  # inside a temporary folder removed already
        removed += 1
    return removed


# --------------------------------------------------------------------------------------------------
# Ids and fingerprints

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID_LEN = 80


def sanitize_id(raw: str) -> str:
    """Turn any item id into a safe file-name stem that stays inside its folder.

    Keeps letters, digits, ``.``, ``_`` and ``-``; anything else (``/``, ``..``, spaces, non-ASCII)
    becomes ``_``. When the id had to change, a short hash of the raw id is appended so two ids that
    differ only in unsafe characters still map to different files.
    """
    cleaned = _UNSAFE.sub("_", raw).strip("._") or "item"
    if cleaned == raw and len(raw) <= _MAX_ID_LEN:
        return raw
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:10]
    return f"{cleaned[:_MAX_ID_LEN]}-{digest}"


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (configs, upstream fingerprints, file stats)."""
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's content, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# The stage folder


# What flock() fails with on a file system that has no locks (rather than one that is held).
_NO_FILE_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}


class _ItemState(NamedTuple):
    """An item's record without its info: what deciding to skip or redo it needs."""

    status: str
    fingerprint: str | None
    sticky: bool
    outputs: tuple[str, ...]


def _lock_file(path: Path) -> int | None:
    """An open, exclusively locked ``path`` (created if needed), or None when another process
    holds it. A kill releases the lock with the process; the file may stay, and is reused."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its holder unlinked just before we locked it: ours
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


class StageDir:
    """A stage's output folder: its manifest, its index and the paths of its item files.

    Under several processes (``rank``/``world_size``), each appends to its own index part; the main
    process merges the parts into ``index.jsonl`` in :meth:`finalize`. A ``--shard K/N`` job
    (``shard``) appends to its own ``index.shardKofN.jsonl``, merged the same way by the last
    shard to finish (:mod:`vidcap.artifacts.shards`).
    """

    def __init__(
        self,
        path: str | Path,
        stage: str,
        rank: int = 0,
        world_size: int = 1,
        shard: Shard | None = None,
    ) -> None:
        self.path = Path(path)
        self.stage = stage
        self.rank = rank
        self.world_size = world_size
        self.shard = shard

    # -- reading ------------------------------------------------------------------------------
    def read_manifest(self, remedy: str | None = None) -> dict[str, Any] | None:
        """The finished run's manifest, or None when the stage never finished here.

        ``remedy``: what a damaged one's sentence tells to do (default: rerun this stage with
        --force), for a reader that does not know which stage wrote the folder.
        """
        path = self.path / MANIFEST
        if not path.is_file():
            return None
        remedy = remedy or rerun_stage(self.stage, self.path)
        manifest = read_json(path, remedy)
        if "stage" not in manifest:
            raise damaged(path, remedy, "is damaged (it has no 'stage')")
        return manifest

    def is_complete(self, stage_fingerprint: str, allow_failures: bool = False) -> bool:
        """True when a finished run with the same fingerprint is already here and nothing is left
        to retry: every item ok, or (``allow_failures``) every failure sticky (the input itself is
        bad). A failure that a rerun may cure (a timeout, a full disk) is always retried."""
        manifest = self.read_manifest()
        if manifest is None or manifest.get("fingerprint") != stage_fingerprint:
            return False
        states = self._item_states().values()
        if any(s.status == "ok" and not self._outputs_exist(s.outputs) for s in states):
            return False  # a deleted output: the rerun makes it again
        failed = [s for s in states if s.status == "failed"]
        return not failed or (allow_failures and all(s.sticky for s in failed))

    def _outputs_exist(self, outputs: tuple[str, ...]) -> bool:
        """Whether every output file of an item (paths relative to the folder) is still there.
        Plain strings, not Path objects: checked for every item of a large folder when a run
        starts, and pathlib interns each name it parses (a table that grows with the folder)."""
        folder = os.fspath(self.path)
        return all(os.path.exists(os.path.join(folder, relative)) for relative in outputs)

    def _refuse_foreign_folder(self) -> None:
        """Refuse a folder this stage must not write: a file, or another stage's output (the
        stage's own input, given as --out by mistake, would be destroyed before it is read)."""
        if self.path.exists() and not self.path.is_dir():
            raise VidcapError(f"{self.path} is a file, not a folder: give --out a folder.")
        try:
            manifest = self.read_manifest()
        except VidcapError:  # damaged: whose it was cannot be told, and --force rewrites it
            return
        if manifest is not None and manifest.get("stage") != self.stage:
            raise VidcapError(
                f"{self.path} holds the output of `vidcap {manifest.get('stage')}`, which "
                f"`vidcap {self.stage}` would destroy: give it another --out."
            )

    @contextlib.contextmanager
    def locked(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the folder's lock while a run writes it (the main process takes it): a second run
        into the same folder refuses with a sentence instead of interleaving its writes.

        ``wait_s``: how long to wait for a holder to let go first (``--shard`` jobs take the lock
        only for their short bookkeeping, so they wait for each other instead of refusing).
        """
        if self.rank != 0:
            yield
            return
        self._refuse_foreign_folder()
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            with self._holding_lock(wait_s):
                yield
        finally:
            if created:  # a run stopped before it wrote anything leaves no empty --out behind
                with contextlib.suppress(OSError):
                    self.path.rmdir()

    @contextlib.contextmanager
    def _holding_lock(self, wait_s: float) -> Iterator[None]:
        path = self.path / LOCK
        deadline = time.monotonic() + wait_s
        try:
            fd = _lock_file(path)
        except OSError as e:
            if e.errno not in _NO_FILE_LOCKS:
                raise
            # NFSv3 without its lock service, Lustre without -o flock: refusing would leave the
            # folder unusable there; what the lock prevents is a second run at the same time.
            path.unlink(missing_ok=True)
            if self.shard is not None:  # the jobs of an array finish the folder through the lock
                raise VidcapError(
                    f"{self.path} is on a file system that cannot lock files ({e.strerror}), and "
                    "--shard jobs need locks to tell which of them finishes the folder; give an "
                    "--out on a file system with locks (NFS with its lock service, Lustre "
                    "mounted with -o flock), or run without --shard (torchrun or one process)."
                ) from None
            warnings.warn(
                f"{self.path} is on a file system that cannot lock files ({e.strerror}), so "
                "vidcap cannot stop a second run from writing into it at the same time: make "
                "sure only one does.",
                VidcapWarning,
                stacklevel=3,
            )
            yield
            return
        while fd is None and time.monotonic() < deadline:
            time.sleep(0.2)
            fd = _lock_file(path)
        if fd is None:
            raise VidcapError(
                f"{self.path} is being written by another vidcap run (it holds {path}); wait for that run to finish, or give another --out."
            )
        try:
            yield
        finally:
            # The lock file goes with the run (a finished folder holds only its outputs); it is
            # unlinked while still locked, so a run waiting on it sees it gone and takes a new one.
            path.unlink(missing_ok=True)
            os.close(fd)

    def read_index(self) -> IndexRecords:
        """All items recorded so far (merged index and parts); the latest line for an id wins.
        Each record is read from its file when asked for (:class:`IndexRecords`)."""
        return IndexRecords.scan(self._index_files())

    def _item_states(self) -> dict[str, _ItemState]:
        """What resuming needs of every recorded item (the latest line for an id wins), without
        each record's info: every process and ``--shard`` job reads the whole folder's index when
        it starts, and a million full records would take gigabytes (3.3 KB each)."""
        states: dict[str, _ItemState] = {}
        for path in self._index_files():
            for _, r in index_lines(path):
                states[r.id] = _ItemState(
                    r.status, r.fingerprint, r.sticky, tuple(r.outputs.values())
                )
        return states

    def done_ids_matching(self, item_fingerprints: Mapping[str, str]) -> set[str]:
        """Ids already finished ``ok`` with the fingerprint given for each, their outputs still
        there: a rerun skips them."""
        return {
            item_id
            for item_id, s in self._item_states().items()
            if s.status == "ok"
            and s.fingerprint == item_fingerprints.get(item_id)
            and self._outputs_exist(s.outputs)
        }

    def _index_files(self) -> list[Path]:
        """The merged index, then the parts not merged yet."""
        return [self.path / INDEX, *self._index_parts()]

    def _index_parts(self) -> list[Path]:
        """The index parts of several processes or ``--shard`` jobs, not merged yet."""
        return sorted(p for pattern in _INDEX_PARTS for p in self.path.glob(pattern))

    # -- writing ------------------------------------------------------------------------------
    def prepare(self, force: bool = False) -> None:
        """Create the folder; with ``force`` forget earlier results (their files are overwritten),
        the state of ``--shard`` jobs included."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            remove_stale_temp_files(self.path)
            if force:
                for path in [self.path / MANIFEST, self.path / INDEX, *self._index_parts()]:
                    path.unlink(missing_ok=True)
                shutil.rmtree(self.path / SHARDS, ignore_errors=True)
            else:
                # A new run invalidates the old manifest until this one finishes.
                (self.path / MANIFEST).unlink(missing_ok=True)
                # Parts a killed run left come before this run's lines: folded into index.jsonl
                # now, a stale line of theirs (a failure) cannot outrank this run's outcome.
                if self._index_parts():
                    self.merge_index()

    def item_path(self, item_id: str, suffix: str, subdir: str = "") -> Path:
        """Where an item's file goes: ``[subdir/]<sanitized id><suffix>``, always inside the folder."""
        folder = self.path / subdir if subdir else self.path
        path = folder / f"{sanitize_id(item_id)}{suffix}"
        if self.path.resolve() not in path.resolve().parents:
            raise VidcapError(f"item id {item_id!r} would write outside {self.path}.")
        return path

    def item_file(self, item_id: str) -> Path:
        """Where this stage writes an item's file (:data:`ITEM_FILES`: its frames, features or
        visual words)."""
        subdir, suffix = ITEM_FILES[self.stage]
        return self.item_path(item_id, suffix, subdir)

    def relative(self, path: Path) -> str:
        """A path inside the stage folder, as stored in the index."""
        return path.relative_to(self.path).as_posix()

    def index_name(self) -> str:
        """The index file this process appends to."""
        if self.shard is not None:
            return _SHARD_INDEX.format(index=self.shard.index, count=self.shard.count)
        return INDEX if self.world_size == 1 else _INDEX_PART.format(rank=self.rank)

    def record(self, item: ItemRecord) -> None:
        """Append one item's line to this process's index; flushed so a kill loses at most it.

        A failed item's file from an earlier run (other settings, or a video since damaged) is
        removed first: the index says failed, but a reader of the folder itself
        (``features/*.safetensors``) would take the stale file for this run's result."""
        if item.status == "failed" and self.stage in ITEM_FILES:
            self.item_file(item.id).unlink(missing_ok=True)
        name = self.index_name()
        line = (json.dumps(item.to_json(), ensure_ascii=False, sort_keys=True) + "\n").encode()
        with open(self.path / name, "a+b") as f:
            # A process killed mid-append leaves a torn line without its newline: start a fresh
            # line so the torn one stays a single unreadable line instead of swallowing this one.
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = b"\n" + line
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def merge_index(self) -> IndexRecords:
        """Fold the index parts into one ``index.jsonl`` sorted by id (the latest line of an id
        wins) and delete the parts; returns the merged index's records (:meth:`read_index`
        without reading it again). The records are copied a line at a time, never all held."""
        records = self.read_index()
        with atomic_path(self.path / INDEX) as tmp, open(tmp, "wb") as out:
            merged = records.write_sorted(out, self.path / INDEX)
        # Called when no process writes the folder any more (after every process or job has
        # recorded its share): the parts read are all there is.
        for part in records.files[1:]:
            part.unlink(missing_ok=True)
        return merged

    def finalize(
        self,
        config: Mapping[str, Any],
        stage_fingerprint: str,
        upstream: Mapping[str, Any] | None,
        wall_time_s: float,
        skipped: int = 0,
        extra: Mapping[str, Any] | None = None,
    ) -> IndexRecords:
        """Merge index parts into one sorted ``index.jsonl``, then write the manifest last;
        returns the merged index's records (for the run's result, without a second scan).

        ``skipped`` counts items found already done by this run. Call on the main process only,
        after every process (every ``--shard`` job) has finished recording.
        """
        from vidcap._version import __version__

        merged = self.merge_index()
        counts = {"ok": 0, "failed": 0, **merged.counts(), "skipped": skipped}
        # The shards' state goes with their parts, before the manifest says the folder is done.
        shutil.rmtree(self.path / SHARDS, ignore_errors=True)
        manifest = {
            "stage": self.stage,
            # Where it was written: a path recorded below is found again relative to it once
            # the run's folders have moved together (recorded_path).
            "folder": str(self.path.resolve()),
            "vidcap_version": __version__,
            "config": dict(config),
            "upstream": dict(upstream) if upstream else None,
            "fingerprint": stage_fingerprint,
            "counts": counts,
            "wall_time_s": round(wall_time_s, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(extra or {}),
        }
        atomic_write_json(self.path / MANIFEST, manifest)
        return merged


def recorded_path(
    folder: str | Path, manifest: Mapping[str, Any], recorded: str | None
) -> Path | None:
    """Where a path that ``folder``'s manifest recorded (its upstream folder, its corpus) is now:
    as recorded while it is there; else, when the folders were moved together since (a run tree
    renamed, or copied to another disk or machine), at the same place relative to ``folder`` as
    it was to where ``folder`` was written (the manifest's ``folder``). None when nothing was
    recorded; the recorded path when neither is there (for the sentence that names it)."""
    if recorded is None:
        return None
    path = Path(recorded)
    written = manifest.get("folder")
    if path.exists() or not written:
        return path
    moved = Path(os.path.normpath(Path(folder).resolve() / os.path.relpath(path, written)))
    return moved if moved.exists() else path


def upstream_folder(folder: str | Path, manifest: Mapping[str, Any]) -> Path | None:
    """The upstream stage folder ``folder`` was made from (:func:`recorded_path`); None for a
    stage made from videos or a corpus."""
    return recorded_path(folder, manifest, (manifest.get("upstream") or {}).get("path"))


def recorded_corpus(folder: str | Path, manifest: Mapping[str, Any]) -> Path | None:
    """The corpus.jsonl ``folder``'s videos came from (:func:`recorded_path`); None without one."""
    return recorded_path(folder, manifest, manifest.get("corpus"))


def as_recorded(path: Path | None) -> str | None:
    """A path as a manifest records it (None stays None)."""
    return None if path is None else str(path)


def read_upstream(path: str | Path, expected_stage: str) -> tuple[dict[str, Any], IndexRecords]:
    """Read a finished upstream stage folder: its manifest and its ``ok`` items (each read from
    the index when asked for).

    Raises:
        VidcapError: the folder has no manifest (the stage never finished) or is another stage's.
    """
    stage = StageDir(path, expected_stage)
    if not stage.path.is_dir():  # a typo, not a run that never finished
        raise VidcapError(f"{path}: no such folder.")
    manifest = stage.read_manifest()
    if manifest is None:
        raise VidcapError(
            f"{path} has no {MANIFEST}: run `vidcap {expected_stage}` into it first "
            "(or let it finish)."
        )
    if manifest.get("stage") != expected_stage:
        raise VidcapError(
            f"{path} holds the output of `vidcap {manifest.get('stage')}`, "
            f"but a `vidcap {expected_stage}` folder is needed here."
        )
    ok = stage.read_index().select(status="ok")
    recorded = (manifest.get("counts") or {}).get("ok")
    if recorded is not None and recorded != len(ok):
        # A line cut or overwritten in the middle of the index is skipped as it is read (as a
        # torn last line must be): its video would drop out of every later stage unseen.
        raise damaged(
            stage.path / INDEX,
            rerun_stage(expected_stage, path),
            f"is damaged (it gives {len(ok)} finished items where the manifest counts {recorded})",
        )
    return manifest, ok
