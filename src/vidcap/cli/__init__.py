"""The ``vidcap`` command line: one thin module per command, registered on one Typer app.

Errors: a :class:`~vidcap.errors.VidcapError` reaches the user as one red sentence and exit code 1;
anything else is a bug, shown as one sentence too unless ``vidcap --debug`` asks for the traceback.
Ctrl-C prints ``error: interrupted.`` and exits 130.
"""

from __future__ import annotations

import os

import typer

from vidcap import __version__
from vidcap.cli import (
    answer,
    caption,
    classify,
    data,
    demo,
    encode,
    evaluate,
    extract,
    finetune,
    info,
    pretrain,
    quantize,
    serve,
    synth,
)
from vidcap.cli.console import print_error, show_vidcap_warnings
from vidcap.cli.help import VidcapCommand, VidcapGroup
from vidcap.distributed import leave_process_group
from vidcap.errors import VidcapError, as_path_error, as_resource_error

_state = {"debug": os.environ.get("VIDCAP_DEBUG", "") not in ("", "0")}


# What to do after Ctrl-C, for the commands whose work a rerun continues.
_ITEMS_KEPT = "; what finished is kept: rerun the same command to do the rest"
_AFTER_INTERRUPT = {
    "extract": _ITEMS_KEPT,
    "encode": _ITEMS_KEPT,
    "pretrain": "; rerun the same command with --resume auto to go on from its last checkpoint",
    "finetune": "; rerun the same command with --resume auto to go on from its last checkpoint",
}


class _VidcapGroup(VidcapGroup):
    """Turns exceptions from commands into one readable sentence and a non-zero exit."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            outcome = super().invoke(ctx)
        except typer.Exit:
            leave_process_group()  # the command ran to its end (its exit status says how)
            raise
        except VidcapError as e:
            if _state["debug"]:
                raise
            print_error(str(e))
            raise typer.Exit(e.exit_code) from None
        except (typer.TyperException, typer.Abort, BrokenPipeError):
            raise  # click reports its own; a closed pipe (`vidcap … | head`) it ends quietly
        except KeyboardInterrupt:
            # The shell's convention for a command stopped by SIGINT; decoder children are
            # killed on the way out (vidcap.video.worker), outputs are written atomically.
            print_error(f"interrupted{_AFTER_INTERRUPT.get(ctx.invoked_subcommand or '', '')}.")
            raise typer.Exit(130) from None
        except Exception as e:
            if _state["debug"]:
                raise
            # a full disk, no memory, a folder of another user: the machine's, not a bug
            fault = as_resource_error(e) or as_path_error(e)
            if fault is not None:
                print_error(str(fault))
                raise typer.Exit(1) from None
            print_error(
                f"unexpected {type(e).__name__}: {e}. This is a bug in vidcap: rerun with "
                "`vidcap --debug ...` for the traceback and report it."
            )
            raise typer.Exit(1) from None
        leave_process_group()
        return outcome


app = typer.Typer(
    cls=_VidcapGroup,
    name="vidcap",
    help="End-to-end video captioning: from a folder of videos to a trained captioner, "
    "and from any video to captions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"vidcap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks instead of one-sentence errors."
    ),
) -> None:
    """End-to-end video captioning (VideoBERT / BART)."""
    _state["debug"] = _state["debug"] or debug
    _quiet_libraries()
    show_vidcap_warnings()


def _quiet_libraries() -> None:
    """Library chatter (transformers' shard bars, accelerate's save notices) would break up
    vidcap's own progress bars; errors still show."""
    import logging

    logging.getLogger("accelerate").setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


for name, command in {
    "info": info.info_command,
    "synth": synth.synth_command,
    "extract": extract.extract_command,
    "encode": encode.encode_command,
    "pretrain": pretrain.pretrain_command,
    "finetune": finetune.finetune_command,
    "caption": caption.caption_command,
    "evaluate": evaluate.evaluate_command,
    "classify": classify.classify_command,
    "answer": answer.answer_command,
    "summarize": answer.summarize_command,
    "demo": demo.demo_command,
    "serve": serve.serve_command,
}.items():
    app.command(name, cls=VidcapCommand)(command)
app.add_typer(data.app, name="data")
app.add_typer(quantize.app, name="quantize")


def main() -> None:
    """Console-script entry point."""
    app()
