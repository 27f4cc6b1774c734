"""The model card: a ``README.md`` in every bundle (and pretrain ``final/``) saying what the model is,
what it was trained on, how well it did and what it cannot do.

It has the Hugging Face model-card form, so a bundle pushed to a hub shows it as its page and
``huggingface_hub.ModelCard.load`` reads it: a YAML metadata block between ``---`` lines (tags and,
once evaluated, ``model-index`` results), then markdown.

The card is rendered from the bundle's own records, never written by hand:

- ``vidcap.json``: the task, architecture, preset, encoder, clip settings and codebook, and the
  ``training`` facts a training stage adds (:func:`training_facts`: corpus summary, steps, losses);
- ``vidcap_vocabulary.json``: the joint vocabulary's size;
- ``evaluation.json``: what ``vidcap evaluate`` measured, one entry per (corpus, split)
  (:func:`record_evaluation` adds one and renders the card again).

:func:`vidcap.bundle.write_bundle` writes it with the model, so it is part of the artifact; a
rewritten bundle drops the old evaluation (it scored other weights).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidcap._version import __version__
from vidcap.artifacts import atomic_write_json, atomic_write_text
from vidcap.artifacts.readers import read_tracks
from vidcap.bundle import CARD, EVALUATION, Bundle
from vidcap.corpus import VideoRecord, read_corpus
from vidcap.encoders.base import looks_like_path
from vidcap.errors import VidcapError
from vidcap.text import VOCABULARY_FILE

SYNTH_GENERATOR = "vidcap.synth"
"""What ``vidcap synth`` writes as ``meta.generator`` on every record: a corpus whose records all
carry it is the synthetic shapes world, whatever its files are called."""

_METRICS = ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
_DENSE_ROWS = ("model", "predictions", "captioner_whole", "captioner_fixed", "captioner_change")
_DENSE_ROWS += ("captioner_oracle", "whole_video", "reference_ceiling")
_DENSE_METRICS = ("Precision", "Recall", "F1", "METEOR", "CIDEr", "BLEU-4", "SODA_c")
_ROWS = (
    ("captioner", "captioner"),
    ("nearest_neighbour", "nearest-neighbour floor"),
    ("reference_ceiling", "reference ceiling"),
)
_TASK_TEXT = {
    "caption": "captions a video: one sentence for the whole video, or timed captions (`--dense`)",
    "qa": "answers questions about a video",
    "summary": "summarises a video in a paragraph",
}
_TASK_COMMAND = {
    "caption": "vidcap caption VIDEO.mp4 --model {path}",
    "qa": 'vidcap answer VIDEO.mp4 --model {path} --question "what moves?"',
    "summary": "vidcap summarize VIDEO.mp4 --model {path}",
}
_ARCH_NAMES = {"bart": "BART", "videobert": "VideoBERT"}
_WORD = re.compile(r"[a-z0-9']+")


# --------------------------------------------------------------------------------------------------
# Facts a training stage records


def is_synthetic(records: Iterable[VideoRecord]) -> bool:
    """True when every record was made by ``vidcap synth`` (its ``meta.generator``)."""
    records = list(records)
    return bool(records) and all(
        isinstance(r.meta, dict) and r.meta.get("generator") == SYNTH_GENERATOR for r in records
    )


def corpus_summary(words_dir: str | Path) -> dict[str, Any]:
    """What a model was trained on, from a words folder and the corpus it records: the corpus
    path, videos (per split), hours, captioned segments, distinct caption words, and whether it
    is the synthetic shapes world."""
    tracks, splits, manifest = read_tracks(words_dir)
    corpus = manifest.get("corpus")
    records = read_corpus(corpus) if corpus and Path(corpus).is_file() else []
    by_id = {r.id: r for r in records if r.id in tracks}
    seconds = sum(
        (by_id[v].duration if v in by_id and by_id[v].duration else float(t.end_s[-1]))
        for v, t in tracks.items()
    )
    per_split: dict[str, int] = {}
    for video in tracks:
        split = splits.get(video) or "none"
        per_split[split] = per_split.get(split, 0) + 1
    captions = [c for r in by_id.values() for s in r.segments for c in s.captions]
    return {
        "corpus": corpus,
        "videos": len(tracks),
        "splits": dict(sorted(per_split.items())),
        "hours": round(seconds / 3600, 3),
        "segments": sum(len(r.segments) for r in by_id.values()),
        "caption_words": len({w for c in captions for w in _WORD.findall(c.lower())}),
        "synthetic": is_synthetic(by_id.values()),
    }


def final_losses(metrics_path: str | Path) -> dict[str, dict[str, float]]:
    """The last ``train`` and ``val`` rows of a training run's ``metrics.jsonl`` (their numbers
    only), as the card shows them; empty when there is no log."""
    last: dict[str, dict[str, float]] = {}
    path = Path(metrics_path)
    if not path.is_file():
        return last
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a torn last line of a killed run
            continue
        split = row.get("split") if isinstance(row, dict) else None
        if split in ("train", "val"):
            last[split] = {
                k: v
                for k, v in row.items()
                if k not in ("step", "split", "epoch", "lr", "tokens_per_s")
                and isinstance(v, (int, float))
            }
    return last


def training_facts(words_dir: str | Path, steps: int, metrics_path: str | Path) -> dict[str, Any]:
    """The ``training`` entry of a bundle's ``vidcap.json``: corpus summary, steps, final losses."""
    return {
        "corpus": corpus_summary(words_dir),
        "steps": int(steps),
        "final": final_losses(metrics_path),
        "vidcap_version": __version__,
    }


