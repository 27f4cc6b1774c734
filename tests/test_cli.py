"""The command-line spine: help, version, info, and errors as sentences with non-zero exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from vidcap import __version__
from vidcap.cli import app

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("info", "synth"):
        assert command in result.output


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


def test_bad_option_value_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path), "--videos", "0"])
    assert result.exit_code == 2
