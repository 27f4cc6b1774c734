"""`vidcap pretrain` (tiny preset, CPU): learning, checkpoints that load in plain transformers,
resume without repeated steps, and a 2-process run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file
from typer.testing import CliRunner

from stage_helpers import two_processes
from vidcap.cli import app
from vidcap.stages.pretrain import PretrainConfig, run_pretrain
from vidcap.text import JointVocabulary
from vidcap.training.loop import StepReport

runner = CliRunner()


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def pretrain(words_dir: Path, out: Path, *args: str):
    return runner.invoke(
        app, ["pretrain", str(words_dir), "--out", str(out), "--preset", "tiny", *args]
    )


def late_mean(rows: list[dict], name: str) -> float:
    """Mean of a train metric over the second half of the run (10-step windows)."""
    values = [m[name] for m in rows[len(rows) // 2 :] if name in m]
    return sum(values) / len(values)


@pytest.mark.parametrize("arch", ["videobert", "bart"])
@pytest.mark.slow
def test_losses_fall_and_tokens_beat_chance(words_dir: Path, tmp_path: Path, arch: str) -> None:
    out = tmp_path / arch
    result = pretrain(
        words_dir, out, "--arch", arch, "--max-steps", "300", "--eval-every", "1000", "--json"
    )
    assert result.exit_code == 0, result.output
    train = [m for m in metrics(out) if m["split"] == "train"]
    vocab = JointVocabulary.load(out / "final")
    text_chance = 1 / (vocab.text_id_range[1] - vocab.text_id_range[0])
    video_chance = 1 / vocab.n_visual
    objectives = ("loss_text", "loss_video", "loss_joint")
    for name in objectives:
        assert late_mean(train, name) < 0.8 * train[0][name], (
            name,
            train[0][name],
            late_mean(train, name),
        )
    assert late_mean(train, "acc_text_tokens") > 10 * text_chance
    if arch == "videobert":
        assert late_mean(train, "acc_video_tokens") > 1.3 * video_chance
    # Tiny BART needs more than 300 steps before its argmax on visual words is right; its video
    # loss falling (checked above) is what 300 steps show.
    assert any(m["split"] == "val" for m in metrics(out))


def test_final_loads_in_plain_transformers(words_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pt"
    assert pretrain(words_dir, out, "--max-steps", "5").exit_code == 0
    final = out / "final"
    model = transformers.AutoModel.from_pretrained(final)
    tokenizer = transformers.AutoTokenizer.from_pretrained(final)
    assert isinstance(model, transformers.BertModel)
    ids = tokenizer("a red circle [>] [V3] [V15]", add_special_tokens=False)["input_ids"]
    assert ids[-2:] == [
        tokenizer.convert_tokens_to_ids("[V3]"),
        tokenizer.convert_tokens_to_ids("[V15]"),
    ]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state
    assert hidden.shape == (1, len(ids), model.config.hidden_size)
    assert (final / "model.safetensors").is_file() and (final / "codebook.safetensors").is_file()
    info = json.loads((final / "vidcap.json").read_text())
    assert info["arch"] == "videobert" and info["n_visual"] == 16
    rerun = pretrain(words_dir, out, "--max-steps", "5", "--json")
    assert json.loads(rerun.stdout)["up_to_date"] is True


def test_bart_final_loads_as_seq2seq(words_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bart"
    assert pretrain(words_dir, out, "--arch", "bart", "--max-steps", "5").exit_code == 0
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(out / "final")
    assert isinstance(model, transformers.BartForConditionalGeneration)


class _Interrupt(Exception):
    pass


def test_resume_continues_without_repeating_steps(words_dir: Path, tmp_path: Path) -> None:
    config = PretrainConfig(preset="tiny", max_steps=12, save_every=4, eval_every=1000)
    straight = tmp_path / "straight"
    run_pretrain(words_dir, straight, config)

    resumed = tmp_path / "resumed"
    # The same vocabulary (tokenizers' WordPiece trainer breaks ties differently from process to
    # process), so the two runs are comparable weight for weight.
    shutil.copytree(straight / "vocabulary", resumed / "vocabulary")

    def stop_after_eight(report) -> None:  # like a kill right after the step-8 checkpoint
        if report.step == 9:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        run_pretrain(words_dir, resumed, config, on_step=stop_after_eight)
    assert (resumed / "checkpoints" / "step-00000008").is_dir()
    assert not (resumed / "final").exists()
    run_pretrain(words_dir, resumed, config, resume="auto")

    steps = [m["step"] for m in metrics(resumed) if m["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 12
    a = load_file(straight / "final" / "model.safetensors")
    b = load_file(resumed / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_two_processes_train_one_checkpoint(words_dir: Path, tmp_path: Path) -> None:
    """Also logs to tensorboard: Accelerate's end_training() destroyed the process group, which
    the processes still needed afterwards (every `--log-with` run under a launcher ended in a
    ValueError)."""
    out = tmp_path / "ddp"
    result = two_processes(
        "-m", "vidcap", "pretrain", words_dir, "--out", out, "--preset", "tiny",
        "--max-steps", "6", "--save-every", "3", "--batch-size", "4", "--log-with", "tensorboard",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["counts"]["ok"] == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-00000003",
        "step-00000006",
    ]
    assert transformers.AutoModel.from_pretrained(out / "final").config.model_type == "bert"
    assert list(out.rglob("events.out.tfevents.*"))  # the main process logged


@pytest.fixture(scope="module")
def words_40(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-video synthetic corpus through extract, encode and quantize (36 words)."""
    from vidcap.stages.encode import EncodeConfig, run_encode
    from vidcap.stages.extract import ExtractConfig, run_extract
    from vidcap.stages.inputs import resolve_inputs
    from vidcap.stages.quantize import QuantizeConfig, run_quantize
    from vidcap.synth.plan import SynthConfig
    from vidcap.synth.records import generate_corpus

    root = tmp_path_factory.mktemp("align")
    generate_corpus(root / "synth", SynthConfig(videos=40, seed=1, workers=2))
    run_extract(
        resolve_inputs([str(root / "synth" / "corpus.jsonl")]),
        root / "frames",
        ExtractConfig(size=96),
    )
    run_encode(root / "frames", root / "features", EncodeConfig())
    run_quantize(root / "features", root / "words", QuantizeConfig(k=6, depth=2))
    return root / "words"


