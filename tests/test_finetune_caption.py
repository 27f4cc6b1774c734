"""`vidcap finetune`, `vidcap caption` and `vidcap evaluate` (tiny preset, CPU): the pipeline end to
end through the CLI, bundles that stand alone and load in plain transformers, subtitles, failures
mid-batch, and the dense-segmentation rules."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import transformers
from typer.testing import CliRunner

from vidcap.artifacts.readers import ClipTrack
from vidcap.cli import app
from vidcap.corpus import read_corpus
from vidcap.errors import VidcapError
from vidcap.inference.captioner import Captioner
from vidcap.inference.segments import change_segments, fixed_segments
from vidcap.output.formats import parse_srt, parse_vtt

runner = CliRunner()

# Files `vidcap finetune` writes that captioning does not need.
NOT_BUNDLE = {"checkpoints", "metrics.jsonl", "manifest.json", "index.jsonl", "vocabulary"}


def invoke(*args: object, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@dataclass
class Video:
    path: Path
    duration: float  # seconds, as the corpus records it


@pytest.fixture(scope="module")
def videos(synth_corpus: Path) -> dict[str, Video]:
    """The synthetic corpus's videos by id."""
    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    return {r["id"]: Video(synth_corpus.parent / r["video"], r["duration"]) for r in records}


@dataclass
class Run:
    pretrain: Path
    bundle: Path
    pretrain_result: object
    finetune_result: object


# 30 steps at a high learning rate: enough for the tiny BART to say something (an untrained one
# ends every caption at once, so its captions are empty).
BART_FINETUNE = (
    "--preset",
    "tiny",
    "--with-features",
    "--max-steps",
    "30",
    "--lr",
    "1e-2",
    "--eval-every",
    "10",
    "--beams",
    "1",
)


