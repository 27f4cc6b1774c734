"""Caption output formats (text, JSON, JSON Lines, SubRip, WebVTT), their files and the storyboard."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidcap.errors import VidcapError
from vidcap.output.formats import (
    EMPTY_CUE_TEXT,
    EN_DASH,
    FORMATS,
    CaptionsWriter,
    TimedCaption,
    VideoCaptions,
    cue_text,
    format_clock,
    parse_srt,
    parse_vtt,
    render,
    to_srt,
    to_vtt,
)
from vidcap.output.storyboard import TILE_PADDING, drawable, render_storyboard, wrap_text

# Captions that stress the subtitle writers, and what each must read back as: (start ms, end ms, text).
TRICKY = [
    TimedCaption(0.0, 3.2, "a dog & a cat"),
    TimedCaption(3.2, 7.0, "x < y > z --> w"),
    TimedCaption(7.0, 7.0, "zero length"),  # must get end > start
    TimedCaption(8.0, 7.5, "ends before it starts"),
    TimedCaption(9.0004, 9.0006, "<i>tag</i> &amp; 12"),  # 9.000 and 9.001 after rounding
    TimedCaption(10.0, 11.0, "first line\n\n  second line  \r\nthird"),
    TimedCaption(11.0, 12.0, ""),
    TimedCaption(12.0, 13.0, " \n \n"),
    TimedCaption(3725.004, 3725.5, "after an hour"),
    TimedCaption(360000.0, 360001.25, "after a hundred hours"),
    TimedCaption(-0.0001, 0.5, "1"),  # float noise below zero; a text that looks like a cue number
]
EXPECTED = [
    (0, 3200, "a dog & a cat"),
    (3200, 7000, "x < y > z --> w"),
    (7000, 7001, "zero length"),
    (8000, 8001, "ends before it starts"),
    (9000, 9001, "<i>tag</i> &amp; 12"),
    (10000, 11000, "first line\nsecond line\nthird"),
    (11000, 12000, EMPTY_CUE_TEXT),
    (12000, 13000, EMPTY_CUE_TEXT),
    (3725004, 3725500, "after an hour"),
    (360000000, 360001250, "after a hundred hours"),
    (0, 500, "1"),
]


def _as_ms(captions: list[TimedCaption]) -> list[tuple[int, int, str]]:
    return [(round(c.start * 1000), round(c.end * 1000), c.text) for c in captions]


# --------------------------------------------------------------------------------------------------
# SubRip and WebVTT


def test_srt_layout() -> None:
    captions = [TimedCaption(1.5, 3725.004, "a\nb"), TimedCaption(4.0, 4.0, "")]
    assert to_srt(captions) == (
        "1\n00:00:01,500 --> 01:02:05,004\na\nb\n\n2\n00:00:04,000 --> 00:00:04,001\n…\n"
    )


def test_vtt_layout_escapes_text() -> None:
    captions = [TimedCaption(1.5, 3725.004, "a & b <c> --> d")]
    assert to_vtt(captions) == (
        "WEBVTT\n\n00:00:01.500 --> 01:02:05.004\na &amp; b &lt;c&gt; --&gt; d\n"
    )


@pytest.mark.parametrize(("write", "parse"), [(to_srt, parse_srt), (to_vtt, parse_vtt)])
def test_subtitle_round_trip(write, parse) -> None:
    text = write(TRICKY)
    assert _as_ms(parse(text)) == EXPECTED
    assert [cue_text(c.text) for c in TRICKY] == [e[2] for e in EXPECTED]
    # No blank line inside a cue: the text has exactly one blank line between cues.
    blocks = text.strip("\n").split("\n\n")
    assert len(blocks) == len(TRICKY) + (write is to_vtt)  # the WebVTT header is a block


def test_vtt_cue_text_never_holds_an_arrow_or_raw_markup() -> None:
    lines = to_vtt(TRICKY).splitlines()
    timing = [line for line in lines if "-->" in line]
    assert len(timing) == len(TRICKY)
    assert all(line.count(":") >= 4 for line in timing)  # only timing lines carry the arrow
    assert not any("<" in line or ">" in line for line in lines if line not in timing)


def test_subtitles_with_no_captions() -> None:
    assert to_srt([]) == ""
    assert parse_srt("") == []
    assert to_vtt([]) == "WEBVTT\n"
    assert parse_vtt("WEBVTT\n") == []


def test_parsers_accept_other_tools_conventions() -> None:
    srt = "\ufeff1\r\n00:00:01.000 --> 00:00:02,000\r\nhello\r\n\r\n"
    assert _as_ms(parse_srt(srt)) == [(1000, 2000, "hello")]
    vtt = (
        "WEBVTT - a title\n\nNOTE a comment\n\ncue-1\n00:01.000 --> 00:02.500 align:start\n"
        "<v Anna>hi</v> &amp; bye\n"
    )
    assert _as_ms(parse_vtt(vtt)) == [(1000, 2500, "hi & bye")]


@pytest.mark.parametrize(
    "text",
    [
        "00:00:01,000 --> 00:00:02,000\nno number\n",
        "1\n00:00:01,00 --> 00:00:02,000\nshort ms\n",
        "1\n00:00:61,000 --> 00:00:62,000\nseconds over 59\n",
        "1\n00:00:03,000 --> 00:00:02,000\nbackwards\n",
        "1\n",
    ],
)
def test_parse_srt_rejects_malformed(text: str) -> None:
    with pytest.raises(VidcapError, match=r"^SRT line \d+: "):
        parse_srt(text)


@pytest.mark.parametrize(
    "text",
    [
        "00:00:01.000 --> 00:00:02.000\nno header\n",
        "\nWEBVTT\n",
        "WEBVTT\n00:00:01.000 --> 00:00:02.000\nno blank line after the header\n",
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\na --> b\n",
        "WEBVTT\n\nan id\nnot a timing line\n",
        "WEBVTT\n\n0:00:01.000 --> 00:00:02.000\none-digit hours\n",
    ],
)
def test_parse_vtt_rejects_malformed(text: str) -> None:
    with pytest.raises(VidcapError):
        parse_vtt(text)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")
def test_ffmpeg_converts_our_files(tmp_path: Path) -> None:
    """ffmpeg reads our .srt and .vtt files: it converts each to the other format, cue for cue.

    ffmpeg sorts cues by start time and its WebVTT writer does not escape ``<`` or ``-->``, so these
    cues are in order and their texts avoid those (our own round trip covers them).
    """
    captions = [
        TimedCaption(0.0, 3.2, "a dog & a cat"),
        TimedCaption(3.2, 3.2, "zero length"),
        TimedCaption(5.0, 6.5, "two\nlines"),
        TimedCaption(7.0, 8.0, ""),
        TimedCaption(9.0, 10.0, "café …"),
        TimedCaption(3725.004, 3726.0, "42"),
    ]
    expected = [
        (0, 3200, "a dog & a cat"),
        (3200, 3201, "zero length"),
        (5000, 6500, "two\nlines"),
        (7000, 8000, EMPTY_CUE_TEXT),
        (9000, 10000, "café …"),
        (3725004, 3726000, "42"),
    ]
    (tmp_path / "ours.srt").write_text(to_srt(captions), encoding="utf-8")
    (tmp_path / "ours.vtt").write_text(to_vtt(captions), encoding="utf-8")
    for source, target, parse in [
        ("ours.srt", "ffmpeg.vtt", parse_vtt),
        ("ours.vtt", "ffmpeg.srt", parse_srt),
    ]:
        done = subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", source, target],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert _as_ms(parse((tmp_path / target).read_text(encoding="utf-8"))) == expected, target


# --------------------------------------------------------------------------------------------------
# render


def _results() -> list[VideoCaptions]:
    return [
        VideoCaptions("clips/a.mp4", [TimedCaption(0.0, 10.0, "a dog\nruns")], duration=10.0),
        VideoCaptions("clips/b.mp4", [TimedCaption(0.0, 4.25, "a cat")], duration=4.2504),
    ]


def _dense() -> VideoCaptions:
    return VideoCaptions(
        "long.mp4",
        [
            TimedCaption(0.0, 3.2, "a dog"),
            TimedCaption(3.2, 3725.04, "a\ncat"),
            TimedCaption(1, 2, ""),
        ],
        duration=3725.04,
    )


def test_whole_video_caption() -> None:
    one, _ = _results()
    assert not one.dense
    assert one.caption == "a dog\nruns"
    assert _dense().dense
    assert _dense().caption == "a dog a cat"
    assert VideoCaptions("x.mp4", []).caption == ""


def test_render_text() -> None:
    one, two = _results()
    assert render([one], "text") == "a dog\nruns\n"
    assert render([one, two], "text") == "clips/a.mp4\ta dog runs\nclips/b.mp4\ta cat\n"
    assert render([_dense()], "text") == (
        "[0:00.0-0:03.2] a dog\n[0:03.2-1:02:05.0] a cat\n[0:01.0-0:02.0]\n"
    ).replace("-", EN_DASH)
    # One dense result makes every video's lines timed.
    assert render([one, _dense()], "text") == (
        "clips/a.mp4\n[0:00.0-0:10.0] a dog runs\n\n"
        "long.mp4\n[0:00.0-0:03.2] a dog\n[0:03.2-1:02:05.0] a cat\n[0:01.0-0:02.0]\n"
    ).replace("-", EN_DASH)
    assert render([], "text") == ""


def test_format_clock() -> None:
    assert [format_clock(t) for t in (0, 3.24, 59.96, 61.0, 3599.94, 3600, -0.01)] == [
        "0:00.0",
        "0:03.2",
        "1:00.0",
        "1:01.0",
        "59:59.9",
        "1:00:00.0",
        "0:00.0",
    ]


def test_render_json_is_always_an_array() -> None:
    one, two = _results()
    objects = [
        {
            "video": "clips/a.mp4",
            "duration": 10.0,
            "captions": [{"start": 0.0, "end": 10.0, "text": "a dog\nruns"}],
        },
        {
            "video": "clips/b.mp4",
            "duration": 4.25,
            "captions": [{"start": 0.0, "end": 4.25, "text": "a cat"}],
        },
    ]
    assert json.loads(render([one], "json")) == objects[:1]
    assert json.loads(render([one, two], "json")) == objects
    lines = render([one, two], "jsonl").splitlines()
    assert [json.loads(line) for line in lines] == objects
    assert json.loads(render([], "json")) == []
    dense = json.loads(render([_dense()], "jsonl"))
    assert [c["end"] for c in dense["captions"]] == [3.2, 3725.04, 2.0]


@pytest.mark.parametrize(("fmt", "parse"), [("srt", parse_srt), ("vtt", parse_vtt)])
def test_render_subtitles_for_one_video_only(fmt: str, parse) -> None:
    one, two = _results()
    assert _as_ms(parse(render([_dense()], fmt))) == [
        (0, 3200, "a dog"),
        (3200, 3725040, "a\ncat"),
        (1000, 2000, EMPTY_CUE_TEXT),
    ]
    with pytest.raises(VidcapError, match="--out DIR"):
        render([one, two], fmt)
    with pytest.raises(VidcapError):
        render([], fmt)


def test_unknown_format() -> None:
    assert FORMATS == ("text", "json", "jsonl", "srt", "vtt", "anet")
    with pytest.raises(VidcapError, match="choose one of text, json"):
        render(_results(), "csv")


# --------------------------------------------------------------------------------------------------
# CaptionsWriter: results written as they come


def write_outputs(results: list[VideoCaptions], fmt: str, out: Path | None) -> list[Path]:
    """The results written by a CaptionsWriter, as `vidcap caption` writes them."""
    timed = any(r.dense for r in results)
    with CaptionsWriter(fmt, out, len(results), timed) as writer:
        for result in results:
            writer.add(result)
        return writer.close()


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "anet"])
def test_the_writer_hands_each_result_over_as_it_comes(fmt: str, tmp_path: Path) -> None:
    """A pipeline reading stdout gets every video as soon as it is captioned, and nothing is held:
    the pieces written one by one are the text of the whole document, byte for byte."""
    import io

    results = [*_results(), _dense(), VideoCaptions("naïve/日本.mp4", [], 2.0)]
    stream = io.StringIO()
    writer = CaptionsWriter(fmt, None, len(results), timed=True, stream=stream)
    sizes = []
    for result in results:
        writer.add(result)
        sizes.append(len(stream.getvalue()))
    assert sizes == sorted(sizes) and sizes[0] > 0 and len(set(sizes)) == len(sizes)
    assert stream.getvalue().endswith("\n")  # whole lines only, each flushed as it is complete
    assert writer.close() == [] and stream.getvalue() == render(results, fmt)
    if fmt in ("json", "anet"):  # the same bytes as json.dumps of the whole document
        from vidcap.output.anet import anet_document

        whole = [r.to_json() for r in results] if fmt == "json" else anet_document(results)
        assert stream.getvalue() == json.dumps(whole, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "anet"])
def test_a_failed_video_keeps_its_place_in_json_and_jsonl(fmt: str, tmp_path: Path) -> None:
    """A consumer of json/jsonl tells a video that failed from one never given: its
    {"video", "error"} record stands in its place. The other formats hold captions only."""
    first, second = _results()
    out = tmp_path / f"captions.{fmt}"
    with CaptionsWriter(fmt, out, 3, timed=False) as writer:
        writer.add(first)
        writer.add_failure("broken.mp4", "broken.mp4 is not a video file.")
        writer.add(second)
        writer.close()
    text = out.read_text(encoding="utf-8")
    record = {"video": "broken.mp4", "error": "broken.mp4 is not a video file."}
    if fmt == "json":
        whole = [first.to_json(), record, second.to_json()]
        assert text == json.dumps(whole, indent=2, ensure_ascii=False) + "\n"
    elif fmt == "jsonl":
        assert [json.loads(line) for line in text.splitlines()] == [
            first.to_json(),
            record,
            second.to_json(),
        ]
    else:
        assert text == render([first, second], fmt)  # no trace of it
        assert "broken.mp4" not in text


def test_a_run_whose_every_video_failed_writes_their_records(tmp_path: Path) -> None:
    """json with nothing but failures is still a document (the records), not an empty one."""
    out = tmp_path / "captions.json"
    with CaptionsWriter("json", out, 1, timed=False) as writer:
        writer.add_failure("gone.mp4", "gone.mp4: no such file.")
        writer.close()
    assert json.loads(out.read_text()) == [
        {"video": "gone.mp4", "error": "gone.mp4: no such file."}
    ]


def test_a_writer_left_early_leaves_no_file(tmp_path: Path) -> None:
    """Ctrl-C or a fault midway: the output file is never half-written, and a run with no result
    writes no file."""
    out = tmp_path / "captions.jsonl"
    with pytest.raises(KeyboardInterrupt), CaptionsWriter("jsonl", out, 2, False) as writer:
        writer.add(_results()[0])
        assert not out.exists()  # under a temporary name until closed
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    assert write_outputs([], "json", out) == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(VidcapError, match="use --out DIR"):
        CaptionsWriter("srt", None, 2, True)


def test_write_outputs_several_videos_into_a_folder(tmp_path: Path) -> None:
    results = [
        VideoCaptions("a/clip.mp4", [TimedCaption(0, 1, "first")]),
        VideoCaptions("b/clip.mp4", [TimedCaption(0, 2, "second")]),
        VideoCaptions("c/other.mkv", [TimedCaption(0, 3, "third")]),
        VideoCaptions("d/CLIP.avi", [TimedCaption(0, 4, "fourth")]),
    ]
    out = tmp_path / "subs"
    written = write_outputs(results, "vtt", out)
    names = ["clip.vtt", "clip-2.vtt", "other.vtt", "CLIP-3.vtt"]
    assert written == [out / name for name in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temporary files left
    for path, result in zip(written, results, strict=True):
        assert parse_vtt(path.read_text(encoding="utf-8")) == result.captions


def test_write_outputs_one_video(tmp_path: Path) -> None:
    one = _results()[:1]
    path = tmp_path / "out" / "mine.srt"
    assert write_outputs(one, "srt", path) == [path]
    assert _as_ms(parse_srt(path.read_text(encoding="utf-8"))) == [(0, 10000, "a dog\nruns")]
    # An existing folder gets <stem>.<fmt> inside.
    assert write_outputs(one, "srt", tmp_path) == [tmp_path / "a.srt"]
    assert (tmp_path / "a.srt").read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_write_outputs_single_file_formats(tmp_path: Path) -> None:
    results = _results()
    for fmt in ("text", "json", "jsonl"):
        path = tmp_path / f"captions.{fmt}"
        assert write_outputs(results, fmt, path) == [path]
        assert path.read_text(encoding="utf-8") == render(results, fmt)
    with pytest.raises(VidcapError, match="is a folder"):
        write_outputs(results, "json", tmp_path)


def test_write_outputs_several_videos_need_a_folder(tmp_path: Path) -> None:
    taken = tmp_path / "subs.srt"
    taken.write_text("keep", encoding="utf-8")
    with pytest.raises(VidcapError, match="need a folder"):
        write_outputs(_results(), "srt", taken)
    assert taken.read_text(encoding="utf-8") == "keep"
    assert write_outputs([], "srt", tmp_path / "none") == []


# --------------------------------------------------------------------------------------------------
# Storyboard


def _thumb(rgb: tuple[int, int, int], height: int = 50, width: int = 100) -> np.ndarray:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = rgb
    return image


def _segments(n: int, text: str = "a dog runs after a red ball") -> list[TimedCaption]:
    return [TimedCaption(i * 2.0, i * 2.0 + 1.5, text) for i in range(n)]


def test_storyboard_grid(tmp_path: Path) -> None:
    tile = 100 + 2 * TILE_PADDING
    thumbs = [_thumb((200, 30, 30))] * 5

    path = render_storyboard(
        thumbs, _segments(5), tmp_path / "five.png", columns=3, thumb_width=100
    )
    five = cv2.imread(str(path))
    assert path == tmp_path / "five.png"
    assert five.shape[1] == 3 * tile
    three = cv2.imread(
        str(
            render_storyboard(
                thumbs[:3], _segments(3), tmp_path / "3.png", columns=3, thumb_width=100
            )
        )
    )
    assert three.shape[1] == 3 * tile
    assert five.shape[0] == 2 * three.shape[0]  # equal tiles: two rows are twice as tall as one
    two = cv2.imread(
        str(
            render_storyboard(
                thumbs[:2], _segments(2), tmp_path / "2.png", columns=3, thumb_width=100
            )
        )
    )
    assert two.shape == (three.shape[0], 2 * tile, 3)

    # The thumbnail sits at the tile's padding, in its own colours (RGB in, BGR read back)...
    top_left = five[TILE_PADDING + 10, TILE_PADDING + 10]
    assert top_left.tolist() == [30, 30, 200]
    # ... and is scaled to the thumb width: 200x400 becomes 50x100, like the 50x100 ones.
    big = render_storyboard(
        [_thumb((200, 30, 30), 200, 400)] * 3,
        _segments(3),
        tmp_path / "big.png",
        columns=3,
        thumb_width=100,
    )
    assert cv2.imread(str(big)).shape == three.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.png", "3.png", "big.png", "five.png"]


def test_storyboard_title_and_long_captions(tmp_path: Path) -> None:
    thumbs = [_thumb((0, 128, 0))] * 2
    plain = cv2.imread(str(render_storyboard(thumbs, _segments(2, "short"), tmp_path / "a.png")))
    titled = cv2.imread(
        str(render_storyboard(thumbs, _segments(2, "short"), tmp_path / "b.png", title="clip.mp4"))
    )
    assert titled.shape[1] == plain.shape[1] == 2 * (240 + 2 * TILE_PADDING)
    assert titled.shape[0] > plain.shape[0]
    long_text = "naïve café \u2013 " + "a very long caption " * 12 + "日本"
    wordy = cv2.imread(str(render_storyboard(thumbs, _segments(2, long_text), tmp_path / "c.png")))
    assert wordy.shape[0] > plain.shape[0] + 40  # several more lines


def test_storyboard_text_fits_and_is_drawable() -> None:
    assert (
        drawable("naïve café \u2013 \u201cquoted\u201d …\tend 日本")
        == 'naive cafe - "quoted" ...\x20end ??'
    )
    lines = wrap_text("a very long caption " * 6 + "x" * 80, 120)
    assert len(lines) > 6
    assert all(
        cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0] <= 120 for line in lines
    )
    assert "".join(lines).replace(" ", "") == ("averylongcaption" * 6 + "x" * 80)
    assert wrap_text("first\nsecond", 200) == ["first", "second"]


def test_storyboard_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(VidcapError, match="one thumbnail per caption"):
        render_storyboard([_thumb((0, 0, 0))] * 2, _segments(3), tmp_path / "x.png")
    with pytest.raises(VidcapError, match="at least one"):
        render_storyboard([], [], tmp_path / "x.png")
    with pytest.raises(VidcapError, match=r"\.png"):
        render_storyboard([_thumb((0, 0, 0))], _segments(1), tmp_path / "x.jpg")
    with pytest.raises(VidcapError, match="column"):
        render_storyboard([_thumb((0, 0, 0))], _segments(1), tmp_path / "x.png", columns=0)
    assert list(tmp_path.iterdir()) == []


def test_report_storyboard_is_the_drawn_png_titled_with_the_video(tmp_path: Path) -> None:
    """The report carries each storyboard as PNG bytes (drawn when the video is captioned): the
    same picture render_storyboard writes, with the video's name and length as its title."""
    from vidcap.output.html import report_storyboard

    thumbs = [_thumb((200, 30, 30)), _thumb((30, 200, 30))]
    result = VideoCaptions("/videos/clip one.mp4", _segments(2), duration=75.0)
    png = report_storyboard(result, thumbs)
    drawn = render_storyboard(
        thumbs, _segments(2), tmp_path / "s.png", title="clip one.mp4 (1:15.0)"
    )
    assert png is not None and png.startswith(b"\x89PNG") and png == drawn.read_bytes()
    assert report_storyboard(VideoCaptions("a.mp4", [], duration=1.0), []) is None
    assert report_storyboard(result, []) is None