# --------------------------------------------------------------------------------------------------
# The same facts as data: for the report pages and ``GET /v1/model``


def _run_settings(folder: Path) -> dict[str, Any]:
    """Steps, learning rate, batch size and wall time from the bundle's ``manifest.json``; {}
    when the bundle was copied without it (the card describes, it does not check)."""
    try:
        data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    train = (data.get("config") or {}).get("train") or {}
    figures = {key: train[key] for key in ("max_steps", "lr", "batch_size") if key in train}
    if "wall_time_s" in data:
        figures["wall_time_s"] = data["wall_time_s"]
    return figures


def _shown_encoder(spec: str | None) -> str | None:
    """The encoder as the card shows it: a local model folder by its name
    (``hf:/home/me/models/dinov2`` → ``hf:dinov2``), not by its place on this machine."""
    if spec is None or not spec.startswith("hf:"):
        return spec
    source = spec.removeprefix("hf:")
    return f"hf:{Path(source).name}" if looks_like_path(source) else spec


def model_card(bundle: Bundle) -> dict[str, Any]:
    """The model card as a JSON-ready dict: the bundle's name, task, architecture, encoder,
    vocabulary size, extract and generation settings, and training figures (the last validation
    row). Shown by the report pages (``vidcap caption --html``) and ``vidcap serve`` at
    ``GET /v1/model``, from the same records as ``README.md``, so both say the same. No path:
    a report is zipped and sent, a server answers anyone, and the bundle's place on this machine
    is nobody else's business."""
    info = bundle.info
    folder = Path(bundle.folder)
    extract = info.get("extract", {})
    clip_s = float(extract["clip_frames"]) / float(extract["fps"]) if extract else None
    training = _run_settings(folder)
    recorded = (info.get("training") or {}).get("final")
    validation = (recorded or final_losses(folder / "metrics.jsonl")).get("val")
    if validation:
        training["validation"] = validation
    return {
        "name": folder.resolve().name,
        "task": info.get("task", "caption"),
        "arch": info.get("arch"),
        "preset": info.get("preset"),
        "parameters": (info.get("model") or {}).get("parameters"),
        "encoder": _shown_encoder((info.get("encoder") or {}).get("spec")),
        "vocabulary_size": len(bundle.vocabulary()),
        "visual_words": info.get("n_visual"),
        "extract": {
            "fps": extract.get("fps"),
            "clip_frames": extract.get("clip_frames"),
            "clip_seconds": clip_s,
            "frame_size": extract.get("size"),
        },
        "inputs": info.get("inputs", {}),
        "generation": info.get("generation", {}),
        "training": training,
    }


