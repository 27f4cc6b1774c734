"""Pretraining examples drawn on the fly: determinism per batch of keys, BERT's masking of a padded
batch, token types, stride subsampling, negatives for alignment, and BART's targets."""

from __future__ import annotations

import numpy as np
import pytest

from vidcap.artifacts.readers import ClipTrack
from vidcap.text import JointVocabulary, train_vocabulary
from vidcap.training.examples import (
    JOINT,
    TEXT,
    VIDEO,
    BartExamples,
    ExampleConfig,
    TextUnit,
    VideoBertExamples,
    VideoSample,
)

N_VISUAL = 12
SENTENCES = [
    "a red circle moves left",
    "the blue square jumps twice",
    "a green triangle spins slowly",
    "two shapes meet in the middle",
    "the yellow star fades away",
]


@pytest.fixture(scope="module")
def vocab() -> JointVocabulary:
    return train_vocabulary(SENTENCES * 10, n_visual=N_VISUAL, vocab_size=120)


def sample(index: int, clips: int, clip_s: float = 1.0) -> VideoSample:
    """A video of ``clips`` clips and one sentence per 4 s (a video-only one when index is 0)."""
    rng = np.random.default_rng(index)
    seconds = clips * clip_s
    units = [
        TextUnit(float(t), float(t + 4), (SENTENCES[(index + t) % len(SENTENCES)],))
        for t in range(0, int(seconds) - 3, 4)
    ]
    return VideoSample(
        id=f"v{index}",
        split="train",
        track=ClipTrack(
            rng.integers(0, N_VISUAL, clips),
            np.arange(clips, dtype=np.float64) * clip_s,
            np.arange(1, clips + 1, dtype=np.float64) * clip_s,
        ),
        units=units if index else [],
    )


@pytest.fixture(scope="module")
def samples() -> list[VideoSample]:
    return [sample(i, clips) for i, clips in enumerate([9, 30, 17, 24, 40])]


def batch_keys(dataset, epoch: int) -> list[tuple[int, int]]:
    return [(epoch, i) for i in range(len(dataset))]


def same(a: list[dict], b: list[dict]) -> bool:
    return all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("kind", [VideoBertExamples, BartExamples])
def test_a_batch_of_keys_draws_the_same_examples_every_time(vocab, samples, kind) -> None:
    dataset = kind(samples, vocab, ExampleConfig())
    keys = batch_keys(dataset, epoch=3)
    assert same(dataset.__getitems__(keys), dataset.__getitems__(keys))
    assert same([dataset[(3, 5)]], dataset.__getitems__([(3, 5)]))
    assert same([dataset[5]], [dataset[(0, 5)]])  # a plain index is epoch 0
    # Another epoch, another seed: other draws.
    assert not same(dataset.__getitems__(keys), dataset.__getitems__(batch_keys(dataset, 4)))
    other_seed = kind(samples, vocab, ExampleConfig(seed=1))
    assert not same(dataset.__getitems__(keys), other_seed.__getitems__(keys))


def originals(example: dict) -> np.ndarray:
    """The example's tokens before masking: the labels where masked, the inputs elsewhere."""
    labels = example["labels"]
    return np.where(labels != -100, labels, example["input_ids"])


def test_videobert_masks_fifteen_percent_of_each_rows_ordinary_tokens(vocab, samples) -> None:
    dataset = VideoBertExamples(samples, vocab, ExampleConfig())
    special = [vocab.cls_id, vocab.sep_id, vocab.join_id]
    (v_lo, v_hi), (t_lo, t_hi) = vocab.visual_range, vocab.text_id_range
    outcomes = {"mask": 0, "random": 0, "kept": 0}
    lengths = set()
    for epoch in range(80):
        for example in dataset.__getitems__(batch_keys(dataset, epoch)):
            ids, labels = example["input_ids"], example["labels"]
            original = originals(example)
            lengths.add(len(ids))
            assert len(labels) == len(ids) == len(example["token_type_ids"])
            ordinary = ~np.isin(original, special)
            masked = labels != -100
            assert masked.sum() == max(1, round(0.15 * ordinary.sum()))
            assert not (masked & ~ordinary).any()  # never [CLS], [SEP] or [>]
            for position in np.flatnonzero(masked):
                token, label = ids[position], labels[position]
                if token == vocab.mask_id:
                    outcomes["mask"] += 1
                elif token == label:
                    outcomes["kept"] += 1
                else:  # a random token of the label's modality
                    outcomes["random"] += 1
                    lo, hi = (v_lo, v_hi) if v_lo <= label < v_hi else (t_lo, t_hi)
                    assert lo <= token < hi
    assert len(lengths) > 3  # rows of several lengths were padded together and cut back
    total = sum(outcomes.values())
    assert total > 2500
    assert abs(outcomes["mask"] / total - 0.8) < 0.04
    # A random draw can hit the label itself (counted as kept): 10% each, within noise.
    assert abs(outcomes["random"] / total - 0.1) < 0.03
    assert abs(outcomes["kept"] / total - 0.1) < 0.03


