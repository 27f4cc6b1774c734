"""Make docs/img/report.png and docs/img/serve.png: a report page and the `vidcap serve` page, each
with a video playing under its captions, captured by headless chromium (selenium).

    python docs/img/screenshots.py --model runs/model --video clip.webm [--seconds 1.5] [--pick 5]

The video must be one the browser plays (VP9/WebM or H.264/MP4). The pictures in the docs were made
with the model `vidcap demo --out runs/demo` trains and its synth-00007 converted to WebM
(`ffmpeg -i runs/demo/synth/videos/synth-00007.mp4 -c:v libvpx-vp9 -b:v 1M synth-00007.webm`),
with `--seconds 1.5 --pick 4`.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

HERE = Path(__file__).parent


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--mute-audio", "--window-size=1280,860"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait(check, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the page did not get there")
        time.sleep(0.2)


def pick(driver: webdriver.Chrome, index: int, out: Path) -> None:
    """Click caption ``index`` (1-based), let the frame and cue show, save the screenshot."""
    driver.find_elements("css selector", "ol.captions button")[index - 1].click()
    time.sleep(1.0)
    driver.save_screenshot(str(out))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", required=True, type=Path)
    parser.add_argument("--seconds", default="1.5")
    parser.add_argument("--pick", type=int, default=5, help="the caption to click (1-based)")
    args = parser.parse_args()
    video = args.video.resolve()

    report = Path(tempfile.mkdtemp()) / "report"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "vidcap",
            "caption",
            str(video),
            "-m",
            args.model,
            "--segment-seconds",
            args.seconds,
            "--html",
            str(report),
            "--copy-videos",
        ],
        check=True,
    )
    driver = browser()
    try:
        driver.get((report / f"{video.stem}.html").as_uri())
        wait(
            lambda: driver.execute_script("return document.querySelector('video').readyState >= 2")
        )
        pick(driver, args.pick, HERE / "report.png")

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "vidcap", "serve", "-m", args.model, "--port", str(port)]
        )
        try:
            url = f"http://127.0.0.1:{port}"

            def up() -> bool:
                try:
                    return httpx.get(f"{url}/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait(up)
            driver.set_window_size(1280, 1130)  # the drop zone above the player: a taller window
            driver.get(url)
            driver.find_element("id", "seconds").send_keys(args.seconds)
            driver.find_element("id", "file").send_keys(str(video))
            wait(lambda: driver.find_elements("css selector", "#player ol.captions li"))
            wait(
                lambda: driver.execute_script(
                    "return document.querySelector('#player video').readyState >= 2"
                )
            )
            pick(driver, args.pick, HERE / "serve.png")
        finally:
            server.terminate()
            server.wait(30)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
