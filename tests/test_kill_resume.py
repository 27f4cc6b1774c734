"""Kill-point fault injection: every stage is killed with SIGKILL at seeded points, then rerun.

The real command (``python -m vidcap …``) runs in its own process group and is killed, with its
children (a decoder, DataLoader workers), like a crashed machine, at three points per stage drawn by
a seeded ``random.Random``: after N items are recorded in ``index.jsonl`` (extract, encode), at a
drawn delay after the run took its folder or after N words are recorded (quantize), right after
checkpoint step-k appeared (pretrain, finetune), after N storyboards were written (caption). The
same command is then run to completion (pretrain and finetune with ``--resume auto``, as their docs
say to continue a stopped run).

After the kill: no ``manifest.json`` (a killed run never claims to be finished), every complete line
of ``index.jsonl`` parses (only a torn last line may not), and what was finished is whole. After the
rerun: exit 0, nothing printed mentions a traceback or a bug, the items finished before the kill
are skipped (extract, encode) or training goes on from the last checkpoint (pretrain, finetune),
the outputs equal an uninterrupted run's, the index is clean, and no ``.tmp-*`` file is left.

How: the victim is advanced in short slices (``SIGSTOP``/``SIGCONT`` on its process group) and
looked at between slices, so the kill lands within one slice of the drawn point however busy the
machine is, and never after the run has finished. A stage's three kill points run at once (and
then their three reruns), in a module fixture, so the imports of six processes overlap on two
cores; each kill point is then checked by its own test, on a copy of its folder taken right after
the kill and on the folder the rerun finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import load_file as load_torch
from typer.testing import CliRunner

from vidcap.artifacts import INDEX, LOCK, MANIFEST
from vidcap.artifacts.readers import load_features
from vidcap.cli import app

runner = CliRunner()

SEED = 19
ITEMS = 8  # videos in the session's synthetic corpus
SLICE_S = 0.001  # how long the victims run between two looks
# Three processes share two cores: one thread each, so torch's threads do not fight over them.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
KILL_TIMEOUT_S = 240  # for the victims to reach their kill points
RERUN_TIMEOUT_S = 300
# Tiny training runs: checkpoints at steps 3, 6, 9 and 12.
TRAIN = ("--preset", "tiny", "--max-steps", "12", "--save-every", "3", "--eval-every", "1000")
FINETUNE = (*TRAIN, "--beams", "1")
CHECKPOINT_STEPS = (3, 6, 9, 12)
CAPTION_COPIES = 2  # each video twice: two groups of 8 videos, so a kill can land between them


def rng(stage: str) -> random.Random:
    return random.Random(f"{SEED}:{stage}")


# The kill points, drawn once (the test ids show them).
EXTRACT_AFTER = rng("extract").sample(range(1, ITEMS), 3)  # items recorded
ENCODE_AFTER = rng("encode").sample(range(1, ITEMS), 3)
# quantize: a delay after it took --out (it lands in the fit, most of the run), and two word
# counts (all words are written within milliseconds after the fit, where a delay rarely lands).
_quantize = rng("quantize")
QUANTIZE_AT = [
    f"{_quantize.uniform(0.0, 2.0):.2f}s",
    *(f"{n}-words" for n in _quantize.sample(range(1, ITEMS), 2)),
]
PRETRAIN_AFTER = rng("pretrain").sample(CHECKPOINT_STEPS, 3)  # checkpoint step
FINETUNE_AFTER = rng("finetune").sample(CHECKPOINT_STEPS, 3)
CAPTION_AFTER = rng("caption").sample(range(1, ITEMS * CAPTION_COPIES), 3)  # storyboards written


# --------------------------------------------------------------------------------------------------
# Running and killing


def vidcap(*args: object) -> list[str]:
    return [sys.executable, "-m", "vidcap", *(str(a) for a in args)]


@dataclass
class Victim:
    """A command to kill once ``reached(seconds it has run)`` is true; its output goes to ``log``."""

    command: list[str]
    reached: Callable[[float], bool]
    log: Path


def _signal(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def run_and_kill(victims: Sequence[Victim]) -> None:
    """Run the victims at once, each in its own process group, SLICE_S at a time, and SIGKILL each
    whole group as soon as it reaches its point. Fails if one ends first."""
    procs = []
    for victim in victims:
        with open(victim.log, "wb") as log:
            procs.append(
                subprocess.Popen(
                    victim.command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=ENV,
                )
            )
    live = dict(zip(procs, victims, strict=True))  # start_new_session: pid == process group id
    ran, deadline = 0.0, time.monotonic() + KILL_TIMEOUT_S
    try:
        for proc in live:
            _signal(proc.pid, signal.SIGSTOP)
        while live:
            for proc, victim in list(live.items()):
                if victim.reached(ran):
                    _signal(proc.pid, signal.SIGKILL)
                    _signal(proc.pid, signal.SIGCONT)  # a stopped process dies once it runs again
                    proc.wait(timeout=60)
                    del live[proc]
                elif proc.poll() is not None:
                    pytest.fail(
                        f"{victim.log.parent.name}: the run ended (exit {proc.returncode}) before "
                        f"its kill point:\n{victim.log.read_text(errors='replace')[-3000:]}"
                    )
            if time.monotonic() > deadline:
                pytest.fail(f"not every run reached its kill point in {KILL_TIMEOUT_S} s")
            start = time.monotonic()
            for proc in live:
                _signal(proc.pid, signal.SIGCONT)
            time.sleep(SLICE_S)
            for proc in live:
                _signal(proc.pid, signal.SIGSTOP)
            ran += time.monotonic() - start
    finally:
        for proc in procs:
            _signal(proc.pid, signal.SIGKILL)
            _signal(proc.pid, signal.SIGCONT)
            proc.wait(timeout=60)


def wait_for_unlock(folder: Path, timeout: float = 30.0) -> None:
    """Wait until no (dying) process of a killed run holds the folder's lock any more."""
    lock = folder / LOCK
    if not lock.exists():
        return
    deadline = time.monotonic() + timeout
    fd = os.open(lock, os.O_RDWR)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{lock} is still held after the kill"
                time.sleep(0.01)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
    finally:
        os.close(fd)


