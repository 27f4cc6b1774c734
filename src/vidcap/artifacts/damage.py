"""Files a user can damage: one sentence for each that is missing or cannot be read, naming it and
what to do (:func:`damaged`, :func:`reading`), for the stage folders' own files and every reader of
them (:mod:`vidcap.artifacts.readers`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from vidcap.errors import VidcapError, as_resource_error

READ_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    UnicodeDecodeError,
    json.JSONDecodeError,
    SafetensorError,
)
"""What reading a file that a user can delete, truncate or overwrite raises: the file system's
errors, text that is not UTF-8 or not JSON, and safetensors' own (a cut or foreign file)."""


def damaged(path: str | Path, remedy: str, problem: BaseException | str) -> VidcapError:
    """The one sentence for a file that is missing or cannot be read: it names the file, says what
    is wrong with it and ends with ``remedy``, what to do next (no final full stop).

    ``problem`` is what reading it raised, or the wrong in words after the path ("is truncated
    (...)"). An ``OSError`` that names a file names it instead of ``path`` (a file of the folder
    ``path`` that a loader looked for).
    """
    if isinstance(problem, OSError) and isinstance(problem.filename, (str, Path)):
        path = problem.filename
    if isinstance(problem, str):
        what = problem
    elif isinstance(problem, FileNotFoundError):
        what = "is missing"
    elif isinstance(problem, OSError) and problem.strerror:
        what = f"cannot be read ({problem.strerror})"
    else:
        what = f"is damaged ({_reason(problem)})"
    return VidcapError(f"{path} {what}; {remedy}.")


def _reason(error: BaseException) -> str:
    """What is wrong, in a few words and no full stop, from what reading a file raised."""
    if isinstance(error, json.JSONDecodeError):  # its message ends where the position went
        msg = error.msg.removesuffix(" at").removesuffix(" starting")
        return f"not valid JSON at line {error.lineno}: {msg[:1].lower()}{msg[1:]}"
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(error, KeyError):
        return f"it has no {error.args[0]!r}" if error.args else "a field is missing"
    lines = str(error).strip().splitlines()
    text = lines[0].split(". ")[0].rstrip(".") if lines else type(error).__name__
    if isinstance(error, SafetensorError):
        text = f"not a complete safetensors file: {text.removeprefix('Error while deserializing header: ')}"
    return text if len(text) <= 160 else text[:157] + "..."


@contextmanager
def reading(path: str | Path, remedy: str, *errors: type[Exception]) -> Iterator[None]:
    """Read ``path`` (a file, or a folder of them) inside: what reading it raises — the
    :data:`READ_ERRORS` and ``errors``, the reader's own (``ValueError`` for ``np.load``) — becomes
    :func:`damaged`'s sentence with ``remedy``. A machine fault (a failing disk) is reported as
    one instead, and anything else (a bug) goes through untouched."""
    try:
        yield
    except (*READ_ERRORS, *errors) as e:
        raise (as_resource_error(e, path) or damaged(path, remedy, e)) from None


def read_json(path: str | Path, remedy: str) -> dict[str, Any]:
    """A JSON object file that a user can damage (a bundle's ``vidcap.json``, a ``config.json``).

    Raises:
        VidcapError: missing, not JSON, or not an object (with ``remedy``).
    """
    with reading(path, remedy):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise damaged(path, remedy, "is damaged (not a JSON object)")
    return data


def check_safetensors(path: str | Path, remedy: str) -> None:
    """Check that ``path`` is a whole safetensors file without loading its tensors: its header is
    read, and safetensors refuses one whose tensors do not cover the file exactly (a cut file).

    Raises:
        VidcapError: missing or damaged (with ``remedy``).
    """
    from safetensors import safe_open

    with reading(path, remedy), safe_open(str(path), framework="numpy"):
        pass


def rerun_stage(stage: str, folder: str | Path) -> str:
    """The remedy for a damaged output of stage folder ``folder``: write it again.

    ``--force``: a damaged file still looks finished to its stage (a deleted one is made again by
    a plain rerun, which checks that each finished item's files are there).
    """
    return f"rerun `vidcap {stage} --force` into {folder} to write it again"
