"""Faults as a user meets them: a full disk mid-run stops the stage at once with one sentence and
the rerun finishes the rest; failures a rerun may cure are retried; a file that is not a video stays
failed only with --allow-failures; a second run into a busy folder refuses.

The full-disk tests mount a small tmpfs (root and a kernel that allows it, as on CI); elsewhere
they are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vidcap.artifacts import INDEX, StageDir
from vidcap.artifacts.readers import load_features
from vidcap.cli import app

runner = CliRunner()


def vidcap(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def index(folder: Path) -> dict[str, dict]:
    lines = (folder / INDEX).read_text().splitlines()
    return {row["id"]: row for row in map(json.loads, lines)}


def one_sentence_error(output: str) -> str:
    """The run's error line; it must be the only one, and not call itself a bug."""
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "bug" not in output and "Traceback" not in output, output
    return errors[0]


@contextlib.contextmanager
def small_disk(where: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted at ``where`` (skips the test where mounting is refused)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size_bytes}",
            f"vidcap-test-{uuid.uuid4().hex[:6]}",
            str(where),
        ],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave_free: int) -> Path:
    """A filler file that leaves about ``leave_free`` bytes of ``disk`` free."""
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_free))
    return filler


def sizes(folder: Path, suffix: str) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.rglob(f"*{suffix}"))}


def test_a_full_disk_stops_extract_and_the_rerun_finishes(
    synth_corpus: Path, frames_dir: Path, tmp_path: Path
) -> None:
    reference = sizes(frames_dir, ".npy")
    total = sum(reference.values())
    first_three = sum(list(reference.values())[:3])
    with small_disk(tmp_path / "disk", total + 4 * 2**20) as disk:
        filler = fill(disk, leave_free=first_three + 64 * 1024)
        out = disk / "frames"
        full = vidcap("extract", synth_corpus, "--out", out, "--size", 64)
        assert full.exit_code == 1
        line = one_sentence_error(full.output)
        assert "the disk is full" in line and "rerun the same command" in line, line
        kept = index(out)
        assert 1 <= len(kept) < len(reference), kept
        assert all(row["status"] == "ok" for row in kept.values())  # nothing marked failed
        assert not list(out.rglob(".tmp-*")), "a half-written file is visible"
        for row in kept.values():  # what finished is valid
            path = out / row["outputs"]["frames"]
            assert path.read_bytes() == (frames_dir / row["outputs"]["frames"]).read_bytes()

        filler.unlink()  # the user frees space and reruns the same command
        rerun = vidcap("extract", synth_corpus, "--out", out, "--size", 64, "--json")
        assert rerun.exit_code == 0, rerun.output
        report = json.loads(rerun.stdout)
        assert report["counts"] == {"ok": len(reference), "failed": 0, "skipped": len(kept)}
        for name in reference:
            assert (out / "frames" / name).read_bytes() == (
                frames_dir / "frames" / name
            ).read_bytes()


