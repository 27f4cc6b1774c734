"""Captions as results: timed captions per video, their output formats (text, JSON, SRT, WebVTT)
and a storyboard picture."""
