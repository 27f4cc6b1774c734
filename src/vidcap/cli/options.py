"""Option checks several commands share, run by click before any work: a bad value is a usage error
(exit code 2) that names the option.

Options with a fixed set of values are ``typing.Literal`` s from the module that owns the values
(click lists them in ``--help`` and refuses others); whole numbers with a bound use typer's ``min=``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vidcap.errors import VidcapError


def check_device(value: str) -> str:
    """A ``--device`` callback: refuse a name that is no device (whether this machine has it is
    checked when the command runs)."""
    from vidcap.devices import (
        check_device_name,  # torch: loaded once a command runs, not for --help
    )

    try:
        check_device_name(value)
    except VidcapError as e:
        raise typer.BadParameter(str(e).removeprefix("--device ")) from None
    return value


def positive(value: float | None) -> float | None:
    """A callback for numbers that must be above 0 (``min=`` would let 0 through)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be > 0, got {value:g}.")
    return value


Device = Annotated[
    str,
    typer.Option(
        "--device",
        callback=check_device,
        help="auto (the GPU when there is one), cpu, cuda, cuda:N or mps.",
    ),
]

AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
RedoAll = Annotated[bool, typer.Option("--force", help="Redo every video, even finished ones.")]
AllowFailures = Annotated[
    bool, typer.Option("--allow-failures", help="Exit 0 even if some videos failed.")
]
