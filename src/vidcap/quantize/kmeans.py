"""Hierarchical k-means: clip features → "visual words" (VideoBERT: k=12, depth 4 → 20,736 words).

The tree is fitted level by level. Level 0 splits every training clip into ``k`` clusters; level
``l`` splits each level ``l-1`` cluster into ``k`` again, so level ``l`` has ``k ** (l + 1)`` node
slots. A clip's word is its path through the tree read as a base-``k`` number::

    word = c0 * k**(depth-1) + c1 * k**(depth-2) + ... + c_{depth-1}

so the id of a node at level ``l`` is the prefix ``word // k**(depth-1-l)`` — every level's node ids
are in the same order as the words beneath them, and the vocabulary is exactly ``k ** depth``.

Early stop. A node that receives fewer than ``k`` training points is not split; its ``k`` child
slots (and all slots beneath them) get a copy of its centroid so every word id has a centroid, and
assignment sends its points to the *first* child (``parent * k``) at every lower level. Those copies
are marked "not fitted"; :attr:`HierarchicalKMeans.word_mask` says which words assignment can ever
return.

Backends. Each node is one flat k-means (k-means++ initialisation, then Lloyd's iterations):

* ``sklearn`` — scikit-learn's ``KMeans(algorithm="lloyd")``: well kept, exact, OpenMP-parallel and
  fast on the CPU. The default on the CPU.
* ``torch`` — the same algorithm (greedy k-means++ as scikit-learn does it, Lloyd, scikit-learn's
  tolerance rule and empty-cluster relocation) on torch tensors, so it runs on a GPU; distances are
  computed in row chunks so 1M x 1024 features fit in memory. The default for ``device="cuda"``.

Each node's random seed is derived from ``(seed, level, node id)``, so results do not depend on the
order nodes are fitted in. Features are float32 throughout; with ``normalize="l2"`` every feature
(fit and assign alike) is divided by its L2 norm, and a zero vector stays zero.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidcap.artifacts import atomic_path
from vidcap.artifacts.damage import damaged, reading, rerun_stage
from vidcap.devices import check_device_name, resolve_device
from vidcap.errors import VidcapError
from vidcap.quantize.settings import BACKENDS, NORMALIZATIONS, KMeansBackend, Normalization

CODEBOOK_FORMAT = "vidcap.codebook.v1"

# The leaf centroid table is k**depth x dim float32; refuse trees whose table would not fit easily.
_MAX_CODEBOOK_BYTES = 8 * 2**30
# Features are validated, converted and normalised in blocks of about this many values (64 MB of
# float32), so a 1M x 1024 float16 / float64 input never needs a second full-size temporary.
_BLOCK_VALUES = 1 << 24
# Upper bound on the [rows, clusters] distance block the torch backend materialises at once.
_DIST_VALUES = 1 << 26


# --------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class KMeansConfig:
    """Settings of the hierarchical k-means (the defaults are VideoBERT's tree)."""

    k: int = 12  # clusters per node
    depth: int = 4  # levels; the vocabulary has k ** depth words
    normalize: Normalization = "l2"  # how features are scaled before fitting and assigning
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (cuda when available)
    backend: KMeansBackend = "auto"  # auto: torch on a GPU, scikit-learn on the CPU
    n_init: int = 1  # k-means++ restarts per node; the lowest inertia wins
    max_iter: int = 100  # Lloyd iterations per restart
    tol: float = 1e-4  # relative to the node's mean feature variance, as in scikit-learn

    def __post_init__(self) -> None:
        if self.k < 2:
            raise VidcapError(f"--k must be at least 2, got {self.k}.")
        if self.depth < 1:
            raise VidcapError(f"--depth must be at least 1, got {self.depth}.")
        if self.normalize not in NORMALIZATIONS:
            raise VidcapError(
                f"--normalize must be {' or '.join(NORMALIZATIONS)}, got {self.normalize!r}."
            )
        if self.backend not in BACKENDS:
            raise VidcapError(
                f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}."
            )
        if self.n_init < 1:
            raise VidcapError(f"--n-init must be at least 1, got {self.n_init}.")
        if self.max_iter < 1:
            raise VidcapError(f"--max-iter must be at least 1, got {self.max_iter}.")
        if not self.tol >= 0:
            raise VidcapError(f"--tol must be >= 0, got {self.tol}.")
        if not 0 <= self.seed < 2**63:
            raise VidcapError(f"--seed must be a non-negative integer, got {self.seed}.")
        if self.k**self.depth >= 2**62:
            raise VidcapError(f"k={self.k} and depth={self.depth} give too many words to number.")
        check_device_name(self.device)
        if self.backend == "sklearn" and self.device.startswith("cuda"):
            raise VidcapError(
                "The scikit-learn backend runs on the CPU only; use --backend torch (or auto) "
                "with --device cuda."
            )

    @property
    def vocab_size(self) -> int:
        """Number of words: ``k ** depth``."""
        return self.k**self.depth

    def resolved_device(self) -> str:
        """The torch device name to use (``auto`` resolved; a missing GPU is an error)."""
        return str(resolve_device(self.device))

    def resolved_backend(self) -> str:
        """The backend that will fit the nodes: ``sklearn`` or ``torch``."""
        if self.backend != "auto":
            return self.backend
        if self.resolved_device().startswith("cuda"):
            return "torch"
        # scikit-learn is the reference on the CPU; without it the torch backend does the same job.
        try:
            import sklearn.cluster  # noqa: F401
        except ImportError:
            return "torch"
        return "sklearn"


