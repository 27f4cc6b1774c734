"""Hierarchical k-means: planted clusters, degenerate inputs, determinism, the codebook file, figure."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from vidcap.errors import VidcapError
from vidcap.quantize.figure import render_word_grid
from vidcap.quantize.kmeans import (
    HierarchicalKMeans,
    KMeansConfig,
    flat_kmeans,
    node_seed,
    prepare_features,
    stack_features,
    top_words,
    words_used,
)

BACKENDS = ["sklearn", "torch"]


def blobs(centers: np.ndarray, per: int, std: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per`` Gaussian points around each center; returns features and the planted labels."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + std * rng.standard_normal((per, centers.shape[1])) for c in centers])
    return x.astype(np.float32), np.repeat(np.arange(len(centers)), per)


def nested_blobs(k: int, dim: int, per: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k far-apart groups, each holding k nearer sub-clusters: a planted depth-2 tree."""
    rng = np.random.default_rng(seed)
    tops = 40.0 * rng.standard_normal((k, dim))
    subs = np.concatenate([t + 6.0 * rng.standard_normal((k, dim)) for t in tops])
    return blobs(subs, per, 0.5, seed + 1)


@pytest.fixture(scope="module")
def twelve_blobs() -> tuple[np.ndarray, np.ndarray]:
    centers = 10.0 * np.random.default_rng(0).standard_normal((12, 16))
    return blobs(centers, 60, 0.5, 1)


# --------------------------------------------------------------------------------------------------
# Planted clusters


@pytest.mark.parametrize("backend", BACKENDS)
def test_depth1_recovers_twelve_blobs(twelve_blobs, backend: str) -> None:
    x, truth = twelve_blobs
    model = HierarchicalKMeans.fit(x, KMeansConfig(k=12, depth=1, backend=backend))
    ids = model.assign(x)
    assert adjusted_rand_score(truth, ids) > 0.99
    assert model.vocab_size == 12 and model.leaf_centroids.shape == (12, 16)
    assert words_used(ids) == 12


