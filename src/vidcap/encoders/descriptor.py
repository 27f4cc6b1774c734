"""A built-in clip descriptor: what moves and what the objects look like, with no downloaded weights.

The descriptor is computed with OpenCV and numpy only, and is centred on the clip's *foreground*
rather than on the whole frame: on scenes where a small object acts in front of a large background,
whole-frame features are dominated by the background and hardly see the object.

How a clip becomes a vector (:class:`ClipDescriptor`):

1. **Working resolution.** Frames are downscaled (never upscaled) so the short side is
   ``work_side`` px and converted to YCrCb once for the whole clip (a linear transform: far cheaper
   than Lab, and its Cr-Cb plane separates colour from brightness just as well for this purpose).
   Downscaling halves the frames with 2x2 means while they are twice the working size or more,
   then resizes bilinearly (``downscale="pyramid"``); ``"area"``, what versions before it did,
   averages over area cells in one step: pixels 0.05 grey levels apart on average, but 5x slower
   at fractional ratios such as 224 to 96 px, where it was half of the descriptor's time.
2. **Foreground.** A pixel is foreground when it *moves* or when its *colour stands out*:

   - motion: it differs from a background model, the per-pixel median of a few evenly spaced
     frames (an object that keeps moving never stays long enough in one place to enter the median);
   - colour distinctiveness: its chroma (the Cr-Cb plane, so brightness changes such as gradients
     and shadows do not count) is far from the dominant colour of the frame's border. A still
     object becomes part of the median background, so motion alone would lose it; this cue keeps
     it. The threshold adapts to the border's own colour spread and never marks more than
     ``max_colour_fraction`` of the pixels, so a colourful real scene does not become one huge
     foreground;
   - "ghosts" are dropped: where the median still shows a colourful object that has since moved
     on, the plain background now differs from the model, but it is not an object.

3. **Primary object.** Foreground components are labelled in every frame and followed from frame
   to frame by position, colour and size (a jump of several object sizes ends the match: a cut,
   not motion). With one object in view, the track starts from the component with the most
   pixels changing between frames 0.1 s apart. With several, each is followed through the clip
   and the one whose *track* acts the most wins (net displacement, vertical wobble, size change
   and turning, relative to its size; specks seen in under 60% of the frames or tiny next to the
   others do not compete): per-frame pixel changes alone would favour the largest outline when
   the camera shakes. That is the *primary* object: with two objects, the one that acts.
   Everything else in the foreground is pooled as *secondary*.
4. **Blocks**, concatenated in this order (:attr:`ClipDescriptor.blocks` gives the slices and
   :attr:`ClipDescriptor.feature_names` a name per dimension):

   ========== ==== ==================================================================================
   block      dims what it holds
   ========== ==== ==================================================================================
   colour     46   primary, all its pixels over the clip: soft hue histogram (16 bins, each pixel
                   weighted by its saturation), saturation and value histograms (4 + 4), mean
                   Y, Cr, Cb and chroma, whether anything was seen; hue histogram of all moving
                   foreground pixels
   shape      34   primary mask, from ``shape_frames`` views (larger views weigh more):
                   circularity 4πA/P², solidity, extent and aspect of the min-area rectangle, fill
                   of the enclosing circle, polygon vertex counts at two tolerances, deep convexity
                   defects, spread and minimum of the radial profile, size in pixels; 7 log Hu
                   moments; magnitudes of the radial profile's harmonics 1-8; strength of k-fold
                   symmetry for k = 2..8 from the mask's complex moments (a triangle rings at 3, a
                   square at 4, a star at 5, a hexagon at 6, a circle nowhere); whether a shape was
                   seen. All rotation-, translation- and scale-invariant.
   motion     23   primary track. Action (14, 80% of the block): velocity, net displacement,
                   log-size slope and end/start ratio (grow / shrink), turn rate from the phase of
                   the dominant k-fold moment, plain and weighted by the symmetry's strength
                   (rotate), vertical and horizontal wobble about a straight path and direction
                   reversals (bounce), straightness, speed. Context (9, 20%): seen, turn-phase
                   jitter, share of its pixels that change, visibility, mean position and size,
                   foreground and moving fractions of the frame
   flow       14   Farneback optical flow on the primary object in ``flow_pairs`` frame pairs, after
                   subtracting the background's median flow (camera motion): magnitude-weighted
                   direction histogram (8 compass bins), mean flow, mean speed, divergence, |curl|
                   and deformation of an affine fit (zeros when ``flow=False``)
   secondary  18   the other foreground objects, pooled: hue histogram, area share, count
   context    48   the whole frame, coarsely: a ``grid`` x ``grid`` grid of hue (saturation-
                   weighted, unnormalised so a grey cell stays near zero) and value histograms of
                   the background model
   other_     50   only with ``objects=2``: the largest object besides the primary, followed
   object          through the clip: its hue histogram (16) and the shape block's 34 features
   ========== ==== ==================================================================================

   ``dim`` is 183 with the defaults (``hue_bins=16``, ``tone_bins=4``, ``grid=2``,
   ``context_hue_bins=8``); :attr:`ClipDescriptor.dim` gives it for any config.

**Scaling and weights.** Histograms are Hellinger-normalised (square-rooted L1 histograms: unit L2
norm). Scalar features are mapped with fixed constants to roughly zero mean and unit spread
(``asinh(x / scale)`` for signed, heavy-tailed quantities such as velocities; an affine map for
bounded ones such as solidity), so no statistics are fitted and a clip's vector never depends on
other clips. Inside a block, each part (a histogram, or a group of scalars divided by the square
root of its size) gets a *share* of the block's squared norm; shares sum to 1, so every block has a
norm of about 1 whatever its length. The colour block gives half its share to the primary's hue
histogram; the motion block 80% to the action features; the shape block 30% to the outline
statistics, 15% to Hu moments, 25% each to radial harmonics and symmetry. Blocks are then multiplied
by their weights: ``colour_weight``, ``shape_weight`` and ``motion_weight`` default to 1,
``flow_weight`` to 0.75, ``secondary_weight`` and ``context_weight`` to 0.5. Plain euclidean
distances (k-means, nearest neighbours) therefore mostly see what the acting object looks like and
does; a linear probe can still standardise every dimension.

**Cost.** About 15-20 ms of one CPU core per 30-frame clip of 128 px frames (50-70 clips/s,
75-100 s of video per second; ``benchmarks/bench_descriptor_probe.py`` measures it). From 224 px
frames (extract's default), the downscale adds about 2 ms (9 ms with ``downscale="area"``). Frames
are processed stacked into one tall image so most steps are one OpenCV call per clip, and the
foreground is kept as a pixel list.

The result is deterministic (the same frames always give the same vector) and never contains NaN or
infinity, even for a single frame, a tiny frame or an all-black clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import cv2
import numpy as np

__all__ = ["ClipDescriptor", "DescriptorConfig"]

_N_HARMONICS = 8  # radial-profile harmonics kept (1..8): enough for the hexagon's 6
_RADIAL_BINS = 64  # angular resolution of the radial profile (5.6 degrees)
_SYMMETRY_ORDERS = np.arange(2, 9)  # k-fold complex moments of the mask (see _Track.symmetry)
# scalars, Hu moments, radial harmonics, symmetry amplitudes, "found"
_SHAPE_DIM = 11 + 7 + _N_HARMONICS + len(_SYMMETRY_ORDERS) + 1
_MOTION_DIM = 23
_FLOW_DIRECTIONS = 8
_FLOW_SCALARS = 6

# Scales of the scalar features: a typical magnitude of each, so that asinh(x / scale) is O(1).
# Positions and sizes are in units of the frame's short side, times in seconds.
_SPEED_SCALE = 0.05  # short sides per second
_DISPLACEMENT_SCALE = 0.05  # short sides
_LOG_RATE_SCALE = 0.1  # log-size change per second
_ROTATION_SCALE = 0.3  # radians per second
_JITTER_SPEED = 0.2  # short sides per second: slower centroid steps are jitter
# Motion distance: |dY| + _CHROMA_GAIN * (|dCr| + |dCb|). Chroma differences are compressed in
# YCrCb (a saturated colour is only ~60-120 away from grey), so they count more than luma.
_CHROMA_GAIN = 1.5
_MAX_JUMP = 2.5  # the track gives up on a frame whose best match is this many sizes away
_EPS = 1e-6
DOWNSCALE_METHODS = ("pyramid", "area")


@dataclass(frozen=True)
class DescriptorConfig:
    """Settings of :class:`ClipDescriptor`. The defaults suit 20 fps clips of 30 frames.

    Attributes:
        work_side: short side (px) frames are downscaled to before anything else (never
            upscaled). Larger sees small objects' shapes better; time grows with its square.
        fps: frame rate of the clips. Motion is measured per second, so set it when clips are not
            20 fps.
        background_frames: at most this many evenly spaced frames form the median background.
        motion_threshold: smallest motion distance (``|dY| + 1.5 (|dCr| + |dCb|)``, 8-bit units)
            from the background, or between frames 0.1 s apart, that counts as motion; raised
            automatically for noisy clips.
        colour_margin: smallest chroma distance (``|dCr| + |dCb|``) from the border's dominant
            colour that makes a still pixel foreground; raised by the border's own colour spread.
        max_colour_fraction: the colour cue never marks more than this share of the pixels.
        min_object_fraction: foreground components smaller than this share of the frame are noise.
        shape_frames: views (evenly spaced over the track) whose masks give the shape features.
        hue_bins: bins of the hue histograms (soft-assigned, so neighbouring hues overlap).
        tone_bins: bins of the saturation and value histograms.
        grid: the context block's grid is ``grid`` x ``grid`` cells.
        context_hue_bins: hue bins per context cell (plus ``tone_bins`` value bins).
        flow: compute the optical-flow block; when off it is zeros (same ``dim``) and encoding is
            about a fifth faster.
        flow_side: short side (px) of the greyscale frames given to Farneback.
        flow_step: frames between the two frames of a flow pair.
        flow_pairs: at most this many flow pairs, evenly spaced over the clip.
        objects: objects described one by one: 1 (the acting object; the others only pooled in
            the ``secondary`` block) or 2 (also an ``other_object`` block: the hue and shape of
            the largest other object, for questions about an object that does not act).
        downscale: how frames more than twice the working size are brought to it: "pyramid"
            (2x2 means, then bilinear) or "area" (area cells in one step: 5x slower from 224 px,
            what versions before this setting did; bundles trained then still get it).
        colour_weight, shape_weight, motion_weight, flow_weight, secondary_weight,
        context_weight: block weights, applied after each block is scaled to a norm of about 1
            (``other_object`` takes ``secondary_weight``).
    """

    work_side: int = 96
    fps: float = 20.0
    background_frames: int = 7
    motion_threshold: float = 30.0
    colour_margin: float = 24.0
    max_colour_fraction: float = 0.35
    min_object_fraction: float = 0.0008
    shape_frames: int = 4
    hue_bins: int = 16
    tone_bins: int = 4
    grid: int = 2
    context_hue_bins: int = 8
    flow: bool = True
    flow_side: int = 48
    flow_step: int = 3
    flow_pairs: int = 4
    objects: int = 1
    downscale: str = "pyramid"
    colour_weight: float = 1.0
    shape_weight: float = 1.0
    motion_weight: float = 1.0
    flow_weight: float = 0.75
    secondary_weight: float = 0.5
    context_weight: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "flow":
                if not isinstance(value, bool):
                    raise ValueError(f"descriptor {f.name} must be True or False, got {value!r}.")
                continue
            if f.name == "downscale":
                if value not in DOWNSCALE_METHODS:
                    raise ValueError(
                        f"descriptor downscale must be one of {', '.join(DOWNSCALE_METHODS)}, "
                        f"got {value!r}."
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"descriptor {f.name} must be a number, got {value!r}.")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"descriptor {f.name} must be a finite number >= 0, got {value}.")
        minimum = {
            "work_side": 8,
            "flow_side": 8,
            "background_frames": 1,
            "shape_frames": 1,
            "flow_step": 1,
            "flow_pairs": 1,
            "grid": 1,
            "hue_bins": 2,
            "tone_bins": 2,
            "context_hue_bins": 2,
        }
        for name, least in minimum.items():
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ValueError(
                    f"descriptor {name} must be a whole number >= {least}, got {value}."
                )
        if self.fps <= 0:
            raise ValueError(f"descriptor fps must be positive, got {self.fps}.")
        if self.objects not in (1, 2):
            raise ValueError(f"descriptor objects must be 1 or 2, got {self.objects}.")
        if not 0 < self.max_colour_fraction <= 1:
            raise ValueError(
                f"descriptor max_colour_fraction must be in (0, 1], got {self.max_colour_fraction}."
            )


# --------------------------------------------------------------------------------------------------
# Small helpers


def _hellinger(hist: np.ndarray) -> np.ndarray:
    """Square root of the L1-normalised histogram (unit L2 norm; zeros when empty)."""
    total = float(hist.sum())
    if total <= _EPS:
        return np.zeros(hist.shape, np.float64)
    return np.sqrt(hist / total)


def _soft_hue_hist(hue: np.ndarray, weight: np.ndarray, bins: int) -> np.ndarray:
    """Circular hue histogram (hue on 0-255) with linear soft assignment to the two nearest bins,
    so a hue near a bin edge does not flip between bins from one clip to the next."""
    if hue.size == 0:
        return np.zeros(bins, np.float64)
    pos = hue.astype(np.float64) * (bins / 256.0) - 0.5
    lo = np.floor(pos)
    frac = pos - lo
    lo_i = lo.astype(np.int64) % bins
    hi_i = (lo_i + 1) % bins
    w = weight.astype(np.float64)
    return np.bincount(lo_i, w * (1.0 - frac), bins) + np.bincount(hi_i, w * frac, bins)


def _tone_hist(values: np.ndarray, bins: int) -> np.ndarray:
    """Plain histogram of 0-255 values."""
    if values.size == 0:
        return np.zeros(bins, np.float64)
    idx = np.minimum(values.astype(np.int64) * bins // 256, bins - 1)
    return np.bincount(idx, minlength=bins).astype(np.float64)


def _hsv(rgb_pixels: np.ndarray) -> np.ndarray:
    """HSV (hue on 0-255) of an ``[N, 3]`` uint8 RGB pixel list."""
    if len(rgb_pixels) == 0:
        return np.zeros((0, 3), np.uint8)
    return cv2.cvtColor(rgb_pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3)


def _hue_hist(hsv: np.ndarray, bins: int) -> np.ndarray:
    """Hellinger hue histogram of HSV pixels, each weighted by its saturation: grey pixels have
    no meaningful hue, and anti-aliased edges (half object, half background) count less."""
    return _hellinger(_soft_hue_hist(hsv[:, 0], hsv[:, 1].astype(np.float64) / 255.0, bins))


def _signed(x: float, scale: float) -> float:
    """A signed, heavy-tailed quantity squashed to O(1): linear near 0, logarithmic far out."""
    return float(np.arcsinh(x / scale))


def _finite(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(x, np.float64), nan=0.0, posinf=0.0, neginf=0.0).astype(
        np.float32
    )


def _block(weight: float, parts: Sequence[tuple[np.ndarray, float, bool]]) -> np.ndarray:
    """Concatenate ``(values, share, is_histogram)`` parts into a block of norm about ``weight``.

    Each part is first brought to a norm of about 1 (a Hellinger histogram already has norm 1; n
    scalars of about unit size are divided by sqrt(n)), then scaled by sqrt(share). With shares
    summing to 1, a part holds ``share`` of the block's squared norm, whatever its length.
    """
    out = []
    for values, share, is_hist in parts:
        v = np.asarray(values, np.float64).ravel()
        norm = 1.0 if is_hist else math.sqrt(max(len(v), 1))
        out.append(v * (math.sqrt(share) / norm))
    return _finite(np.concatenate(out) * weight)


def _slope(t: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares slope of y(t) and the residuals of the line."""
    if len(t) < 2:
        return 0.0, np.zeros_like(y)
    tc = t - t.mean()
    denom = float((tc * tc).sum())
    slope = float((tc * (y - y.mean())).sum() / denom) if denom > _EPS else 0.0
    return slope, y - y.mean() - slope * tc


