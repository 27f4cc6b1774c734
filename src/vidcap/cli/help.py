"""How ``--help`` reads: the command and group classes every vidcap command is registered with."""

from __future__ import annotations

import inspect
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


def one_line_paragraphs(text: str | None) -> str | None:
    """A docstring's paragraphs each on one line. Typer keeps the line breaks of a command's
    docstring, so a terminal narrower than its source lines wrapped every one of them in two
    (a long line, then a short one); Rich wraps a paragraph given on one line to any width."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


class _TidyHelp:
    """Mixed into a command or group: its description in :func:`one_line_paragraphs`, no
    ``<bool>`` after a flag (typer shows one, as if ``--force true`` were how to give it; Click
    refuses that), and arguments named in capitals (``WORDS_DIR``, as the docs write them; typer
    0.29 writes ``words_dir``)."""

    help: str | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = one_line_paragraphs(self.help)

    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]  (the class it is mixed into)
        for param in params:  # --help among them, made only now
            if param.metavar is not None:
                continue
            if getattr(param, "is_flag", False):
                param.metavar = ""
            elif param.param_type_name == "argument" and param.name:
                # Several values still show as such: `{INPUTS}...` in the usage line, a
                # `<list[...]>` type in the panel.
                param.metavar = param.name.upper()
        return params


class VidcapCommand(_TidyHelp, TyperCommand):
    """Every vidcap command: ``app.command(NAME, cls=VidcapCommand)``."""


class VidcapGroup(_TidyHelp, TyperGroup):
    """Every vidcap command group: ``typer.Typer(cls=VidcapGroup)`` (or a subclass)."""
