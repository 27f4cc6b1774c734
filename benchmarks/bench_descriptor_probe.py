"""How much of the synthetic world the built-in clip descriptor sees, and how fast it runs.

Generates a synthetic corpus (``vidcap.synth``), decodes every video at 20 fps (frames
picked by timestamp) with the short side resized to 128 px (``--size``), cuts every event segment
into 1.5 s clips (30 frames), encodes each clip with
:class:`vidcap.encoders.descriptor.ClipDescriptor`, and probes for the acting object's colour,
shape and action: probes are trained on the train split and scored on the val + test splits, per
segment (its clip vectors averaged) and per clip (each clip labelled with its event), for
single-object and two-object videos separately. Probes:

- ``logreg``: logistic regression on standardised features, all dimensions;
- ``block``: the same on the block made for the task (colour: colour; shape: shape; action: motion
  + flow), which shows what a probe that is not distracted by the other blocks reads;
- ``5nn raw``: 5 nearest neighbours on the descriptor as it is (euclidean, no standardising),
  i.e. what k-means and nearest-neighbour lookups downstream see. A neighbour must then match on
  colour, shape and action at once, which a few hundred training segments of 400+ combinations
  cannot always offer; ``5nn blk`` is the same on the task's block alone.

Chance is 1 / classes; ``major`` is always answering the train split's most common class.
Throughput is timed on one process: wall-clock and CPU time (the CPU figure is what an idle core
would give; wall-clock also counts waiting for a busy machine).

    python benchmarks/bench_descriptor_probe.py [--videos 300] [--seed 0] [--noise] [--corpus DIR]
        [--size 128] [--downscale pyramid|area]

``--corpus`` reuses an existing synthetic corpus folder instead of generating one.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidcap.encoders.descriptor import DOWNSCALE_METHODS, ClipDescriptor, DescriptorConfig
from vidcap.synth.plan import SynthConfig
from vidcap.synth.records import generate_corpus
from vidcap.video.resample import output_geometry, select_frames

FPS = 20.0
CLIP_FRAMES = 30
SIZE = 128
TASKS = ("colour", "shape", "action")
TASK_BLOCKS = {"colour": ("colour",), "shape": ("shape",), "action": ("motion", "flow")}
GOALS = {"colour": 0.9, "shape": 0.85, "action": 0.9}


@dataclass
class Segment:
    """One event: its video, split, number of objects, the actor's labels and its clips."""

    video: str
    split: str
    objects: int
    labels: dict[str, str]
    clips: list[np.ndarray]


