"""A picture of the vocabulary: for each word, a label and thumbnails of clips assigned to it.

This is the VideoBERT paper's figure of the clips nearest each centroid, used by
``vidcap quantize inspect`` to let a person judge whether words mean anything visually.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vidcap.artifacts import atomic_path
from vidcap.errors import VidcapError

_BACKGROUND = (255, 255, 255)
_PAD_COLOUR = (200, 200, 200)  # letterbox around thumbnails that are not square
_TEXT_COLOUR = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Any HxW, HxWx1, HxWx3 or HxWx4 image as uint8 RGB (alpha dropped, values clipped)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise VidcapError(f"A thumbnail has shape {array.shape}; expected an HxWx3 RGB image.")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` scaled to fit a ``size`` x ``size`` square (aspect kept), centred on grey padding."""
    rgb = _as_rgb(image)
    out = np.empty((size, size, 3), dtype=np.uint8)
    out[:] = _PAD_COLOUR
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        return out
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    # INTER_AREA averages when shrinking (no aliasing); it is blocky when enlarging.
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=interp)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def render_word_grid(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    path: str | Path,
    thumb_size: int = 64,
    *,
    max_thumbs: int | None = None,
    pad: int = 4,
) -> Path:
    """Draw one row per word — its label on the left, then its thumbnails — and write an image.

    Args:
        rows: ``(label, images)`` per word; the label may hold ``\\n`` for several lines (e.g.
            ``"word 1234\\n87 clips"``); images are uint8 RGB arrays of any size.
        path: where to write; the format follows the suffix (``.png`` recommended). Written
            atomically.
        thumb_size: side of the square each thumbnail is fitted into, in pixels.
        max_thumbs: at most this many thumbnails per row (default: all given).
        pad: pixels between cells and around the edge.

    Returns:
        ``path``. The image is ``pad + len(rows) * (row_height + pad)`` pixels high, where the row
        height is ``thumb_size`` (or the label's height, if taller), and
        ``pad + label_width + columns * (thumb_size + pad)`` wide.

    Raises:
        VidcapError: no rows, a bad size, an unsupported suffix, or an image that cannot be written.
    """
    path = Path(path)
    if not rows:
        raise VidcapError("There are no words to draw.")
    if thumb_size < 8:
        raise VidcapError(f"--thumb-size must be at least 8 pixels, got {thumb_size}.")
    if path.suffix.lower() not in _IMAGE_SUFFIXES:
        raise VidcapError(f"Cannot write an image named {path.name}; use a .png file name.")
    pad = max(0, pad)
    font_scale = max(0.35, thumb_size / 128)
    thickness = 1 if thumb_size < 128 else 2

    labels = [str(label).splitlines() or [""] for label, _ in rows]
    (_, text_h), baseline = cv2.getTextSize("Ag", _FONT, font_scale, thickness)
    line_h = text_h + baseline + 2
    label_w = max(
        cv2.getTextSize(line, _FONT, font_scale, thickness)[0][0]
        for lines in labels
        for line in lines
    )
    label_w += 2 * pad
    row_h = max(thumb_size, line_h * max(len(lines) for lines in labels))
    images = [list(imgs)[:max_thumbs] if max_thumbs is not None else list(imgs) for _, imgs in rows]
    columns = max((len(imgs) for imgs in images), default=0)

    height = pad + len(rows) * (row_h + pad)
    width = pad + label_w + columns * (thumb_size + pad)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = _BACKGROUND
    for r, (lines, imgs) in enumerate(zip(labels, images, strict=True)):
        top = pad + r * (row_h + pad)
        text_top = top + (row_h - line_h * len(lines)) // 2
        for i, line in enumerate(lines):
            origin = (pad, text_top + i * line_h + text_h)
            cv2.putText(
                canvas, line, origin, _FONT, font_scale, _TEXT_COLOUR, thickness, cv2.LINE_AA
            )
        thumb_top = top + (row_h - thumb_size) // 2
        for c, image in enumerate(imgs):
            left = pad + label_w + c * (thumb_size + pad)
            canvas[thumb_top : thumb_top + thumb_size, left : left + thumb_size] = thumbnail(
                image, thumb_size
            )

    with atomic_path(path) as tmp:
        # The canvas is RGB; OpenCV writes BGR.
        if not cv2.imwrite(str(tmp), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
            raise VidcapError(f"OpenCV could not write the image {path}.")
    return path