@dataclass
class Run:
    """One kill point: the folder as the kill left it (a copy), then as the rerun left it, and
    what the rerun printed."""

    killed: Path
    out: Path
    returncode: int
    stdout: str
    stderr: str


def kill_then_rerun(
    root: Path,
    points: Sequence[Any],
    command: Callable[[Path], list[str]],
    kill_point: Callable[[Path, Any], Callable[[float], bool]],
    rerun_args: Sequence[str] = (),
    prepare: Callable[[Path], None] | None = None,
) -> dict[Any, Run]:
    """For each point: run ``command(out)`` and kill it at ``kill_point(out, point)``; copy ``out``
    as the kill left it; then rerun the same command (plus ``rerun_args``) to the end. The points
    run at once, then the reruns."""
    outs = {point: root / str(point) / "out" for point in points}
    for out in outs.values():
        out.parent.mkdir(parents=True)
        if prepare is not None:
            prepare(out)
    run_and_kill(
        [
            Victim(command(out), kill_point(out, p), out.parent / "killed.log")
            for p, out in outs.items()
        ]
    )
    for out in outs.values():
        wait_for_unlock(out)
        shutil.copytree(out, out.parent / "killed", symlinks=True)
    reruns = {}
    for point, out in outs.items():
        logs = [open(out.parent / name, "w+") for name in ("rerun.out", "rerun.err")]  # noqa: SIM115
        reruns[point] = (
            subprocess.Popen([*command(out), *rerun_args], stdout=logs[0], stderr=logs[1], env=ENV),
            logs,
        )
    runs = {}
    try:
        for point, (proc, logs) in reruns.items():
            returncode = proc.wait(timeout=RERUN_TIMEOUT_S)
            printed = []
            for log in logs:
                log.seek(0)
                printed.append(log.read())
            runs[point] = Run(outs[point].parent / "killed", outs[point], returncode, *printed)
    finally:
        for proc, logs in reruns.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
            for log in logs:
                log.close()
    return runs