def decode(path: Path, fps: float = FPS, size: int = SIZE) -> np.ndarray:
    """All frames of a video at ``fps`` (by timestamp), RGB, short side ``size``."""
    cap = cv2.VideoCapture(str(path))
    source_fps = cap.get(cv2.CAP_PROP_FPS) or fps
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise RuntimeError(f"no frames in {path}")
    times = np.arange(len(frames)) / source_fps
    chosen = select_frames(times, 1.0 / source_fps, fps, source_fps)
    h, w = frames[0].shape[:2]
    geo = output_geometry(w, h, size, crop=False)
    return np.stack(
        [
            cv2.cvtColor(
                cv2.resize(frames[i], geo.resize, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
            )
            for i in chosen
        ]
    )


def load_segments(corpus_dir: Path, size: int = SIZE) -> list[Segment]:
    """Every event of the corpus, cut into 30-frame clips (a remainder under 30 frames is dropped,
    except that a segment shorter than one clip keeps what it has if it is at least 15 frames)."""
    segments = []
    for line in (corpus_dir / "corpus.jsonl").read_text().splitlines():
        rec = json.loads(line)
        frames = decode(corpus_dir / rec["video"], size=size)
        for ev in rec["meta"]["events"]:
            # Output frame k shows the source frame on screen at k / FPS: the first frame of an
            # event is the first k at or after its start (times are rounded to milliseconds).
            a = math.ceil(ev["start"] * FPS - 0.01)
            b = min(math.ceil(ev["end"] * FPS - 0.01), len(frames))
            clips = []
            for s in range(a, b, CLIP_FRAMES):
                clip = frames[s : min(s + CLIP_FRAMES, b)]
                if len(clip) == CLIP_FRAMES or (len(clip) >= CLIP_FRAMES // 2 and not clips):
                    clips.append(clip)
            if clips:
                labels = {"colour": ev["colour"], "shape": ev["shape"], "action": ev["action"]}
                segments.append(
                    Segment(rec["id"], rec["split"], len(rec["meta"]["objects"]), labels, clips)
                )
    return segments


def probe(
    train_x: np.ndarray,
    train_y: list[str],
    test_x: np.ndarray,
    test_y: list[str],
    block: np.ndarray,
) -> dict[str, float]:
    """Accuracies of the three probes (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    truth = np.asarray(test_y)

    def logreg(x_train: np.ndarray, x_test: np.ndarray) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        model.fit(x_train, train_y)
        return float((model.predict(x_test) == truth).mean())

    def knn(x_train: np.ndarray, x_test: np.ndarray) -> float:
        model = KNeighborsClassifier(5).fit(x_train, train_y)
        return float((model.predict(x_test) == truth).mean())

    return {
        "logreg": logreg(train_x, test_x),
        "block": logreg(train_x[:, block], test_x[:, block]),
        "knn": knn(train_x, test_x),
        "knn_block": knn(train_x[:, block], test_x[:, block]),
    }


def chance(train_y: list[str], test_y: list[str]) -> tuple[float, float]:
    """(1 / number of classes, accuracy of always answering the train split's majority class)."""
    classes, counts = np.unique(train_y, return_counts=True)
    majority = classes[int(np.argmax(counts))]
    return 1.0 / len(set(train_y) | set(test_y)), float(np.mean(np.asarray(test_y) == majority))


def run(corpus_dir: Path, config: DescriptorConfig, size: int = SIZE) -> None:
    t0 = time.perf_counter()
    segments = load_segments(corpus_dir, size)
    print(f"corpus: {corpus_dir}; decoded and cut in {time.perf_counter() - t0:.1f} s")
    evaluate(segments, config)


def evaluate(segments: list[Segment], config: DescriptorConfig) -> None:
    """Encode every clip, time it, and print the probe tables."""
    desc = ClipDescriptor(config)
    clips = [c for s in segments for c in s.clips]
    desc.encode_clip(clips[0])  # warm-up (lazy OpenCV initialisation)
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = [desc.encode_clip(c) for c in clips]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    it = iter(vectors)
    seg_vecs = [[next(it) for _ in s.clips] for s in segments]

    n_single = sum(s.objects == 1 for s in segments)
    print(f"segments: {len(segments)} ({n_single} single-object), clips: {len(clips)}")
    seconds = sum(len(c) for c in clips) / FPS
    h, w = clips[0].shape[1:3]
    print(
        f"descriptor dim {desc.dim}; frames {h}x{w}, work_side {config.work_side}, "
        f"flow {config.flow}, OpenCV threads {cv2.getNumThreads()}"
    )
    for name, spent in (("wall", wall), ("cpu", cpu)):
        print(
            f"  encode ({name:4s}): {len(clips) / spent:6.1f} clips/s, "
            f"{seconds / spent:6.1f} s of video per s, {1000 * spent / len(clips):5.1f} ms/clip"
        )
    if not np.isfinite(np.asarray(vectors)).all():
        print("WARNING: non-finite descriptor values")
    blocks = desc.blocks

    def task_block(task: str) -> np.ndarray:
        return np.concatenate(
            [np.arange(blocks[b].start, blocks[b].stop) for b in TASK_BLOCKS[task]]
        )

    def table(objects: int) -> None:
        train = [i for i, s in enumerate(segments) if s.split == "train" and s.objects == objects]
        test = [i for i, s in enumerate(segments) if s.split != "train" and s.objects == objects]
        if not train or not test:
            return
        print(
            f"\n{objects}-object videos: {len(train)} train / {len(test)} val+test segments "
            "(labels: the acting object)"
        )
        header = (
            f"{'task':7s} {'chance':>6s} {'major':>6s} | segment: {'logreg':>6s} {'block':>6s} "
            f"{'5nn raw':>7s} {'5nn blk':>7s} | clip: {'logreg':>6s} {'block':>6s} "
            f"{'5nn raw':>7s} {'5nn blk':>7s} | goal"
        )
        print(header)
        print("-" * len(header))
        for task in TASKS:
            cols = task_block(task)
            y_train = [segments[i].labels[task] for i in train]
            y_test = [segments[i].labels[task] for i in test]
            seg = probe(
                np.stack([np.mean(seg_vecs[i], axis=0) for i in train]),
                y_train,
                np.stack([np.mean(seg_vecs[i], axis=0) for i in test]),
                y_test,
                cols,
            )
            clip = probe(
                np.stack([v for i in train for v in seg_vecs[i]]),
                [segments[i].labels[task] for i in train for _ in seg_vecs[i]],
                np.stack([v for i in test for v in seg_vecs[i]]),
                [segments[i].labels[task] for i in test for _ in seg_vecs[i]],
                cols,
            )
            uniform, major = chance(y_train, y_test)
            goal = f">= {GOALS[task]}" if objects == 1 else ""
            print(
                f"{task:7s} {uniform:6.3f} {major:6.3f} |          {seg['logreg']:6.3f} "
                f"{seg['block']:6.3f} {seg['knn']:7.3f} {seg['knn_block']:7.3f} |       "
                f"{clip['logreg']:6.3f} {clip['block']:6.3f} {clip['knn']:7.3f} "
                f"{clip['knn_block']:7.3f} | {goal}"
            )

    table(1)
    table(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", action="store_true", help="camera-like noise and jitter")
    parser.add_argument("--corpus", type=Path, default=None, help="reuse this synthetic corpus")
    parser.add_argument("--work-side", type=int, default=DescriptorConfig().work_side)
    parser.add_argument("--no-flow", action="store_true", help="turn the optical-flow block off")
    parser.add_argument("--size", type=int, default=SIZE, help="short side of the decoded frames")
    parser.add_argument(
        "--downscale", choices=DOWNSCALE_METHODS, default=DescriptorConfig().downscale,
        help="how frames over twice the working size are brought to it",
    )  # fmt: skip
    args = parser.parse_args()
    config = DescriptorConfig(
        work_side=args.work_side, flow=not args.no_flow, downscale=args.downscale
    )
    if args.corpus is not None:
        run(args.corpus, config, args.size)
        return
    with tempfile.TemporaryDirectory(prefix="vidcap-desc-") as tmp:
        start = time.perf_counter()
        synth = SynthConfig(videos=args.videos, seed=args.seed, noise=args.noise, workers=2)
        generate_corpus(Path(tmp), synth)
        print(
            f"generated {args.videos} videos (seed {args.seed}, noise {args.noise}) in "
            f"{time.perf_counter() - start:.1f} s"
        )
        run(Path(tmp), config, args.size)


if __name__ == "__main__":
    main()
