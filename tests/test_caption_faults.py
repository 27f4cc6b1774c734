"""Captioning that cannot hang: a decoder that hangs or crashes fails its video (one sentence, the
time limit's cost) and the others go on; Ctrl-C exits 130 with one line and kills the decoder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests import test_finetune_caption as captioning
from tests.test_finetune_caption import Run, Video, bart_bundle, invoke
from tests.videos import FFMPEG, ffmpeg, fork_only, interrupt_while_decoding, trap_bundle_copy

from vidcap.inference.captioner import Captioner
from vidcap.video.backends import unregister_backend
from vidcap.video.errors import DecoderCrashedError, DecodeTimeoutError

bart = captioning.bart  # the module's fixtures: a tiny BART bundle, the synthetic videos
videos = captioning.videos


@pytest.fixture
def trap_bundle(bart: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bundle, decoding with the trap backend in forked workers (which inherit it)."""
    yield trap_bundle_copy(bart_bundle(bart), tmp_path / "bundle", monkeypatch)
    unregister_backend("trap")


def _copies(videos: dict[str, Video], tmp_path: Path) -> list[Path]:
    good = videos["synth-00000"].path
    paths = [good]
    for name in ("hang.mp4", "crash.mp4"):
        shutil.copy(good, tmp_path / name)
        paths.append(tmp_path / name)
    return [*paths, videos["synth-00001"].path]


@fork_only
@pytest.mark.slow
def test_hung_and_crashed_decoders_fail_their_videos_only(
    trap_bundle: Path, videos: dict[str, Video], tmp_path: Path
) -> None:
    paths = _copies(videos, tmp_path)
    captioner = Captioner.load(trap_bundle, timeout=2.0)
    start = time.monotonic()
    results = list(captioner.caption_many(paths))
    elapsed = time.monotonic() - start
    captioner.close()
    assert [type(r).__name__ for r in results] == [
        "CaptionedVideo",
        "DecodeTimeoutError",
        "DecoderCrashedError",
        "CaptionedVideo",
    ]
    timeout, crash = results[1], results[2]
    assert isinstance(timeout, DecodeTimeoutError) and isinstance(crash, DecoderCrashedError)
    assert (
        str(timeout)
        == f"decoding {paths[1]} stalled: the decoder sent nothing for 2 s (the time limit) and "
        "was stopped."
    )
    assert "crash.mp4" in str(crash) and "SIGSEGV" in str(crash)
    assert elapsed < 30  # the hang cost its 2 s, not an hour


@fork_only
@pytest.mark.slow
def test_caption_cli_reports_hang_and_crash_and_goes_on(
    trap_bundle: Path, videos: dict[str, Video], tmp_path: Path
) -> None:
    paths = _copies(videos, tmp_path)
    run = invoke("caption", *paths, "--model", trap_bundle, "--format", "jsonl", "--timeout", "2")
    assert run.exit_code == 1
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["video"] for r in records] == [str(p) for p in paths]
    assert ["error" in r for r in records] == [False, True, True, False]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, run.stderr
    assert "hang.mp4 stalled: the decoder sent nothing for 2 s" in errors[0]
    assert "crash.mp4" in errors[1] and "crashed" in errors[1]
    assert errors[2] == "error: 2 of 4 videos could not be captioned."