# --------------------------------------------------------------------------------------------------
# Looking


def recorded(folder: Path) -> int:
    """Complete (newline-terminated) lines in the folder's index."""
    try:
        return (folder / INDEX).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def index_lines(folder: Path, torn_tail_allowed: bool) -> list[dict]:
    """The index, line by line. Every complete line must parse; right after a kill the last one
    may be torn (no newline: vidcap ignores it), after a finished run it may not."""
    path = folder / INDEX
    if not path.exists():
        return []
    *complete, tail = path.read_bytes().split(b"\n")
    if not torn_tail_allowed:
        assert tail == b"", f"{path} ends with a torn line: {tail!r}"
    return [json.loads(line) for line in complete]


def check_killed(run: Run) -> dict[str, dict]:
    """What a kill may leave: no manifest, an index whose complete lines parse. Returns the items
    recorded ok (the last line for an id wins, as in vidcap)."""
    assert not (run.killed / MANIFEST).exists(), "a killed run left a manifest"
    items = {line["id"]: line for line in index_lines(run.killed, torn_tail_allowed=True)}
    return {i: line for i, line in items.items() if line["status"] == "ok"}


def check_rerun_exit(run: Run) -> None:
    """The rerun exited 0 and printed nothing like a crash."""
    printed = run.stdout + run.stderr
    assert run.returncode == 0, printed[-3000:]
    assert "Traceback" not in printed and "bug" not in printed, printed[-3000:]


def check_rerun(run: Run) -> dict[str, Any]:
    """The rerun succeeded, printed nothing like a crash, and left a finished, clean folder (no
    temporary file, no lock file, a clean index). Returns its ``--json`` report."""
    check_rerun_exit(run)
    assert (run.out / MANIFEST).is_file()
    assert not (run.out / LOCK).exists(), "the lock file stayed after the run"
    leftovers = sorted(str(p.relative_to(run.out)) for p in run.out.rglob(".tmp-*"))
    assert not leftovers, f"temporary files left: {leftovers}"
    lines = index_lines(run.out, torn_tail_allowed=False)
    assert len(lines) == len({line["id"] for line in lines}), "an id is listed twice"
    return json.loads(run.stdout)


def files(folder: Path, pattern: str) -> dict[str, Path]:
    """Finished files under ``folder`` matching ``pattern``, by relative path (no .tmp-*)."""
    return {
        str(p.relative_to(folder)): p
        for p in sorted(folder.rglob(pattern))
        if p.is_file() and not p.name.startswith(".tmp-")
    }


def same_bytes(ours: Path, theirs: Path) -> bool:
    return ours.read_bytes() == theirs.read_bytes()


def assert_same_files(
    ours: Path, theirs: Path, pattern: str, same: Callable[[Path, Path], bool] = same_bytes
) -> None:
    """The finished files matching ``pattern`` under ``ours`` are those under ``theirs``: the same
    names, each pair equal by ``same``."""
    reference = files(theirs, pattern)
    assert files(ours, pattern).keys() == reference.keys()
    for name, path in reference.items():
        assert same(ours / name, path), name


