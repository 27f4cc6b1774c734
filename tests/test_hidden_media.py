"""A hidden-media style set through `vidcap encode` (from videos) and `vidcap caption`.

Good files in odd codecs, sizes, rotations and frame rates must all be done; broken files must each
be one failure sentence, and the command must go on past them (exit 1, no traceback).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests import test_finetune_caption as captioning
from tests.test_finetune_caption import Run, bart_bundle, invoke
from tests.videos import (
    FFMPEG,
    coded_frames,
    encode,
    ffmpeg,
    ffmpeg_encoders,
    overstate_avi_frame_count,
    write_cv2,
)

from stage_helpers import index_of

pytestmark = pytest.mark.skipif(
    FFMPEG is None or not {"libx264", "libvpx-vp9", "aac"} <= ffmpeg_encoders(),
    reason="ffmpeg with libx264, libvpx-vp9 and aac",
)

bart = captioning.bart  # the tiny BART bundle fixture (and what it needs)
videos = captioning.videos

X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    """(good files, bad files), each with a distinct stem."""
    d = tmp_path_factory.mktemp("hidden")
    frames = coded_frames(45)
    (d / "dir with space").mkdir()
    good = [
        write_cv2(d / "mjpeg.avi", frames, 30, "MJPG"),
        encode(d / "odd_444.mp4", coded_frames(30, 479, 641), 20,
               ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p")),
        encode(d / "vfr.mkv", coded_frames(40), 30, (*X264, "-fps_mode", "vfr"),
               "setpts='if(lt(N,10),N*3,20+N)/30/TB'"),
        encode(d / "vp9.webm", frames, 30,
               ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8")),
        encode(d / "one_frame.mp4", coded_frames(1), 30, X264),
        encode(d / "dir with space" / "vidéo 日本.mp4", coded_frames(12), 30, X264),
    ]  # fmt: skip
    if "libaom-av1" in ffmpeg_encoders():
        # decord 0.6.0's FFmpeg 4.1 has no AV1 decoder: it fails and PyAV takes over.
        good.append(
            encode(
                d / "av1.mp4", frames, 30, ("-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "40")
            )
        )
    plain = encode(d / "plain.mp4", frames, 30, X264)
    for angle in (90, 270):
        rotated = d / f"rot{angle}.mp4"
        ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v", f"rotate={angle}", str(rotated))
        good.append(rotated)
    over = write_cv2(d / "over_reported.avi", coded_frames(30), 20, "MJPG")
    overstate_avi_frame_count(over, 300)
    good += [plain, over]

    cut = d / "cut_no_index.mp4"  # moov at the end: half the file has no index
    cut.write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(d / "audio_only.m4a"))
    noise = d / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (d / "notes.mp4").write_text("not a video\n")
    (d / "empty.mp4").write_bytes(b"")
    bad = [cut, d / "audio_only.m4a", noise, d / "notes.mp4", d / "empty.mp4", d / "gone.mp4"]
    return good, bad


def _one_sentence(error: str) -> bool:
    return "\n" not in error.strip() and error.strip().endswith(".") and "Traceback" not in error


@pytest.mark.slow
def test_encode_from_videos_does_every_good_file_and_fails_every_bad_one(
    media: tuple[list[Path], list[Path]], tmp_path: Path
) -> None:
    good, bad = media
    out = tmp_path / "features"
    # The bad files interleaved with the good ones: a failure must not stop the run. Read from
    # stdin, where a file that is gone is a failed video (as an argument it is refused).
    files = [f for pair in zip(good, [*bad, *[None] * len(good)], strict=False) for f in pair if f]
    paths = "".join(f"{f}\n" for f in files)
    run = invoke("encode", "-", "--out", out, "--size", "32", "--timeout", "60", input=paths)
    assert run.exit_code == 1, run.output
    assert "Traceback" not in run.output
    index = index_of(out)
    assert len(index) == len(good) + len(bad)
    by_video = {Path(item["video"]).name: item for item in index.values()}
    for path in good:
        item = by_video[path.name]
        assert item["status"] == "ok", (path.name, item.get("error"))
        assert item["n_clips"] >= 1 and (out / item["outputs"]["features"]).is_file()
    if "av1.mp4" in by_video:
        assert by_video["av1.mp4"]["backend"] != "decord"  # decord has no AV1: a fallback did it
        assert "decord" in by_video["av1.mp4"]["failed_backends"]  # and says why, as extract's
    for path in bad:
        item = by_video[path.name]
        assert item["status"] == "failed", path.name
        assert _one_sentence(item["error"]), item["error"]
        assert path.name in item["error"], item["error"]


@pytest.mark.slow
def test_caption_does_every_good_file_and_fails_every_bad_one(
    media: tuple[list[Path], list[Path]], bart: Run
) -> None:
    good, bad = media
    files = [*good, *bad]
    run = invoke("caption", *files, "--model", bart_bundle(bart), "--format", "jsonl")
    assert run.exit_code == 1, run.output
    assert "Traceback" not in run.output
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["video"] for line in lines] == [str(p) for p in files]
    assert all(line["captions"] for line in lines[: len(good)])
    assert all(sorted(line) == ["error", "video"] for line in lines[len(good) :])
    errors = [e for e in run.stderr.splitlines() if e.startswith("error")]
    for path in bad:
        mine = [e for e in errors if path.name in e]
        assert len(mine) == 1 and _one_sentence(mine[0]), (path.name, run.stderr)
    assert f"{len(bad)} of {len(files)} videos could not be captioned" in run.stderr
