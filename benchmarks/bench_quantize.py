"""How fast the hierarchical k-means fits, and how good each node's clustering is.

On random-blob features (``sklearn.datasets.make_blobs``, ``--centers`` blobs, default k**2), in one
run:

1. fits the tree (``vidcap.quantize.HierarchicalKMeans``) with each backend asked for, timing the fit
   and the assignment of every point;
2. fits one flat scikit-learn ``KMeans`` with as many clusters as tree level ``--flat-level`` has
   (default 2: k**2 = 144 clusters for k=12). That is the anchor: the tree gets k**depth words for
   roughly depth x the cost of a k-cluster fit, while a flat k-means over all k**depth words would
   cost ~k**depth / k times more per iteration and is out of reach (20,736 clusters); the level-2
   flat fit is the largest one that runs in comparable time, and its inertia shows what the tree's
   greedy top-down splitting costs at that level;
3. for every node of the first ``--compare-levels`` levels, fits a fresh scikit-learn ``KMeans``
   (same k, same n_init, another seed) on the very points the tree put in that node, and reports
   the relative inertia difference (ours - sklearn) / sklearn; negative means the tree's node is
   better. Goal: within 1%. A second fresh fit (yet another seed) gives scikit-learn's own
   seed-to-seed spread on the same points: with n_init=1 on blobs that do not nest into k groups,
   local optima differ by several percent, whoever fits them; ``--n-init 3`` narrows it.

    python benchmarks/bench_quantize.py [--n 100000] [--dim 512] [--k 12] [--depth 4]
        [--backends sklearn,torch] [--n-init 1] [--normalize l2] [--device auto]

Wall times on a shared machine vary with its load; compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from vidcap.quantize.kmeans import HierarchicalKMeans, KMeansConfig, prepare_features, words_used


def node_comparison(
    model: HierarchicalKMeans, x: np.ndarray, paths: np.ndarray, levels: int, n_init: int
) -> list[dict]:
    """Per node of the first ``levels`` levels: our inertia vs a fresh scikit-learn KMeans."""
    k = model.k
    rows = []
    for level in range(min(levels, model.depth)):
        parent = paths[:, level - 1] if level else np.zeros(len(x), np.int64)
        child = paths[:, level]
        for node in np.unique(parent):
            members = np.flatnonzero(parent == node)
            if len(members) < k or not model.level_fitted[level][node * k]:
                continue
            pts = x[members]
            diff = pts - model.level_centroids[level][child[members]]
            ours = float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
            # Two fresh fits with other seeds: the first is the reference, the second shows how
            # much scikit-learn itself varies from seed to seed on these points (the noise floor).
            seed = 10_000 + 2 * (k**level + int(node))
            ref = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(pts)
            again = KMeans(n_clusters=k, n_init=n_init, random_state=seed + 1).fit(pts)
            rows.append(
                {
                    "level": level,
                    "node": int(node),
                    "points": len(members),
                    "ours": ours,
                    "sklearn": float(ref.inertia_),
                    "rel_diff": (ours - ref.inertia_) / ref.inertia_,
                    "sklearn_seed_diff": (again.inertia_ - ref.inertia_) / ref.inertia_,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--centers", type=int, default=None, help="blobs (default k**2)")
    parser.add_argument("--n-init", type=int, default=1)
    parser.add_argument("--normalize", default="l2", choices=["l2", "none"])
    parser.add_argument("--backends", default="sklearn,torch")
    parser.add_argument("--device", default="auto", help="for the torch backend")
    parser.add_argument("--flat-level", type=int, default=2, help="flat anchor has k**L clusters")
    parser.add_argument("--compare-levels", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    centers = args.centers or args.k**2
    t = time.perf_counter()
    raw, _ = make_blobs(
        n_samples=args.n, n_features=args.dim, centers=centers, random_state=args.seed
    )
    raw = raw.astype(np.float32)
    # The tree clusters the prepared (normalised) features; the references must see the same.
    x = prepare_features(raw, args.normalize)
    print(
        f"data: {args.n} x {args.dim} blobs ({centers} centres), normalize={args.normalize}, "
        f"made in {time.perf_counter() - t:.1f}s; cpus={os.cpu_count()}"
    )
    report: dict = {"args": vars(args), "trees": {}}

    flat_clusters = args.k**args.flat_level
    t = time.perf_counter()
    flat = KMeans(
        n_clusters=flat_clusters, n_init=args.n_init, random_state=args.seed, algorithm="lloyd"
    ).fit(x)
    flat_s = time.perf_counter() - t
    report["flat"] = {"clusters": flat_clusters, "seconds": flat_s, "inertia": float(flat.inertia_)}
    print(
        f"flat scikit-learn KMeans, {flat_clusters} clusters (= tree level {args.flat_level}): "
        f"{flat_s:.1f}s, inertia {flat.inertia_:.6g}, {flat.n_iter_} iterations"
    )

    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        device = args.device if backend == "torch" else "cpu"
        # A small untimed fit first, so one-time library start-up is not counted.
        HierarchicalKMeans.fit(
            x[:2000], KMeansConfig(k=args.k, depth=2, backend=backend, device=device)
        )
        config = KMeansConfig(
            k=args.k,
            depth=args.depth,
            normalize=args.normalize,
            seed=args.seed,
            backend=backend,
            device=device,
            n_init=args.n_init,
        )
        t = time.perf_counter()
        model = HierarchicalKMeans.fit(raw, config)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        paths = model.assign_path(raw, device=config.resolved_device())
        assign_s = time.perf_counter() - t
        level_inertia = model.level_inertia
        t = time.perf_counter()
        nodes = node_comparison(model, x, paths, args.compare_levels, args.n_init)
        compare_s = time.perf_counter() - t
        diffs = np.array([r["rel_diff"] for r in nodes])
        noise = np.array([r["sklearn_seed_diff"] for r in nodes])
        tree_level_inertia = level_inertia[args.flat_level - 1]
        summary = {
            "device": config.resolved_device(),
            "fit_seconds": fit_s,
            "assign_seconds": assign_s,
            "fit_vs_flat_time": fit_s / flat_s,
            "words_used": words_used(paths[:, -1]),
            "vocab_size": model.vocab_size,
            "level_inertia": level_inertia,
            "tree_vs_flat_inertia": tree_level_inertia / flat.inertia_,
            "nodes_compared": len(nodes),
            "node_rel_diff_max_abs": float(np.abs(diffs).max()) if len(diffs) else None,
            "node_rel_diff_mean": float(diffs.mean()) if len(diffs) else None,
            "node_rel_diff_worst": float(diffs.max()) if len(diffs) else None,
            "nodes_within_1pct": int((diffs < 0.01).sum()),
            "sklearn_seed_diff_max_abs": float(np.abs(noise).max()) if len(noise) else None,
            "nodes": nodes,
        }
        report["trees"][backend] = summary
        print(f"\n== tree, backend={backend} ({summary['device']}), k={args.k} depth={args.depth}")
        print(f"{'':34}{'seconds':>10}{'ratio to flat':>15}")
        print(f"{'fit (all levels)':34}{fit_s:10.1f}{fit_s / flat_s:15.2f}")
        print(f"{'assign (all points, all levels)':34}{assign_s:10.1f}{assign_s / flat_s:15.2f}")
        print(f"{'flat KMeans ' + str(flat_clusters):34}{flat_s:10.1f}{1.0:15.2f}")
        print(f"words used: {summary['words_used']} of {model.vocab_size}")
        print(
            "inertia per level: " + ", ".join(f"L{i}={v:.6g}" for i, v in enumerate(level_inertia))
        )
        print(
            f"level {args.flat_level} ({flat_clusters} nodes) vs flat {flat_clusters}-means inertia: "
            f"{summary['tree_vs_flat_inertia']:.4f}x"
        )
        if len(diffs):
            print(
                f"per-node inertia vs fresh scikit-learn KMeans (levels 0..{args.compare_levels - 1}, "
                f"{len(nodes)} nodes, {compare_s:.0f}s): max |diff| {np.abs(diffs).max():+.3%}, "
                f"mean {diffs.mean():+.3%}, worst (ours higher) {diffs.max():+.3%}, "
                f"within 1% (or lower): {summary['nodes_within_1pct']}/{len(nodes)}; "
                f"scikit-learn vs itself with another seed: max |diff| {np.abs(noise).max():.3%}"
            )
            print(
                f"  {'level':>5}{'node':>6}{'points':>8}{'ours':>14}{'sklearn':>14}{'diff':>9}"
                f"{'sk seed2':>10}"
            )
            for r in nodes:
                print(
                    f"  {r['level']:>5}{r['node']:>6}{r['points']:>8}{r['ours']:>14.6g}"
                    f"{r['sklearn']:>14.6g}{r['rel_diff']:>+9.3%}{r['sklearn_seed_diff']:>+10.3%}"
                )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
