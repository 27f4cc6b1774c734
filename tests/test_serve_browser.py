"""A real `vidcap serve` (a subprocess on a free port): its page at / in headless chromium uploads
a video and plays it with its captions; a client that goes away mid-upload, or sends too much,
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from browser import chromium, wait_for
from stage_helpers import free_port

pytest.importorskip("fastapi_offline", reason="the serve extra is not installed")

LIMIT_MB = 1.0


@dataclass
class Server:
    url: str
    port: int
    tmp: Path  # the server's TMPDIR: its private upload folder is made in here


def uploads_left(server: Server) -> list[Path]:
    """Files and folders inside the server's private upload folder."""
    roots = list(server.tmp.glob("vidcap-serve-*"))
    assert len(roots) == 1
    assert roots[0].stat().st_mode & 0o777 == 0o700
    return list(roots[0].iterdir())


@pytest.fixture(scope="module")
def server(caption_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server-tmp")
    # What a server killed by SIGKILL leaves (process ids stay below 2^22 on Linux): removed at start.
    stale = tmp / "vidcap-serve-99999999-abc"
    (stale / "tmp123").mkdir(parents=True)
    (stale / "tmp123" / "upload.mp4").write_bytes(b"half")
    port = free_port()
    command = [sys.executable, "-m", "vidcap", "serve", "--model", str(caption_bundle)]
    command += ["--port", str(port), "--max-upload-mb", str(LIMIT_MB), "--device", "cpu"]
    process = subprocess.Popen(
        command,
        env={**os.environ, "TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"vidcap serve exited: {process.stdout.read()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=120, what="vidcap serve to answer")
        assert not stale.exists()
        yield Server(url, port, tmp)
    finally:
        process.terminate()
        process.wait(30)
    assert not list(tmp.glob("vidcap-serve-*"))  # removed at shutdown


@pytest.mark.slow
def test_page_uploads_a_video_and_plays_it_with_captions(server: Server, webm_video: Path) -> None:
    with chromium(1280, 1000) as browser:
        browser.get(f"{server.url}/")
        browser.find_element("id", "seconds").send_keys("1.5")
        browser.find_element("id", "file").send_keys(str(webm_video))
        status = browser.find_element("id", "status")
        wait_for(lambda: "caption" in status.text and "for" in status.text, 120, "the captions")
        items = browser.find_elements("css selector", "#player ol.captions li")
        assert len(items) >= 3 and "synth video.webm" in status.text
        assert browser.find_element("id", "result").is_displayed()
        video = "document.querySelector('#player video')"
        wait_for(
            lambda: browser.execute_script(f"return {video}.readyState >= 2"), what="the video"
        )
        cues = wait_for(
            lambda: browser.execute_script(
                f"const t = {video}.textTracks[0]; return t && t.cues && t.cues.length"
            ),
            what="the caption track",
        )
        assert cues == len(items)
        assert browser.execute_script(f"return {video}.textTracks[0].mode") == "showing"
        browser.execute_script(f"{video}.play()")
        wait_for(
            lambda: browser.execute_script(f"return {video}.currentTime > 0.5"), what="playing"
        )
        browser.execute_script(f"{video}.pause()")
        wait_for(lambda: browser.execute_script(f"return {video}.paused"), what="a pause")
        third = items[2].find_element("css selector", "button")
        third.click()
        start = float(third.get_attribute("data-start"))
        now = browser.execute_script(f"return {video}.currentTime")
        assert now == pytest.approx(start, abs=2e-3)
        assert "current" in items[2].get_attribute("class")
        # The same file chosen again is sent again (the input forgets it once sent).
        browser.execute_script("arguments[0].textContent = 'before'", status)
        browser.find_element("id", "file").send_keys(str(webm_video))
        wait_for(lambda: "caption" in status.text, 120, "the captions of the second upload")
        # A file the server cannot decode: the page says why, in one sentence, and the last
        # video's captions go (they are not this file's).
        browser.find_element("id", "file").send_keys(str(Path(__file__)))
        wait_for(lambda: "error" in status.get_attribute("class"), 60, "the error")
        assert "test_serve_browser.py" in status.text
        assert not browser.find_element("id", "result").is_displayed()
        # Windows are for timed captions: the field is off without them.
        seconds, dense = browser.find_element("id", "seconds"), browser.find_element("id", "dense")
        assert seconds.is_enabled()
        dense.click()
        assert not seconds.is_enabled()
        logged = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert [m for m in logged if "status of 415" not in m] == []  # but the refused file
    assert uploads_left(server) == []


@pytest.mark.slow
def test_a_video_over_the_limit_is_refused_by_the_page_before_it_is_sent(
    server: Server, tmp_path: Path
) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(int(2.5 * 2**20)))
    with chromium() as browser:
        browser.get(f"{server.url}/")
        assert f"(up to {LIMIT_MB:g} MB)" in browser.find_element("id", "drop").text
        browser.find_element("id", "file").send_keys(str(big))
        status = browser.find_element("id", "status")
        wait_for(lambda: "error" in status.get_attribute("class"), 10, "the refusal")
        assert status.text == f"big.mp4 is 2.5 MB, over this server's limit of {LIMIT_MB:g} MB."
        sent = browser.execute_script(
            "return performance.getEntriesByType('resource').filter(e => e.name.includes('v1/'))"
            ".length"
        )
        assert sent == 0  # nothing was uploaded
    assert uploads_left(server) == []


@pytest.mark.slow
def test_a_video_unlike_the_training_videos_is_flagged_on_the_page(
    server: Server, tmp_path: Path
) -> None:
    """The out-of-domain warning the CLI prints reaches the page, above the captions."""
    from tests.videos import ffmpeg

    pattern = tmp_path / "test pattern.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "4", "-pix_fmt", "yuv420p",
           str(pattern))  # fmt: skip
    with pattern.open("rb") as f:
        answer = httpx.post(f"{server.url}/v1/caption", files={"video": f}, timeout=120).json()
    assert answer["ood"]["flagged"], answer  # colour bars are no synthetic shapes
    with chromium() as browser:
        browser.get(f"{server.url}/")
        browser.find_element("id", "file").send_keys(str(pattern))
        notices = browser.find_element("id", "notices")
        wait_for(notices.is_displayed, 120, "the warning")
        assert "unlike the videos the model was trained on" in notices.text
        assert f"{answer['ood']['score']:.2f} > {answer['ood']['threshold']:.2f}" in notices.text


@pytest.mark.slow
def test_api_docs_render_without_network(server: Server) -> None:
    """/docs is Swagger UI from the server's own files: the browser here reaches no other host
    (FastAPI's default took it from a CDN, and the page stayed blank)."""
    page = httpx.get(f"{server.url}/docs").text
    assert "cdn." not in page and "https://" not in page
    with chromium() as browser:
        browser.get(f"{server.url}/docs")
        wait_for(
            lambda: "/v1/caption" in browser.find_element("tag name", "body").text,
            60,
            "the API's operations",
        )
        browser.get(f"{server.url}/redoc")
        wait_for(
            lambda: "v1/caption" in browser.find_element("tag name", "body").text,
            60,
            "ReDoc's operations",
        )


def _post_head(port: int, length: str | None) -> socket.socket:
    """A socket that has sent a POST /v1/caption's headers and the start of a video part."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    size = f"Content-Length: {length}\r\n" if length else "Transfer-Encoding: chunked\r\n"
    sock.sendall(
        (
            "POST /v1/caption HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"{size}\r\n"
        ).encode()
    )
    part = b'--b\r\nContent-Disposition: form-data; name="video"; filename="a.webm"\r\n\r\n'
    sock.sendall(part if length else b"%x\r\n%s\r\n" % (len(part), part))
    return sock


@pytest.mark.slow
def test_a_client_that_leaves_mid_upload_leaves_nothing(server: Server) -> None:
    sock = _post_head(server.port, str(10 * 2**20 // 10))
    sock.sendall(b"x" * 200_000)
    time.sleep(0.5)
    assert len(uploads_left(server)) == 1  # its folder, while it uploads
    sock.close()
    wait_for(lambda: uploads_left(server) == [], 10, "the upload folder to go")
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"


@pytest.mark.slow
def test_an_upload_over_the_limit_is_answered_413_while_it_streams(server: Server) -> None:
    sock = _post_head(server.port, None)  # chunked: the size is not known in advance
    chunk = b"x" * 65536
    sent, answer = 0, b""
    sock.settimeout(0.05)
    while sent < 10 * LIMIT_MB * 2**20 and b"\r\n\r\n" not in answer:
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:  # the server closed the connection after answering
            break
        sent += len(chunk)
        with contextlib.suppress(TimeoutError):  # no answer yet: keep sending
            answer += sock.recv(4096)
    sock.settimeout(10)
    while b"}" not in answer:
        data = sock.recv(4096)
        if not data:
            break
        answer += data
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error"' in answer
    assert sent < 3 * LIMIT_MB * 2**20  # answered long before the client finished
    wait_for(lambda: uploads_left(server) == [], 10, "the upload folder to go")
