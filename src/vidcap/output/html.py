"""Pages to watch captions: a report folder that opens from ``file://`` with no network.

``vidcap caption VIDEO... --html report/`` writes::

    report/index.html         the videos, their captions and the model that made them
    report/<stem>.html        a player: the video with its captions as a WebVTT track shown by
                              default, the timed captions beside it (click one to seek there; the
                              current one is highlighted), the storyboard, the model card
    report/<stem>.vtt|.png    the captions as WebVTT and the storyboard, for use elsewhere
    report/videos/            the videos, with --copy-videos (else the pages link them in place)
    report/player.js|.css     the hand-written player (shared with ``vidcap serve``'s page)

Videos are never re-encoded: a codec the browser cannot play (MPEG-4 part 2, say) shows a line
saying so under the player. A track loaded from a ``.vtt`` file would be refused from ``file://``
(browsers treat every local file as its own origin), so each page carries its track as a
``data:`` URL; the ``.vtt`` file beside it is the same text.

``vidcap evaluate --html DIR`` writes ``DIR/index.html``: per segment, the model's caption beside
the references, the facts it got wrong marked (:func:`write_evaluation_page`).

Every file is written atomically, each video's as soon as it is captioned; ``index.html`` last
(an earlier one is removed first), so a folder with one is complete.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from vidcap.artifacts import atomic_path, atomic_write_bytes, atomic_write_text
from vidcap.output.formats import (
    EMPTY_CUE_TEXT,
    EN_DASH,
    VideoCaptions,
    format_clock,
    megabytes,
    to_vtt,
    unique_stem,
)
from vidcap.output.storyboard import storyboard_png

STATIC_FILES = ("player.css", "player.js", "upload.js")
"""The page assets, package data in ``vidcap/output/static`` (``upload.js``: the service page's)."""
REPORT_FILES = ("player.css", "player.js")
_SEGMENTS = " \u00b7 "  # between a dense video's captions in its row of the index


def static_text(name: str) -> str:
    """One of :data:`STATIC_FILES` (also served by ``vidcap serve`` under ``/static/``)."""
    return resources.files("vidcap.output").joinpath("static", name).read_text(encoding="utf-8")


@dataclass
class ReportVideo:
    """One captioned video for the report, with its storyboard (:func:`report_storyboard`; None:
    no storyboard).

    The storyboard is carried as its PNG bytes, drawn as soon as the video is captioned: what
    processes under a launcher send to the main one is the compressed picture, not raw
    thumbnails. :class:`ReportWriter` writes it out at once.
    """

    result: VideoCaptions
    storyboard: bytes | None = None
    notices: list[str] = field(default_factory=list)
    """What a reader must know before trusting the captions, a sentence each (the video is
    unlike the model's training videos; its decoder read only part of it): shown above its
    player and in its row of the index."""


def storyboard_title(result: VideoCaptions) -> str:
    """A storyboard's title, in the report as in ``--preview``: the video's name and length."""
    return f"{Path(result.video).name} ({_duration(result)})"


def report_storyboard(result: VideoCaptions, thumbnails: Sequence[np.ndarray]) -> bytes | None:
    """The report's storyboard of ``result`` (one thumbnail per caption) as PNG bytes
    (:func:`storyboard_title`); None when there is no caption (or no thumbnail)."""
    if not thumbnails or not result.captions:
        return None
    return storyboard_png(list(thumbnails), result.captions, title=storyboard_title(result))


# --------------------------------------------------------------------------------------------------
# Pieces of pages


def page(title: str, body: str, script: bool = True) -> str:
    """A whole HTML document with the local stylesheet (and player script)."""
    tail = '<script src="player.js"></script>\n' if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # No icon: else the browser asks for /favicon.ico (a 404 from `vidcap serve`).
        '<link rel="icon" href="data:,">\n'
        f"<title>{escape(title)}</title>\n"
        '<link rel="stylesheet" href="player.css">\n</head>\n'
        f"<body>\n{body}\n{tail}</body>\n</html>\n"
    )


