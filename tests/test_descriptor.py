"""The built-in clip descriptor: its contract (shape, determinism, odd inputs) and what it sees."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidcap.encoders.descriptor import ClipDescriptor, DescriptorConfig
from vidcap.synth.plan import SynthConfig
from vidcap.synth.records import generate_corpus

GREY = (128, 128, 128)
RED = (230, 30, 30)
BLUE = (20, 80, 230)


def scene(
    moves: list[tuple[tuple[int, int, int], str, tuple[float, float], tuple[float, float]]],
    frames: int = 30,
    height: int = 96,
    width: int = 128,
    background: tuple[int, int, int] = GREY,
    size: float = 12.0,
) -> np.ndarray:
    """RGB frames of objects ``(colour, "square" | "circle", start xy, end xy)`` moving linearly."""
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = background
        p = t / max(frames - 1, 1)
        for colour, shape, (x0, y0), (x1, y1) in moves:
            x, y = x0 + (x1 - x0) * p, y0 + (y1 - y0) * p
            if shape == "circle":
                cv2.circle(frame, (round(x), round(y)), round(size), colour, -1, cv2.LINE_AA)
            else:
                pts = np.array([[x - size, y - size], [x + size, y - size], [x + size, y + size]])
                pts = np.vstack([pts, [[x - size, y + size]]]).round().astype(np.int32)
                cv2.fillPoly(frame, [pts], colour, cv2.LINE_AA)
        out[t] = frame
    return out


@pytest.fixture(scope="module")
def desc() -> ClipDescriptor:
    return ClipDescriptor()


def feature(desc: ClipDescriptor, vec: np.ndarray, name: str) -> float:
    return float(vec[desc.feature_names.index(name)])


def hue_peak(desc: ClipDescriptor, vec: np.ndarray) -> float:
    """The primary object's dominant hue, in degrees, from the colour block's hue histogram."""
    bins = desc.config.hue_bins
    hist = vec[desc.blocks["colour"]][:bins]
    return (int(np.argmax(hist)) + 0.5) * 360.0 / bins


def hue_distance(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


# --------------------------------------------------------------------------------------------------
# The contract


def test_dim_matches_output_and_names(desc: ClipDescriptor) -> None:
    clip = scene([(RED, "square", (30, 48), (90, 48))])
    vec = desc.encode_clip(clip)
    assert vec.shape == (desc.dim,)
    assert vec.dtype == np.float32
    assert desc.dim == 183  # documented in the module docstring
    assert len(desc.feature_names) == desc.dim == len(set(desc.feature_names))
    blocks = desc.blocks
    assert list(blocks) == ["colour", "shape", "motion", "flow", "secondary", "context"]
    assert sum(s.stop - s.start for s in blocks.values()) == desc.dim
    batch = desc.encode_clips([clip, clip[:10]])
    assert batch.shape == (2, desc.dim) and batch.dtype == np.float32
    assert desc.encode_clips([]).shape == (0, desc.dim)


def test_dim_follows_config() -> None:
    small = ClipDescriptor(DescriptorConfig(hue_bins=8, grid=3, flow=False))
    vec = small.encode_clip(scene([(BLUE, "circle", (30, 40), (60, 40))], frames=8))
    assert vec.shape == (small.dim,) == (len(small.feature_names),)
    assert not vec[small.blocks["flow"]].any()  # flow off: zeros, same layout


def test_deterministic(desc: ClipDescriptor) -> None:
    clip = scene([(RED, "square", (30, 48), (90, 30)), (BLUE, "circle", (100, 70), (100, 70))])
    first = desc.encode_clip(clip)
    np.testing.assert_array_equal(first, desc.encode_clip(clip.copy()))
    np.testing.assert_array_equal(first, ClipDescriptor().encode_clip(clip))


@pytest.mark.parametrize(
    "shape",
    [
        (1, 96, 128, 3),  # a single frame
        (2, 96, 128, 3),
        (30, 16, 16, 3),  # tiny
        (5, 1, 1, 3),
        (7, 37, 101, 3),  # odd sizes
        (30, 301, 53, 3),
    ],
)
def test_odd_inputs_stay_finite(desc: ClipDescriptor, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    for clip in (
        np.zeros(shape, np.uint8),  # all black
        np.full(shape, 255, np.uint8),  # all white
        rng.integers(0, 256, shape, dtype=np.uint8),  # noise
        np.repeat(rng.integers(0, 256, (*shape[:3], 1), dtype=np.uint8), 3, axis=-1),  # grey
    ):
        vec = desc.encode_clip(clip)
        assert vec.shape == (desc.dim,)
        assert np.isfinite(vec).all()


@pytest.mark.parametrize(
    ("work_side", "shape"),
    [(96, (30, 224, 298)), (96, (30, 398, 224)), (64, (7, 181, 333)), (100, (30, 720, 1280))],
)
def test_downscaling_a_clip_at_once_equals_each_frame_alone(
    work_side: int, shape: tuple[int, int, int]
) -> None:
    """``downscale="area"``: the clip is area-resized as one tall image, for speed; every frame
    must come out as its own resize would (the cells of an area resize tile each frame exactly)."""
    clip = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    small = ClipDescriptor(DescriptorConfig(work_side=work_side, downscale="area"))._prepare(clip)
    _, h, w = shape
    size = (round(w * work_side / min(h, w)), round(h * work_side / min(h, w)))
    each = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in clip])
    np.testing.assert_array_equal(small, each)


@pytest.mark.parametrize(
    ("work_side", "shape"),
    [
        (96, (30, 224, 298)),
        (96, (30, 398, 224)),
        (64, (7, 181, 333)),
        (100, (30, 720, 1280)),
        (96, (5, 227, 301)),
        (8, (3, 97, 50)),
    ],
)
def test_pyramid_downscaling_is_2x2_means_then_bilinear_frame_by_frame(
    work_side: int, shape: tuple[int, int, int]
) -> None:
    """The default downscale, against a reference written with numpy: each frame halved with
    rounded 2x2 means (an odd last row or column dropped) while it is twice the working size or
    more, then bilinear to the working size."""
    clip = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    small = ClipDescriptor(DescriptorConfig(work_side=work_side))._prepare(clip)
    _, h, w = shape
    scale = work_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    expected = []
    for frame in clip:
        f = frame.astype(np.int32)
        while f.shape[0] >= 2 * size[1] and f.shape[1] >= 2 * size[0]:
            f = f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2]
            f = (f[0::2, 0::2] + f[1::2, 0::2] + f[0::2, 1::2] + f[1::2, 1::2] + 2) // 4
        expected.append(cv2.resize(f.astype(np.uint8), size, interpolation=cv2.INTER_LINEAR))
    np.testing.assert_array_equal(small, np.stack(expected))


def test_pyramid_and_area_downscaling_describe_a_clip_alike() -> None:
    """At 224 px (extract's default size) the two downscales differ by a fraction of a grey level
    on average, and the descriptors they give are far closer to each other than to the
    descriptor of another action. At half the size or less there is nothing to tell apart:
    both resize bilinearly."""
    right = scene([(RED, "square", (40, 112), (260, 112))], height=224, width=298, size=28)
    left = scene([(RED, "square", (260, 112), (40, 112))], height=224, width=298, size=28)
    pyramid = ClipDescriptor()
    area = ClipDescriptor(DescriptorConfig(downscale="area"))
    pixels = pyramid._prepare(right).astype(int) - area._prepare(right)
    assert np.abs(pixels).mean() < 0.5
    vec = pyramid.encode_clip(right)
    assert np.linalg.norm(vec - area.encode_clip(right)) < 0.1 * np.linalg.norm(
        vec - pyramid.encode_clip(left)
    )
    small = right[:, ::2, ::2]  # 112 px: scale 0.86, bilinear either way
    np.testing.assert_array_equal(pyramid.encode_clip(small), area.encode_clip(small))


def test_greyscale_content_and_layouts(desc: ClipDescriptor) -> None:
    clip = scene([((200, 200, 200), "square", (30, 48), (90, 48))], background=(60, 60, 60))
    vec = desc.encode_clip(clip)
    assert np.isfinite(vec).all()
    # The moving grey square is still found (by motion: it has no colour to stand out by).
    assert feature(desc, vec, "motion_vx") > 0
    # [T, H, W] and [T, H, W, 1] greyscale, and one [H, W, 3] frame, are accepted.
    grey = clip[..., 0]
    np.testing.assert_array_equal(desc.encode_clip(grey), desc.encode_clip(grey[..., None]))
    np.testing.assert_array_equal(desc.encode_clip(grey), vec)
    np.testing.assert_array_equal(desc.encode_clip(clip[0]), desc.encode_clip(clip[:1]))


def test_bad_input_is_a_readable_error(desc: ClipDescriptor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        desc.encode_clip(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        desc.encode_clip(np.zeros((2, 8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        desc.encode_clip(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="work_side"):
        DescriptorConfig(work_side=4)
    with pytest.raises(ValueError, match="downscale must be one of pyramid, area"):
        DescriptorConfig(downscale="lanczos")


# --------------------------------------------------------------------------------------------------
# What it sees


def test_object_colour(desc: ClipDescriptor) -> None:
    red = desc.encode_clip(scene([(RED, "square", (30, 48), (90, 48))]))
    blue = desc.encode_clip(scene([(BLUE, "square", (30, 48), (90, 48))]))
    colour = desc.blocks["colour"]
    assert np.linalg.norm(red[colour] - blue[colour]) > 0.5
    assert hue_distance(hue_peak(desc, red), 0.0) < 30
    assert hue_distance(hue_peak(desc, blue), 225.0) < 30
    # The grey background is not what the colour block describes.
    assert hue_distance(hue_peak(desc, red), hue_peak(desc, blue)) > 90


def test_still_object_is_foreground(desc: ClipDescriptor) -> None:
    """A still object melts into the median background; its colour still makes it foreground."""
    vec = desc.encode_clip(scene([(RED, "circle", (64, 48), (64, 48))]))
    assert feature(desc, vec, "shape_found") > 0
    assert hue_distance(hue_peak(desc, vec), 0.0) < 30
    assert abs(feature(desc, vec, "motion_vx")) < 0.05
    assert feature(desc, vec, "circularity") > feature(
        desc, desc.encode_clip(scene([(RED, "square", (64, 48), (64, 48))])), "circularity"
    )


def test_motion_direction(desc: ClipDescriptor) -> None:
    right = desc.encode_clip(scene([(RED, "square", (30, 48), (95, 48))]))
    left = desc.encode_clip(scene([(RED, "square", (95, 48), (30, 48))]))
    down = desc.encode_clip(scene([(RED, "square", (64, 20), (64, 75))]))
    for name in ("motion_vx", "motion_net_dx", "flow_u"):
        assert feature(desc, right, name) > 0.1 > -0.1 > feature(desc, left, name), name
    assert feature(desc, right, "flow_dir_E") > feature(desc, right, "flow_dir_W")
    assert feature(desc, left, "flow_dir_W") > feature(desc, left, "flow_dir_E")
    # Image y grows downwards: moving down is +vy.
    assert feature(desc, down, "motion_vy") > 0.1
    assert abs(feature(desc, down, "motion_vx")) < 0.1


def test_the_moving_object_is_primary(desc: ClipDescriptor) -> None:
    """With two objects, the colour block describes the one that moves."""
    red_moves = desc.encode_clip(
        scene([(RED, "square", (25, 30), (60, 30)), (BLUE, "circle", (100, 70), (100, 70))])
    )
    blue_moves = desc.encode_clip(
        scene([(RED, "square", (25, 30), (25, 30)), (BLUE, "circle", (100, 70), (65, 70))])
    )
    assert hue_distance(hue_peak(desc, red_moves), 0.0) < 30
    assert hue_distance(hue_peak(desc, blue_moves), 225.0) < 30
    assert feature(desc, red_moves, "motion_vx") > 0.1
    assert feature(desc, blue_moves, "motion_vx") < -0.1
    # The still one is described as the secondary object.
    assert feature(desc, red_moves, "secondary_share") > -0.9


def test_objects_2_describes_the_still_object_too() -> None:
    """``objects=2`` adds the hue and shape of the largest other object: the one that does not act."""
    two = ClipDescriptor(DescriptorConfig(objects=2))
    assert two.dim == 233 == len(two.feature_names)  # documented in the module docstring
    assert list(two.blocks)[-1] == "other_object"
    still_circle = two.encode_clip(
        scene([(RED, "square", (30, 30), (90, 30)), (BLUE, "circle", (100, 70), (100, 70))])
    )
    still_square = two.encode_clip(
        scene([(BLUE, "circle", (30, 30), (90, 30)), (RED, "square", (100, 70), (100, 70))])
    )
    alone = two.encode_clip(scene([(RED, "square", (30, 30), (90, 30))]))
    other = two.blocks["other_object"]
    hue_bins = two.config.hue_bins

    def other_hue(vec: np.ndarray) -> float:
        return (int(np.argmax(vec[other][:hue_bins])) + 0.5) * 360.0 / hue_bins

    assert hue_distance(other_hue(still_circle), 225.0) < 30  # blue
    assert hue_distance(other_hue(still_square), 0.0) < 30  # red
    # A square rings at 4-fold symmetry; a circle does not.
    assert feature(two, still_square, "other_symmetry_4") > feature(
        two, still_circle, "other_symmetry_4"
    )
    assert (
        feature(two, still_circle, "other_shape_found")
        > 0
        > feature(two, alone, "other_shape_found")
    )
    # The first blocks are the one-object descriptor, unchanged.
    one = ClipDescriptor()
    np.testing.assert_array_equal(
        still_circle[: one.dim],
        one.encode_clip(
            scene([(RED, "square", (30, 30), (90, 30)), (BLUE, "circle", (100, 70), (100, 70))])
        ),
    )
    with pytest.raises(ValueError, match="objects must be 1 or 2"):
        DescriptorConfig(objects=3)


# --------------------------------------------------------------------------------------------------
# End to end: a probe on a small synthetic corpus


def _decode(path: Path, fps: float = 20.0, size: int = 128) -> np.ndarray:
    """Frames at ``fps`` by timestamp (the source is constant-rate), short side ``size``, RGB."""
    cap = cv2.VideoCapture(str(path))
    source_fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    h, w = frames[0].shape[:2]
    scale = size / min(h, w)
    dsize = (round(w * scale), round(h * scale))
    count = int(len(frames) / source_fps * fps)
    picks = [min(int(k / fps * source_fps + 1e-6), len(frames) - 1) for k in range(count)]
    return np.stack([cv2.cvtColor(cv2.resize(frames[i], dsize), cv2.COLOR_BGR2RGB) for i in picks])


def _ridge_accuracy(x: np.ndarray, labels: list[str], train: np.ndarray) -> float:
    """Accuracy of a one-vs-rest ridge classifier on standardised features (numpy only)."""
    y = np.asarray(labels)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    classes = np.unique(y[train])
    target = (y[train][:, None] == classes[None]).astype(np.float64)
    a = z[train]
    w = np.linalg.solve(a.T @ a + 10.0 * np.eye(a.shape[1]), a.T @ target)
    predicted = classes[np.argmax(z[~train] @ w, axis=1)]
    return float((predicted == y[~train]).mean())


@pytest.mark.slow
def test_probe_on_synthetic_corpus(tmp_path: Path, desc: ClipDescriptor) -> None:
    """The acting object's colour, shape and action are linearly readable from one clip per event
    (chance: 1/8, 1/6 and 1/9)."""
    generate_corpus(tmp_path, SynthConfig(videos=40, seed=0, workers=1))
    vectors, labels, train = [], [], []
    for line in (tmp_path / "corpus.jsonl").read_text().splitlines():
        record = json.loads(line)
        frames = _decode(tmp_path / record["video"])
        for event in record["meta"]["events"]:
            start = math.ceil(event["start"] * 20 - 0.01)  # the event's first frame
            vectors.append(desc.encode_clip(frames[start : start + 30]))
            labels.append(event)
            train.append(record["split"] == "train")
    x, is_train = np.stack(vectors), np.asarray(train)
    assert np.isfinite(x).all()
    assert is_train.sum() > 40 and (~is_train).sum() > 15
    accuracy = {
        task: _ridge_accuracy(x, [e[task] for e in labels], is_train)
        for task in ("colour", "shape", "action")
    }
    assert accuracy["colour"] > 0.6, accuracy
    assert accuracy["shape"] > 0.35, accuracy
    assert accuracy["action"] > 0.5, accuracy