def test_the_report_writes_each_videos_page_as_it_comes_and_the_index_last(
    tmp_path: Path,
) -> None:
    """Nothing of a video is held for the report but its index row; a folder with an index page
    is a finished report (an earlier report's index goes when a new one starts)."""
    from vidcap.output.html import ReportVideo, ReportWriter

    out = tmp_path / "report"
    out.mkdir()
    (out / "index.html").write_text("an earlier report")
    card = {"name": "m", "arch": "bart", "task": "caption"}
    report = ReportWriter(out, card)
    first, second = _results()
    report.add(ReportVideo(first, b"\x89PNG first"))
    assert not (out / "index.html").exists()
    assert (out / "a.html").is_file() and (out / "a.png").read_bytes() == b"\x89PNG first"
    report.add(ReportVideo(VideoCaptions("other/a.mp4", first.captions, 10.0)))
    report.add(ReportVideo(second))
    assert (out / "a-2.html").is_file() and not (out / "a-2.png").exists()
    index = report.close([("bad.mp4", "bad.mp4 is not a video.")]).read_text()
    assert index.index('href="a.html"') < index.index('href="a-2.html"') < index.index("b.html")
    assert "3 videos captioned" in index and "bad.mp4 is not a video." in index
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".tmp")) == []


def test_the_report_shows_what_to_know_before_trusting_a_videos_captions(tmp_path: Path) -> None:
    """A video unlike the training videos (or decoded in part) says so above its player and in
    its row of the index, as the CLI says it on stderr; failures are counted in the header and
    marked in words, not by colour alone; a dense video's segments stay apart in the index."""
    from vidcap.output.html import ReportVideo, ReportWriter

    card = {"name": "m", "arch": "bart", "task": "caption", "parameters": 1534208}
    report = ReportWriter(tmp_path, card)
    first, second = _results()
    flagged = "clips/a.mp4 is unlike the videos the model was trained on (score 1.05 > 1.03)."
    report.add(ReportVideo(first, notices=[flagged]))
    report.add(ReportVideo(_dense()))
    report.add(ReportVideo(second))
    index = report.close([("bad.mp4", "bad.mp4 is not a video.")]).read_text()
    page = (tmp_path / "a.html").read_text()
    notice = '<ul class="notices" role="note">\n<li>clips/a.mp4 is unlike the videos'
    assert notice in page and page.index(notice) < page.index("<video")
    assert "notices" not in (tmp_path / "b.html").read_text()
    rows = index.split("<tr")
    assert [notice in row for row in rows if row.startswith("><td><a href=")] == [
        True,
        False,
        False,
    ]
    assert "a dog \u00b7 a cat" in index  # _dense(): "a dog", then "a\ncat"
    assert "3 videos captioned by m (bart, task caption) \u00b7 1 could not be captioned" in index
    assert "<strong>Failed:</strong> bad.mp4 is not a video." in index
    assert "<dd>1,534,208</dd>" in index