@pytest.mark.slow
def test_alignment_head_beats_chance(words_40: Path, tmp_path: Path) -> None:
    out = tmp_path / "align"
    config = PretrainConfig(preset="base", max_steps=600, eval_every=10**6, save_every=10**6)
    run_pretrain(words_40, out, config)
    train = [m for m in metrics(out) if m["split"] == "train"]
    assert late_mean(train, "loss_align") < train[0]["loss_align"] - 0.05
    # Half the joint pairs take their text from another video: chance is 0.5.
    assert late_mean(train, "acc_align") > 0.6
    assert late_mean(train, "acc_video_tokens") > 5 / 36


def _not_json(constant: str) -> None:
    raise AssertionError(f"{constant} in metrics.jsonl is not JSON")


@pytest.mark.parametrize("steps", [2, 30])
def test_a_diverging_run_stops_with_a_sentence(words_dir: Path, tmp_path: Path, steps: int) -> None:
    # --lr 1e9 gave NaN losses, weights of 1e9, exit 0, a manifest and a final/ model (and a
    # captioner from it that wrote "##g").
    out = tmp_path / "pretrain"
    result = pretrain(words_dir, out, "--max-steps", str(steps), "--save-every", "5", "--lr", "1e9")
    assert result.exit_code == 1, result.output
    assert "training diverged by step" in result.output and "lower --lr" in result.output
    assert not (out / "manifest.json").exists() and not (out / "final").exists()
    if steps == 2:  # caught by the final val loss, which is logged as null, not a bare NaN
        lines = (out / "metrics.jsonl").read_text().splitlines()
        rows = [json.loads(line, parse_constant=_not_json) for line in lines]
        assert any(row["split"] == "val" and row["loss"] is None for row in rows)
    else:  # caught while training, before its first checkpoint
        assert not list((out / "checkpoints").glob("step-*"))


