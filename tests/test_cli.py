"""The command-line spine: help, version, info, and errors as sentences with non-zero exits."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import typer
import typer.core
import typer.main
from typer.testing import CliRunner

from stage_helpers import fail_file_locks, without_access_rights
from vidcap import __version__
from vidcap.cli import app
from vidcap.cli.help import VidcapCommand, VidcapGroup
from vidcap.cli.videos import Videos, for_each_video, read_video_paths
from vidcap.errors import VidcapError
from vidcap.stages.base import StageResult

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("info", "synth"):
        assert command in result.output


def _commands(group, path=()):  # every command below the app, with its path
    for name, command in group.commands.items():
        if isinstance(command, typer.core.TyperGroup):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_help_paragraphs_fill_the_terminal_they_are_shown_in() -> None:
    """A command's description is wrapped to the terminal, not to its docstring's source lines:
    at 80 columns each 100-column source line became a long line and a short one."""
    root = typer.main.get_command(app)
    commands = dict(_commands(root))
    assert len(commands) >= 15
    groups = [root, *(c for c in root.commands.values() if isinstance(c, typer.core.TyperGroup))]
    assert len(groups) == 3 and all(isinstance(g, VidcapGroup) for g in groups)
    for path, command in commands.items():
        assert isinstance(command, VidcapCommand), path  # registered with cls=VidcapCommand
        for paragraph in (command.help or "").split("\n\n"):
            assert "\n" not in paragraph, path
    result = runner.invoke(app, ["extract", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if "Frames are resized" in line)
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    paragraph = " ".join(line.strip() for line in lines[start:end])
    assert paragraph.startswith("Frames are resized") and paragraph.endswith("into one --out.")
    assert end - start <= -(-len(paragraph) // 70)  # full lines (the ragged text took 8 here)
    assert all(len(line) <= 80 for line in lines)


def test_flags_show_no_value_in_help() -> None:
    """typer writes `<bool>` after a flag, as if `--force true` were how to give it, and its
    arguments in lower case (`{words_dir}`), unlike the docs (`WORDS_DIR`)."""
    commands = [path for path, _ in _commands(typer.main.get_command(app))]
    for path in [(), ("data",), ("quantize",), *commands]:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "160"})
        assert result.exit_code == 0, path
        assert "<bool>" not in result.output, path
        usage = next(line for line in result.output.splitlines() if "Usage:" in line)
        assert not re.search(r"[{\[][a-z_]+[}\]]", usage), usage  # {WORDS_DIR}, not {words_dir}
    extract = runner.invoke(app, ["extract", "--help"], env={"COLUMNS": "160"}).output
    assert "<float>" in extract  # options that take a value still say which


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"vidcap {__version__}"


def test_info_json_reports_libraries() -> None:
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["vidcap"] == __version__
    assert info["torch"].startswith("2.")
    assert info["cuda_available"] is False or info["cuda_devices"]
    for key in ("python", "transformers", "accelerate", "decord", "pyav", "opencv", "java"):
        assert key in info
    assert "torchcodec" in info  # None where it is missing or built for another torch


def test_info_table() -> None:
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0
    assert "transformers" in result.output


def test_python_dash_m_and_console_script_agree() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vidcap", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"vidcap {__version__}"


def test_user_error_is_one_sentence_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text("{}\n")
    result = subprocess.run(
        [sys.executable, "-m", "vidcap", "synth", str(tmp_path), "--videos", "1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr and "was not written by vidcap synth" in result.stderr
    # --debug shows the traceback for bug reports.
    debug = subprocess.run(
        [sys.executable, "-m", "vidcap", "--debug", "synth", str(tmp_path), "--videos", "1"],
        capture_output=True,
        text=True,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_folder_the_user_may_not_write_is_a_sentence(tmp_path: Path) -> None:
    # An --out inside another user's (or a read-only) folder was "unexpected PermissionError ...
    # This is a bug in vidcap".
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        result = subprocess.run(
            [*without_access_rights(), sys.executable, "-m", "vidcap", "synth",
             str(locked / "corpus"), "--videos", "1"],
            capture_output=True,
            text=True,
        )  # fmt: skip
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "bug" not in result.stderr
    assert f"permission denied: this user may not write or read {locked}" in result.stderr
    assert list(locked.iterdir()) == []


def test_an_atomic_write_replaces_a_read_only_file_as_editors_do(tmp_path: Path) -> None:
    # Giving the temporary file the old file's 0444 before writing it made every rewrite of a
    # read-only output (DVC's, a tarball's) fail; a rename needs only the folder's permission.
    target = tmp_path / "captions.jsonl"
    target.write_text("old")
    target.chmod(0o444)
    result = subprocess.run(
        [*without_access_rights(), sys.executable, "-c",
         "import sys; from vidcap.artifacts import atomic_write_text; "
         "atomic_write_text(sys.argv[1], 'new')", str(target)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o444


def test_an_atomic_write_names_the_folder_it_may_not_write(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        result = subprocess.run(
            [*without_access_rights(), sys.executable, "-c",
             "import sys; from vidcap.artifacts import atomic_write_text; "
             "atomic_write_text(sys.argv[1], 'x')", str(locked / "out.txt")],
            capture_output=True,
            text=True,
        )  # fmt: skip
    finally:
        locked.chmod(0o755)
    # The folder, not the temporary file's name, so the sentence above names what to fix.
    assert f"PermissionError: [Errno 13] Permission denied: '{locked}'" in result.stderr


def test_a_stage_on_a_file_system_without_locks_runs_and_says_so(
    frames_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_file_locks(monkeypatch)
    shown = warnings.showwarning
    try:
        result = runner.invoke(app, ["encode", str(frames_dir), "--out", str(tmp_path / "f")])
    finally:
        warnings.showwarning = shown
    assert result.exit_code == 0, result.output
    assert (tmp_path / "f" / "manifest.json").is_file()
    # One warning line, not Python's "file:line: VidcapWarning: ..." nor a traceback.
    assert (
        "warning: " in result.output and "cannot lock files (No locks available)" in result.output
    )
    assert "VidcapWarning" not in result.output


def test_bad_option_value_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path), "--videos", "0"])
    assert result.exit_code == 2


# --------------------------------------------------------------------------------------------------
# Choices and bounds are checked by click: exit code 2 before any work, and --help lists the values.

WIDE = {"COLUMNS": "200"}  # Rich lays help out at this width: no line of interest is wrapped


def _choices() -> list[tuple[list[str], list[str], str, tuple[str, ...]]]:
    """(command path, its arguments with a bad choice, the option, the values it takes), each
    with the values from the module that owns them."""
    from typing import get_args

    from vidcap.cli.evaluate import EvaluateTask
    from vidcap.corpus import SPLITS
    from vidcap.encoders.dtypes import COMPUTE_DTYPES
    from vidcap.models.presets import ARCHS, PRESETS
    from vidcap.output.formats import FORMATS
    from vidcap.quantize.settings import NORMALIZATIONS
    from vidcap.stages.extract import BACKENDS

    return [
        (
            ["caption"],
            ["IN/v.mp4", "-m", "IN/model", "-o", "OUT", "--format", "xml"],
            "--format",
            FORMATS,
        ),
        (["finetune"], ["IN", "-o", "OUT", "--arch", "gpt2"], "--arch", ARCHS),
        (["pretrain"], ["IN", "-o", "OUT", "--preset", "huge"], "--preset", PRESETS),
        (["extract"], ["IN", "-o", "OUT", "--backend", "ffmpeg"], "--backend", BACKENDS),
        (
            ["quantize", "fit"],
            ["IN", "-o", "OUT", "--normalize", "l1"],
            "--normalize",
            NORMALIZATIONS,
        ),
        (["evaluate"], ["IN", "--task", "translate"], "--task", get_args(EvaluateTask)),
        (["encode"], ["IN", "-o", "OUT", "--dtype", "float64"], "--dtype", COMPUTE_DTYPES),
        (["data", "import"], ["youcook2", "IN", "-o", "OUT", "--split", "dev"], "--split", SPLITS),
    ]


def _in_tmp(args: list[str], tmp_path: Path) -> list[str]:
    return [
        a.replace("IN", str(tmp_path / "in")).replace("OUT", str(tmp_path / "out")) for a in args
    ]


@pytest.mark.parametrize("case", range(len(_choices())))
def test_a_bad_choice_is_a_usage_error_before_any_work(case: int, tmp_path: Path) -> None:
    command, args, option, values = _choices()[case]
    result = runner.invoke(app, [*command, *_in_tmp(args, tmp_path)], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "Usage: vidcap" in result.output and f"Invalid value for '{option}'" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written: no --out folder, no corpus

    help_text = runner.invoke(app, [*command, "--help"], env=WIDE).output
    assert f"<{'|'.join(values)}>" in help_text, help_text


@pytest.mark.parametrize(
    "args, option",
    [
        (["caption", "IN/v.mp4", "-m", "IN/m", "-o", "OUT", "--device", "gpu"], "--device"),
        (["quantize", "IN", "-o", "OUT", "--device", "cuda:one"], "--device"),
        (["encode", "IN", "-o", "OUT", "--device", "tpu"], "--device"),
        (
            ["caption", "IN/v.mp4", "-m", "IN/m", "-o", "OUT", "--segment-seconds", "0"],
            "--segment-seconds",
        ),
        (["classify", "IN/v.mp4", "-m", "IN/m", "-t", "a [MASK]", "--top", "0"], "--top"),
        (["extract", "IN", "-o", "OUT", "--fps", "-20"], "--fps"),
        (["extract", "IN", "-o", "OUT", "-j", "0"], "--workers"),
        # --size 5000 wrote 13 GB for a 7-second video; 100000 failed every video as "damaged".
        (["extract", "IN", "-o", "OUT", "--size", "5000"], "--size"),
        (["encode", "IN", "-o", "OUT", "--size", "2161"], "--size"),
        (["encode", "IN", "-o", "OUT", "-j", "many"], "--workers"),
        (["encode", "IN", "-o", "OUT", "--loader-workers", "-1"], "--loader-workers"),
        (["quantize", "IN", "-o", "OUT", "--k", "1"], "--k"),
        # These failed at run time, exit 1, after the command had started.
        (["pretrain", "IN", "-o", "OUT", "--save-every", "0"], "--save-every"),
        (["finetune", "IN", "-o", "OUT", "--eval-every", "0"], "--eval-every"),
        (["pretrain", "IN", "-o", "OUT", "--lr", "-1"], "--lr"),
        (["evaluate", "IN", "--task", "classify"], "--task"),  # needs --template and --field
    ],
)
def test_a_bad_device_or_number_is_a_usage_error(
    args: list[str], option: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, _in_tmp(args, tmp_path), env=WIDE)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert list(tmp_path.iterdir()) == []
    if option == "--device":
        assert "must be auto, cpu, cuda, cuda:N or mps" in result.output


@pytest.mark.parametrize(
    "cores, launched, decoders, loaders",
    [(2, None, 2, 2), (16, None, 16, 8), (64, "8", 8, 4), (6, None, 6, 3), (4, "8", 1, 2)],
)
def test_worker_counts_default_to_the_cores_of_this_process(
    cores: int,
    launched: str | None,
    decoders: int,
    loaders: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """auto: a decoder per core, and half the cores (2 to 8) preparing clips, out of this
    process's share of the machine under a launcher (LOCAL_WORLD_SIZE processes on it)."""
    from vidcap import distributed
    from vidcap.cli.options import parse_decode_workers, parse_loader_workers

    monkeypatch.setattr(
        distributed.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False
    )
    monkeypatch.setattr(distributed, "cpu_quota", lambda: None)
    if launched is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", launched)
    assert distributed.cores_per_process() == max(1, cores // int(launched or 1))
    assert (parse_decode_workers("auto"), parse_loader_workers("auto")) == (decoders, loaders)
    assert (
        parse_decode_workers("3"),
        parse_loader_workers("0"),
        parse_decode_workers(" Auto "),
    ) == (3, 0, decoders)
    for bad in ("0", "-2", "1.5", "all"):
        with pytest.raises(typer.BadParameter, match="must be auto or a whole number >= 1"):
            parse_decode_workers(bad)


@pytest.mark.parametrize(
    "v2, v1, quota, cores",
    [
        ("250000 100000\n", None, 2.5, 2),  # docker --cpus 2.5 on a 16-core host: 2 decoders
        ("max 100000\n", None, None, 16),  # no limit
        (None, ("400000", "100000"), 4.0, 4),  # cgroup v1
        (None, ("-1", "100000"), None, 16),  # v1, no limit
        ("50000 100000\n", None, 0.5, 1),  # half a CPU: still one
    ],
)
def test_a_containers_cpu_quota_caps_the_auto_counts(
    v2: str | None,
    v1: tuple[str, str] | None,
    quota: float | None,
    cores: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vidcap import distributed

    paths = {
        "CGROUP_CPU_MAX": v2,
        "CGROUP_V1_QUOTA": v1 and v1[0],
        "CGROUP_V1_PERIOD": v1 and v1[1],
    }
    for name, text in paths.items():
        path = tmp_path / name  # absent unless written: as on a machine without that cgroup
        if text is not None:
            path.write_text(text)
        monkeypatch.setattr(distributed, name, path)
    monkeypatch.setattr(
        distributed.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False
    )
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert distributed.cpu_quota() == quota
    assert distributed.cores_per_process() == cores


# --------------------------------------------------------------------------------------------------
# `vidcap --help`: each command's first sentence, whole, on one line


def _groups() -> dict[str, typer.core.TyperGroup]:
    """The root group and its sub-apps (``data``, ``quantize``), by command path."""
    root = typer.main.get_command(app)
    groups = {"": root}
    for name, command in root.commands.items():
        if isinstance(command, typer.core.TyperGroup):
            groups[name] = command
    return groups


def _listed_commands(help_text: str) -> list[tuple[str, str]]:
    """The (name, text) rows of the Commands panel of a --help; a row with no name is a line that
    continues the one above it."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if "─ Commands ─" in line)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("╰"):
            break
        body = line.strip("│").rstrip()[1:]  # without the panel's border and padding
        name = body.split(" ", 1)[0]  # "" on a continuation line
        rows.append((name, body[len(name) :].strip()))
    return rows


@pytest.mark.parametrize("group", ["", "data", "quantize"])
def test_help_lists_each_command_by_one_whole_sentence(group: str) -> None:
    command = _groups()[group]
    result = runner.invoke(app, [group, "--help"] if group else ["--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = _listed_commands(result.output)
    assert all(name for name, _ in rows), f"a first sentence is wrapped:\n{result.output}"
    assert sorted(name for name, _ in rows) == sorted(command.commands)
    for name, text in rows:
        assert text.endswith("."), (name, text)
        # The listing shows the first paragraph of the help: one line, short enough for 120 columns.
        first = (command.commands[name].help or "").split("\n\n")[0].strip()
        assert "\n" not in first and text == first, (name, first)
        assert len(first) <= 95, (name, len(first))


def test_option_help_keeps_its_brackets() -> None:
    # Rich reads "[tensorboard]" as a style tag and drops it: `--log-with`'s install hint read
    # "pip install 'vidcap'". An option's text is shown whole, brackets included.
    checked = 0
    for group_name, group in _groups().items():
        for name, command in group.commands.items():
            if isinstance(command, typer.core.TyperGroup):
                continue
            path = [group_name, name] if group_name else [name]
            for param in command.params:
                text = (getattr(param, "help", None) or "").replace("\\[", "[")
                if "[" not in text:
                    continue
                shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"}).output
                assert text in shown, (path, param.name, text)
                checked += 1
    assert checked >= 3  # --log-with (pretrain, finetune) and the [MASK] templates at least


def test_cli_startup_does_not_load_heavy_libraries() -> None:
    code = (
        "import sys, typer, vidcap.cli; typer.main.get_command(vidcap.cli.app); "
        "print(sorted(m for m in ('torch', 'transformers', 'cv2', 'av') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------------
# The loop of the per-video commands


def _video_app(finished: list[tuple[list[str], list[tuple[str, str]]]]) -> typer.Typer:
    """A command like `vidcap summarize` whose work fails for videos named bad*."""

    def shout(path: str) -> str:
        if Path(path).name.startswith("bad"):
            raise VidcapError(f"{path} cannot be read.")
        print(path.upper())
        return path.upper()

    videos_app = typer.Typer()

    @videos_app.command()
    def shout_command(videos: Videos) -> None:
        paths = read_video_paths(videos)
        results: list[str] = []
        for_each_video(
            paths, "shouted", shout, results.append, lambda f: finished.append((results, f))
        )
        print(f"all {len(results)} shouted")

    return videos_app


def test_for_each_video_reports_a_failure_and_goes_on() -> None:
    finished: list[tuple[list[str], list[tuple[str, str]]]] = []
    result = runner.invoke(_video_app(finished), ["a.mp4", "bad.mp4", "-"], input="c.mp4\n\n")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["A.MP4", "C.MP4"]  # the videos after the bad one too
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: bad.mp4 cannot be read.",
        "error: 1 of 3 videos could not be shouted.",
    ]
    assert finished == [(["A.MP4", "C.MP4"], [("bad.mp4", "bad.mp4 cannot be read.")])]

    finished.clear()
    ok = runner.invoke(_video_app(finished), ["a.mp4", "c.mp4"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines() == ["A.MP4", "C.MP4", "all 2 shouted"]
    assert finished == [(["A.MP4", "C.MP4"], [])]


def test_shared_videos_reach_the_main_process_in_order_a_round_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a launcher, the main process writes the videos in input order as each round of
    every process's share is gathered, not once at the end with every result held (and every
    process receiving all of them). Two processes, here as two threads exchanging through a
    barrier; shares of 5 and 4 videos in rounds of 2."""
    import threading

    import typer

    from vidcap.cli import videos as loop
    from vidcap.distributed import Processes

    monkeypatch.setattr(loop, "ROUND", 2)
    barrier, slots, gathers = threading.Barrier(2), [None, None], [0]

    class Rank(Processes):
        def gather(self, obj):
            slots[self.rank] = obj
            barrier.wait()
            got = list(slots)
            if self.rank == 0:
                gathers[0] += 1
            barrier.wait()
            return got

    paths = [f"v{i}.mp4" for i in range(9)]
    paths[3] = "bad.mp4"  # the second process's
    emitted: list[tuple[int, str]] = []
    finished: list[list[tuple[str, str]]] = []
    exits: list[int] = []

    def shout(path: str) -> str:
        if path.startswith("bad"):
            raise VidcapError(f"{path} cannot be read.")
        return path.upper()

    def run(rank: int) -> None:
        try:
            loop.for_each_video(
                paths,
                "shouted",
                shout,
                lambda result: emitted.append((gathers[0], result)),
                finished.append,
                processes=Rank(rank, 2),
                failed=lambda path, _: emitted.append((gathers[0], f"failed {path}")),
            )
        except typer.Exit as e:
            exits.append(e.exit_code)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    # Each in its place, the failure too (a jsonl output records it there).
    assert [v for _, v in emitted] == [
        f"failed {p}" if p.startswith("bad") else p.upper() for p in paths
    ]
    # Rounds of 2 per process: videos 0-3 after the first, 4-7 after the second, 8 after the last.
    assert [n for n, _ in emitted] == [1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert finished == [[("bad.mp4", "bad.mp4 cannot be read.")]] and exits == [1]


# --------------------------------------------------------------------------------------------------
# Outputs that would destroy inputs


def test_a_stage_refuses_to_write_into_another_stages_folder(
    features_dir: Path, tmp_path: Path
) -> None:
    # `vidcap quantize feats --out feats` deleted the features' manifest and index, then blamed
    # "another process"; `vidcap encode frames --out frames` turned the frames into features.
    copy = tmp_path / "features"
    shutil.copytree(features_dir, copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    result = runner.invoke(app, ["quantize", str(copy), "--out", str(copy), "--k", "3"])
    assert result.exit_code == 1
    assert f"{copy} holds the output of `vidcap encode`, which `vidcap quantize` would destroy" in (
        " ".join(result.output.split())
    )
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before
    # The folder is still a finished encode: quantizing it elsewhere works.
    elsewhere = runner.invoke(
        app, ["quantize", str(copy), "--out", str(tmp_path / "words"), "--k", "3", "--depth", "1"]
    )
    assert elsewhere.exit_code == 0, elsewhere.output


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_an_out_that_is_a_file_is_a_sentence(
    features_dir: Path, tmp_path: Path, where: str
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    out = notes if where == "file" else notes / "words"
    result = runner.invoke(app, ["quantize", str(features_dir), "--out", str(out), "--k", "3"])
    assert result.exit_code == 1
    assert "bug" not in result.output and "Error" not in result.output
    assert "is a file, not a folder" in result.output or "a file stands where" in result.output
    assert notes.read_text() == "mine"


def test_an_upstream_manifest_that_is_not_an_object_is_damaged(
    features_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "features"
    shutil.copytree(features_dir, copy)
    (copy / "manifest.json").write_text("[]")
    result = runner.invoke(app, ["quantize", str(copy), "--out", str(tmp_path / "w"), "--k", "3"])
    assert result.exit_code == 1
    assert "manifest.json is damaged (not a JSON object); rerun `vidcap encode --force`" in (
        " ".join(result.output.split())
    )


def test_caption_refuses_an_out_that_is_a_video_or_inside_the_model(tmp_path: Path) -> None:
    # `--out video.mp4` replaced the video with its caption; `--out MODEL/vidcap.json` the bundle's
    # settings. Refused before the model is loaded or anything decoded.
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"a video")
    model = tmp_path / "model"
    model.mkdir()
    for out, why in ((video, "is one of the videos to caption"), (model / "x.json", "inside")):
        result = runner.invoke(
            app, ["caption", str(video), "--model", str(model), "--out", str(out)]
        )
        assert result.exit_code == 1
        assert why in " ".join(result.output.split())
    assert video.read_bytes() == b"a video" and list(model.iterdir()) == []
    # A --shard job is refused an --out that is another job's video too (it may be reading it).
    other = tmp_path / "other.mp4"
    other.write_bytes(b"another video")
    args = ["caption", str(video), str(other), "--model", str(model), "--shard", "0/2"]
    result = runner.invoke(app, [*args, "--out", str(other)])
    assert result.exit_code == 1 and "is one of the videos to caption" in result.output
    assert other.read_bytes() == b"another video"


@pytest.mark.parametrize(
    "args",
    [
        ["quantize", "MISSING", "--out", "OUT"],  # said "has no manifest.json: run encode into it"
        ["caption", "v.mp4", "--model", "MISSING"],  # said "is not a caption model"
    ],
)
def test_a_folder_that_does_not_exist_is_named_as_such(args: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    args = [
        str(missing) if a == "MISSING" else str(tmp_path / a) if a == "OUT" else a for a in args
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {missing}: no such folder."


def test_the_summary_says_the_skipped_items_are_among_the_ok_ones() -> None:
    # "ok 20, failed 5, skipped 20" read as 45 results for 25 videos.
    from rich.console import Console

    from vidcap.cli import console

    result = StageResult("extract", Path("out"), {"ok": 20, "failed": 5, "skipped": 20})
    shown = Console(width=80, record=True)
    original, console.stderr = console.stderr, shown
    try:
        console.print_stage_result(result)
    finally:
        console.stderr = original
    rows = [" ".join(line.strip("│ ").split()) for line in shown.export_text().splitlines()]
    start = rows.index("ok │ 20")
    assert rows[start : start + 3] == ["ok │ 20", "of them done before │ 20", "failed │ 5"]


@pytest.mark.parametrize("damage", ["{", "{}"])
def test_a_damaged_manifest_of_its_own_folder_is_rewritten_with_force(
    features_dir: Path, tmp_path: Path, damage: str
) -> None:
    # The sentence says "rerun with --force"; --force must then get past the check that refuses
    # another stage's folder (whose stage a damaged manifest cannot tell).
    out = tmp_path / "words"
    args = ["quantize", str(features_dir), "--out", str(out), "--k", "3", "--depth", "1"]
    assert runner.invoke(app, args).exit_code == 0
    (out / "manifest.json").write_text(damage)
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "manifest.json is damaged" in refused.output
    assert "--force" in refused.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["stage"] == "quantize"


def test_the_video_commands_take_folders(tmp_path: Path) -> None:
    # `vidcap caption DIR` was "DIR is a directory, not a video file", where encode takes folders.
    for name in ("b.mp4", "a/c.MKV", "a/._c.MKV", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert read_video_paths([str(tmp_path), "other.mp4"]) == [
        str(tmp_path / "a" / "c.MKV"),
        str(tmp_path / "b.mp4"),
        "other.mp4",
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(VidcapError, match="the folders hold none"):
        read_video_paths([str(tmp_path / "empty")])


def test_vidcap_warnings_are_shown_by_one_hook_however_many_commands_ran() -> None:
    # Each command installs it; wrapping the last one again each time would stack a wrapper per
    # command run in one process (a library or test session), past Python's recursion limit.
    from vidcap.cli.console import show_vidcap_warnings

    shown = warnings.showwarning
    try:
        show_vidcap_warnings()
        hook = warnings.showwarning
        for _ in range(5):
            show_vidcap_warnings()
        assert warnings.showwarning is hook
    finally:
        warnings.showwarning = shown


def test_a_run_tree_moved_as_a_whole_still_reads_its_upstream(
    synth_corpus: Path, tmp_path: Path
) -> None:
    # Stage folders record their upstream folders and corpus by absolute path: a run directory
    # renamed (or copied to another disk) broke with "/old/words has no manifest.json: run vidcap
    # quantize into it first" and "the corpus /old/corpus.jsonl ... is gone".
    run = tmp_path / "run"
    shutil.copytree(synth_corpus.parent, run / "corpus")
    steps = [
        ["extract", str(run / "corpus" / "corpus.jsonl"), "--out", str(run / "frames"), "--size", "32"],
        ["encode", str(run / "frames"), "--out", str(run / "features")],
        ["quantize", str(run / "features"), "--out", str(run / "words"), "--k", "3", "--depth", "1"],
    ]  # fmt: skip
    for args in steps:
        assert runner.invoke(app, args).exit_code == 0, args
    moved = tmp_path / "moved"
    run.rename(moved)
    tiny = ["--preset", "tiny", "--max-steps", "2"]
    pretrain = runner.invoke(
        app, ["pretrain", str(moved / "words"), "--out", str(moved / "pre"), *tiny]
    )
    assert pretrain.exit_code == 0, pretrain.output
    finetune = runner.invoke(
        app, ["finetune", str(moved / "pre"), "--out", str(moved / "model"), *tiny]
    )
    assert finetune.exit_code == 0, finetune.output
    manifest = json.loads((moved / "pre" / "manifest.json").read_text())
    assert manifest["corpus"] == str(moved / "corpus" / "corpus.jsonl")
    assert manifest["folder"] == str(moved / "pre")
