"""Decoding errors: each one is a single sentence that names the file and says what is wrong."""

from __future__ import annotations

from vidcap.errors import VidcapError


class DecodeError(VidcapError):
    """A video that could not be decoded (missing, empty, not a video, truncated, corrupt...).

    ``partial`` is True when frames had already been produced before the failure: a caller that
    wrote them somewhere must discard them (``extract_frames`` does, and restarts with the next
    backend).
    """

    def __init__(self, message: str, *, partial: bool = False) -> None:
        super().__init__(message)
        self.partial = partial

    def __reduce__(self):  # keep ``partial`` when the error crosses a process boundary
        return (_rebuild, (type(self), str(self), self.partial))


def _rebuild(cls: type[DecodeError], message: str, partial: bool) -> DecodeError:
    return cls(message, partial=partial)


class NoVideoStreamError(DecodeError):
    """The file is a valid media file but holds no video stream (an audio file, subtitles...)."""


class BackendUnavailableError(DecodeError):
    """The backend that was asked for is not installed (or unknown)."""


class DecodeTimeoutError(DecodeError):
    """The decoder sent nothing for its time limit (it hung) and the child process running it was
    killed."""


class DecoderCrashedError(DecodeError):
    """The child process running the decoder died (a segfault or abort in a native library)."""


class AfterStallOrCrashError(DecodeError):
    """The backends tried after one that stalled or crashed failed too: as curable by a rerun
    as that first failure (a stall is often a busy machine's)."""


class UnreadableFileError(DecodeError):
    """The file is there but this user may not read it (its permissions, or a folder's above
    it): a ``chmod`` cures it without changing the file's size or time."""


TRANSIENT_DECODE_ERRORS = (
    DecodeTimeoutError,
    DecoderCrashedError,
    BackendUnavailableError,
    UnreadableFileError,
    AfterStallOrCrashError,
)
"""Decode failures a rerun may cure (a busy machine, a decoder installed later, a file made
readable): never sticky."""