# --------------------------------------------------------------------------------------------------
# Feature checks and normalisation


def stack_features(arrays: Sequence[np.ndarray], names: Sequence[str] | None = None) -> np.ndarray:
    """Stack per-video feature arrays ``[clips_i, dim]`` into one float32 ``[sum clips_i, dim]``.

    Raises:
        VidcapError: an array is not 2-D, or two arrays have different feature dims (the message
            names the first item whose dim differs, from ``names`` when given).
    """
    if not arrays:
        raise VidcapError("There are no clip features to stack.")
    label = list(names) if names is not None else [f"array {i}" for i in range(len(arrays))]
    dim = None
    for name, array in zip(label, arrays, strict=True):
        if np.ndim(array) != 2:
            raise VidcapError(
                f"Features of {name} have shape {np.shape(array)}, but [clips, dim] was expected."
            )
        if dim is None:
            dim = array.shape[1]
            first = name
        elif array.shape[1] != dim:
            raise VidcapError(
                f"Features have different dims: {first} has {dim} but {name} has "
                f"{array.shape[1]}; encode every video with the same encoder."
            )
    out = np.empty((sum(a.shape[0] for a in arrays), dim), dtype=np.float32)
    row = 0
    for array in arrays:
        out[row : row + array.shape[0]] = array
        row += array.shape[0]
    return out


