"""A learned event localiser for dense captioning: which clips of a video are inside an event,
and where one event ends and the next begins.

A dense model that reads times from its own time tokens (Vid2Seq) needs far more videos and
training than a toolkit user's first corpus gives it to place events well: on the untrimmed
synthetic corpus it stayed below the untrained change-point cuts (docs/dense.md). Localisation is
learned here as PDVC and the proposal modules of dense captioning do, by a head of its own over the
clip features: a small temporal convolution network (dilated, so each clip sees about 15 s of
context either side at 0.5 s clips) gives each clip three probabilities — *inside an event*,
*an event starts here*, *an event ends here* — trained with binary cross-entropy on the corpus's
segments. :func:`decode_events` turns them into events: runs of inside clips, split where one
event ends and the next begins without a gap.

Events are placed to the clip, so finer clips place them finer (``vidcap encode --clip-frames 10``
gives 0.5 s clips at 20 fps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidcap.models.standardise import Standardised

INSIDE, STARTS, ENDS = 0, 1, 2
"""The three outputs of each clip."""


@dataclass(frozen=True)
class LocaliserConfig:
    """The network's shape (recorded in vidcap.json under ``localiser``)."""

    dim: int  # clip feature size
    hidden: int = 128
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)
    # The 5th percentile of the training events' lengths: a found event that could not hold one
    # even allowing a clip of error is a fragment (see decode_events).
    min_event_s: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "dilations": list(self.dilations)}


class _Block(nn.Module):
    def __init__(self, hidden: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(hidden, hidden, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(1, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.norm(self.conv(x)))


class EventLocaliser(Standardised):
    """Clip features ``[B, T, dim]`` → logits ``[B, T, 3]`` (inside, starts, ends)."""

    def __init__(self, config: LocaliserConfig) -> None:
        super().__init__(config.dim)
        self.config = config
        # The clip and its change from the clip before: boundaries are where the picture changes.
        self.inp = nn.Conv1d(2 * config.dim, config.hidden, 1)
        self.blocks = nn.Sequential(*(_Block(config.hidden, d) for d in config.dilations))
        self.out = nn.Conv1d(config.hidden, 3, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.standardise(features)
        change = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
        h = self.inp(torch.cat([x, change], dim=-1).transpose(1, 2))
        return self.out(self.blocks(h)).transpose(1, 2)

    @torch.no_grad()
    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``[T, 3]`` probabilities for one video's clip features ``[T, dim]``."""
        self.eval()
        device = self.mean.device
        x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=device)[None]
        return torch.sigmoid(self(x))[0].cpu().numpy()

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path))

    @classmethod
    def load(cls, path: str | Path, config: LocaliserConfig) -> EventLocaliser:
        from safetensors.torch import load_file

        model = cls(config)
        model.load_state_dict(load_file(str(path)))
        return model.eval()


def clip_labels(
    start_s: np.ndarray, end_s: np.ndarray, events: Sequence[tuple[float, float]]
) -> np.ndarray:
    """``[T, 3]`` targets: a clip is inside an event when its middle is; the first and last such
    clip of each event are where it starts and ends. An event no clip's middle falls in (shorter
    than a clip) marks the clip nearest its middle."""
    middles = (np.asarray(start_s) + np.asarray(end_s)) / 2
    labels = np.zeros((len(middles), 3), dtype=np.float32)
    for start, end in events:
        inside = np.flatnonzero((middles >= start) & (middles < end))
        if len(inside) == 0:
            inside = np.array([int(np.argmin(np.abs(middles - (start + end) / 2)))])
        labels[inside, INSIDE] = 1
        labels[inside[0], STARTS] = 1
        labels[inside[-1], ENDS] = 1
    return labels


def min_event_clips(min_event_s: float, clip_s: float) -> int:
    """The fewest clips a found event may span: fewer could not hold an event of ``min_event_s``
    seconds even with a clip of error (0.5 s clips, 2 s events: 4)."""
    if not min_event_s > clip_s > 0:
        return 1
    return int(np.ceil((min_event_s - clip_s) / clip_s - 1e-9))


