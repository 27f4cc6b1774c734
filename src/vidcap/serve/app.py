"""The HTTP endpoints of ``vidcap serve`` (see the package docstring and docs/serve.md).

Every error is JSON, ``{"error": "one sentence"}``, with its status (:func:`status_of`). Each
request gets its own private folder under the server's (mode 0700); it is removed when the request
ends, whether it worked, failed or its client went away (once the model is done with the file).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidcap.errors import VidcapError, as_resource_error

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from fastapi_offline import FastAPIOffline
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect
except ImportError as error:  # pragma: no cover - depends on the environment
    raise VidcapError(
        f"vidcap serve needs the 'serve' extra ({error.name} is missing): pip install 'vidcap[serve]'."
    ) from None

from vidcap.card import model_card
from vidcap.inference.captioner import Captioner
from vidcap.output.formats import render
from vidcap.output.html import STATIC_FILES, service_page, static_text
from vidcap.serve.errors import RequestError, status_of
from vidcap.serve.uploads import FILE_FIELD, Form, allowed_path, make_root, read_form
from vidcap.serve.worker import ModelWorker

RESPONSE_FORMATS = {
    "json": None,
    "vtt": "text/vtt",
    "srt": "application/x-subrip",
    "anet": "application/json",  # the ActivityNet Captions prediction JSON (dense events)
}
ENDPOINTS = {
    "caption": "/v1/caption",
    "dense": "/v1/caption",
    "qa": "/v1/answer",
    "summary": "/v1/summarize",
}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


@dataclass
class ServeConfig:
    """``vidcap serve``'s settings (see its ``--help``)."""

    max_upload_bytes: int = 500 * 2**20
    allow_paths: Path | None = None
    queue: int = 16


def _form_schema(fields: dict[str, dict]) -> dict:
    """An OpenAPI request body for a multipart form (the body is parsed by hand, as it streams)."""
    properties = {
        FILE_FIELD: {"type": "string", "format": "binary", "description": "The video file."},
        "path": {
            "type": "string",
            "description": "Instead of an upload: a video on the server, inside --allow-paths.",
        },
        **fields,
    }
    schema = {"type": "object", "properties": properties}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


CAPTION_FIELDS = {
    "dense": {"type": "boolean", "default": False, "description": "Timed captions over segments."},
    "segment_seconds": {"type": "number", "description": "Fixed windows of this many seconds."},
    "format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
    "beams": {"type": "integer", "minimum": 1, "description": "Beam width (default: the model's)."},
}
ANSWER_FIELDS = {
    "question": {"type": "array", "items": {"type": "string"}, "description": "Repeat the field."},
    "beams": CAPTION_FIELDS["beams"],
}
SUMMARY_FIELDS = {
    "transcript": {"type": "string", "description": "What is said in the video, if known."},
    "beams": CAPTION_FIELDS["beams"],
}


def _check_fields(form: Form, known: set[str]) -> None:
    unknown = sorted(set(form.fields) - known - {"path"})
    if unknown:
        raise RequestError(
            422, f"unknown field {unknown[0]!r}; this endpoint takes {', '.join(sorted(known))}."
        )