def _smooth(v: np.ndarray, width: int = 5) -> np.ndarray:
    """Moving average over ``width`` samples (fewer for short series; only full windows)."""
    width = min(width, len(v))
    if width <= 1:
        return v
    return np.convolve(v, np.ones(width) / width, mode="valid")


def _reversals(t: np.ndarray, y: np.ndarray) -> float:
    """Direction reversals of ``y(t)`` per second (a bounce reverses twice per hop).

    Steps slower than ``_JITTER_SPEED`` are ignored, so the centroid's jitter (mask noise, a
    shaking camera) does not count.
    """
    if len(y) < 3:
        return 0.0
    v = np.diff(y) / np.maximum(np.diff(t), _EPS)
    v = v[np.abs(v) > _JITTER_SPEED]
    if len(v) < 2:
        return 0.0
    return float((np.diff(np.sign(v)) != 0).sum()) / max(float(t[-1] - t[0]), _EPS)


def _area_resize(clip: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average every frame of ``clip`` to ``size`` (w, h) in one OpenCV call.

    Area cells tile each frame exactly (h / new_h rows each), so the clip stacked into one tall
    image gives every frame's own resize, in one call at about half the time (equal in a sweep of
    2,569 frame sizes and working sides, 97-1080 px, 7 aspect ratios).
    """
    t, h, w, _ = clip.shape
    tall = cv2.resize(
        clip.reshape(t * h, w, 3), (size[0], t * size[1]), interpolation=cv2.INTER_AREA
    )
    return tall.reshape(t, size[1], size[0], 3)


def _halve(clip: np.ndarray) -> np.ndarray:
    """Every frame at half size, each pixel the rounded mean of a 2x2 block (an odd last row or
    column is dropped, so blocks never span two frames of the stacked clip)."""
    _, h, w, _ = clip.shape
    even = np.ascontiguousarray(clip[:, : h - h % 2, : w - w % 2])
    return _area_resize(even, (w // 2, h // 2))


# --------------------------------------------------------------------------------------------------
# Shape of one mask


def _outline(mask: np.ndarray) -> tuple[np.ndarray, float, float, float] | None:
    """The largest outer contour of a binary uint8 mask, its area and centroid."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    m = cv2.moments(mask, binaryImage=True)
    if m["m00"] <= 0:
        return None
    return contour, float(m["m00"]), m["m10"] / m["m00"], m["m01"] / m["m00"]