# --------------------------------------------------------------------------------------------------
# Rendering


def _yaml_block(metadata: dict[str, Any]) -> str:
    import yaml

    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n"


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in rows if v is not None]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _model_rows(info: dict[str, Any]) -> list[tuple[str, Any]]:
    model = info.get("model") or {}
    extract = info.get("extract") or {}
    encoder = info.get("encoder") or {}
    tree = info.get("quantize") or {}
    inputs = info.get("inputs") or {}
    arch = _ARCH_NAMES.get(info.get("arch", ""), info.get("arch"))
    params = model.get("parameters")
    reads = ["visual words"]
    if inputs.get("with_features"):
        reads.append(f"continuous clip features ({model.get('feature_dim')}-dim)")
    if inputs.get("with_transcript"):
        reads.append("the transcript")
    clip = None
    if extract:
        fps, frames = float(extract["fps"]), int(extract["clip_frames"])
        clip = (
            f"{frames} frames at {fps:g} fps ({frames / fps:g} s), frames {extract['size']} px"
            f"{', centre-cropped' if extract.get('crop') else ''}"
        )
    dim = (encoder.get("description") or {}).get("dim") or tree.get("dim")
    generation = info.get("generation") or {}
    return [
        ("task", info.get("task", "pretraining (masked modelling)")),
        (
            "architecture",
            f"{arch}, preset {info.get('preset', '?')}"
            + (f", {params / 1e6:.1f} M parameters" if params else ""),
        ),
        ("reads", ", ".join(reads) if info.get("stage") == "finetune" else None),
        (
            "clip encoder",
            f"`{encoder['spec']}` ({encoder.get('dtype', 'float32')}, weights {encoder.get('weights', 'default')}), {dim}-dim features"
            if encoder
            else None,
        ),
        ("clips", clip),
        (
            "visual words",
            f"hierarchical k-means, k={tree['k']}, depth {tree['depth']}: {info.get('n_visual')} words ({tree.get('normalize', 'l2')}-normalised features)"
            if tree.get("k")
            else info.get("n_visual"),
        ),
        (
            "generation",
            f"beam {generation['beams']}, up to {generation['max_new_tokens']} tokens"
            if generation
            else None,
        ),
        ("started from", info.get("pretrained")),
    ]


def _vocabulary_text(folder: Path) -> str | None:
    try:
        meta = json.loads((folder / VOCABULARY_FILE).read_text(encoding="utf-8"))
        lo, hi = meta["text_id_range"]
        return f"{meta['vocab_size']} tokens: {hi - lo} text pieces ({meta['kind']}) + {meta['n_visual']} visual words"
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _corpus_rows(corpus: dict[str, Any], vocabulary: str | None) -> list[tuple[str, Any]]:
    splits = ", ".join(f"{n} {s}" for s, n in corpus.get("splits", {}).items())
    return [
        ("corpus", f"`{corpus['corpus']}`" if corpus.get("corpus") else "plain video files"),
        ("kind", "synthetic shapes world (`vidcap synth`)" if corpus.get("synthetic") else None),
        ("videos", f"{corpus.get('videos')} ({splits})" if splits else corpus.get("videos")),
        ("hours", corpus.get("hours")),
        ("captioned segments", corpus.get("segments")),
        ("distinct caption words", corpus.get("caption_words")),
        ("model vocabulary", vocabulary),
    ]


def _limits(info: dict[str, Any], corpus: dict[str, Any]) -> list[str]:
    limits = []
    if corpus.get("synthetic"):
        limits.append(
            "**It knows only the synthetic shapes world**: coloured geometric shapes (circles, "
            "squares, triangles, …) moving, bouncing or rotating on plain backgrounds, as made by "
            "`vidcap synth`. On any other video (people, animals, places, screen recordings) it "
            'still answers in that world\'s words ("a red circle slides left"), and the answer is '
            "wrong. It is a demonstration and a benchmark, not a model for real videos."
        )
    elif corpus:
        hours = corpus.get("hours")
        limits.append(
            f"It knows only what its training corpus shows ({corpus.get('videos')} videos, "
            f"{hours} hours): videos unlike them get captions in the corpus's words all the same."
        )
    if info.get("stage") == "finetune":
        limits.append(
            "`vidcap caption` warns (on stderr, and with an `ood` field in JSON output) when a "
            "video's clip features are far from every training clip's; the caption is still given "
            "and should not be trusted."
        )
    limits.append(
        "It sees 1.5 s clips through one feature vector each and the visual words they map to: "
        "fine detail, text on screen, sound and speech (unless it reads a transcript) are not seen."
    )
    words = corpus.get("caption_words")
    if words:
        limits.append(f"Its captions use the words of its training captions ({words} distinct).")
    return limits


