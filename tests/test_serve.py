"""`vidcap serve`'s API through FastAPI's TestClient: every endpoint, every error as one JSON
sentence, the server answering afterwards, and no file left in its temporary folder."""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("fastapi_offline", reason="the serve extra is not installed")
from fastapi.testclient import TestClient

from vidcap.cli import app as cli
from vidcap.errors import VidcapError
from vidcap.output.formats import parse_srt, parse_vtt
from vidcap.serve.app import ServeConfig, create_app
from vidcap.serve.errors import RequestError
from vidcap.serve.model import load_model
from vidcap.serve.uploads import read_form
from vidcap.serve.worker import ModelWorker
from vidcap.video.errors import DecodeTimeoutError

LIMIT = 256 * 1024  # --max-upload-mb for these tests: the WebM test video fits, 300 KiB does not


@pytest.fixture(scope="module")
def captioner(caption_bundle: Path):
    return load_model(caption_bundle, device="cpu", timeout=30)


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory, webm_video: Path) -> Path:
    """The --allow-paths folder: the test video, and a link from inside to a file outside."""
    folder = tmp_path_factory.mktemp("allowed")
    (folder / "clip.webm").write_bytes(webm_video.read_bytes())
    outside = folder.parent / "secret.webm"
    outside.write_bytes(webm_video.read_bytes())
    (folder / "link.webm").symlink_to(outside)
    return folder


@pytest.fixture(scope="module")
def client(captioner, allowed: Path) -> Iterator[TestClient]:
    config = ServeConfig(max_upload_bytes=LIMIT, allow_paths=allowed, queue=2)
    with TestClient(create_app(captioner, config)) as client:
        yield client


def upload(path: Path, name: str | None = None, field: str = "video") -> dict:
    return {field: (name or path.name, path.read_bytes(), "application/octet-stream")}


def check_clean(client: TestClient) -> None:
    """The server answers, and its temporary folder (mode 0700) holds nothing."""
    assert client.get("/healthz").json()["status"] == "ok"
    root = client.app.state.upload_root
    assert os.stat(root).st_mode & 0o777 == 0o700
    assert list(root.iterdir()) == []