def check_item_stage(
    run: Run,
    reference: Path,
    output: str,
    pattern: str,
    killed_after: int | None,
    rerun_skips_done: bool = True,
    same: Callable[[Path, Path], bool] = same_bytes,
) -> None:
    """An item stage (extract, encode, quantize) killed and rerun, against the uninterrupted run in
    ``reference``. The kill came once ``killed_after`` items were recorded (None: at a time, not a
    count) and before the last; each item recorded ok by then has its ``output`` whole. The rerun
    reports every item ok (skipping those done before the kill, if ``rerun_skips_done``), indexes
    each once, and its ``output`` folder (files ``pattern``, equal by ``same``) is the reference's."""
    done = check_killed(run)
    if killed_after is not None:
        assert killed_after <= len(done) < ITEMS
    skipped = len(done) if rerun_skips_done else 0
    for item in done.values():  # what finished before the kill is whole
        path = item["outputs"][output]
        assert same(run.killed / path, reference / path), path
    report = check_rerun(run)
    assert report["counts"] == {"ok": ITEMS, "failed": 0, "skipped": skipped}
    assert len(index_lines(run.out, torn_tail_allowed=False)) == ITEMS
    assert_same_files(run.out / output, reference / output, pattern, same)


def same_features(ours: Path, theirs: Path) -> bool:
    """Equal tensors (safetensors orders its metadata as it likes, so not equal bytes)."""
    a, b = load_features(ours), load_features(theirs)
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def assert_same_weights(ours: Path, theirs: Path) -> None:
    a, b = load_torch(ours), load_torch(theirs)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def items_recorded(out: Path, n: int) -> Callable[[float], bool]:
    return lambda _: recorded(out) >= n


# --------------------------------------------------------------------------------------------------
# Uninterrupted runs to compare with (in this process: the imports are paid once)