def decode_events(
    probabilities: np.ndarray, threshold: float = 0.5, min_clips: int = 1
) -> list[tuple[int, int]]:
    """Events as clip ranges ``[first, last]`` (inclusive) from :meth:`EventLocaliser.probabilities`:
    each run of clips inside an event, split before a clip where an event starts or after one
    where an event ends (the mean of the two probabilities above ``threshold``). A fragment
    shorter than ``min_clips`` joins the event it touches (the one before, else the one after)
    and is dropped when it touches none: a split too many, or a flicker, not an event."""
    found = _runs(np.asarray(probabilities), threshold)
    events: list[list[int]] = []
    for i, (first, last) in enumerate(found):
        if last - first + 1 >= min_clips:
            events.append([first, last])
        elif events and events[-1][1] == first - 1:
            events[-1][1] = last
        elif i + 1 < len(found) and found[i + 1][0] == last + 1:
            found[i + 1] = (first, found[i + 1][1])
    return [(a, b) for a, b in events]


def _runs(p: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    inside = p[:, INSIDE] > threshold
    events: list[tuple[int, int]] = []
    t, n = 0, len(p)
    while t < n:
        if not inside[t]:
            t += 1
            continue
        first = t
        while t + 1 < n and inside[t + 1]:
            if (p[t + 1, STARTS] + p[t, ENDS]) / 2 > threshold:
                events.append((first, t))
                first = t + 1
            t += 1
        events.append((first, t))
        t += 1
    return events


@dataclass(frozen=True)
class LocaliserTraining:
    """How the localiser is trained (part of a dense model's settings)."""

    steps: int = 1500
    batch_videos: int = 8
    lr: float = 2e-3
    seed: int = 0


def train_localiser(
    videos: Sequence[tuple[np.ndarray, np.ndarray]],
    config: LocaliserConfig,
    training: LocaliserTraining = LocaliserTraining(),
) -> EventLocaliser:
    """Fit a localiser on ``(features [T, dim], labels [T, 3])`` pairs (:func:`clip_labels`).

    Videos are batched by padding (padded clips carry no loss); a boundary clip is rare beside
    the clips inside events, so starts and ends weigh as much in the loss as all other clips.
    """
    generator = torch.Generator().manual_seed(training.seed)
    torch.manual_seed(training.seed)
    model = EventLocaliser(config)
    model.fit_statistics(np.concatenate([f for f, _ in videos]))
    boundary = np.concatenate([lab[:, 1:] for _, lab in videos])
    share = float(boundary.mean()) if boundary.size else 0.0
    pos_weight = torch.tensor([1.0, *([max(1.0, (1 - share) / max(share, 1e-6))] * 2)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=training.lr, total_steps=training.steps
    )
    model.train()
    for _ in range(training.steps):
        pick = torch.randint(
            len(videos), (min(training.batch_videos, len(videos)),), generator=generator
        )
        chosen = [videos[int(i)] for i in pick]
        length = max(len(f) for f, _ in chosen)
        # Padding is the mean clip (zero once standardised), not an unreal all-zero feature that
        # the last real clips would see through the convolution.
        x = model.mean.expand(len(chosen), length, config.dim).clone()
        y = torch.zeros(len(chosen), length, 3)
        mask = torch.zeros(len(chosen), length, 1)
        for row, (f, lab) in enumerate(chosen):
            x[row, : len(f)] = torch.as_tensor(f)
            y[row, : len(f)] = torch.as_tensor(lab)
            mask[row, : len(f)] = 1
        loss = F.binary_cross_entropy_with_logits(
            model(x), y, pos_weight=pos_weight, reduction="none"
        )
        loss = (loss * mask).sum() / (mask.sum() * 3)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()
