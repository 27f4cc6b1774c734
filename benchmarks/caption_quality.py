"""Caption quality of the routes side by side, on the demo's synthetic corpus (docs/results.md).

Builds the demo's data (synth → extract → encode → quantize), pretrains BART and VideoBERT
(base preset), finetunes every route, evaluates each on the held-out test split and prints a
Markdown table: CIDEr, BLEU-4, METEOR, ROUGE-L, CIDEr / ceiling and fact accuracy, with the
nearest-neighbour floor and the reference ceiling.

    python benchmarks/caption_quality.py [--out DIR] [--videos 150] [--pretrain-steps 300]
        [--finetune-steps 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vidcap.cli.demo import DEMO_DEPTH, DEMO_FRAME_SIZE, DEMO_K
from vidcap.evaluation.evaluate import evaluate_bundle
from vidcap.stages.encode import EncodeConfig, run_encode
from vidcap.stages.extract import ExtractConfig, run_extract
from vidcap.stages.finetune import FinetuneConfig, run_finetune
from vidcap.stages.inputs import resolve_inputs
from vidcap.stages.pretrain import PretrainConfig, run_pretrain
from vidcap.stages.quantize import QuantizeConfig, run_quantize
from vidcap.synth import facts as synth_facts
from vidcap.synth.plan import SynthConfig
from vidcap.synth.records import generate_corpus

ROUTES = {
    "BART pretrain → finetune": ("pretrain-bart", {}),
    "BART, --from-scratch": ("pretrain-bart", {"from_scratch": True}),
    "VideoBERT pretrain → finetune": ("pretrain-videobert", {}),
    "VideoBERT, --from-scratch": ("pretrain-videobert", {"from_scratch": True}),
    "BART --with-features": ("pretrain-bart", {"with_features": True}),
    "BART --with-features, --from-scratch": (
        "pretrain-bart",
        {"with_features": True, "from_scratch": True},
    ),
    "VideoBERT --with-features": ("pretrain-videobert", {"with_features": True}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("caption-quality"))
    parser.add_argument("--videos", type=int, default=150)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--meteor", action="store_true", help="Also METEOR (needs Java; slow).")
    args = parser.parse_args()
    out: Path = args.out

    generate_corpus(out / "synth", SynthConfig(videos=args.videos, seed=0, workers=2))
    run_extract(
        resolve_inputs([str(out / "synth" / "corpus.jsonl")]),
        out / "frames",
        ExtractConfig(size=DEMO_FRAME_SIZE, workers=2),
    )
    run_encode(out / "frames", out / "features", EncodeConfig())
    run_quantize(out / "features", out / "words", QuantizeConfig(k=DEMO_K, depth=DEMO_DEPTH))
    for arch in ("bart", "videobert"):
        run_pretrain(
            out / "words",
            out / f"pretrain-{arch}",
            PretrainConfig(arch=arch, preset="base", max_steps=args.pretrain_steps),
        )

    rows = []
    for index, (name, (source, options)) in enumerate(ROUTES.items()):
        started = time.perf_counter()
        model = out / f"model-{index}"
        run_finetune(out / source, model, FinetuneConfig(max_steps=args.finetune_steps, **options))
        report = evaluate_bundle(model, meteor=args.meteor, facts=synth_facts).to_json()
        rows.append((name, report, time.perf_counter() - started))
        (model / "evaluation.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"{name}: CIDEr {report['scores']['captioner']['CIDEr']:.3f}", flush=True)

    def cells(scores: dict, facts: dict | None, ceiling: float) -> str:
        meteor = "-" if scores["METEOR"] is None else f"{scores['METEOR']:.3f}"
        fact = f"{facts['all']:.2f}" if facts else "-"
        return (
            f"{scores['CIDEr']:.3f} | {scores['BLEU-4']:.3f} | {meteor} | {scores['ROUGE-L']:.3f}"
            f" | {scores['CIDEr'] / ceiling:.2f} | {fact}"
        )

    first = rows[0][1]
    ceiling = first["scores"]["reference_ceiling"]["CIDEr"]
    print(
        f"\n{args.videos} synthetic videos, test split: {first['segments']} segments; "
        f"pretrain {args.pretrain_steps} steps, finetune {args.finetune_steps} steps, base preset\n"
    )
    print(
        "| route | CIDEr | BLEU-4 | METEOR | ROUGE-L | CIDEr / ceiling | facts all | finetune + evaluate, min |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, report, seconds in rows:
        captioner = report["scores"]["captioner"]
        facts = report["fact_accuracy"].get("captioner")
        print(f"| {name} | {cells(captioner, facts, ceiling)} | {seconds / 60:.1f} |")
    nn = first["scores"]["nearest_neighbour"]
    print(
        f"| nearest-neighbour floor | {cells(nn, first['fact_accuracy'].get('nearest_neighbour'), ceiling)} | |"
    )
    print(f"| reference ceiling | {cells(first['scores']['reference_ceiling'], None, ceiling)} | |")


if __name__ == "__main__":
    main()
