"""Caption raw videos with a finetuned bundle: extract → encode → quantize → generate, in memory.

    from vidcap import Captioner
    captioner = Captioner.load("model/")
    result = captioner.caption("video.mp4")             # one caption for the whole video
    result = captioner.caption("video.mp4", dense=True)  # timed captions over segments
    for c in result.captions:
        print(c.start, c.end, c.text)

Dense segments are either fixed windows (``segment_seconds``) or found from the visual features:
a boundary is put between two consecutive clips whose features differ much more than is usual in
that video (cosine distance above the median plus 4 robust standard deviations, 4 x 1.4826 MAD,
of the video's consecutive distances, so clip-to-clip jitter is not taken for a change). Cuts are
taken strongest first, skipping any closer than ``min_segment_clips`` clips to one already taken
or to the video's ends. A video with no such change is one segment.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.captions.output import TimedCaption, VideoCaptions
from vidcap.errors import VidcapError
from vidcap.models.caption import CaptionModel
from vidcap.pipeline import VideoClips, VideoPipeline
from vidcap.stages.pretrain import BUNDLE_INFO
from vidcap.text import JointVocabulary
from vidcap.training.captions import InputConfig, collate_inputs, segment_inputs


def generate_captions(
    model: CaptionModel,
    vocab: JointVocabulary,
    inputs: Sequence[dict[str, np.ndarray]],
    beams: int = 4,
    max_new_tokens: int = 40,
    batch_size: int = 32,
) -> list[str]:
    """Captions for segment inputs built by ``training.captions.segment_inputs``, in order."""
    model.eval()
    device = next(model.parameters()).device
    texts: list[str] = []
    suppress_ids = vocab.non_text_ids()
    for i in range(0, len(inputs), batch_size):
        batch = collate_inputs(list(inputs[i : i + batch_size]), vocab.pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        ids = model.generate(
            batch, num_beams=beams, max_new_tokens=max_new_tokens, suppress_ids=suppress_ids
        )
        texts += [vocab.decode_text(row).strip() for row in ids.cpu()]
    return texts


@dataclass
class CaptionedVideo(VideoCaptions):
    """A video's captions with a thumbnail per caption (the middle clip's middle frame)."""

    thumbnails: list[np.ndarray] = field(default_factory=list, repr=False)


def fixed_segments(clips: VideoClips, seconds: float) -> list[tuple[int, int]]:
    """Clip ranges ``[a, b)`` of consecutive windows of about ``seconds`` each."""
    if not seconds > 0:
        raise VidcapError(f"--segment-seconds must be > 0, got {seconds}.")
    bounds, start = [], 0
    for i in range(1, len(clips.start_s)):
        if clips.end_s[i] - clips.start_s[start] > seconds + 1e-6:
            bounds.append((start, i))
            start = i
    bounds.append((start, len(clips.start_s)))
    return bounds


def change_segments(features: np.ndarray, min_segment_clips: int = 2) -> list[tuple[int, int]]:
    """Clip ranges ``[a, b)`` cut where the visual features change (see the module docstring)."""
    n = len(features)
    if n < 2 * min_segment_clips:
        return [(0, n)]
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-8)
    distance = 1.0 - np.sum(unit[1:] * unit[:-1], axis=1)  # distance[i]: between clip i and i+1
    median = float(np.median(distance))
    mad = float(np.median(np.abs(distance - median))) or 1e-6
    threshold = median + 4.0 * 1.4826 * mad
    cuts: list[int] = []
    for i in np.argsort(-distance):  # strongest changes first
        cut = int(i) + 1
        if distance[i] <= threshold:
            break
        edges = [0, *sorted(cuts), n]
        if all(abs(cut - e) >= min_segment_clips for e in edges):
            cuts.append(cut)
    edges = [0, *sorted(cuts), n]
    return list(itertools.pairwise(edges))


class Captioner:
    """A finetuned bundle ready to caption videos (see the module docstring)."""

    def __init__(self, folder: Path, info: dict[str, Any], device: str = "auto") -> None:
        self.folder = folder
        self.info = info
        self.pipeline = VideoPipeline(folder, info, device)
        self.device = self.pipeline.device
        self.vocab = JointVocabulary.load(folder)
        self.model = CaptionModel.load(folder, info["arch"]).to(self.device)
        self.inputs = InputConfig(**info["inputs"])

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto", task: str | None = None) -> Captioner:
        """Load a bundle written by ``vidcap finetune`` (checking it was trained for ``task``)."""
        folder = Path(folder)
        path = folder / BUNDLE_INFO
        if not path.is_file():
            raise VidcapError(
                f"{folder} is not a caption model: it has no {BUNDLE_INFO} (give the --out folder of `vidcap finetune`)."
            )
        info = json.loads(path.read_text(encoding="utf-8"))
        if info.get("stage") != "finetune":
            raise VidcapError(
                f"{folder} is a {info.get('stage', 'unknown')} folder, not a finetuned caption model; run `vidcap finetune` on it first."
            )
        trained_for = info.get("task", "caption")
        if task is not None and trained_for != task:
            commands = {
                "caption": "vidcap caption",
                "qa": "vidcap answer",
                "summary": "vidcap summarize",
            }
            raise VidcapError(
                f"{folder} was finetuned with --task {trained_for}; use it with `{commands[trained_for]}`, or finetune a model with --task {task}."
            )
        return cls(folder, info, device)

    @property
    def task(self) -> str:
        """What the bundle was finetuned for: caption, qa or summary."""
        return self.info.get("task", "caption")

    def _generate(self, inputs: list[dict[str, np.ndarray]], beams: int | None) -> list[str]:
        generation = self.info["generation"]
        return generate_captions(
            self.model,
            self.vocab,
            inputs,
            beams=beams or int(generation["beams"]),
            max_new_tokens=int(generation["max_new_tokens"]),
        )

    def answer(
        self, video: str | Path, questions: Sequence[str], beams: int | None = None
    ) -> list[str]:
        """Answers to ``questions`` about the whole video (a bundle finetuned with ``--task qa``)."""
        if not questions:
            raise VidcapError("no questions given.")
        clips = self.clips(video)
        inputs = [
            segment_inputs(self.vocab, clips.words, clips.features, q, self.inputs)
            for q in questions
        ]
        return self._generate(inputs, beams)

    def summarize(self, video: str | Path, transcript: str = "", beams: int | None = None) -> str:
        """One paragraph for the whole video (a bundle finetuned with ``--task summary``)."""
        clips = self.clips(video)
        inputs = [segment_inputs(self.vocab, clips.words, clips.features, transcript, self.inputs)]
        return self._generate(inputs, beams)[0]

    def clips(self, video: str | Path, thumbnails: bool = False) -> VideoClips:
        """Decode, cut, encode and quantize one video with the bundle's settings."""
        return self.pipeline.clips(video, thumbnails)

    def segments(
        self, clips: VideoClips, dense: bool, segment_seconds: float | None
    ) -> list[tuple[int, int]]:
        """Clip ranges to caption: the whole video, fixed windows, or feature-change segments.

        ``segment_seconds`` implies dense captioning.
        """
        if not dense and segment_seconds is None:
            return [(0, len(clips.words))]
        if segment_seconds is not None:
            return fixed_segments(clips, segment_seconds)
        return change_segments(clips.features)

    def caption(
        self,
        video: str | Path,
        dense: bool = False,
        segment_seconds: float | None = None,
        beams: int | None = None,
        thumbnails: bool = False,
    ) -> CaptionedVideo:
        """Caption one video (see the module docstring); ``segment_seconds`` implies ``dense``.

        With ``thumbnails``, the result has one thumbnail per caption (for storyboards).
        """
        result = next(self.caption_many([video], dense, segment_seconds, beams, thumbnails))
        if isinstance(result, Exception):
            raise result
        return result

    def caption_many(
        self,
        videos: Sequence[str | Path],
        dense: bool = False,
        segment_seconds: float | None = None,
        beams: int | None = None,
        thumbnails: bool = False,
        group: int = 8,
    ) -> Iterator[CaptionedVideo | VidcapError]:
        """Caption videos in order; segments of up to ``group`` videos share generation batches.

        A video that cannot be read yields a :class:`VidcapError` instead of stopping the others.
        """
        beams = beams or int(self.info["generation"]["beams"])
        for first in range(0, len(videos), group):
            done: list[tuple[str, VideoClips, list[tuple[int, int]]] | VidcapError] = []
            inputs: list[dict[str, np.ndarray]] = []
            for video in videos[first : first + group]:
                try:
                    clips = self.clips(video, thumbnails)
                except VidcapError as error:
                    done.append(error)
                    continue
                ranges = self.segments(clips, dense, segment_seconds)
                done.append((str(video), clips, ranges))
                inputs += [
                    segment_inputs(
                        self.vocab, clips.words[a:b], clips.features[a:b], "", self.inputs
                    )
                    for a, b in ranges
                ]
            texts = iter(self._generate(inputs, beams))
            for item in done:
                if isinstance(item, VidcapError):
                    yield item
                    continue
                video, clips, ranges = item
                captions = [
                    TimedCaption(float(clips.start_s[a]), float(clips.end_s[b - 1]), next(texts))
                    for a, b in ranges
                ]
                yield CaptionedVideo(
                    video,
                    captions,
                    duration=clips.duration,
                    thumbnails=[clips.thumbnails[(a + b - 1) // 2] for a, b in ranges]
                    if thumbnails
                    else [],
                )