def _header(title: str, meta: str, back: bool) -> str:
    link = '<a href="index.html">&larr; All videos</a>\n' if back else ""
    return (
        f'<header class="top">\n{link}<h1>{escape(title)}</h1>\n'
        f'<div class="meta">{escape(meta)}</div>\n</header>'
    )


def vtt_data_url(result: VideoCaptions) -> str:
    """The captions as WebVTT in a ``data:`` URL (a ``<track>`` that loads from ``file://``)."""
    data = base64.b64encode(to_vtt(result.captions).encode("utf-8")).decode("ascii")
    return f"data:text/vtt;charset=utf-8;base64,{data}"


def player(video_src: str, result: VideoCaptions) -> str:
    """The player: ``<video>`` with its captions as a default ``<track>``, and the caption list
    (wired by ``player.js``; the list is readable without it)."""
    items = []
    for c in result.captions:
        text = c.text.strip() or EMPTY_CUE_TEXT
        items.append(
            f'<li><button type="button" data-start="{c.start:.3f}" data-end="{c.end:.3f}">'
            f'<span class="time">{format_clock(c.start)}{EN_DASH}{format_clock(c.end)}</span>'
            f'<span class="text">{escape(text)}</span></button></li>'
        )
    src = escape(video_src, quote=True)
    return (
        '<div class="player" data-ready>\n<div>\n'
        f'<video controls preload="metadata" src="{src}">\n'
        f'<track default kind="captions" srclang="en" label="vidcap" src="{vtt_data_url(result)}">\n'
        "</video>\n"
        '<p class="video-error" hidden>This browser cannot play this video\'s codec (vidcap '
        f'never re-encodes videos): <a href="{src}">open the file</a> in a video player, or '
        "convert it, e.g. <code>ffmpeg -i VIDEO -c:v libx264 -pix_fmt yuv420p VIDEO.mp4</code>."
        "</p>\n"
        "</div>\n"
        f'<ol class="captions" aria-label="Captions">\n{"".join(items)}\n</ol>\n</div>'
    )


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "\u2014"}[value]
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"  # parameters 1,534,208
    return str(value)


def notices_html(notices: Sequence[str]) -> str:
    """Sentences a reader must see before trusting the captions, marked as warnings ("" for
    none)."""
    if not notices:
        return ""
    items = "".join(f"<li>{escape(n)}</li>" for n in notices)
    return f'<ul class="notices" role="note">\n{items}\n</ul>'


def _flatten(card: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in card.items():
        name = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, Mapping):
            rows += _flatten(value, f"{prefix}{key} ")
        else:
            rows.append((name, _value(value)))
    return rows


