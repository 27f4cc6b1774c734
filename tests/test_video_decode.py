"""The video decoding layer: every backend, damaged and unusual files, timing, clips, timeouts."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import videos
from vidcap.errors import VidcapError
from vidcap.video import (
    BackendUnavailableError,
    DecodeError,
    DecoderCrashedError,
    DecodeTimeoutError,
    DecodeWorker,
    NoVideoStreamError,
    available_backends,
    clip_array,
    clip_windows,
    decode_frames,
    extract_frames,
    open_frames,
    probe,
    read_frames,
    run_with_timeout,
)
from vidcap.video.backends import Reader, register_backend, unregister_backend
from vidcap.video.backends.pyav_backend import PyAVReader
from vidcap.video.resample import Resampler, output_geometry, select_frames
from videos import (
    FFMPEG,
    coded_frames,
    encode,
    expected_codes,
    ffmpeg,
    ffmpeg_encoders,
    fork_only,
    quadrant_frame,
    quadrants,
    read_code,
    read_codes,
    write_cv2,
)

BACKENDS = available_backends()
ALL = ["auto", *BACKENDS]
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg binary is not installed")
needs_x264 = pytest.mark.skipif(
    "libx264" not in ffmpeg_encoders(), reason="ffmpeg has no libx264 encoder"
)


def _backend_param(backend: str) -> str:
    if backend != "auto" and backend not in BACKENDS:
        pytest.skip(f"{backend} is not installed")
    return backend


# --------------------------------------------------------------------------------------------------
# Videos shared by the tests (made once per session)


@pytest.fixture(scope="session")
def vids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Name -> path. Entries that need ffmpeg (or one of its encoders) are absent without it."""
    d = tmp_path_factory.mktemp("videos")
    out: dict[str, Path] = {}
    coded45 = coded_frames(45)
    out["mjpeg.avi"] = write_cv2(d / "mjpeg.avi", coded45, 30, "MJPG")
    red = np.zeros((6, 48, 64, 3), np.uint8)
    red[..., 0] = 255
    out["red.avi"] = write_cv2(d / "red.avi", red, 20, "MJPG")
    gray = coded_frames(20)[..., 0]
    out["gray.avi"] = write_cv2(d / "gray.avi", gray, 20, "MJPG")
    over = write_cv2(d / "over.avi", coded_frames(30), 20, "MJPG")
    videos.overstate_avi_frame_count(over, 300)
    out["over.avi"] = over
    if FFMPEG is None:
        return out
    enc = ffmpeg_encoders()
    # OpenCV's writers round sizes down to even numbers: odd sizes need ffmpeg (and 4:4:4 chroma).
    odd = coded_frames(4, 479, 641)
    out["odd.avi"] = encode(d / "odd.avi", odd, 20, ("-c:v", "mjpeg", "-pix_fmt", "yuvj444p"))
    x264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    if "libx264" in enc:
        out["h264.mp4"] = encode(d / "h264.mp4", coded45, 30, x264)
        out["h264.mkv"] = encode(d / "h264.mkv", coded45, 30, x264)
        out["odd.mp4"] = encode(d / "odd.mp4", odd, 20, ("-c:v", "libx264", "-pix_fmt", "yuv444p"))
        out["one.mp4"] = encode(d / "one.mp4", coded_frames(1), 30, x264)
        out["short.mp4"] = encode(d / "short.mp4", coded_frames(10), 20, x264)
        # Variable frame rate: frames 0-9 at 10 fps, then 30 fps (frame N at (20 + N) / 30 s).
        vfr = "setpts='if(lt(N,10),N*3,20+N)/30/TB'"
        for ext in ("mp4", "mkv"):
            out[f"vfr.{ext}"] = encode(
                d / f"vfr.{ext}", coded_frames(40), 30, (*x264, "-fps_mode", "vfr"), vfr
            )
        quad = np.stack([quadrant_frame()] * 5)
        plain = encode(d / "quad.mp4", quad, 10, x264)
        for degrees in (90, 180, 270):
            rotated = d / f"rot{degrees}.mp4"
            ffmpeg(
                "-i", str(plain), "-c", "copy", "-metadata:s:v", f"rotate={degrees}", str(rotated)
            )
            out[f"rot{degrees}.mp4"] = rotated
        faststart = encode(d / "fs.mp4", coded_frames(90), 30, (*x264, "-movflags", "+faststart"))
        data = faststart.read_bytes()
        (d / "cut_fs.mp4").write_bytes(data[: len(data) // 2])
        out["cut_fs.mp4"] = d / "cut_fs.mp4"
        data = out["h264.mp4"].read_bytes()  # moov at the end: cutting loses the index
        (d / "cut_end.mp4").write_bytes(data[: len(data) // 2])
        out["cut_end.mp4"] = d / "cut_end.mp4"
        out["4k.mp4"] = encode(d / "4k.mp4", coded_frames(10, 2160, 3840), 10, x264)
        # A keyframe every 5 frames: reading 2 of every 3 steps over one every few reads.
        short_gop = (*x264, "-g", "5", "-keyint_min", "5", "-sc_threshold", "0")
        out["gop5.mp4"] = encode(d / "gop5.mp4", coded45, 30, short_gop)
        # B-frames: decode order differs from display order.
        b_frames = ("-c:v", "libx264", "-preset", "medium", "-bf", "3", "-g", "10")
        out["bframes.mp4"] = encode(
            d / "bframes.mp4", coded45, 30, (*b_frames, "-pix_fmt", "yuv420p")
        )
        weird = d / "dir with space" / "vidéo 日本 clip.mp4"
        weird.parent.mkdir()
        out["weird.mp4"] = encode(weird, coded_frames(12), 30, x264)
    if "libvpx-vp9" in enc:
        vp9 = ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8")
        out["vp9.webm"] = encode(d / "vp9.webm", coded45, 30, vp9)
    if "aac" in enc:
        ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(d / "audio.m4a"))
        out["audio.m4a"] = d / "audio.m4a"
    if "ffv1" in enc:
        out["gray_ffv1.mkv"] = encode(
            d / "gray_ffv1.mkv", gray, 20, ("-c:v", "ffv1", "-pix_fmt", "gray"), pix_fmt_in="gray"
        )
    return out


def need(vids: dict[str, Path], name: str) -> Path:
    if name not in vids:
        pytest.skip(f"{name} needs ffmpeg with the right encoder")
    return vids[name]


# --------------------------------------------------------------------------------------------------
# Files that are not (good) videos


@pytest.mark.parametrize("backend", ALL)
def test_missing_file(tmp_path: Path, backend: str) -> None:
    with pytest.raises(DecodeError, match="does not exist"):
        open_frames(tmp_path / "nope.mp4", backend=_backend_param(backend))
    # A link whose target is gone (a moved collection) is named as a link, not as missing.
    (tmp_path / "link.mp4").symlink_to(tmp_path / "moved" / "clip.mp4")
    with pytest.raises(DecodeError, match=r"link.mp4 is a symbolic link to .*moved/clip.mp4, wh"):
        open_frames(tmp_path / "link.mp4", backend=_backend_param(backend))


@pytest.mark.parametrize("backend", ALL)
def test_zero_byte_file(tmp_path: Path, backend: str) -> None:
    (tmp_path / "empty.mp4").touch()
    with pytest.raises(DecodeError, match=r"is empty \(0 bytes\)"):
        open_frames(tmp_path / "empty.mp4", backend=_backend_param(backend))


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="is a directory"):
        open_frames(tmp_path)


@pytest.mark.parametrize("backend", ALL)
def test_random_bytes(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "random.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(
        DecodeError, match="is not a video file that PyAV, decord or OpenCV can read"
    ):
        open_frames(path, backend=_backend_param(backend))


@pytest.mark.parametrize("backend", ALL)
def test_text_file(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video, it is a shopping list\n" * 20)
    with pytest.raises(DecodeError, match="is a text file, not a video"):
        open_frames(path, backend=_backend_param(backend))


@needs_ffmpeg
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_audio_only(vids: dict[str, Path], backend: str) -> None:
    with pytest.raises(NoVideoStreamError, match="has no video stream"):
        open_frames(need(vids, "audio.m4a"), backend=_backend_param(backend))


@needs_x264
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_truncated_mp4_without_index(vids: dict[str, Path], backend: str) -> None:
    with pytest.raises(DecodeError, match="probably truncated"):
        open_frames(vids["cut_end.mp4"], backend=_backend_param(backend))


@needs_x264
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_truncated_mp4_with_index_gives_the_part_present(
    vids: dict[str, Path], backend: str
) -> None:
    """A faststart MP4 cut in half: the frames present, correctly timed, or a clear error."""
    try:
        with open_frames(vids["cut_fs.mp4"], backend=_backend_param(backend)) as stream:
            frames = np.concatenate([c.frames for c in stream])
            warnings = stream.warnings
    except DecodeError as e:  # decord alone stops at the damaged packet
        assert backend == "decord", e
        assert "cut_fs.mp4" in str(e)
        return
    n_source = max(read_codes(frames)) + 1
    assert 10 <= n_source < 90
    assert read_codes(frames) == expected_codes([i / 30 for i in range(n_source)], n_source / 30)
    assert any("truncated" in w for w in warnings)


@pytest.mark.slow
def test_unknown_backend(vids: dict[str, Path]) -> None:
    with pytest.raises(BackendUnavailableError, match="unknown video backend 'nope'"):
        open_frames(vids["mjpeg.avi"], backend="nope")


def test_errors_are_vidcap_errors_with_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "e.mp4").touch()
    with pytest.raises(VidcapError) as info:
        open_frames(tmp_path / "e.mp4")
    assert "\n" not in str(info.value) and str(info.value).endswith(".")


# --------------------------------------------------------------------------------------------------
# Timing, size, colour


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("name", ["mjpeg.avi", "h264.mp4", "h264.mkv", "vp9.webm"])
@pytest.mark.slow
def test_codecs_resample_30_to_20_fps(vids: dict[str, Path], name: str, backend: str) -> None:
    """45 frames at 30 fps (1.5 s) -> 30 frames at 20 fps; output k shows source floor(1.5 k)."""
    frames = read_frames(need(vids, name), backend=_backend_param(backend))
    assert frames.shape == (30, 224, 336, 3) and frames.dtype == np.uint8
    assert read_codes(frames) == [int(1.5 * k) for k in range(30)]


@needs_x264
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("ext", ["mp4", "mkv"])
@pytest.mark.slow
def test_variable_frame_rate(vids: dict[str, Path], ext: str, backend: str) -> None:
    stamps = [n / 10 if n < 10 else (20 + n) / 30 for n in range(40)]
    frames = read_frames(vids[f"vfr.{ext}"], backend=_backend_param(backend))
    assert read_codes(frames) == expected_codes(stamps, stamps[-1] + 1 / 30)
    assert len(frames) == 40  # 2.0 s at 20 fps


@pytest.mark.parametrize("fps", [5.0, 20.0, 60.0])
@pytest.mark.slow
def test_other_rates_repeat_or_skip_frames(vids: dict[str, Path], fps: float) -> None:
    frames = read_frames(vids["mjpeg.avi"], fps=fps, size=32)
    assert read_codes(frames) == expected_codes([i / 30 for i in range(45)], 1.5, fps)


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_red_stays_red(vids: dict[str, Path], backend: str) -> None:
    frames = read_frames(vids["red.avi"], backend=_backend_param(backend))
    r, g, b = frames[..., 0].mean(), frames[..., 1].mean(), frames[..., 2].mean()
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("name", ["gray.avi", "gray_ffv1.mkv"])
@pytest.mark.slow
def test_grayscale_comes_out_rgb(vids: dict[str, Path], name: str, backend: str) -> None:
    frames = read_frames(need(vids, name), backend=_backend_param(backend))
    assert frames.shape == (20, 224, 336, 3)
    assert np.abs(frames[..., 0].astype(int) - frames[..., 2]).max() <= 8
    assert read_codes(frames) == list(range(20))


@needs_ffmpeg
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("name", ["odd.avi", "odd.mp4"])
@pytest.mark.parametrize("crop", [False, True])
@pytest.mark.slow
def test_odd_dimensions(vids: dict[str, Path], name: str, backend: str, crop: bool) -> None:
    """641 x 479: short side 479 -> 224, long side round(641 * 224 / 479) = 300."""
    frames = read_frames(need(vids, name), crop=crop, backend=_backend_param(backend))
    assert frames.shape == ((4, 224, 224, 3) if crop else (4, 224, 300, 3))
    assert read_codes(frames) == [0, 1, 2, 3]


@needs_ffmpeg
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_size_none_keeps_the_source_size(vids: dict[str, Path], backend: str) -> None:
    frames = read_frames(vids["odd.avi"], size=None, backend=_backend_param(backend))
    assert frames.shape == (4, 479, 641, 3)


@needs_x264
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("degrees", [90, 180, 270])
@pytest.mark.slow
def test_rotation_metadata_is_applied(vids: dict[str, Path], backend: str, degrees: int) -> None:
    """Frames come out upright, as ``ffmpeg`` shows them (rotate=90 turns the picture 90 degrees
    counter-clockwise: the red top-left quadrant ends bottom-left)."""
    frames = read_frames(vids[f"rot{degrees}.mp4"], backend=_backend_param(backend))
    upright = np.rot90(quadrant_frame(), k=degrees // 90)
    assert frames.shape[1:3] == ((299, 224) if degrees in (90, 270) else (224, 299))
    assert quadrants(frames[0]) == quadrants(upright)
    assert probe(vids[f"rot{degrees}.mp4"], backend="pyav")[1].rotation == degrees


class _UnrotatingDecord:
    """A decord VideoReader that ignores display rotation (as some decord builds do)."""

    def __init__(self, path: Path, rotation: int, width: int = -1, height: int = -1) -> None:
        import decord

        if rotation in (90, 270):
            width, height = height, width
        self._real = decord.VideoReader(str(path), width=width, height=height)
        self._k = -rotation // 90

    def __len__(self) -> int:
        return len(self._real)

    def get_frame_timestamp(self, idx: object) -> np.ndarray:
        return self._real.get_frame_timestamp(idx)

    def get_key_indices(self) -> list[int]:
        return self._real.get_key_indices()

    def __getitem__(self, i: int) -> object:
        return _Array(np.rot90(self._real[i].asnumpy(), self._k))

    def get_batch(self, idx: list[int]) -> object:
        return _Array(np.rot90(self._real.get_batch(idx).asnumpy(), self._k, axes=(1, 2)))


class _Array:
    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def asnumpy(self) -> np.ndarray:
        return np.ascontiguousarray(self._a)


@needs_x264
@pytest.mark.skipif("decord" not in BACKENDS, reason="decord is not installed")
@pytest.mark.parametrize("degrees", [90, 180, 270])
@pytest.mark.slow
def test_decord_builds_that_ignore_rotation_are_turned_upright(
    vids: dict[str, Path], degrees: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidcap.video.backends.decord_backend import DecordReader

    def fake_open(self: DecordReader, width: int = -1, height: int = -1) -> object:
        return _UnrotatingDecord(self.path, self.info.rotation, width, height)

    monkeypatch.setattr(DecordReader, "_open", fake_open)
    frames = read_frames(vids[f"rot{degrees}.mp4"], backend="decord")
    assert quadrants(frames[0]) == quadrants(np.rot90(quadrant_frame(), k=degrees // 90))


def _decord_seeks(reads: np.ndarray, keys: np.ndarray) -> int:
    """How often decord seeks to read ``reads`` in order: ``VideoReader.SeekAccurate`` rewinds and
    seeks whenever the next frame read is not the next one and lies past another keyframe."""

    def key_of(frame: int) -> int:
        return int(keys[np.searchsorted(keys, frame, side="right") - 1])

    seeks, current = 0, 0  # the frame decord decodes next
    for frame in reads.tolist():
        if frame != current and (frame < current or key_of(frame) != key_of(current)):
            seeks += 1
        current = frame + 1
    return seeks


@pytest.mark.parametrize(
    ("gop", "every", "take"),
    [(12, 5, 4), (5, 3, 2), (1, 5, 4), (250, 5, 4), (12, 30, 4), (12, 25, 1), (1, 8, 1)],
)
def test_decord_read_plan_runs_on_over_short_gaps_and_seeks_over_long_ones(
    gop: int, every: int, take: int
) -> None:
    """Reading ``take`` of every ``every`` frames (a resampled rate, or an image model's few frames
    per clip): a gap of a few frames that crosses one keyframe is read through (that keyframe and
    the frame before it added), so decord never seeks there; a gap over several keyframes or a
    long one is left to decord's seek. The wanted frames are all read, in order."""
    from vidcap.video.backends.decord_backend import read_plan

    keys = np.arange(0, 3000, gop)
    wanted = np.flatnonzero(np.arange(3000) % every < take)
    plan = read_plan(wanted, keys)
    assert np.all(np.diff(plan) > 0) and np.isin(wanted, plan).all()
    pairs = list(itertools.pairwise(wanted.tolist()))
    crossed = [int(np.sum((keys > a + 1) & (keys <= b))) for a, b in pairs]
    short_single = sum(
        1 for (a, b), c in zip(pairs, crossed, strict=True) if c == 1 and b - a <= 16
    )
    # Every seek left is one over a long gap or over several keyframes, and each read-through
    # gap cost at most two frames more.
    assert _decord_seeks(plan, keys) == sum(1 for c in crossed if c > 0) - short_single
    assert len(plan) - len(wanted) <= 2 * short_single
    if every <= 5:
        assert _decord_seeks(plan, keys) == 0 < _decord_seeks(wanted, keys)


def test_batched_decoder_calls_span_a_bounded_stretch_of_source() -> None:
    """decord's and torchcodec's batched calls: at most ``most`` frames, all within ``span`` of
    the first (a sparse read of a long-GOP video must not put minutes into one silent call)."""
    from vidcap.video.backends import bounded_runs

    dense = np.arange(0, 200, 1.25).astype(int)  # 20 fps from 25: 32 a call, as before
    assert [len(r) for r in bounded_runs(dense, 32, 128)] == [32, 32, 32, 32, 32]
    sparse = np.arange(0, 3000, 300)  # a frame every 12 s of a 25 fps video: one a call
    assert bounded_runs(sparse, 32, 128) == [range(k, k + 1) for k in range(10)]
    runs = bounded_runs(np.array([0, 10, 127, 128, 129, 400, 401]), 32, 128)
    assert runs == [range(0, 3), range(3, 5), range(5, 7)]
    times = np.arange(40) / 0.5  # torchcodec's output times at --fps 0.5: 128 frames are 5.12 s
    assert [len(r) for r in bounded_runs(times, 32, 128 / 25)] == [3] * 13 + [1]
    assert bounded_runs(np.array([]), 32, 128) == []


@needs_x264
@pytest.mark.skipif("decord" not in BACKENDS, reason="decord is not installed")
@pytest.mark.parametrize("name", ["gop5.mp4", "bframes.mp4", "mjpeg.avi", "h264.mp4"])
def test_decord_read_plan_gives_the_frames_that_seeking_gives(
    vids: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frames read through (to spare decord a seek) are dropped: the same frames come out, at
    20 fps from 30 and for a keep mask, as with decord seeking to each wanted frame itself."""
    from vidcap.video.backends import decord_backend

    keep = np.zeros(6, dtype=bool)
    keep[[1, 4]] = True

    def read(mask: np.ndarray | None) -> np.ndarray:
        with open_frames(vids[name], fps=20, size=64, backend="decord", keep=mask) as stream:
            return np.concatenate([chunk.frames for chunk in stream])

    planned = [read(None), read(keep)]
    monkeypatch.setattr(decord_backend, "read_plan", lambda wanted, keys: wanted)
    sought = [read(None), read(keep)]
    for a, b in zip(planned, sought, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)
    assert planned[1][1].any() and not planned[1][2].any()  # read / not read (zeros)


@needs_x264
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_one_frame_video(vids: dict[str, Path], backend: str) -> None:
    frames = read_frames(vids["one.mp4"], backend=_backend_param(backend))
    assert len(frames) == 1 and read_code(frames[0]) == 0
    (clip,) = clip_windows(1, 20.0)
    padded = clip_array(frames, clip)
    assert padded.shape == (30, 224, 336, 3) and (padded == frames[0]).all()


@needs_x264
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_video_shorter_than_one_clip(vids: dict[str, Path], backend: str, tmp_path: Path) -> None:
    meta = extract_frames(vids["short.mp4"], tmp_path / "s.npy", backend=_backend_param(backend))
    assert meta["n_frames"] == 10
    assert meta["clips"] == [
        {"index": 0, "start_frame": 0, "end_frame": 10, "start_s": 0.0, "end_s": 0.5}
    ]


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_over_reported_frame_count(vids: dict[str, Path], backend: str) -> None:
    """An AVI whose header claims 300 frames (15 s) but holds 30 (1.5 s at 20 fps)."""
    with open_frames(vids["over.avi"], backend=_backend_param(backend)) as stream:
        frames = np.concatenate([c.frames for c in stream])
        assert read_codes(frames) == list(range(30))
        assert any("reports 15.00 s" in w for w in stream.warnings)
    assert probe(vids["over.avi"], backend="pyav")[1].n_frames_reported == 300


@needs_x264
@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_path_with_spaces_and_non_ascii(vids: dict[str, Path], backend: str) -> None:
    frames = read_frames(vids["weird.mp4"], backend=_backend_param(backend))
    assert read_codes(frames) == [0, 1, 3, 4, 6, 7, 9, 10]


@needs_x264
@pytest.mark.parametrize("backend", ["auto", "pyav"])
@pytest.mark.slow
def test_4k(vids: dict[str, Path], backend: str) -> None:
    frames = read_frames(vids["4k.mp4"], backend=_backend_param(backend), crop=True)
    assert frames.shape == (20, 224, 224, 3)
    assert read_codes(frames) == [k // 2 for k in range(20)]


@pytest.mark.slow
def test_chunks_are_bounded_and_consecutive(vids: dict[str, Path]) -> None:
    chunks = list(decode_frames(vids["mjpeg.avi"], size=32, chunk_frames=7))
    assert [len(c) for c in chunks] == [7, 7, 7, 7, 2]
    assert [c.start for c in chunks] == [0, 7, 14, 21, 28]
    np.testing.assert_allclose(chunks[1].times, np.arange(7, 14) / 20)
    np.testing.assert_allclose(chunks[0].source_times, [int(1.5 * k) / 30 for k in range(7)])


# --------------------------------------------------------------------------------------------------
# Fallback between backends


class FlakyReader(Reader):
    """PyAV that fails after ``fail_after`` output frames (or when opening, with -1)."""

    name = "flaky"
    fail_after = 10

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        if self.fail_after < 0:
            raise RuntimeError("simulated open failure")
        self._inner = PyAVReader(path)
        self.info = self._inner.info

    def frames(self, fps: float, resize: tuple[int, int]) -> Iterator[tuple[float, np.ndarray]]:
        for i, item in enumerate(self._inner.frames(fps, resize)):
            if i == self.fail_after:
                raise RuntimeError("simulated decoder failure")
            yield item

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def flaky() -> Iterator[type[FlakyReader]]:
    register_backend("flaky", "av", FlakyReader)
    yield FlakyReader
    FlakyReader.fail_after = 10
    unregister_backend("flaky")


@pytest.mark.slow
def test_fallback_when_a_backend_cannot_open(vids: dict[str, Path], flaky: type) -> None:
    flaky.fail_after = -1
    with open_frames(vids["mjpeg.avi"], backend=["flaky", "opencv"]) as stream:
        assert stream.backend == "opencv"
        assert "simulated open failure" in stream.failed["flaky"]
        assert read_codes(np.concatenate([c.frames for c in stream]))[:3] == [0, 1, 3]


@pytest.mark.slow
def test_failure_before_the_first_chunk_is_invisible(vids: dict[str, Path], flaky: type) -> None:
    with open_frames(vids["mjpeg.avi"], backend=["flaky", "pyav"], chunk_frames=16) as stream:
        frames = np.concatenate([c.frames for c in stream])  # flaky dies at frame 10 < 16
        assert stream.backend == "pyav" and "flaky" in stream.failed
    assert read_codes(frames) == [int(1.5 * k) for k in range(30)]


@pytest.mark.slow
def test_failure_after_output_started_is_partial(vids: dict[str, Path], flaky: type) -> None:
    with open_frames(vids["mjpeg.avi"], backend=["flaky", "pyav"], chunk_frames=4) as stream:
        got = []
        with pytest.raises(DecodeError, match="failed after 8 frames") as info:
            for chunk in stream:
                got.append(chunk)
        assert info.value.partial and stream.remaining_backends == ["pyav"]
        assert sum(len(c) for c in got) == 8


@pytest.mark.slow
def test_extract_restarts_cleanly_after_a_midway_failure(
    vids: dict[str, Path], flaky: type, tmp_path: Path
) -> None:
    out = tmp_path / "frames.npy"
    meta = extract_frames(vids["mjpeg.avi"], out, backend=["flaky", "pyav"], chunk_frames=4)
    assert (
        meta["backend"] == "pyav"
        and "simulated decoder failure" in meta["failed_backends"]["flaky"]
    )
    frames = np.load(out)
    assert read_codes(frames) == [int(1.5 * k) for k in range(30)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.npy"]


@pytest.mark.skipif("decord" not in BACKENDS, reason="decord is not installed")
@pytest.mark.slow
def test_big_files_skip_decord_unless_asked_for(
    vids: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import vidcap.video.decode as decode

    monkeypatch.setattr(decode, "DECORD_MAX_BYTES", 1000)
    with open_frames(vids["mjpeg.avi"]) as stream:
        assert stream.backend == "pyav" and stream.failed["decord"].startswith("skipped")
    with open_frames(vids["mjpeg.avi"], backend="decord") as stream:
        assert stream.backend == "decord"


# --------------------------------------------------------------------------------------------------
# extract_frames: the .npy file and the metadata


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.slow
def test_extract_frames_writes_npy_and_metadata(
    vids: dict[str, Path], backend: str, tmp_path: Path
) -> None:
    out = tmp_path / "sub" / "frames.npy"
    meta = extract_frames(vids["mjpeg.avi"], out, backend=_backend_param(backend), chunk_frames=8)
    frames = np.load(out, mmap_mode="r")
    assert frames.shape == (30, 224, 336, 3) and frames.dtype == np.uint8
    assert read_codes(np.asarray(frames)) == [int(1.5 * k) for k in range(30)]
    assert meta["backend"] in BACKENDS and (backend == "auto" or meta["backend"] == backend)
    assert (meta["n_frames"], meta["height"], meta["width"], meta["fps"]) == (30, 224, 336, 20.0)
    assert meta["duration_s"] == 1.5
    assert meta["source"]["width"] == 96 and meta["source"]["height"] == 64
    assert meta["source"]["fps"] == pytest.approx(30.0)
    assert meta["clips"] == [
        {"index": 0, "start_frame": 0, "end_frame": 30, "start_s": 0.0, "end_s": 1.5}
    ]
    assert meta["warnings"] == [] and meta["failed_backends"] == {}


def test_extract_frames_leaves_nothing_on_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(DecodeError):
        extract_frames(bad, tmp_path / "out" / "x.npy")
    assert list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Timeouts and crashes in a child process


def test_run_with_timeout_kills_a_hanging_call() -> None:
    start = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match="sent nothing for 1 s") as info:
        run_with_timeout(time.sleep, 60, timeout=1.0, what="decoding stuck.mp4")
    assert time.monotonic() - start < 20
    assert str(info.value) == (
        "decoding stuck.mp4 stalled: the decoder sent nothing for 1 s (the time limit) and was "
        "stopped."
    )


def test_huge_limits_work_and_a_parent_error_leaves_no_call_behind() -> None:
    """poll() refuses waits past 24.8 days; and a call the parent gives up on for its own error
    must not leave the child mid-call, whose late reply would answer the next call."""
    import math
    import operator

    with DecodeWorker() as worker:
        assert worker.call(operator.add, 1, 2, timeout=1e10) == 3
        assert worker.call(operator.add, "a", "b", timeout=math.inf) == "ab"
        with pytest.raises(TypeError):
            worker.call(time.sleep, 0.5, timeout="soon")  # type: ignore[arg-type]
        assert worker.call(operator.add, 3, 4, timeout=30) == 7  # not sleep's late None


@pytest.mark.slow
def test_worker_extracts_in_a_child_process(vids: dict[str, Path], tmp_path: Path) -> None:
    with DecodeWorker() as worker:
        meta = worker.extract(vids["mjpeg.avi"], tmp_path / "a.npy", timeout=60)
        assert meta["n_frames"] == 30
        with pytest.raises(DecodeError, match="is empty"):
            (tmp_path / "e.mp4").touch()
            worker.extract(tmp_path / "e.mp4", tmp_path / "e.npy", timeout=60)
    assert np.load(tmp_path / "a.npy").shape == (30, 224, 336, 3)


@fork_only
def test_a_forked_child_starts_after_opencv_ran_its_threads_here() -> None:
    """A forked decode child (the tests fork, to share test-only backends) has OpenCV's pool
    without its threads: setting its size there hung every call."""
    import cv2

    frame = np.zeros((1500, 1500, 3), np.uint8)
    cv2.resize(frame, (500, 500), interpolation=cv2.INTER_AREA)  # starts the pool's threads
    with DecodeWorker(start_method="fork") as worker:
        assert worker.call(eval, "1 + 1", timeout=20) == 2


@fork_only
@pytest.mark.slow
def test_hanging_decode_is_killed_and_reported(
    vids: dict[str, Path], tmp_path: Path, fake_backends: None
) -> None:
    # fork: the child inherits the test-only backends registered in this process.
    with DecodeWorker(start_method="fork") as worker:
        start = time.monotonic()
        with pytest.raises(DecodeTimeoutError) as info:
            worker.extract(vids["mjpeg.avi"], tmp_path / "h.npy", timeout=1.5, backend="hanging")
        assert time.monotonic() - start < 20
        assert str(info.value).startswith("decoding ") and "nothing for 1.5 s" in str(info.value)
        assert list(tmp_path.iterdir()) == []  # the killed child's temp file is gone
        # The worker starts a fresh child for the next video.
        assert worker.extract(vids["mjpeg.avi"], tmp_path / "ok.npy", timeout=60)["n_frames"] == 30


def test_a_stream_whose_timestamps_run_far_past_its_duration_is_cut(vids: dict[str, Path]) -> None:
    """The time limit is on silence, so output is what bounds a broken file: twice the reported
    duration plus a minute (here 1 s claimed: 62 s at 20 fps), then a warning."""
    from videos import JumpingReader

    register_backend("jumping", "av", JumpingReader)
    try:
        with open_frames(vids["mjpeg.avi"], fps=20, size=32, backend="jumping") as stream:
            n = sum(len(chunk) for chunk in stream)
            warnings = stream.warnings
    finally:
        unregister_backend("jumping")
    assert n == (2 * 1 + 60) * 20
    assert any("was cut after 62 s of output" in w and "reports 1.00 s" in w for w in warnings)


@fork_only
@pytest.mark.slow
def test_a_slow_decoder_that_keeps_delivering_is_never_cut_short(
    vids: dict[str, Path], tmp_path: Path, fake_backends: None
) -> None:
    """The time limit is on silence: a video taking 1.5 s in all under a 1 s limit is written.
    It is one chunk of 30 frames, 1.5 s of decoding (a 4K source read at a low rate, each frame
    a seek), but every frame from the decoder is a sign of life."""
    with DecodeWorker(start_method="fork") as worker:
        start = time.monotonic()
        meta = worker.extract(vids["mjpeg.avi"], tmp_path / "s.npy", timeout=1.0, backend="slow")
        assert time.monotonic() - start > 1.0  # it did take longer than the limit
        assert meta["n_frames"] == 30 and meta["backend"] == "slow"
        # (in the child: decoding here, in the parent, would leave FFmpeg's state for the next
        # test's forked children to inherit)
        reference = worker.extract(
            vids["mjpeg.avi"], tmp_path / "p.npy", timeout=60, backend="pyav"
        )
    assert reference["n_frames"] == 30
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), np.load(tmp_path / "p.npy"))


@fork_only
@pytest.mark.slow
def test_crashing_backend_falls_back_in_a_fresh_child(
    vids: dict[str, Path], tmp_path: Path, fake_backends: None
) -> None:
    with DecodeWorker(start_method="fork") as worker:
        meta = worker.extract(
            vids["mjpeg.avi"], tmp_path / "c.npy", timeout=60, backend=["crashing", "pyav"]
        )
        assert meta["backend"] == "pyav" and "SIGSEGV" in meta["failed_backends"]["crashing"]
        with pytest.raises(DecoderCrashedError, match=r"crashing decoder crashed .*SIGSEGV"):
            worker.extract(vids["mjpeg.avi"], tmp_path / "d.npy", timeout=60, backend="crashing")


# --------------------------------------------------------------------------------------------------
# Pure functions: clips, resampling, geometry


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, []),
        (1, [(0, 1)]),
        (14, [(0, 14)]),
        (30, [(0, 30)]),
        (44, [(0, 30)]),  # 14 left over < 15: dropped
        (45, [(0, 30), (30, 45)]),  # 15 left over: kept (padded)
        (60, [(0, 30), (30, 60)]),
    ],
)
def test_clip_rule(n: int, expected: list[tuple[int, int]]) -> None:
    clips = clip_windows(n, 20.0, clip_frames=30)
    assert [(c.start_frame, c.end_frame) for c in clips] == expected
    assert [(c.start_s, c.end_s) for c in clips] == [(a / 20, b / 20) for a, b in expected]


def test_clip_array_pads_with_the_last_frame() -> None:
    frames = np.arange(45)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    last = clip_windows(45, 20.0)[-1]
    clip = clip_array(frames, last)
    assert clip.shape == (30, 2, 2, 3) and clip[:15, 0, 0, 0].tolist() == list(range(30, 45))
    assert (clip[15:] == 44).all()


def test_select_frames_picks_the_latest_frame_at_or_before_each_time() -> None:
    stamps = np.array([0.0, 0.1, 0.12, 0.3])
    # t = 0, .05, .10, .15, .20, .25, .30, .35 (last frame lasts 0.1 s -> end 0.4)
    assert select_frames(stamps, 0.1, 20.0).tolist() == [0, 0, 1, 2, 2, 2, 3, 3]


def test_resampler_survives_missing_and_backwards_timestamps() -> None:
    r: Resampler[int] = Resampler(10.0)
    out = []
    for i, t in enumerate([0.0, 0.1, None, 0.05, 0.4]):
        out += [frame for _, _, frame in r.push(t, i)]
    out += [frame for _, _, frame in r.finish(0.1)]
    assert out == [0, 1, 2, 3, 4]
    assert out == sorted(out)


def test_single_frame_gives_at_least_one_output() -> None:
    assert select_frames(np.array([5.0]), None, 20.0).tolist() == [0]
    assert select_frames(np.array([0.0]), 1.0, 20.0).tolist() == [0] * 20


def test_output_geometry_refuses_a_size_below_one() -> None:
    for w, h in ((640, 360), (1920, 16)):  # the strips' branch checked nothing
        with pytest.raises(ValueError, match="size must be >= 1"):
            output_geometry(w, h, 0, False)


@pytest.mark.parametrize(
    ("w", "h", "crop", "resize", "out"),
    [
        (640, 360, False, (398, 224), (398, 224)),
        (641, 479, False, (300, 224), (300, 224)),
        (360, 640, True, (224, 398), (224, 224)),
        (100, 100, False, (224, 224), (224, 224)),  # small videos are scaled up
        (896, 224, False, (896, 224), (896, 224)),  # 4:1, the widest kept whole
        # Strips: the long side stops at 4 x 224 (at 224 high, 1920x16 was 26,880 px wide: 18 MB
        # a frame, 4.8 GB of memory to extract 8 s of it).
        (1920, 16, False, (896, 7), (896, 7)),
        (1920, 120, True, (896, 56), (56, 56)),
        (16, 1920, False, (7, 896), (7, 896)),
    ],
)
def test_output_geometry(w: int, h: int, crop: bool, resize: tuple, out: tuple) -> None:
    g = output_geometry(w, h, 224, crop)
    assert g.resize == resize and g.output_size == out
    assert g.crop(np.zeros((resize[1], resize[0], 3))).shape[:2] == (out[1], out[0])


@pytest.mark.parametrize(
    ("name", "install"),
    [("torchcodec", "pip install 'vidcap[torchcodec]'"), ("pyav", "pip install av")],
)
def test_a_backend_not_installed_says_how_to_install_it(
    name: str, install: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidcap.video import backends
    from vidcap.video.decode import resolve_backends
    from vidcap.video.errors import BackendUnavailableError

    registered = backends.get_backend(name)
    missing = backends.Backend(name, "not_installed_module_x", registered.opener)
    monkeypatch.setitem(backends._REGISTRY, name, missing)
    with pytest.raises(
        BackendUnavailableError, match=f"which is not installed: {re.escape(install)}"
    ):
        resolve_backends(name)


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        # decord rethrowing: a log prefix per level, then the C++ check that failed (VP9 here).
        ("[07:24:46] /github/workspace/src/video/ffmpeg/threaded_decoder.cc:292: [07:24:46] "
         "/github/workspace/src/video/ffmpeg/threaded_decoder.cc:218: Check failed: "
         "avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 (-11 vs. 0) Thread worker: Error "
         "sending packet.", "Thread worker: Error sending packet."),
        ("Check failed: st_nb >= 0 (-1128613112 vs. 0) ERROR cannot find video stream with wanted "
         "index: -1", "ERROR cannot find video stream with wanted index: -1"),  # AV1
        ("[12:00:00] src/x.cc:10: Error: cannot open file", "cannot open file"),
    ],
)  # fmt: skip
def test_a_backends_error_is_told_in_its_own_words_only(raised: str, said: str) -> None:
    # A failure sentence carried decord's nested log prefixes and C++ assertions.
    from vidcap.video.decode import describe_error

    assert describe_error(RuntimeError(raised)) == said


@pytest.mark.parametrize("guarded", [False, True])
def test_a_script_without_a_main_guard_is_told_to_add_one(tmp_path: Path, guarded: bool) -> None:
    """A decoder process starts by importing the user's script (spawn): without `if __name__ ==
    "__main__":` the script ran again there and the child died, "crashed (exit code 1)" and no
    more. The sentence now says what to do; a guarded script works."""
    import subprocess
    import sys

    body = "print(run_with_timeout(os.getpid, timeout=60) != os.getpid())"
    if guarded:
        body = 'if __name__ == "__main__":\n    ' + body
    script = tmp_path / "mine.py"
    script.write_text(f"import os\nfrom vidcap.video.worker import run_with_timeout\n{body}\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    if guarded:
        assert run.returncode == 0 and run.stdout.strip() == "True", run.stderr[-2000:]
    else:
        assert run.returncode == 1
        assert f'{script} has no `if __name__ == "__main__":`: put its code under one' in run.stderr
