"""Request bodies: a multipart form streamed to a private folder, and server paths kept inside
``--allow-paths``.

The form is parsed as it arrives (python-multipart's streaming parser), so an upload over the
limit is refused as soon as its bytes pass the limit, not after the whole file was received, and
the video goes straight to a file in a folder only the server's user can read (mode 0700). The
client's file name is never used as a path: the file is saved as ``upload<suffix>``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header

from vidcap.output.formats import megabytes
from vidcap.serve.errors import RequestError

MAX_FIELD_BYTES = 64 * 1024  # a text field (a question, a transcript, an option)
FILE_FIELD = "video"
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


@dataclass
class Form:
    """A parsed request: its text fields (a name may repeat) and the uploaded video, if any."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    video: Path | None = None
    filename: str | None = None
    video_bytes: int = 0

    def get(self, name: str) -> str | None:
        """The field's value (the last one when repeated), or None."""
        values = self.fields.get(name)
        return values[-1] if values else None


ROOT_PREFIX = "vidcap-serve-"


def make_root() -> Path:
    """The server's private folder for uploads (mode 0700, in the system's temporary folder),
    named with the server's process id; folders left by servers of this machine that are no longer
    running (killed before they could clean up) are removed first."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{ROOT_PREFIX}*-*"):
        pid = old.name[len(ROOT_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and old.is_dir() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    # mkdtemp makes the folder readable by this user only.
    return Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def check_filename(name: str) -> str:
    """The client's file name when it is a plain name (shown in answers), else a 422."""
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise RequestError(
            422, f"the file name {name!r} has a path in it; send a plain file name like video.mp4."
        )
    return name


class _FormReader:
    """python-multipart callbacks that fill a :class:`Form` (one file, small text fields)."""

    def __init__(self, folder: Path, limit: int, form: Form) -> None:
        self.folder, self.limit, self.form = folder, limit, form
        self.headers: dict[str, str] = {}
        self.header_field = b""
        self.header_value = b""
        self.name: str | None = None
        self.buffer = bytearray()
        self.file: IO[bytes] | None = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self._add("header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("header_value", d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def _add(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def part_begin(self) -> None:
        self.headers, self.name, self.buffer = {}, None, bytearray()

    def header_end(self) -> None:
        key = self.header_field.decode("latin-1").lower()
        self.headers[key] = self.header_value.decode("utf-8", "replace")
        self.header_field = self.header_value = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        name = options.get(b"name")
        if name is None:
            raise RequestError(422, "a form part has no name; send fields like -F video=@file.mp4.")
        self.name = name.decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            return
        if self.name != FILE_FIELD:
            raise RequestError(
                422,
                f"the video goes in the field '{FILE_FIELD}', not {self.name!r} (-F video=@file.mp4).",
            )
        if self.form.video is not None:
            raise RequestError(422, "send one video per request.")
        self.form.filename = check_filename(filename.decode("utf-8", "replace"))
        suffix = Path(self.form.filename).suffix
        path = self.folder / f"upload{suffix if _SUFFIX.fullmatch(suffix) else ''}"
        self.file = path.open("xb")
        self.form.video = path

    def part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.file is not None:
            self.form.video_bytes += len(chunk)
            if self.form.video_bytes > self.limit:
                raise too_large(self.limit)
            self.file.write(chunk)
            return
        self.buffer += chunk
        if len(self.buffer) > MAX_FIELD_BYTES:
            raise RequestError(
                413, f"the field {self.name!r} is over {MAX_FIELD_BYTES // 1024} KiB."
            )

    def part_end(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        elif self.name is not None:
            value = bytes(self.buffer).decode("utf-8", "replace")
            self.form.fields.setdefault(self.name, []).append(value)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def too_large(limit: int) -> RequestError:
    """The 413 answer for an upload over ``limit`` bytes."""
    return RequestError(413, f"the upload is over the server's limit of {megabytes(limit)}.")


async def read_form(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    folder: Path,
    limit: int,
) -> Form:
    """Parse a ``multipart/form-data`` body as it streams in, the video into ``folder``.

    Args:
        content_type: the request's Content-Type header.
        content_length: its Content-Length header, if any: a body announced over the limit is
            refused before a byte of it is read.
        body: the body's chunks as they arrive.
        folder: the request's private folder (the caller removes it).
        limit: the most bytes the video may have.

    Raises:
        RequestError: 413 over the limit, 422 a body that is not a well-formed form.
    """
    mime, options = parse_options_header(content_type or "")
    if mime == b"application/x-www-form-urlencoded":  # fields only (a path): curl -d path=...
        return await _read_urlencoded(body)
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise RequestError(
            422, "send the video as multipart/form-data, e.g. curl -F video=@file.mp4 URL."
        )
    # The form's other fields and boundaries get a little room above the video's limit.
    if content_length and content_length.isdigit() and int(content_length) > limit + 2**20:
        raise too_large(limit)
    form = Form()
    reader = _FormReader(folder, limit, form)
    parser = MultipartParser(boundary, reader.callbacks())
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except RequestError:
        raise
    except ValueError as error:  # python-multipart's own parse errors
        raise RequestError(422, f"the form data is malformed ({error}).") from None
    finally:
        reader.close()
    return form


async def _read_urlencoded(body: AsyncIterator[bytes]) -> Form:
    data = bytearray()
    async for chunk in body:
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise RequestError(
                413, f"a form without a file is limited to {MAX_FIELD_BYTES // 1024} KiB."
            )
    form = Form()
    for name, value in parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True):
        form.fields.setdefault(name, []).append(value)
    return form


def allowed_path(raw: str, allow: Path | None) -> Path:
    """A video path on the server, accepted only inside ``allow`` (``--allow-paths``).

    Relative paths are taken from ``allow``; ``..`` is refused outright, and symlinks are resolved
    before the check, so a link inside ``allow`` cannot lead outside it.

    Raises:
        RequestError: 403 without ``--allow-paths`` or outside it, 404 no such file.
    """
    if allow is None:
        raise RequestError(
            403,
            "this server does not read paths on the server; upload the video instead "
            "(or start it with --allow-paths DIR).",
        )
    path = Path(raw)
    if ".." in path.parts:
        raise RequestError(
            403, f"the path {raw!r} contains '..'; give a path inside the allowed folder."
        )
    root = allow.resolve()
    resolved = (root / path).resolve()  # an absolute path replaces root
    if not resolved.is_relative_to(root):
        raise RequestError(403, f"the path {raw!r} is outside the folder this server may read.")
    if not resolved.is_file():
        raise RequestError(404, f"there is no file {raw!r} in the folder this server may read.")
    return resolved