def check_error(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    sentence = body["error"]
    assert sentence.endswith(".") and "\n" not in sentence and "Traceback" not in sentence
    for word in words:
        assert word in sentence
    return sentence


# --------------------------------------------------------------------------------------------------
# Endpoints


def test_healthz_and_model(client: TestClient, caption_bundle: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "waiting": 0, "queue": 2}
    card = client.get("/v1/model").json()
    assert card["task"] == "caption" and card["arch"] == "bart"
    assert card["encoder"] == "descriptor"
    assert card["vocabulary_size"] > card["visual_words"] == 16
    assert card["training"]["max_steps"] == 30
    assert "cider" in card["training"]["validation"]
    assert card["max_upload_bytes"] == LIMIT
    assert str(caption_bundle) not in json.dumps(card)  # the server's paths stay private
    assert client.get("/openapi.json").json()["paths"].keys() >= {
        "/v1/caption",
        "/v1/answer",
        "/v1/summarize",
        "/healthz",
        "/v1/model",
    }
    assert "swagger" in client.get("/docs").text.lower()


def test_page_and_assets(client: TestClient) -> None:
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert 'action="v1/caption"' in page.text and "player.js" in page.text
    assert "vidcap.attach" in client.get("/upload.js").text
    assert client.get("/player.css").headers["content-type"].startswith("text/css")


@pytest.mark.slow
def test_caption_json_is_what_vidcap_caption_prints(
    client: TestClient, webm_video: Path, caption_bundle: Path
) -> None:
    got = client.post("/v1/caption", files=upload(webm_video), data={"segment_seconds": "1.5"})
    assert got.status_code == 200, got.text
    cli_out = CliRunner().invoke(
        cli,
        ["caption", str(webm_video), "-m", str(caption_bundle), "--segment-seconds=1.5", "-fjson"],
    )
    assert cli_out.exit_code == 0, cli_out.output
    expected = json.loads(cli_out.stdout)[0]
    assert got.json() == {**expected, "video": webm_video.name}
    assert len(got.json()["captions"]) >= 3
    check_clean(client)


def test_a_truncated_upload_is_named_as_the_client_named_it(
    client: TestClient, synth_corpus: Path, tmp_path: Path
) -> None:
    """The decoder's warning about an upload cut short names it by the client's file name, not
    by the server's private temporary path (which the page now shows)."""
    from vidcap.corpus import read_corpus
    from videos import truncated_copy

    cut = truncated_copy(next(iter(read_corpus(synth_corpus))).video, tmp_path / "cut.mp4")
    got = client.post("/v1/caption", files=upload(cut, "holiday.mp4"))
    assert got.status_code == 200, got.text
    warnings = got.json()["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("holiday.mp4 gave "), warnings
    assert "vidcap-serve" not in got.text
    check_clean(client)


@pytest.mark.slow
def test_caption_subtitles_and_options(client: TestClient, webm_video: Path) -> None:
    vtt = client.post("/v1/caption", files=upload(webm_video), data={"format": "vtt"})
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    srt = client.post("/v1/caption", files=upload(webm_video), data={"format": "srt", "beams": "2"})
    assert srt.headers["content-type"].startswith("application/x-subrip")
    assert len(parse_vtt(vtt.text)) >= 1 and len(parse_srt(srt.text)) >= 1
    one = client.post("/v1/caption", files=upload(webm_video), data={"dense": "false"}).json()
    assert len(one["captions"]) == 1 and one["captions"][0]["start"] == 0
    check_clean(client)


@pytest.mark.slow
def test_a_path_inside_allow_paths(client: TestClient, allowed: Path) -> None:
    for path in ("clip.webm", str(allowed / "clip.webm")):
        answer = client.post("/v1/caption", data={"path": path})
        assert answer.status_code == 200, answer.text
        assert answer.json()["video"] == path
    check_clean(client)


# --------------------------------------------------------------------------------------------------
# Errors: each one JSON sentence, and the server still answers with nothing left behind


def test_request_errors(client: TestClient, webm_video: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("these are not the frames you are looking for\n" * 20)
    noise = tmp_path / "noise.mp4"
    # Fixed bytes: FFmpeg finds a decodable stream in a rare draw of fresh random bytes (a CI
    # run captioned one as a 0.05 s video), which would be a different case from this one.
    noise.write_bytes(random.Random(0).randbytes(50_000))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    big = tmp_path / "big.webm"
    big.write_bytes(os.urandom(LIMIT + 1))
    post = client.post
    cases = [
        (post("/v1/caption", files=upload(webm_video, field="file")), 422, "'video'"),
        (post("/v1/caption", files=upload(empty)), 422, "empty"),
        (post("/v1/caption", files=upload(noise)), 415, "noise.mp4"),
        (post("/v1/caption", files=upload(text)), 415, "notes.mp4"),
        (post("/v1/caption", files=upload(big)), 413, "limit"),
        (post("/v1/caption", files=upload(webm_video, "../../etc/x.webm")), 422, "plain file name"),
        (post("/v1/caption", data={"path": "../secret.webm"}), 403, "'..'"),
        (post("/v1/caption", data={"path": str(webm_video)}), 403, "outside"),
        (post("/v1/caption", data={"path": "link.webm"}), 403, "outside"),
        (post("/v1/caption", data={"path": "missing.webm"}), 404, "no file"),
        (post("/v1/caption", data={"dense": "true"}), 422, "no video"),
        (post("/v1/caption", files=upload(webm_video), data={"format": "xml"}), 422, "format"),
        (post("/v1/caption", files=upload(webm_video), data={"beams": "0"}), 422, "beams"),
        (post("/v1/caption", files=upload(webm_video), data={"dense": "maybe"}), 422, "dense"),
        (post("/v1/caption", files=upload(webm_video), data={"colour": "red"}), 422, "'colour'"),
        (post("/v1/caption", content=b"raw bytes"), 422, "multipart"),
        (post("/v1/answer", files=upload(webm_video)), 409, "/v1/caption"),
        (post("/v1/summarize", files=upload(webm_video)), 409, "/v1/caption"),
        (client.get("/v2/caption"), 404, "/docs"),
    ]
    for response, status, word in cases:
        check_error(response, status, word)
    check_clean(client)


def test_a_body_announced_over_the_limit_is_refused_unread(client: TestClient) -> None:
    sent = []

    def body() -> Iterator[bytes]:
        for _ in range(64):
            sent.append(1)
            yield b"x" * 65536

    response = client.post(
        "/v1/caption",
        content=body(),
        headers={
            "content-type": "multipart/form-data; boundary=b",
            "content-length": str(64 * 65536),
        },
    )
    check_error(response, 413, "limit")
    check_clean(client)


def test_an_upload_over_the_limit_is_refused_while_it_streams(tmp_path: Path) -> None:
    """No Content-Length (chunked): the limit stops reading the body as its bytes pass it.
    (TestClient sends a body whole, so the reader is driven here with a counting stream.)"""
    sent = []

    async def body() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n'
        for _ in range(64):
            sent.append(1)
            yield b"x" * 65536
        yield b"\r\n--b--\r\n"

    with pytest.raises(RequestError) as refused:
        asyncio.run(read_form("multipart/form-data; boundary=b", None, body(), tmp_path, LIMIT))
    assert refused.value.status == 413
    assert len(sent) == LIMIT // 65536 + 1  # stopped at the chunk that passed the limit
    assert (tmp_path / "upload.mp4").stat().st_size <= LIMIT  # never more than the limit on disk
    # The limit as it was given (--max-upload-mb 0.05), not 0.0500002.
    (tmp_path / "odd").mkdir()
    odd = read_form("multipart/form-data; boundary=b", None, body(), tmp_path / "odd", 52429)
    with pytest.raises(RequestError, match=r"limit of 0\.05 MB\.$"):
        asyncio.run(odd)


def test_decode_timeout_is_504(client: TestClient, captioner, webm_video, monkeypatch) -> None:
    def too_slow(video, **options):
        raise DecodeTimeoutError(f"{video}: decoding took longer than 120 s and was stopped.")

    monkeypatch.setattr(captioner, "caption", too_slow)
    sentence = check_error(client.post("/v1/caption", files=upload(webm_video)), 504, "120 s")
    assert webm_video.name in sentence and "upload" not in sentence  # the client's name
    check_clean(client)


def test_decode_timeout_wrapped_by_the_pipeline_is_504(
    client: TestClient, captioner, webm_video, monkeypatch
) -> None:
    """The pipeline re-raises decode errors as a plain sentence (`raise VidcapError(...) from
    None`); the decode error it handled still decides the status."""

    def too_slow(video, **options):
        try:
            raise DecodeTimeoutError("decoding took longer than 120 s and was stopped.")
        except DecodeTimeoutError as error:
            raise VidcapError(f"{video}: {error}") from None

    monkeypatch.setattr(captioner, "caption", too_slow)
    check_error(client.post("/v1/caption", files=upload(webm_video)), 504, "120 s")
    check_clean(client)


def test_a_bug_is_a_json_500_and_the_server_goes_on(
    captioner, allowed: Path, webm_video: Path, monkeypatch
) -> None:
    def broken(video, **options):
        raise RuntimeError("something vidcap did not expect")

    monkeypatch.setattr(captioner, "caption", broken)
    config = ServeConfig(max_upload_bytes=LIMIT, allow_paths=allowed)
    with TestClient(create_app(captioner, config), raise_server_exceptions=False) as client:
        response = client.post("/v1/caption", files=upload(webm_video))
        check_error(response, 500, "RuntimeError", "bug in vidcap")
        check_clean(client)


def test_a_full_queue_is_503_with_retry_after(client: TestClient, webm_video: Path) -> None:
    worker: ModelWorker = client.app.state.worker
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    jobs = [worker.submit(hold)]
    started.wait(10)
    jobs += [worker.submit(lambda: None) for _ in range(worker.size)]  # the queue is full
    try:
        response = client.post("/v1/caption", files=upload(webm_video))
        check_error(response, 503, "busy")
        assert int(response.headers["retry-after"]) > 0
    finally:
        release.set()
        for job in jobs:
            job.result(30)
    check_clean(client)


def test_worker_runs_in_order_and_bounds_its_queue() -> None:
    worker = ModelWorker(size=1)
    release = threading.Event()
    order: list[int] = []
    first = worker.submit(lambda: release.wait(30) and order.append(1))
    while worker.waiting:  # the first job has left the queue for the thread
        pass
    second = worker.submit(lambda: order.append(2))
    with pytest.raises(RequestError) as refused:
        worker.submit(lambda: order.append(3))
    assert refused.value.status == 503 and "Retry-After" in refused.value.headers
    release.set()
    second.result(10)
    assert first.done() and order == [1, 2]
    failing = worker.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(10)
    worker.close()


def test_load_model_limits_each_decode_to_the_timeout(caption_bundle: Path) -> None:
    model = load_model(caption_bundle, device="cpu", timeout=5)
    assert model.task == "caption"
    assert model.pipeline.timeout == 5


# --------------------------------------------------------------------------------------------------
# Question answering and summaries: the endpoints of bundles finetuned for those tasks


def finetune_task(caption_bundle: Path, out: Path, task: str) -> Path:
    """A tiny bundle finetuned for ``task`` from the caption bundle's pretrain."""
    settings = ["--preset", "tiny", "--max-steps", "5", "--eval-every", "1000", "--beams", "1"]
    pretrain = str(caption_bundle.parent / "pretrain")
    result = CliRunner().invoke(
        cli, ["finetune", pretrain, "--out", str(out), "--task", task, *settings]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
@pytest.mark.parametrize("task", ["qa", "summary"])
def test_answer_and_summarize_endpoints(
    task: str, caption_bundle: Path, webm_video: Path, tmp_path: Path
) -> None:
    bundle = finetune_task(caption_bundle, tmp_path / task, task)
    model = load_model(bundle, device="cpu")
    with TestClient(create_app(model, ServeConfig(max_upload_bytes=LIMIT))) as client:
        assert client.get("/v1/model").json()["task"] == task
        check_error(
            client.post("/v1/caption", files=upload(webm_video)),
            409,
            {"qa": "/v1/answer", "summary": "/v1/summarize"}[task],
        )
        if task == "qa":
            questions = ["what colour is the shape?", "what does it do?"]
            got = client.post("/v1/answer", files=upload(webm_video), data={"question": questions})
            assert got.status_code == 200, got.text
            expected = model.answer(webm_video, questions)
            assert got.json() == {
                "video": webm_video.name,
                "answers": [
                    {"question": q, "answer": a} for q, a in zip(questions, expected, strict=True)
                ],
            }
            check_error(client.post("/v1/answer", files=upload(webm_video)), 422, "question")
            check_error(client.post("/v1/summarize", files=upload(webm_video)), 409, "/v1/answer")
        else:
            got = client.post("/v1/summarize", files=upload(webm_video), data={"transcript": ""})
            assert got.status_code == 200, got.text
            assert got.json() == {"video": webm_video.name, "summary": model.summarize(webm_video)}
            check_error(client.post("/v1/answer", files=upload(webm_video)), 409, "/v1/summarize")
        assert "POST /v1/" in client.get("/").text  # the page points to the API
        check_clean(client)


@pytest.mark.slow
def test_a_dense_model_captions_with_events_in_json_and_anet(
    caption_bundle: Path, webm_video: Path, tmp_path: Path
) -> None:
    bundle = finetune_task(caption_bundle, tmp_path / "dense", "dense")
    model = load_model(bundle, device="cpu")
    with TestClient(create_app(model, ServeConfig(max_upload_bytes=LIMIT))) as client:
        assert client.get("/v1/model").json()["task"] == "dense"
        got = client.post("/v1/caption", files=upload(webm_video))
        assert got.status_code == 200, got.text
        expected = model.caption(webm_video)
        expected.video = webm_video.name
        assert got.json() == json.loads(json.dumps(expected.to_json()))
        anet = client.post("/v1/caption", files=upload(webm_video), data={"format": "anet"})
        assert anet.status_code == 200 and anet.headers["content-type"] == "application/json"
        events = anet.json()["results"][webm_video.stem]
        assert [e["sentence"] for e in events] == [c.text for c in expected.captions]
        check_error(
            client.post("/v1/caption", files=upload(webm_video), data={"segment_seconds": "2"}),
            422,
            "dense model",
        )
        check_error(client.post("/v1/summarize", files=upload(webm_video)), 409, "/v1/caption")
        check_clean(client)


# --------------------------------------------------------------------------------------------------
# The command


def test_serve_without_the_extra_names_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)  # as if not installed
    result = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path)])
    assert result.exit_code == 1
    assert "pip install 'vidcap[serve]'" in result.output.replace("\n", "")