def _radial_profile(contour: np.ndarray, cx: float, cy: float) -> np.ndarray | None:
    """Distance from the centroid to the outline in ``_RADIAL_BINS`` directions, divided by its
    mean (so it is scale-free); a rotation of the object is a circular shift of it."""
    pts = contour.reshape(-1, 2).astype(np.float64)
    if len(pts) < 3:
        return None
    dx, dy = pts[:, 0] - cx, pts[:, 1] - cy
    r = np.hypot(dx, dy)
    b = ((np.arctan2(dy, dx) + math.pi) * (_RADIAL_BINS / (2 * math.pi))).astype(np.int64)
    b %= _RADIAL_BINS
    prof = np.zeros(_RADIAL_BINS)
    np.maximum.at(prof, b, r)
    filled = prof > 0
    if filled.sum() < 3:
        return None
    if not filled.all():
        # Small outlines skip directions: interpolate them around the circle.
        idx = np.arange(_RADIAL_BINS)
        prof = np.interp(idx, idx[filled], prof[filled], period=_RADIAL_BINS)
    mean = prof.mean()
    return prof / mean if mean > _EPS else None


# Hu moments span many decades, so -log10|h| is the usual scale (|h| also drops h7's mirror sign);
# these centre and scale it to about unit spread on everyday shapes.
_HU_CENTRE = np.array([0.8, 4.8, 5.5, 6.8, 11.4, 9.6, 11.5])
_HU_SCALE = np.array([0.1, 1.0, 1.0, 1.0, 2.0, 1.5, 2.0])


def _shape_features(mask: np.ndarray) -> np.ndarray | None:
    """Rotation-, translation- and scale-invariant statistics of a binary uint8 mask (26 values),
    or None when the mask is too small to have a shape."""
    found = _outline(mask)
    if found is None:
        return None
    contour, area, cx, cy = found
    if area < 4 or len(contour) < 3:
        return None
    perimeter = max(cv2.arcLength(contour, True), _EPS)
    hull = cv2.convexHull(contour)
    hull_area = max(cv2.contourArea(hull), _EPS)
    (_, _), (rw, rh), _ = cv2.minAreaRect(contour)
    _, radius = cv2.minEnclosingCircle(contour)
    hu = cv2.HuMoments(cv2.moments(mask, binaryImage=True)).ravel()
    log_hu = np.clip((-np.log10(np.abs(hu) + 1e-12) - _HU_CENTRE) / _HU_SCALE, -4, 4)
    verts = []
    for tol in (0.02, 0.045):
        approx = cv2.approxPolyDP(contour, tol * perimeter, True)
        verts.append((min(len(approx), 16) - 6.0) / 2.5)
    # Deep convexity defects: the notches between a star's points.
    deep = 0
    if len(contour) >= 4:
        try:
            defects = cv2.convexityDefects(contour, cv2.convexHull(contour, returnPoints=False))
        except cv2.error:  # self-intersecting outlines of tiny masks
            defects = None
        if defects is not None:
            depth = defects.reshape(-1, 4)[:, 3] / 256.0  # fixed point, 8 fractional bits
            deep = int((depth > 0.12 * math.sqrt(area)).sum())
    prof = _radial_profile(contour, cx, cy)
    if prof is None:
        harmonics = np.zeros(_N_HARMONICS)
        spread, low = 0.0, 1.0
    else:
        spectrum = np.abs(np.fft.rfft(prof))[1 : _N_HARMONICS + 1] / _RADIAL_BINS
        harmonics = np.sqrt(spectrum) * 6.0 - 1.0  # sqrt: a hexagon's small ring still registers
        spread, low = float(prof.std()), float(prof.min())
    scalars = [
        (4 * math.pi * area / (perimeter * perimeter) - 0.7) / 0.15,  # circularity
        (area / hull_area - 0.9) / 0.1,  # solidity
        (area / max(rw * rh, _EPS) - 0.7) / 0.15,  # extent of the min-area rectangle
        (min(rw, rh) / max(rw, rh, _EPS) - 0.8) / 0.15,  # aspect
        (area / max(math.pi * radius * radius, _EPS) - 0.55) / 0.2,  # fill of enclosing circle
        *verts,
        (min(deep, 8) - 1.0) / 2.0,
        (spread - 0.12) / 0.08,
        (low - 0.7) / 0.15,
        math.sqrt(area) / 10.0 - 1.5,  # size in working pixels: tells how reliable the rest is
    ]
    return np.clip(np.concatenate([np.asarray(scalars), log_hu, harmonics]), -4.0, 4.0)


# --------------------------------------------------------------------------------------------------
# The descriptor


