"""The torchcodec backend beside PyAV on natural content (the shared cases run in test_video_decode).

torchcodec needs a torch build it was compiled for (PyPI's 0.17.0 wheel links the CUDA torch); where
it does not import, these tests skip with that reason and ``auto`` never tries it. CI runs them
again where it imports (``.ci/run``'s second environment), with ``VIDCAP_REQUIRE_TORCHCODEC=1`` so
that they fail there instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vidcap.video import open_frames
from vidcap.video.backends import AUTO_ORDER, get_backend
from videos import ffmpeg, ffmpeg_encoders

if os.environ.get("VIDCAP_REQUIRE_TORCHCODEC") == "1" and not get_backend("torchcodec").available():
    raise RuntimeError("VIDCAP_REQUIRE_TORCHCODEC=1 but torchcodec does not import here")

pytestmark = [
    pytest.mark.skipif(
        not get_backend("torchcodec").available(),
        reason="torchcodec does not import here (not installed, or built for another torch)",
    ),
    pytest.mark.skipif("libx264" not in ffmpeg_encoders(), reason="ffmpeg has no libx264"),
]


def _decode(path: Path, backend: str) -> tuple[np.ndarray, np.ndarray]:
    with open_frames(path, fps=20, size=96, crop=False, backend=backend) as stream:
        chunks = list(stream)
    return np.concatenate([c.frames for c in chunks]), np.concatenate(
        [c.source_times for c in chunks]
    )


@pytest.mark.parametrize("rate", ["30", "24000/1001"])
def test_frames_and_times_match_pyav(tmp_path: Path, rate: str) -> None:
    """Same source frames at the same times; pixels within the scalers' difference."""
    path = tmp_path / "testsrc2.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={rate}:duration=2",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    ours, our_times = _decode(path, "torchcodec")
    theirs, their_times = _decode(path, "pyav")
    assert ours.shape == theirs.shape
    assert ours.shape[1:] == (96, 171, 3) and len(ours) in (40, 41)
    np.testing.assert_array_equal(our_times, their_times)
    diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
    # Bilinear+antialias (torchcodec) against area averaging (PyAV): a few grey levels on average.
    assert diff.mean() < 6.0, diff.mean()


def test_torchcodec_is_in_the_auto_order() -> None:
    assert "torchcodec" in AUTO_ORDER


@pytest.mark.parametrize(
    ("kept", "damaged_s", "outputs"),
    [
        # Outputs 0-19 are shown before 1 s; the last kept one, 19 (19 % 6 == 1), ends it.
        ([1, 4], 1.0, 20),
        # The last kept output before 1.75 s is 30; 31 ends the first batch of 32 outputs, not
        # asked for, and the next batch fails at its first asked frame (36): 31 is dropped.
        ([0], 1.75, 31),
    ],
)
def test_a_stream_cut_short_ends_on_a_decoded_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: list[int], damaged_s: float, outputs: int
) -> None:
    """With a keep mask (of every 6 frames, the ``kept`` ones), a file whose decoding stops
    mid-way (a damaged packet at ``damaged_s``) ends on the last frame decoded, never on outputs
    skipped after it: a partial last clip is padded with the stream's last frame, which must be a
    real one."""
    from vidcap.video.backends import torchcodec_backend

    path = tmp_path / "testsrc2.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=3",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    keep = np.zeros(6, dtype=bool)
    keep[kept] = True

    def read() -> tuple[np.ndarray, list[str]]:
        with open_frames(path, fps=20, size=96, backend="torchcodec", keep=keep) as stream:
            frames = np.concatenate([c.frames for c in stream])
            return frames, stream.warnings

    whole, _ = read()
    decode_at = torchcodec_backend._decode_at

    def damaged(decoder: object, times: list[float]) -> tuple[list, str | None]:
        batches, error = decode_at(decoder, [t for t in times if t < damaged_s])
        return batches, error or ("Could not decode a packet" if max(times) >= damaged_s else None)

    monkeypatch.setattr(torchcodec_backend, "_decode_at", damaged)
    cut, warnings = read()
    assert len(cut) == outputs and cut[-1].any()
    np.testing.assert_array_equal(cut, whole[:outputs])
    assert any("stopped early" in w and "Could not decode a packet" in w for w in warnings)
