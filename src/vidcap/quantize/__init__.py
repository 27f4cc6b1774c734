"""Hierarchical k-means: clip features → visual words, and the codebook file that records the tree.

The names below come from :mod:`vidcap.quantize.kmeans`, which needs torch; they are loaded when
first used, so that importing :mod:`vidcap.quantize.settings` (the command line's choices) does not
load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidcap.quantize.kmeans import (
        CODEBOOK_FORMAT,
        HierarchicalKMeans,
        KMeansConfig,
        KMeansResult,
        flat_kmeans,
        node_seed,
        prepare_features,
        stack_features,
        top_words,
        words_used,
    )

__all__ = [
    "CODEBOOK_FORMAT",
    "HierarchicalKMeans",
    "KMeansConfig",
    "KMeansResult",
    "flat_kmeans",
    "node_seed",
    "prepare_features",
    "stack_features",
    "top_words",
    "words_used",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vidcap.quantize import kmeans

        return getattr(kmeans, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
