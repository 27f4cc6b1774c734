"""``--log-with``: an unknown or uninstalled tracker is a sentence before any data is read."""

from __future__ import annotations

from pathlib import Path

import accelerate.tracking
import pytest
from accelerate.utils import LoggerType
from typer.testing import CliRunner

from vidcap.cli import app
from vidcap.errors import VidcapError
from vidcap.training.loop import check_tracker


def test_missing_tensorboard_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # Accelerate alone would drop the tracker without a word and log nothing.
    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    with pytest.raises(
        VidcapError,
        match=r"the tensorboard tracker needs the tensorboard package: pip install 'vidcap\[tensorboard\]'",
    ):
        check_tracker("tensorboard")
    with pytest.raises(VidcapError, match="pip install wandb"):
        check_tracker("wandb")


def test_installed_and_absent_trackers_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        accelerate.tracking, "get_available_trackers", lambda: [LoggerType.TENSORBOARD]
    )
    check_tracker("tensorboard")
    check_tracker("all")
    check_tracker(None)


def test_unknown_tracker_lists_the_known_ones() -> None:
    with pytest.raises(
        VidcapError,
        match=r"the tracker 'tensorbord' is unknown to Accelerate; use one of .*tensorboard",
    ):
        check_tracker("tensorbord")


def test_cli_refuses_before_reading_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(accelerate.tracking, "get_available_trackers", lambda: [])
    for command in ("pretrain", "finetune"):
        result = CliRunner().invoke(
            app,
            [
                command,
                str(tmp_path / "nothing"),
                "--out",
                str(tmp_path / "out"),
                "--log-with",
                "tensorboard",
            ],
        )
        assert result.exit_code == 2, result.output
        assert "vidcap[tensorboard]" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
