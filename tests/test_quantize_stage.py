"""`vidcap quantize` and `vidcap quantize inspect` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from stage_helpers import index_of
from vidcap.artifacts.readers import load_features, load_words
from vidcap.cli import app
from vidcap.quantize.kmeans import HierarchicalKMeans

runner = CliRunner()


def quantize(*args: str):
    return runner.invoke(app, ["quantize", *args])


def test_words_for_every_clip_fitted_on_train(features_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "words"
    result = quantize(str(features_dir), "--out", str(out), "--k", "3", "--depth", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["ok"] == 8

    manifest = json.loads((out / "manifest.json").read_text())
    report = manifest["report"]
    assert report["vocab_size"] == 9 and 1 <= report["words_used"] <= 9
    assert (
        len(report["level_inertia"]) == 2
        and report["level_inertia"][1] <= report["level_inertia"][0]
    )
    features = index_of(features_dir)
    train_clips = sum(i["n_clips"] for i in features.values() if i["split"] == "train")
    assert report["fit_clips"] == train_clips < report["clips"]
    assert manifest["encoder"]["name"] == "descriptor" and manifest["corpus"]

    tree = HierarchicalKMeans.load(out / "codebook.safetensors")
    assert tree.leaf_centroids.shape == (
        9,
        json.loads((features_dir / "manifest.json").read_text())["encoder"]["dim"],
    )
    for video_id, item in index_of(out).items():
        words = load_words(out / item["outputs"]["words"])
        data = load_features(features_dir / features[video_id]["outputs"]["features"])
        assert len(words.words) == len(data["features"]) == item["n_clips"]
        assert all(0 <= w < 9 for w in words.words)
        assert words.start_s == data["start_s"].tolist()
        # The stored words are the codebook's assignment of the stored features.
        assert tree.assign(data["features"].astype(np.float32)).tolist() == words.words

    again = quantize(str(features_dir), "--out", str(out), "--k", "3", "--depth", "2", "--json")
    assert json.loads(again.stdout)["up_to_date"] is True


def test_deterministic_and_fit_samples(features_dir: Path, tmp_path: Path) -> None:
    def words(out: Path) -> dict[str, list[int]]:
        return {i: load_words(out / r["outputs"]["words"]).words for i, r in index_of(out).items()}

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out in (a, b):
        assert (
            quantize(
                str(features_dir), "--out", str(out), "--k", "4", "--depth", "1", "--seed", "5"
            ).exit_code
            == 0
        )
    assert words(a) == words(b)
    result = quantize(
        str(features_dir),
        "--out",
        str(c),
        "--k",
        "4",
        "--depth",
        "1",
        "--fit-samples",
        "10",
        "--json",
    )
    assert result.exit_code == 0
    assert json.loads((c / "manifest.json").read_text())["report"]["fit_clips"] == 10


def test_inspect_draws_a_real_picture(features_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "words"
    assert quantize(str(features_dir), "--out", str(out), "--k", "3", "--depth", "1").exit_code == 0
    png = tmp_path / "words.png"
    result = quantize("inspect", str(out), "--out", str(png), "--top", "3", "--per-word", "4")
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 3 * 32 and image.shape[1] > 4 * 32
    assert image.std() > 5  # thumbnails, not a blank canvas


def test_inspect_reads_a_video_at_a_time(
    features_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The figure needs each top word's clips nearest its centroid, not the corpus's features:
    each video's are read, measured and dropped before the next video's."""
    import weakref

    from vidcap.stages import quantize as stage

    out = tmp_path / "words"
    assert quantize(str(features_dir), "--out", str(out), "--k", "3", "--depth", "1").exit_code == 0
    loaded: list[weakref.ref] = []
    alive_at_each_load: list[int] = []
    load = stage.load_features

    def tracked(path: Path) -> dict:
        alive_at_each_load.append(sum(ref() is not None for ref in loaded))
        features = load(path)
        loaded.append(weakref.ref(features["features"]))
        return features

    monkeypatch.setattr(stage, "load_features", tracked)
    png = stage.inspect_words(out, tmp_path / "words.png", top=3, per_word=4)
    assert png.is_file() and len(loaded) == 8
    assert max(alive_at_each_load) == 0, alive_at_each_load


