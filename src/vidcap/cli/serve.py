"""``vidcap serve``: a finetuned model loaded once and served over HTTP (see docs/serve.md)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from vidcap.cli.console import stderr
from vidcap.cli.videos import Device, Model
from vidcap.errors import VidcapError


def serve_command(
    model: Model,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on; 127.0.0.1 answers this machine only, 0.0.0.0 every network.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    max_upload_mb: Annotated[
        float,
        typer.Option(
            "--max-upload-mb", min=0.001, help="Largest video accepted, in MB (2^20 bytes)."
        ),
    ] = 500,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.1,
            help="Seconds a video's decoder may go without delivering frames (it hung) before the "
            "request is a 504.",
        ),
    ] = 120,
    allow_paths: Annotated[
        Path | None,
        typer.Option(
            "--allow-paths",
            help="Also accept a 'path' field naming a video on the server, only inside this folder.",
        ),
    ] = None,
    queue: Annotated[
        int,
        typer.Option(
            "--queue", min=1, help="Requests that may wait for the model; more get a 503."
        ),
    ] = 16,
    device: Device = "auto",
) -> None:
    """Serve a finetuned model over HTTP: an API, its docs at /docs, a page to caption videos.

    POST /v1/caption (or /v1/answer, /v1/summarize, as the model's task is), GET /v1/model,
    /healthz, and a page at / to drop a video and watch it with its captions.

    The model is loaded once; requests are run one at a time, in order. Errors are JSON with one
    sentence. Stop with Ctrl-C.
    """
    try:
        import uvicorn

        from vidcap.serve.app import ServeConfig, create_app
        from vidcap.serve.model import load_model
    except ImportError as error:
        raise VidcapError(
            f"vidcap serve needs the 'serve' extra ({error.name} is missing): pip install 'vidcap[serve]'."
        ) from None

    if allow_paths is not None and not allow_paths.is_dir():
        raise VidcapError(f"--allow-paths {allow_paths} is not a folder.")
    # The address is taken before the model loads: a port in use is a sentence at once, not
    # uvicorn's log line (and exit 3) after the load and a "serving on" that was not true.
    listening = _listen(host, port)
    captioner = load_model(model, device=device, timeout=timeout)
    config = ServeConfig(
        max_upload_bytes=round(max_upload_mb * 2**20), allow_paths=allow_paths, queue=queue
    )
    app = create_app(captioner, config)
    port = listening.getsockname()[1]  # the one the system chose for --port 0
    stderr.print(
        f"serving {model} (task {captioner.task}) on http://{host}:{port}/ (API docs at /docs)",
        highlight=False,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, ready for the server.

    Raises:
        VidcapError: the address cannot be had (in use, not this machine's, not a host name).
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        # IPv4 first, as uvicorn binds a host without ':': "localhost" may list ::1 first, and
        # the http://127.0.0.1:PORT/ that serve prints would then be refused.
        found.sort(key=lambda info: info[0] != socket.AF_INET)
        family, kind, proto, _, address = found[0]
        listening = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as error:
        raise VidcapError(
            f"--host {host}: {_why(error)}; give a name or address of this machine."
        ) from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        listening.bind(address)
        # Listening now, not when uvicorn starts: two sockets with SO_REUSEADDR may both bind
        # one port until one listens, so a second serve would pass and fail after its load.
        listening.listen(2048)  # uvicorn's backlog
    except OSError as error:
        listening.close()
        if error.errno == errno.EADDRNOTAVAIL:  # the address is not one of this machine's
            remedy = "give a --host of this machine (127.0.0.1, 0.0.0.0 for every address)"
        else:
            remedy = "give another --port, or stop what uses it"
        raise VidcapError(f"cannot listen on {host}:{port} ({_why(error)}); {remedy}.") from None
    return listening


def _why(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