def test_a_stopped_run_is_not_restarted_over_its_checkpoints(
    words_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C said only "interrupted."; the same command again then deleted the checkpoints and
    # trained from step 0 without a word.
    import vidcap.stages.pretrain as stage

    def ctrl_c_in_step_5(report: StepReport) -> None:  # after the checkpoint of step 4
        if report.step == 5:
            raise KeyboardInterrupt

    real_train = stage.train
    monkeypatch.setattr(
        stage, "train", lambda *a, **k: real_train(*a, **{**k, "on_step": ctrl_c_in_step_5})
    )
    out = tmp_path / "pretrain"
    args = ("--max-steps", "6", "--save-every", "2")
    stopped = pretrain(words_dir, out, *args)
    assert stopped.exit_code == 130
    assert "interrupted; rerun the same command with --resume auto" in stopped.output
    monkeypatch.undo()
    again = pretrain(words_dir, out, *args)
    assert again.exit_code == 1
    assert "holds checkpoints of this same run, the latest after step 4: add --resume auto" in (
        " ".join(again.output.split())
    )
    assert (out / "checkpoints" / "step-00000004").is_dir()
    resumed = pretrain(words_dir, out, *args, "--resume", "auto")
    assert resumed.exit_code == 0, resumed.output
    assert [row["step"] for row in metrics(out) if row["split"] == "train"] == [6]
    assert pretrain(words_dir, out, *args, "--force").exit_code == 0  # starting over is asked for


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs in fp16 on a GPU")
def test_fp16_without_a_gpu_says_it_trains_in_float32(words_dir: Path, tmp_path: Path) -> None:
    # Accelerate takes fp16 on a CPU and trains in float32; the run only recorded "fp16". (In a
    # process of its own, as a user runs it: Accelerate keeps one precision per process.)
    args = ["--preset", "tiny", "--max-steps", "2", "--mixed-precision", "fp16"]
    result = subprocess.run(
        [sys.executable, "-m", "vidcap", "pretrain", str(words_dir), "--out", str(tmp_path), *args],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert (
        "warning: --mixed-precision fp16 needs a GPU; on the CPU this run trains in float32."
        in said
    )


def test_a_resume_that_is_no_checkpoint_is_refused_before_anything_is_written(
    words_dir: Path, tmp_path: Path
) -> None:
    # It was found only when training began: the vocabulary was written, and stayed.
    out = tmp_path / "pretrain"
    result = pretrain(words_dir, out, "--max-steps", "2", "--resume", str(tmp_path / "bogus"))
    assert result.exit_code == 1 and "is not a vidcap checkpoint" in result.output
    assert not out.exists()


@pytest.mark.slow
def test_a_fresh_run_over_another_runs_folder_builds_its_own_vocabulary(
    words_dir: Path, features_dir: Path, tmp_path: Path
) -> None:
    """Other words into the same --out: the earlier run's vocabulary (16 visual words) was loaded
    again beside the new 9-word codebook, exit 0, and finetuned from without a word."""
    from vidcap.stages.quantize import QuantizeConfig, run_quantize

    nine = tmp_path / "words9"
    assert run_quantize(features_dir, nine, QuantizeConfig(k=3, depth=2)).ok
    out = tmp_path / "pretrain"
    assert pretrain(words_dir, out, "--max-steps", "4").exit_code == 0
    assert JointVocabulary.load(out / "vocabulary").n_visual == 16
    again = pretrain(nine, out, "--max-steps", "4")
    assert again.exit_code == 0, again.output
    assert JointVocabulary.load(out / "vocabulary").n_visual == 9
    assert json.loads((out / "final" / "vidcap.json").read_text())["n_visual"] == 9
