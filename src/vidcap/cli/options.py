"""Option checks several commands share, run by click before any work: a bad value is a usage error
(exit code 2) that names the option.

Options with a fixed set of values are ``typing.Literal`` s from the module that owns the values
(click lists them in ``--help`` and refuses others); whole numbers with a bound use typer's ``min=``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vidcap.distributed import Shard, cores_per_process
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


def parse_shard(value: str | None) -> Shard | None:
    """``--shard K/N`` as a :class:`~vidcap.distributed.Shard` (None when not given); a bad value is
    a usage error."""
    if value is None:
        return None
    k, sep, n = value.partition("/")
    if not (sep and k.strip().isdigit() and n.strip().isdigit()):
        raise typer.BadParameter(f"must be K/N (e.g. 0/4), got {value!r}.")
    index, count = int(k), int(n)
    if not 0 <= index < count:
        raise typer.BadParameter(f"K must be in 0..N-1, got {value!r}.")
    return Shard(index, count)


def _count_or_auto(value: str, auto: int, least: int) -> int:
    text = value.strip().lower()
    if text == "auto":
        return auto
    if not text.isdigit() or int(text) < least:
        raise typer.BadParameter(f"must be auto or a whole number >= {least}, got {value!r}.")
    return int(text)


def parse_decode_workers(value: str) -> int:
    """``--workers`` / ``-j``: a count, or ``auto``: one decode process per core this process
    has (:func:`~vidcap.distributed.cores_per_process`). Each decode child keeps about one core
    busy (its torch and OpenCV run one thread each); on 2 cores ``-j 2`` extracted 1.4 x as fast
    as ``-j 1``, and on a 16-core GPU host ``-j 16`` fed the GPU (docs/extract.md, docs/encode.md).
    """
    return _count_or_auto(value, cores_per_process(), least=1)


def parse_loader_workers(value: str) -> int:
    """``--loader-workers``: a count, or ``auto``: half the cores this process has, 2 to 8. The
    loaders only resize and crop clips read from disk (one delivers about 700 clips/s of 224 px
    frames on this project's 2-core CI machine), and the other half of the cores run the model's
    own threads or the GPU's feeding; the H200 host's runs used 8 of its 16 cores."""
    return _count_or_auto(value, min(8, max(2, cores_per_process() // 2)), least=0)


def check_shard(value: str | None) -> str | None:
    """A ``--shard`` callback: a bad value is a usage error before any work."""
    parse_shard(value)
    return value


Device = Annotated[
    str,
    typer.Option(
        "--device",
        callback=check_device,
        help="auto (the GPU when there is one), cpu, cuda, cuda:N or mps.",
    ),
]

StageShard = Annotated[
    str | None,
    typer.Option(
        "--shard",
        callback=check_shard,
        metavar="K/N",
        help="Do videos K, K+N, K+2N... of the sorted input list (0 <= K < N): one of N independent "
        "jobs (a SLURM array task each) filling the same --out, at any time, on any machine that "
        "sees it; the last to finish writes the one index.jsonl and manifest.json.",
        show_default=False,
    ),
]

AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
RedoAll = Annotated[bool, typer.Option("--force", help="Redo every video, even finished ones.")]
AllowFailures = Annotated[
    bool, typer.Option("--allow-failures", help="Exit 0 even if some videos failed.")
]
