"""`vidcap extract` as a user runs it: corpus, files, folders, stdin; failures; resume; 2 processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stage_helpers import index_of, two_processes, without_access_rights
from vidcap.cli import app
from vidcap.corpus import read_corpus
from vidcap.video import clip_windows
from videos import truncated_copy

runner = CliRunner()


def extract(*args: str, input: str | None = None):
    return runner.invoke(app, ["extract", *args], input=input)


def test_corpus_extract_writes_frames_clips_and_manifest(
    synth_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "frames"
    result = extract(str(synth_corpus), "--out", str(out), "--size", "64", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"ok": 8, "failed": 0, "skipped": 0}

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "extract" and manifest["corpus"] == str(synth_corpus.resolve())
    assert manifest["config"]["fps"] == 20.0 and manifest["counts"]["ok"] == 8
    records = {r.id: r for r in read_corpus(synth_corpus)}
    index = index_of(out)
    assert set(index) == set(records)
    for video_id, item in index.items():
        frames = np.load(out / item["outputs"]["frames"], mmap_mode="r")
        assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[3] == 3
        assert min(frames.shape[1:3]) == 64
        assert item["n_frames"] == len(frames)
        # 20 fps resampling of the source's duration (± one frame).
        assert abs(len(frames) - records[video_id].duration * 20) <= 1.5
        assert item["split"] == records[video_id].split
        assert item["backend"] in ("decord", "pyav", "opencv")
        clips = item["clips"]
        assert [c["start_frame"] for c in clips] == [
            c.start_frame for c in clip_windows(len(frames), 20.0, 30)
        ]
        assert clips[0]["start_s"] == 0.0 and clips[0]["end_s"] == 1.5


def test_rerun_is_up_to_date_and_changed_settings_redo(synth_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    assert extract(str(synth_corpus), "--out", str(out), "--size", "48").exit_code == 0
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "frames").iterdir()}
    again = extract(str(synth_corpus), "--out", str(out), "--size", "48", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["up_to_date"] is True
    assert mtimes == {p: p.stat().st_mtime_ns for p in (out / "frames").iterdir()}

    changed = extract(str(synth_corpus), "--out", str(out), "--size", "32", "--json")
    assert changed.exit_code == 0
    assert json.loads(changed.stdout)["counts"] == {"ok": 8, "failed": 0, "skipped": 0}
    item = next(iter(index_of(out).values()))
    assert min(np.load(out / item["outputs"]["frames"]).shape[1:3]) == 32

    forced = extract(str(synth_corpus), "--out", str(out), "--size", "32", "--force", "--json")
    assert json.loads(forced.stdout)["counts"]["ok"] == 8


def test_the_same_videos_through_their_corpus_are_another_input(
    synth_corpus: Path, tmp_path: Path
) -> None:
    # Extracting the bare videos, then the same ones through their corpus, said "up to date" and
    # kept a folder without the corpus: quantize fitted on the val and test clips too, and
    # pretrain found no text.
    shutil.copytree(synth_corpus.parent, tmp_path / "corpus")  # its time is changed below
    synth_corpus = tmp_path / "corpus" / synth_corpus.name
    out = tmp_path / "frames"
    videos = str(synth_corpus.parent / "videos")
    assert extract(videos, "--out", str(out), "--size", "32").exit_code == 0
    through_corpus = extract(str(synth_corpus), "--out", str(out), "--size", "32", "--json")
    result = json.loads(through_corpus.stdout)
    assert result["up_to_date"] is False and result["counts"]["skipped"] == 8  # nothing redone
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["corpus"] == str(synth_corpus.resolve())
    # By content: a corpus touched (copied, written again unchanged) is the same input, and
    # retrains nothing downstream.
    os.utime(synth_corpus, ns=(time.time_ns(), time.time_ns() + 10**9))
    touched = extract(str(synth_corpus), "--out", str(out), "--size", "32", "--json")
    assert json.loads(touched.stdout)["up_to_date"] is True


def test_a_folder_of_bare_videos_keeps_the_fingerprint_it_had(
    synth_corpus: Path, tmp_path: Path
) -> None:
    # Folders written before the corpus counted (none for bare videos) stay up to date.
    from vidcap.artifacts import fingerprint
    from vidcap.stages.extract import ExtractConfig, video_fingerprint
    from vidcap.stages.inputs import resolve_inputs

    videos = synth_corpus.parent / "videos"
    out = tmp_path / "frames"
    assert extract(str(videos), "--out", str(out), "--size", "32").exit_code == 0
    settings = ExtractConfig(size=32).output_settings()
    items = {v.id: video_fingerprint(settings, v) for v in resolve_inputs([str(videos)]).videos}
    before = fingerprint("extract", settings, sorted(items.items()))
    assert json.loads((out / "manifest.json").read_text())["fingerprint"] == before


def test_items_of_an_earlier_run_with_other_inputs_are_pointed_out(
    synth_corpus: Path, tmp_path: Path
) -> None:
    # A video left out of the inputs stayed in the folder's index, counted and read downstream,
    # without a word (25 items for 24 inputs).
    out = tmp_path / "frames"
    videos = sorted((synth_corpus.parent / "videos").iterdir())[:2]
    assert extract(*map(str, videos), "--out", str(out), "--size", "32").exit_code == 0
    fewer = json.loads(extract(str(videos[0]), "--out", str(out), "--size", "32", "--json").stdout)
    assert fewer["counts"]["ok"] == 2
    assert fewer["note"].startswith(f"1 item(s) in {out} are not among this run's inputs")
    assert videos[1].stem in fewer["note"]
    again = json.loads(
        extract(*map(str, videos), "--out", str(out), "--size", "32", "--json").stdout
    )
    assert "note" not in again


def test_bad_videos_fail_alone_with_sentences(synth_corpus: Path, tmp_path: Path) -> None:
    videos = tmp_path / "in put"
    videos.mkdir()
    good = next(iter(read_corpus(synth_corpus))).video
    shutil.copy(good, videos / "gööd clip.mp4")
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    (videos / "text.mp4").write_text("this is not a video\n" * 100)
    out = tmp_path / "frames"
    # A path read from stdin that is gone (`find | vidcap extract -` racing a deletion) is a
    # failed video; one given as an argument is refused (a typo), before anything is written.
    typo = extract(str(tmp_path / "missing.mp4"), "--out", str(out))
    assert typo.exit_code == 1 and "missing.mp4: no such file or folder." in typo.output
    assert not out.exists()
    stdin = f"{tmp_path / 'missing.mp4'}\n"
    result = extract(str(videos), "-", "--out", str(out), "--json", input=stdin)
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["counts"]["ok"] == 1 and summary["counts"]["failed"] == 4
    errors = {f["id"]: f["error"] for f in summary["failures"]}
    assert set(errors) == {"empty", "noise", "text", "missing"}
    for error in errors.values():
        assert "\n" not in error and "Traceback" not in error and len(error) < 300
    assert "empty" in errors["empty"] or "0 bytes" in errors["empty"]
    assert "does not exist" in errors["missing"]
    index = index_of(out)
    assert index["gööd clip"]["status"] == "ok"
    assert all(not p.name.startswith(".tmp-") for p in out.rglob("*"))
    # --allow-failures turns the exit code to 0 and the failures are still listed.
    allowed = extract(str(videos), "--out", str(out), "--allow-failures")
    assert allowed.exit_code == 0 and "failures" in allowed.output


def test_a_video_made_readable_is_retried_even_with_allow_failures(
    synth_corpus: Path, tmp_path: Path
) -> None:
    # "permission denied" was a sticky failure: a chmod changes neither size nor time, so with
    # --allow-failures the folder stayed "up to date" with the stale error for ever.
    video = tmp_path / "locked.mp4"
    shutil.copy(next(iter(read_corpus(synth_corpus))).video, video)
    video.chmod(0o000)
    out = tmp_path / "frames"
    command = [*without_access_rights(), *_vidcap("extract", str(video), "--out", str(out))]
    first = subprocess.run([*command, "--allow-failures", "--json"], capture_output=True, text=True)
    assert json.loads(first.stdout)["failures"][0]["error"].endswith("(permission denied).")
    video.chmod(0o644)
    again = subprocess.run([*command, "--allow-failures", "--json"], capture_output=True, text=True)
    assert json.loads(again.stdout)["counts"] == {"ok": 1, "failed": 0, "skipped": 0}


@pytest.mark.parametrize(("command", "files"), [("extract", "frames"), ("encode", "features")])
def test_a_video_that_fails_on_a_rerun_leaves_no_file_of_the_earlier_run(
    synth_corpus: Path, tmp_path: Path, command: str, files: str
) -> None:
    """The index says failed, and the folder agrees: a reader of the folder itself
    (features/*.safetensors) does not take the earlier settings' file for this run's."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for n, item in enumerate(list(read_corpus(synth_corpus))[:2]):
        shutil.copy(item.video, videos / f"v{n}.mp4")
    out = tmp_path / "out"
    run = [command, str(videos), "--out", str(out)]
    assert runner.invoke(app, [*run, "--size", "48"]).exit_code == 0
    assert len(list((out / files).iterdir())) == 2
    (videos / "v1.mp4").write_bytes(b"damaged since")
    again = runner.invoke(app, [*run, "--size", "32", "--json"])
    assert again.exit_code == 1 and json.loads(again.stdout)["counts"]["failed"] == 1
    assert [p.stem for p in (out / files).iterdir()] == ["v0"]
    assert index_of(out)["v1"]["status"] == "failed"


@pytest.mark.parametrize("command", ["extract", "encode"])
def test_a_video_that_gave_only_part_of_itself_is_a_warning_line(
    synth_corpus: Path, tmp_path: Path, command: str
) -> None:
    # A half-downloaded file gave its first half and was "ok"; its warning was in index.jsonl
    # only, so a collection's truncated downloads passed as whole (extract, encode from videos).
    good = next(iter(read_corpus(synth_corpus))).video
    cut = truncated_copy(good, tmp_path / "cut.mp4")
    out = tmp_path / "out"
    result = runner.invoke(app, [command, str(good), str(cut), "--out", str(out), "--size", "32"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "videos with warnings │ 1" in text
    assert f"warning: {cut} gave " in text and "may be truncated" in text
    as_json = runner.invoke(app, [command, str(good), str(cut), "--out", str(out), "--json"])
    assert [w.split(" gave ")[0] for w in json.loads(as_json.stdout)["warnings"]] == [str(cut)]


def test_stdin_paths_and_unsafe_ids(synth_corpus: Path, tmp_path: Path) -> None:
    records = read_corpus(synth_corpus)[:2]
    out = tmp_path / "frames"
    stdin = "".join(f"{r.video}\n" for r in records)
    result = extract("-", "--out", str(out), "--size", "32", input=stdin)
    assert result.exit_code == 0, result.output
    assert set(index_of(out)) == {r.video.stem for r in records}

    evil = tmp_path / "evil.jsonl"
    evil.write_text(
        json.dumps({"id": "../../escape", "video": str(records[0].video), "split": "train"}) + "\n"
    )
    out2 = tmp_path / "stage" / "frames"
    assert extract(str(evil), "--out", str(out2), "--size", "32").exit_code == 0
    files = [p for p in (tmp_path / "stage").rglob("*") if p.is_file()]
    assert files and all(out2 in p.parents for p in files)
    assert not (tmp_path / "escape.npy").exists()


def test_bad_options_and_inputs_are_sentences(tmp_path: Path) -> None:
    result = extract(str(tmp_path), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "no videos to process" in result.output
    bad = extract(str(tmp_path), "--out", str(tmp_path / "o"), "--backend", "ffmpeg")
    assert bad.exit_code == 2 and "Invalid value for '--backend'" in bad.output  # usage error
    (tmp_path / "c.jsonl").write_text('{"id": "a"}\n')
    corpus = extract(str(tmp_path / "c.jsonl"), "--out", str(tmp_path / "o"))
    assert corpus.exit_code == 1 and "c.jsonl:1: video: is missing" in corpus.output


def _vidcap(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidcap", *args]


@pytest.mark.slow
def test_resume_after_kill_9(synth_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    corpus = tmp_path / "corpus.jsonl"
    # Repeat the videos under more ids so the run lasts long enough to be killed mid-way.
    lines = synth_corpus.read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    many = []
    for copy in range(3):
        for row in rows:
            many.append(
                {
                    **row,
                    "id": f"{row['id']}-{copy}",
                    "video": str(synth_corpus.parent / row["video"]),
                }
            )
    corpus.write_text("".join(json.dumps(r) + "\n" for r in many))
    proc = subprocess.Popen(
        _vidcap("extract", str(corpus), "--out", str(out), "--size", "96"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    index = out / "index.jsonl"
    while time.monotonic() < deadline:
        if index.exists() and len(index.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its decoder child, like a crashed machine
    proc.wait()
    assert not (out / "manifest.json").exists()
    done_before = len(index.read_text().splitlines())
    assert 3 <= done_before < len(many)

    result = subprocess.run(
        _vidcap("extract", str(corpus), "--out", str(out), "--size", "96", "--json"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert counts["ok"] == len(many) and counts["skipped"] >= done_before - 1
    assert not [p for p in out.rglob(".tmp-*")]
    for item in index_of(out).values():
        assert len(np.load(out / item["outputs"]["frames"], mmap_mode="r")) == item["n_frames"]


@pytest.mark.slow
def test_two_processes_share_the_work(synth_corpus: Path, tmp_path: Path) -> None:
    single, double = tmp_path / "single", tmp_path / "double"
    assert extract(str(synth_corpus), "--out", str(single), "--size", "32").exit_code == 0
    result = two_processes("-m", "vidcap", "extract", synth_corpus, "--out", double, "--size", 32)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(double.glob("index.part*"))
    one, two = index_of(single), index_of(double)
    assert set(one) == set(two)
    for video_id in one:
        a = np.load(single / one[video_id]["outputs"]["frames"])
        b = np.load(double / two[video_id]["outputs"]["frames"])
        assert np.array_equal(a, b)
    manifest = json.loads((double / "manifest.json").read_text())
    assert manifest["counts"]["ok"] == 8


def test_under_a_launcher_paths_from_stdin_reach_every_process(
    synth_corpus: Path, tmp_path: Path
) -> None:
    """The processes share one stdin, and the first to read it took every line (under torchrun
    the other found it empty): the main process reads the paths and sends them to the others."""
    paths = "".join(f"{p}\n" for p in sorted((synth_corpus.parent / "videos").glob("*.mp4")))
    out = tmp_path / "frames"
    run = two_processes("-m", "vidcap", "extract", "-", "--out", out, "--size", 32, stdin=paths)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["counts"]["ok"] == 8
    assert len(index_of(out)) == 8


def test_under_a_launcher_only_the_main_process_reads_the_index(
    synth_corpus: Path, tmp_path: Path
) -> None:
    """A large corpus's index is minutes of parsing: the main process reads it (at the start, what
    is done already; at the end, the result) and hands the others what they need, rather than
    every process reading it from the shared disk at once. Three runs: a first, a rerun that is up
    to date, and one redoing a video whose frames were deleted."""
    script = tmp_path / "run.py"
    script.write_text(
        "import glob, json, os, sys\n"
        "from vidcap.artifacts import StageDir\n"
        "from vidcap.distributed import current_processes, leave_process_group\n"
        "from vidcap.stages.extract import ExtractConfig, run_extract\n"
        "from vidcap.stages.inputs import resolve_inputs\n"
        "reads = []\n"
        "read_index, item_states = StageDir.read_index, StageDir._item_states\n"
        "StageDir.read_index = lambda self: reads.append(1) or read_index(self)\n"
        "StageDir._item_states = lambda self: reads.append(1) or item_states(self)\n"
        "if __name__ == '__main__':\n"
        "    processes = current_processes()\n"
        "    report = []\n"
        "    for run in range(3):\n"
        "        reads.clear()\n"
        "        result = run_extract(resolve_inputs([sys.argv[1]]), sys.argv[2],\n"
        "                             ExtractConfig(size=32, workers=1), processes=processes)\n"
        "        report.append({'reads': len(reads), 'counts': result.counts,\n"
        "                       'details': result.details})\n"
        "        processes.barrier()  # both are done with this run\n"
        "        if run == 1 and processes.is_main:\n"
        "            os.remove(sorted(glob.glob(f'{sys.argv[2]}/**/*.npy', recursive=True))[0])\n"
        "        processes.barrier()\n"
        "    with open(f'{sys.argv[2]}.rank{processes.rank}.json', 'w') as f:\n"
        "        json.dump(report, f)\n"
        "    leave_process_group()  # as the CLI does once a command has run to its end\n"
    )
    run = two_processes(script, synth_corpus, tmp_path / "frames")
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"frames.rank{r}.json").read_text()) for r in range(2)]
    assert all(r["reads"] >= 1 for r in ranks[0]) and all(r["reads"] == 0 for r in ranks[1])
    expected = [
        {"ok": 8, "failed": 0, "skipped": 0},
        {"ok": 8, "failed": 0, "skipped": 8},  # up to date
        {"ok": 8, "failed": 0, "skipped": 7},  # the video without its frames is redone
    ]
    assert [r["counts"] for r in ranks[0]] == [r["counts"] for r in ranks[1]] == expected
    assert [r["details"] for r in ranks[0]] == [r["details"] for r in ranks[1]]