@pytest.mark.parametrize("backend", BACKENDS)
def test_depth2_recovers_nested_blobs(backend: str) -> None:
    x, truth = nested_blobs(k=4, dim=8, per=40, seed=3)
    model = HierarchicalKMeans.fit(x, KMeansConfig(k=4, depth=2, normalize="none", backend=backend))
    path = model.assign_path(x)
    assert adjusted_rand_score(truth, path[:, 1]) > 0.99  # leaf words = the 16 sub-clusters
    assert adjusted_rand_score(truth // 4, path[:, 0]) > 0.99  # level 0 = the 4 groups
    # Word ids are paths: the level-0 node is the word's base-k prefix.
    np.testing.assert_array_equal(path[:, 0], path[:, 1] // 4)
    assert model.level_inertia[1] < model.level_inertia[0]


def test_torch_inertia_matches_sklearn(twelve_blobs) -> None:
    x, _ = twelve_blobs
    x = prepare_features(x, "none")
    # As many clusters as blobs: one clear optimum that both must find.
    ref = KMeans(n_clusters=12, n_init=1, random_state=0).fit(x).inertia_
    ours = flat_kmeans(x, 12, backend="torch", seed=0, n_init=1)
    assert abs(ours.inertia - ref) / ref < 0.01
    # Fewer clusters than blobs: several local optima; torch must be no worse than 1% above.
    ref = KMeans(n_clusters=5, n_init=5, random_state=0).fit(x).inertia_
    ours = flat_kmeans(x, 5, backend="torch", seed=0, n_init=5)
    assert ours.inertia < 1.01 * ref
    # The reported inertia is the sum of squared distances to the returned centers.
    direct = ((x - ours.centers[ours.labels]) ** 2).sum()
    assert abs(direct - ours.inertia) / ours.inertia < 1e-4

    trees = {
        b: HierarchicalKMeans.fit(x, KMeansConfig(k=3, depth=2, backend=b, n_init=3))
        for b in BACKENDS
    }
    for lv in range(2):
        assert trees["torch"].level_inertia[lv] < 1.01 * trees["sklearn"].level_inertia[lv]


# --------------------------------------------------------------------------------------------------
# Determinism, persistence


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_tree(backend: str) -> None:
    x, _ = nested_blobs(k=3, dim=6, per=15, seed=5)
    config = KMeansConfig(k=3, depth=3, backend=backend, seed=7)
    a, b = HierarchicalKMeans.fit(x, config), HierarchicalKMeans.fit(x, config)
    for ca, cb in zip(a.level_centroids, b.level_centroids, strict=True):
        np.testing.assert_array_equal(ca, cb)
    np.testing.assert_array_equal(a.assign(x), b.assign(x))
    other = HierarchicalKMeans.fit(x, KMeansConfig(k=3, depth=3, backend=backend, seed=8))
    # Another seed gives another tree: the planted levels (3 groups, 9 sub-clusters) are found
    # again, but level 2 splits each tight sub-cluster arbitrarily, so the leaf partition (not
    # just the word labels: ARI ignores relabelling) and the leaf centroids differ.
    path_a, path_other = a.assign_path(x), other.assign_path(x)
    for lv in range(2):
        assert adjusted_rand_score(path_a[:, lv], path_other[:, lv]) > 0.99
    assert adjusted_rand_score(path_a[:, 2], path_other[:, 2]) < 0.9
    assert not np.allclose(np.sort(a.leaf_centroids, axis=0), np.sort(other.leaf_centroids, axis=0))


def test_node_seeds_depend_on_path_only() -> None:
    assert node_seed(0, 2, 5) == node_seed(0, 2, 5)
    assert len({node_seed(0, 1, 0), node_seed(0, 0, 1), node_seed(1, 1, 0)}) == 3


def test_save_load_round_trip(tmp_path: Path, twelve_blobs) -> None:
    x, _ = twelve_blobs
    model = HierarchicalKMeans.fit(x, KMeansConfig(k=4, depth=2, seed=3))
    path = model.save(tmp_path / "codebook.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["codebook.safetensors"]  # no temp left
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    loaded = HierarchicalKMeans.load(path)
    np.testing.assert_array_equal(loaded.assign(x), model.assign(x))
    np.testing.assert_array_equal(loaded.leaf_centroids, model.leaf_centroids)
    assert loaded.level_inertia == model.level_inertia
    assert loaded.describe() == model.describe()
    assert loaded.info["seed"] == 3 and loaded.normalize == "l2"


def test_load_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(
        VidcapError, match=r"missing\.safetensors is missing; rerun `vidcap quantize"
    ):
        HierarchicalKMeans.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(
        VidcapError, match=r"junk\.safetensors is damaged \(not a complete safetensors"
    ):
        HierarchicalKMeans.load(junk)
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(other))
    with pytest.raises(VidcapError, match="not a vidcap codebook"):
        HierarchicalKMeans.load(other)


# --------------------------------------------------------------------------------------------------
# Degenerate cases


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_node_stops_early_with_valid_ids(backend: str) -> None:
    # Two big groups and a group of 2 points: at level 1 that node has fewer than k=3 points.
    centers = np.array([[0.0, 0, 20], [0, 20, 0], [20, 0, 0]])
    x = np.concatenate(
        [blobs(centers[:2], 30, 0.5, 0)[0], centers[2:] + np.array([[0.1, 0, 0], [0, 0.1, 0]])]
    )
    model = HierarchicalKMeans.fit(x, KMeansConfig(k=3, depth=3, normalize="none", backend=backend))
    ids = model.assign(x)
    assert ids.min() >= 0 and ids.max() < 27
    assert model.leaf_centroids.shape == (27, 3) and np.isfinite(model.leaf_centroids).all()
    small = model.assign_path(x[-2:])
    top = small[0, 0]
    assert (small[:, 0] == top).all()
    # The small node's points go to its first child at every level below it...
    np.testing.assert_array_equal(small[:, 1], [top * 3] * 2)
    np.testing.assert_array_equal(small[:, 2], [top * 9] * 2)
    # ...whose centroid is the small node's own, copied down, and marked not fitted.
    np.testing.assert_array_equal(model.leaf_centroids[top * 9], model.level_centroids[0][top])
    assert not model.level_fitted[1][top * 3 : top * 3 + 3].any()
    mask = model.word_mask
    assert mask[top * 9] and not mask[top * 9 + 1 : top * 9 + 9].any()
    assert mask[ids].all()
    assert model.node_sizes[1][top] == 2 and np.isnan(model.node_inertia[1][top])
    # Level inertia never grows with depth, early-stopped nodes included.
    assert model.level_inertia[0] >= model.level_inertia[1] >= model.level_inertia[2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicate_points_are_handled_quietly(backend: str) -> None:
    # 30 clips but only 2 distinct vectors: fewer distinct points than k.
    x = np.repeat(np.array([[1.0, 0, 0], [0, 1.0, 0]], np.float32), 15, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = HierarchicalKMeans.fit(x, KMeansConfig(k=4, depth=2, backend=backend))
        ids = model.assign(x)
    assert len(set(ids[:15])) == 1 and len(set(ids[15:])) == 1 and ids[0] != ids[-1]
    assert ids.max() < 16 and np.isfinite(model.leaf_centroids).all()


def test_nan_features_are_a_sentence() -> None:
    x = np.ones((20, 4), np.float32)
    x[7, 2] = np.nan
    with pytest.raises(VidcapError, match=r"NaN or infinite values \(first at row 7"):
        HierarchicalKMeans.fit(x, KMeansConfig(k=3, depth=1))
    good = HierarchicalKMeans.fit(
        np.random.default_rng(0).random((20, 4)), KMeansConfig(k=3, depth=1)
    )
    x[7, 2] = np.inf
    with pytest.raises(VidcapError, match="NaN or infinite"):
        good.assign(x)
    with pytest.raises(VidcapError, match="too large for float32"):
        good.assign(np.full((2, 4), 1e300))


def test_fewer_clips_than_k_is_a_sentence() -> None:
    with pytest.raises(VidcapError, match=r"at least k=12 clips to fit, but got 5"):
        HierarchicalKMeans.fit(np.random.default_rng(0).random((5, 8)), KMeansConfig())


def test_shape_errors_are_sentences() -> None:
    model = HierarchicalKMeans.fit(
        np.random.default_rng(0).random((30, 4)), KMeansConfig(k=3, depth=2)
    )
    with pytest.raises(VidcapError, match="dim 5, but the codebook was fitted on dim 4"):
        model.assign(np.zeros((3, 5)))
    with pytest.raises(VidcapError, match="2-D array"):
        model.assign(np.zeros(4))
    with pytest.raises(VidcapError, match="2-D array"):
        HierarchicalKMeans.fit(np.zeros((2, 3, 4)), KMeansConfig(k=2, depth=1))
    assert model.assign(np.zeros((0, 4))).shape == (0,)
    with pytest.raises(VidcapError, match="different dims: a has 4 but b has 6"):
        stack_features([np.zeros((2, 4)), np.zeros((3, 6))], names=["a", "b"])
    assert stack_features([np.zeros((2, 4)), np.ones((3, 4))]).shape == (5, 4)


def test_config_checks_are_sentences() -> None:
    for kwargs, text in [
        ({"k": 1}, "--k must be at least 2"),
        ({"depth": 0}, "--depth must be at least 1"),
        ({"normalize": "l1"}, "--normalize must be l2 or none"),
        ({"backend": "faiss"}, "--backend must be one of"),
        ({"device": "tpu"}, "--device must be"),
        ({"backend": "sklearn", "device": "cuda"}, "CPU only"),
        ({"n_init": 0}, "--n-init"),
    ]:
        with pytest.raises(VidcapError, match=text):
            KMeansConfig(**kwargs)
    assert KMeansConfig().vocab_size == 20736
    assert KMeansConfig(device="cpu").resolved_backend() == "sklearn"


def test_l2_normalisation_keeps_zero_vectors() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    x[:3] = 0.0
    prepared = prepare_features(x, "l2")
    np.testing.assert_array_equal(prepared[:3], 0.0)
    np.testing.assert_allclose(np.linalg.norm(prepared[3:], axis=1), 1.0, rtol=1e-6)
    model = HierarchicalKMeans.fit(x, KMeansConfig(k=3, depth=2))
    assert np.isfinite(model.leaf_centroids).all()
    # Assignment sees directions only: rescaled clips keep their words.
    np.testing.assert_array_equal(model.assign(x[3:] * 7.5), model.assign(x[3:]))
    assert model.assign(x[:3]).max() < 9


def test_word_statistics() -> None:
    ids = np.array([5, 3, 5, 9, 3, 5, 1])
    assert words_used(ids) == 4
    assert top_words(np.bincount(ids), 3) == [(5, 3), (3, 2), (1, 1)]


# --------------------------------------------------------------------------------------------------
# The word figure


def test_render_word_grid_writes_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    red = np.zeros((30, 50, 3), np.uint8)
    red[..., 0] = 255  # RGB red
    rows = [
        ("word 17\n42 clips", [red, rng.integers(0, 255, (80, 40, 3), dtype=np.uint8)]),
        ("word 3\n7 clips", [rng.integers(0, 255, (10, 10), dtype=np.uint8)]),
    ]
    path = render_word_grid(rows, tmp_path / "words.png", thumb_size=48)
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] == 4 + 2 * (48 + 4)
    label_w = image.shape[1] - 4 - 2 * (48 + 4)
    assert label_w > 20
    # The first thumbnail's centre is red, written as BGR (0, 0, 255).
    centre = image[4 + 24, 4 + label_w + 24]
    assert centre[2] > 200 and centre[0] < 50 and centre[1] < 50
    assert [p.name for p in tmp_path.iterdir()] == ["words.png"]
    with pytest.raises(VidcapError):
        render_word_grid([], tmp_path / "empty.png")
    with pytest.raises(VidcapError, match=r"\.png"):
        render_word_grid(rows, tmp_path / "words.txt")
