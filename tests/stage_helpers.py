"""Small helpers shared by the stage tests."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def index_of(stage_dir: Path) -> dict[str, dict]:
    """A stage folder's index.jsonl as ``{id: line}``."""
    lines = (stage_dir / "index.jsonl").read_text().splitlines()
    return {item["id"]: item for item in map(json.loads, lines)}


def free_port() -> int:
    """A free TCP port on localhost for a torchrun rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(
    *args: object, timeout: float = 300, processes: int = 2, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``args`` (a script and its arguments, or ``-m module ...``) run by 2 (or ``processes``)
    CPU processes under torchrun, ``stdin`` piped to it."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(free_port()), *(str(a) for a in args)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, input=stdin
    )


def fail_file_locks(monkeypatch: pytest.MonkeyPatch, number: int = errno.ENOLCK) -> None:
    """Make ``flock`` fail with ``number``, as on a file system without locks (NFSv3 whose lock
    service cannot be reached: ``ENOLCK``; Lustre without its flock option: ``ENOSYS``)."""
    import fcntl

    def flock(fd: int, operation: int) -> None:
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(fcntl, "flock", flock)


def without_access_rights() -> list[str]:
    """A command prefix under which file permissions apply (root's override rights dropped)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: no file can be denied")
    drop = "-dac_override,-dac_read_search,-fowner"
    return [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}"]
