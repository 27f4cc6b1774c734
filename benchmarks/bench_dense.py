"""What dense captioning costs from the video file, end to end, per second of video.

`vidcap caption VIDEO --model DENSE_MODEL` decodes the video, cuts it into clips, encodes and
quantizes them with the bundle's own settings (`Captioner.clips`), then generates the events (time
tokens and captions, `Captioner.events`). This times both parts on one untrimmed synthetic video
(3 minutes by default) and reports wall time / video duration (the issue's target: at most 0.1 on
2 CPU cores), its split (decode + features + words vs generation), for the bundle's beam width
and for greedy decoding, interleaved, median of the repeats.

Speed hardly depends on how well the model was trained, only on its size and how many tokens it
writes: a barely trained model that runs on to ``max_new_tokens`` is the slow case.

    python benchmarks/bench_dense.py --model DENSE_MODEL [--video V.mp4] [--seconds 180] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a --task dense bundle")
    parser.add_argument("--video", type=Path, help="default: one untrimmed synthetic video")
    parser.add_argument("--seconds", type=float, default=180.0, help="its length")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from vidcap.inference.captioner import Captioner
    from vidcap.synth.plan import SynthConfig
    from vidcap.synth.records import generate_corpus

    captioner = Captioner.load(args.model, task="dense")
    bundle_beams = int(captioner.info["generation"]["beams"])
    settings = {f"beams {bundle_beams} (bundle)": bundle_beams, "beams 1": 1}
    times: dict[str, dict[str, list[float]]] = {
        name: {"read": [], "generate": [], "events": []} for name in settings
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        video = args.video
        if video is None:
            span = (args.seconds, args.seconds)
            config = SynthConfig(
                videos=1, seed=4, workers=1, untrimmed=1.0, untrimmed_duration=span
            )
            generate_corpus(Path(tmp_name), config)
            video = next(Path(tmp_name).rglob("*.mp4"))
        duration = None
        for _ in range(args.repeats):
            for name, beams in settings.items():  # interleaved: load drifts hit both alike
                started = time.perf_counter()
                clips = captioner.clips(video)
                read = time.perf_counter()
                with torch.inference_mode():
                    events = captioner.events([clips], beams=beams)[0]
                done = time.perf_counter()
                duration = float(clips.end_s[-1])
                times[name]["read"].append(read - started)
                times[name]["generate"].append(done - read)
                times[name]["events"].append(len(events))
    print(
        f"{video.name}: {duration:.0f} s, {len(clips.words)} clips; model {args.model} "
        f"({captioner.info.get('preset')}, max_new_tokens "
        f"{captioner.info['generation']['max_new_tokens']}); torch threads {torch.get_num_threads()}"
    )
    for name, t in times.items():
        read, gen = statistics.median(t["read"]), statistics.median(t["generate"])
        print(
            f"{name:>18}: {read + gen:6.1f} s = {(read + gen) / duration:.3f} x duration "
            f"(decode+features+words {read:.1f} s, generation {gen:.1f} s, "
            f"{statistics.median(t['events']):.0f} events; median of {args.repeats})"
        )


if __name__ == "__main__":
    main()