def _evaluation_section(evaluations: list[dict[str, Any]]) -> str:
    if not evaluations:
        return "Not evaluated yet: `vidcap evaluate MODEL` writes its scores here.\n"
    parts = []
    for entry in evaluations:
        report = entry["report"]
        head = f"### {report['split']} split of `{entry['corpus']}`\n\n"
        if report.get("task") == "qa":
            prior = report.get("prior_floor") or {}
            rows = [("all", report["exact_match"]["exact_match"], prior.get("exact_match"))]
            rows += [
                (kind, share, (prior.get("per_type") or {}).get(kind))
                for kind, share in report["exact_match"]["per_type"].items()
            ]
            table = "| exact match | answerer | prior floor (no video) |\n|---|---|---|\n"
            table += "".join(f"| {k} | {_number(a)} | {_number(b)} |\n" for k, a, b in rows)
            parts.append(
                f"{head}{report['questions']} questions about {report['videos']} videos.\n\n{table}"
            )
            continue
        if report.get("task") == "dense":
            parts.append(head + _dense_table(report))
            continue
        table = "| | " + " | ".join(_METRICS) + " |\n|---" + "|---" * len(_METRICS) + "|\n"
        for key, label in _ROWS:
            scores = report["scores"].get(key)
            if scores:
                table += f"| {label} | " + " | ".join(_number(scores.get(m)) for m in _METRICS)
                table += " |\n"
        text = f"{head}{report['segments']} segments of {report['videos']} videos, scored with pycocoevalcap.\n\n{table}"
        if report.get("cider_vs_ceiling") is not None:
            text += f"\nCIDEr is {report['cider_vs_ceiling']:.2f} x the reference ceiling.\n"
        facts = report.get("fact_accuracy") or {}
        if facts:
            text += "\n| fact accuracy | colour | shape | action | all |\n|---|---|---|---|---|\n"
            for key, label in _ROWS[:2]:
                row = facts.get(key)
                if row:
                    text += f"| {label} | " + " | ".join(
                        _number(row.get(c)) for c in ("colour", "shape", "action", "all")
                    )
                    text += " |\n"
        parts.append(text)
    if all(e["report"].get("task") == "dense" for e in evaluations):
        return "\n".join(parts)
    return "\n".join(parts) + (
        "\nThe floor captions each segment with the caption of the most similar training segment "
        "(mean clip feature); the ceiling scores each reference caption against the others.\n"
    )


def _dense_table(report: dict[str, Any]) -> str:
    """A dense evaluation: every row's localisation and caption scores, and its story's."""
    tious = "/".join(f"{t:g}" for t in report["tious"])
    text = (
        f"{report['events']} events in {report['videos']} videos; P, R, METEOR, CIDEr, BLEU-4 "
        f"averaged over tIoU {tious} (densevid_eval), F1 of the averages, SODA_c; story CIDEr and "
        "4-gram repetition (R@4) of each row's captions told in order.\n\n"
    )
    text += "| | " + " | ".join(_DENSE_METRICS) + " | story CIDEr | story R@4 |\n"
    text += "|---" * (len(_DENSE_METRICS) + 3) + "|\n"
    # The evaluation file is written with sorted keys: put the rows back in display order.
    order = [k for k in _DENSE_ROWS if k in report["scores"]]
    for key in order + sorted(k for k in report["scores"] if k not in _DENSE_ROWS):
        scores = report["scores"][key]
        story = (report.get("story") or {}).get(key) or {}
        cells = [_number(scores.get(m)) for m in _DENSE_METRICS]
        cells += [_number(story.get("CIDEr")), _number(story.get("R@4"))]
        text += f"| {report['labels'].get(key, key)} | " + " | ".join(cells) + " |\n"
    return text


