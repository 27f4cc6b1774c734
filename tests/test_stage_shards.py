"""`vidcap extract|encode --shard K/N`: N independent jobs (a SLURM array) fill one stage folder,
which ends as one unsharded run would leave it and feeds the next stage; killed jobs resume; jobs
of another N or other settings are refused; bad values are usage errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stage_helpers import index_of
from vidcap.artifacts import SHARDS, StageDir, _host, atomic_path, shards
from vidcap.artifacts.readers import load_features
from vidcap.cli import app
from vidcap.distributed import Processes, Shard
from vidcap.errors import VidcapError
from vidcap.stages.base import open_stage
from vidcap.stages.extract import ExtractConfig, run_extract
from vidcap.stages.inputs import resolve_inputs
from vidcap.stages.quantize import QuantizeConfig, run_quantize

runner = CliRunner()
IDS = ("synth-00000", "synth-00001", "synth-00002", "synth-00003")


def vidcap(*args: object, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def video_files(synth_corpus: Path) -> list[str]:
    return [str(synth_corpus.parent / "videos" / f"{i}.mp4") for i in IDS]


def assert_like_one_run(sharded: Path, single: Path, output: str) -> None:
    """Same items, statuses, files (array-equal) and fingerprint; nothing of the shards left."""
    a, b = index_of(sharded), index_of(single)
    assert a.keys() == b.keys()
    for item_id in a:
        assert a[item_id]["status"] == b[item_id]["status"] == "ok"
        assert a[item_id]["fingerprint"] == b[item_id]["fingerprint"]
        x, y = sharded / a[item_id]["outputs"][output], single / b[item_id]["outputs"][output]
        if output == "frames":
            assert np.array_equal(np.load(x), np.load(y)), item_id
        else:
            fx, fy = load_features(x), load_features(y)
            assert fx.keys() == fy.keys()
            for name in fx:
                assert np.array_equal(fx[name], fy[name]), (item_id, name)
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (sharded, single))
    assert ma["fingerprint"] == mb["fingerprint"] and ma["counts"] == mb["counts"]
    assert ma["shards"] == 2 and "shards" not in mb
    left = [p.name for p in sharded.iterdir() if p.name not in ("index.jsonl", "manifest.json")]
    assert left == [output if output == "frames" else "features"]  # no parts, state, lock or temps


def fill_in_two(command: str, inputs: list[str], out: Path, *options: str) -> None:
    """Run shards 0/2 and 1/2 one after the other; only the second writes the manifest."""
    first = vidcap(command, *inputs, "--out", out, "--shard", "0/2", *options)
    assert first.exit_code == 0, first.output
    assert "shard 0/2 is done" in first.output and "1 (not started)" in first.output
    assert not (out / "manifest.json").exists() and (out / "index.shard0of2.jsonl").is_file()
    second = vidcap(command, *inputs, "--out", out, "--shard", "1/2", *options)
    assert second.exit_code == 0, second.output
    assert "shard 1/2 ended last" in second.output
    assert (out / "manifest.json").is_file()


@pytest.mark.slow
def test_extract_then_encode_in_shards_equal_one_run_and_quantize_reads_them(
    synth_corpus: Path, tmp_path: Path
) -> None:
    files = video_files(synth_corpus)
    frames, frames_one = tmp_path / "frames", tmp_path / "frames-one"
    fill_in_two("extract", files, frames, "--size", "32")
    assert vidcap("extract", *files, "--out", frames_one, "--size", "32").exit_code == 0
    assert_like_one_run(frames, frames_one, "frames")

    features, features_one = tmp_path / "features", tmp_path / "features-one"
    fill_in_two("encode", [str(frames)], features, "--loader-workers", "0")
    assert vidcap("encode", frames, "--out", features_one, "--loader-workers", "0").exit_code == 0
    assert_like_one_run(features, features_one, "features")
    assert run_quantize(features, tmp_path / "words", QuantizeConfig(k=2, depth=1)).ok

    # Rerunning a shard of a finished folder does nothing.
    again = vidcap("encode", frames, "--out", features, "--shard", "1/2", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["up_to_date"] is True


@pytest.mark.slow
def test_encode_from_videos_in_shards_equals_one_run(synth_corpus: Path, tmp_path: Path) -> None:
    files = video_files(synth_corpus)
    features, features_one = tmp_path / "features", tmp_path / "features-one"
    fill_in_two("encode", files, features, "--size", "32")
    assert vidcap("encode", *files, "--out", features_one, "--size", "32").exit_code == 0
    assert_like_one_run(features, features_one, "features")
    assert run_quantize(features, tmp_path / "words", QuantizeConfig(k=2, depth=1)).ok


def hold_until_both_started(jobs: list[subprocess.Popen], out: Path) -> None:
    """Stop each job as soon as its shard has begun, and let both go on once both have: then
    neither can end before the other has started (on a loaded machine one job could otherwise
    finish its half before the other got past its imports, which one CI run saw)."""
    held: set[int] = set()
    deadline = time.monotonic() + 120
    while len(held) < len(jobs) and time.monotonic() < deadline:
        for k, job in enumerate(jobs):
            if k not in held and (out / SHARDS / f"{k}of{len(jobs)}.json").exists():
                job.send_signal(signal.SIGSTOP)
                held.add(k)
        if any(job.poll() is not None for k, job in enumerate(jobs) if k not in held):
            break  # a job ended before its shard began: the assertions below say how
        time.sleep(0.005)
    for job in jobs:
        job.send_signal(signal.SIGCONT)


@pytest.mark.slow
def test_two_shards_as_concurrent_jobs(synth_corpus: Path, tmp_path: Path) -> None:
    files = video_files(synth_corpus)
    out, one = tmp_path / "features", tmp_path / "one"
    command = [sys.executable, "-m", "vidcap", "encode", *files, "--out", str(out), "--size", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    jobs = [
        subprocess.Popen(
            [*command, "--shard", f"{k}/2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for k in range(2)
    ]
    hold_until_both_started(jobs, out)
    outputs = [job.communicate(timeout=300) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [e[-2000:] for _, e in outputs]
    last = [k for k, (_, e) in enumerate(outputs) if "ended last" in e]
    assert len(last) == 1, [e[-2000:] for _, e in outputs]  # exactly one job finalized
    first = outputs[1 - last[0]][1]  # it saw the other one running
    assert f"still to come: {last[0]} (started on" in " ".join(first.split())
    assert vidcap("encode", *files, "--out", one, "--size", "32").exit_code == 0
    assert_like_one_run(out, one, "features")


def test_a_killed_shard_resumes_and_the_last_job_finalizes(
    synth_corpus: Path, tmp_path: Path
) -> None:
    inputs = resolve_inputs([str(synth_corpus)])  # 8 videos: 4 a shard
    config = ExtractConfig(size=32)
    out = tmp_path / "frames"

    def interrupt(done) -> None:
        raise KeyboardInterrupt  # the job is killed once its first video is recorded

    with pytest.raises(KeyboardInterrupt):
        run_extract(inputs, out, config, on_video=interrupt, shard=Shard(0, 2))
    recorded = set(StageDir(out, "extract").read_index())
    assert 1 <= len(recorded) < 4  # (the decode thread may finish the next one first)

    other = run_extract(inputs, out, config, shard=Shard(1, 2))
    assert other.ok and other.counts == {"ok": 4, "failed": 0, "skipped": 0}
    assert (
        "still to come: 0 (started on" in other.note and "rerun it if it was killed" in other.note
    )
    assert not (out / "manifest.json").exists()

    resumed = run_extract(inputs, out, config, shard=Shard(0, 2))
    assert resumed.counts == {"ok": 4, "failed": 0, "skipped": len(recorded)}
    assert "ended last" in resumed.note
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"ok": 8, "failed": 0, "skipped": len(recorded)}
    assert len(index_of(out)) == 8 and not (out / SHARDS).exists()


def test_a_shard_removes_only_temporary_files_of_dead_processes(
    synth_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "frames"
    (out / "frames").mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        # another job's file being written (its process lives) and a killed one's
        live_tmp = out / "frames" / f".tmp-{_host()}_{sleeper.pid}_abc.npy"
        dead_tmp = out / "frames" / f".tmp-{_host()}_{dead.pid}_abc.npy"
        elsewhere = out / "frames" / ".tmp-otherhost_1_abc.npy"  # another machine's: unknown
        for path in (live_tmp, dead_tmp, elsewhere):
            path.write_bytes(b"x")
        inputs = resolve_inputs(video_files(synth_corpus))
        assert run_extract(inputs, out, ExtractConfig(size=32), shard=Shard(0, 2)).ok
        assert live_tmp.exists() and elsewhere.exists() and not dead_tmp.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_jobs_of_another_n_or_other_settings_are_refused(
    synth_corpus: Path, tmp_path: Path
) -> None:
    files = video_files(synth_corpus)
    out = tmp_path / "frames"
    assert vidcap("extract", *files, "--out", out, "--size", "32", "--shard", "0/2").exit_code == 0

    other_n = vidcap("extract", *files, "--out", out, "--size", "32", "--shard", "1/3")
    assert other_n.exit_code == 1
    assert "being filled by --shard K/2 jobs" in other_n.output and "same N" in other_n.output
    other_size = vidcap("extract", *files, "--out", out, "--size", "48", "--shard", "1/2")
    assert other_size.exit_code == 1 and "other inputs or settings" in other_size.output
    fewer = vidcap("extract", *files[:3], "--out", out, "--size", "32", "--shard", "1/2")
    assert fewer.exit_code == 1 and "other inputs or settings" in fewer.output
    unsharded = vidcap("extract", *files, "--out", out, "--size", "32")
    assert unsharded.exit_code == 1 and "(1 of 2 finished)" in unsharded.output
    assert not (out / "manifest.json").exists() and (out / "index.shard0of2.jsonl").is_file()

    # --force: those jobs are over; this array (N=3, --size 48) takes the folder over.
    for k in range(3):
        run = vidcap(
            "extract", *files, "--out", out, "--size", "48", "--shard", f"{k}/3", "--force"
        )
        assert run.exit_code == 0, run.output
    index = index_of(out)
    assert set(index) == set(IDS) and all(
        min(i["height"], i["width"]) == 48 for i in index.values()
    )
    assert json.loads((out / "manifest.json").read_text())["config"]["size"] == 48


def test_encoder_settings_must_match_too(frames_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    first = vidcap("encode", frames_dir, "--out", out, "--shard", "0/4", "--loader-workers", "0")
    assert first.exit_code == 0, first.output
    other = vidcap("encode", frames_dir, "--out", out, "--shard", "1/4", "--save-dtype", "float32")
    assert other.exit_code == 1 and "other inputs or settings" in other.output


@pytest.mark.parametrize("command", ["extract", "encode"])
@pytest.mark.parametrize("bad", ["3/2", "x", "0/0", "1/", "-1/2"])
def test_bad_shard_values_are_usage_errors(command: str, bad: str, tmp_path: Path) -> None:
    run = vidcap(command, tmp_path, "--out", tmp_path / "o", "--shard", bad)
    assert run.exit_code == 2 and "--shard" in run.output
    assert not (tmp_path / "o").exists()


def test_shard_under_a_launcher_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VidcapError, match="use one or the other"):
        open_stage(tmp_path, "extract", Processes(rank=0, world_size=2), Shard(0, 2))


def test_the_shard_index_parts_are_read_and_merged(tmp_path: Path) -> None:
    from vidcap.artifacts import ItemRecord

    for k in range(2):
        stage = StageDir(tmp_path, "extract", shard=Shard(k, 2))
        stage.record(ItemRecord(f"v{k}", "ok"))
        assert (tmp_path / f"index.shard{k}of2.jsonl").is_file()
    with atomic_path(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"x")
    stage = StageDir(tmp_path, "extract")
    assert set(stage.read_index()) == {"v0", "v1"}
    stage.finalize({}, "fp", None, 0.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.jsonl", "manifest.json", "x.bin"]


def test_rerunning_only_the_shard_with_failures_finishes_the_folder(
    synth_corpus: Path, tmp_path: Path
) -> None:
    files = video_files(synth_corpus)
    # Missing at first, from the list on stdin: a failed item of shard 0 ("late" sorts first).
    late = tmp_path / "late.mp4"
    listed = "".join(f"{f}\n" for f in [*files, late])
    out = tmp_path / "frames"
    args = ("extract", "-", "--out", out, "--size", "32", "--json")
    first = vidcap(*args, "--shard", "0/2", input=listed)
    assert first.exit_code == 1  # its own video failed
    assert json.loads(first.stdout)["counts"] == {"ok": 2, "failed": 1, "skipped": 0}
    second = vidcap(*args, "--shard", "1/2", input=listed)
    assert second.exit_code == 0 and "ended last" in json.loads(second.stdout)["note"]
    assert json.loads((out / "manifest.json").read_text())["counts"]["failed"] == 1

    shutil.copy(files[0], late)
    # Shard 1 has nothing left: it counts as finished.
    retried = vidcap(*args, "--shard", "0/2", input=listed)
    assert retried.exit_code == 0, retried.output
    summary = json.loads(retried.stdout)
    assert summary["counts"] == {"ok": 3, "failed": 0, "skipped": 2}
    assert "ended last" in summary["note"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"ok": 5, "failed": 0, "skipped": 4}
    assert vidcap(*args, "--shard", "1/2", input=listed).exit_code == 0  # up to date
    assert vidcap(*args[:-1], input=listed).exit_code == 0  # and for a run without --shard


def test_the_same_shard_twice_on_one_host_is_refused(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stage = StageDir(tmp_path, "extract", shard=Shard(1, 2))
        state = shards.begin(stage, Shard(1, 2), "fp", force=False)
        state.pid = sleeper.pid  # as if another live process of this host had begun it
        (tmp_path / SHARDS / "1of2.json").write_text(json.dumps(asdict(state)))
        with pytest.raises(VidcapError, match="already running"):
            shards.begin(stage, Shard(1, 2), "fp", force=False)
    finally:
        sleeper.kill()
        sleeper.wait()
    shards.begin(stage, Shard(1, 2), "fp", force=False)  # its process is gone: taken over


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg binary")
def test_a_shard_killed_with_sigkill_resumes(synth_corpus: Path, tmp_path: Path) -> None:
    from tests.videos import ffmpeg

    long = tmp_path / "zlong.mp4"  # sorts last: shard 0's fifth video, still decoding at the kill
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=20:duration=60", str(long))
    inputs = [str(synth_corpus), str(long)]  # 9 videos: 0, 2, 4, 6 and zlong are shard 0's
    out = tmp_path / "frames"
    command = [sys.executable, "-m", "vidcap", "extract", *inputs, "--out", str(out)]
    # One video at a time (-j 1), so that zlong is the one being decoded when 00006 is recorded.
    job = subprocess.Popen(
        [*command, "--size", "32", "--shard", "0/2", "-j", "1"], stderr=subprocess.PIPE
    )
    part = out / "index.shard0of2.jsonl"
    deadline = time.monotonic() + 120
    while job.poll() is None and time.monotonic() < deadline:
        if part.is_file() and "synth-00006" in part.read_text():
            break
        time.sleep(0.05)
    job.kill()  # SIGKILL: no cleanup, its state stays "running"
    job.wait()
    assert "zlong" not in part.read_text()

    other = vidcap("extract", *inputs, "--out", out, "--size", "32", "--shard", "1/2", "--json")
    assert other.exit_code == 0, other.output
    assert "still to come: 0 (started on" in json.loads(other.stdout)["note"]
    assert not (out / "manifest.json").exists()
    resumed = vidcap("extract", *inputs, "--out", out, "--size", "32", "--shard", "0/2", "--json")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["counts"] == {"ok": 5, "failed": 0, "skipped": 4}  # ok: all of its share
    assert "ended last" in summary["note"]
    index = index_of(out)
    assert len(index) == 9 and all(item["status"] == "ok" for item in index.values())
    assert index["zlong"]["n_frames"] == len(np.load(out / index["zlong"]["outputs"]["frames"]))
    assert not list(out.rglob(".tmp-*")) and not (out / SHARDS).exists()


def test_encoding_a_folder_whose_shard_jobs_have_not_all_ended_says_so(
    synth_corpus: Path, tmp_path: Path
) -> None:
    # It said the folder was "not a `vidcap extract` folder" and "holds no videos".
    frames = tmp_path / "frames"
    half = vidcap("extract", synth_corpus, "--out", frames, "--size", "32", "--shard", "0/2")
    assert half.exit_code == 0, half.output
    result = vidcap("encode", frames, "--out", tmp_path / "features")
    assert result.exit_code == 1
    assert "holds a stage run that has not finished" in " ".join(result.output.split())
