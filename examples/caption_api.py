"""Dense captions with the Python API: print them with their times and write an SRT per video.

    python examples/caption_api.py MODEL_DIR VIDEO...

MODEL_DIR is a bundle written by ``vidcap finetune``. Each video is cut into segments where the
picture changes (or into fixed windows with ``--segment-seconds``), each segment is captioned, and
the captions are written as SubRip subtitles next to the video (``talk.mp4`` → ``talk.srt``,
replacing a file of that name). A video that cannot be read is reported on stderr and the others
go on; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidcap import Captioner
from vidcap.errors import VidcapError
from vidcap.output.formats import format_clock, to_srt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: the bundle, the videos and two options."""
    parser = argparse.ArgumentParser(description="Dense captions and an SRT file per video.")
    parser.add_argument("model", type=Path, help="a bundle written by `vidcap finetune`")
    parser.add_argument("videos", type=Path, nargs="+", help="video files")
    parser.add_argument(
        "--segment-seconds",
        type=float,
        default=None,
        help="fixed windows of about this many seconds (default: cut where the picture changes)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Caption every video; returns the exit status (1 if any video failed)."""
    args = parse_args(argv)
    try:
        captioner = Captioner.load(args.model, device=args.device)
    except VidcapError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    failed = 0
    results = captioner.caption_many(args.videos, dense=True, segment_seconds=args.segment_seconds)
    # caption_many yields one item per video, in order: its captions or the error that stopped it.
    for video, result in zip(args.videos, results, strict=True):
        if isinstance(result, VidcapError):
            print(f"error: {result}", file=sys.stderr)
            failed += 1
            continue
        length = f" ({result.duration:.1f} s)" if result.duration is not None else ""
        print(f"{result.video}{length}")
        for caption in result.captions:
            print(f"  {format_clock(caption.start)}-{format_clock(caption.end)}  {caption.text}")
        srt = video.with_suffix(".srt")
        srt.write_text(to_srt(result.captions), encoding="utf-8")
        print(f"  wrote {srt}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
