"""`vidcap finetune --task dense` (BART and VideoBERT routes) and what reads a dense bundle:
`vidcap caption`, `vidcap summarize`, the model-running part of `vidcap evaluate --task dense`
(tiny preset, CPU, through the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidcap.cli import app
from vidcap.errors import VidcapError

runner = CliRunner()

TINY = ("--preset", "tiny", "--max-steps", "30", "--lr", "1e-2", "--eval-every", "30")


def invoke(*args: object, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def _pretrain(words_dir: Path, out: Path, arch: str) -> Path:
    result = invoke(
        "pretrain", words_dir, "--out", out, "--preset", "tiny", "--arch", arch,
        "--max-steps", "3", "--eval-every", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def bart_dense(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dense")
    pretrain = _pretrain(words_dir, root / "pretrain", "bart")
    out = root / "dense"
    result = invoke(
        "finetune", pretrain, "--out", out, "--task", "dense", "--with-features",
        "--with-transcript", "--time-bins", "50", "--localiser-steps", "400", *TINY, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def caption_bundle(bart_dense: Path) -> Path:
    out = bart_dense.parent / "caption"
    result = invoke("finetune", bart_dense.parent / "pretrain", "--out", out, *TINY, "--json")
    assert result.exit_code == 0, result.output
    return out


def first_video(synth_corpus: Path, split: str = "test") -> Path:
    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    return synth_corpus.parent / next(r["video"] for r in records if r["split"] == split)


@pytest.mark.slow
def test_bart_dense_bundle_records_task_and_time_bins(bart_dense: Path) -> None:
    info = json.loads((bart_dense / "vidcap.json").read_text())
    assert info["task"] == "dense" and info["arch"] == "bart"
    inputs = info["inputs"]
    assert inputs["time_bins"] == 50 and inputs["max_clips"] == 100
    assert inputs["with_features"] and inputs["with_transcript"]
    generation = info["generation"]  # how it decodes: recorded, so it can be changed there
    assert generation["event_no_repeat_ngram"] == 3 and "refine_seconds" in generation
    assert generation["events"] == "localiser" and (bart_dense / "localiser.safetensors").is_file()
    assert info["localiser"]["dim"] == info["model"]["feature_dim"]
    vocabulary = json.loads((bart_dense / "vidcap_vocabulary.json").read_text())
    assert vocabulary["n_time"] == 50
    config = json.loads((bart_dense / "config.json").read_text())
    assert config["vocab_size"] == vocabulary["vocab_size"]  # the embeddings grew with the tokens
    val = [json.loads(x) for x in (bart_dense / "metrics.jsonl").read_text().splitlines()]
    val = [m for m in val if m["split"] == "val"]
    assert val and 0 <= val[-1]["event_recall_iou"] <= 1 and "cider" in val[-1]


@pytest.mark.slow
def test_events_from_time_tokens_when_the_bundle_says_so(
    bart_dense: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    """generation.events "tokens" reads the events from the model's own time tokens (Vid2Seq's
    way) instead of its localiser: the same bundle, another route, still well-formed output."""
    import shutil

    copy = tmp_path / "tokens"
    shutil.copytree(bart_dense, copy)
    info = json.loads((copy / "vidcap.json").read_text())
    info["generation"]["events"] = "tokens"
    (copy / "vidcap.json").write_text(json.dumps(info))
    result = invoke("caption", first_video(synth_corpus, "train"), "--model", copy, "-f", "json")
    assert result.exit_code == 0, result.output
    [doc] = json.loads(result.stdout)
    spans = [(e["start"], e["end"]) for e in doc["captions"]]
    assert spans == sorted(spans) and all(0 <= a <= b <= doc["duration"] + 0.2 for a, b in spans)


@pytest.mark.slow
def test_videobert_dense_bundle(words_dir: Path, tmp_path: Path) -> None:
    pretrain = _pretrain(words_dir, tmp_path / "pretrain", "videobert")
    out = tmp_path / "dense"
    result = invoke("finetune", pretrain, "--out", out, "--task", "dense", *TINY, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads((out / "vidcap.json").read_text())
    assert (info["task"], info["arch"], info["inputs"]["time_bins"]) == ("dense", "videobert", 100)
    config = json.loads((out / "config.json").read_text())
    n_vocab = json.loads((out / "vidcap_vocabulary.json").read_text())["vocab_size"]
    assert config["encoder"]["vocab_size"] == config["decoder"]["vocab_size"] == n_vocab


@pytest.mark.slow
def test_caption_with_a_dense_model_in_json_srt_and_anet(
    bart_dense: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    from vidcap.output.formats import parse_srt

    video = first_video(synth_corpus, "train")
    result = invoke("caption", video, "--model", bart_dense, "--format", "json")
    assert result.exit_code == 0, result.output
    [doc] = json.loads(result.stdout)
    events = doc["captions"]
    assert events, "the trained tiny model finds at least one event"
    starts = [(e["start"], e["end"]) for e in events]
    assert starts == sorted(starts)
    assert all(0 <= e["start"] < e["end"] <= doc["duration"] + 0.2 for e in events)

    srt = tmp_path / "events.srt"
    assert invoke("caption", video, "--model", bart_dense, "-f", "srt", "-o", srt).exit_code == 0
    cues = parse_srt(srt.read_text())
    assert [(c.start, c.end) for c in cues] == [(e["start"], e["end"]) for e in events]

    result = invoke("caption", video, "--model", bart_dense, "--format", "anet")
    assert result.exit_code == 0, result.output
    anet = json.loads(result.stdout)
    assert anet["version"] == "VERSION 1.0" and anet["external_data"]["used"] is False
    assert anet["results"] == {
        video.stem: [{"timestamp": [e["start"], e["end"]], "sentence": e["text"]} for e in events]
    }
    text = invoke("caption", video, "--model", bart_dense).stdout
    assert text.startswith("[0:") and len(text.splitlines()) == len(events)  # timed lines


@pytest.mark.slow
def test_a_dense_model_refuses_segment_seconds(bart_dense: Path, synth_corpus: Path) -> None:
    video = first_video(synth_corpus)
    result = invoke("caption", video, "--model", bart_dense, "--segment-seconds", "2")
    assert result.exit_code == 1 and "finds the events itself" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_a_caption_bundle_still_captions_as_before(
    caption_bundle: Path, synth_corpus: Path
) -> None:
    video = first_video(synth_corpus, "train")
    plain = json.loads(invoke("caption", video, "--model", caption_bundle, "-f", "json").stdout)
    [doc] = plain
    assert len(doc["captions"]) == 1 and doc["captions"][0]["start"] == 0.0  # the whole video
    result = invoke(
        "caption", video, "--model", caption_bundle, "--segment-seconds", "2", "-f", "json"
    )
    assert result.exit_code == 0, result.output
    [windows] = json.loads(result.stdout)
    assert len(windows["captions"]) > 1
    assert all(c["end"] - c["start"] <= 2.0 + 1e-6 for c in windows["captions"])
    # --format anet works for a caption model's cuts too
    anet = json.loads(
        invoke("caption", video, "--model", caption_bundle, "--dense", "-f", "anet").stdout
    )
    assert list(anet["results"]) == [video.stem]


def test_format_anet_renders_the_activitynet_document() -> None:
    from vidcap.output.formats import TimedCaption, VideoCaptions, render

    videos = [
        VideoCaptions("a/v_one.mp4", [TimedCaption(0.12345, 3.5, "a red circle moves up")]),
        VideoCaptions("b/v_two.webm", [], timed=True),
    ]
    doc = json.loads(render(videos, "anet"))
    assert doc["version"] == "VERSION 1.0" and doc["external_data"]["used"] is False
    assert doc["results"] == {
        "v_one": [{"timestamp": [0.123, 3.5], "sentence": "a red circle moves up"}],
        "v_two": [],
    }
    # a dense model's events show their times even when there is only one
    assert render([VideoCaptions("v.mp4", [TimedCaption(1, 2, "x")], timed=True)], "text") == (
        "[0:01.0\u20130:02.0] x\n"
    )


def test_story_merges_repeats_and_joins_moments_in_order() -> None:
    from vidcap.output.formats import TimedCaption as T
    from vidcap.output.story import tell_story

    story = tell_story(
        [
            T(20.0, 30.0, "a green star slides left"),
            T(0.0, 5.0, "a red circle moves up"),
            T(4.0, 9.0, "A red circle moves up."),  # the same moment told twice: merged
            T(10.0, 18.0, "the blue square spins"),
            T(11.0, 17.0, "the yellow hexagon grows"),  # during the one before
            T(40.0, 45.0, "a red circle moves up"),  # said before, later: "again"
            T(50.0, 51.0, "   "),  # no text: not a moment
        ]
    )
    assert [(m.start, m.end, m.text) for m in story.moments] == [
        (0.0, 9.0, "a red circle moves up"),
        (10.0, 18.0, "the blue square spins"),
        (11.0, 17.0, "the yellow hexagon grows"),
        (20.0, 30.0, "a green star slides left"),
        (40.0, 45.0, "a red circle moves up"),
    ]
    assert story.paragraph == (
        "A red circle moves up. Then the blue square spins. Meanwhile, the yellow hexagon grows. "
        "Next, a green star slides left. Finally, the red circle moves up again."
    )
    assert story.to_json()["summary"] == story.paragraph
    assert story.to_text().startswith(
        "Key moments:\n  [0:00.0\u20130:09.0] a red circle moves up\n"
    )
    two = tell_story([T(0, 1, "a red circle moves up"), T(2, 3, "a green star slides left")])
    assert two.paragraph == "A red circle moves up. Then a green star slides left."
    assert tell_story([]).paragraph == "" and "(none found)" in tell_story([]).to_text()
    # a subject told before is "the …"; a like one ("a red square") is not the same subject
    again = tell_story(
        [
            T(0, 1, "a red circle moves up"),
            T(2, 3, "a red square grows"),
            T(4, 5, "a red circle spins"),
        ]
    )
    assert again.paragraph == (
        "A red circle moves up. Then a red square grows. Finally, the red circle spins."
    )


def test_story_varies_its_connectives_so_it_does_not_repeat_itself() -> None:
    from vidcap.metrics.paragraph import repetition
    from vidcap.output.formats import TimedCaption as T
    from vidcap.output.story import tell_story

    actions = ["bounces", "grows", "moves up", "moves left", "shrinks", "rotates", "moves down"]
    story = tell_story([T(2 * i, 2 * i + 1, f"a red hexagon {a}") for i, a in enumerate(actions)])
    assert story.paragraph == (
        "A red hexagon bounces. Then the red hexagon grows. Next, the red hexagon moves up. "
        "After that, the red hexagon moves left. Later, the red hexagon shrinks. "
        "Then the red hexagon rotates. Finally, the red hexagon moves down."
    )
    # "then the red hexagon" said before every sentence would repeat a 4-gram five times
    said = [w.strip(".,").casefold() for w in story.paragraph.split()]
    assert said.count("then") == 2
    same = "A red hexagon bounces. " + " ".join(f"Then the red hexagon {a}." for a in actions[1:])
    assert repetition(said) < repetition([w.strip(".,").casefold() for w in same.split()])


@pytest.mark.slow
def test_summarize_with_a_dense_model(bart_dense: Path, synth_corpus: Path) -> None:
    video = first_video(synth_corpus, "train")
    result = invoke("summarize", video, "--model", bart_dense, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["video"] == str(video) and doc["moments"]
    assert all(0 <= m["start"] < m["end"] <= doc["duration"] + 0.2 for m in doc["moments"])
    first = doc["moments"][0]["text"]
    assert doc["summary"].startswith(first[:1].upper() + first[1:])
    text = invoke("summarize", video, "--model", bart_dense).stdout
    assert text.startswith("Key moments:\n  [0:") and f"\nStory: {doc['summary']}\n" in text


@pytest.mark.slow
def test_summarize_refuses_a_caption_bundle(caption_bundle: Path, synth_corpus: Path) -> None:
    result = invoke("summarize", first_video(synth_corpus), "--model", caption_bundle)
    assert result.exit_code == 1 and "--task summary or dense" in result.output


def _records(synth_corpus: Path, n: int = 3):
    from vidcap.corpus import read_corpus

    return [r for r in read_corpus(synth_corpus) if len(r.segments) > 1][:n]


@pytest.mark.slow
def test_dense_predictions_of_a_dense_model(bart_dense: Path, synth_corpus: Path) -> None:
    from dataclasses import replace

    from vidcap.evaluation.predictions import dense_predictions
    from vidcap.inference.captioner import Captioner

    captioner = Captioner.load(bart_dense, task="dense")
    records = _records(synth_corpus)
    gone = replace(records[0], id="gone", video=synth_corpus.parent / "missing.mp4")
    failed: list[tuple[str, str]] = []
    seen: list[str] = []
    found = dense_predictions(captioner, [gone, *records], failed=failed, on_video=seen.append)
    assert list(found) == [r.id for r in records] and seen == ["gone", *found]
    assert [video for video, _ in failed] == ["gone"] and "missing.mp4" in failed[0][1]
    for record in records:
        events = found[record.id]
        assert [(e.start, e.end) for e in events] == sorted((e.start, e.end) for e in events)
        assert all(0 <= e.start < e.end <= record.duration + 1.0 for e in events)
    with pytest.raises(VidcapError, match="cuts its own events"):
        dense_predictions(captioner, records, cuts="whole")


@pytest.mark.slow
def test_dense_predictions_of_a_caption_bundle(caption_bundle: Path, synth_corpus: Path) -> None:
    from vidcap.evaluation.predictions import dense_predictions
    from vidcap.inference.captioner import Captioner

    captioner = Captioner.load(caption_bundle)
    records = _records(synth_corpus, 2)
    oracle = dense_predictions(captioner, records, cuts="oracle")
    for record in records:
        truth = sorted((s.start, s.end) for s in record.segments)
        assert [(e.start, e.end) for e in oracle[record.id]] == truth
        assert all(e.text for e in oracle[record.id])
    whole = dense_predictions(captioner, records, cuts="whole")
    assert all(len(events) == 1 and events[0].start == 0.0 for events in whole.values())
    fixed = dense_predictions(captioner, records, cuts="fixed", segment_seconds=2.0)
    assert all(e.end - e.start <= 2.0 + 1e-6 for events in fixed.values() for e in events)
    assert set(dense_predictions(captioner, records, cuts="change")) == {r.id for r in records}
    with pytest.raises(VidcapError, match="say how to cut the events"):
        dense_predictions(captioner, records)


@pytest.mark.slow
def test_evaluate_a_dense_model_scores_its_events(bart_dense: Path) -> None:
    """Wired to vidcap.evaluation.dense (more in tests/test_dense_evaluate_model.py)."""
    result = invoke("evaluate", bart_dense, "--task", "dense", "--no-meteor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"]["model"] == "dense model" and report["failed"] == []


@pytest.mark.slow
def test_dense_finetune_on_an_imported_activitynet_corpus(
    synth_corpus: Path, tmp_path: Path
) -> None:
    """Imported segments are the events as they are: overlapping, one reaching past the end."""
    import shutil

    from vidcap.stages.encode import EncodeConfig, run_encode
    from vidcap.stages.extract import ExtractConfig, run_extract
    from vidcap.stages.inputs import resolve_inputs
    from vidcap.stages.quantize import QuantizeConfig, run_quantize

    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()][:4]
    videos = tmp_path / "videos"
    videos.mkdir()
    annotations: dict[str, dict] = {"train": {}, "val_1": {}}
    for i, record in enumerate(records):
        shutil.copy(synth_corpus.parent / record["video"], videos / f"v_clip{i}.mp4")
        d = record["duration"]
        annotations["train" if i < 3 else "val_1"][f"v_clip{i}"] = {
            "duration": d,
            "timestamps": [[0.0, d * 0.6], [d * 0.4, d + 3.0]],  # overlapping; past the end
            "sentences": [record["segments"][0]["captions"][0], "then it stops."],
        }
    files = []
    for name, content in annotations.items():
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(content))
    corpus = tmp_path / "corpus.jsonl"
    result = invoke("data", "import", "activitynet", *files, "--videos", videos, "--out", corpus)
    assert result.exit_code == 0, result.output
    frames, features, words = tmp_path / "frames", tmp_path / "features", tmp_path / "words"
    assert run_extract(resolve_inputs([str(corpus)]), frames, ExtractConfig(size=64)).ok
    assert run_encode(frames, features, EncodeConfig(loader_workers=0)).ok
    assert run_quantize(features, words, QuantizeConfig(k=4, depth=2)).ok
    out = tmp_path / "dense"
    result = invoke(
        "finetune", words, "--from-scratch", "--arch", "bart", "--task", "dense",
        "--out", out, *TINY, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "vidcap.json").read_text())["task"] == "dense"
    result = invoke("caption", videos / "v_clip3.mp4", "--model", out, "-f", "anet")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)["results"]) == ["v_clip3"]


def _recall_iou(truth: list[tuple[float, float]], found: list[tuple[float, float]]) -> float:
    """Mean over true events of the best temporal IoU of a found one."""

    def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
        inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
        return inter / (max(a[1], b[1]) - min(a[0], b[0]))

    return sum(max((iou(t, f) for f in found), default=0.0) for t in truth) / len(truth)


@pytest.mark.slow
def test_a_tiny_dense_model_learns_to_place_events(
    words_dir: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    """Memorising its training videos, a tiny model places their events far better than one
    event over the whole video does: targets, time tokens and parsing agree end to end."""
    from vidcap.evaluation.predictions import dense_predictions
    from vidcap.inference.captioner import Captioner

    out = tmp_path / "dense"
    result = invoke(
        "finetune", words_dir, "--from-scratch", "--arch", "bart", "--preset", "tiny",
        "--task", "dense", "--with-features", "--out", out, "--max-steps", "300",
        "--lr", "3e-3", "--eval-every", "1000", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [r for r in _records(synth_corpus, 8) if r.split == "train"]
    assert len(records) >= 3
    model = dense_predictions(Captioner.load(out), records, beams=1)
    learned, whole = [], []
    for record in records:
        truth = [(s.start, s.end) for s in record.segments]
        learned.append(_recall_iou(truth, [(e.start, e.end) for e in model[record.id]]))
        whole.append(_recall_iou(truth, [(0.0, record.duration)]))
    learned_mean, whole_mean = sum(learned) / len(learned), sum(whole) / len(whole)
    assert learned_mean >= 0.8 and learned_mean > whole_mean + 0.3, (learned, whole)


@pytest.mark.slow
def test_a_video_where_the_model_finds_no_event(
    bart_dense: Path, synth_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidcap.inference.captioner import Captioner

    monkeypatch.setattr(Captioner, "events", lambda self, tracks, *a, **k: [[] for _ in tracks])
    video = first_video(synth_corpus)
    preview = tmp_path / "board.png"
    result = invoke("caption", video, "--model", bart_dense, "-f", "json", "--preview", preview)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["captions"] == [] and not preview.exists()
    assert "no events found" in result.stderr
    result = invoke("summarize", video, "--model", bart_dense)
    assert result.exit_code == 0 and "(none found)" in result.stdout


@pytest.mark.slow
def test_transcript_option_feeds_a_dense_model_that_reads_one(
    bart_dense: Path, caption_bundle: Path, synth_corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    from vidcap.inference.captioner import Captioner

    seen: list = []
    real_events = Captioner.events

    def spy(self, tracks, transcripts=None, beams=None):
        seen.append(transcripts)
        return real_events(self, tracks, transcripts, beams)

    monkeypatch.setattr(Captioner, "events", spy)
    video = first_video(synth_corpus)
    srt = tmp_path / "speech.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:02,000\nnow it moves up\n")
    result = invoke("caption", video, "--model", bart_dense, "--transcript", srt, "-f", "json")
    assert result.exit_code == 0, result.output
    assert seen[-1] == [[(0.5, 2.0, "now it moves up")]]
    vtt = tmp_path / "speech.vtt"
    vtt.write_text("WEBVTT\n\n00:00.500 --> 00:02.000\nnow it spins\n")
    result = invoke("summarize", video, "--model", bart_dense, "--transcript", vtt, "--json")
    assert result.exit_code == 0, result.output
    assert seen[-1] == [[(0.5, 2.0, "now it spins")]]
    # refusals are sentences: several videos, a model that reads none, a file that is not SRT
    two = invoke("caption", video, video, "--model", bart_dense, "--transcript", srt)
    assert two.exit_code == 1 and "belongs to one video" in two.output
    plain = invoke("caption", video, "--model", caption_bundle, "--transcript", srt)
    assert plain.exit_code == 1 and "reads no transcript" in plain.output
    bad = tmp_path / "bad.srt"
    bad.write_text("not a subtitle\n")
    broken = invoke("caption", video, "--model", bart_dense, "--transcript", bad)
    assert broken.exit_code == 1 and f"--transcript {bad}: SRT line 1" in broken.output
    assert "Traceback" not in broken.output
