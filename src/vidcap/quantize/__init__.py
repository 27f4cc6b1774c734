"""Hierarchical k-means: clip features → visual words, and the codebook file that records the tree."""

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
