"""The dtypes of encoding, in a module without torch so that the command line can list them
(``vidcap encode --dtype / --save-dtype``) without loading it."""

from __future__ import annotations

from typing import Literal, get_args

ComputeDtype = Literal["float32", "float16", "bfloat16"]
"""What the encoder model computes in (float16 / bfloat16: autocast, for GPUs)."""
COMPUTE_DTYPES: tuple[str, ...] = get_args(ComputeDtype)

SaveDtype = Literal["float16", "float32"]
"""What the clip features are stored as on disk."""
SAVE_DTYPES: tuple[str, ...] = get_args(SaveDtype)
