"""``vidcap demo``: the whole pipeline on a synthetic corpus, on a laptop CPU, in minutes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from vidcap.cli.console import progress_bar, stderr
from vidcap.errors import VidcapError

# Chosen by measurement on the synthetic corpus (docs/results.md): 8 x 8 = 64 visual words, a BART
# pretrained briefly, finetuned with the continuous clip features beside the words.
DEMO_K, DEMO_DEPTH = 8, 2
DEMO_FRAME_SIZE = 96


def _stage(name: str, run: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    stderr.print(f"[bold]{name}[/] …", highlight=False)
    result = run()
    if getattr(result, "failures", None):
        raise VidcapError(f"{name} failed for {len(result.failures)} items; see the log above.")
    stderr.print(f"  done in {time.perf_counter() - started:.1f} s", highlight=False)
    return result


def _training_bar(label: str) -> tuple[Any, Callable[[Any], None]]:
    progress = progress_bar()
    task = progress.add_task(label, total=None)

    def on_step(report: Any) -> None:
        progress.update(task, total=report.max_steps, completed=report.step)

    return progress, on_step


def demo_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for every stage's output.")
    ] = Path("vidcap-demo"),
    videos: Annotated[
        int, typer.Option("--videos", "-n", min=20, help="Synthetic videos to make.")
    ] = 150,
    pretrain_steps: Annotated[
        int, typer.Option("--pretrain-steps", min=1, help="BART pretraining steps.")
    ] = 300,
    finetune_steps: Annotated[
        int, typer.Option("--finetune-steps", min=1, help="Captioning steps.")
    ] = 1000,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the corpus and the training.")
    ] = 0,
) -> None:
    """Run the whole pipeline on a synthetic corpus, from videos to captions, on a laptop CPU.

    Synthesises a corpus, then extract → encode → quantize → pretrain → finetune → evaluate →
    caption a held-out video, with the base presets (about 5 to 10 minutes on 2 CPU cores).
    Prints the metrics table and the held-out video's captions, and where the bundle and a
    storyboard PNG were written. Each stage's folder is kept, so the run can be inspected with the
    individual commands afterwards.
    """
    from vidcap.bundle import Bundle
    from vidcap.card import record_evaluation
    from vidcap.cli.evaluate import print_report
    from vidcap.corpus import read_corpus
    from vidcap.evaluation.evaluate import evaluate_bundle
    from vidcap.inference.captioner import Captioner
    from vidcap.output.formats import render
    from vidcap.output.storyboard import render_storyboard
    from vidcap.stages.encode import EncodeConfig, run_encode
    from vidcap.stages.extract import ExtractConfig, run_extract
    from vidcap.stages.finetune import FinetuneConfig, run_finetune
    from vidcap.stages.inputs import resolve_inputs
    from vidcap.stages.pretrain import PretrainConfig, run_pretrain
    from vidcap.stages.quantize import QuantizeConfig, run_quantize
    from vidcap.synth import facts as synth_facts
    from vidcap.synth.plan import SynthConfig
    from vidcap.synth.records import generate_corpus

    started = time.perf_counter()
    corpus = out / "synth" / "corpus.jsonl"
    _stage(
        f"synth: {videos} videos",
        lambda: generate_corpus(out / "synth", SynthConfig(videos=videos, seed=seed, workers=2)),
    )
    _stage(
        "extract",
        lambda: run_extract(
            resolve_inputs([str(corpus)]),
            out / "frames",
            ExtractConfig(size=DEMO_FRAME_SIZE, workers=2),
        ),
    )
    _stage("encode", lambda: run_encode(out / "frames", out / "features", EncodeConfig()))
    _stage(
        "quantize",
        lambda: run_quantize(
            out / "features", out / "words", QuantizeConfig(k=DEMO_K, depth=DEMO_DEPTH, seed=seed)
        ),
    )
    progress, on_step = _training_bar("pretraining BART")
    with progress:
        _stage(
            "pretrain",
            lambda: run_pretrain(
                out / "words",
                out / "pretrain",
                PretrainConfig(arch="bart", preset="base", max_steps=pretrain_steps, seed=seed),
                on_step=on_step,
            ),
        )
    progress, on_step = _training_bar("finetuning")
    with progress:
        _stage(
            "finetune",
            lambda: run_finetune(
                out / "pretrain",
                out / "model",
                FinetuneConfig(with_features=True, max_steps=finetune_steps, seed=seed),
                on_step=on_step,
            ),
        )
    report = _stage("evaluate", lambda: evaluate_bundle(out / "model", facts=synth_facts).to_json())
    (out / "evaluation.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    bundle = Bundle.load(out / "model", "finetune")
    record_evaluation(bundle.folder, bundle.info, report, corpus)  # the scores on its model card
    print_report(report)

    # The held-out video with the most events, so that dense captioning has changes to find.
    held_out = max(
        (r for r in read_corpus(corpus) if r.split == "test"), key=lambda r: len(r.segments)
    )
    result = Captioner.load(out / "model").caption(held_out.video, dense=True, thumbnails=True)
    storyboard = render_storyboard(
        result.thumbnails,
        result.captions,
        out / "storyboard.png",
        title=f"{held_out.video.name} (held out)",
    )
    stderr.print(f"\n[bold]captions of the held-out video {escape(str(held_out.video))}[/]")
    sys.stdout.write(render([result], "text"))
    sys.stdout.flush()
    stderr.print("reference: " + " / ".join(escape(s.captions[0]) for s in held_out.segments))
    stderr.print(
        f"\nbundle: {escape(str(out / 'model'))}   storyboard: {escape(str(storyboard))}   "
        f"metrics: {escape(str(out / 'evaluation.json'))}   "
        f"model card: {escape(str(out / 'model' / 'README.md'))}\n"
        f"total {time.perf_counter() - started:.0f} s. Next: "
        f"vidcap caption YOUR_VIDEO.mp4 --model {escape(str(out / 'model'))} --dense",
        highlight=False,
    )
