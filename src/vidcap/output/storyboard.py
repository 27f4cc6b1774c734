"""A storyboard: one picture of a video's segments, each a thumbnail over its time range and caption.

It lets a person check dense captions at a glance, without a player. Text is drawn with OpenCV's
built-in font, so no font files are needed; only printable ASCII is drawn (see :func:`drawable`).
"""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

import cv2
import numpy as np

from vidcap.artifacts import atomic_write_bytes
from vidcap.errors import VidcapError
from vidcap.output.formats import TimedCaption, format_clock

TILE_PADDING = 8  # pixels around a thumbnail inside its tile: a tile is thumb_width + 2 * this wide
MIN_THUMB_WIDTH = 32

# Colours are RGB: the canvas is RGB like the thumbnails, and is turned to BGR only to encode it.
_BACKGROUND = (245, 245, 245)
_TITLE_BACKGROUND = (220, 220, 220)
_TEXT_COLOUR = (20, 20, 20)
_TIME_COLOUR = (90, 90, 90)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT_SCALE = 0.45
_TITLE_SCALE = 0.65
_THICKNESS = 1
_LINE_GAP = 4  # pixels between lines of text
# Punctuation that NFKD leaves alone but that has a close ASCII look-alike.
# (Written as escapes: en and em dash, curly quotes, bullet, guillemets.)
_ASCII_PUNCTUATION = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2022": "*",
        "\u00ab": '"',
        "\u00bb": '"',
    }
)


def drawable(text: str) -> str:
    """``text`` reduced to what ``cv2.putText`` can draw: printable ASCII on one line.

    OpenCV 4's Hershey fonts have no other glyphs: each byte of a UTF-8 character is drawn as ``?``,
    so "é" would come out as "??" and the width measured for wrapping would be wrong; reducing the
    text first gives the same picture on every OpenCV version. Accents are
    dropped ("é" → "e"), compatibility forms expanded ("…" → "...") and common punctuation mapped to
    ASCII; any other character becomes a single ``?``. Whitespace (line breaks too) becomes spaces.
    """
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_PUNCTUATION))
    chars = []
    for char in decomposed:
        if unicodedata.combining(char):
            continue
        if char.isspace():
            chars.append(" ")
        else:
            chars.append(char if " " <= char <= "~" else "?")
    return "".join(chars)


def _text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, _FONT, scale, _THICKNESS)[0][0]


def _line_metrics(scale: float) -> tuple[int, int]:
    """(height above the baseline, height of a line including the gap) for the font at ``scale``."""
    (_, ascent), descent = cv2.getTextSize("Ag", _FONT, scale, _THICKNESS)
    return ascent, ascent + descent + _LINE_GAP


def wrap_text(text: str, width: int, scale: float = _TEXT_SCALE) -> list[str]:
    """Split ``text`` into lines no wider than ``width`` pixels when drawn at ``scale``.

    Breaks between words; line breaks in ``text`` are kept; a word wider than ``width`` on its own
    is cut wherever it has to be. The text is passed through :func:`drawable` first.
    """
    lines = []
    for paragraph in text.splitlines():
        line = ""
        for word in drawable(paragraph).split():
            candidate = f"{line} {word}" if line else word
            if _text_width(candidate, scale) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and _text_width(word, scale) > width:
                cut = len(word) - 1
                while cut > 1 and _text_width(word[:cut], scale) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
    return lines


def _fit_width(image: np.ndarray, width: int) -> np.ndarray:
    """An HxWx3 uint8 image scaled to ``width`` pixels wide, its aspect ratio kept."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise ValueError(
            f"thumbnails must be non-empty HxWx3 uint8 RGB arrays, got {array.dtype} {array.shape}"
        )
    h, w = array.shape[:2]
    height = max(1, round(h * width / w))
    # INTER_AREA averages when shrinking (no aliasing); it is blocky when enlarging.
    interp = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(array), (width, height), interpolation=interp)


def _draw_lines(
    canvas: np.ndarray,
    lines: list[str],
    left: int,
    top: int,
    scale: float,
    colour: tuple[int, int, int],
) -> int:
    """Draw ``lines`` from ``top`` down; returns the y just below the last line."""
    ascent, line_h = _line_metrics(scale)
    for line in lines:
        origin = (left, top + ascent)  # putText places the baseline at the origin
        cv2.putText(canvas, line, origin, _FONT, scale, colour, _THICKNESS, cv2.LINE_AA)
        top += line_h
    return top


def render_storyboard(
    thumbnails: list[np.ndarray],
    captions: list[TimedCaption],
    path: Path,
    title: str | None = None,
    columns: int = 4,
    thumb_width: int = 240,
) -> Path:
    """Write :func:`storyboard_png` of these segments to ``path``, atomically (its folder is
    created if needed); returns ``path``.

    Raises:
        VidcapError: as :func:`storyboard_png`, or a path not ending in ``.png``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise VidcapError(f"A storyboard is a PNG image; name it .png instead of {path.name}.")
    atomic_write_bytes(path, storyboard_png(thumbnails, captions, title, columns, thumb_width))
    return path