def test_a_full_disk_stops_encode_and_the_rerun_finishes(
    frames_dir: Path, features_dir: Path, tmp_path: Path
) -> None:
    reference = sizes(features_dir, ".safetensors")
    first_two = sum(list(reference.values())[:2])
    with small_disk(tmp_path / "disk", 2 * 2**20) as disk:
        filler = fill(disk, leave_free=first_two + 8 * 1024)
        out = disk / "features"
        full = vidcap("encode", frames_dir, "--out", out, "--loader-workers", 0)
        assert full.exit_code == 1
        assert "the disk is full" in one_sentence_error(full.output)
        kept = index(out)
        assert len(kept) < len(reference) and all(r["status"] == "ok" for r in kept.values())
        assert not list(out.rglob(".tmp-*"))

        filler.unlink()
        rerun = vidcap("encode", frames_dir, "--out", out, "--loader-workers", 0, "--json")
        assert rerun.exit_code == 0, rerun.output
        assert json.loads(rerun.stdout)["counts"]["skipped"] == len(kept)
        for name in reference:  # equal tensors (safetensors orders its metadata as it likes)
            ours = load_features(out / "features" / name)
            theirs = load_features(features_dir / "features" / name)
            assert ours.keys() == theirs.keys()
            assert all(np.array_equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("stage", ["extract", "encode"])  # encode: straight from the videos
def test_failures_a_rerun_may_cure_are_retried(
    stage: str, synth_corpus: Path, tmp_path: Path
) -> None:
    """Every video times out; the same command with time enough retries them all (the time limit
    is not part of the output, so this is the same run), instead of calling itself up to date."""
    out = tmp_path / stage
    timed_out = vidcap(
        stage, synth_corpus, "--out", out, "--size", 32, "--timeout", "0.001", "--json"
    )
    assert timed_out.exit_code == 1
    first = json.loads(timed_out.stdout)
    assert first["counts"]["ok"] == 0 and first["counts"]["failed"] == 8
    assert all("time limit" in f["error"] for f in first["failures"])
    assert not any(row.get("sticky") for row in index(out).values())

    # The same command (with time enough), even with --allow-failures: not up to date, all retried.
    rerun = vidcap(stage, synth_corpus, "--out", out, "--size", 32, "--json", "--allow-failures")
    assert rerun.exit_code == 0, rerun.output
    report = json.loads(rerun.stdout)
    assert not report["up_to_date"]
    assert report["counts"] == {"ok": 8, "failed": 0, "skipped": 0}
    assert all(row["status"] == "ok" for row in index(out).values())


@pytest.mark.parametrize("stage", ["extract", "encode"])  # encode: straight from the videos
def test_a_file_that_is_not_a_video_stays_failed_only_when_allowed(
    stage: str, synth_corpus: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    lines = synth_corpus.read_text().splitlines()[:2]
    rows = [json.loads(line) for line in lines]
    for row in rows:
        row["video"] = str((synth_corpus.parent / row["video"]).resolve())
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("these are my notes, not a video\n")
    rows.append({**rows[0], "id": "notes", "video": str(not_video)})
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / stage

    first = vidcap(stage, corpus, "--out", out, "--size", 32, "--json")
    assert first.exit_code == 1
    assert index(out)["notes"]["status"] == "failed" and index(out)["notes"]["sticky"] is True
    # Without --allow-failures a rerun tries it again (and it fails again: exit 1) ...
    again = vidcap(stage, corpus, "--out", out, "--size", 32, "--json")
    assert again.exit_code == 1 and not json.loads(again.stdout)["up_to_date"]
    # ... with it, a finished run whose only failures are such files is up to date.
    allowed = vidcap(stage, corpus, "--out", out, "--size", 32, "--json", "--allow-failures")
    assert allowed.exit_code == 0
    assert json.loads(allowed.stdout)["up_to_date"]


def test_a_second_run_into_a_busy_folder_refuses(synth_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    with StageDir(out, "extract").locked():  # another run is writing the folder
        busy = vidcap("extract", synth_corpus, "--out", out, "--size", 32)
        assert busy.exit_code == 1
        line = one_sentence_error(busy.output)
        assert "being written by another vidcap run" in line and ".vidcap.lock" in line
        assert not (out / INDEX).exists()  # it wrote nothing
    done = vidcap("extract", synth_corpus, "--out", out, "--size", 32)
    assert done.exit_code == 0, done.output
    shutil.rmtree(out)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_full_disk_while_saving_a_checkpoint_stops_pretrain_and_resume_finishes(
    words_dir: Path, tmp_path: Path
) -> None:
    settings = ("--preset", "tiny", "--max-steps", 12, "--save-every", 4, "--eval-every", 1000)
    reference = tmp_path / "reference"
    assert vidcap("pretrain", words_dir, "--out", reference, *settings).exit_code == 0
    checkpoint = folder_size(reference / "checkpoints" / "step-00000012")
    with small_disk(tmp_path / "disk", 64 * 2**20) as disk:
        out = disk / "pretrain"
        shutil.copytree(reference / "vocabulary", out / "vocabulary")  # comparable weights
        # Room for the first checkpoint (and the small files), not for the second.
        filler = fill(disk, leave_free=int(checkpoint * 1.5))
        full = vidcap("pretrain", words_dir, "--out", out, *settings)
        assert full.exit_code == 1
        line = one_sentence_error(full.output)
        assert "the disk is full" in line and "--resume auto" in line, line
        assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000004"]
        assert not (out / "final").exists() and not (out / "manifest.json").exists()

        filler.unlink()
        resumed = vidcap("pretrain", words_dir, "--out", out, *settings, "--resume", "auto")
        assert resumed.exit_code == 0, resumed.output
        a = load_file(reference / "final" / "model.safetensors")
        b = load_file(out / "final" / "model.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
        assert not list(out.rglob(".tmp-*"))


def test_a_deleted_output_is_made_again_by_a_plain_rerun(
    synth_corpus: Path, frames_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "frames"
    shutil.copytree(frames_dir, out)
    victim = sorted((out / "frames").iterdir())[2]
    original = victim.read_bytes()
    victim.unlink()
    rerun = vidcap("extract", synth_corpus, "--out", out, "--size", 64, "--json")
    assert rerun.exit_code == 0, rerun.output
    report = json.loads(rerun.stdout)
    assert not report["up_to_date"] and report["counts"]["skipped"] == 7
    assert victim.read_bytes() == original


def test_a_resumed_run_logs_each_step_once(tmp_path: Path) -> None:
    """A run killed after logging steps past its last checkpoint (and mid-line) resumes from the
    checkpoint: its metrics keep the lines up to it, whole ones only."""
    from vidcap.training.loop import _keep_metrics_until

    metrics = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "split": "train", "loss": 1.0 / s} for s in (10, 20, 30)]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 40, "spl')
    _keep_metrics_until(metrics, 20)
    assert [json.loads(line) for line in metrics.read_text().splitlines()] == rows[:2]


def test_a_full_disk_stops_quantize_and_the_rerun_finishes(
    features_dir: Path, words_dir: Path, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", 2 * 2**20) as disk:
        filler = fill(disk, leave_free=3 * 4096)  # room for a few word files, not all
        out = disk / "words"
        full = vidcap("quantize", features_dir, "--out", out, "--k", 4, "--depth", 2)
        assert full.exit_code == 1
        assert "the disk is full" in one_sentence_error(full.output)
        assert not (out / "manifest.json").exists() and not list(out.rglob(".tmp-*"))

        filler.unlink()
        rerun = vidcap("quantize", features_dir, "--out", out, "--k", 4, "--depth", 2)
        assert rerun.exit_code == 0, rerun.output
        for name, size in sizes(words_dir / "words", ".json").items():
            ours = out / "words" / name
            assert ours.stat().st_size == size
            assert ours.read_text() == (words_dir / "words" / name).read_text()


@pytest.mark.slow
def test_a_full_disk_while_saving_a_checkpoint_stops_finetune_and_resume_finishes(
    words_dir: Path, tmp_path: Path
) -> None:
    pretrain = tmp_path / "pretrain"
    tiny = ("--preset", "tiny", "--eval-every", 1000)
    assert vidcap("pretrain", words_dir, "--out", pretrain, *tiny, "--max-steps", 2).exit_code == 0
    settings = (*tiny, "--max-steps", 9, "--save-every", 3, "--beams", 1)
    reference = tmp_path / "reference"
    assert vidcap("finetune", pretrain, "--out", reference, *settings).exit_code == 0
    checkpoint = folder_size(reference / "checkpoints" / "step-00000009")
    bundle = folder_size(reference) - folder_size(reference / "checkpoints")
    with small_disk(tmp_path / "disk", 64 * 2**20) as disk:
        out = disk / "model"
        filler = fill(disk, leave_free=int(checkpoint * 1.5) + 2 * bundle)
        full = vidcap("finetune", pretrain, "--out", out, *settings)
        assert full.exit_code == 1
        line = one_sentence_error(full.output)
        assert "the disk is full" in line and "--resume auto" in line, line
        kept = sorted((out / "checkpoints").iterdir())
        assert kept and all((c / "trainer_state.json").is_file() for c in kept)  # whole ones
        assert not list(out.rglob(".tmp-*"))  # the half checkpoint is gone
        assert not (out / "vidcap.json").exists()  # not a bundle

        filler.unlink()
        resumed = vidcap("finetune", pretrain, "--out", out, *settings, "--resume", "auto")
        assert resumed.exit_code == 0, resumed.output
        a = load_file(reference / "model.safetensors")
        b = load_file(out / "model.safetensors")
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
        assert not list(out.rglob(".tmp-*"))


@pytest.mark.parametrize(
    "stage", ["encode", "quantize", "pretrain", pytest.param("finetune", marks=pytest.mark.slow)]
)
def test_every_stage_refuses_a_busy_folder(
    stage: str, frames_dir: Path, features_dir: Path, words_dir: Path, tmp_path: Path
) -> None:
    """The lock of a run writing the folder: each stage refuses before touching anything."""
    source = {"encode": frames_dir, "quantize": features_dir, "pretrain": words_dir}
    if stage == "finetune":
        pretrain = tmp_path / "pretrain"
        tiny = ("--preset", "tiny", "--max-steps", 1, "--eval-every", 1000)
        assert vidcap("pretrain", words_dir, "--out", pretrain, *tiny).exit_code == 0
        source["finetune"] = pretrain
    out = tmp_path / "out"
    extra = {"quantize": ("--k", 4, "--depth", 2), "encode": ("--loader-workers", 0)}
    extra.update(dict.fromkeys(("pretrain", "finetune"), ("--preset", "tiny", "--max-steps", 1)))
    with StageDir(out, stage).locked():
        busy = vidcap(stage, source[stage], "--out", out, *extra[stage])
        assert busy.exit_code == 1
        assert "being written by another vidcap run" in one_sentence_error(busy.output)
        assert sorted(p.name for p in out.iterdir()) == [".vidcap.lock"]  # nothing else written


# --------------------------------------------------------------------------------------------------
# caption: no stage folder; its outputs are single files (--out) and storyboards (--preview)


@pytest.fixture(scope="module")
def caption_bundle(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny caption bundle (1 pretrain step, 2 finetune steps, greedy decoding)."""
    root = tmp_path_factory.mktemp("caption-bundle")
    tiny = ("--preset", "tiny", "--eval-every", 1000)
    assert (
        vidcap("pretrain", words_dir, "--out", root / "p", *tiny, "--max-steps", 1).exit_code == 0
    )
    finetune = vidcap(
        "finetune", root / "p", "--out", root / "m", *tiny, "--max-steps", 2, "--beams", 1
    )
    assert finetune.exit_code == 0, finetune.output
    return root / "m"


def corpus_videos(synth_corpus: Path, n: int) -> list[str]:
    rows = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    return [str(synth_corpus.parent / row["video"]) for row in rows[:n]]


def caption(videos: list[str], bundle: Path, out: Path) -> list[object]:
    return [
        "caption", *videos, "--model", bundle, "--format", "json", "--device", "cpu",
        "--out", out / "captions.json", "--preview", out / "previews",
    ]  # fmt: skip


@pytest.mark.slow
def test_a_full_disk_stops_caption_and_the_rerun_finishes(
    synth_corpus: Path, caption_bundle: Path, tmp_path: Path
) -> None:
    videos = corpus_videos(synth_corpus, 4)
    reference = tmp_path / "reference"
    assert vidcap(*caption(videos, caption_bundle, reference)).exit_code == 0
    boards = sizes(reference / "previews", ".png")
    with small_disk(tmp_path / "disk", sum(boards.values()) + 2**20) as disk:
        out = disk / "captions"
        (out / "previews").mkdir(parents=True)
        filler = fill(disk, leave_free=sum(list(boards.values())[:2]) + 8 * 1024)
        full = vidcap(*caption(videos, caption_bundle, out))
        assert full.exit_code == 1
        line = one_sentence_error(full.output)
        assert "the disk is full" in line and "captions are made again" in line, line
        assert not (out / "captions.json").exists()
        assert not list(out.rglob(".tmp-*")), "a half-written file is visible"
        drawn = sizes(out / "previews", ".png")
        assert 1 <= len(drawn) < len(boards)
        for name in drawn:  # what was written is whole
            assert (out / "previews" / name).read_bytes() == (
                reference / "previews" / name
            ).read_bytes()

        filler.unlink()
        rerun = vidcap(*caption(videos, caption_bundle, out))
        assert rerun.exit_code == 0, rerun.output
        assert (out / "captions.json").read_bytes() == (reference / "captions.json").read_bytes()
        assert sizes(out / "previews", ".png") == boards


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.slow
def test_caption_removes_only_the_temporary_files_of_killed_runs(
    synth_corpus: Path, caption_bundle: Path, tmp_path: Path
) -> None:
    """A killed caption leaves ``.tmp-<host>_<pid>_*`` files; the next caption into the same place
    removes those of processes that are gone, and never a live run's or another host's."""
    from vidcap.artifacts import _host

    out = tmp_path / "out"
    (out / "previews").mkdir(parents=True)
    host = _host()
    abandoned = [
        out / f".tmp-{host}_{dead_pid()}_a1b2c3.json",
        out / "previews" / f".tmp-{host}_{dead_pid()}_d4e5f6.png",
    ]
    kept = [
        out / "previews" / f".tmp-{host}_{os.getpid()}_livexx.png",  # a live writer's
        out / "previews" / f".tmp-another-host_{dead_pid()}_xyzxyz.png",  # maybe live elsewhere
        out / ".tmp-oldstyle.json",  # whose, unknown: left alone
    ]
    for path in abandoned + kept:
        path.write_bytes(b"half")
    result = vidcap(*caption(corpus_videos(synth_corpus, 1), caption_bundle, out))
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in abandoned)
    assert all(p.exists() for p in kept)


@pytest.mark.slow
def test_two_captions_into_the_same_outputs_at_once_leave_one_whole_result(
    synth_corpus: Path, caption_bundle: Path, tmp_path: Path
) -> None:
    """caption has no folder lock: every output file is replaced atomically, so two runs writing
    the same --out and --preview both finish, and what is left is one run's whole output."""
    import sys

    videos = corpus_videos(synth_corpus, 3)
    reference = tmp_path / "reference"
    assert vidcap(*caption(videos, caption_bundle, reference)).exit_code == 0
    out = tmp_path / "shared"
    command = [sys.executable, "-m", "vidcap", *map(str, caption(videos, caption_bundle, out))]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in "ab"
    ]
    for run in runs:
        printed = run.communicate(timeout=300)[0].decode()
        assert run.returncode == 0, printed[-2000:]
        assert "Traceback" not in printed and "bug" not in printed
    assert (out / "captions.json").read_bytes() == (reference / "captions.json").read_bytes()
    assert sizes(out / "previews", ".png") == sizes(reference / "previews", ".png")
    assert not list(out.rglob(".tmp-*"))
