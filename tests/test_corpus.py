"""Reading and writing corpus.jsonl: validation names the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidcap.corpus import (
    QAPair,
    Segment,
    TranscriptLine,
    VideoRecord,
    corpus_to_score,
    read_corpus,
    write_corpus,
)
from vidcap.errors import CorpusError

FULL_LINE = {
    "id": "cooking-01",
    "video": "videos/cooking 01.mp4",
    "split": "train",
    "duration": 12.5,
    "segments": [
        {"start": 0.0, "end": 4.0, "captions": ["crack the eggs", "eggs are cracked"]},
        {"start": 4.0, "end": 12.5, "captions": ["whisk them"], "narration": "now whisk"},
    ],
    "summary": ["someone cracks eggs and whisks them"],
    "transcript": [{"start": 0.2, "end": 3.1, "text": "so first the eggs"}],
    "qa": [{"question": "what is cracked?", "answer": "eggs", "type": "object"}],
    "meta": {"recipe": "omelette"},
}


def write_lines(path: Path, *objs: object) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


def test_full_line_round_trips(tmp_path: Path) -> None:
    corpus = write_lines(
        tmp_path / "corpus.jsonl", FULL_LINE, {"id": "b", "video": "/abs/b.mp4", "split": "test"}
    )
    records = read_corpus(corpus)
    first = records[0]
    assert first.video == tmp_path.resolve() / "videos" / "cooking 01.mp4"
    assert first.segments[1] == Segment(4.0, 12.5, ["whisk them"], "now whisk")
    assert first.transcript == [TranscriptLine(0.2, 3.1, "so first the eggs")]
    assert first.qa == [QAPair("what is cracked?", "eggs", "object")]
    assert records[1].video == Path("/abs/b.mp4") and records[1].segments == []

    out = tmp_path / "copy" / "corpus.jsonl"
    out.parent.mkdir()
    write_corpus(out, records)
    assert read_corpus(out) == records
    # Paths inside the corpus folder are stored relative, as the user wrote them.
    written = tmp_path / "again.jsonl"
    write_corpus(written, records)
    assert json.loads(written.read_text().splitlines()[0]) == FULL_LINE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, r"corpus.jsonl:2: id: is missing"),
        ({"id": 3}, r":2: id: must be a string"),
        ({"split": "training"}, r":2: split: must be one of train, val, test"),
        ({"duration": -1}, r":2: duration: must be a finite number >= 0"),
        ({"segments": [{"start": 5, "end": 1, "captions": ["x"]}]}, r":2: segments\[0\]: ends"),
        (
            {"segments": [{"start": 0, "end": 1, "captions": []}]},
            r":2: segments\[0\].captions: needs at least 1",
        ),
        (
            {"segments": [{"start": 0, "end": 1, "captions": [""]}]},
            r"segments\[0\].captions\[0\]: must be a non-empty",
        ),
        (
            {"segments": [{"start": "0", "end": 1, "captions": ["x"]}]},
            r"segments\[0\].start: must be a number",
        ),
        ({"transcript": [{"start": 0, "end": 1}]}, r"transcript\[0\].text: is missing"),
        ({"qa": [{"question": "q?"}]}, r"qa\[0\].answer: is missing"),
        ({"meta": [1]}, r":2: meta: must be an object"),
        ({"summary": "one string"}, r":2: summary: must be a list of strings"),
        ({"captions": ["misplaced"]}, r":2: captions: is not a corpus field"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path: Path, change: dict, message: str) -> None:
    bad = {**FULL_LINE, "id": "other", **change}
    bad = {k: v for k, v in bad.items() if v is not None}
    corpus = write_lines(tmp_path / "corpus.jsonl", FULL_LINE, bad)
    with pytest.raises(CorpusError, match=message):
        read_corpus(corpus)


def test_a_line_that_is_not_utf8_is_named_and_a_bom_is_read(tmp_path: Path) -> None:
    # A Latin-1 caption was "unexpected UnicodeDecodeError ... a bug in vidcap".
    corpus = tmp_path / "corpus.jsonl"
    line = json.dumps(FULL_LINE).encode()
    corpus.write_bytes(line + b"\n" + line.replace(b"cooking-01", b"caf\xe9-02") + b"\n")
    with pytest.raises(CorpusError, match=r"corpus.jsonl:2: line: is not UTF-8 text \(byte 0xe9"):
        read_corpus(corpus)
    corpus.write_bytes(b"\xef\xbb\xbf" + line + b"\r\n")  # as Windows tools write it
    assert [r.id for r in read_corpus(corpus)] == ["cooking-01"]
    with pytest.raises(CorpusError, match="is a folder, not a corpus file"):
        read_corpus(tmp_path)


def test_invalid_json_and_duplicates_and_missing_file(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps(FULL_LINE) + "\n\n{not json\n")
    with pytest.raises(CorpusError, match=r"corpus.jsonl:3: line: is not valid JSON"):
        read_corpus(corpus)
    write_lines(corpus, FULL_LINE, FULL_LINE)
    with pytest.raises(CorpusError, match=r":2: id: 'cooking-01' is already used on line 1"):
        read_corpus(corpus)
    with pytest.raises(CorpusError, match="corpus file not found"):
        read_corpus(tmp_path / "nope.jsonl")


def test_record_defaults_are_independent() -> None:
    a = VideoRecord("a", Path("a.mp4"), "train")
    b = VideoRecord("b", Path("b.mp4"), "train")
    # Filling one record's list fields leaves the other's (and a new record's) empty.
    a.segments.append(Segment(0.0, 1.0, ["x"]))
    a.summary.append("s")
    a.transcript.append(TranscriptLine(0.0, 1.0, "t"))
    a.qa.append(QAPair("q?", "a"))
    for record in (b, VideoRecord("c", Path("c.mp4"), "train")):
        assert (record.segments, record.summary, record.transcript, record.qa) == ([], [], [], [])
    assert len(a.segments) == len(a.summary) == len(a.transcript) == len(a.qa) == 1


def test_a_stage_reads_its_corpus_a_line_at_a_time(tmp_path: Path) -> None:
    """extract and encode need each video's id, path and split; a corpus with its transcripts
    (HowTo100M's speech: 136 million lines) held whole took 33 KB per 4-minute video, in every
    process, before the first frame. A repeated id is still refused."""
    import tracemalloc

    from vidcap.stages.inputs import resolve_inputs

    corpus, n = tmp_path / "corpus.jsonl", 2000
    speech = [{"start": 2.0 * k, "end": 2.0 * k + 1.9, "text": f"now add the {k}th spoon of flour"}
              for k in range(120)]  # fmt: skip
    with open(corpus, "w") as f:
        for i in range(n):
            record = {"id": f"v{i:05d}", "video": f"videos/v{i:05d}.mp4", "split": "train",
                      "segments": [{"start": 0.0, "end": 240.0, "captions": ["a person cooks"]}],
                      "transcript": speech}  # fmt: skip
            f.write(json.dumps(record) + "\n")
    assert len(resolve_inputs([str(corpus)]).videos) == n  # once first: set-up is not measured
    tracemalloc.start()
    try:
        resolved = resolve_inputs([str(corpus)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(resolved.videos) == n and resolved.videos[-1].split == "train"
    assert peak / n < 3000, f"{peak / n:.0f} bytes per video at the peak"
    with open(corpus, "a") as f:
        f.write(json.dumps({"id": "v00007", "video": "videos/again.mp4", "split": "test"}) + "\n")
    with pytest.raises(CorpusError, match="already used on line 8"):
        resolve_inputs([str(corpus)])


def test_the_corpus_to_score_is_the_one_given_or_the_one_recorded(tmp_path: Path) -> None:
    corpus = write_lines(tmp_path / "corpus.jsonl", FULL_LINE)
    assert corpus_to_score(None, str(corpus), "bundle") == corpus
    assert corpus_to_score(corpus, "/elsewhere/corpus.jsonl", "bundle") == corpus
    # `evaluate --corpus /typo.jsonl` said "the corpus the bundle was trained on (/typo.jsonl) is
    # not here; pass --corpus" to a user who had.
    with pytest.raises(CorpusError, match=r"^--corpus /typo.jsonl: corpus file not found\.$"):
        corpus_to_score("/typo.jsonl", str(corpus), "bundle")
    with pytest.raises(CorpusError, match=r"trained on \(/moved/c.jsonl\) is not here \(moved"):
        corpus_to_score(None, "/moved/c.jsonl", "pretrain")
    with pytest.raises(CorpusError, match="the bundle records no corpus; pass --corpus"):
        corpus_to_score(None, None, "bundle")
    with pytest.raises(CorpusError, match="is a folder, not a corpus file"):
        corpus_to_score(tmp_path, None, "bundle")
