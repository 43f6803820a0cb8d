"""Structural operations on a :class:`~graphbatch.ProximityGraph`; each returns new tensors or a new graph.

Example:
    >>> import torch
    >>> from graphbatch import ProximityGraph
    >>> g = ProximityGraph.from_coo([0, 1, 1], [1, 0, 2], [0.5, 0.7, 1.0], num_nodes=3)
    >>> g.mutual().to_edge_index()[0].tolist()  # only 0 <-> 1 goes both ways
    [[0, 1], [1, 0]]
    >>> g.symmetrize().nnz
    4
"""
from __future__ import annotations

from typing import Any

import torch

from .._validation import as_index_tensor, check_bool, check_choice
from ._csr import rows_of

__all__ = ["out_degree", "in_degree", "transpose", "symmetrize", "mutual", "remove_self_loops",
           "transition_matrix", "subgraph"]

_REDUCE = ("max", "min", "mean", "sum")


def out_degree(g: Any, weighted: bool = False) -> torch.Tensor:
    """Out-degree of every node: edge count (int64), or the sum of weights when ``weighted``."""
    if not check_bool("weighted", weighted):
        return g.crow[1:] - g.crow[:-1]
    out = torch.zeros(g.num_nodes, dtype=g.dtype, device=g.device)
    return out.index_add_(0, g.row(), g.values)


def in_degree(g: Any, weighted: bool = False) -> torch.Tensor:
    """In-degree of every node: edge count (int64), or the sum of weights when ``weighted``."""
    if not check_bool("weighted", weighted):
        return torch.bincount(g.col, minlength=g.num_nodes)
    out = torch.zeros(g.num_nodes, dtype=g.dtype, device=g.device)
    return out.index_add_(0, g.col, g.values)


def transpose(g: Any) -> Any:
    """The reversed graph (CSR of Aᵀ)."""
    return type(g).from_coo(g.col, g.row(), g.values, g.num_nodes)


def _both_directions(g: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every edge and its reverse, grouped by (row, col): (unique keys, group of each entry, counts, values)."""
    n = g.num_nodes
    row = g.row()
    key = torch.cat([row * n + g.col, g.col * n + row])
    v = torch.cat([g.values, g.values])
    key, perm = torch.sort(key, stable=True)
    uniq, inverse, counts = torch.unique_consecutive(key, return_inverse=True, return_counts=True)
    return uniq, inverse, counts, v[perm]


def _reduce(inverse: torch.Tensor, counts: torch.Tensor, v: torch.Tensor, m: int, reduce: str) -> torch.Tensor:
    if reduce in ("sum", "mean"):
        out = torch.zeros(m, dtype=v.dtype, device=v.device).index_add_(0, inverse, v)
        return out / counts.to(v.dtype) if reduce == "mean" else out
    init = torch.full((m,), float("-inf") if reduce == "max" else float("inf"), dtype=v.dtype, device=v.device)
    return init.scatter_reduce(0, inverse, v, reduce="amax" if reduce == "max" else "amin")


def _from_keys(g: Any, keys: torch.Tensor, values: torch.Tensor) -> Any:
    n = g.num_nodes
    rows = torch.div(keys, n, rounding_mode="floor")
    crow = torch.zeros(n + 1, dtype=torch.int64, device=g.device)
    torch.cumsum(torch.bincount(rows, minlength=n), 0, out=crow[1:])
    return g._new(crow, keys % n, values)


def symmetrize(g: Any, reduce: str = "max") -> Any:
    """Undirected version: edge (i, j) exists if (i, j) or (j, i) does.

    Args:
        g: the graph.
        reduce: how the two weights of a mutual pair combine: ``"max"``, ``"min"``,
            ``"mean"`` (one-sided edges keep their weight) or ``"sum"``.
    """
    reduce = check_choice("reduce", reduce, _REDUCE)
    if g.nnz == 0:
        return g
    uniq, inverse, counts, v = _both_directions(g)
    return _from_keys(g, uniq, _reduce(inverse, counts, v, uniq.numel(), reduce))


def mutual(g: Any, reduce: str = "min") -> Any:
    """Only the mutual edges: (i, j) is kept when (j, i) is an edge too (self-loops count as mutual).

    Args:
        g: the graph.
        reduce: the weight of a kept edge from the two directions' weights (``"min"``,
            ``"max"``, ``"mean"``, ``"sum"``); ``"own"`` keeps each direction's own weight.
    """
    reduce = check_choice("reduce", reduce, _REDUCE + ("own",))
    if g.nnz == 0:
        return g
    n = g.num_nodes
    row = g.row()
    key = row * n + g.col
    rev = g.col * n + row
    # key is sorted (canonical CSR): an edge is mutual when its reverse key is present
    pos = torch.searchsorted(key, rev).clamp_max(key.numel() - 1)
    keep = key[pos] == rev
    if reduce == "own":
        values = g.values[keep]
    else:
        pair = torch.stack([g.values[keep], g.values[pos[keep]]], dim=1)
        values = {"min": pair.amin(1), "max": pair.amax(1), "mean": pair.mean(1), "sum": pair.sum(1)}[reduce]
    return _from_keys(g, key[keep], values)


def remove_self_loops(g: Any) -> Any:
    """The graph without edges (i, i) (``g`` itself when it has none)."""
    row = g.row()
    keep = row != g.col
    if bool(keep.all()):
        return g
    return type(g).from_coo(row[keep], g.col[keep], g.values[keep], g.num_nodes)


def transition_matrix(g: Any, weighted: bool = True) -> Any:
    """Row-stochastic transition matrix P (``P[i, j] = w_ij / sum_j w_ij``).

    Dangling rows (no out-edges, or zero total weight) stay all-zero; the walk
    functions decide what a dangling node does (see :func:`graphbatch.solvers`).

    Args:
        g: the graph.
        weighted: use edge weights; ``False`` walks uniformly over out-edges.

    Raises:
        ValueError: ``weighted`` and some weight is negative.
    """
    if not check_bool("weighted", weighted):
        deg = out_degree(g).to(g.dtype)
        vals = torch.ones_like(g.values)
    else:
        if g.nnz and bool((g.values < 0).any()):
            raise ValueError("transition_matrix needs non-negative edge weights; the graph has negative "
                             "ones (pass weighted=False, or shift/clip the similarities when building)")
        deg = out_degree(g, weighted=True)
        vals = g.values
    deg_e = torch.repeat_interleave(deg, out_degree(g))
    p = torch.where(deg_e > 0, vals / torch.where(deg_e > 0, deg_e, torch.ones_like(deg_e)),
                    torch.zeros_like(vals))
    return g._new(g.crow, g.col, p)


def subgraph(g: Any, nodes: Any) -> Any:
    """Induced subgraph on ``nodes``; node ``nodes[i]`` becomes node ``i``.

    Raises:
        ValueError: indices out of range or repeated.
    """
    idx = as_index_tensor("nodes", nodes, num_nodes=g.num_nodes, device=g.device, allow_empty=True)
    if torch.unique(idx).numel() != idx.numel():
        raise ValueError("nodes must not contain repeated indices")
    relabel = torch.full((g.num_nodes,), -1, dtype=torch.int64, device=g.device)
    relabel[idx] = torch.arange(idx.numel(), device=g.device)
    row_new = relabel[rows_of(g.crow)]
    col_new = relabel[g.col]
    keep = (row_new >= 0) & (col_new >= 0)
    return type(g).from_coo(row_new[keep], col_new[keep], g.values[keep], idx.numel())
