"""vidcap: end-to-end video captioning, from a folder of videos to captions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vidcap._version import __version__

__all__ = ["Captioner", "__version__"]

if TYPE_CHECKING:
    from vidcap.inference.captioner import Captioner


def __getattr__(name: str) -> Any:
    # Imported on first use: `import vidcap` (the CLI's startup) must not pay for torch.
    if name == "Captioner":
        from vidcap.inference.captioner import Captioner

        return Captioner
    raise AttributeError(f"module 'vidcap' has no attribute {name!r}")