def _model_index(info: dict[str, Any], evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hugging Face ``model-index`` results: the captioner's own scores per evaluated split."""
    results = []
    for entry in evaluations:
        report = entry["report"]
        if report.get("task") == "qa":
            metrics = [
                {"type": "exact_match", "name": "exact match", "value": v}
                for v in [report["exact_match"]["exact_match"]]
            ]
        elif report.get("task") == "dense":
            scores = report["scores"].get("model") or next(iter(report["scores"].values()))
            metrics = [
                {"type": m.lower(), "name": m, "value": round(float(scores[m]), 4)}
                for m in _DENSE_METRICS
                if scores.get(m) is not None
            ]
        else:
            scores = report["scores"]["captioner"]
            metrics = [
                {"type": m.lower(), "name": m, "value": round(float(scores[m]), 4)}
                for m in _METRICS
                if scores.get(m) is not None
            ]
        results.append(
            {
                "task": {"type": "video-text-to-text", "name": f"video {info.get('task', '')}"},
                "dataset": {
                    "name": Path(str(entry["corpus"])).parent.name or str(entry["corpus"]),
                    "type": str(entry["corpus"]),
                    "split": report["split"],
                },
                "metrics": metrics,
            }
        )
    return [{"name": _title(info), "results": results}] if results else []


def _title(info: dict[str, Any]) -> str:
    arch = _ARCH_NAMES.get(info.get("arch", ""), info.get("arch"))
    if info.get("stage") == "finetune":
        return f"vidcap {info.get('task', 'caption')} model ({arch}, {info.get('preset')})"
    return f"vidcap pretrained {arch} ({info.get('preset')})"


def render_card(
    folder: str | Path, info: dict[str, Any], evaluations: list[dict[str, Any]] | None = None
) -> str:
    """The model card of the bundle in ``folder`` whose ``vidcap.json`` is ``info``."""
    folder = Path(folder)
    evaluations = evaluations or []
    training = info.get("training") or {}
    corpus = training.get("corpus") or {}
    finetuned = info.get("stage") == "finetune"
    task = info.get("task", "caption")
    tags = ["vidcap", "video", _ARCH_NAMES.get(info.get("arch", ""), str(info.get("arch"))).lower()]
    tags.append(f"video-{task}" if finetuned else "pretraining")
    if corpus.get("synthetic"):
        tags.append("synthetic-data")
    metadata: dict[str, Any] = {"library_name": "vidcap", "tags": tags}
    if finetuned:
        metadata["pipeline_tag"] = "video-text-to-text"
    index = _model_index(info, evaluations)
    if index:
        metadata["model-index"] = index

    if finetuned:
        what = _TASK_TEXT.get(task, task)
        summary = f"A video model that {what}, trained with vidcap on {_corpus_phrase(corpus)}."
        doing = {"qa": "Answering questions about", "summary": "Summarising"}.get(
            task, "Captioning"
        )
        use = (
            f"{doing} videos like those of its training corpus, with "
            f"`{_TASK_COMMAND.get(task, 'vidcap caption VIDEO.mp4 --model {path}').format(path='MODEL')}` "
            "(MODEL is this folder). Every raw video goes through the same extract → encode → "
            "quantize settings as training (below), recorded in `vidcap.json`."
        )
    else:
        summary = f"A pretrained {_ARCH_NAMES.get(info.get('arch', ''), info.get('arch'))} over text and visual words, trained with vidcap on {_corpus_phrase(corpus)}."
        use = (
            "A starting point for `vidcap finetune` (captioning, QA, summaries)"
            + (", and zero-shot `vidcap classify`" if info.get("arch") == "videobert" else "")
            + "; it does not caption videos by itself. The folder loads in plain transformers."
        )
    if corpus.get("synthetic"):
        use += " For real videos, train a model on a real corpus: see docs/datasets.md."

    out = [_yaml_block(metadata), f"# {_title(info)}\n", summary + "\n"]
    out += ["## Intended use\n", use + "\n"]
    out += ["## Known limits\n", "".join(f"- {line}\n" for line in _limits(info, corpus))]
    out += ["## Model\n", _table(_model_rows(info))]
    if corpus:
        out += ["## Training data\n", _table(_corpus_rows(corpus, _vocabulary_text(folder)))]
    else:
        out += ["## Training data\n", "Not recorded (the bundle was written by an older vidcap).\n"]
    if training:
        final = training.get("final") or {}
        rows: list[tuple[str, Any]] = [("steps", training.get("steps"))]
        rows += [(f"final train {k}", _number(v)) for k, v in (final.get("train") or {}).items()]
        rows += [(f"final val {k}", _number(v)) for k, v in (final.get("val") or {}).items()]
        rows.append(("vidcap", training.get("vidcap_version")))
        out += ["## Training\n", _table(rows)]
    if finetuned:
        out += ["## Evaluation\n", _evaluation_section(evaluations)]
    return "\n".join(out)


def _corpus_phrase(corpus: dict[str, Any]) -> str:
    if not corpus:
        return "a corpus it does not record"
    what = "synthetic videos of coloured shapes" if corpus.get("synthetic") else "videos"
    return f"{corpus.get('videos')} {what} ({corpus.get('hours')} hours)"


# --------------------------------------------------------------------------------------------------
# Files


def read_evaluations(folder: str | Path) -> list[dict[str, Any]]:
    """The evaluations recorded beside a bundle's card (``[]`` when none, or the file is unreadable:
    the card then shows none, and the next ``vidcap evaluate`` writes it again)."""
    try:
        data = json.loads((Path(folder) / EVALUATION).read_text(encoding="utf-8"))
        entries = data.get("evaluations") if isinstance(data, dict) else None
    except (OSError, ValueError):
        return []
    return [e for e in entries or [] if isinstance(e, dict) and "report" in e and "corpus" in e]


def write_card(folder: str | Path, info: dict[str, Any]) -> Path:
    """Render the card of the bundle in ``folder`` (with its recorded evaluations) and write it
    atomically; returns its path."""
    path = Path(folder) / CARD
    atomic_write_text(path, render_card(folder, info, read_evaluations(folder)))
    return path


def record_evaluation(
    folder: str | Path, info: dict[str, Any], report: dict[str, Any], corpus: str | Path
) -> Path:
    """Add ``vidcap evaluate``'s report (its JSON) on ``corpus`` to the bundle in ``folder`` —
    replacing an earlier one of the same corpus and split — and render the card again. Each file
    is written atomically; returns the card's path.

    Raises:
        VidcapError: the bundle folder cannot be written (read-only, full).
    """
    folder = Path(folder)
    corpus = str(Path(corpus).resolve())
    kept = [
        e
        for e in read_evaluations(folder)
        if not (e["corpus"] == corpus and e["report"].get("split") == report.get("split"))
    ]
    entry = {
        "corpus": corpus,
        "evaluated_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "vidcap_version": __version__,
        "report": {k: v for k, v in report.items() if k != "examples"},
    }
    evaluations = sorted([*kept, entry], key=lambda e: (e["corpus"], e["report"].get("split")))
    try:
        atomic_write_json(folder / EVALUATION, {"evaluations": evaluations})
        return write_card(folder, info)
    except OSError as error:
        raise VidcapError(
            f"the scores could not be written into {folder}'s model card ({error.strerror or error})."
        ) from None


def card_metadata(card: str) -> dict[str, Any]:
    """The YAML metadata block at the top of a model card (``{}`` when it has none)."""
    import yaml

    match = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    try:
        loaded = yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def read_card(folder: str | Path) -> str | None:
    """The model card of the bundle in ``folder``, or None when it has none (an older vidcap)."""
    path = Path(folder) / CARD
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise VidcapError(
            f"{path} cannot be read ({error}); copy the model folder again whole."
        ) from None
