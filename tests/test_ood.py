"""The out-of-domain warning: a bundle's profile (ood.json), the score of an in-domain and an
out-of-domain video, the warning line of `vidcap caption` and the `ood` field of its json/jsonl."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidcap.artifacts.readers import CODEBOOK
from vidcap.cli import app
from vidcap.corpus import read_corpus
from vidcap.inference.ood import (
    PERCENTILE,
    OODProfile,
    OODResult,
    clip_distances,
    fit_profile,
    video_score,
    warning,
)
from vidcap.quantize.kmeans import HierarchicalKMeans
from videos import FFMPEG, ffmpeg

runner = CliRunner()
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="needs the ffmpeg binary")


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ffmpeg test pattern (SMPTE colour bars): nothing like the synthetic world."""
    if FFMPEG is None:
        pytest.skip("needs the ffmpeg binary")
    path = tmp_path_factory.mktemp("ood") / "smptebars.mp4"
    ffmpeg("-f", "lavfi", "-i", "smptebars=size=160x120:rate=20", "-t", "3", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def bundle(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bundle (2 steps from scratch): the warning does not depend on the training."""
    out = tmp_path_factory.mktemp("ood") / "bundle"
    run = invoke(
        "finetune", words_dir, "--from-scratch", "--out", out, "--preset", "tiny",
        "--max-steps", "2", "--beams", "1",
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    return out


def test_profile_is_a_percentile_of_the_val_clips(words_dir: Path, features_dir: Path) -> None:
    profile = fit_profile(words_dir)
    tree = HierarchicalKMeans.load(words_dir / CODEBOOK)
    index = [json.loads(line) for line in (features_dir / "index.jsonl").read_text().splitlines()]
    from vidcap.artifacts.readers import load_features

    val = [
        load_features(features_dir / item["outputs"]["features"])["features"].astype(np.float32)
        for item in index
        if item.get("split") == "val"
    ]
    assert val, "the fixture corpus has a val split"
    distances = np.concatenate([clip_distances(f, tree) for f in val])
    assert profile.split == "val" and profile.percentile == PERCENTILE
    assert profile.clips == len(distances) and profile.videos == len(val)
    assert profile.threshold == pytest.approx(np.percentile(distances, PERCENTILE))


def test_in_domain_and_out_of_domain_scores(
    words_dir: Path, synth_corpus: Path, pattern: Path, tmp_path: Path
) -> None:
    from vidcap.bundle import Bundle
    from vidcap.inference.pipeline import VideoPipeline

    profile = fit_profile(words_dir)
    pipeline = VideoPipeline(Bundle(words_dir, _pipeline_info(words_dir)))
    # In domain: the test split's videos (neither in the codebook's fit nor in the calibration).
    in_domain = []
    for record in read_corpus(synth_corpus):
        if record.split == "test":
            in_domain.append(profile.check(pipeline.clips(record.video).features, pipeline.tree))
    assert in_domain and not any(r.flagged for r in in_domain), in_domain
    # Out of domain: an ffmpeg test pattern, farther than the in-domain videos by a margin.
    features = pipeline.clips(pattern).features
    result = profile.check(features, pipeline.tree)
    assert result.flagged and result.score == pytest.approx(video_score(features, pipeline.tree))
    assert result.score > 1.1 * max(r.score for r in in_domain), (result, in_domain)


def _pipeline_info(words_dir: Path) -> dict:
    """What a bundle's vidcap.json says about turning a video into this words folder's words."""
    from vidcap.artifacts import read_upstream
    from vidcap.artifacts.readers import pipeline_settings

    manifest, _ = read_upstream(words_dir, "quantize")
    return {"stage": "finetune", "arch": "bart", **pipeline_settings(words_dir, manifest)}


def test_profile_round_trip_and_damage(tmp_path: Path) -> None:
    profile = OODProfile(0.5, 95.0, "val", 3, 30, {"50": 0.3})
    profile.save(tmp_path / "ood.json")
    assert OODProfile.load(tmp_path / "ood.json", "copy it again") == profile
    assert OODProfile.load(tmp_path / "none.json", "copy it again") is None
    (tmp_path / "ood.json").write_text('{"format": "something else"}')
    from vidcap.errors import VidcapError

    with pytest.raises(VidcapError, match=r"ood\.json is not a vidcap out-of-domain profile; copy"):
        OODProfile.load(tmp_path / "ood.json", "copy it again")
    (tmp_path / "ood.json").write_text('{"format": "vidcap.ood.v1", "thresh')  # cut short
    with pytest.raises(VidcapError, match=r"ood\.json is damaged .*; copy it again\.$"):
        OODProfile.load(tmp_path / "ood.json", "copy it again")


def test_warning_sentence() -> None:
    text = warning("bunny.mp4", OODResult(1.05, 0.8, True), synthetic=True)
    assert text == (
        "bunny.mp4 is unlike the videos the model was trained on (out-of-domain score 1.05 > "
        "0.80); it knows only the synthetic shapes world, so its caption is likely wrong."
    )
    assert "synthetic" not in warning("a.mp4", OODResult(1.05, 0.8, True))


@pytest.mark.slow
@needs_ffmpeg
def test_caption_warns_once_per_unlike_video_and_reports_ood(
    bundle: Path, synth_corpus: Path, pattern: Path
) -> None:
    assert json.loads((bundle / "ood.json").read_text())["split"] == "val"
    synth = next(r.video for r in read_corpus(synth_corpus) if r.split == "test")
    run = invoke("caption", synth, pattern, "--model", bundle, "--format", "jsonl")
    assert run.exit_code == 0, run.output
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, run.stderr
    assert str(pattern) in warnings[0] and "knows only the synthetic shapes world" in warnings[0]
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["video"] for r in rows] == [str(synth), str(pattern)]
    assert [r["ood"]["flagged"] for r in rows] == [False, True]
    for row in rows:
        assert set(row["ood"]) == {"score", "threshold", "flagged"}
        assert row["captions"]  # captioned all the same
        assert (row["ood"]["score"] > row["ood"]["threshold"]) == row["ood"]["flagged"]
    run = invoke("caption", pattern, "--model", bundle, "--format", "json", "--dense")
    assert run.exit_code == 0 and json.loads(run.stdout)[0]["ood"]["flagged"] is True


@pytest.mark.slow
@needs_ffmpeg
def test_a_bundle_without_a_profile_captions_without_ood(
    bundle: Path, pattern: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    (old / "ood.json").unlink()
    run = invoke("caption", pattern, "--model", old, "--format", "json")
    assert run.exit_code == 0, run.output
    assert "ood" not in json.loads(run.stdout)[0] and "warning:" not in run.stderr
