"""`vidcap caption --html`: the report folder (files, links, copies, failures) and, in a real
headless chromium opened from file://, the player: it plays, its track has every caption, a click
on a caption seeks there and highlights it."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner

from browser import chromium, wait_for
from vidcap.cli import app
from vidcap.output.formats import TimedCaption, format_clock, parse_vtt, to_vtt

runner = CliRunner()
WINDOW = 1.5  # --segment-seconds: several captions over the 6 s test video


def caption_html(*args: object):
    return runner.invoke(app, ["caption", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def report(caption_bundle: Path, webm_video: Path, tmp_path_factory: pytest.TempPathFactory):
    """`vidcap caption VIDEO --segment-seconds 1.5 --format json --html report/`: (folder, the
    captions printed as JSON)."""
    out = tmp_path_factory.mktemp("report") / "report"
    result = caption_html(
        webm_video,
        "--model",
        caption_bundle,
        "--segment-seconds",
        WINDOW,
        "-f",
        "json",
        "--html",
        out,
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)[0]


def page_of(out: Path) -> str:
    return (out / "synth video.html").read_text()


@pytest.mark.slow
def test_report_files(report, webm_video: Path, caption_bundle: Path) -> None:
    out, captions = report
    assert len(captions["captions"]) >= 3
    assert {p.name for p in out.iterdir()} == {
        "index.html",
        "player.css",
        "player.js",
        "synth video.html",
        "synth video.vtt",
        "synth video.png",
    }
    index = (out / "index.html").read_text()
    assert 'href="synth%20video.html"' in index
    assert "task caption" in index and "vocabulary size" in index  # the model card
    # A report is zipped and sent: the bundle's place on this machine is not in it.
    assert str(caption_bundle.resolve()) not in index + page_of(out)
    page = page_of(out)
    # No network: nothing but local files and data: URLs.
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)
    # The video is linked where it is, by a relative path, never re-encoded.
    src = unquote(re.search(r'<video [^>]*src="([^"]+)"', page)[1])
    assert (out / src).resolve() == webm_video.resolve()
    # The track is the .vtt file's text, as a data: URL (a .vtt file would not load from file://).
    track = re.search(r'<track default [^>]*src="data:text/vtt;charset=utf-8;base64,([^"]+)"', page)
    vtt = base64.b64decode(track[1]).decode()
    assert vtt == (out / "synth video.vtt").read_text()
    cues = parse_vtt(vtt)
    assert [c.text for c in cues] == [c["text"] or "…" for c in captions["captions"]]
    assert [round(c.start, 3) for c in cues] == [c["start"] for c in captions["captions"]]
    assert page.count("<li><button") == len(captions["captions"])


@pytest.mark.slow
def test_copy_videos_copies_bytes_and_lists_failures(
    caption_bundle: Path, webm_video: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    out = tmp_path / "report"
    result = caption_html(
        webm_video, broken, "--model", caption_bundle, "--html", out, "--copy-videos"
    )
    assert result.exit_code == 1  # one video failed; the report still lists both
    copy = out / "videos" / "synth video.webm"
    assert copy.read_bytes() == webm_video.read_bytes()
    assert 'src="videos/synth%20video.webm"' in page_of(out)
    index = (out / "index.html").read_text()
    assert "broken.mp4" in index and 'class="failed"' in index
    assert not list(out.rglob("*.tmp*"))


def test_a_report_that_cannot_be_written_keeps_the_captions(
    caption_bundle: Path, webm_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report is written as the videos come: a full disk under it (here, while writing the
    second video's page) stops the report with a warning, not the run, and the captions are
    written all the same; the exit status says the report is missing."""
    import errno

    from vidcap.output.html import ReportWriter

    add, calls = ReportWriter.add, []

    def full_on_the_second(self: ReportWriter, item) -> None:
        calls.append(item.result.video)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.out / "x.html"))
        add(self, item)

    monkeypatch.setattr(ReportWriter, "add", full_on_the_second)
    out, report = tmp_path / "captions.jsonl", tmp_path / "report"
    videos = [webm_video] * 3
    result = caption_html(
        *videos, "--model", caption_bundle, "-f", "jsonl", "-o", out, "--html", report
    )
    assert result.exit_code == 1
    assert [json.loads(line)["video"] for line in out.read_text().splitlines()] == [
        str(webm_video)
    ] * 3
    assert len(calls) == 2  # nothing more is tried once the report stopped
    assert "the report in" in result.output and "the disk is full" in result.output
    assert not (report / "index.html").exists()  # a folder without one is not a finished report


def test_copy_videos_needs_html(tmp_path: Path) -> None:
    result = caption_html(tmp_path / "a.mp4", "--model", tmp_path, "--copy-videos")
    assert result.exit_code == 1
    assert "--html" in result.output


