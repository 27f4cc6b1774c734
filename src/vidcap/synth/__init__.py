"""The synthetic benchmark world: a captioned video corpus of coloured shapes that move, grow,
shrink, rotate or bounce, whose ground truth is known.

Each video has one or two objects on a low-saturation background and one to four events in
sequence; in each event one object acts while the other stays still. Every event becomes a segment
with paraphrased captions; each video also gets summaries, a noisy ASR-like transcript, questions
and answers, and its ground truth in ``meta``. The corpus is a known quantity, so a whole vidcap
pipeline can be run and measured offline.

This package is used by ``vidcap synth``, ``vidcap demo``, the tests and the benchmarks; general
vidcap code never imports it (the evaluation reads the synthetic ground truth only through
:mod:`vidcap.synth.facts`). Import the submodules; this package imports nothing, so that
``import vidcap.synth`` pays for neither OpenCV nor torch:

- :mod:`vidcap.synth.plan`: :class:`~vidcap.synth.plan.SynthConfig`, splits, held-out
  combinations and every video's ground truth (:func:`~vidcap.synth.plan.plan_corpus`).
- :mod:`vidcap.synth.render`: drawing a planned video to an mp4 (OpenCV), in worker processes.
- :mod:`vidcap.synth.records`: transcripts, ground truth, corpus records and
  :func:`~vidcap.synth.records.generate_corpus`, which plans, renders and writes a corpus.
- :mod:`vidcap.synth.lexicon`: colours, shapes, actions and the words captions use for them.
- :mod:`vidcap.synth.facts`: a segment's ground truth, fact accuracy of captions and the labels of
  zero-shot classification.
"""
