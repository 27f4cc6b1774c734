"""The one exception type that reaches users as a sentence instead of a traceback."""

from __future__ import annotations


class VidcapError(Exception):
    """An error caused by the user's input or environment, phrased as a sentence they can act on.

    The CLI prints ``str(error)`` and exits with ``exit_code``; any other exception is a bug and is
    reported as one (its traceback is shown with ``vidcap --debug``).
    """

    exit_code: int = 1


class CorpusError(VidcapError):
    """A corpus file that cannot be read: names the file, the line and the field."""