def test_serve_refuses_allow_paths_that_is_not_a_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--model", str(tmp_path), "--allow-paths", str(tmp_path / "nope")]
    )
    assert result.exit_code == 1 and "is not a folder" in result.output


def test_serve_on_a_port_in_use_or_a_bad_host_is_a_sentence_before_the_model_loads(
    tmp_path: Path,
) -> None:
    # It loaded the model, printed "serving ... on" and then uvicorn's "ERROR: [Errno 98] ..."
    # line, exit 3. (tmp_path is no model: the address is refused before any is loaded.)
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path), "--port", str(port)])
    assert busy.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in busy.output
    # A second serve on the port of one still loading its model (bound, and listening).
    from vidcap.cli.serve import _listen

    loading = _listen("127.0.0.1", 0)
    port = loading.getsockname()[1]
    second = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path), "--port", str(port)])
    loading.close()
    assert second.exit_code == 1 and "(Address already in use)" in second.output
    nowhere = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path), "--host", "999.1.1.1"])
    assert nowhere.exit_code == 1 and nowhere.output.startswith("error: --host 999.1.1.1: ")
    # An address of another machine: the host is at fault, not the port.
    elsewhere = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path), "--host", "192.0.2.1"])
    assert elsewhere.exit_code == 1 and "give a --host of this machine" in elsewhere.output
    assert "--port" not in elsewhere.output and "another --port" in busy.output
    assert "serving" not in busy.output + nowhere.output


def test_serve_help_lists_its_options() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200)
    for option in ("--host", "--port", "--max-upload-mb", "--timeout", "--allow-paths", "--queue"):
        assert option in result.output
    assert "127.0.0.1" in result.output
