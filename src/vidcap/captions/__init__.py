"""Captions as results: timed captions per video, their output formats and a storyboard picture."""
