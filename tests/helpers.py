"""Helpers shared by the sampler tests (on ``sys.path`` through pytest's ``pythonpath`` setting)."""
from __future__ import annotations

import numpy as np
import torch


def mixture(rng, n, d=8, clusters=10, spread=4.0):
    centers = rng.normal(size=(clusters, d)) * spread
    lab = rng.integers(0, clusters, n)
    x = centers[lab] + rng.normal(size=(n, d))
    return torch.tensor(x, dtype=torch.float32), lab


def check_epoch(batches, n, b, drop_last, length):
    """Batches partition range(n) (minus at most one dropped short tail), sizes b except the last."""
    assert len(batches) == length
    for bt in batches:
        assert len(set(bt)) == len(bt), "duplicate inside a batch"
        assert all(isinstance(i, int) for i in bt)
    sizes = [len(bt) for bt in batches]
    assert all(s == b for s in sizes[:-1])
    flat = [i for bt in batches for i in bt]
    assert len(flat) == len(set(flat)), "index repeated in one epoch"
    if drop_last:
        assert sizes[-1] == b if sizes else True
        assert len(flat) == (n // b) * b
        assert set(flat) <= set(range(n))
    else:
        assert sorted(flat) == list(range(n))


def same_label_pair_fraction(batches, lab):
    fr = []
    for bt in batches:
        if len(bt) < 2:
            continue
        counts = np.bincount(lab[bt])
        fr.append((counts * (counts - 1)).sum() / (len(bt) * (len(bt) - 1)))
    return float(np.mean(fr))


def dense_solve(g, seeds, p: float, weighted: bool = True) -> np.ndarray:
    """Independent reference: solve (I - (1 - p) M) r = p e_s with M = P^T + e_s d^T in numpy."""
    A = g.to_dense().double().numpy()
    if not weighted:
        A = np.zeros_like(A)
        A[g.row().numpy(), g.col.numpy()] = 1.0  # every stored edge, zero-weight ones included
    rs = A.sum(1)
    P = np.divide(A, rs[:, None], out=np.zeros_like(A), where=rs[:, None] > 0)
    d = (rs == 0).astype(float)
    out = []
    for s in seeds:
        e = np.zeros(g.num_nodes)
        e[s] = 1.0
        M = P.T + np.outer(e, d)
        out.append(np.linalg.solve(np.eye(g.num_nodes) - (1 - p) * M, p * e))
    return np.array(out)
