"""The records of a stage folder's ``index.jsonl`` (and its unmerged parts), and reading them
without holding them.

An extract record carries its video's clip list: about 23 KB on disk and 80 KB in memory for a
6-minute video, 2,400 clips for an hour. Every process reads the whole index when a run ends, and
a downstream stage reads its upstream's, so holding every record (as ``dict[id, ItemRecord]``)
would take about 90 GB for HowTo100M's 1.2 million videos, in each process. :class:`IndexRecords`
holds only where each id's latest line is, and reads a record when it is asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from vidcap.errors import VidcapError


@dataclass
class ItemRecord:
    """One line of ``index.jsonl``: an item's outcome and its output files (relative paths)."""

    id: str
    status: str  # "ok" | "failed"
    error: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    # A failure of the input itself (a file that is not a video): retrying cannot help, so with
    # --allow-failures it does not keep the stage from being up to date. Any other failure (a
    # timeout, a crash, a full disk) is retried by the next run.
    sticky: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "error": self.error,
            "outputs": self.outputs,
            "fingerprint": self.fingerprint,
            **({"sticky": True} if self.sticky else {}),
            **self.info,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ItemRecord:
        known = {"id", "status", "error", "outputs", "fingerprint", "sticky"}
        return cls(
            id=obj["id"],
            status=obj["status"],
            error=obj.get("error"),
            outputs=dict(obj.get("outputs") or {}),
            info={k: v for k, v in obj.items() if k not in known},
            fingerprint=obj.get("fingerprint"),
            sticky=bool(obj.get("sticky", False)),
        )


class IndexChanged(VidcapError):
    """An index file was replaced or removed between finding a record and reading it: another
    process merged the folder's index meanwhile. Reading the index again sees the merged file."""


def parse_line(line: bytes) -> ItemRecord | None:
    """The record of one index line; None for a blank or torn line (a process killed mid-append)."""
    if not line.strip():
        return None
    try:
        record = ItemRecord.from_json(json.loads(line))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return None
    return record if isinstance(record.id, str) and isinstance(record.status, str) else None


def index_lines(path: Path) -> Iterator[tuple[int, ItemRecord]]:
    """``(offset, record)`` for every readable line of an index file, in file order (none when
    the file is missing)."""
    f = _open_index(path, must_exist=False)
    if f is not None:
        with f:
            yield from _lines(f)


