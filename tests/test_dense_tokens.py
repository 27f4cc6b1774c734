"""Vid2Seq time tokens: the vocabulary's ``[T0] … [T{n-1}]``, the dense target builder and the
parser that reads a generated sequence back into events."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidcap.errors import VidcapError
from vidcap.models.inputs import InputConfig, video_inputs
from vidcap.output.formats import TimedCaption
from vidcap.text import JointVocabulary, train_vocabulary
from vidcap.text.timing import bin_time, event_target, parse_events, time_bin, timed_text

TEXTS = [
    "a red circle moves up",
    "the blue square spins in place",
    "a green star slides left",
    "the yellow hexagon grows",
] * 3


@pytest.fixture(scope="module")
def plain() -> JointVocabulary:
    return train_vocabulary(TEXTS, 16, vocab_size=200)


@pytest.fixture(scope="module")
def vocab(plain: JointVocabulary) -> JointVocabulary:
    return plain.with_time_tokens(100)


def test_time_tokens_come_after_every_other_id(plain: JointVocabulary, vocab: JointVocabulary):
    assert len(vocab) == len(plain) + 100 and vocab.n_time == 100
    assert vocab.time_range == (len(plain), len(plain) + 100)
    assert plain.n_time == 0 and len(plain.tokenizer) == len(plain)  # the original is untouched
    # every id that was there keeps its meaning
    assert vocab.visual_range == plain.visual_range and vocab.text_id_range == plain.text_id_range
    assert vocab.encode_text(TEXTS[0]) == plain.encode_text(TEXTS[0])
    assert vocab.tokenizer.convert_tokens_to_ids("[T42]") == len(plain) + 42
    # a caption model never emits a time token; a dense one may
    time_ids = set(range(*vocab.time_range))
    assert time_ids <= set(vocab.non_text_ids())
    assert not time_ids & set(vocab.non_dense_ids())
    assert vocab.with_time_tokens(100) is vocab
    with pytest.raises(VidcapError, match="already has 100 time tokens"):
        vocab.with_time_tokens(50)
    with pytest.raises(VidcapError, match="at least 2"):
        plain.with_time_tokens(1)


def test_text_that_spells_a_time_token_stays_text(vocab: JointVocabulary) -> None:
    ids = vocab.encode_text("at [T5] a red circle")
    assert not (vocab.bins_from_ids(ids) >= 0).any()


def test_time_tokens_saved_and_loaded(vocab: JointVocabulary, tmp_path: Path) -> None:
    vocab.save(tmp_path / "v")
    loaded = JointVocabulary.load(tmp_path / "v")
    assert (loaded.n_time, loaded.time_offset, len(loaded)) == (100, vocab.time_offset, len(vocab))


def test_a_vocabulary_saved_before_time_tokens_still_loads(
    plain: JointVocabulary, tmp_path: Path
) -> None:
    plain.save(tmp_path / "old")
    meta_path = tmp_path / "old" / "vidcap_vocabulary.json"
    meta = json.loads(meta_path.read_text())
    for key in ("n_time", "time_offset", "time_token_format"):
        meta.pop(key)
    meta_path.write_text(json.dumps(meta))
    old = JointVocabulary.load(tmp_path / "old")
    assert old.n_time == 0 and len(old) == len(plain)
    with pytest.raises(VidcapError, match="no time tokens"):
        old.time_ids([0])


def test_time_bins_round_trip_within_half_a_bin() -> None:
    duration, n = 93.7, 100
    for t in np.linspace(0, duration, 57):
        assert (
            abs(bin_time(time_bin(t, duration, n), duration, n) - t)
            <= duration / (2 * (n - 1)) + 1e-9
        )
    assert time_bin(-3, duration, n) == 0 and time_bin(duration + 9, duration, n) == n - 1


EVENTS = [  # out of order and overlapping, one reaching past the video's end
    (12.0, 30.5, "the blue square spins in place"),
    (0.4, 6.0, "a red circle moves up"),
    (5.0, 14.0, "a green star slides left"),
    (44.0, 70.0, "the yellow hexagon grows"),
]


def test_events_to_ids_and_back(vocab: JointVocabulary) -> None:
    duration = 60.0
    ids = event_target(vocab, EVENTS, duration, max_length=256)
    assert ids[-1] == vocab.eos_id
    assert vocab.bins_from_ids(ids[:2]).tolist() == [time_bin(0.4, 60, 100), time_bin(6, 60, 100)]
    parsed = parse_events(vocab, ids, duration)
    expected = sorted((min(s, duration), min(e, duration), t) for s, e, t in EVENTS)
    assert [c.text for c in parsed] == [t for _, _, t in expected]
    bin_width = duration / 99
    for got, (start, end, _) in zip(parsed, expected, strict=True):
        assert abs(got.start - start) <= bin_width and abs(got.end - end) <= bin_width
    assert parsed[-1].end == duration  # clamped to the video


def test_events_that_do_not_fit_are_left_out_whole(vocab: JointVocabulary) -> None:
    full = event_target(vocab, EVENTS, 60.0, max_length=256)
    short = event_target(vocab, EVENTS, 60.0, max_length=len(full) - 3)
    assert [e.text for e in parse_events(vocab, short, 60.0)] == [
        e.text for e in parse_events(vocab, full, 60.0)
    ][:3]
    tiny = event_target(vocab, EVENTS, 60.0, max_length=5)
    assert len(tiny) == 5 and tiny[-1] == vocab.eos_id


def _ids(vocab: JointVocabulary, *parts: int | str) -> list[int]:
    out: list[int] = []
    for part in parts:
        out += (
            [int(vocab.time_ids([part])[0])] if isinstance(part, int) else vocab.encode_text(part)
        )
    return out


def test_parser_drops_what_is_malformed(vocab: JointVocabulary) -> None:
    ids = _ids(
        vocab,
        "a red circle",  # before any time token
        10, "the blue square",  # one time token only
        30, 20, "a green star",  # ends before it starts
        40, 40, "a red square",  # zero length
        1, 2, 50, 60, "the green circle",  # of three or more times the last two count
        70, 80,  # no caption
        90, 99, "the yellow hexagon grows",
    )  # fmt: skip
    ids += [vocab.eos_id, *_ids(vocab, 5, 6, "after the end")]
    parsed = parse_events(vocab, ids, 99.0)
    assert [c.text for c in parsed] == [
        "a red square",
        "the green circle",
        "the yellow hexagon grows",
    ]
    assert parsed[0] == TimedCaption(39.5, 40.5, "a red square")  # one bin wide
    assert (parsed[1].start, parsed[1].end) == (50.0, 60.0)
    assert parse_events(vocab, [], 10.0) == [] and parse_events(vocab, [vocab.eos_id], 10.0) == []


def test_parser_keeps_repeated_events_once_and_sorts(vocab: JointVocabulary) -> None:
    ids = _ids(vocab, 50, 60, "a red circle", 0, 10, "a green star", 50, 60, "a red circle")
    parsed = parse_events(vocab, ids, 99.0)
    assert [(c.start, c.text) for c in parsed] == [(0.0, "a green star"), (50.0, "a red circle")]


def test_parser_refuses_a_vocabulary_without_time_tokens(plain: JointVocabulary) -> None:
    with pytest.raises(VidcapError, match="not a dense model"):
        parse_events(plain, [1, 2, 3], 10.0)


def test_transcript_lines_get_time_tokens_and_clips_are_subsampled(vocab) -> None:
    lines = [(3.0, 5.0, "now it moves up"), (0.0, 2.0, "here we go")]
    ids = timed_text(vocab, lines, 10.0, budget=100)
    assert vocab.bins_from_ids(ids[:2]).tolist() == [0, time_bin(2.0, 10.0, 100)]
    assert vocab.decode_text(ids) == "here we go now it moves up"
    config = InputConfig.for_task("dense", False, True, time_bins=100, max_clips=10)
    words = np.arange(40) % 16
    out = video_inputs(vocab, words, None, lines, 10.0, config)
    visual = vocab.words_from_ids(out["input_ids"])
    assert (visual >= 0).sum() == 10  # subsampled evenly to max_clips
    assert visual[visual >= 0][0] == 0 and visual[visual >= 0][-1] == 39 % 16
    assert out["input_ids"][1 : 1 + len(ids)].tolist() == ids  # [BOS] timed transcript [>] ...