def _bool(form: Form, name: str) -> bool:
    value = (form.get(name) or "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise RequestError(422, f"{name} must be true or false, not {form.get(name)!r}.")
    return value in _TRUE


def _number(form: Form, name: str, kind: type, minimum: float) -> Any:
    value = form.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not number >= minimum:
        kind_name = "an integer" if kind is int else "a number"
        raise RequestError(422, f"{name} must be {kind_name} of at least {minimum}, not {value!r}.")
    return number


def create_app(captioner: Captioner, config: ServeConfig | None = None) -> FastAPI:
    """The service around a loaded model (which it uses from one thread, see :mod:`.worker`)."""
    config = config or ServeConfig()
    card = model_card(captioner.bundle)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["root"] = make_root()
        state["worker"] = ModelWorker(config.queue)
        app.state.upload_root, app.state.worker = state["root"], state["worker"]  # for tests
        try:
            yield
        finally:
            state["worker"].close()
            shutil.rmtree(state["root"], ignore_errors=True)

    # /docs and /redoc from files served here (fastapi-offline), not FastAPI's CDN: a server on
    # a cluster node or behind a firewall showed a blank page there.
    app = FastAPIOffline(
        title="vidcap",
        summary="Captions, answers and summaries for videos, from one finetuned vidcap model.",
        lifespan=lifespan,
    )

    @app.exception_handler(VidcapError)
    async def _vidcap_error(request: Request, error: VidcapError) -> JSONResponse:
        headers = error.headers if isinstance(error, RequestError) else None
        return JSONResponse({"error": str(error)}, status_of(error), headers=headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, error: Exception) -> JSONResponse:
        fault = as_resource_error(error)  # a full disk, no memory: the machine's, not a bug
        if fault is not None:
            return JSONResponse({"error": str(fault)}, 503)
        sentence = f"unexpected {type(error).__name__}: {error}. This is a bug in vidcap; please report it."
        return JSONResponse({"error": sentence}, 500)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = {404: f"there is no {request.url.path} here; see /docs for the endpoints."}
        text = message.get(error.status_code, str(error.detail))
        return JSONResponse({"error": text}, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}."}, 422)

    def require_task(*tasks: str) -> None:
        if captioner.task not in tasks:
            raise RequestError(
                409,
                f"this server's model was finetuned for {captioner.task}, not {' or '.join(tasks)}; "
                f"use POST {ENDPOINTS[captioner.task]}.",
            )

    async def run(
        request: Request, known: set[str], prepare: Callable[[Path, str, Form], Callable[[], Any]]
    ) -> Any:
        """Read the form into a private folder, check it with ``prepare(video, name, form)``, run
        the job it returns on the model's thread and wait for it; the folder goes when the request
        ends (see the module docstring)."""
        worker: ModelWorker = state["worker"]
        worker.check_room()
        folder = Path(tempfile.mkdtemp(dir=state["root"]))
        future: Future | None = None
        try:
            form = await read_form(
                request.headers.get("content-type"),
                request.headers.get("content-length"),
                request.stream(),
                folder,
                config.max_upload_bytes,
            )
            _check_fields(form, known)
            video, name = _video_of(form)
            future = worker.submit(_named(prepare(video, name, form), video, name))
            return await asyncio.wrap_future(future)
        except ClientDisconnect:
            # Nobody is left to answer; the folder is removed below.
            return Response(status_code=499)
        finally:
            if future is None or future.done() or future.cancel():
                shutil.rmtree(folder, ignore_errors=True)
            else:  # the model is reading the file: remove it when it is done
                future.add_done_callback(lambda _: shutil.rmtree(folder, ignore_errors=True))

    def _video_of(form: Form) -> tuple[Path, str]:
        raw_path = form.get("path")
        if form.video is not None and raw_path is not None:
            raise RequestError(422, f"send either a '{FILE_FIELD}' upload or a 'path', not both.")
        if form.video is not None:
            if form.video_bytes == 0:
                raise RequestError(422, f"the uploaded file {form.filename!r} is empty.")
            return form.video, form.filename or "video"
        if raw_path is not None:
            return allowed_path(raw_path, config.allow_paths), raw_path
        raise RequestError(
            422, f"no video: upload one in the field '{FILE_FIELD}' (curl -F video=@file.mp4)."
        )

    @app.post(
        "/v1/caption",
        openapi_extra=_form_schema(CAPTION_FIELDS),
        responses={
            200: {
                "description": "The captions: JSON (as `vidcap caption --format json` "
                "writes each video), WebVTT or SubRip."
            }
        },
    )
    async def caption(request: Request) -> Response:
        """Caption a video: one caption, or timed captions with `dense` (or `segment_seconds`)."""
        require_task("caption", "dense")

        def prepare(video: Path, name: str, form: Form) -> Callable[[], Response]:
            fmt = form.get("format") or "json"
            if fmt not in RESPONSE_FORMATS:
                choices = ", ".join(RESPONSE_FORMATS)
                raise RequestError(422, f"format must be one of {choices}, not {fmt!r}.")
            dense = _bool(form, "dense") or fmt != "json"  # subtitles are timed captions
            seconds = _number(form, "segment_seconds", float, 0.001)
            if seconds is not None and captioner.task == "dense":
                raise RequestError(
                    422,
                    "this server's model is a dense model: it finds the events itself, so "
                    "segment_seconds does not apply.",
                )
            beams = _number(form, "beams", int, 1)

            def job() -> Response:
                result = captioner.caption(video, dense=dense, segment_seconds=seconds, beams=beams)
                result.video = name
                result.warnings = [_renamed(w, video, name) for w in result.warnings]
                if fmt == "json":
                    return JSONResponse(result.to_json())
                return PlainTextResponse(render([result], fmt), media_type=RESPONSE_FORMATS[fmt])

            return job

        return await run(request, set(CAPTION_FIELDS), prepare)

    @app.post("/v1/answer", openapi_extra=_form_schema(ANSWER_FIELDS))
    async def answer(request: Request) -> JSONResponse:
        """Answer questions about a video (a model finetuned with `--task qa`)."""
        require_task("qa")

        def prepare(video: Path, name: str, form: Form) -> Callable[[], JSONResponse]:
            questions = [q.strip() for q in form.fields.get("question", []) if q.strip()]
            if not questions:
                raise RequestError(422, "no question: add one or more fields 'question'.")
            beams = _number(form, "beams", int, 1)

            def job() -> JSONResponse:
                answers = captioner.answer(video, questions, beams=beams)
                pairs = [
                    {"question": q, "answer": a} for q, a in zip(questions, answers, strict=True)
                ]
                return JSONResponse({"video": name, "answers": pairs})

            return job

        return await run(request, set(ANSWER_FIELDS), prepare)

    @app.post("/v1/summarize", openapi_extra=_form_schema(SUMMARY_FIELDS))
    async def summarize(request: Request) -> JSONResponse:
        """One paragraph for a video (a model finetuned with `--task summary`)."""
        require_task("summary")

        def prepare(video: Path, name: str, form: Form) -> Callable[[], JSONResponse]:
            transcript, beams = form.get("transcript") or "", _number(form, "beams", int, 1)

            def job() -> JSONResponse:
                text = captioner.summarize(video, transcript, beams=beams)
                return JSONResponse({"video": name, "summary": text})

            return job

        return await run(request, set(SUMMARY_FIELDS), prepare)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """The server is up; how many requests wait for the model."""
        worker: ModelWorker = state["worker"]
        return {"status": "ok", "waiting": worker.waiting, "queue": worker.size}

    @app.get("/v1/model")
    async def model() -> dict[str, Any]:
        """The model: task, architecture, encoder, vocabulary size, settings, training figures."""
        return {**card, "max_upload_bytes": config.max_upload_bytes}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        page = service_page(card, ENDPOINTS[captioner.task], config.max_upload_bytes)
        return HTMLResponse(page)

    for name in STATIC_FILES:
        media = "text/css" if name.endswith(".css") else "text/javascript"
        app.get(f"/{name}", include_in_schema=False)(_asset(static_text(name), media))

    return app


def _renamed(sentence: str, video: Path, name: str) -> str:
    """A sentence about an upload naming it as the client did: the server's private folder is
    nobody else's business."""
    return sentence.replace(str(video), name)


def _named(job: Callable[[], Any], video: Path, name: str) -> Callable[[], Any]:
    """``job``, its error sentences naming the video as the client did, not by its temp path."""

    def run() -> Any:
        try:
            return job()
        except VidcapError as error:
            # Same error, same class (its status depends on it), the sentence reworded.
            error.args = (_renamed(str(error), video, name), *error.args[1:])
            raise

    return run


def _asset(text: str, media: str) -> Callable[[], Any]:
    async def asset() -> Response:
        return Response(text, media_type=media)

    return asset