def _open_index(path: Path, must_exist: bool) -> IO[bytes] | None:
    """``path`` opened to read; None when it is missing, unless ``must_exist``: a part listed a
    moment ago that is gone was merged by another process meanwhile (:class:`IndexChanged`)."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        if must_exist:
            raise IndexChanged(_changed(path)) from None
        return None


def _lines(f: IO[bytes]) -> Iterator[tuple[int, ItemRecord]]:
    offset = 0
    for line in f:
        record = parse_line(line)
        if record is not None:
            yield offset, record
        offset += len(line)


def _changed(path: Path) -> str:
    return f"{path} changed while it was being read (another process merged {path.parent}'s index); run the command again."


class _Where(NamedTuple):
    file: int  # position in IndexRecords.files
    offset: int
    status: str


_STATUSES = {"ok": "ok", "failed": "failed"}  # one string object each, however many records
_SPARE_FILES = 64  # file descriptors left for everything else while the index is merged


class IndexRecords(Mapping[str, ItemRecord]):
    """The latest record of each id in a folder's index files, read from its file when asked for.

    Holds where each id's latest line is and its status (about 250 bytes an id, whatever the
    record). Iteration yields the ids in the order they were first recorded. Looking an id up
    reads its line; :meth:`records` reads them all, file by file, which is the fast way through
    every record.

    Raises (when reading a record): IndexChanged: a file was replaced or removed since the scan
    (told by its device and inode, and by the id on the line read).
    """

    def __init__(
        self, files: list[Path], identities: list[tuple[int, int] | None], where: dict[str, _Where]
    ) -> None:
        self.files = files
        self._identities = identities
        self._where = where

    @classmethod
    def scan(cls, files: list[Path]) -> IndexRecords:
        """Read where every id's latest line is in ``files`` (later files and lines win). The first
        file may be missing (nothing merged yet); any other is a part that must still be there."""
        where: dict[str, _Where] = {}
        identities: list[tuple[int, int] | None] = []
        for n, path in enumerate(files):
            f = _open_index(path, must_exist=n > 0)
            identities.append(None if f is None else _identity(f))
            if f is None:
                continue
            with f:
                for offset, record in _lines(f):
                    status = _STATUSES.get(record.status, record.status)
                    where[record.id] = _Where(n, offset, status)
        return cls(files, identities, where)

    # -- the mapping ----------------------------------------------------------------------------
    def __getitem__(self, item_id: str) -> ItemRecord:
        where = self._where[item_id]
        with self._open(where.file) as f:
            f.seek(where.offset)
            return self._record(f.readline(), item_id, where.file)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._where

    # -- without reading records ----------------------------------------------------------------
    def status(self, item_id: str) -> str:
        """The status of ``item_id``'s latest record."""
        return self._where[item_id].status

    def counts(self) -> dict[str, int]:
        """How many records have each status."""
        counts: dict[str, int] = {}
        for where in self._where.values():
            counts[where.status] = counts.get(where.status, 0) + 1
        return counts

    def select(self, ids: Iterable[str] | None = None, status: str | None = None) -> IndexRecords:
        """The records of ``ids`` (those recorded; all when None) with ``status`` (any when None)."""
        keys = self._where if ids is None else (i for i in ids if i in self._where)
        where = {
            i: self._where[i] for i in keys if status is None or self._where[i].status == status
        }
        return IndexRecords(self.files, self._identities, where)

    # -- reading them all -----------------------------------------------------------------------
    def records(self) -> Iterator[ItemRecord]:
        """Every record, file by file in the order of its lines (only each id's latest line is
        read)."""
        by_file: dict[int, list[tuple[int, str]]] = {}
        for item_id, where in self._where.items():
            by_file.setdefault(where.file, []).append((where.offset, item_id))
        for file in sorted(by_file):
            with self._open(file) as f:
                for offset, item_id in sorted(by_file.pop(file)):
                    f.seek(offset)
                    yield self._record(f.readline(), item_id, file)

    def write_sorted(self, out: IO[bytes], path: Path) -> IndexRecords:
        """Write each id's latest line, sorted by id, to ``out`` (the merged index, which will
        be ``path``); returns its records as they lie there, so that reading the merged index
        needs no second scan.

        Ids are dealt to processes and ``--shard`` jobs in turn, so in id order the lines come
        from every file by turns: every file stays open (the open-file limit is raised for that
        when it allows; past it, the least recently read file is closed and reopened later).
        """
        written: dict[str, _Where] = {}
        position = out.tell()
        handles: OrderedDict[int, IO[bytes]] = OrderedDict()  # the most recently used last
        with _room_for_open_files(len(self.files)) as room:
            try:
                for item_id in sorted(self._where):
                    where = self._where[item_id]
                    f = handles.get(where.file)
                    if f is None:
                        if len(handles) >= room:
                            handles.popitem(last=False)[1].close()
                        f = handles[where.file] = self._open(where.file)
                    handles.move_to_end(where.file)
                    # _open checked it is the file scanned, so the offset is still this line's.
                    f.seek(where.offset)
                    line = f.readline()
                    line = line if line.endswith(b"\n") else line + b"\n"
                    out.write(line)
                    written[item_id] = _Where(0, position, where.status)
                    position += len(line)
            finally:
                for f in handles.values():
                    f.close()
        out.flush()
        return IndexRecords([path], [_identity(out)], written)

    # -- files ------------------------------------------------------------------------------------
    def _open(self, file: int) -> IO[bytes]:
        path = self.files[file]
        f = _open_index(path, must_exist=True)
        assert f is not None
        if _identity(f) != self._identities[file]:
            f.close()
            raise IndexChanged(_changed(path))
        return f

    def _record(self, line: bytes, item_id: str, file: int) -> ItemRecord:
        record = parse_line(line)
        if record is None or record.id != item_id:
            raise IndexChanged(_changed(self.files[file]))
        return record


@contextlib.contextmanager
def _room_for_open_files(wanted: int) -> Iterator[int]:
    """How many index files may be open at once (at least 1): ``wanted`` when the process's
    open-file limit allows it, raising the soft limit towards the hard one meanwhile if needed
    (and setting it back after, so that processes started later inherit the usual limit)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        yield max(1, min(wanted, 512))
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = soft
    need = wanted + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            raised = target
    try:
        yield (
            wanted
            if raised == resource.RLIM_INFINITY
            else max(1, min(wanted, raised - _SPARE_FILES))
        )
    finally:
        if raised != soft:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _identity(f: IO[bytes]) -> tuple[int, int]:
    """Which file ``f`` is (device, inode): a merge replaces the index under the same name."""
    st = os.fstat(f.fileno())
    return st.st_dev, st.st_ino
