"""Random walks as tensor operations: one neighbour step (:func:`sample_neighbors`) and Monte-Carlo RWR.

Both run on the graph's device; draws come from an optional ``torch.Generator`` (on its own
device), so a seeded generator gives the same walks on CPU and GPU.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .._validation import as_index_tensor, check_bool, check_choice, check_generator, check_int
from ..graph import ProximityGraph
from ._common import RWRInfo, check_graph, check_weights, prepare, uniforms

__all__ = ["sample_neighbors", "rwr_monte_carlo", "running_sum"]


def running_sum(values: torch.Tensor) -> torch.Tensor:
    """``[0, v0, v0 + v1, ...]`` (float64, ``len(values) + 1`` entries) on ``values``' device, summed on the host.

    ``torch.cumsum`` of a floating CUDA tensor raises under ``torch.use_deterministic_algorithms(True)``
    (a setting DDP users often enable), and its parallel scan rounds differently from the CPU's
    sequential sum. Summing on the host (one copy each way, once per graph: callers cache it) works
    in that mode and gives a CUDA graph the very numbers of its CPU copy, so a seeded generator walks
    the same on both. Non-decreasing for non-negative ``values`` (each partial sum adds ``v >= 0``).
    """
    host = values.detach().to(device="cpu", dtype=torch.float64)
    out = torch.zeros(host.numel() + 1, dtype=torch.float64)
    torch.cumsum(host, 0, out=out[1:])
    return out.to(values.device)


def _weighted_cumsum(graph: ProximityGraph):
    """Global running sum of the transition probabilities, and each row's total (1, or 0 if dangling).

    Cached on the (immutable) graph, so repeated weighted sampling pays the O(nnz) set-up once.
    """
    if "cumsum" in graph._cache:
        return graph._cache["cumsum"]
    prob = graph.to(dtype=torch.float64).transition_matrix(weighted=True).values
    # cum[0] = 0 and cum[e + 1] = prob[0] + ... + prob[e]: edge e owns [cum[e], cum[e + 1])
    cum = running_sum(prob)
    total = cum[graph.crow[1:]] - cum[graph.crow[:-1]]
    graph._cache["cumsum"] = (cum, total)
    return cum, total


class _Stepper:
    """Draws one out-neighbour per node from uniforms ``u`` (uniform over edges, or by weight)."""

    def __init__(self, graph: ProximityGraph, weighted: bool) -> None:
        self.crow, self.col = graph.crow, graph.col
        self.weighted = weighted
        if weighted:
            self.cum, self.total = _weighted_cumsum(graph)

    def __call__(self, nodes: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if self.col.numel() == 0:
            return torch.full_like(nodes, -1)
        start = self.crow[nodes]
        deg = self.crow[nodes + 1] - start
        last = (start + deg - 1).clamp_min(0)
        if not self.weighted:
            idx = torch.minimum(start + torch.floor(u * deg.to(torch.float64)).to(torch.int64), last)
            ok = deg > 0
        else:
            tot = self.total[nodes]
            target = self.cum[start] + u * tot
            # first edge e with cum[e + 1] > target: the edge whose interval holds target
            # (zero-probability edges have empty intervals and are never chosen)
            idx = torch.searchsorted(self.cum[1:], target, right=True)
            idx = torch.minimum(torch.maximum(idx, start), last)
            ok = tot > 0.5  # rows of P sum to 1, or to 0 when dangling
        safe = torch.where(ok, idx, torch.zeros_like(idx))
        return torch.where(ok, self.col[safe], torch.full_like(idx, -1))


def sample_neighbors(graph: ProximityGraph, nodes: Any, *, generator: torch.Generator | None = None,
                     weighted: bool = False) -> torch.Tensor:
    """Draw one random out-neighbour for every node in ``nodes`` (vectorised).

    Uniform: edge ``crow[u] + floor(U * deg(u))``; weighted: inverse CDF of the
    row's weights (``searchsorted`` on one global running sum), so neighbour
    ``v`` of ``u`` comes with probability ``P[u, v]`` of
    :meth:`ProximityGraph.transition_matrix`.

    Args:
        graph: the graph.
        nodes: 1-D node indices (repeats allowed; may be empty).
        generator: ``torch.Generator`` for reproducible draws (numbers are drawn on
            the generator's device, so results do not depend on the graph's device).
        weighted: draw proportionally to edge weights (need non-negative weights);
            ``False`` (default) draws uniformly over out-edges. The weighted draw
            needs an ``O(nnz)`` running sum, cached for the last graph used.

    Returns:
        int64 tensor like ``nodes`` on the graph's device; ``-1`` where the node is
        dangling (no out-edges, or zero total weight when ``weighted``).

    Raises:
        TypeError: ``graph`` is not a ProximityGraph, or ``generator`` is not a Generator.
        ValueError: ``nodes`` out of range; negative weights with ``weighted=True``.

    Example:
        >>> import torch
        >>> from graphbatch import ProximityGraph
        >>> from graphbatch.solvers import sample_neighbors
        >>> g = ProximityGraph.from_coo([0, 0, 1], [1, 2, 2], num_nodes=3)
        >>> out = sample_neighbors(g, [0, 1, 2], generator=torch.Generator().manual_seed(0))
        >>> out[0].item() in (1, 2), out[1:].tolist()
        (True, [2, -1])
    """
    graph = check_graph(graph)
    weighted = check_bool("weighted", weighted)
    generator = check_generator("generator", generator)
    idx = as_index_tensor("nodes", nodes, num_nodes=graph.num_nodes, device=graph.device, allow_empty=True)
    check_weights(graph, weighted)
    if idx.numel() == 0:
        return idx.clone()
    u = uniforms(idx.numel(), generator, graph.device)
    return _Stepper(graph, weighted)(idx, u)


def _walk_counts(graph: ProximityGraph, s: torch.Tensor, p: float, num_walks: int, max_steps: int, weighted: bool,
                 visits: bool, generator: torch.Generator | None) -> tuple[torch.Tensor, int]:
    """Advance ``num_walks`` walkers per seed together; count visits (or terminal positions) per (seed, node).

    Returns the flat ``(S * N,)`` counts and the number of steps the longest walk took.
    """
    n, S, dev = graph.num_nodes, s.numel(), graph.device
    step = _Stepper(graph, weighted)

    counts = torch.zeros(S * n, dtype=torch.float64, device=dev)
    pending: list = []  # visited (seed, node) keys, folded into counts by bincount in large chunks
    pending_size = 0

    def flush() -> None:
        nonlocal pending_size
        if pending:
            keys = torch.cat(pending)
            if 4 * keys.numel() >= S * n:  # dense histogram pays off
                counts.add_(torch.bincount(keys, minlength=S * n).to(torch.float64))
            else:
                counts.index_put_((keys,), torch.ones(keys.numel(), dtype=torch.float64, device=dev),
                                  accumulate=True)
            pending.clear()
            pending_size = 0

    walker_seed = torch.arange(S, device=dev).repeat_interleave(num_walks)
    base = walker_seed * n
    pos = s[walker_seed]
    q = 1.0 - p
    t = 0
    for t in range(max_steps + 1):  # noqa: B007 - `t` is reported
        key = base + pos
        u = uniforms(pos.numel(), generator, dev)
        stop = u < p
        if t == max_steps:
            stop = torch.ones_like(stop)
        counted = key if visits else key[stop]
        pending.append(counted)
        pending_size += counted.numel()
        if pending_size >= 1 << 22:  # bound the buffer (32 MiB of keys)
            flush()
        go = ~stop
        if not bool(go.any()):
            break
        base, pos, walker_seed = base[go], pos[go], walker_seed[go]
        # given u >= p, (u - p) / (1 - p) is again uniform on [0, 1): one draw decides stop and neighbour
        nxt = step(pos, (u[go] - p) / q)
        pos = torch.where(nxt >= 0, nxt, s[walker_seed])
    flush()
    return counts, t


def rwr_monte_carlo(graph: ProximityGraph, seeds: Any, restart_prob: float, *, num_walks: int,
                    generator: torch.Generator | None = None, weighted: bool = True,
                    max_steps: int | None = None, estimator: str = "visits",
                    return_info: bool = False) -> Any:
    """Monte-Carlo RWR vectors: ``num_walks`` walkers per seed, advanced together as tensor ops.

    Each walker starts at its seed; before every step it stops with probability
    ``p``, otherwise it moves to a random out-neighbour (:func:`sample_neighbors`;
    from a dangling node it jumps back to its seed). The walk length ``T`` is
    geometric, ``P(T = k) = p (1 - p)^k``, and the position after ``k`` steps has
    law ``M^k e_s``, so both estimators below are unbiased for
    ``r = sum_k p (1 - p)^k M^k e_s``:

    * ``"visits"`` (default): ``p * (visits of v) / num_walks``, all visits counted
      (each walk makes ``1 / p`` visits on average: lower variance; rows sum to 1
      in expectation);
    * ``"terminal"``: the fraction of walks that end at ``v`` (rows sum to exactly 1).

    Walks are cut after ``max_steps`` steps (default: where ``(1 - p)^max_steps
    <= 1e-9``, so the truncation bias is below 1e-9 in L1).

    Implementation note: each step is a handful of gathers over the walkers still
    alive (compacted every step), so the cost is ``~ S * num_walks / p`` element
    operations on CPU or GPU; a custom CUDA kernel would only fuse these memory-bound
    gathers and is not used.

    Args:
        graph: the proximity graph.
        seeds: 1-D seed node indices (repeats allowed).
        restart_prob: restart probability ``p`` in (0, 1].
        num_walks: walkers per seed (>= 1).
        generator: ``torch.Generator`` for reproducible results (draws happen on its device).
        weighted: step by edge weights (non-negative) or uniformly over out-edges.
        max_steps: cap on a walk's number of steps (>= 0).
        estimator: ``"visits"`` or ``"terminal"``.
        return_info: also return an :class:`RWRInfo` (``iterations`` = steps taken by the longest walk).

    Returns:
        ``(S, N)`` float64 tensor on the graph's device; with ``return_info``, ``(R, info)``.

    Raises:
        TypeError: ``graph`` is not a ProximityGraph; ``generator`` not a Generator.
        ValueError: ``restart_prob`` outside (0, 1]; bad ``seeds``, ``num_walks``,
            ``max_steps`` or ``estimator``; negative weights with ``weighted=True``.

    Example:
        >>> import torch
        >>> from graphbatch import ProximityGraph
        >>> from graphbatch.solvers import rwr, rwr_monte_carlo
        >>> g = ProximityGraph.from_neighbors(torch.tensor([[1, 2], [2, 0], [0, 1]]))
        >>> est = rwr_monte_carlo(g, [0], 0.3, num_walks=20000, generator=torch.Generator().manual_seed(0))
        >>> bool((est - rwr(g, [0], 0.3)).abs().sum() < 0.05)
        True
    """
    graph, s, p, weighted = prepare(graph, seeds, restart_prob, weighted)
    num_walks = check_int("num_walks", num_walks, low=1)
    generator = check_generator("generator", generator)
    estimator = check_choice("estimator", estimator, ("visits", "terminal"))
    if max_steps is None:
        max_steps = 0 if p >= 1.0 else int(math.ceil(math.log(1e-9) / math.log1p(-p)))
    max_steps = check_int("max_steps", max_steps, low=0)
    return_info = check_bool("return_info", return_info)
    visits = estimator == "visits"
    counts, t = _walk_counts(graph, s, p, num_walks, max_steps, weighted, visits, generator)
    scale = (p if visits else 1.0) / num_walks
    r = (counts * scale).reshape(s.numel(), graph.num_nodes)
    if not return_info:
        return r
    return r, RWRInfo(iterations=t, residual=float("nan"), backend="torch-mc", converged=True)
