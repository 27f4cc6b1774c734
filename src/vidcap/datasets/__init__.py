"""Datasets: importers for public captioned video datasets (``importers``); the synthetic corpus
vidcap generates itself is :mod:`vidcap.synth`. Import the submodules; this package imports
nothing, so that the CLI's startup does not pay for them."""
