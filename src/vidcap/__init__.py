"""vidcap: end-to-end video captioning, from a folder of videos to captions."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