def storyboard_png(
    thumbnails: list[np.ndarray],
    captions: list[TimedCaption],
    title: str | None = None,
    columns: int = 4,
    thumb_width: int = 240,
) -> bytes:
    """Draw one tile per segment — its thumbnail, time range and wrapped caption — into a grid,
    as PNG bytes.

    Args:
        thumbnails: one HxWx3 uint8 RGB image per segment, scaled to ``thumb_width`` (aspect kept).
        captions: the segments, in the order their tiles are laid out (left to right, top down).
        title: drawn in a bar across the top when given (e.g. the video's name).
        columns: tiles per row; fewer when there are fewer segments.
        thumb_width: width of each thumbnail in pixels.

    Returns:
        The PNG file's bytes. The image is ``min(columns, len(captions)) * (thumb_width + 2 *
        TILE_PADDING)`` pixels wide; each row is as tall as its tallest tile.

    Raises:
        VidcapError: no segments, a thumbnail count different from the caption count, or a bad
            ``columns`` or ``thumb_width``.
    """
    if len(thumbnails) != len(captions):
        raise VidcapError(
            f"A storyboard needs one thumbnail per caption, got {len(thumbnails)} thumbnails "
            f"for {len(captions)} captions."
        )
    if not captions:
        raise VidcapError("A storyboard needs at least one captioned segment.")
    if columns < 1:
        raise VidcapError(f"A storyboard needs at least 1 column, got {columns}.")
    if thumb_width < MIN_THUMB_WIDTH:
        raise VidcapError(
            f"Storyboard thumbnails must be at least {MIN_THUMB_WIDTH} pixels wide, got {thumb_width}."
        )
    columns = min(columns, len(captions))
    tile_w = thumb_width + 2 * TILE_PADDING
    width = columns * tile_w
    _, line_h = _line_metrics(_TEXT_SCALE)
    _, title_line_h = _line_metrics(_TITLE_SCALE)

    images = [_fit_width(t, thumb_width) for t in thumbnails]
    # The built-in font has no en dash, so the time range uses a hyphen. It is wrapped too: at small
    # thumb widths "1:02:03.4-1:02:05.0" is wider than the tile.
    spans = [
        wrap_text(f"{format_clock(c.start)}-{format_clock(c.end)}", thumb_width) for c in captions
    ]
    texts = [wrap_text(c.text, thumb_width) for c in captions]
    # A tile: padding, thumbnail, gap, time range, caption lines, padding.
    tile_heights = [
        TILE_PADDING + img.shape[0] + _LINE_GAP + line_h * (len(span) + len(lines)) + TILE_PADDING
        for img, span, lines in zip(images, spans, texts, strict=True)
    ]
    row_heights = [
        max(tile_heights[r * columns : (r + 1) * columns])
        for r in range(math.ceil(len(captions) / columns))
    ]
    title_lines = wrap_text(title, width - 2 * TILE_PADDING, _TITLE_SCALE) if title else []
    title_h = 2 * TILE_PADDING + title_line_h * len(title_lines) if title_lines else 0

    canvas = np.empty((title_h + sum(row_heights), width, 3), dtype=np.uint8)
    canvas[:] = _BACKGROUND
    if title_lines:
        canvas[:title_h] = _TITLE_BACKGROUND
        _draw_lines(canvas, title_lines, TILE_PADDING, TILE_PADDING, _TITLE_SCALE, _TEXT_COLOUR)

    for i, (image, span, lines) in enumerate(zip(images, spans, texts, strict=True)):
        row, col = divmod(i, columns)
        left = col * tile_w + TILE_PADDING
        top = title_h + sum(row_heights[:row]) + TILE_PADDING
        canvas[top : top + image.shape[0], left : left + thumb_width] = image
        below = top + image.shape[0] + _LINE_GAP
        below = _draw_lines(canvas, span, left, below, _TEXT_SCALE, _TIME_COLOUR)
        _draw_lines(canvas, lines, left, below, _TEXT_SCALE, _TEXT_COLOUR)

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise VidcapError(
            f"OpenCV could not encode the {width} x {canvas.shape[0]} storyboard as PNG."
        )
    return encoded.tobytes()