def test_errors_are_sentences(features_dir: Path, frames_dir: Path, tmp_path: Path) -> None:
    wrong_stage = quantize(str(frames_dir), "--out", str(tmp_path / "w"))
    assert wrong_stage.exit_code == 1 and "`vidcap encode` folder is needed" in wrong_stage.output
    too_many = quantize(
        str(features_dir), "--out", str(tmp_path / "w"), "--k", "5000", "--depth", "1"
    )
    assert too_many.exit_code == 1 and "Traceback" not in too_many.output
    assert "error:" in too_many.output
    assert not (tmp_path / "w").exists()  # a refused run leaves no empty --out behind


def _copies_of(features_dir: Path, to: Path, copies: int) -> Path:
    """An encode folder holding each video of ``features_dir`` ``copies`` times (new ids)."""
    import shutil

    (to / "features").mkdir(parents=True)
    lines = []
    for item in index_of(features_dir).values():
        for n in range(copies):
            output = f"features/{item['id']}-{n}.safetensors"
            shutil.copy(features_dir / item["outputs"]["features"], to / output)
            lines.append(
                json.dumps({**item, "id": f"{item['id']}-{n}", "outputs": {"features": output}})
            )
    (to / "index.jsonl").write_text("\n".join(lines) + "\n")
    manifest = json.loads((features_dir / "manifest.json").read_text())
    manifest["counts"] = {**manifest["counts"], "ok": len(lines)}  # as a run of them counts
    (to / "manifest.json").write_text(json.dumps(manifest))
    return to


def test_memory_holds_the_fitted_clips_and_one_video_not_the_folder(
    features_dir: Path, tmp_path: Path
) -> None:
    """Streamed a video at a time: 16 times the videos, with the same number of fitted clips,
    costs about the same memory (holding every feature took 3-8 MB per video-hour at 183-d)."""
    import tracemalloc

    from vidcap.stages.quantize import QuantizeConfig, run_quantize

    # A first run imports and sets up what every run shares: not measured.
    assert run_quantize(features_dir, tmp_path / "w0", QuantizeConfig(k=2, depth=2)).ok
    peaks = []
    for copies in (1, 16):
        folder = _copies_of(features_dir, tmp_path / f"f{copies}", copies)
        tracemalloc.start()
        try:
            result = run_quantize(
                folder, tmp_path / f"w{copies}", QuantizeConfig(k=2, depth=2, fit_samples=40)
            )
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert result.ok and result.counts["ok"] == 8 * copies
    clips = sum(item["n_clips"] for item in index_of(features_dir).values())
    held_before = 15 * clips * 183 * (2 + 4)  # the 15 extra copies, fp16 and a float32 stack
    # What still grows is the index's records (about 2 KB a video), not the clips' features.
    assert peaks[1] - peaks[0] < held_before, (peaks, held_before)


def test_a_folder_is_checked_before_the_fit(features_dir: Path, tmp_path: Path) -> None:
    """Every video's clip count and dim come from its file's header before anything is fitted:
    a test video of another dim is refused at once (no codebook, no words), and an index whose
    n_clips disagrees with the file does not matter (the file is the truth)."""
    from safetensors.numpy import load_file, save_file

    folder = _copies_of(features_dir, tmp_path / "f", 1)
    items = index_of(folder)
    tested = next(i for i in items.values() if i["split"] != "train")
    path = folder / tested["outputs"]["features"]
    data = load_file(str(path))
    save_file({**data, "features": data["features"][:, :5].copy()}, str(path))
    refused = quantize(str(folder), "--out", str(tmp_path / "w"), "--k", "2", "--depth", "1")
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert f"but {tested['id']} has 5" in refused.output and "different dims" in refused.output
    assert not (tmp_path / "w" / "codebook.safetensors").exists()

    lying = _copies_of(features_dir, tmp_path / "g", 1)
    lines = [json.loads(line) for line in (lying / "index.jsonl").read_text().splitlines()]
    (lying / "index.jsonl").write_text(
        "".join(json.dumps({**r, "n_clips": r["n_clips"] + 3}) + "\n" for r in lines)
    )
    ok = quantize(str(lying), "--out", str(tmp_path / "v"), "--k", "2", "--depth", "1", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["clips"] == sum(r["n_clips"] for r in lines)  # the files' count