class ClipDescriptor:
    """A hand-crafted clip descriptor (see the module docstring for what each block holds).

    Example::

        desc = ClipDescriptor()
        vec = desc.encode_clip(frames)  # frames: [T, H, W, 3] uint8 RGB -> [desc.dim] float32
    """

    def __init__(self, config: DescriptorConfig = DescriptorConfig()) -> None:
        self.config = config
        c = config
        self._dims = {
            "colour": 2 * c.hue_bins + 2 * c.tone_bins + 6,
            "shape": _SHAPE_DIM,
            "motion": _MOTION_DIM,
            "flow": _FLOW_DIRECTIONS + _FLOW_SCALARS,
            "secondary": c.hue_bins + 2,
            "context": c.grid * c.grid * (c.context_hue_bins + c.tone_bins),
        }
        if c.objects == 2:
            self._dims["other_object"] = c.hue_bins + _SHAPE_DIM

    @property
    def dim(self) -> int:
        """Length of every output vector (183 with the default config, 233 with ``objects=2``)."""
        return sum(self._dims.values())

    @property
    def blocks(self) -> dict[str, slice]:
        """Where each block lies in the vector, by name (colour, shape, motion, flow, ...)."""
        out, start = {}, 0
        for name, size in self._dims.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def feature_names(self) -> list[str]:
        """A name for every dimension, in order (``len(feature_names) == dim``)."""
        c = self.config
        hue = [f"hue_{i:02d}" for i in range(c.hue_bins)]
        tones = [f"sat_{i}" for i in range(c.tone_bins)] + [f"val_{i}" for i in range(c.tone_bins)]
        colour = [
            *hue,
            *tones,
            *(f"moving_{h}" for h in hue),
            *("mean_y", "mean_cr", "mean_cb", "mean_chroma", "primary_seen", "moving_seen"),
        ]
        shape = [
            *("circularity", "solidity", "rect_extent", "rect_aspect", "circle_fill"),
            *("vertices_fine", "vertices_coarse", "deep_defects", "radial_spread", "radial_min"),
            "size_px",
            *(f"hu_{i}" for i in range(1, 8)),
            *(f"radial_harmonic_{i}" for i in range(1, _N_HARMONICS + 1)),
            *(f"symmetry_{k}" for k in _SYMMETRY_ORDERS),
            "shape_found",
        ]
        motion = [
            *("vx", "vy", "net_dx", "net_dy", "log_size_rate", "log_size_ratio"),
            *("rotation_rate", "rotation_rate_weighted", "wobble_y", "wobble_x"),
            *("reversals_y", "reversals_x", "straightness", "speed"),
            *("track_seen", "rotation_jitter", "moving_share", "visibility"),
            *("mean_x", "mean_y", "mean_size", "foreground_fraction", "moving_fraction"),
        ]
        motion = [f"motion_{m}" for m in motion]
        # Image y points down, so "S" (down) is +90 degrees.
        compass = ("E", "SE", "S", "SW", "W", "NW", "N", "NE")
        flow = [f"flow_dir_{d}" for d in compass] + [
            f"flow_{n}" for n in ("u", "v", "speed", "divergence", "curl", "deformation")
        ]
        secondary = [f"secondary_{h}" for h in hue] + ["secondary_share", "secondary_count"]
        context = [
            f"context_{i}{j}_{name}"
            for i in range(c.grid)
            for j in range(c.grid)
            for name in [f"hue_{b}" for b in range(c.context_hue_bins)]
            + [f"val_{b}" for b in range(c.tone_bins)]
        ]
        names = [*colour, *shape, *motion, *flow, *secondary, *context]
        if c.objects == 2:
            names += [f"other_{n}" for n in (*hue, *shape)]
        return names

    def encode_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        """Descriptors ``[len(clips), dim]`` float32 of several clips (each as :meth:`encode_clip`)."""
        if not clips:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.encode_clip(c) for c in clips])

    def encode_clip(self, frames: np.ndarray) -> np.ndarray:
        """The descriptor ``[dim]`` float32 of one clip.

        Args:
            frames: ``[T, H, W, 3]`` uint8 RGB (``[T, H, W]`` or ``[T, H, W, 1]`` greyscale and a
                single ``[H, W, 3]`` frame are accepted too); any T >= 1 and any size.

        Raises:
            ValueError: the array is not uint8 frames of one of those shapes.
        """
        scene = _Scene(self._prepare(frames), self.config)
        track = scene.primary_track()
        out = np.concatenate(
            [
                self._colour_block(scene, track),
                self._shape_block(scene, track),
                self._motion_block(scene, track),
                self._flow_block(scene, track),
                self._secondary_block(scene, track),
                self._context_block(scene),
                *([self._other_object_block(scene, track)] if self.config.objects == 2 else []),
            ]
        )
        if out.shape != (self.dim,):  # a bug, not a user error
            raise AssertionError(f"descriptor length {out.shape} != dim {self.dim}")
        return out

    def _prepare(self, frames: np.ndarray) -> np.ndarray:
        """Validate and downscale to the working resolution: ``[T, h, w, 3]`` uint8 RGB."""
        arr = np.asarray(frames)
        if arr.dtype != np.uint8:
            raise ValueError(
                f"the clip descriptor needs uint8 RGB frames, got dtype {arr.dtype}; convert with "
                "np.clip(x, 0, 255).astype(np.uint8) (scale [0, 1] floats by 255 first)."
            )
        if arr.ndim == 3 and arr.shape[-1] == 3:  # one colour frame
            arr = arr[None]
        elif arr.ndim == 3:  # greyscale frames
            arr = arr[..., None]
        if arr.ndim == 4 and arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
        if arr.ndim != 4 or arr.shape[-1] != 3 or min(arr.shape[:3]) < 1:
            raise ValueError(
                "the clip descriptor needs frames shaped [T, H, W, 3] with T, H, W >= 1, got "
                f"{tuple(arr.shape)}."
            )
        _, h, w, _ = arr.shape
        scale = self.config.work_side / min(h, w)
        if scale >= 1.0:
            return np.ascontiguousarray(arr)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if scale < 0.5:
            if self.config.downscale == "area":
                return _area_resize(arr, size)
            # 2x2 means while the frames are twice the working size or more (OpenCV's integer
            # area path, ~15x faster than area cells at a fractional ratio).
            while arr.shape[1] >= 2 * size[1] and arr.shape[2] >= 2 * size[0]:
                arr = _halve(arr)
        # Above half size bilinear does not alias yet. Frame by frame: on the stacked clip it
        # would round a few rows differently from the frame's own resize.
        return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in arr])

    # ----------------------------------------------------------------------------------------------
    # Blocks

    def _colour_block(self, scene: _Scene, track: _Track) -> np.ndarray:
        c = self.config
        hsv = _hsv(scene.rgb.reshape(-1, 3)[track.px_index])  # the primary's pixels, whole clip
        ycc = scene.ycc.reshape(-1, 3)[track.px_index].astype(np.float64)
        if len(ycc):
            y, cr, cb = ycc.mean(axis=0)
            chroma = math.hypot(cr - 128, cb - 128)
            mean = np.array([(y - 128) / 64, (cr - 128) / 40, (cb - 128) / 40, chroma / 40 - 1])
        else:
            mean = np.zeros(4)
        moving = _hsv(scene.rgb.reshape(-1, 3)[scene.px_index[scene.px_moving]])
        seen = np.array([len(hsv) > 0, len(moving) > 0], np.float64) * 2 - 1
        # The hue of the acting object is what a caption names: it gets half of the block.
        parts = [
            (_hue_hist(hsv, c.hue_bins), 0.5, True),
            (_hellinger(_tone_hist(hsv[:, 1], c.tone_bins)), 0.075, True),
            (_hellinger(_tone_hist(hsv[:, 2], c.tone_bins)), 0.075, True),
            (_hue_hist(moving, c.hue_bins), 0.15, True),
            (mean, 0.15, False),
            (seen, 0.05, False),
        ]
        return _block(c.colour_weight, parts)

    def _shape_block(self, scene: _Scene, track: _Track) -> np.ndarray:
        return _block(self.config.shape_weight, self._shape_parts(track))

    def _shape_parts(self, track: _Track) -> list[tuple[np.ndarray, float, bool]]:
        """The shape features of ``track`` as :func:`_block` parts."""
        c = self.config
        frames = track.frames()
        feats: list[np.ndarray] = []
        weights: list[float] = []
        if len(frames):
            pick = np.linspace(0, len(frames) - 1, min(c.shape_frames, len(frames))).round()
            for t in frames[np.unique(pick).astype(np.int64)]:
                f = _shape_features(track.crop(int(t)))
                if f is not None:
                    feats.append(f)
                    # Larger views have cleaner outlines (a grow or shrink shows both sizes).
                    weights.append(float(track.area[t]))
        if feats:
            w = np.asarray(weights) / sum(weights)
            amps, _ = track.symmetry()
            aw = track.area[frames] / track.area[frames].sum()
            # sqrt: weak symmetries (a hexagon's 6-fold) still register next to a star's 5-fold.
            symmetry = (np.sqrt((amps * aw[:, None]).sum(axis=0)) - 0.3) / 0.2
            shape = np.concatenate([(np.asarray(feats) * w[:, None]).sum(axis=0), symmetry, [1.0]])
        else:
            shape = np.append(np.zeros(_SHAPE_DIM - 1), -1.0)
        # Shares: the outline's statistics, Hu moments, radial harmonics, symmetry, "found".
        cuts = np.cumsum([11, 7, _N_HARMONICS, len(_SYMMETRY_ORDERS)])
        parts = np.split(shape, cuts)
        shares = (0.3, 0.15, 0.25, 0.25, 0.05)
        return [(p, w, False) for p, w in zip(parts, shares, strict=True)]

    def _motion_block(self, scene: _Scene, track: _Track) -> np.ndarray:
        c = self.config
        frames = track.frames()
        short = float(scene.short)
        # What the action is: 14 features, 80% of the block. Where and how big, and how much of
        # the frame is foreground: 9 features, 20%, so they do not drown the action in distances.
        core = np.zeros(14)
        aux = np.zeros(9)
        aux[7] = math.sqrt(len(scene.px_index) / scene.fg.size) * 4 - 1
        aux[8] = math.sqrt(float(scene.px_moving.sum()) / scene.fg.size) * 8 - 1
        if len(frames) == 0:
            aux[0] = -1.0
            return _block(c.motion_weight, [(core, 0.8, False), (aux, 0.2, False)])
        t = frames.astype(np.float64) / c.fps
        duration = max(float(t[-1] - t[0]), 1.0 / c.fps)
        x = track.cx[frames] / short
        y = track.cy[frames] / short
        size = np.sqrt(np.maximum(track.area[frames], 1.0)) / short
        mean_size = max(float(size.mean()), _EPS)
        vx, _ = _slope(t, x)
        vy, _ = _slope(t, y)
        log_rate, _ = _slope(t, np.log(size))
        # Ends averaged over a few frames, so one noisy mask does not decide the net change.
        k = max(1, min(3, len(frames) // 3))
        net_x = float(x[-k:].mean() - x[:k].mean())
        net_y = float(y[-k:].mean() - y[:k].mean())
        log_ratio = float(np.log(size[-k:].mean() / size[:k].mean()))
        # Path, wobble and reversals from the track smoothed over 5 frames: the centroid's jitter
        # (mask noise, camera shake) would otherwise add path length and fake reversals.
        xs, ys, ts = _smooth(x), _smooth(y), _smooth(t)
        path = float(np.hypot(np.diff(xs), np.diff(ys)).sum())
        # Straightness only means something for a path longer than the centroid's jitter.
        straight = math.hypot(net_x, net_y) / path if path > _EPS else 1.0
        straight = (straight * 2 - 1) * math.tanh(path / (_DISPLACEMENT_SCALE * 2))
        _, ry = _slope(ts, ys)
        _, rx = _slope(ts, xs)
        rotation, weighted, jitter = track.rotation(c.fps)
        core[:] = [
            _signed(vx, _SPEED_SCALE),
            _signed(vy, _SPEED_SCALE),
            _signed(net_x, _DISPLACEMENT_SCALE),
            _signed(net_y, _DISPLACEMENT_SCALE),
            _signed(log_rate, _LOG_RATE_SCALE),
            _signed(log_ratio, _LOG_RATE_SCALE),
            _signed(rotation, _ROTATION_SCALE),
            _signed(weighted, _ROTATION_SCALE),
            _signed(float(ry.std()) / mean_size, 0.1),  # vertical wobble about the line (bounce)
            _signed(float(rx.std()) / mean_size, 0.1),
            _signed(_reversals(ts, ys), 1.0),
            _signed(_reversals(ts, xs), 1.0),
            straight,
            _signed(path / duration, _SPEED_SCALE) - 1.0,
        ]
        aux[:7] = [
            1.0,
            _signed(jitter, 0.05) - 1.0,
            track.moving_share() * 2 - 1,
            len(frames) / scene.t * 2 - 1,
            (float(x.mean()) * short / scene.w - 0.5) * 3,
            (float(y.mean()) * short / scene.h - 0.5) * 3,
            mean_size * 6 - 1,
        ]
        return _block(c.motion_weight, [(core, 0.8, False), (aux, 0.2, False)])

    def _flow_block(self, scene: _Scene, track: _Track) -> np.ndarray:
        c = self.config
        dirs = np.zeros(_FLOW_DIRECTIONS)
        scalars = np.zeros(_FLOW_SCALARS)
        if not c.flow or scene.t < 2:
            return _block(c.flow_weight, [(dirs, 0.5, True), (scalars, 0.5, False)])
        step = min(c.flow_step, scene.t - 1)
        last = scene.t - 1 - step
        starts = np.unique(np.linspace(0, last, min(c.flow_pairs, last + 1)).round().astype(int))
        grey, fscale = scene.grey_small(c.flow_side, np.union1d(starts, starts + step))
        fh, fw = grey[int(starts[0])].shape
        short = float(min(fh, fw))
        per_s = c.fps / step / short  # px per pair -> short sides per second
        hist = np.zeros(_FLOW_DIRECTIONS)
        means, mags, affine = [], [], []
        for t0 in starts:
            t1 = t0 + step
            region = track.mask[t0] | track.mask[t1]
            if not region.any():
                region = scene.fg[t0] | scene.fg[t1]
            if not region.any():
                continue
            if fscale < 1.0:
                region = cv2.resize(region.astype(np.uint8), (fw, fh), interpolation=cv2.INTER_AREA)
            else:
                region = region.astype(np.uint8)
            # Dilated: a uniform object's flow is found at its edges, half of them outside it.
            ys, xs = np.nonzero(cv2.dilate(region, np.ones((3, 3), np.uint8)))
            if len(xs) == 0:
                continue
            flow = cv2.calcOpticalFlowFarneback(grey[t0], grey[t1], None, 0.5, 2, 9, 2, 5, 1.1, 0)
            # Camera motion (shake, pans) moves the background too: its median flow, away from
            # every foreground object, is subtracted, so what remains is the object's own motion.
            near = scene.fg[t0] | scene.fg[t1]
            if fscale < 1.0:
                near = cv2.resize(near.astype(np.uint8), (fw, fh), interpolation=cv2.INTER_AREA)
            near = cv2.dilate(near.astype(np.uint8), np.ones((7, 7), np.uint8))[::2, ::2]
            background = flow[::2, ::2][near == 0]
            if len(background) > 0.2 * near.size:
                flow = flow - np.median(background, axis=0)
            u = flow[ys, xs, 0].astype(np.float64) * per_s
            v = flow[ys, xs, 1].astype(np.float64) * per_s
            mag = np.hypot(u, v)
            b = np.round(np.arctan2(v, u) * (_FLOW_DIRECTIONS / (2 * math.pi))).astype(np.int64)
            hist += np.bincount(b % _FLOW_DIRECTIONS, mag, _FLOW_DIRECTIONS)
            means.append((u.mean(), v.mean()))
            mags.append(mag.mean())
            if len(xs) >= 6:
                # Affine motion field fitted to the flow: divergence (grow / shrink), curl (rotate)
                # and deformation, in 1/s.
                px, py = (xs - xs.mean()) / short, (ys - ys.mean()) / short
                # Centred coordinates: the field's gradient solves a 2x2 least-squares system.
                cov = np.array([[px @ px, px @ py], [px @ py, py @ py]])
                if np.linalg.det(cov) <= _EPS:  # all pixels on a line: no gradient to fit
                    continue
                rhs = np.array([[px @ u, px @ v], [py @ u, py @ v]])
                (ux, vx), (uy, vy) = np.linalg.solve(cov, rhs)
                affine.append((ux + vy, vx - uy, math.hypot(ux - vy, uy + vx)))
        if mags:
            dirs = _hellinger(hist)
            mu, mv = np.mean(means, axis=0)
            div, curl, deform = np.mean(affine, axis=0) if affine else (0.0, 0.0, 0.0)
            scalars = np.array(
                [
                    _signed(float(mu), _SPEED_SCALE),
                    _signed(float(mv), _SPEED_SCALE),
                    _signed(float(np.mean(mags)), _SPEED_SCALE) - 1.0,
                    _signed(float(div), 0.3),
                    _signed(abs(float(curl)), 0.3) - 0.5,
                    _signed(float(deform), 0.3) - 1.0,
                ]
            )
        return _block(c.flow_weight, [(dirs, 0.5, True), (scalars, 0.5, False)])

    def _secondary_block(self, scene: _Scene, track: _Track) -> np.ndarray:
        c = self.config
        others = scene.px_index[~np.isin(scene.px_index, track.px_index, assume_unique=True)]
        hsv = _hsv(scene.rgb.reshape(-1, 3)[others])
        share = len(others) / scene.fg.size
        count = max(scene.mean_components - (1.0 if track.found else 0.0), 0.0)
        scalars = [math.sqrt(share) * 6 - 1, _signed(count, 0.5) - 1.0]
        return _block(
            c.secondary_weight, [(_hue_hist(hsv, c.hue_bins), 0.8, True), (scalars, 0.2, False)]
        )

    def _other_object_block(self, scene: _Scene, track: _Track) -> np.ndarray:
        """Hue and shape of the largest object besides the primary (the colour block's hue
        histogram and the shape block, halved each)."""
        other = scene.other_track(track)
        hsv = _hsv(scene.rgb.reshape(-1, 3)[other.px_index])
        hue = (_hue_hist(hsv, self.config.hue_bins), 0.5, True)
        shape = [(part, share / 2, hist) for part, share, hist in self._shape_parts(other)]
        return _block(self.config.secondary_weight, [hue, *shape])

    def _context_block(self, scene: _Scene) -> np.ndarray:
        c = self.config
        hsv = scene.background_hsv()
        g = c.grid
        h, w = hsv.shape[:2]
        cells = []
        for i in range(g):
            for j in range(g):
                cell = hsv[i * h // g : (i + 1) * h // g, j * w // g : (j + 1) * w // g]
                cell = cell.reshape(-1, 3)
                weight = cell[:, 1].astype(np.float64) / 255.0
                hue = _soft_hue_hist(cell[:, 0], weight, c.context_hue_bins)
                # Not normalised: a grey cell has no hue, and its small mass says so.
                hue = np.sqrt(hue / max(len(cell), 1))
                val = _hellinger(_tone_hist(cell[:, 2], c.tone_bins))
                cells.append(np.concatenate([hue, val]) / math.sqrt(2.0))
        return _block(c.context_weight, [(cell, 1.0 / len(cells), True) for cell in cells])


# --------------------------------------------------------------------------------------------------
# Foreground and primary track


# Distances between YCrCb pixels are computed on saturated uint8 channels with OpenCV's SIMD
# arithmetic (several times faster than cv2.transform or numpy); every threshold is under 255.


def _chroma_distance(cr: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """``|dCr| + |dCb|`` from the Cr and Cb planes' absolute differences (uint8, saturated)."""
    return cv2.add(cr, cb)


def _motion_distance(y: np.ndarray, cr: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """``|dY| + _CHROMA_GAIN * (|dCr| + |dCb|)`` from the planes' absolute differences (uint8)."""
    return cv2.addWeighted(y, 1.0, cv2.add(cr, cb), _CHROMA_GAIN, 0.0)


def _plane_diffs(a: Sequence[np.ndarray], b: Sequence[np.ndarray | float]) -> list[np.ndarray]:
    """``|a - b|`` plane by plane; a number in ``b`` stands for a plane of that value (made one:
    OpenCV takes a 1x1 array beside a number for a number too)."""
    return [
        cv2.absdiff(x, y if isinstance(y, np.ndarray) else np.full_like(x, y))
        for x, y in zip(a, b, strict=True)
    ]


def _median_frames(frames: list[np.ndarray]) -> np.ndarray:
    """Per-pixel median of an odd number of uint8 frames.

    A partial bubble sort with elementwise min / max (only the lower half plus the middle need to
    settle): vectorised uint8 operations, an order of magnitude faster than ``np.median``.
    """
    a = list(frames)
    n = len(a)
    for i in range(n // 2 + 1):
        for j in range(n - 1 - i):
            a[j], a[j + 1] = np.minimum(a[j], a[j + 1]), np.maximum(a[j], a[j + 1])
    return a[n - 1 - n // 2]


class _Scene:
    """A clip at working resolution: background model, foreground, components.

    Frames are processed stacked into one tall image (with a blank row between frames for the
    component labelling, so no component runs from one frame into the next): one OpenCV call per
    step instead of one per frame. The cleaned foreground is then kept as a list of pixels
    (``px_*`` arrays) since it is a small part of the frame and numpy indexing of whole frames is
    the slow part.
    """

    def __init__(self, rgb: np.ndarray, config: DescriptorConfig) -> None:
        self.config = config
        self.rgb = rgb
        self.t, self.h, self.w = rgb.shape[:3]
        self.short = min(self.h, self.w)
        tall = np.ascontiguousarray(rgb.reshape(self.t * self.h, self.w, 3))
        self.ycc = cv2.cvtColor(tall, cv2.COLOR_RGB2YCrCb).reshape(rgb.shape)
        self._foreground()
        self._components()

    def _foreground(self) -> None:
        c = self.config
        t, h, w, ycc = self.t, self.h, self.w, self.ycc
        # Y, Cr and Cb planes of the stacked clip: the distances below work plane by plane.
        planes = cv2.split(ycc.reshape(t * h, w, 3))

        # Background model: the median of an odd number of evenly spaced frames.
        k = min(t, c.background_frames)
        k -= 1 - k % 2
        idx = np.linspace(0, t - 1, k).round().astype(np.int64)
        self.bg = _median_frames([ycc[i] for i in idx])
        bg_planes = cv2.split(self.bg)
        diff = _motion_distance(*_plane_diffs(planes, [np.tile(p, (t, 1)) for p in bg_planes]))
        # Most pixels are background, so the typical difference is the noise level.
        noise = float(np.median(diff[::3, ::3]))
        tau_m = max(c.motion_threshold, 4.0 * noise)

        # Chroma distance from the border's dominant colour (Cr-Cb plane, brightness-free).
        ring = max(1, self.short // 16)
        bg_c = self.bg[..., 1:].astype(np.float32)
        border = np.concatenate(
            [
                bg_c[:ring],
                bg_c[-ring:],
                bg_c[:, :ring].swapaxes(0, 1),
                bg_c[:, -ring:].swapaxes(0, 1),
            ],
            axis=None,
        ).reshape(-1, 2)
        ref = np.median(border, axis=0)
        spread = float(np.percentile(np.abs(border - ref).sum(axis=1), 90))
        ref_px = (float(np.round(ref[0])), float(np.round(ref[1])))
        chroma = _chroma_distance(*_plane_diffs(planes[1:], ref_px))
        tau_c = c.colour_margin + 2.0 * spread
        if c.max_colour_fraction < 1.0:
            sample = chroma[::3, ::3].ravel()
            q = int((1.0 - c.max_colour_fraction) * (len(sample) - 1))
            tau_c = max(tau_c, float(np.partition(sample, q)[q]))
        colourful = chroma > tau_c
        model_chroma = _chroma_distance(*_plane_diffs(bg_planes[1:], ref_px))
        # Ghosts: the model remembers a colourful object that has moved on, so plain background
        # now "differs" there. Such pixels are not foreground.
        ghost = np.tile(model_chroma > tau_c, (t, 1)) & ~colourful
        self.raw_fg = (((diff > tau_m) & ~ghost) | colourful).reshape(t, h, w)
        if t >= 2:
            # Each frame against the one 0.1 s before it (the first frames: the one after).
            gap = max(1, min(t - 1, round(c.fps / 10)))
            step = _plane_diffs([p[gap * h :] for p in planes], [p[: -gap * h] for p in planes])
            moved = (_motion_distance(*step) > tau_m).reshape(t - gap, h, w)
            self.moving = np.concatenate([moved[:gap], moved])
        else:
            self.moving = np.zeros((t, h, w), bool)

    def _components(self) -> None:
        c = self.config
        t, h, w = self.t, self.h, self.w
        padded = np.zeros((t, h + 1, w), np.uint8)  # the blank row keeps frames apart
        padded[:, :h] = self.raw_fg
        tall = padded.reshape(t * (h + 1), w)
        if self.short >= 24:
            # Opening removes speckle and thin bridges; re-blank the separator rows afterwards.
            tall = cv2.morphologyEx(tall, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
            tall.reshape(t, h + 1, w)[:, h] = 0
        # Labels only: OpenCV's per-component statistics cost several times the labelling itself;
        # the few needed are computed from the foreground pixel list below.
        n, labels = cv2.connectedComponents(tall, connectivity=8)
        points = cv2.findNonZero(tall)  # (x, row) in row-major order, i.e. frame by frame
        points = np.zeros((0, 2), np.int64) if points is None else points.reshape(-1, 2)
        x, row = points[:, 0].astype(np.int64), points[:, 1].astype(np.int64)
        lab = labels[row, x]
        frame, y = np.divmod(row, h + 1)
        area = np.bincount(lab, minlength=n).astype(np.float64)
        min_area = max(3.0, c.min_object_fraction * h * w)
        valid = area >= min_area
        valid[0] = False  # label 0 is the background
        keep = valid[lab]
        lab, x, y, frame = lab[keep], x[keep], y[keep], frame[keep]
        self.px_index = (frame * h + y) * w + x  # into [T, h, w] arrays, flattened
        self.px_label = lab
        area = np.maximum(area, 1.0)
        self.comp_area = area
        self.comp_cx = np.bincount(lab, x, n) / area
        self.comp_cy = np.bincount(lab, y, n) / area
        self.comp_frame = np.zeros(n, np.int64)
        self.comp_frame[lab] = frame
        box = np.zeros((n, 4), np.int64)  # x0, y0, x1, y1 (inclusive)
        box[:, :2] = np.iinfo(np.int64).max
        np.minimum.at(box[:, 0], lab, x)
        np.minimum.at(box[:, 1], lab, y)
        np.maximum.at(box[:, 2], lab, x)
        np.maximum.at(box[:, 3], lab, y)
        self.comp_box = box
        ycc = self.ycc.reshape(-1, 3)[self.px_index].astype(np.float64)
        self.comp_ab = np.stack([np.bincount(lab, ycc[:, k], n) / area for k in (1, 2)], axis=1)
        self.px_moving = self.moving.reshape(-1)[self.px_index]
        self.comp_motion = np.bincount(lab, self.px_moving, n)
        fg = np.zeros(t * h * w, bool)
        fg[self.px_index] = True
        self.fg = fg.reshape(t, h, w)  # the cleaned foreground: components big enough to matter
        ids = np.nonzero(valid)[0]
        self.by_frame = [ids[self.comp_frame[ids] == i] for i in range(t)]
        self.mean_components = len(ids) / t

    def primary_track(self) -> _Track:
        """Follow the object that moves the most through the clip.

        With one object in view, the track starts from the component with the most changing
        pixels. With several, each is followed through the clip and the one whose *track* moves
        the most wins (net displacement, vertical wobble, size change and turning, relative to its
        size): per-frame pixel changes alone would favour the largest outline whenever the camera
        shakes, since every edge then changes a little.
        """
        ids = np.concatenate(self.by_frame)
        if len(ids) == 0:
            return _Track(self, np.zeros(self.t, np.int64))
        # Motion first; size (a tiny weight) breaks ties among still objects.
        score = self.comp_motion[ids] + 1e-3 * self.comp_area[ids]
        best = _Track(self, self._chain(int(ids[int(np.argmax(score))])))
        counts = np.array([len(b) for b in self.by_frame])
        if counts.max() < 2:
            return best
        # Seeds: the components of the most crowded frame nearest the middle (up to 4, largest).
        crowded = np.nonzero(counts == counts.max())[0]
        frame = int(crowded[np.argmin(np.abs(crowded - self.t // 2))])
        seeds = sorted(self.by_frame[frame], key=lambda i: -self.comp_area[i])[:4]
        # The most-changing component's track already passes through one of them.
        seeds = [int(i) for i in seeds if i != best.chosen[frame]]
        tracks = [best] + [_Track(self, self._chain(seed)) for seed in seeds]
        # Flickering specks (noise, texture edges under a shaking camera) are no candidates: an
        # object is seen in most frames and is not tiny next to the others.
        sizes = [float(tr.area[tr.frames()].mean()) if tr.found else 0.0 for tr in tracks]
        activity = [
            tr.activity(self.config.fps)
            if len(tr.frames()) >= 0.6 * self.t and size >= 0.2 * max(sizes)
            else -1.0
            for tr, size in zip(tracks, sizes, strict=True)
        ]
        return tracks[int(np.argmax(activity))]  # ties: the first, the most-changing one

    def other_track(self, primary: _Track) -> _Track:
        """The largest object besides ``primary``, followed through the clip (an empty track
        when there is none). It never takes one of the primary's components."""
        taken = np.zeros(len(self.comp_area), bool)
        taken[primary.chosen] = True
        ids = np.concatenate(self.by_frame)
        ids = ids[~taken[ids]]
        if len(ids) == 0:
            return _Track(self, np.zeros(self.t, np.int64))
        chain = self._chain(int(ids[int(np.argmax(self.comp_area[ids]))]))
        chain[taken[chain]] = 0
        return _Track(self, chain)

    def _chain(self, seed: int) -> np.ndarray:
        """The component followed from ``seed`` in every frame (0 where it was not found)."""
        chosen = np.zeros(self.t, np.int64)
        seed_t = int(self.comp_frame[seed])
        chosen[seed_t] = seed
        for direction in (1, -1):
            prev = seed
            i = seed_t + direction
            while 0 <= i < self.t:
                j = self._follow(prev, i)
                if j > 0:
                    chosen[i] = prev = j
                i += direction
        return chosen

    def _follow(self, prev: int, t: int) -> int:
        """The component of frame ``t`` most like component ``prev`` (0 when none is close)."""
        cand = self.by_frame[t]
        if len(cand) == 0:
            return 0
        p_area = float(self.comp_area[prev])
        if len(cand) == 1:  # the common case, without numpy's per-call overhead
            j = int(cand[0])
            jump = math.hypot(
                self.comp_cx[j] - self.comp_cx[prev], self.comp_cy[j] - self.comp_cy[prev]
            )
            return j if jump / (math.sqrt(p_area) + 1) < _MAX_JUMP else 0
        areas = self.comp_area[cand]
        dx = self.comp_cx[cand] - self.comp_cx[prev]
        dy = self.comp_cy[cand] - self.comp_cy[prev]
        dist = np.hypot(dx, dy) / (math.sqrt(p_area) + 1)
        colour = np.abs(self.comp_ab[cand] - self.comp_ab[prev]).sum(axis=1) / 20.0
        size = np.abs(np.log(areas / max(p_area, 1.0)))
        cost = dist + colour + size
        best = int(np.argmin(cost))
        # A jump of several object sizes between frames is a cut or a different object, not the
        # same one moving (even a fast bounce moves well under one size per frame).
        return int(cand[best]) if dist[best] < _MAX_JUMP else 0

    def grey_small(self, side: int, frames: np.ndarray) -> tuple[dict[int, np.ndarray], float]:
        """Luma of ``frames`` with short side ``side`` (never upscaled), and the scale applied."""
        scale = min(side / self.short, 1.0)
        size = (max(1, round(self.w * scale)), max(1, round(self.h * scale)))
        out = {}
        for t in frames.tolist():
            grey = np.ascontiguousarray(self.ycc[t, ..., 0])
            out[t] = grey if scale == 1.0 else cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return out, scale

    def background_hsv(self) -> np.ndarray:
        """The background model in HSV (hue on 0-255)."""
        rgb = cv2.cvtColor(self.bg, cv2.COLOR_YCrCb2RGB)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)


class _Track:
    """The primary object's component in each frame (0 = not seen in that frame)."""

    def __init__(self, scene: _Scene, chosen: np.ndarray) -> None:
        self.chosen = chosen
        present = chosen > 0
        lut = np.zeros(len(scene.comp_area), bool)
        lut[chosen[present]] = True
        self.px_index = scene.px_index[lut[scene.px_label]]  # the primary's pixels, flattened
        self.shape = (scene.t, scene.h, scene.w)
        self._mask: np.ndarray | None = None
        self.area = np.where(present, scene.comp_area[chosen], 0.0)
        self.box = scene.comp_box[chosen]
        self.cx = scene.comp_cx[chosen]
        self.cy = scene.comp_cy[chosen]
        self.found = bool(present.any())
        self._moving = float(scene.px_moving[lut[scene.px_label]].sum())
        self._symmetry: tuple[np.ndarray, np.ndarray] | None = None
        self._activity: float | None = None

    @property
    def mask(self) -> np.ndarray:
        """The object's mask ``[T, h, w]`` (built on first use: most candidate tracks never
        need it)."""
        if self._mask is None:
            mask = np.zeros(self.shape[0] * self.shape[1] * self.shape[2], bool)
            mask[self.px_index] = True
            self._mask = mask.reshape(self.shape)
        return self._mask

    def frames(self) -> np.ndarray:
        """Indices of the frames where the primary object was seen."""
        return np.nonzero(self.chosen > 0)[0]

    def crop(self, t: int) -> np.ndarray:
        """The primary mask of frame ``t`` cut to its box, with a blank border (uint8 0/1), so an
        object touching the frame's edge still has a closed outline."""
        x0, y0, x1, y1 = (int(v) for v in self.box[t])
        crop = self.mask[t, y0 : y1 + 1, x0 : x1 + 1].astype(np.uint8)
        return cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)

    def symmetry(self) -> tuple[np.ndarray, np.ndarray]:
        """k-fold complex moments of the mask in every seen frame, k = 2..8.

        ``m_k = sum z^k`` over the mask's pixels, ``z`` the offset from the centroid as a complex
        number. Its amplitude (divided by ``sum |z|^k``) says how strongly the shape has k-fold
        symmetry (a triangle: k=3, a square: 4, a star: 5, a hexagon: 6; a circle: none) and does
        not change when the shape turns; its phase turns k times as fast as the shape. Computed
        from every pixel, not the outline, so it is robust to the pixel noise of small masks.

        Returns:
            amplitudes ``[n_seen, 7]`` and phases ``[n_seen, 7]`` (radians).
        """
        if self._symmetry is None:
            frames = self.frames()
            f, rem = np.divmod(self.px_index, self.shape[1] * self.shape[2])
            y, x = np.divmod(rem, self.shape[2])
            z = (x - self.cx[f]) + 1j * (y - self.cy[f])
            amps = np.zeros((len(frames), len(_SYMMETRY_ORDERS)))
            phases = np.zeros_like(amps)
            if len(z):
                # z^2 .. z^8, each the one before times z; pixels come in frame order, so
                # per-frame sums are one reduceat over the runs of each frame.
                powers = np.empty((len(z), len(_SYMMETRY_ORDERS)), complex)
                power = z
                for column in range(len(_SYMMETRY_ORDERS)):  # the orders are 2, 3, ... 8
                    power = power * z
                    powers[:, column] = power
                runs = np.flatnonzero(np.r_[True, f[1:] != f[:-1]])
                m = np.add.reduceat(powers, runs, axis=0)
                r = np.abs(z)
                norm = np.add.reduceat(r[:, None] ** _SYMMETRY_ORDERS[None, :], runs, axis=0)
                amps = np.abs(m) / np.maximum(norm, _EPS)
                phases = np.angle(m)
            self._symmetry = (amps, phases)
        return self._symmetry

    def rotation(self, fps: float) -> tuple[float, float, float]:
        """(turn rate in rad/s, the same times the symmetry's strength, phase jitter in rad).

        The phase of the dominant k-fold moment, unwrapped over consecutive frames, turns k times
        as fast as the shape; a line fitted to it gives the rate. Between frames 1/20 s apart the
        phase steps by less than pi for turns up to 2 pi/s at k = 8, so it does not alias. A shape
        without symmetry (a circle) has no phase to follow: its rate is noise, hence the rate
        weighted by the symmetry's strength as well.
        """
        frames = self.frames()
        if len(frames) < 3:
            return 0.0, 0.0, 0.0
        amps, phases = self.symmetry()
        k = int(np.argmax(amps.mean(axis=0)))
        phase = np.unwrap(phases[:, k])
        slope, residual = _slope(frames / fps, phase)
        order = float(_SYMMETRY_ORDERS[k])
        rate = abs(slope) / order
        strength = min(1.0, float(amps[:, k].mean()) / 0.15)
        return rate, rate * strength, float(residual.std()) / order

    def activity(self, fps: float) -> float:
        """How much this object acts over the clip, in object sizes (0 for a still one): net
        displacement, wobble about a straight path, change of size and turning (in radians)."""
        if self._activity is None:
            frames = self.frames()
            if len(frames) < 3:
                self._activity = 0.0
                return 0.0
            x, y, area = self.cx[frames], self.cy[frames], self.area[frames]
            r = math.sqrt(float(area.mean())) + 1.0
            k = max(1, min(3, len(frames) // 3))
            net = math.hypot(x[-k:].mean() - x[:k].mean(), y[-k:].mean() - y[:k].mean()) / r
            _, residual = _slope(_smooth(frames / fps), _smooth(y))
            wobble = float(residual.std()) / r
            size = abs(math.log(area[-k:].mean() / max(area[:k].mean(), 1.0))) / 2
            _, turning, _ = self.rotation(fps)
            turn = turning * (frames[-1] - frames[0]) / fps
            self._activity = net + 2 * wobble + size + 0.5 * turn
        return self._activity

    def moving_share(self) -> float:
        """Share of the primary's pixels that change between frames 0.1 s apart."""
        return self._moving / max(float(self.area.sum()), 1.0)
