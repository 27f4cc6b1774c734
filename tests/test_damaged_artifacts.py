"""Every file a user can damage is checked where it is read: a stage output (frames, features,
words, codebook), a model folder (a pretrain's final/, a finetuned bundle) or a training
checkpoint that is missing, cut in half or overwritten makes the command that reads it fail with
one sentence naming the file and what to do, never with "a bug in vidcap"."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidcap.artifacts import read_upstream
from vidcap.artifacts.damage import reading
from vidcap.cli import app
from vidcap.corpus import read_corpus
from vidcap.errors import ResourceError, VidcapError

runner = CliRunner()

DAMAGES = ("missing", "truncated", "garbage")


def damage(path: Path, how: str) -> None:
    """Delete ``path``, cut it to half its length, or overwrite it with bytes of no format."""
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"\x00\xffnot what vidcap wrote\n" * 8)


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def one_sentence(result, path: Path, remedy: str) -> str:
    """The command failed (exit 1) with one ``error:`` line: a sentence naming ``path`` and
    saying ``remedy``, not a bug report. Returns the line."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert str(path) in line and remedy in line, line
    assert line.endswith(".") and ". " not in line, line  # one sentence
    assert "bug in vidcap" not in result.output and "Traceback" not in result.output
    return line


def item_path(folder: Path, stage: str, output: str, index: int = 1) -> tuple[str, Path]:
    """The id and the ``output`` file of the ``index``-th item (by id) of a stage folder."""
    _, items = read_upstream(folder, stage)
    item = items[sorted(items)[index]]
    return item.id, folder / item.outputs[output]


# --------------------------------------------------------------------------------------------------
# The helper


def test_reading_leaves_machine_faults_and_bugs_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    with pytest.raises(ResourceError, match="input/output error"), reading(path, "do this"):
        raise OSError(errno.EIO, "Input/output error", str(path))
    with pytest.raises(RuntimeError, match="a bug"), reading(path, "do this"):
        raise RuntimeError("a bug")
    cut = r"x\.json is damaged \(not valid JSON at line 1: .*\); do this\.$"
    with pytest.raises(VidcapError, match=cut), reading(path, "do this"):
        json.loads("{")


# --------------------------------------------------------------------------------------------------
# Stage outputs (fast: the session's tiny stage folders)