def test_videobert_sequences_and_token_types(vocab, samples) -> None:
    dataset = VideoBertExamples(samples, vocab, ExampleConfig(max_length=24))
    seen = set()
    for epoch in range(20):
        for example in dataset.__getitems__(batch_keys(dataset, epoch)):
            ids, types, objective = (
                originals(example),
                example["token_type_ids"],
                example["objective"],
            )
            seen.add(objective)
            assert len(ids) <= 24
            assert ids[0] == vocab.cls_id and ids[-1] == vocab.sep_id
            is_visual = (ids >= vocab.visual_range[0]) & (ids < vocab.visual_range[1])
            body = slice(1, -1)
            if objective == TEXT:
                assert not is_visual.any() and not types.any()
                assert example["align_label"] == -100
            elif objective == VIDEO:
                assert is_visual[body].all() and types[body].all() and types[0] == 0
                assert example["align_label"] == -100
            else:
                assert objective == JOINT and example["align_label"] in (0, 1)
                join = int(np.flatnonzero(ids == vocab.join_id)[0])
                assert not is_visual[:join].any() and is_visual[join + 1 : -1].all()
                assert not types[:join].any() and types[join:].all()
    assert seen == {TEXT, VIDEO, JOINT}


def test_video_words_are_a_strided_run_of_the_units_clips(vocab) -> None:
    # Half-second clips: 8 per 4 s unit, so that every stride up to 5 shows.
    samples = [sample(i, clips, clip_s=0.5) for i, clips in enumerate([18, 60, 34])]
    config = ExampleConfig(objective_weights=(0.0, 1.0, 0.0), concat_prob=0.0)
    dataset = VideoBertExamples(samples, vocab, config)
    strides = set()
    for epoch in range(30):
        for index, example in enumerate(dataset.__getitems__(batch_keys(dataset, epoch))):
            s, u = dataset.entries[index]
            clips = samples[s].track.words
            if u >= 0:
                unit = samples[s].units[u]
                clips = clips[int(unit.start * 2) : int(unit.end * 2)]
            words = vocab.words_from_ids(originals(example)[1:-1])
            matches = [
                stride
                for stride in range(1, 6)
                for offset in range(stride)
                if np.array_equal(clips[offset::stride], words)
            ]
            assert matches, (clips, words)
            strides.add(min(matches))
    assert strides == {1, 2, 3, 4, 5}


def test_about_half_the_joint_examples_pair_text_with_another_video(vocab, samples) -> None:
    config = ExampleConfig(objective_weights=(0.0, 0.0, 1.0), concat_prob=0.0, mask_prob=0.0)
    dataset = VideoBertExamples(samples, vocab, config)
    labels = []
    for epoch in range(30):
        for index, example in enumerate(dataset.__getitems__(batch_keys(dataset, epoch))):
            s, u = dataset.entries[index]
            if u < 0:
                continue  # video-only entries have no text to swap
            ids = originals(example)
            text = ids[1 : int(np.flatnonzero(ids == vocab.join_id)[0])]
            own = vocab.encode_text(samples[s].units[u].texts[0])
            labels.append(example["align_label"])
            if example["align_label"] == 0:
                assert text.tolist() == own
    assert abs(np.mean(labels) - 0.5) < 0.06


def test_bart_target_is_the_uncorrupted_sequence(vocab, samples) -> None:
    dataset = BartExamples(samples, vocab, ExampleConfig())
    for epoch in range(5):
        for example in dataset.__getitems__(batch_keys(dataset, epoch)):
            source, target = example["input_ids"], example["labels"]
            assert target[0] == vocab.bos_id and target[-1] == vocab.eos_id
            assert source[0] == vocab.bos_id and source[-1] == vocab.eos_id
            assert vocab.mask_id not in target
            if example["objective"] == JOINT and vocab.join_id in target:
                assert vocab.join_id in source  # the text/video anchor survives the noise


def test_joined_units_bring_both_sentences_and_both_units_clips(vocab, samples) -> None:
    config = ExampleConfig(
        objective_weights=(0.0, 0.0, 1.0), concat_prob=1.0, negative_prob=0.0, mask_prob=0.0
    )
    dataset = VideoBertExamples(samples, vocab, config)
    joined = 0
    for epoch in range(5):
        for index, example in enumerate(dataset.__getitems__(batch_keys(dataset, epoch))):
            s, u = dataset.entries[index]
            if u < 0:
                continue
            units = samples[s].units[u : u + 2]
            ids = originals(example)
            join = int(np.flatnonzero(ids == vocab.join_id)[0])
            want = [piece for unit in units for piece in vocab.encode_text(unit.texts[0])]
            assert ids[1:join].tolist() == want
            clips = samples[s].track.words[int(units[0].start) : int(units[-1].end)]
            words = vocab.words_from_ids(ids[join + 1 : -1])
            assert any(
                np.array_equal(clips[offset::stride], words)
                for stride in range(1, 6)
                for offset in range(stride)
            )
            joined += len(units) == 2
    assert joined > 10