def card_html(card: Mapping[str, Any]) -> str:
    """A model card (:func:`vidcap.card.model_card`) as a definition list: its plain entries
    first, then each group of settings (extract, inputs, generation, training) under its name."""

    def entries(values: Mapping[str, Any]) -> list[str]:
        return [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>\n" for k, v in _flatten(values)]

    html = entries({k: v for k, v in card.items() if not isinstance(v, Mapping)})
    for group, values in card.items():
        if isinstance(values, Mapping) and values:
            html.append(f'<dt class="group">{escape(group.replace("_", " "))}</dt>\n')
            html += entries(values)
    return '<dl class="card">\n' + "".join(html) + "</dl>"


# --------------------------------------------------------------------------------------------------
# The report folder


def _video_src(video: Path, out: Path, copy_to: Path | None) -> str:
    """The video's URL relative to the report folder: the copy, or the original in place."""
    target = copy_to if copy_to is not None else video.resolve()
    try:
        relative = os.path.relpath(target, out.resolve())
    except ValueError:  # another drive (Windows): no relative path
        return target.as_uri()
    return quote(Path(relative).as_posix())


def _copy_video(video: Path, target: Path) -> None:
    """Copy a video into the report as it is (atomically: a half copy never has the real name)."""
    if target.is_file() and target.stat().st_size == video.stat().st_size:
        return  # copied by an earlier run of the same report
    with atomic_path(target) as tmp:
        shutil.copyfile(video, tmp)


def _duration(result: VideoCaptions) -> str:
    return format_clock(result.duration) if result.duration is not None else "\u2014"


class ReportWriter:
    """Writes the report folder (see the module docstring) a video at a time: each video's page,
    subtitles and storyboard as soon as it comes, in the order listed; :meth:`close` writes the
    index page. What is held until then is one row of the index per video, not its storyboard.

    Args:
        out: the folder (created if needed; files of an earlier report there are replaced).
        card: the model card shown on every page.
        copy_videos: copy each video into ``out/videos/`` (else pages link the original).
    """

    def __init__(self, out: str | Path, card: Mapping[str, Any], copy_videos: bool = False) -> None:
        self.out, self.card, self.copy_videos = Path(out), card, copy_videos
        self.model = f"{card.get('name')} ({card.get('arch')}, task {card.get('task')})"
        self.rows: list[str] = []
        self._stems = {"index"}  # the file stems taken so far (a video named index.* too)

    def _start(self) -> None:
        """The folder and the files every page uses, before the first page. An index page of an
        earlier report goes: a folder with ``index.html`` is a finished report."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "index.html").unlink(missing_ok=True)
        for name in REPORT_FILES:
            atomic_write_text(self.out / name, static_text(name))

    def add(self, item: ReportVideo) -> None:
        """Write one captioned video's page, subtitles and storyboard."""
        out = self.out
        if not self.rows:
            self._start()
        result, source = item.result, Path(item.result.video)
        stem = unique_stem(result.video, self._stems)
        copy_to = out / "videos" / f"{stem}{source.suffix}" if self.copy_videos else None
        if copy_to is not None:
            _copy_video(source, copy_to)
        atomic_write_text(out / f"{stem}.vtt", to_vtt(result.captions))
        storyboard = ""
        if item.storyboard is not None:
            atomic_write_bytes(out / f"{stem}.png", item.storyboard)
            storyboard = (
                "<section>\n<h2>Storyboard</h2>\n"
                f'<img class="storyboard" src="{quote(stem)}.png" '
                f'alt="A thumbnail of each captioned segment of {escape(source.name)}">\n</section>'
            )
        count = f"{len(result.captions)} caption{'s' if len(result.captions) != 1 else ''}"
        body = (
            _header(
                source.name, f"{_duration(result)} \u00b7 {count} \u00b7 {self.model}", back=True
            )
            + "\n<main>\n"
            + notices_html(item.notices)
            + player(_video_src(source, out, copy_to), result)
            + f"\n{storyboard}\n"
            + f"<section>\n<h2>Model</h2>\n{card_html(self.card)}\n</section>\n"
            + f'<p class="muted"><a href="{quote(stem)}.vtt">{escape(stem)}.vtt</a> \u00b7 '
            + f"source: {escape(str(source))}</p>\n</main>"
        )
        atomic_write_text(out / f"{stem}.html", page(f"{source.name} \u2014 vidcap", body))
        self.rows.append(
            f'<tr><td><a href="{quote(stem)}.html">{escape(source.name)}</a></td>'
            f'<td class="num">{_duration(result)}</td><td class="num">{len(result.captions)}</td>'
            f"<td>{escape(result.joined(_SEGMENTS))}{notices_html(item.notices)}</td></tr>"
        )

    def close(self, failures: Sequence[tuple[str, str]] = ()) -> Path:
        """Write the index page, listing the videos added and ``failures`` (``(video, error
        sentence)`` of videos that could not be captioned); returns its path."""
        out = self.out
        if not self.rows:  # no video came: the index page still lists the failures
            self._start()
        failed = "".join(
            f'<tr class="failed"><td>{escape(Path(v).name)}</td>'
            f'<td colspan="3"><strong>Failed:</strong> {escape(e)}</td></tr>'
            for v, e in failures
        )
        table = (
            '<table class="list videos">\n<thead><tr><th>Video</th><th>Length</th>'
            "<th>Captions</th><th>Caption</th></tr></thead>\n<tbody>\n"
            + "\n".join(self.rows)
            + failed
            + "\n</tbody>\n</table>"
        )
        n = len(self.rows)
        meta = f"{n} video{'s' if n != 1 else ''} captioned by {self.model}"
        if failures:
            meta += f" \u00b7 {len(failures)} could not be captioned"
        body = (
            _header("Captions", meta, back=False)
            + f"\n<main>\n{table}\n"
            + f"<section>\n<h2>Model</h2>\n{card_html(self.card)}\n</section>\n</main>"
        )
        index = out / "index.html"
        atomic_write_text(index, page("Captions \u2014 vidcap", body, script=False))
        return index


# --------------------------------------------------------------------------------------------------
# The service page (``vidcap serve``, GET /)


def service_page(card: Mapping[str, Any], endpoint: str, max_upload_bytes: int) -> str:
    """The page ``vidcap serve`` shows at ``/``: drop a video, see the upload's progress, then
    watch it with its captions in the report's player (``endpoint`` is where the model's task is
    served; the page captions only, other tasks point to ``/docs``). A video over
    ``max_upload_bytes`` is refused by the page before it is sent."""
    model = f"{card.get('name')} ({card.get('arch')}, task {card.get('task')})"
    clip = (card.get("extract") or {}).get("clip_seconds")
    whole = f"whole {round(clip, 2):g} s clips; " if clip else ""  # windows are whole clips
    if card.get("task") != "caption":
        form = (
            f"<p>This model is finetuned for {escape(str(card.get('task')))}: call "
            f'<code>POST {escape(endpoint)}</code> (see <a href="docs">the API docs</a>).</p>'
        )
    else:
        limit = megabytes(max_upload_bytes)
        form = f"""<form id="upload" action="v1/caption" method="post" enctype="multipart/form-data"
data-max-bytes="{max_upload_bytes}" data-max-text="{limit}">
<label class="drop" id="drop">
<input type="file" name="video" accept="video/*" id="file">
<strong>Drop a video here</strong> or click to choose one <span class="muted">(up to {limit})</span>
</label>
<p class="options"><label><input type="checkbox" id="dense" checked> Timed captions</label>
<label>windows of about <input type="number" id="seconds" min="0.1" step="any"
placeholder="auto"> seconds ({whole}empty: cut where the picture changes)</label></p>
<progress id="progress" value="0" max="1" hidden></progress>
<div class="status" id="status" role="status"></div>
</form>
<section id="result" hidden>
<h2 id="result-name"></h2>
<ul class="notices" role="note" id="notices" hidden></ul>
<div class="player" id="player">
<div><video controls preload="metadata"></video>
<p class="video-error" hidden>This browser cannot play this video's codec; its captions are
listed all the same.</p></div>
<ol class="captions" aria-label="Captions"></ol>
</div>
</section>"""
    body = (
        _header("vidcap", f"Captions from {model}", back=False)
        + f"\n<main>\n{form}\n"
        + f"<section>\n<h2>Model</h2>\n{card_html(card)}\n"
        + '<p class="muted"><a href="docs">API docs</a> \u00b7 '
        + '<a href="v1/model">model as JSON</a></p>\n</section>\n</main>\n'
        + '<script src="player.js"></script>\n<script src="upload.js"></script>'
    )
    return page("vidcap", body, script=False)


# --------------------------------------------------------------------------------------------------
# An evaluation (``vidcap evaluate --html DIR``)


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else _value(value)


def _scores_table(report: Mapping[str, Any]) -> str:
    scores = {k: v for k, v in (report.get("scores") or {}).items() if v}
    if not scores:
        return ""
    metrics = list(next(iter(scores.values())))
    head = "".join(f"<th>{escape(m)}</th>" for m in metrics)
    rows = "".join(
        f"<tr><td>{escape(name.replace('_', ' '))}</td>"
        + "".join(f'<td class="num">{_score(values.get(m))}</td>' for m in metrics)
        + "</tr>\n"
        for name, values in scores.items()
    )
    return f'<div class="scroll">\n<table class="list">\n<tr><th></th>{head}</tr>\n{rows}</table>\n</div>'


def _facts_cell(row: Mapping[str, Any]) -> str:
    facts = row.get("facts")
    if not facts:
        return '<span class="muted">\u2014</span>'
    wrong = set(row.get("wrong", ()))
    return ", ".join(
        f'<span class="fact-{"wrong" if k in wrong else "right"}" data-fact="{escape(k)}" '
        f'title="{escape(k)}: {"not in" if k in wrong else "named by"} the caption">'
        f"{chr(0x2717) if k in wrong else chr(0x2713)} {escape(str(v))}</span>"
        for k, v in facts.items()
    )


def write_evaluation_page(
    out: str | Path,
    report: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    card: Mapping[str, Any],
) -> Path:
    """``out/index.html``: the scores, then per segment the model's caption beside the references,
    the true facts it got wrong marked, and a link that plays the segment (a media fragment
    ``#t=start,end`` on the video, linked in place). Returns the page's path.

    Args:
        out: the folder (created if needed).
        report: ``EvaluationReport.to_json()``.
        rows: ``EvaluationReport.rows``.
        card: the model card.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "player.css", static_text("player.css"))
    lines = []
    for row in rows:
        video = Path(row["video"])
        src = f"{_video_src(video, out, None)}#t={row['start']:.2f},{row['end']:.2f}"
        refs = "".join(f"<li>{escape(r)}</li>" for r in row["references"])
        marked = ' class="failed"' if row.get("wrong") else ""
        lines.append(
            f'<tr><td><a href="{escape(src, quote=True)}">{escape(video.name)}</a><br>'
            f'<span class="muted">{format_clock(row["start"])}{EN_DASH}{format_clock(row["end"])}</span></td>'
            f"<td{marked}>{escape(row['caption'] or EMPTY_CUE_TEXT)}</td>"
            f'<td><ul class="refs">{refs}</ul></td><td>{_facts_cell(row)}</td></tr>'
        )
    facts = report.get("fact_accuracy", {}).get("captioner")
    fact_line = (
        "<p>Facts named right: "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in facts.items() if k != "count")
        + f" (of {facts.get('count')} captions).</p>"
        if facts
        else ""
    )
    notices = "".join(f"<li>{escape(n)}</li>" for n in report.get("notices", []))
    model = f"{card.get('name')} ({card.get('arch')}, task {card.get('task')})"
    meta = f"split {report.get('split')} \u00b7 {report.get('segments')} segments of {report.get('videos')} videos \u00b7 {model}"
    body = (
        _header("Evaluation", meta, back=False)
        + f"\n<main>\n<section>\n<h2>Scores</h2>\n{_scores_table(report)}\n{fact_line}\n"
        + (f'<ul class="muted">{notices}</ul>\n' if notices else "")
        + "</section>\n<section>\n<h2>Segments</h2>\n"
        + '<div class="scroll">\n<table class="list segments">\n<tr><th>Video</th><th>Caption</th>'
        + "<th>References</th><th>Facts (\u2717 not in the caption)</th></tr>\n"
        + "\n".join(lines)
        + f"\n</table>\n</div>\n</section>\n<section>\n<h2>Model</h2>\n{card_html(card)}\n</section>\n</main>"
    )
    index = out / "index.html"
    atomic_write_text(index, page("Evaluation \u2014 vidcap", body, script=False))
    return index
