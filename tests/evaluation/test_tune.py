"""graphbatch.tune: picks the configuration nearest the target hardness with the fewest false negatives."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import graphbatch as gb
from graphbatch.evaluation.tune import near_duplicate_rate

from helpers import mixture


def test_near_duplicate_rate_counts_pairs_by_brute_force(rng):
    z = rng.normal(size=(40, 5))
    batches = [list(rng.choice(40, 8, replace=False)) for _ in range(4)]
    e = z / np.linalg.norm(z, axis=1, keepdims=True)
    hits = pairs = 0
    for bt in batches:
        for i, j in itertools.combinations(bt, 2):
            pairs += 1
            hits += float(e[i] @ e[j]) > 0.3
    assert near_duplicate_rate(z, batches, 0.3) == pytest.approx(hits / pairs)


def test_tune_follows_its_selection_rule(rng):
    n, b = 400, 20
    emb, lab = mixture(rng, n, clusters=8, spread=5.0)
    r = gb.tune(emb, lab, batch_size=b, seeds=1, grid="small", tolerance=0.05)
    rows = r.table.to_records()
    knn = next(x for x in rows if x["name"] == "knn (paper)")
    assert r.target == pytest.approx(knn["excess_hardness"])
    near = [x for x in rows if x["distance"] <= 0.05]
    assert near, "the kNN baseline itself is always within the tolerance of its own hardness"
    best = min(near, key=lambda x: x["false_negative_rate"])
    assert r.best["name"] == best["name"]
    assert r.best["false_negative_rate"] <= knn["false_negative_rate"]
    s = r.sampler(n, embeddings=emb, seed=3)
    assert type(s).__name__ == r.best["sampler"] and s.batch_size == b
    assert sorted(sum(list(s), [])) == list(range(n))


def test_tune_without_labels_minimises_the_near_duplicate_proxy(rng):
    n, b = 300, 15
    emb, _ = mixture(rng, n, clusters=6)
    grid = {"knn (paper)": ("KNNBatchSampler", {"candidates": None}),
            "random": ("RandomBatchSampler", {}),
            "walk": ("RWRBatchSampler", {"k": 8, "candidates": None})}
    r = gb.tune(emb, None, batch_size=b, seeds=1, grid=grid, target=0.0, tolerance=1.0)
    assert r.measure == "near_duplicate_rate" and "near_duplicate_rate" in r.table
    assert r.best["name"] == "random"  # all within the tolerance: the fewest near duplicates wins


def test_tune_bad_arguments(rng):
    emb = torch.randn(50, 4)
    with pytest.raises(ValueError, match="batch_size"):
        gb.tune(emb, batch_size=100)
    with pytest.raises(ValueError, match="target"):
        gb.tune(emb, batch_size=10, target="median", grid="small", seeds=1)
    with pytest.raises(ValueError, match="grid"):
        gb.tune(emb, batch_size=10, grid="huge")
