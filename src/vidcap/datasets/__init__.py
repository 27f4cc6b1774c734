"""Datasets vidcap can generate itself, for running and measuring the pipeline offline."""

from __future__ import annotations

from vidcap.datasets.synth import SynthConfig, generate_corpus

__all__ = ["SynthConfig", "generate_corpus"]
