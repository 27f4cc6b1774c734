"""Datasets: the synthetic corpus vidcap generates itself (``synth``) and importers for public
ones (``importers``). Import the submodules; this package imports nothing, so that the CLI's
startup does not pay for OpenCV."""