@pytest.mark.parametrize("how", DAMAGES)
def test_encode_fails_the_video_whose_frames_are_damaged(
    frames_dir: Path, tmp_path: Path, how: str
) -> None:
    frames = tmp_path / "frames"
    shutil.copytree(frames_dir, frames)
    video_id, npy = item_path(frames, "extract", "frames")
    damage(npy, how)
    result = invoke(
        "encode", frames, "--out", tmp_path / "features", "--loader-workers", 0, "--json"
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["ok"] == 7 and [f["id"] for f in report["failures"]] == [video_id]
    error = report["failures"][0]["error"]
    assert str(npy) in error and "rerun `vidcap extract --force`" in error, error
    assert error.endswith(".") and ". " not in error, error  # one sentence
    assert "bug in vidcap" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("how", DAMAGES)
def test_quantize_refuses_damaged_features(features_dir: Path, tmp_path: Path, how: str) -> None:
    features = tmp_path / "features"
    shutil.copytree(features_dir, features)
    _, path = item_path(features, "encode", "features")
    damage(path, how)
    result = invoke("quantize", features, "--out", tmp_path / "words", "--k", 4, "--depth", 2)
    one_sentence(result, path, "rerun `vidcap encode --force`")


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("what", ["words", "codebook"])
def test_pretrain_refuses_damaged_words_or_codebook(
    words_dir: Path, tmp_path: Path, what: str, how: str
) -> None:
    words = tmp_path / "words"
    shutil.copytree(words_dir, words)
    path = (
        item_path(words, "quantize", "words")[1]
        if what == "words"
        else words / "codebook.safetensors"
    )
    damage(path, how)
    result = invoke(
        "pretrain", words, "--out", tmp_path / "pt", "--preset", "tiny", "--max-steps", 1
    )
    one_sentence(result, path, "rerun `vidcap quantize --force`")


# --------------------------------------------------------------------------------------------------
# Model folders and checkpoints (slow: a tiny pretrain and finetune, made once)

TRAIN = ("--preset", "tiny", "--eval-every", 1000)
PRETRAIN = ("--max-steps", 2, "--save-every", 1, *TRAIN)


@pytest.fixture(scope="module")
def pretrain(words_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny VideoBERT pretrain with a checkpoint at each of its 2 steps (read-only)."""
    out = tmp_path_factory.mktemp("damaged") / "pretrain"
    result = invoke("pretrain", words_dir, "--out", out, *PRETRAIN)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def bundle(pretrain: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A caption bundle finetuned from :func:`pretrain`, reading clip features (read-only)."""
    out = tmp_path_factory.mktemp("damaged") / "bundle"
    result = invoke(
        "finetune",
        pretrain,
        "--out",
        out,
        "--with-features",
        "--max-steps",
        1,
        "--beams",
        1,
        *TRAIN,
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def video(synth_corpus: Path) -> Path:
    return synth_corpus.parent / read_corpus(synth_corpus)[0].video


MODEL_FILES = [
    "model.safetensors",
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vidcap_vocabulary.json",
    "vidcap.json",
]


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", MODEL_FILES)
def test_finetune_refuses_a_damaged_pretrain(
    pretrain: Path, tmp_path: Path, name: str, how: str
) -> None:
    copy = tmp_path / "pretrain"
    shutil.copytree(pretrain, copy)
    damage(copy / "final" / name, how)
    result = invoke("finetune", copy, "--out", tmp_path / "ft", "--max-steps", 1, *TRAIN)
    line = one_sentence(result, copy / "final" / name, "rerun `vidcap pretrain --force`")
    assert "copy the model folder again whole" in line


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize(
    "name", [*MODEL_FILES, "feature_projection.safetensors", "codebook.safetensors"]
)
def test_caption_refuses_a_damaged_bundle(
    bundle: Path, video: Path, tmp_path: Path, name: str, how: str
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    damage(copy / name, how)
    result = invoke("caption", video, "-m", copy, "--device", "cpu")
    line = one_sentence(result, copy / name, "rerun `vidcap finetune --force`")
    assert "copy the model folder again whole" in line


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_classify_refuses_a_damaged_pretrain(
    pretrain: Path, video: Path, tmp_path: Path, name: str, how: str
) -> None:
    copy = tmp_path / "pretrain"
    shutil.copytree(pretrain / "final", copy)
    damage(copy / name, how)
    result = invoke("classify", video, "-m", copy, "-t", "a [MASK] circle", "--device", "cpu")
    one_sentence(result, copy / name, "rerun `vidcap pretrain --force`")


LAST = "checkpoints/step-00000002"


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize(
    "name",
    [
        f"{LAST}/model.safetensors",
        f"{LAST}/optimizer.bin",
        f"{LAST}/scheduler.bin",
        f"{LAST}/trainer_state.json",
        "vocabulary/tokenizer.json",
    ],
)
def test_resume_refuses_a_damaged_checkpoint(
    pretrain: Path, words_dir: Path, tmp_path: Path, name: str, how: str
) -> None:
    out = tmp_path / "pretrain"
    shutil.copytree(pretrain, out)
    (out / "manifest.json").unlink()  # as if killed after its last checkpoint
    shutil.rmtree(out / "final")
    damage(out / name, how)
    result = invoke("pretrain", words_dir, "--out", out, *PRETRAIN, "--resume", "auto")
    if name.endswith("trainer_state.json") and how == "missing":
        # A checkpoint without it is one whose saving was cut short: the one before is resumed.
        assert result.exit_code == 0, result.output
        return
    if name.startswith("vocabulary/"):
        one_sentence(result, out / name, "with --force to build it again")
    else:
        one_sentence(
            result, out / name, f"delete {out / LAST} to resume from the checkpoint before it"
        )


FINETUNE = ("--max-steps", 2, "--save-every", 1, "--beams", 1, *TRAIN)


@pytest.fixture(scope="module")
def finetune_run(pretrain: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finetune with a checkpoint at each of its 2 steps (read-only)."""
    out = tmp_path_factory.mktemp("damaged") / "finetune"
    result = invoke("finetune", pretrain, "--out", out, *FINETUNE)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.bin"])
def test_finetune_resume_refuses_a_damaged_checkpoint(
    pretrain: Path, finetune_run: Path, tmp_path: Path, name: str, how: str
) -> None:
    out = tmp_path / "finetune"
    shutil.copytree(finetune_run, out)
    for made_last in ("manifest.json", "vidcap.json"):  # as if killed after its last checkpoint
        (out / made_last).unlink()
    damage(out / LAST / name, how)
    result = invoke("finetune", pretrain, "--out", out, *FINETUNE, "--resume", "auto")
    one_sentence(
        result, out / LAST / name, f"delete {out / LAST} to resume from the checkpoint before it"
    )


def test_a_damaged_manifest_of_the_folder_finetune_starts_from_names_its_writers(
    tmp_path: Path,
) -> None:
    # finetune read its source as a finetune folder and told the user to rerun `vidcap finetune
    # --force` into a pretrain folder (which would have thrown the pretrain away).
    from vidcap.stages.finetune import FinetuneConfig, resolve_source

    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(VidcapError, match=r"rerun the `vidcap pretrain` \(or finetune, or quant"):
        resolve_source(tmp_path, FinetuneConfig())


@pytest.mark.parametrize("damage", ["a line overwritten", "the end cut"])
def test_an_upstream_index_that_lost_lines_is_damaged(
    features_dir: Path, tmp_path: Path, damage: str
) -> None:
    # A bad line in the middle of an index, or a truncated one, was skipped as it was read: its
    # videos dropped out of the words (11 of 12, 4 of 12) with exit 0.
    from vidcap.artifacts import read_upstream

    copy = tmp_path / "features"
    shutil.copytree(features_dir, copy)
    index = copy / "index.jsonl"
    lines = index.read_text().splitlines(keepends=True)
    if damage == "a line overwritten":
        lines[2] = "{not json\n"
        index.write_text("".join(lines))
    else:
        index.write_text("".join(lines)[: len("".join(lines)) // 2])
    with pytest.raises(VidcapError, match=r"index.jsonl is damaged \(it gives \d+ finished items "):
        read_upstream(copy, "encode")