@fork_only
@pytest.mark.slow
def test_caption_writes_videos_as_they_are_captioned_not_at_the_end(
    trap_bundle: Path, videos: dict[str, Video], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline reading stdout gets the videos captioned so far while a later video's decoder is
    still hung (videos share generation batches 8 at a time), and nothing is held until the end."""
    from vidcap.output.formats import CaptionsWriter

    good, hang = _copies(videos, tmp_path)[:2]
    paths = [good] * 8 + [hang]
    written: list[tuple[float, str]] = []
    add = CaptionsWriter.add

    def timed_add(self: CaptionsWriter, result) -> None:
        written.append((time.monotonic(), result.video))
        add(self, result)

    monkeypatch.setattr(CaptionsWriter, "add", timed_add)
    run = invoke("caption", *paths, "--model", trap_bundle, "--format", "jsonl", "--timeout", "2")
    ended = time.monotonic()
    assert run.exit_code == 1
    assert [video for _, video in written] == [str(good)] * 8
    assert ended - written[-1][0] >= 2.0  # written before the hung decoder's 2 s ran out
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["video"] for r in records] == [str(good)] * 8 + [str(hang)]
    assert "stalled" in records[-1]["error"]


@pytest.mark.slow
def test_results_go_to_stdout_even_while_a_progress_bar_is_on_the_terminal(
    bart: Run, videos: dict[str, Video], tmp_path: Path
) -> None:
    """`vidcap caption VIDEO > captions.txt` in a terminal: the captions go to the file, and the
    terminal shows the progress bar only (a bar on the terminal must not pull stdout onto it)."""
    import pty

    paths = [str(videos["synth-00000"].path), str(videos["synth-00001"].path)]
    main, terminal = pty.openpty()
    out = tmp_path / "captions.txt"
    with open(out, "w") as stdout:
        run = subprocess.run(
            [sys.executable, "-m", "vidcap", "caption", *paths, "-m", str(bart_bundle(bart))],
            stdout=stdout, stderr=terminal, stdin=subprocess.DEVNULL, timeout=300,
        )  # fmt: skip
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal's other end is closed: all was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert run.returncode == 0, shown.decode(errors="replace")[-2000:]
    lines = out.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == paths
    assert b"captioned" in shown  # the bar was drawn on the terminal
    texts = [line.split("\t")[1] for line in lines]
    assert not any(text.encode() in shown for text in texts), shown[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(FFMPEG is None or not Path("/proc").is_dir(), reason="needs ffmpeg and /proc")
def test_ctrl_c_exits_130_with_one_line_and_kills_the_decoder(bart: Run, tmp_path: Path) -> None:
    long = tmp_path / "long.mp4"  # 10 minutes: still decoding when the interrupt comes
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=20:duration=600", str(long))
    out = tmp_path / "captions.jsonl"
    returncode, stderr, children = interrupt_while_decoding(
        ["caption", str(long), "--model", str(bart_bundle(bart)), "--format", "jsonl",
         "--out", str(out)]
    )  # fmt: skip
    assert returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted."
    assert "Traceback" not in stderr
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
    for child in children:
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)


def _corpus_with(synth_corpus: Path, to: Path, videos: dict[str, Path]) -> Path:
    """A copy of the corpus (video paths made absolute) whose test split also has, for each
    ``id: video`` given, the first test record again under that id, on that video."""
    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    for record in records:
        record["video"] = str(synth_corpus.parent / record["video"])
    first = next(r for r in records if r["split"] == "test")
    records += [{**first, "id": key, "video": str(video)} for key, video in videos.items()]
    to.write_text("".join(json.dumps(r) + "\n" for r in records))
    return to


@fork_only
@pytest.mark.slow
def test_evaluate_scores_the_videos_a_hung_or_crashing_decoder_leaves(
    trap_bundle: Path, synth_corpus: Path, tmp_path: Path
) -> None:
    """evaluate, as caption: a hang costs its --timeout and one sentence, a segfault one
    sentence, and the other videos of the split are scored."""
    records = [json.loads(line) for line in synth_corpus.read_text().splitlines()]
    tested = [r for r in records if r["split"] == "test"]
    for name in ("hang.mp4", "crash.mp4"):
        shutil.copy(synth_corpus.parent / tested[0]["video"], tmp_path / name)
    corpus = _corpus_with(
        synth_corpus, tmp_path / "corpus.jsonl",
        {"hang-video": tmp_path / "hang.mp4", "crash-video": tmp_path / "crash.mp4"},
    )  # fmt: skip
    started = time.monotonic()
    run = invoke(
        "evaluate", trap_bundle, "--corpus", corpus, "--timeout", "2", "--json", "--no-meteor"
    )
    assert time.monotonic() - started < 2 + 60  # its 2 s, not the hour the decoder sleeps
    assert run.exit_code == 1, run.output
    report = json.loads(run.stdout)
    failed = {f["video"]: f["error"] for f in report["failed"]}
    assert set(failed) == {"hang-video", "crash-video"}
    assert "hang.mp4 stalled: the decoder sent nothing for 2 s" in failed["hang-video"]
    assert "crashed" in failed["crash-video"] and "SIGSEGV" in failed["crash-video"]
    assert report["videos"] == len(tested)
    assert report["segments"] == sum(len(r["segments"]) for r in tested)
    assert report["scores"]["captioner"]["CIDEr"] is not None
    assert "Traceback" not in run.output
    assert "2 videos could not be captioned; the scores leave them out." in run.stderr


@pytest.mark.slow
@pytest.mark.skipif(FFMPEG is None or not Path("/proc").is_dir(), reason="needs ffmpeg and /proc")
def test_evaluate_ctrl_c_exits_130_and_writes_nothing(
    bart: Run, synth_corpus: Path, tmp_path: Path
) -> None:
    """Ctrl-C while evaluate decodes: exit 130 with one line, the decoder gone, no page and the
    bundle's card untouched (evaluate records its scores there only when it finishes)."""
    # 10 minutes, after the split's short videos: evaluate is decoding one of them or this one
    # when the interrupt comes, a second after the first decode child starts.
    long = tmp_path / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=20:duration=600", str(long))
    bundle = tmp_path / "bundle"
    shutil.copytree(bart_bundle(bart), bundle)
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    corpus = _corpus_with(synth_corpus, tmp_path / "corpus.jsonl", {"long": long})
    page = tmp_path / "page"
    returncode, stderr, children = interrupt_while_decoding(
        ["evaluate", str(bundle), "--corpus", str(corpus), "--no-meteor", "--html", str(page)]
    )
    assert returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted."
    assert "Traceback" not in stderr
    for child in children:
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    assert not page.exists()
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == before


# --------------------------------------------------------------------------------------------------
# Many videos: shards and processes


def _three(videos: dict[str, Video]) -> list[str]:
    return [str(videos[f"synth-0000{i}"].path) for i in range(3)]


@pytest.mark.slow
def test_shards_take_every_nth_video_and_concatenate(
    bart: Run, videos: dict[str, Video], tmp_path: Path
) -> None:
    bundle, paths = bart_bundle(bart), _three(videos)
    whole = tmp_path / "all.jsonl"
    assert invoke("caption", *paths, "-m", bundle, "-f", "jsonl", "-o", whole).exit_code == 0
    parts = []
    for k in range(2):
        part = tmp_path / f"part{k}.jsonl"
        run = invoke("caption", "-", "-m", bundle, "-f", "jsonl", "-o", part, "--shard", f"{k}/2",
                     input="\n".join(paths) + "\n")  # fmt: skip
        assert run.exit_code == 0, run.output
        parts.append(part.read_text().splitlines())
    assert [json.loads(line)["video"] for line in parts[0]] == [paths[0], paths[2]]
    assert [json.loads(line)["video"] for line in parts[1]] == [paths[1]]
    assert sorted(parts[0] + parts[1]) == sorted(whole.read_text().splitlines())
    for bad in ("2/2", "1", "a/b"):
        refused = invoke("caption", *paths, "-m", bundle, "--shard", bad)
        assert refused.exit_code == 2 and "--shard" in refused.output


@pytest.mark.slow
def test_two_processes_write_the_one_process_output(
    bart: Run, videos: dict[str, Video], tmp_path: Path
) -> None:
    from stage_helpers import two_processes

    bundle, paths = bart_bundle(bart), _three(videos)
    paths.insert(1, str(tmp_path / "missing.mp4"))  # a failure in the middle, reported in order
    one, one_html = tmp_path / "one.jsonl", tmp_path / "one-report"
    single = invoke("caption", *paths, "-m", bundle, "-f", "jsonl", "-o", one, "--html", one_html)
    assert single.exit_code == 1
    two, two_html = tmp_path / "two.jsonl", tmp_path / "two-report"
    result = two_processes(
        "-m", "vidcap", "caption", *paths, "-m", bundle, "-f", "jsonl", "-o", two, "--html", two_html
    )  # fmt: skip
    assert result.returncode != 0  # the missing video: exit 1, as with one process
    assert two.read_text() == one.read_text(), result.stderr[-3000:]
    assert "missing.mp4 does not exist" in result.stderr
    assert "1 of 4 videos could not be captioned." in result.stderr
    # The report holds every process's videos (a page and a storyboard each), as one process's.
    files = [sorted(p.relative_to(d) for p in d.rglob("*")) for d in (one_html, two_html)]
    storyboards = [f for f in files[0] if f.suffix == ".png"]
    assert files[0] == files[1] and len(storyboards) == 3
    # Drawn in each process and sent as PNG: the same pictures.
    assert all((one_html / f).read_bytes() == (two_html / f).read_bytes() for f in storyboards)
    index = (two_html / "index.html").read_text()
    assert all(Path(p).name in index for p in paths)


@pytest.mark.slow
def test_threads_decode_in_their_own_processes(bart: Run, videos: dict[str, Video]) -> None:
    """A server captioning from several threads: one decode worker per thread, same captions."""
    from concurrent.futures import ThreadPoolExecutor

    paths = _three(videos)[:2]
    captioner = Captioner.load(bart_bundle(bart))
    try:
        alone = [captioner.caption(p).captions for p in paths]
        with ThreadPoolExecutor(2) as pool:
            together = [r.captions for r in pool.map(captioner.caption, paths)]
        assert together == alone
        assert len(captioner.pipeline._workers) >= 2
    finally:
        captioner.close()
    assert captioner.pipeline._workers == []