def test_a_storyboard_is_titled_alike_in_the_report_and_by_preview() -> None:
    from vidcap.output.html import storyboard_title

    assert storyboard_title(VideoCaptions("clips/a b.mp4", [], duration=7.24)) == "a b.mp4 (0:07.2)"
    assert storyboard_title(VideoCaptions("x.webm", [], duration=None)) == "x.webm (\u2014)"


def test_megabytes_are_written_as_people_give_them() -> None:
    from vidcap.output.formats import megabytes

    assert megabytes(500 * 2**20) == "500 MB" and megabytes(52429) == "0.05 MB"
    assert megabytes(2 * 2**30) == "2,048 MB"  # not 2048 or 2.048e+03


def test_the_model_card_groups_its_settings_under_their_names() -> None:
    """Not 28 rows of "extract clip frames", "training validation loss"...: each group of
    settings under its own name, the plain entries first."""
    from vidcap.output.html import card_html

    card = {
        "name": "m",
        "extract": {"fps": 20.0, "clip_frames": 30},
        "inputs": {},
        "training": {"lr": 0.0005, "validation": {"loss": 2.7}},
        "task": "caption",
    }
    html = card_html(card)
    assert html.index("<dt>task</dt>") < html.index('<dt class="group">extract</dt>')
    assert '<dt class="group">extract</dt>\n<dt>fps</dt><dd>20</dd>' in html
    assert "<dt>validation loss</dt><dd>2.7</dd>" in html
    assert "extract fps" not in html and '"group">inputs' not in html  # an empty group: none