@pytest.mark.slow
def test_report_plays_in_chromium_from_file_url(report) -> None:
    out, captions = report
    starts = [c["start"] for c in captions["captions"]]
    with chromium() as browser:
        browser.get((out / "synth video.html").as_uri())
        wait_for(
            lambda: browser.execute_script(
                "return document.querySelector('video').readyState >= 2"
            ),
            what="the video to load",
        )
        cues = wait_for(
            lambda: browser.execute_script(
                "const t = document.querySelector('video').textTracks[0];"
                "return t.cues && t.cues.length"
            ),
            what="the caption track",
        )
        assert cues == len(starts)
        assert (
            browser.execute_script("return document.querySelector('video').textTracks[0].mode")
            == "showing"
        )
        # It plays: time moves on.
        browser.execute_script("document.querySelector('video').play()")
        wait_for(
            lambda: browser.execute_script(
                "return document.querySelector('video').currentTime > 0.3"
            ),
            what="the video to play",
        )
        browser.execute_script("document.querySelector('video').pause()")
        # Clicking the third caption seeks to its start and highlights it.
        buttons = browser.find_elements("css selector", "ol.captions button")
        buttons[2].click()
        assert browser.execute_script(
            "return document.querySelector('video').currentTime"
        ) == pytest.approx(starts[2], abs=2e-3)
        current = browser.find_elements("css selector", "ol.captions li.current")
        assert [e.text for e in current] == [buttons[2].text]
        # As the video moves on, the highlight follows.
        browser.execute_script(f"document.querySelector('video').currentTime = {starts[3] + 0.1}")
        wait_for(
            lambda: (
                browser.find_elements("css selector", "ol.captions li.current button")
                and browser.find_elements("css selector", "ol.captions li.current button")[
                    0
                ].get_attribute("data-start")
                == f"{starts[3]:.3f}"
            ),
            what="the fourth caption to be highlighted",
        )
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        # The player's times and WebVTT (the serve page builds its track with it) are vidcap's.
        times = [0, 0.05, 0.15, 0.25, 11.45, 59.95, 61.25, 3599.95, 3600, 4000.25]
        clocks = browser.execute_script("return arguments[0].map(vidcap.clock)", times)
        assert clocks == [format_clock(t) for t in times]
        captions = [
            TimedCaption(0, 1.0005, "a <b> & c"),
            TimedCaption(1.0005, 1.0005, "  two\n\n lines "),
            TimedCaption(2.5, 3, ""),
        ]
        vtt = browser.execute_script(
            "return vidcap.vtt(arguments[0])",
            [{"start": c.start, "end": c.end, "text": c.text} for c in captions],
        )
        assert vtt == to_vtt(captions)


@pytest.mark.slow
def test_evaluate_html_puts_captions_beside_references(
    caption_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "evaluation"
    result = runner.invoke(
        app, ["evaluate", str(caption_bundle), "--no-meteor", "--json", "--html", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    page = (out / "index.html").read_text()
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)
    rows = re.findall(r"<tr><td><a href=\"([^\"]+)\">.*?</tr>", page)
    assert len(rows) == report["segments"] > 0
    # Each segment links its video in place, at its times (a media fragment).
    target, fragment = unquote(rows[0]).split("#t=")
    assert (out / target).is_file() and len(fragment.split(",")) == 2
    # The references, and the facts marked right or wrong as the fact accuracy counts them.
    assert page.count('<ul class="refs">') == report["segments"]
    accuracy = report["fact_accuracy"]["captioner"]
    for fact in ("colour", "shape", "action"):
        wrong = page.count(f'class="fact-wrong" data-fact="{fact}"')
        right = page.count(f'class="fact-right" data-fact="{fact}"')
        assert right + wrong == accuracy["count"]
        assert right / accuracy["count"] == pytest.approx(accuracy[fact])
    # On a phone the segments stack (video, caption, references, facts), the scores scroll in
    # their box, and the page itself does not scroll sideways (the captions were squeezed to a
    # few words a line).
    with chromium() as browser:
        metrics = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        browser.get((out / "index.html").as_uri())
        width = browser.execute_script("return window.innerWidth")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        caption = browser.execute_script(
            "const segments = document.querySelectorAll('.scroll table.list')[1];"
            "return segments.querySelector('td:nth-child(2)').getBoundingClientRect().width"
        )
        assert caption > 0.7 * width


def test_evaluate_html_refuses_a_file(caption_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    result = runner.invoke(
        app, ["evaluate", str(caption_bundle), "--html", str(tmp_path / "taken")]
    )
    assert result.exit_code == 1 and "is a file" in result.output


@pytest.mark.slow
def test_report_pages_fit_a_phone(report) -> None:
    """At a phone's width nothing runs off the screen: the index's rows stack (a four-column
    table ran 113 px past a 390 px screen) and the model card's values keep a readable width
    (they were crushed to one or two characters a line)."""
    out, _ = report
    with chromium() as browser:
        # A phone's screen (a headless window is at least 500 px wide).
        metrics = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        for page in ("index.html", "synth video.html"):
            browser.get((out / page).as_uri())
            width = browser.execute_script("return window.innerWidth")
            assert width <= 400  # the window is a phone's
            scroll = browser.execute_script("return document.documentElement.scrollWidth")
            assert scroll <= width, page
            values = browser.execute_script(
                "return [...document.querySelectorAll('dl.card dd')]"
                ".map(e => e.getBoundingClientRect().width)"
            )
            assert values and min(values) > 0.35 * width, (page, values)
        browser.get((out / "index.html").as_uri())
        caption = browser.find_element("css selector", "table.videos tbody td:last-child")
        assert caption.is_displayed() and caption.rect["x"] + caption.rect["width"] <= width