def test_under_a_launcher_a_main_process_failing_at_the_end_fails_the_others_too(
    synth_corpus: Path, tmp_path: Path
) -> None:
    """The others wait for the main process's result: when reading it fails (here a KeyError in
    the stage's figures), they are told so and stop with a sentence instead of waiting forever."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from vidcap.distributed import current_processes\n"
        "from vidcap.errors import VidcapError\n"
        "from vidcap.stages import base\n"
        "from vidcap.stages.extract import ExtractConfig, run_extract\n"
        "from vidcap.stages.inputs import resolve_inputs\n"
        "def broken(*args, **kwargs):\n"
        "    raise KeyError('n_frames')\n"
        "base.result_from_index = broken\n"
        "if __name__ == '__main__':\n"
        "    processes = current_processes()\n"
        "    try:\n"
        "        run_extract(resolve_inputs([sys.argv[1]]), sys.argv[2],\n"
        "                    ExtractConfig(size=32, workers=1), processes=processes)\n"
        "    except (VidcapError, KeyError) as e:\n"
        "        with open(f'{sys.argv[2]}.rank{processes.rank}.txt', 'w') as f:\n"
        "            f.write(f'{type(e).__name__}: {e}')\n"
    )
    run = two_processes(script, synth_corpus, tmp_path / "frames", timeout=120)
    said = [(tmp_path / f"frames.rank{r}.txt").read_text() for r in range(2)]
    assert said[0] == "KeyError: 'n_frames'", run.stderr[-3000:]
    assert said[1].startswith("VidcapError: the main process could not read"), said[1]


def test_a_few_videos_are_queued_per_thread_not_the_whole_list(
    synth_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Videos are handed to the decode threads a few at a time: a future per video of a
    million-video shard would hold gigabytes before the first one is done."""
    from concurrent.futures import ThreadPoolExecutor

    from vidcap.stages import extract
    from vidcap.stages.extract import ExtractConfig, run_extract
    from vidcap.stages.inputs import resolve_inputs

    submitted: list = []
    queued: list[int] = []  # futures not yet done, at each submit

    class Counting(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            queued.append(1 + sum(1 for f in submitted if not f.done()))
            submitted.append(super().submit(fn, *args, **kwargs))
            return submitted[-1]

    monkeypatch.setattr(extract, "ThreadPoolExecutor", Counting)
    result = run_extract(
        resolve_inputs([str(synth_corpus)]), tmp_path / "frames", ExtractConfig(size=32, workers=1)
    )
    assert result.ok and len(queued) == 8
    assert max(queued) <= 3  # 2 per thread and the one submitted (before: all 8 at once)