def reference_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, args: Callable[[Path], Sequence[object]]
) -> Path:
    """A new folder ``referenceN/name`` where ``vidcap *args(folder)`` ran to the end."""
    out = tmp_path_factory.mktemp("reference") / name
    result = runner.invoke(app, [str(a) for a in args(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def frames_32(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_run(
        tmp_path_factory,
        "frames",
        lambda out: ("extract", synth_corpus, "--out", out, "--size", 32),
    )


@pytest.fixture(scope="module")
def pretrained(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_run(
        tmp_path_factory, "pretrain", lambda out: ("pretrain", words_dir, "--out", out, *TRAIN)
    )


@pytest.fixture(scope="module")
def finetuned(pretrained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_run(
        tmp_path_factory, "bundle", lambda out: ("finetune", pretrained, "--out", out, *FINETUNE)
    )


def caption_args(synth_corpus: Path, bundle: Path, out: Path) -> list[str]:
    rows = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    videos = [str(synth_corpus.parent / row["video"]) for row in rows] * CAPTION_COPIES
    return [
        "caption", *videos, "--model", str(bundle), "--format", "json",
        "--out", str(out / "captions.json"), "--preview", str(out / "previews"), "--device", "cpu",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def captioned(
    synth_corpus: Path, finetuned: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return reference_run(
        tmp_path_factory, "captions", lambda out: caption_args(synth_corpus, finetuned, out)
    )


# --------------------------------------------------------------------------------------------------
# extract and encode: killed after N items, the rerun does the rest


@pytest.fixture(scope="module")
def extract_runs(synth_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Run]:
    return kill_then_rerun(
        tmp_path_factory.mktemp("extract"),
        EXTRACT_AFTER,
        lambda out: vidcap("extract", synth_corpus, "--out", out, "--size", 32, "--json"),
        items_recorded,
    )


@pytest.mark.slow
@pytest.mark.parametrize("after", EXTRACT_AFTER, ids=lambda n: f"after-{n}-items")
def test_extract_killed_after_n_items(
    extract_runs: dict[Any, Run], frames_32: Path, after: int
) -> None:
    check_item_stage(extract_runs[after], frames_32, "frames", "*.npy", killed_after=after)


@pytest.fixture(scope="module")
def encode_runs(frames_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Run]:
    # One clip per batch and one loader process (neither changes the features), so videos finish
    # one after the other rather than several in one burst; the loader dies with the run.
    settings = ("--batch-size", 1, "--loader-workers", 1, "--json")
    return kill_then_rerun(
        tmp_path_factory.mktemp("encode"),
        ENCODE_AFTER,
        lambda out: vidcap("encode", frames_dir, "--out", out, *settings),
        items_recorded,
    )


@pytest.mark.slow
@pytest.mark.parametrize("after", ENCODE_AFTER, ids=lambda n: f"after-{n}-items")
def test_encode_killed_after_n_items(
    encode_runs: dict[Any, Run], features_dir: Path, after: int
) -> None:
    check_item_stage(
        encode_runs[after], features_dir, "features", "*.safetensors", after, same=same_features
    )


# --------------------------------------------------------------------------------------------------
# quantize: killed in its fit or while it writes the words; the rerun fits again (one global fit)
# and gives the same words


def quantize_kill_point(out: Path, point: str) -> Callable[[float], bool]:
    if point.endswith("-words"):
        return items_recorded(out, int(point.split("-")[0]))
    delay = float(point.removesuffix("s"))
    took_folder: list[float] = []  # when the run took --out (it writes nothing before)

    def reached(ran: float) -> bool:
        if not took_folder and (out / LOCK).exists():
            took_folder.append(ran)
        # At the drawn delay, or at the latest once all but the last video's words are recorded.
        return bool(took_folder) and (ran - took_folder[0] >= delay or recorded(out) >= ITEMS - 1)

    return reached


@pytest.fixture(scope="module")
def quantize_runs(features_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Run]:
    return kill_then_rerun(
        tmp_path_factory.mktemp("quantize"),
        QUANTIZE_AT,
        lambda out: vidcap(
            "quantize", features_dir, "--out", out, "--k", 4, "--depth", 2, "--json"
        ),
        quantize_kill_point,
    )


@pytest.mark.slow
@pytest.mark.parametrize("point", QUANTIZE_AT, ids=lambda p: f"after-{p}")
def test_quantize_killed_in_its_fit_or_its_words(
    quantize_runs: dict[Any, Run], words_dir: Path, point: str
) -> None:
    run = quantize_runs[point]
    words = int(point.split("-")[0]) if point.endswith("-words") else None
    # The rerun fits again (one global fit), so it keeps none of the killed run's words.
    check_item_stage(run, words_dir, "words", "*.json", words, rerun_skips_done=False)
    ours = load_numpy(run.out / "codebook.safetensors")
    theirs = load_numpy(words_dir / "codebook.safetensors")
    assert ours.keys() == theirs.keys()
    for key in ours:  # the same tree; only the reported inertia may differ in its last bits
        np.testing.assert_allclose(
            ours[key], theirs[key], rtol=0 if "inertia" not in key else 1e-6, err_msg=key
        )


# --------------------------------------------------------------------------------------------------
# pretrain and finetune: killed after checkpoint step-k, --resume auto ends with the same weights


def checkpoint_appeared(out: Path, step: int) -> Callable[[float], bool]:
    checkpoint = out / "checkpoints" / f"step-{step:08d}"
    return lambda _: checkpoint.is_dir()


def checkpoint_files(out: Path) -> dict[str, int]:
    """Every file of the folder's checkpoints, with its modification time."""
    return {
        str(path.relative_to(out)): path.stat().st_mtime_ns
        for path in sorted((out / "checkpoints").glob("step-*/**/*"))
        if path.is_file()
    }


def check_resumed(run: Run, step: int) -> None:
    check_killed(run)
    before = checkpoint_files(run.killed)
    assert f"checkpoints/step-{step:08d}/trainer_state.json" in before
    report = check_rerun(run)
    assert report["counts"]["ok"] == 1 and report["steps"] == 12
    # A checkpoint the killed run finished and the rerun kept was not made again: it resumed.
    after = checkpoint_files(run.out)
    assert all(after[name] == mtime for name, mtime in before.items() if name in after)
    rows = [json.loads(line) for line in (run.out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 12
    # Every step is logged once, in order: what the killed run logged after its last checkpoint
    # is not logged a second time by the resumed one.
    train = [row["step"] for row in rows if row["split"] == "train"]
    assert train == sorted(set(train)), train


@pytest.fixture(scope="module")
def pretrain_runs(
    words_dir: Path, pretrained: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[Any, Run]:
    def prepare(out: Path) -> None:
        # The reference's vocabulary (tokenizers' WordPiece trainer breaks ties differently from
        # process to process), so the two runs are comparable weight for weight.
        shutil.copytree(pretrained / "vocabulary", out / "vocabulary")

    return kill_then_rerun(
        tmp_path_factory.mktemp("pretrain"),
        PRETRAIN_AFTER,
        lambda out: vidcap("pretrain", words_dir, "--out", out, *TRAIN, "--json"),
        checkpoint_appeared,
        rerun_args=("--resume", "auto"),
        prepare=prepare,
    )


@pytest.mark.slow
@pytest.mark.parametrize("step", PRETRAIN_AFTER, ids=lambda k: f"after-step-{k}")
def test_pretrain_killed_after_a_checkpoint(
    pretrain_runs: dict[Any, Run], pretrained: Path, step: int
) -> None:
    run = pretrain_runs[step]
    assert not (run.killed / "final").exists()
    check_resumed(run, step)
    final = "final/model.safetensors"
    assert_same_weights(run.out / final, pretrained / final)


@pytest.fixture(scope="module")
def finetune_runs(pretrained: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Run]:
    # From the pretrain folder: its vocabulary, so the runs are comparable as they are.
    return kill_then_rerun(
        tmp_path_factory.mktemp("finetune"),
        FINETUNE_AFTER,
        lambda out: vidcap("finetune", pretrained, "--out", out, *FINETUNE, "--json"),
        checkpoint_appeared,
        rerun_args=("--resume", "auto"),
    )


@pytest.mark.slow
@pytest.mark.parametrize("step", FINETUNE_AFTER, ids=lambda k: f"after-step-{k}")
def test_finetune_killed_after_a_checkpoint(
    finetune_runs: dict[Any, Run], finetuned: Path, step: int
) -> None:
    run = finetune_runs[step]
    assert not (run.killed / "vidcap.json").exists(), "a killed finetune looks like a bundle"
    check_resumed(run, step)
    assert (run.out / "vidcap.json").is_file()
    assert_same_weights(run.out / "model.safetensors", finetuned / "model.safetensors")


# --------------------------------------------------------------------------------------------------
# caption: a kill leaves no partial output; the rerun's output is the uninterrupted run's


@pytest.fixture(scope="module")
def caption_runs(
    synth_corpus: Path, finetuned: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[Any, Run]:
    return kill_then_rerun(
        tmp_path_factory.mktemp("caption"),
        CAPTION_AFTER,
        lambda out: vidcap(*caption_args(synth_corpus, finetuned, out)),
        lambda out, n: lambda _: len(files(out / "previews", "*.png")) >= n,
    )


@pytest.mark.slow
@pytest.mark.parametrize("after", CAPTION_AFTER, ids=lambda n: f"after-{n}-storyboards")
def test_caption_killed_midway(caption_runs: dict[Any, Run], captioned: Path, after: int) -> None:
    run = caption_runs[after]
    assert not (run.killed / "captions.json").exists()  # written once every video is done
    drawn = files(run.killed / "previews", "*.png")
    assert after <= len(drawn) < ITEMS * CAPTION_COPIES
    for name, path in drawn.items():  # each storyboard there is whole
        assert same_bytes(path, captioned / "previews" / name), name

    check_rerun_exit(run)
    assert same_bytes(run.out / "captions.json", captioned / "captions.json")
    assert_same_files(run.out / "previews", captioned / "previews", "*.png")
    # A kill while a storyboard was being written leaves its temporary file; the rerun removes it
    # (its process is gone) and leaves none of its own.
    assert not list(run.out.rglob(".tmp-*")), "temporary files left after the rerun"