@pytest.fixture(scope="module")
def bart(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """pretrain (tiny BART) → finetune --with-features, through the CLI (read-only to tests,
    except that test_copied_bundle_captions_alone moves the folders away and back)."""
    root = tmp_path_factory.mktemp("bart")
    pretrain = invoke(
        "pretrain",
        words_dir,
        "--out",
        root / "pretrain",
        "--preset",
        "tiny",
        "--arch",
        "bart",
        "--max-steps",
        "10",
        "--eval-every",
        "1000",
    )
    finetune = invoke(
        "finetune", root / "pretrain", "--out", root / "bundle", *BART_FINETUNE, "--json"
    )
    return Run(root / "pretrain", root / "bundle", pretrain, finetune)


def bart_bundle(bart: Run) -> Path:
    assert bart.pretrain_result.exit_code == 0, bart.pretrain_result.output
    assert bart.finetune_result.exit_code == 0, bart.finetune_result.output
    return bart.bundle


# --------------------------------------------------------------------------------------------------
# 1. The pipeline end to end


@pytest.mark.slow
def test_pipeline_pretrain_finetune_caption(
    bart: Run, videos: dict[str, Video], synth_corpus: Path
) -> None:
    assert bart.pretrain_result.exit_code == 0, bart.pretrain_result.output
    assert bart.finetune_result.exit_code == 0, bart.finetune_result.output
    result = json.loads(bart.finetune_result.stdout)
    assert result["stage"] == "finetune" and result["up_to_date"] is False
    assert result["counts"]["ok"] == 1 and result["failures"] == []
    assert result["steps"] == 30

    bundle = bart.bundle
    for name in (
        "vidcap.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "codebook.safetensors",
        "feature_projection.safetensors",
    ):
        assert (bundle / name).is_file(), name
    info = json.loads((bundle / "vidcap.json").read_text())
    assert info["stage"] == "finetune" and info["arch"] == "bart"
    assert info["inputs"]["with_features"] is True and info["inputs"]["with_transcript"] is False
    assert info["generation"]["beams"] == 1
    assert info["n_visual"] == 16
    assert info["extract"]["size"] == 64
    assert info["encoder"]["spec"] == "descriptor"
    assert Path(info["pretrained"]) == (bart.pretrain / "final").resolve()

    rows = metrics(bundle)
    val = [m for m in rows if m["split"] == "val"]
    assert [m["step"] for m in val] == [10, 20, 30]
    # The synthetic val split is a single segment, and CIDEr weights n-grams by their document
    # frequency within the scored set: for one segment every weight is 0, so val CIDEr is exactly
    # 0 whatever the captions (were it scored against another split's references, it would not be).
    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    assert sum(len(r.get("segments", [])) for r in records if r["split"] == "val") == 1
    for m in val:
        assert isinstance(m["cider"], float) and m["cider"] == 0.0
    assert max(m["step"] for m in rows if m["split"] == "train") == 30

    run = invoke("caption", videos["synth-00000"].path, "--model", bundle)
    assert run.exit_code == 0, run.output
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and lines[0].strip(), run.stdout


@pytest.mark.slow
def test_text_format_for_several_videos_is_path_tab_caption(
    bart: Run, videos: dict[str, Video]
) -> None:
    bundle = bart_bundle(bart)
    paths = [videos["synth-00000"].path, videos["synth-00001"].path]
    run = invoke("caption", *paths, "--model", bundle)
    assert run.exit_code == 0, run.output
    lines = run.stdout.splitlines()
    assert len(lines) == 2, run.stdout
    # `path<TAB>caption`, as documented in vidcap.output.formats (a tab, so `cut -f2` works).
    for path, line in zip(paths, lines, strict=True):
        assert line.startswith(f"{path}\t"), repr(line)
        assert "\t" not in line[len(str(path)) + 1 :]


def test_a_video_that_gave_only_part_of_itself_is_captioned_with_a_warning(
    caption_bundle: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    # A truncated download was captioned as if whole, its decoder's warning never shown.
    from videos import truncated_copy

    good = next(iter(read_corpus(synth_corpus))).video
    cut = truncated_copy(good, tmp_path / "cut.mp4")
    run = invoke("caption", good, cut, "--model", caption_bundle, "-f", "jsonl")
    assert run.exit_code == 0, run.output
    assert f"warning: {cut} gave " in run.stderr and "may be truncated" in run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert [len(r.get("warnings", [])) for r in results] == [0, 1]
    assert results[1]["warnings"][0].startswith(f"{cut} gave ")


# --------------------------------------------------------------------------------------------------
# 2. The VideoBERT route


def test_videobert_bundle_loads_in_plain_transformers(
    words_dir: Path, videos: dict[str, Video], tmp_path: Path
) -> None:
    pretrain = invoke(
        "pretrain",
        words_dir,
        "--out",
        tmp_path / "pretrain",
        "--preset",
        "tiny",
        "--arch",
        "videobert",
        "--max-steps",
        "3",
        "--eval-every",
        "1000",
    )
    assert pretrain.exit_code == 0, pretrain.output
    bundle = tmp_path / "bundle"
    finetune = invoke(
        "finetune",
        tmp_path / "pretrain",
        "--out",
        bundle,
        "--max-steps",
        "3",
        "--beams",
        "1",
        "--json",
    )
    assert finetune.exit_code == 0, finetune.output
    assert json.loads(finetune.stdout)["steps"] == 3

    info = json.loads((bundle / "vidcap.json").read_text())
    assert info["stage"] == "finetune" and info["arch"] == "videobert" and info["preset"] == "tiny"
    assert info["inputs"]["with_features"] is False
    assert not (bundle / "feature_projection.safetensors").exists()

    model = transformers.EncoderDecoderModel.from_pretrained(bundle)
    assert model.config.encoder.model_type == "bert" and model.config.decoder.is_decoder
    tokenizer = transformers.AutoTokenizer.from_pretrained(bundle)
    assert model.config.decoder.vocab_size == len(tokenizer)
    ids = tokenizer("[V3] [V15]", add_special_tokens=False)["input_ids"]
    assert ids == [
        tokenizer.convert_tokens_to_ids("[V3]"),
        tokenizer.convert_tokens_to_ids("[V15]"),
    ]

    captioner = Captioner.load(bundle, device="cpu")
    assert captioner.model.arch == "videobert"
    # Plain transformers loads the very weights vidcap captions with (all but the encoder's
    # pooler, which a seq2seq model never uses and the bundle does not store: both draw it anew).
    plain, ours = model.state_dict(), captioner.model.seq2seq.state_dict()
    assert plain.keys() == ours.keys()
    differ = [key for key in plain if not torch.equal(plain[key], ours[key])]
    assert all(key.startswith("encoder.pooler.") for key in differ), differ
    result = captioner.caption(videos["synth-00001"].path, thumbnails=True)
    assert len(result.captions) == 1
    assert result.captions[0].start == 0.0
    assert abs(result.duration - videos["synth-00001"].duration) < 0.1
    assert len(result.thumbnails) == 1 and result.thumbnails[0].ndim == 3


# --------------------------------------------------------------------------------------------------
# 3. --from-scratch from a words folder (and 10. --resume auto on it once finished)

SCRATCH = (
    "--from-scratch",
    "--preset",
    "tiny",
    "--max-steps",
    "3",
    "--beams",
    "1",
    "--resume",
    "auto",
    "--json",
)


@pytest.fixture(scope="module")
def scratch(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("scratch") / "bundle"
    return out, invoke("finetune", words_dir, "--out", out, *SCRATCH)


def test_from_scratch_on_a_words_folder(scratch, words_dir: Path, videos: dict[str, Video]) -> None:
    bundle, result = scratch
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["up_to_date"] is False and report["steps"] == 3
    info = json.loads((bundle / "vidcap.json").read_text())
    assert info["stage"] == "finetune" and info["arch"] == "bart"  # bart by default from words
    assert info["pretrained"] is None
    assert info["provenance"]["words"] == str(words_dir.resolve())
    captioned = Captioner.load(bundle, device="cpu").caption(videos["synth-00002"].path)
    assert len(captioned.captions) == 1


@pytest.mark.slow
def test_two_processes_share_the_val_captions(words_dir: Path, tmp_path: Path) -> None:
    """Under a launcher every process generates its share of the val captions (one process
    generating them all kept the others waiting in a collective NCCL gives up on after 10
    minutes); the main process scores them all."""
    from stage_helpers import two_processes

    out = tmp_path / "bundle"
    result = two_processes("-m", "vidcap", "finetune", words_dir, "--out", out, *SCRATCH)
    assert result.returncode == 0, result.stderr[-3000:]
    val = [line for line in metrics(out) if line["split"] == "val"]
    assert val and {"cider", "bleu4"} <= set(val[-1]), val
    assert json.loads((out / "manifest.json").read_text())["counts"]["ok"] == 1


def test_words_folder_without_from_scratch_is_a_one_line_error(
    words_dir: Path, tmp_path: Path
) -> None:
    result = invoke("finetune", words_dir, "--out", tmp_path / "bundle", "--preset", "tiny")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "is a `vidcap quantize` folder" in errors[0] and "--from-scratch" in errors[0]
    assert not (tmp_path / "bundle" / "vidcap.json").exists()


# --------------------------------------------------------------------------------------------------
# 10. Up to date


@pytest.mark.slow
def test_rerun_is_up_to_date(bart: Run) -> None:
    bundle = bart_bundle(bart)
    before = (bundle / "metrics.jsonl").read_text()
    rerun = invoke("finetune", bart.pretrain, "--out", bundle, *BART_FINETUNE, "--json")
    assert rerun.exit_code == 0, rerun.output
    report = json.loads(rerun.stdout)
    assert report["up_to_date"] is True and report["steps"] == 30
    assert report["wall_time_s"] < 5
    assert (bundle / "metrics.jsonl").read_text() == before


def test_resume_auto_on_a_finished_run_is_up_to_date(scratch, words_dir: Path) -> None:
    bundle, first = scratch
    assert first.exit_code == 0, first.output
    before = metrics(bundle)
    rerun = invoke("finetune", words_dir, "--out", bundle, *SCRATCH)
    assert rerun.exit_code == 0, rerun.output
    report = json.loads(rerun.stdout)
    # Nothing left to train: no step past --max-steps, no new metrics, nothing rewritten.
    assert report["steps"] == 3, "the resumed run trained past --max-steps"
    assert [(m["step"], m["split"]) for m in metrics(bundle)] == [
        (m["step"], m["split"]) for m in before
    ]
    assert report["up_to_date"] is True
    assert report["wall_time_s"] < 5


# --------------------------------------------------------------------------------------------------
# 4. Subtitles and dense JSON


def clip_seconds(bundle: Path) -> float:
    extract = json.loads((bundle / "vidcap.json").read_text())["extract"]
    return extract["clip_frames"] / extract["fps"]


def check_windows(cues, video: Video, window: float, clip: float) -> None:
    assert len(cues) >= 3
    assert cues[0].start == 0.0
    for cue, following in itertools.pairwise(cues):
        assert cue.end <= following.start + 1e-9
        assert following.start - cue.end < 1e-3  # consecutive: no gap
    for cue in cues:
        assert 0 < cue.end - cue.start <= window + 1e-3
        assert cue.text.strip()
    assert abs(cues[-1].end - video.duration) <= clip


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
@pytest.mark.slow
def test_subtitles_are_consecutive_windows(
    bart: Run, videos: dict[str, Video], tmp_path: Path, fmt: str
) -> None:
    bundle = bart_bundle(bart)
    video = videos["synth-00003"]  # 11.4 s
    out = tmp_path / f"x.{fmt}"
    run = invoke(
        "caption",
        video.path,
        "--model",
        bundle,
        "--format",
        fmt,
        "--segment-seconds",
        "2",
        "--out",
        out,
    )
    assert run.exit_code == 0, run.output
    assert run.stdout == ""  # the file holds the subtitles
    cues = (parse_srt if fmt == "srt" else parse_vtt)(out.read_text(encoding="utf-8"))
    # 1.5 s clips: a 2 s window holds one clip.
    check_windows(cues, video, window=2.0, clip=clip_seconds(bundle))
    assert len(cues) == 8


@pytest.mark.slow
def test_dense_json(bart: Run, videos: dict[str, Video]) -> None:
    bundle = bart_bundle(bart)
    video = videos["synth-00003"]
    run = invoke("caption", video.path, "--model", bundle, "--dense", "--format", "json")
    assert run.exit_code == 0, run.output
    results = json.loads(run.stdout)
    assert isinstance(results, list) and len(results) == 1
    (result,) = results
    assert result["video"] == str(video.path)
    assert abs(result["duration"] - video.duration) < 0.1
    captions = result["captions"]
    assert captions and captions[0]["start"] == 0.0
    for caption in captions:
        assert caption["start"] < caption["end"]
        assert isinstance(caption["text"], str)
    for a, b in itertools.pairwise(captions):
        assert a["end"] == b["start"]
    assert abs(captions[-1]["end"] - video.duration) <= clip_seconds(bundle)


# --------------------------------------------------------------------------------------------------
# 5. A copied bundle stands alone


@pytest.mark.slow
def test_copied_bundle_captions_alone(bart: Run, videos: dict[str, Video], tmp_path: Path) -> None:
    bundle = bart_bundle(bart)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in bundle.iterdir():
        if path.name not in NOT_BUNDLE:
            assert path.is_file(), path
            shutil.copy2(path, copy / path.name)
    assert sorted(p.name for p in copy.iterdir()) == sorted(
        [
            "README.md",  # the model card
            "codebook.safetensors",
            "config.json",
            "feature_projection.safetensors",
            "generation_config.json",
            "model.safetensors",
            "ood.json",  # the out-of-domain profile
            "tokenizer.json",
            "tokenizer_config.json",
            "vidcap.json",
            "vidcap_vocabulary.json",
        ]
    )
    video = videos["synth-00004"].path
    expected = Captioner.load(bundle, device="cpu").caption(video, segment_seconds=3, dense=True)

    # The original bundle and the pretrain it started from are out of the way while the copy
    # captions (the session's words and features folders stay: other tests share them).
    moved = {bundle: tmp_path / "bundle-away", bart.pretrain: tmp_path / "pretrain-away"}
    for src, dst in moved.items():
        shutil.move(src, dst)
    try:
        got = Captioner.load(copy, device="cpu").caption(video, segment_seconds=3, dense=True)
        run = invoke("caption", video, "--model", copy, "--format", "jsonl")
    finally:
        for src, dst in moved.items():
            shutil.move(dst, src)
    assert got.captions == expected.captions
    assert len(got.captions) >= 2
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["video"] == str(video)


# --------------------------------------------------------------------------------------------------
# 6. Bad files mid-batch


@pytest.mark.slow
def test_bad_files_mid_batch(bart: Run, videos: dict[str, Video], tmp_path: Path) -> None:
    bundle = bart_bundle(bart)
    good, good2 = videos["synth-00000"].path, videos["synth-00001"].path
    missing = tmp_path / "missing.mp4"
    text = tmp_path / "not_a_video.txt"
    text.write_text("hello\n")
    run = invoke("caption", good, missing, text, good2, "--model", bundle, "--format", "jsonl")
    assert run.exit_code == 1
    records = [json.loads(line) for line in run.stdout.splitlines()]
    # Every video in its place: the two failures as {"video", "error"}, with stderr's sentence.
    assert [r["video"] for r in records] == [str(good), str(missing), str(text), str(good2)]
    assert [len(r["captions"]) for r in (records[0], records[3])] == [1, 1]
    assert [sorted(r) for r in records[1:3]] == [["error", "video"]] * 2
    for record in records[1:3]:
        assert f"error: {record['error']}" in run.stderr
    assert "missing.mp4" in run.stderr and "not_a_video.txt" in run.stderr
    assert "2 of 4 videos could not be captioned" in run.stderr
    assert "Traceback" not in run.output


@pytest.mark.slow
def test_paths_from_stdin(bart: Run, videos: dict[str, Video], tmp_path: Path) -> None:
    bundle = bart_bundle(bart)
    good, good2 = videos["synth-00000"].path, videos["synth-00001"].path
    stdin = f"{good}\n\n{tmp_path / 'missing.mp4'}\n  {good2}  \n"
    run = invoke("caption", "-", "--model", bundle, "--format", "jsonl", input=stdin)
    assert run.exit_code == 1
    records = [json.loads(line) for line in run.stdout.splitlines()]
    missing = str(tmp_path / "missing.mp4")
    assert [r["video"] for r in records] == [str(good), missing, str(good2)]
    assert "error" in records[1] and "captions" in records[2]
    assert "missing.mp4" in run.stderr and "1 of 3 videos" in run.stderr

    ok = invoke("caption", "-", "--model", bundle, "--format", "jsonl", input=f"{good2}\n")
    assert ok.exit_code == 0, ok.output
    assert [json.loads(line)["video"] for line in ok.stdout.splitlines()] == [str(good2)]

    empty = invoke("caption", "-", "--model", bundle, input="\n")
    assert empty.exit_code == 1
    assert error_lines(empty.stderr) == ["error: no videos given (stdin was empty)."]


# --------------------------------------------------------------------------------------------------
# 7. Storyboard


@pytest.mark.slow
def test_preview_png(bart: Run, videos: dict[str, Video], tmp_path: Path) -> None:
    bundle = bart_bundle(bart)
    png = tmp_path / "out.png"
    run = invoke(
        "caption",
        videos["synth-00002"].path,
        "--model",
        bundle,
        "--segment-seconds",
        "3",
        "--preview",
        png,
    )
    assert run.exit_code == 0, run.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(png))
    assert image is not None and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 32 and image.shape[1] >= 32
    assert image.std() > 0  # not a blank canvas


# --------------------------------------------------------------------------------------------------
# 8. Evaluate

SCORE_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr")


def check_scores(scores: dict) -> None:
    for name in SCORE_NAMES:
        assert isinstance(scores[name], float) and 0.0 <= scores[name] <= 10.0, (name, scores)
    assert scores["METEOR"] is None  # --no-meteor


@pytest.mark.slow
def test_evaluate_json(bart: Run) -> None:
    bundle = bart_bundle(bart)
    run = invoke("evaluate", bundle, "--json", "--no-meteor")
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    # The synthetic test split: one video, one segment (CIDEr's word weights come from the set,
    # so one segment scores CIDEr 0, which a notice says).
    assert report["split"] == "test" and report["videos"] == 1 and report["segments"] == 1
    assert set(report["scores"]) == {"captioner", "nearest_neighbour", "reference_ceiling"}
    for scores in report["scores"].values():
        check_scores(scores)
        assert scores["CIDEr"] == 0.0
    assert any("CIDEr is 0 for a single segment" in n for n in report["notices"])
    assert report["failed"] == []
    assert report["fact_accuracy"]["captioner"]["count"] == 1
    assert report["fact_accuracy"]["nearest_neighbour"]["count"] == 1
    assert report["examples"][0]["segment"] == "synth-00005#0"
    assert report["examples"][0]["reference"] == "a red diamond bounces"

    train = invoke("evaluate", bundle, "--split", "train", "--json", "--no-meteor")
    assert train.exit_code == 0, train.output
    report = json.loads(train.stdout)
    assert report["split"] == "train" and report["videos"] == 6 and report["segments"] == 13
    for scores in report["scores"].values():
        check_scores(scores)
    ceiling = report["scores"]["reference_ceiling"]
    assert ceiling["CIDEr"] > 0 and ceiling["BLEU-1"] > 0.5
    # On the train split the nearest-neighbour floor finds each segment itself (its mean clip
    # feature is among the train means), so it returns the reference and names every fact.
    nearest = report["scores"]["nearest_neighbour"]
    assert nearest["ROUGE-L"] == pytest.approx(1.0) and nearest["BLEU-4"] == pytest.approx(1.0)
    facts = report["fact_accuracy"]
    assert facts["nearest_neighbour"] == {
        "colour": 1.0, "shape": 1.0, "action": 1.0, "all": 1.0, "count": 13
    }  # fmt: skip
    for row in ("captioner", "nearest_neighbour"):
        assert set(facts[row]) >= {"colour", "shape", "action", "all", "count"}
        assert facts[row]["count"] == 13
        fields = [facts[row][k] for k in ("colour", "shape", "action")]
        for share in [*fields, facts[row]["all"]]:  # a whole number of the 13 segments
            assert abs(share * 13 - round(share * 13)) < 1e-9, (row, facts[row])
        # "all" counts the captions right on all three: at most as many as right on any one
        # field, and at least as many as the three fields' hits force to overlap.
        assert sum(fields) - 2 - 1e-9 <= facts[row]["all"] <= min(fields) + 1e-9, facts[row]
    assert report["cider_vs_ceiling"] == pytest.approx(
        report["scores"]["captioner"]["CIDEr"] / ceiling["CIDEr"], abs=1e-3
    )


@pytest.mark.slow
def test_the_nearest_neighbour_floor_reads_a_train_video_at_a_time(
    bart: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The floor needs a mean feature per training segment, not the corpus's features (14.8 MB
    per video-hour at 768-d once in float32): each train video's features are read, averaged per
    segment and dropped before the next video's; the other splits' are never read."""
    import weakref

    from vidcap.artifacts import readers
    from vidcap.evaluation.evaluate import _train_segment_features
    from vidcap.inference.captioner import Captioner

    loaded: list[weakref.ref] = []
    alive_at_each_load: list[int] = []
    read = readers.TrackFeatures.__call__

    def tracked(self: readers.TrackFeatures, video_id: str, n_words: int) -> np.ndarray:
        alive_at_each_load.append(sum(ref() is not None for ref in loaded))
        features = read(self, video_id, n_words)
        loaded.append(weakref.ref(features))
        return features

    monkeypatch.setattr(readers.TrackFeatures, "__call__", tracked)
    captioner = Captioner.load(bart_bundle(bart))
    try:
        means, captions = _train_segment_features(captioner, notices := [])
    finally:
        captioner.close()
    assert notices == [] and means.shape[0] == len(captions) == 13  # the train split's segments
    assert len(loaded) == 6  # the 6 train videos only
    # When a video is read, at most the one before it is still referenced (about to be replaced).
    assert max(alive_at_each_load) <= 1, alive_at_each_load


# --------------------------------------------------------------------------------------------------
# 9. Not a bundle


@pytest.mark.slow
def test_caption_with_a_folder_that_is_not_a_bundle(
    bart: Run, videos: dict[str, Video], tmp_path: Path
) -> None:
    bart_bundle(bart)
    video = videos["synth-00000"].path
    for folder, message in [
        (bart.pretrain, "is not a caption model"),  # no vidcap.json at its top
        (bart.pretrain / "final", "is a pretrain folder, not a finetuned caption model"),
        (tmp_path / "nowhere", "no such folder"),
    ]:
        run = invoke("caption", video, "--model", folder)
        assert run.exit_code == 1, (folder, run.output)
        assert run.stdout == ""
        errors = error_lines(run.stderr)
        assert len(errors) == 1 and str(folder) in errors[0] and message in errors[0], run.stderr
        assert "Traceback" not in run.output


# --------------------------------------------------------------------------------------------------
# 11. Segments


def clips_of(ends: list[float]) -> ClipTrack:
    """Clips ending at ``ends`` (each starting where the one before ended)."""
    ends_ = np.asarray(ends, dtype=float)
    starts = np.concatenate([[0.0], ends_[:-1]])
    n = len(ends_)
    return ClipTrack(np.zeros(n, np.int64), starts, ends_, np.zeros((n, 4), np.float32))


def test_fixed_segments() -> None:
    clips = clips_of([1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 10.2])  # 1.5 s clips, a shorter last one
    assert fixed_segments(clips, 3.0) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert fixed_segments(clips, 2.0) == [(i, i + 1) for i in range(7)]
    assert fixed_segments(clips, 1.0) == [(i, i + 1) for i in range(7)]  # a clip is never split
    assert fixed_segments(clips, 4.6) == [(0, 3), (3, 6), (6, 7)]
    assert fixed_segments(clips, 100.0) == [(0, 7)]
    assert fixed_segments(clips_of([1.5]), 3.0) == [(0, 1)]
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(VidcapError, match="--segment-seconds must be > 0"):
            fixed_segments(clips, bad)


def stack(rows: list[np.ndarray]) -> np.ndarray:
    return np.stack(rows).astype(np.float32)


A = np.eye(8, dtype=np.float32)[0] + 1
B = np.eye(8, dtype=np.float32)[5] * 3 - 1
C = np.full(8, -1.0, dtype=np.float32)


def test_change_segments_cut_at_an_abrupt_change() -> None:
    assert change_segments(stack([A] * 5 + [B] * 5)) == [(0, 5), (5, 10)]
    assert change_segments(stack([A] * 4 + [B] * 4 + [C] * 4)) == [(0, 4), (4, 8), (8, 12)]
    # With clip-to-clip jitter the change still stands out and is cut.
    rng = np.random.default_rng(0)
    jittered = stack([A] * 5 + [B] * 5) + 0.01 * rng.standard_normal((10, 8)).astype(np.float32)
    assert 5 in {edge for segment in change_segments(jittered) for edge in segment}


def test_change_segments_constant_or_smooth_is_one_segment() -> None:
    assert change_segments(np.ones((10, 6), np.float32)) == [(0, 10)]
    angles = np.linspace(0, 0.5, 12)  # a slow, even drift: every step alike
    drift = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    assert change_segments(drift) == [(0, 12)]
    assert change_segments(np.ones((1, 3), np.float32)) == [(0, 1)]


def test_change_segments_respects_the_minimum_length() -> None:
    # Changes after clip 5 and clip 6, one clip apart: with segments of at least 2 clips only the
    # stronger is cut (cosine distance A-B 1.55, B-C 0.47, A-C 1.96).
    features = stack([A] * 5 + [B] + [C] * 4)
    assert change_segments(features, min_segment_clips=2) == [(0, 5), (5, 10)]
    assert change_segments(features, min_segment_clips=1) == [(0, 5), (5, 6), (6, 10)]
    assert change_segments(stack([B] * 5 + [A] + [C] * 4)) == [(0, 6), (6, 10)]
    # A change one clip from either end is too close to it.
    assert change_segments(stack([A] * 9 + [B]), min_segment_clips=2) == [(0, 10)]
    assert change_segments(stack([A] + [B] * 9), min_segment_clips=2) == [(0, 10)]
    assert change_segments(stack([A] * 2 + [B] * 8), min_segment_clips=3) == [(0, 10)]
    assert change_segments(stack([A] * 3 + [B] * 7), min_segment_clips=3) == [(0, 3), (3, 10)]
    # Fewer than two minimum segments' worth of clips: never cut.
    assert change_segments(stack([A] * 2 + [B] * 3), min_segment_clips=3) == [(0, 5)]
    for min_len in (2, 3, 4):
        segments = change_segments(stack([A] * 4 + [B] * 4 + [C] * 4), min_segment_clips=min_len)
        assert segments == [(0, 4), (4, 8), (8, 12)]
    # Both changes are closer than 5 clips to an end.
    assert change_segments(stack([A] * 4 + [B] * 4 + [C] * 4), min_segment_clips=5) == [(0, 12)]


@pytest.mark.parametrize("beams", [1, 3])
def test_captions_are_text_even_when_the_model_prefers_end_or_visual_words(beams: int) -> None:
    from vidcap.inference.captioner import generate_captions
    from vidcap.models.presets import ModelSize
    from vidcap.models.seq2seq import build_caption_model
    from vidcap.text import train_vocabulary
    from vidcap.training.tasks import InputConfig, segment_inputs

    vocab = train_vocabulary(["the man cuts the onion", "stir the sauce slowly"] * 5, 8, 120)
    size = ModelSize(hidden=16, layers=1, heads=2, intermediate=32, max_length=64)
    torch.manual_seed(0)
    model = build_caption_model("bart", vocab, None, size, None, None)
    # A model whose likeliest tokens, by far, end the caption or are not text at all.
    bias = model.seq2seq.final_logits_bias
    lo, _ = vocab.visual_range
    for token in (vocab.eos_id, vocab.bos_id, vocab.pad_id, vocab.join_id, lo):
        bias[0, token] = 50.0
    inputs = [segment_inputs(vocab, np.arange(n) % 8, None, "", InputConfig()) for n in (3, 5)]
    texts = generate_captions(model, vocab, inputs, beams=beams, max_new_tokens=6)
    assert len(texts) == 2 and all(t.strip() for t in texts), texts
    assert vocab.non_text_ids() and vocab.eos_id not in vocab.non_text_ids()
