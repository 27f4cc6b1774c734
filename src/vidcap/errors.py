"""The one exception type that reaches users as a sentence instead of a traceback."""

from __future__ import annotations

import errno
import os
import re
import shutil


class VidcapError(Exception):
    """An error caused by the user's input or environment, phrased as a sentence they can act on.

    The CLI prints ``str(error)`` and exits with ``exit_code``; any other exception is a bug and is
    reported as one (its traceback is shown with ``vidcap --debug``).
    """

    exit_code: int = 1


class VidcapWarning(UserWarning):
    """Something the user should know that does not stop the command (``warnings.warn`` it from
    any layer; the CLI prints it as one ``warning:`` line)."""


class CorpusError(VidcapError):
    """A corpus file that cannot be read: names the file, the line and the field."""


class ResourceError(VidcapError):
    """The machine, not the input, stopped the work: a full disk or quota, a read-only or failing
    file system, no memory. A stage stops at once on one (going on cannot help); what finished is
    kept and valid, and rerunning the same command once the cause is gone does the rest."""


_CAUSES = {  # errno: (what happened, what to do about it)
    errno.ENOSPC: ("the disk is full", "free some space"),
    errno.EDQUOT: ("the disk quota is used up", "free some space or raise the quota"),
    errno.EROFS: ("the file system is read-only", "make it writable or use another --out"),
    errno.EIO: ("the disk reported an input/output error", "check the disk"),
}
_RUST_IO_ERROR = re.compile(r"\(os error (\d+)\)")
_NEARLY_FULL = 1 << 20  # bytes free below which a failed write is taken for a full disk
_RERUN = "rerun the same command: what finished is kept and the rest is done."


def as_resource_error(
    error: BaseException, where: object = None, rerun: str = _RERUN
) -> ResourceError | None:
    """The one sentence for ``error`` when the machine caused it (``ENOSPC``, ``EDQUOT``,
    ``EROFS``, ``EIO``, ``MemoryError``), naming the file (or ``where``); None for any other error.
    """
    if isinstance(error, ResourceError):
        return error
    if isinstance(error, MemoryError):
        place = f" while working on {where}" if where is not None else ""
        return ResourceError(
            f"out of memory{place}; free memory (or use smaller batches) and {rerun}"
        )
    if not isinstance(error, OSError):
        # Libraries written in Rust (safetensors, tokenizers) report an I/O error as text only,
        # ending "(os error 28)": read the errno from there.
        found = _RUST_IO_ERROR.search(str(error))
        if found is not None and int(found.group(1)) in _CAUSES:
            number = int(found.group(1))
            error = OSError(number, os.strerror(number))
    if isinstance(error, OSError) and error.errno in _CAUSES:
        cause, remedy = _CAUSES[error.errno]
        place = error.filename or where
        detail = f"{error.strerror}: {place}" if place is not None else error.strerror
        return ResourceError(f"{cause} ({detail}); {remedy} and {rerun}")
    return None


def as_write_fault(
    error: BaseException, folder: str | os.PathLike[str], rerun: str = _RERUN
) -> ResourceError | None:
    """:func:`as_resource_error` for a failed write into ``folder``; also a full disk when the
    error does not say so but ``folder``'s file system has no space left (``torch.save`` reports a
    full disk as ``RuntimeError: … unexpected pos``, without an errno)."""
    fault = as_resource_error(error, folder, rerun)
    if fault is not None:
        return fault
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < _NEARLY_FULL:
        full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
        return as_resource_error(full, rerun=rerun)
    return None


def as_path_error(error: BaseException) -> VidcapError | None:
    """The one sentence for a path given to a command that cannot be used as one, when it
    stopped the whole command: this user may not read or write it (``EACCES``, ``EPERM``: an
    ``--out`` in another user's folder), or a file stands where a folder must be (``--out
    notes.txt/run``). None for any other error. (An input video that cannot be read is that
    video's failure, not this.)"""
    place = getattr(error, "filename", None) or "a path it needs"
    if isinstance(error, PermissionError):
        return VidcapError(
            f"permission denied: this user may not write or read {place}; change its "
            "permissions, or give a path this user can write to."
        )
    if isinstance(error, (NotADirectoryError, FileExistsError)):
        return VidcapError(f"{place}: a file stands where a folder is needed; give another path.")
    return None
