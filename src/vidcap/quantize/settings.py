"""The fixed choices of the hierarchical k-means, in a module without torch so that the command
line can list them (``vidcap quantize --normalize``) without loading it."""

from __future__ import annotations

from typing import Literal, get_args

Normalization = Literal["l2", "none"]
"""How features are scaled before fitting and assigning: to unit L2 norm, or not at all."""
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)

KMeansBackend = Literal["auto", "sklearn", "torch"]
"""What fits each node: scikit-learn (CPU), torch (CPU or GPU), or auto (torch on a GPU)."""
BACKENDS: tuple[str, ...] = get_args(KMeansBackend)
