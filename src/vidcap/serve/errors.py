"""What the service answers when a request cannot be served: an HTTP status and one sentence."""

from __future__ import annotations

from vidcap.errors import ResourceError, VidcapError
from vidcap.video.errors import DecodeError, DecodeTimeoutError


class RequestError(VidcapError):
    """A request the service refuses, with the HTTP ``status`` to answer and extra ``headers``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def _decode_error(error: BaseException) -> DecodeError | None:
    """The :class:`DecodeError` behind ``error``: itself, or one it was raised from or while
    handling (the pipeline re-raises decode errors as a plain sentence naming the video)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, DecodeError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def status_of(error: VidcapError) -> int:
    """The HTTP status for an error met while serving a request.

    A decoder silent for ``--timeout`` seconds (hung) is 504; a file that is not a video vidcap
    can decode is 415; any other sentence about the input (too short to caption, say) is 422; a
    machine fault (disk full, no memory) is 503: the request may work later.
    """
    if isinstance(error, RequestError):
        return error.status
    decode = _decode_error(error)
    if isinstance(decode, DecodeTimeoutError):
        return 504
    if decode is not None:
        return 415
    if isinstance(error, ResourceError):
        return 503
    return 422
