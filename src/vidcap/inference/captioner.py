"""Caption raw videos with a finetuned bundle: extract → encode → quantize → generate, in memory.

    from vidcap import Captioner
    captioner = Captioner.load("model/")
    result = captioner.caption("video.mp4")             # one caption for the whole video
    result = captioner.caption("video.mp4", dense=True)  # timed captions over segments
    for c in result.captions:
        print(c.start, c.end, c.text)

Dense segments are fixed windows (``segment_seconds``) or cuts where the visual features change
(:mod:`vidcap.inference.segments`). A dense model (``vidcap finetune --task dense``) finds the
events itself: the whole video goes in and its events, each with its times, come out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.artifacts.readers import ClipTrack
from vidcap.bundle import OOD_PROFILE, TASK_COMMANDS, Bundle
from vidcap.errors import VidcapError
from vidcap.inference.localised import load_localiser, localised_events
from vidcap.inference.ood import OODProfile, OODResult
from vidcap.inference.pipeline import BundleModel, VideoClips
from vidcap.inference.refine import DEFAULT_REFINE_SECONDS, refine_events
from vidcap.inference.segments import change_segments, fixed_segments
from vidcap.models.decoding import DEFAULT_EVENT_NO_REPEAT_NGRAM
from vidcap.models.inputs import InputConfig, segment_inputs, video_inputs
from vidcap.models.seq2seq import CaptionModel, generate_captions, generate_events
from vidcap.output.formats import TimedCaption, VideoCaptions
from vidcap.video.worker import VIDEO_TIMEOUT_S


@dataclass
class CaptionedVideo(VideoCaptions):
    """A video's captions with a thumbnail per caption (the middle clip's middle frame)."""

    thumbnails: list[np.ndarray] = field(default_factory=list, repr=False)
    ood: OODResult | None = None  # how unlike the training videos it is (None: no profile)
    warnings: list[str] = field(default_factory=list)  # the decoder's: only part of it was read

    def to_json(self) -> dict[str, Any]:
        """The json / jsonl object, with ``ood`` (score, threshold, flagged) when scored and the
        decoder's ``warnings`` when it had any."""
        out = super().to_json()
        if self.ood is not None:
            out["ood"] = self.ood.to_json()
        if self.warnings:
            out["warnings"] = self.warnings
        return out


