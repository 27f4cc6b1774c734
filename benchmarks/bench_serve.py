"""Load on loopback: `vidcap serve` under concurrent requests, a fifth of them broken, beside
`vidcap caption` run once per video (the model load a service saves).

1. ``vidcap caption VIDEO --format json`` once per video, each in its own process, timed: the
   captions every good request must get back, and the per-call cost without a server.
2. ``vidcap serve`` in a subprocess on a free port; ``--requests`` requests, ``--concurrency`` at
   once, every fifth one broken (random bytes, an empty file, a text file named .mp4, the file in a
   wrong field, a file over ``--max-upload-mb``), cycled.
3. Checks: every good answer has the same captions as `vidcap caption`; every broken one is a 4xx;
   no 5xx; the server's resident memory after the run is within 10% of the figure after the first
   10 requests. Prints p50 / p95 latency, throughput, and the figures as JSON.

    python benchmarks/bench_serve.py --model runs/model --videos DIR [--requests 100] [--concurrency 8]

``--videos`` is a folder of videos the model can decode (e.g. a `vidcap synth` corpus's videos/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

LIMIT_MB = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cli_captions(model: str, videos: list[Path]) -> tuple[dict[str, list], list[float]]:
    """`vidcap caption` per video: {name: captions}, and each call's wall time."""
    expected, times = {}, []
    for video in videos:
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "vidcap", "caption", str(video), "-m", model, "-f", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
        expected[video.name] = json.loads(out.stdout)[0]["captions"]
    return expected, times


def broken_uploads(folder: Path) -> list[tuple[str, dict]]:
    """(kind, httpx files) for each kind of broken request."""
    (folder / "noise.mp4").write_bytes(os.urandom(100_000))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("not a video\n" * 100)
    (folder / "big.mp4").write_bytes(os.urandom(LIMIT_MB * 2**20 + 1))
    files = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
    return [
        ("random bytes", {"video": ("noise.mp4", files["noise.mp4"])}),
        ("empty file", {"video": ("empty.mp4", files["empty.mp4"])}),
        ("text named .mp4", {"video": ("notes.mp4", files["notes.mp4"])}),
        ("wrong field", {"file": ("noise.mp4", files["noise.mp4"])}),
        ("over the limit", {"video": ("big.mp4", files["big.mp4"])}),
    ]


async def load(url: str, plan: list[tuple[str, dict]], concurrency: int, pid: int) -> dict:
    """Send the planned requests, ``concurrency`` at once; the first 10 before the rest, to read
    the memory after them."""
    gate = asyncio.Semaphore(concurrency)
    results: list[tuple[str, int, float, dict | None]] = [("", 0, 0.0, None)] * len(plan)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        kind, files = plan[i]
        async with gate:
            start = time.perf_counter()
            response = await client.post(f"{url}/v1/caption", files=files)
            took = time.perf_counter() - start
        body = (
            response.json() if response.headers.get("content-type") == "application/json" else None
        )
        results[i] = (kind, response.status_code, took, body)

    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(one(client, i) for i in range(10)))
        rss_10 = rss_mb(pid)
        start = time.perf_counter()
        await asyncio.gather(*(one(client, i) for i in range(10, len(plan))))
        wall_rest = time.perf_counter() - start
        rss_end = rss_mb(pid)
    return {"results": results, "rss_10": rss_10, "rss_end": rss_end, "wall_rest": wall_rest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--videos", required=True, type=Path)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    videos = sorted(p for p in args.videos.iterdir() if p.suffix in (".mp4", ".webm", ".mkv"))

    expected, cli_times = cli_captions(args.model, videos)
    print(f"vidcap caption, one process per video: {statistics.median(cli_times):.2f} s median")

    port, scratch = free_port(), Path(tempfile.mkdtemp())
    start = time.perf_counter()
    limits = ["--max-upload-mb", str(LIMIT_MB), "--queue", str(args.requests)]
    server = subprocess.Popen(
        [sys.executable, "-m", "vidcap", "serve", "-m", args.model, "--port", str(port), *limits],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        startup = time.perf_counter() - start
        broken = broken_uploads(scratch)
        good = [(v.name, {"video": (v.name, v.read_bytes())}) for v in videos]
        plan = [
            broken[(i // 5) % len(broken)] if i % 5 == 4 else good[i % len(good)]
            for i in range(args.requests)
        ]
        run = asyncio.run(load(url, plan, args.concurrency, server.pid))
    finally:
        server.terminate()
        server.wait(30)

    results = run["results"]
    good_times = [t for k, s, t, _ in results if k in expected]
    wrong = [
        k
        for k, s, _, body in results
        if k in expected and (s != 200 or body["captions"] != expected[k])
    ]
    not_4xx = [(k, s) for k, s, _, _ in results if k not in expected and not 400 <= s < 500]
    server_errors = [(k, s) for k, s, _, _ in results if s >= 500]
    good_times.sort()
    rest = len(results) - 10
    figures = {
        "requests": len(results),
        "concurrency": args.concurrency,
        "broken": sum(k not in expected for k, *_ in results),
        "good_answers_equal_to_vidcap_caption": len(good_times) - len(wrong),
        "good_answers": len(good_times),
        "broken_not_4xx": not_4xx,
        "5xx": server_errors,
        "latency_good_p50_s": round(statistics.median(good_times), 3),
        "latency_good_p95_s": round(good_times[int(0.95 * (len(good_times) - 1))], 3),
        "throughput_req_per_s": round(rest / run["wall_rest"], 2),
        "rss_after_10_mb": round(run["rss_10"], 1),
        "rss_after_all_mb": round(run["rss_end"], 1),
        "rss_change": round(run["rss_end"] / run["rss_10"] - 1, 4),
        "server_startup_s": round(startup, 2),
        "vidcap_caption_per_video_p50_s": round(statistics.median(cli_times), 2),
        "statuses": {
            kind: sorted({s for k, s, _, _ in results if k == kind})
            for kind in dict.fromkeys(k for k, *_ in results)
            if kind not in expected
        },
    }
    print(json.dumps(figures, indent=2))
    ok = not wrong and not not_4xx and not server_errors and abs(figures["rss_change"]) <= 0.10
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
