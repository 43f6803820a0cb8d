"""The one forward-push kernel and the PPR ranking rule, against a plain-Python push written from the rule.

Rule (graphbatch.kernels.compiled): FIFO forward push from the seed (a popped node whose residual
exceeds eps moves p of it into its estimate and spreads the rest evenly over its out-edges, or
back to the seed when it has none); every node reached is a candidate with score x + r; candidates
are ranked by decreasing score, ties in the order the push first reached them. Both callers of the
kernel -- RWRBatchSampler(mode="ppr") with ppr_engine="push" and with ppr_engine="rwr_truncated" on
CPU -- must rank by it, and rwr_truncated's estimates must come from the same kernel.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from graphbatch import ProximityGraph, RWRBatchSampler, rwr, rwr_truncated
from graphbatch.solvers.push import push_scores


def reference_push(crow, col, s, p, eps):
    """Plain-Python FIFO push (uniform transitions); returns {node: (x, r)} in discovery order."""
    n = len(crow) - 1
    x, r = [0.0] * n, [0.0] * n
    order, seen = [s], {s}
    r[s] = 1.0
    queue, queued = deque([s]), {s}
    q = 1.0 - p
    while queue:
        u = queue.popleft()
        queued.discard(u)
        ru = r[u]
        if ru <= eps:
            continue
        x[u] += p * ru
        r[u] = 0.0
        d = crow[u + 1] - crow[u]
        targets = [s] if d == 0 else [col[e] for e in range(crow[u], crow[u + 1])]
        share = q * ru if d == 0 else q * ru / d
        for v in targets:
            if v not in seen:
                seen.add(v)
                order.append(v)
            r[v] += share
            if r[v] > eps and v not in queued:
                queue.append(v)
                queued.add(v)
    return {v: (x[v], r[v]) for v in order}


def ranked(cands):
    """The rule's ranking of a {node: (x, r)} dict in discovery order."""
    items = list(cands.items())
    order = sorted(range(len(items)), key=lambda i: -(items[i][1][0] + items[i][1][1]))  # stable: ties by discovery
    return [items[i][0] for i in order]


def random_graph(rng, n, regular):
    k = int(rng.integers(1, 6))
    deg = np.full(n, k) if regular else rng.integers(0, 6, n)
    rows = np.repeat(np.arange(n), deg)
    cols = rng.integers(0, n, rows.size)
    return ProximityGraph.from_coo(rows, cols, num_nodes=n)


@pytest.mark.parametrize("trial", range(12))
def test_compiled_push_candidates_follow_the_rule(trial):
    rng = np.random.default_rng([trial, 11])
    n = int(rng.integers(5, 120))
    g = random_graph(rng, n, regular=bool(trial % 2))
    crow, col = g.crow.tolist(), g.col.tolist()
    p, eps = float(rng.choice([0.1, 0.3, 0.7])), float(rng.choice([1e-2, 1e-3]))
    seeds = rng.integers(0, n, 4)
    ptr, cand, score, _ = push_scores(g, seeds, p, eps=eps, engine="numba")
    for j, s in enumerate(seeds):
        ref = reference_push(crow, col, int(s), p, eps)
        got = cand[ptr[j]:ptr[j + 1]].tolist()
        assert got == list(ref)  # same candidates, in discovery order
        np.testing.assert_allclose(score[ptr[j]:ptr[j + 1]], [a + b for a, b in ref.values()], rtol=0, atol=1e-15)


def test_vectorised_engine_scores_agree_within_the_push_bound(rng):
    n = 80
    g = random_graph(rng, n, regular=True)
    seeds = rng.integers(0, n, 3)
    eps = 1e-4
    ptr_n, cand_n, score_n, _ = push_scores(g, seeds, 0.3, eps=eps, engine="numba")
    ptr_t, cand_t, score_t, _ = push_scores(g, seeds, 0.3, eps=eps, engine="torch")
    exact = rwr(g, seeds.tolist(), 0.3, weighted=False, tol=1e-13).numpy()
    for j in range(3):
        for ptr, cand, score in ((ptr_n, cand_n, score_n), (ptr_t, cand_t, score_t)):
            sl = slice(ptr[j], ptr[j + 1])
            dense = np.zeros(n)
            dense[cand[sl]] = score[sl]
            assert abs(dense.sum() - 1.0) < 1e-9  # x + r conserves the unit mass
            # x + r bounds the exact PPR from above minus what r still has to spread: within n * eps in L1
            assert np.abs(dense - exact[j]).sum() <= 2 * n * eps + 1e-9
        assert np.all(np.diff(cand_t[ptr_t[j]:ptr_t[j + 1]]) > 0)  # torch engine: node order


@pytest.mark.parametrize("engine", ["push", "rwr_truncated"])
def test_both_sampler_engines_rank_by_the_rule(rng, engine):
    """No guard, nothing used yet: the first batch is its seed and the rule's best B - 1 candidates."""
    n, b = 150, 12
    g = random_graph(rng, n, regular=True)
    eps = 0.1 / b
    s = RWRBatchSampler(n, b, k=3, candidates=20, graph=g, mode="ppr", ppr_engine=engine, ppr_eps=eps,
                        restart_prob=0.3, seed=int(rng.integers(1000)))
    first = list(s)[0]
    ref = reference_push(g.crow.tolist(), g.col.tolist(), first[0], 0.3, eps)
    best = [v for v in ranked(ref) if v != first[0]][:b - 1]
    if len(best) == b - 1:  # the candidates fill the batch: no fallback involved
        assert first[1:] == best
    else:
        assert first[1:len(best) + 1] == best


def test_rwr_truncated_estimates_come_from_the_same_kernel(rng):
    n = 90
    g = random_graph(rng, n, regular=False)
    seeds = rng.integers(0, n, 5)
    eps = 1e-3
    out, info = rwr_truncated(g, seeds, 0.25, eps=eps, weighted=False, engine="numba", return_info=True)
    dense = out.to_dense().numpy()
    for j, s in enumerate(seeds):
        ref = reference_push(g.crow.tolist(), g.col.tolist(), int(s), 0.25, eps)
        expect = np.zeros(n)
        for v, (x, _) in ref.items():
            expect[v] = x
        np.testing.assert_allclose(dense[j], expect, rtol=0, atol=1e-15)
        assert info.error[j].item() == pytest.approx(1.0 - expect.sum(), abs=1e-12)
    assert torch.equal(out.crow_indices()[1:] - out.crow_indices()[:-1],
                       torch.tensor([(dense[j] > 0).sum() for j in range(5)]))