def _check_matrix(features: Any, dim: int | None = None) -> np.ndarray:
    """``features`` as a 2-D real array (not yet converted), with its dim checked against ``dim``."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    array = np.asarray(features)
    if array.ndim != 2:
        raise VidcapError(
            f"Features must be a 2-D array [clips, dim], but got shape {array.shape}."
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise VidcapError(f"Features must be numbers, but their dtype is {array.dtype}.")
    if array.shape[1] == 0:
        raise VidcapError("Features have dim 0; the encoder produced empty vectors.")
    if dim is not None and array.shape[1] != dim:
        raise VidcapError(
            f"Features have dim {array.shape[1]}, but the codebook was fitted on dim {dim}; "
            "encode with the same encoder the codebook was made from."
        )
    return array


def _prepare_block(block: np.ndarray, normalize: str, first_row: int) -> np.ndarray:
    """One block of rows as float32, checked for NaN/inf and normalised (a fresh array)."""
    with np.errstate(over="ignore"):  # float64 values beyond float32 become inf, reported below
        out = np.array(block, dtype=np.float32, copy=True, order="C")
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = first_row + int(np.flatnonzero(~finite)[0])
        raise VidcapError(
            f"Features contain NaN or infinite values (first at row {bad}, or values too large "
            "for float32); re-encode those clips or drop them."
        )
    if normalize == "l2":
        # Norms in float64: squaring large float32 values would overflow.
        norms = np.sqrt(np.einsum("ij,ij->i", out, out, dtype=np.float64))
        # A zero vector stays zero (scale 1) instead of becoming NaN.
        scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 1.0)
        out *= scale.astype(np.float32)[:, None]
    return out


def _block_rows(dim: int) -> int:
    return max(1, _BLOCK_VALUES // max(dim, 1))


def prepare_features(features: Any, normalize: str = "l2", dim: int | None = None) -> np.ndarray:
    """Validate features and return them as a new C-contiguous float32 array, normalised.

    Args:
        features: ``[clips, dim]`` numbers (any float or int dtype, numpy or torch).
        normalize: ``l2`` (each row divided by its norm; zero rows stay zero) or ``none``.
        dim: the expected feature dim, when known.

    Raises:
        VidcapError: not 2-D, wrong dim, or NaN / infinite values.
    """
    array = _check_matrix(features, dim)
    out = np.empty(array.shape, dtype=np.float32)
    step = _block_rows(array.shape[1])
    for start in range(0, array.shape[0], step):
        out[start : start + step] = _prepare_block(array[start : start + step], normalize, start)
    return out


# --------------------------------------------------------------------------------------------------
# One flat k-means (a node of the tree)


@dataclass
class KMeansResult:
    """A flat k-means fit: centers ``[k, d]`` float32, labels ``[n]`` int64, inertia (sum of
    squared distances of the points to their centers) and Lloyd iterations of the kept run."""

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int


def flat_kmeans(
    features: np.ndarray | torch.Tensor,
    k: int,
    *,
    backend: str = "sklearn",
    seed: int = 0,
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> KMeansResult:
    """Flat k-means (k-means++ initialisation, Lloyd iterations) of already-prepared features.

    ``features`` is float32 ``[n, d]`` with ``n >= k``: a numpy array for ``sklearn``; for ``torch``
    a numpy array or a tensor on the device to run on. Fewer *distinct* points than ``k`` is fine:
    some centers then coincide (scikit-learn's ConvergenceWarning about it is silenced).
    """
    if backend == "sklearn":
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        return _kmeans_sklearn(features, k, seed, n_init, max_iter, tol, copy=True)
    if backend == "torch":
        x = torch.from_numpy(features) if isinstance(features, np.ndarray) else features
        return _kmeans_torch(x, k, seed, n_init, max_iter, tol)
    raise VidcapError(f"Unknown k-means backend {backend!r}; use sklearn or torch.")


def _kmeans_sklearn(
    x: np.ndarray, k: int, seed: int, n_init: int, max_iter: int, tol: float, copy: bool
) -> KMeansResult:
    try:
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning
    except ImportError:
        raise VidcapError(
            "The scikit-learn k-means backend needs scikit-learn (pip install scikit-learn); "
            "or use --backend torch."
        ) from None
    model = KMeans(
        n_clusters=k,
        init="k-means++",
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        random_state=seed,
        algorithm="lloyd",
        # copy_x=False centres the array in place and adds the mean back afterwards, which can
        # change it by rounding: only for arrays the tree owns (never the caller's).
        copy_x=copy,
    )
    with warnings.catch_warnings():
        # "Number of distinct clusters found smaller than n_clusters": duplicate clips. Not an error
        # here; the duplicate centers simply get no points and their subtrees stop early.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x)
    return KMeansResult(
        centers=np.ascontiguousarray(model.cluster_centers_, dtype=np.float32),
        labels=model.labels_.astype(np.int64),
        inertia=float(model.inertia_),
        n_iter=int(model.n_iter_),
    )


def _sqdist(x: torch.Tensor, x_sq: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[rows, clusters]`` (expanded form, clamped at 0 against rounding)."""
    d = torch.addmm((c * c).sum(1)[None, :], x, c.T, alpha=-2.0)
    d += x_sq[:, None]
    return d.clamp_min_(0.0)


def _nearest(
    x: torch.Tensor, x_sq: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest center and its squared distance per row, in row chunks to bound memory."""
    n = x.shape[0]
    step = max(1, _DIST_VALUES // max(c.shape[0], 1))
    if n <= step:
        dmin, labels = _sqdist(x, x_sq, c).min(1)
        return labels, dmin
    labels = torch.empty(n, dtype=torch.long, device=x.device)
    dmin = torch.empty(n, dtype=x.dtype, device=x.device)
    for s in range(0, n, step):
        dmin[s : s + step], labels[s : s + step] = _sqdist(
            x[s : s + step], x_sq[s : s + step], c
        ).min(1)
    return labels, dmin


def _cluster_sums(x: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per-cluster sums of rows. CPU: index_add_ (deterministic there). CUDA: a one-hot matmul,
    because index_add_ on CUDA uses float atomics whose summation order varies run to run."""
    if x.device.type == "cpu":
        return torch.zeros(k, x.shape[1], dtype=x.dtype).index_add_(0, labels, x)
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)
    step = max(1, _DIST_VALUES // k)
    for s in range(0, x.shape[0], step):
        onehot = torch.nn.functional.one_hot(labels[s : s + step], k).to(x.dtype)
        sums += onehot.T @ x[s : s + step]
    return sums


def _kmeans_pp(x: torch.Tensor, x_sq: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ exactly as scikit-learn does it: each new center is the best (lowest
    potential) of ``2 + log k`` candidates sampled in proportion to squared distance."""
    n, dev = x.shape[0], x.device
    trials = 2 + int(math.log(k))
    centers = torch.empty(k, x.shape[1], dtype=x.dtype, device=dev)
    first = torch.randint(n, (1,), generator=gen, device=dev)
    centers[0] = x[first[0]]
    closest = _sqdist(x, x_sq, centers[:1])[:, 0]
    pot = closest.sum(dtype=torch.float64)
    for c in range(1, k):
        # float64 cumulative sum: over 1M float32 distances a float32 running sum loses the tail.
        cum = torch.cumsum(closest, 0, dtype=torch.float64)
        r = torch.rand(trials, generator=gen, device=dev, dtype=torch.float64) * pot
        cand = torch.searchsorted(cum, r).clamp_(max=n - 1)
        dist = torch.minimum(_sqdist(x, x_sq, x[cand]), closest[:, None])
        pots = dist.sum(0, dtype=torch.float64)
        best = torch.argmin(pots)
        pot = pots[best]
        closest = dist[:, best].contiguous()
        centers[c] = x[cand[best]]
    return centers


def _kmeans_torch(
    x: torch.Tensor, k: int, seed: int, n_init: int, max_iter: int, tol: float
) -> KMeansResult:
    x = x.to(torch.float32)
    # Centre the data (as scikit-learn does): the expanded distance |x|^2 - 2x.c + |c|^2 loses
    # precision in float32 when the points sit far from the origin.
    mean = x.mean(0)
    xc = x - mean
    x_sq = (xc * xc).sum(1)
    # scikit-learn's tolerance: tol x the mean per-feature variance, i.e. of the centred data
    # mean(|x|^2) / d (cheaper than Tensor.var over dim 0, a slow strided reduction on the CPU).
    tol_abs = float(tol) * float(x_sq.sum(dtype=torch.float64)) / x.numel() if tol > 0 else 0.0
    gen = torch.Generator(device=x.device)
    gen.manual_seed(seed)
    best: tuple[float, torch.Tensor, torch.Tensor, int] | None = None
    for _ in range(n_init):
        centers = _kmeans_pp(xc, x_sq, k, gen)
        labels_old = None
        n_iter = 0
        for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported)
            labels, dmin = _nearest(xc, x_sq, centers)
            if labels_old is not None and torch.equal(labels, labels_old):
                break  # strict convergence: the centers would not move
            counts = torch.bincount(labels, minlength=k)
            new = _cluster_sums(xc, labels, k) / counts.clamp_min(1)[:, None].to(xc.dtype)
            empty = counts == 0
            if bool(empty.any()):
                # As scikit-learn: move empty clusters onto the points farthest from their centers.
                far = torch.topk(dmin, int(empty.sum())).indices
                new[empty] = xc[far]
            shift = float(((new - centers) ** 2).sum())
            centers = new
            labels_old = labels
            if shift <= tol_abs:
                break
        # A final E-step so the labels match the returned centers.
        labels, dmin = _nearest(xc, x_sq, centers)
        inertia = float(dmin.sum(dtype=torch.float64))
        if best is None or inertia < best[0]:
            best = (inertia, centers, labels, n_iter)
    assert best is not None
    inertia, centers, labels, n_iter = best
    return KMeansResult(
        centers=(centers + mean).cpu().numpy().astype(np.float32, copy=False),
        labels=labels.cpu().numpy().astype(np.int64, copy=False),
        inertia=inertia,
        n_iter=n_iter,
    )


def node_seed(seed: int, level: int, node: int) -> int:
    """The random seed of one node: a hash of ``(seed, level, node)``, so a node's fit does not
    depend on which nodes were fitted before it."""
    state = np.random.SeedSequence(entropy=seed, spawn_key=(level, node)).generate_state(1)
    return int(state[0])


# --------------------------------------------------------------------------------------------------
# The tree


class HierarchicalKMeans:
    """A fitted tree of k-means; maps clip features to word ids in ``[0, k ** depth)``.

    Attributes:
        k, depth, dim, normalize: the tree's shape and how features are scaled.
        level_centroids: per level ``l``, ``[k ** (l + 1), dim]`` float32, row = node id.
        level_fitted: per level, ``[k ** (l + 1)]`` bool: the slot is a fitted k-means center
            (False: a copy of its parent's centroid under an early-stopped node).
        node_inertia: per level ``l``, ``[k ** l]`` float64: inertia of the k-means that split each
            parent node into this level's children (NaN where the parent was not split).
        node_sizes: per level ``l``, ``[k ** l]`` int64: training points in each parent node.
        level_inertia: per level, the sum of squared distances of the training points to their
            level-``l`` centroid (split nodes: their k-means inertia; early-stopped ones: distances
            to the copied centroid), so it never increases with depth.
        info: seed, backend, n_init, max_iter, tol and the number of points fitted on.
    """

    def __init__(
        self,
        *,
        k: int,
        depth: int,
        normalize: str,
        level_centroids: Sequence[np.ndarray],
        level_fitted: Sequence[np.ndarray],
        node_inertia: Sequence[np.ndarray] | None = None,
        node_sizes: Sequence[np.ndarray] | None = None,
        level_inertia: Sequence[float] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.k = int(k)
        self.depth = int(depth)
        self.normalize = normalize
        self.level_centroids = [np.ascontiguousarray(c, dtype=np.float32) for c in level_centroids]
        self.level_fitted = [np.asarray(f, dtype=bool) for f in level_fitted]
        self.dim = int(self.level_centroids[0].shape[1]) if self.level_centroids else 0
        self.node_inertia = [
            np.asarray(a, dtype=np.float64)
            for a in (node_inertia or [np.full(k**lv, np.nan) for lv in range(depth)])
        ]
        self.node_sizes = [
            np.asarray(a, dtype=np.int64)
            for a in (node_sizes or [np.zeros(k**lv, np.int64) for lv in range(depth)])
        ]
        self.level_inertia = [float(v) for v in (level_inertia or [math.nan] * depth)]
        self.info = dict(info or {})
        self._check_shapes()
        self._device_cache: dict[str, list[torch.Tensor]] = {}

    def _check_shapes(self) -> None:
        """Raise VidcapError when the arrays do not form a k-ary tree of the stated depth."""
        k, depth = self.k, self.depth
        ok = (
            k >= 2
            and depth >= 1
            and self.normalize in NORMALIZATIONS
            and len(self.level_centroids) == depth
            and len(self.level_fitted) == depth
            and len(self.node_inertia) == depth
            and len(self.node_sizes) == depth
            and len(self.level_inertia) == depth
            and self.dim > 0
        )
        if ok:
            for lv in range(depth):
                ok = ok and self.level_centroids[lv].shape == (k ** (lv + 1), self.dim)
                ok = ok and self.level_fitted[lv].shape == (k ** (lv + 1),)
                ok = ok and self.node_inertia[lv].shape == (k**lv,)
                ok = ok and self.node_sizes[lv].shape == (k**lv,)
        if not ok:
            raise VidcapError(
                f"The codebook arrays do not form a k={k}, depth={depth} tree; the file is damaged "
                "or was not written by vidcap."
            )

    # -- shape -----------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of word ids: ``k ** depth``."""
        return self.k**self.depth

    @property
    def leaf_centroids(self) -> np.ndarray:
        """``[vocab_size, dim]`` float32; row ``w`` is word ``w``'s centroid (every id has one)."""
        return self.level_centroids[-1]

    def level_reachable(self, level: int) -> np.ndarray:
        """``[k ** (level + 1)]`` bool: node ids at ``level`` that assignment can return (fitted
        centers, and the first child slot of each early-stopped node)."""
        reach = self.level_fitted[0].copy()
        for lv in range(1, level + 1):
            first_child = np.arange(self.k ** (lv + 1)) % self.k == 0
            reach = self.level_fitted[lv] | (first_child & np.repeat(reach, self.k))
        return reach

    @property
    def word_mask(self) -> np.ndarray:
        """``[vocab_size]`` bool: the words assignment can return; the others are padding ids whose
        centroid is a copy of an early-stopped ancestor's."""
        return self.level_reachable(self.depth - 1)

    # -- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, features: Any, config: KMeansConfig | None = None) -> HierarchicalKMeans:
        """Fit the tree on ``features`` ``[clips, dim]`` (every clip given is used; sampling a
        subset, ``--fit-samples``, is the caller's choice).

        Memory: the input, one float32 copy of it (normalised), and one node's rows at a time —
        about 2 x 4 GB for 1M x 1024 float32 features. With the torch backend on a GPU the float32
        copy also lives on the GPU, plus a centred copy of the largest node (the root).

        Raises:
            VidcapError: features not 2-D, NaN / infinite values, fewer clips than ``k``, a
                codebook too large for memory, or a CUDA device that is not there.
        """
        config = config or KMeansConfig()
        k, depth = config.k, config.depth
        array = _check_matrix(features)
        n, dim = array.shape
        if n < k:
            raise VidcapError(
                f"Hierarchical k-means needs at least k={k} clips to fit, but got {n}; "
                "add videos or use a smaller --k."
            )
        table_bytes = config.vocab_size * dim * 4
        if table_bytes > _MAX_CODEBOOK_BYTES:
            raise VidcapError(
                f"k={k}, depth={depth} and dim {dim} need a {table_bytes / 2**30:.1f} GiB codebook; "
                "use a smaller --k or --depth."
            )
        backend = config.resolved_backend()
        device = config.resolved_device()
        x = prepare_features(array, config.normalize)
        fit_node = _node_fitter(x, backend, device, config)

        level_centroids: list[np.ndarray] = []
        level_fitted: list[np.ndarray] = []
        node_inertia: list[np.ndarray] = []
        node_sizes: list[np.ndarray] = []
        level_inertia: list[float] = []
        paths = np.zeros(n, dtype=np.int64)  # each point's node id at the previous level
        for level in range(depth):
            n_parents = k**level
            parents = level_centroids[-1] if level else None
            # Start every child slot as a copy of its parent; split nodes overwrite theirs.
            centroids = (
                np.repeat(parents, k, axis=0)
                if parents is not None
                else np.zeros((k, dim), dtype=np.float32)
            )
            fitted = np.zeros(k ** (level + 1), dtype=bool)
            sizes = np.bincount(paths, minlength=n_parents).astype(np.int64)
            inertia = np.full(n_parents, np.nan)
            order = np.argsort(paths, kind="stable")  # stable: each node's rows stay ascending
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            child_paths = paths * k  # early-stopped nodes send their points to the first child
            total = 0.0
            for parent in np.flatnonzero(sizes):
                rows = order[bounds[parent] : bounds[parent + 1]]
                if sizes[parent] < k:
                    assert parents is not None  # the root has n >= k points
                    diff = x[rows].astype(np.float64) - parents[parent]
                    total += float((diff * diff).sum())
                    continue
                result = fit_node(
                    None if level == 0 else rows, node_seed(config.seed, level, int(parent))
                )
                lo = int(parent) * k
                centroids[lo : lo + k] = result.centers
                fitted[lo : lo + k] = True
                child_paths[rows] = lo + result.labels
                inertia[parent] = result.inertia
                total += result.inertia
            level_centroids.append(centroids)
            level_fitted.append(fitted)
            node_inertia.append(inertia)
            node_sizes.append(sizes)
            level_inertia.append(total)
            paths = child_paths

        info = {
            "seed": config.seed,
            "backend": backend,
            "n_init": config.n_init,
            "max_iter": config.max_iter,
            "tol": config.tol,
            "n_fit": n,
        }
        return cls(
            k=k,
            depth=depth,
            normalize=config.normalize,
            level_centroids=level_centroids,
            level_fitted=level_fitted,
            node_inertia=node_inertia,
            node_sizes=node_sizes,
            level_inertia=level_inertia,
            info=info,
        )

    # -- assignment ------------------------------------------------------------------------------
    def assign(self, features: Any, *, batch_size: int = 65536, device: str = "cpu") -> np.ndarray:
        """Word ids ``[clips]`` int64 in ``[0, vocab_size)`` for ``features`` ``[clips, dim]``.

        Features are normalised as at fit time and sent down the tree ``batch_size`` rows at a time
        (bounding memory to a few ``batch_size x dim`` blocks) with matmul distances on ``device``.

        Raises:
            VidcapError: not 2-D, a dim other than the codebook's, or NaN / infinite values.
        """
        return self.assign_path(features, batch_size=batch_size, device=device)[:, -1]

    def assign_path(
        self, features: Any, *, batch_size: int = 65536, device: str = "cpu"
    ) -> np.ndarray:
        """Node ids at every level, ``[clips, depth]`` int64; the last column is the word id."""
        if batch_size < 1:
            raise VidcapError(f"--batch-size must be >= 1, got {batch_size}.")
        array = _check_matrix(features, self.dim)
        dev = str(resolve_device(device))
        out = np.empty((array.shape[0], self.depth), dtype=np.int64)
        for start in range(0, array.shape[0], batch_size):
            block = _prepare_block(array[start : start + batch_size], self.normalize, start)
            out[start : start + len(block)] = self._descend(block, dev)
        return out

    def _centroids_on(self, device: str) -> list[torch.Tensor]:
        if device not in self._device_cache:
            self._device_cache[device] = [
                torch.from_numpy(c).to(device) for c in self.level_centroids
            ]
        return self._device_cache[device]

    def _descend(self, x_np: np.ndarray, device: str) -> np.ndarray:
        """Send prepared rows down the tree; returns ``[rows, depth]`` node ids."""
        k = self.k
        x = torch.from_numpy(x_np).to(device)
        centroids = self._centroids_on(device)
        out = np.empty((len(x_np), self.depth), dtype=np.int64)
        parent = np.zeros(len(x_np), dtype=np.int64)
        for level in range(self.depth):
            child = parent * k  # early-stopped parents: their first child
            split = self.level_fitted[level][::k]  # [k ** level]: was this parent split?
            order = np.argsort(parent, kind="stable")
            nodes, starts = np.unique(parent[order], return_index=True)
            ends = np.append(starts[1:], len(order))
            for node, s, e in zip(nodes.tolist(), starts.tolist(), ends.tolist(), strict=True):
                if not split[node]:
                    continue
                rows = order[s:e]
                c = centroids[level][node * k : node * k + k]
                # Distances relative to the children's mean keep float32 precise even when the
                # features sit far from the origin (normalize="none").
                center = c.mean(0)
                cc = c - center
                if e - s == len(x):
                    xr = x - center
                else:
                    xr = x.index_select(0, torch.from_numpy(rows).to(device))
                    xr -= center
                score = torch.addmm((cc * cc).sum(1)[None, :], xr, cc.T, alpha=-2.0)
                best = score.argmin(1).cpu().numpy()
                child[rows] = node * k + best
            out[:, level] = child
            parent = child
        return out

    # -- persistence -----------------------------------------------------------------------------
    def metadata(self) -> dict[str, str]:
        """The string metadata stored in the safetensors header."""
        meta = {
            "format": CODEBOOK_FORMAT,
            "k": str(self.k),
            "depth": str(self.depth),
            "dim": str(self.dim),
            "normalize": self.normalize,
            "level_inertia": json.dumps(self.level_inertia),
            "info": json.dumps(self.info, sort_keys=True),
        }
        for key in ("seed", "backend", "n_fit"):
            if key in self.info:
                meta[key] = str(self.info[key])
        return meta

    def tensors(self) -> dict[str, np.ndarray]:
        """The arrays stored in the codebook file, by name."""
        out = {"centroids": self.leaf_centroids}
        for lv in range(self.depth):
            if lv < self.depth - 1:
                out[f"level{lv}.centroids"] = self.level_centroids[lv]
            out[f"level{lv}.fitted"] = self.level_fitted[lv].astype(np.uint8)
            out[f"level{lv}.node_inertia"] = self.node_inertia[lv]
            out[f"level{lv}.node_sizes"] = self.node_sizes[lv]
        return {name: np.ascontiguousarray(a) for name, a in out.items()}

    def save(self, path: str | Path) -> Path:
        """Write the codebook to ``path`` (safetensors, atomically): ``centroids`` is the leaf table
        ``[k ** depth, dim]`` in word-id order; ``level{l}.*`` hold the inner levels and stats."""
        from safetensors.numpy import save_file

        path = Path(path)
        with atomic_path(path) as tmp:
            save_file(self.tensors(), str(tmp), metadata=self.metadata())
        return path

    @classmethod
    def load(cls, path: str | Path, remedy: str | None = None) -> HierarchicalKMeans:
        """Read a codebook written by :meth:`save` (safetensors only; nothing is unpickled).

        ``remedy`` is what to do when it is missing or damaged: by default, write the quantize
        folder holding it again (a bundle's copy says to copy the bundle again).

        Raises:
            VidcapError: missing file, not a safetensors file, or not a vidcap codebook.
        """
        from safetensors import safe_open

        path = Path(path)
        remedy = remedy or rerun_stage("quantize", path.parent)
        with reading(path, remedy), safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        if meta.get("format") != CODEBOOK_FORMAT:
            raise damaged(
                path, remedy, f"is not a vidcap codebook (its format is {meta.get('format')!r})"
            )
        with reading(path, remedy, KeyError, ValueError, TypeError):
            k, depth = int(meta["k"]), int(meta["depth"])
            levels = [tensors[f"level{lv}.centroids"] for lv in range(depth - 1)]
            levels.append(tensors["centroids"])
            return cls(
                k=k,
                depth=depth,
                normalize=meta["normalize"],
                level_centroids=levels,
                level_fitted=[tensors[f"level{lv}.fitted"].astype(bool) for lv in range(depth)],
                node_inertia=[tensors[f"level{lv}.node_inertia"] for lv in range(depth)],
                node_sizes=[tensors[f"level{lv}.node_sizes"] for lv in range(depth)],
                level_inertia=json.loads(meta["level_inertia"]),
                info=json.loads(meta.get("info", "{}")),
            )

    # -- reporting -------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about the tree, for manifests and reports."""
        return {
            "k": self.k,
            "depth": self.depth,
            "dim": self.dim,
            "vocab_size": self.vocab_size,
            "normalize": self.normalize,
            "reachable_words": int(self.word_mask.sum()),
            "nodes_split": [int(np.isfinite(a).sum()) for a in self.node_inertia],
            "level_inertia": self.level_inertia,
            **self.info,
        }

    def __repr__(self) -> str:
        return (
            f"HierarchicalKMeans(k={self.k}, depth={self.depth}, dim={self.dim}, "
            f"normalize={self.normalize!r}, vocab_size={self.vocab_size})"
        )


def _node_fitter(x: np.ndarray, backend: str, device: str, config: KMeansConfig):
    """A function ``(rows or None for all, seed) -> KMeansResult`` fitting one node of ``x``."""
    k, n_init, max_iter, tol = config.k, config.n_init, config.max_iter, config.tol
    if backend == "sklearn":

        def fit_sklearn(rows: np.ndarray | None, seed: int) -> KMeansResult:
            # No copy inside scikit-learn: x is fit()'s own float32 array and node subsets are
            # fresh copies. At the root that saves a full copy (4 GB at 1M x 1024); scikit-learn's
            # centring there may move x's values by a float32 rounding, deterministically.
            return _kmeans_sklearn(
                x if rows is None else x[rows], k, seed, n_init, max_iter, tol, copy=False
            )

        return fit_sklearn

    # The whole feature matrix moves to the device once; nodes index into it there.
    xt = torch.from_numpy(x).to(device)

    def fit_torch(rows: np.ndarray | None, seed: int) -> KMeansResult:
        sub = xt if rows is None else xt[torch.from_numpy(rows).to(device)]
        return _kmeans_torch(sub, k, seed, n_init, max_iter, tol)

    return fit_torch


# --------------------------------------------------------------------------------------------------
# Word statistics


def words_used(ids: np.ndarray) -> int:
    """How many distinct word ids occur in ``ids``."""
    return int(np.unique(np.asarray(ids)).size)


def top_words(counts: np.ndarray, n: int = 10) -> list[tuple[int, int]]:
    """The ``n`` most frequent words as ``(word, count)``, most frequent first (ties: lower id),
    from ``counts``, the clips per word id (``np.bincount`` of the ids): a folder's counts add up
    a video at a time, without every clip's word held at once."""
    used = np.flatnonzero(counts)
    order = used[np.lexsort((used, -counts[used]))][:n]
    return [(int(w), int(counts[w])) for w in order]