class Captioner(BundleModel):
    """A finetuned bundle ready to caption videos (see the module docstring)."""

    def __init__(
        self, bundle: Bundle, device: str = "auto", timeout: float | None = VIDEO_TIMEOUT_S
    ) -> None:
        super().__init__(bundle, device, timeout)
        self.model = CaptionModel.load(bundle.folder, bundle.arch).to(self.device)
        self.inputs = InputConfig(**bundle.info["inputs"])
        # A bundle from before the out-of-domain profile captions as before, unscored.
        self.ood = OODProfile.load(bundle.folder / OOD_PROFILE, bundle.remedy)
        # A dense bundle places its events with its localiser, or (generation.events "tokens" in
        # vidcap.json, and bundles from before localisers) reads them from its time tokens.
        by_localiser = bundle.info.get("generation", {}).get("events", "localiser") == "localiser"
        self.localiser = (
            load_localiser(bundle.folder, bundle.info) if self.is_dense and by_localiser else None
        )
        if self.localiser is not None:
            self.localiser.to(self.device)

    @classmethod
    def load(
        cls,
        folder: str | Path,
        device: str = "auto",
        task: str | tuple[str, ...] | None = None,
        timeout: float | None = VIDEO_TIMEOUT_S,
    ) -> Captioner:
        """Load a bundle written by ``vidcap finetune`` (checking it was trained for ``task``, or
        for one of the tasks of a tuple).

        ``timeout``: seconds each video's decoder may go without delivering frames before it is
        killed and the video fails with :class:`~vidcap.video.errors.DecodeTimeoutError` (None: no
        limit).
        """
        bundle = Bundle.load(folder, "finetune")
        if bundle.stage != "finetune":
            raise VidcapError(
                f"{folder} is a {bundle.stage} folder, not a finetuned caption model; run `vidcap finetune` on it first."
            )
        tasks = (task,) if isinstance(task, str) else task
        if tasks is not None and bundle.task not in tasks:
            command = TASK_COMMANDS.get(bundle.task, "vidcap evaluate")
            raise VidcapError(
                f"{folder} was finetuned with --task {bundle.task}; use it with `{command}`, or finetune a model with --task {' or '.join(tasks)}."
            )
        return cls(bundle, device, timeout)

    @property
    def task(self) -> str:
        """What the bundle was finetuned for: caption, qa, summary or dense."""
        return self.bundle.task

    @property
    def is_dense(self) -> bool:
        """A dense model: it finds a video's events and their times itself."""
        return self.task == "dense"

    def events(
        self,
        tracks: Sequence[VideoClips],
        transcripts: Sequence[Sequence[tuple[float, float, str]]] | None = None,
        beams: int | None = None,
    ) -> list[list[TimedCaption]]:
        """A dense model's events of each decoded video (generated in shared batches), with
        ``(start, end, text)`` transcript lines for a model that reads them.

        Raises:
            VidcapError: the bundle is not a dense model.
        """
        if not self.is_dense:
            raise VidcapError(
                f"{self.folder} is a --task {self.task} model; events come from a --task dense one."
            )
        generation = self.info["generation"]
        lines = transcripts or [()] * len(tracks)
        if self.localiser is not None:
            return localised_events(
                self.model,
                self.vocab,
                self.localiser,
                tracks,
                self.inputs,
                beams=beams or int(generation["beams"]),
                max_new_tokens=int(generation["max_new_tokens"]),
                transcripts=lines if self.inputs.with_transcript else None,
            )
        durations = [video_duration(clips) for clips in tracks]
        inputs = [
            video_inputs(self.vocab, c.words, c.features, t, d, self.inputs)
            for c, t, d in zip(tracks, lines, durations, strict=True)
        ]
        found = generate_events(
            self.model,
            self.vocab,
            inputs,
            durations,
            beams=beams or int(generation["beams"]),
            max_new_tokens=int(generation["max_new_tokens"]),
            event_no_repeat_ngram=int(
                generation.get("event_no_repeat_ngram", DEFAULT_EVENT_NO_REPEAT_NGRAM)
            ),
        )
        window = float(generation.get("refine_seconds", DEFAULT_REFINE_SECONDS))
        return [refine_events(e, c, window) for e, c in zip(found, tracks, strict=True)]

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

    def out_of_domain(self, clips: VideoClips) -> OODResult | None:
        """How unlike the training videos a video's clips are (None for a bundle without a profile)."""
        return None if self.ood is None else self.ood.check(clips.features, self.pipeline.tree)

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
        transcript: Sequence[TimedCaption] = (),
    ) -> CaptionedVideo:
        """Caption one video (see the module docstring); ``segment_seconds`` implies ``dense``.

        With ``thumbnails``, the result has one thumbnail per caption (for storyboards). A dense
        model that reads transcripts is given ``transcript``'s timed lines.
        """
        transcripts = [transcript] if transcript else None
        result = next(
            self.caption_many(
                [video], dense, segment_seconds, beams, thumbnails, transcripts=transcripts
            )
        )
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
        transcripts: Sequence[Sequence[TimedCaption]] | None = None,
    ) -> Iterator[CaptionedVideo | VidcapError]:
        """Caption videos in order; segments of up to ``group`` videos share generation batches.

        A video that cannot be read yields a :class:`VidcapError` instead of stopping the others.
        A dense model gives its own events (``dense`` changes nothing; ``segment_seconds`` is
        refused: it finds the events itself), reading each video's ``transcripts`` lines when it
        was trained with them; other models read no transcript here.
        """
        beams = beams or int(self.info["generation"]["beams"])
        if self.is_dense:
            if segment_seconds is not None:
                raise VidcapError(
                    f"{self.folder} is a dense model: it finds the events itself, so --segment-seconds does not apply."
                )
            yield from self._dense_many(videos, beams, thumbnails, group, transcripts)
            return
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
                    ood=self.out_of_domain(clips),
                    warnings=clips.warnings,
                    thumbnails=[clips.thumbnails[(a + b - 1) // 2] for a, b in ranges]
                    if thumbnails
                    else [],
                )

    def _dense_many(
        self,
        videos: Sequence[str | Path],
        beams: int,
        thumbnails: bool,
        group: int,
        transcripts: Sequence[Sequence[TimedCaption]] | None,
    ) -> Iterator[CaptionedVideo | VidcapError]:
        """:meth:`caption_many` for a dense model."""
        for first in range(0, len(videos), group):
            done: list[tuple[str, VideoClips, list[tuple[float, float, str]]] | VidcapError] = []
            for i, video in enumerate(videos[first : first + group], start=first):
                lines = [(t.start, t.end, t.text) for t in transcripts[i]] if transcripts else []
                try:
                    done.append((str(video), self.clips(video, thumbnails), lines))
                except VidcapError as error:
                    done.append(error)
            read = [item for item in done if not isinstance(item, VidcapError)]
            found = iter(self.events([c for _, c, _ in read], [t for _, _, t in read], beams=beams))
            for item in done:
                if isinstance(item, VidcapError):
                    yield item
                    continue
                video, clips, _ = item
                events = next(found)
                yield CaptionedVideo(
                    video,
                    events,
                    duration=clips.duration,
                    timed=True,
                    warnings=clips.warnings,
                    thumbnails=[clips.thumbnails[_middle_clip(clips, e)] for e in events]
                    if thumbnails
                    else [],
                )


def video_duration(clips: ClipTrack) -> float:
    """How long a video lasts for a dense model: its decoded length (the end of its last clip when
    that is not known), as training takes the corpus's ``duration``
    (:func:`vidcap.training.tasks.dense_item`): the tail shorter than a clip counts too."""
    decoded = float(getattr(clips, "duration", 0.0) or 0.0)
    return max(decoded, float(clips.end_s[-1]))


def _middle_clip(clips: ClipTrack, event: TimedCaption) -> int:
    """The clip nearest the middle of ``event`` (its thumbnail shows the event)."""
    middle = (event.start + event.end) / 2
    return int(np.argmin(np.abs((clips.start_s + clips.end_s) / 2 - middle)))
