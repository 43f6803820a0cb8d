"""Random walks with restart (RWR) on a :class:`~graphbatch.ProximityGraph`.

All functions use one convention. With restart probability ``p`` and the
row-stochastic transition matrix ``P`` (:meth:`ProximityGraph.transition_matrix`),
the RWR (personalised PageRank) vector of a seed ``s`` is the fixed point of::

    r = p * e_s + (1 - p) * (P^T r + (d . r) e_s)

where ``d`` marks the *dangling* nodes (no out-edges, or zero total weight):
a walker at a dangling node jumps back to its seed. This is networkx's
``pagerank(G, alpha=1 - p, personalization={s: 1})`` convention, so the exact
solver :func:`rwr` matches networkx to ~1e-8. Unrolled,
``r = sum_k p (1 - p)^k M^k e_s`` with ``M = P^T + e_s d^T`` column-stochastic:
``r`` is the distribution of the node where a walk that stops with
probability ``p`` before every step ends.

Entry points:

* :func:`sample_neighbors` -- one random out-neighbour per node (the walk step).
* :func:`rwr` -- exact, power iteration over all seeds at once as one sparse x
  dense product per iteration; backends ``"torch"`` (CPU/CUDA), ``"scipy"``
  (CPU), ``"cupy"`` (CUDA, cuSPARSE).
* :func:`rwr_truncated` -- sparse, vectorised forward push; cost independent
  of ``N`` per seed, with an exactly known L1 error.
* :func:`rwr_monte_carlo` -- many walkers advanced together as tensor ops.

Example:
    >>> import torch
    >>> from graphbatch import ProximityGraph
    >>> from graphbatch.walk import rwr
    >>> g = ProximityGraph.from_neighbors(torch.tensor([[1, 2], [2, 0], [0, 1]]))
    >>> r = rwr(g, [0, 1], 0.5)
    >>> r.shape, bool(torch.allclose(r.sum(1), torch.ones(2, dtype=r.dtype)))
    (torch.Size([2, 3]), True)
"""
from __future__ import annotations

import math
import numbers
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from . import backend as _backend
from ._validation import as_index_tensor, check_int, check_probability
from .graph import ProximityGraph

__all__ = [
    "RWRInfo",
    "sample_neighbors",
    "rwr",
    "rwr_truncated",
    "rwr_monte_carlo",
    "BACKENDS",
]

#: Names accepted by ``rwr(..., backend=...)`` besides ``"auto"``.
BACKENDS = ("torch", "scipy", "cupy")


@dataclass
class RWRInfo:
    """What a walk solver did (returned with ``return_info=True``).

    Attributes:
        iterations: power iterations (``rwr``) or push rounds (``rwr_truncated``) used;
            walk steps of the longest walk (``rwr_monte_carlo``).
        residual: ``rwr``: max over seeds of the L1 change in the last iteration
            (the error is at most ``residual * (1 - p) / p``); ``rwr_truncated``: max
            over seeds of the exact L1 error (the residual mass left unpushed).
        backend: the backend that ran, e.g. ``"torch"``, ``"scipy"``, ``"cupy"``, ``"torch-push"``.
        converged: whether the stopping criterion was met before ``max_iter``.
        error: ``rwr_truncated`` only: per-seed exact L1 error, a ``(S,)`` tensor.
    """

    iterations: int
    residual: float
    backend: str
    converged: bool = True
    error: torch.Tensor | None = field(default=None, repr=False)


# ---------------------------------------------------------------- validation
def _check_graph(graph: Any) -> ProximityGraph:
    if not isinstance(graph, ProximityGraph):
        raise TypeError(f"graph must be a graphbatch.ProximityGraph, got {type(graph).__name__}")
    return graph


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} ({value!r})")
    return value


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _check_weights(graph: ProximityGraph, weighted: bool) -> None:
    if weighted and graph.nnz and bool((graph.values < 0).any()):
        raise ValueError("weighted=True needs non-negative edge weights, but the graph has negative ones "
                         "(cosine similarities can be < 0): pass weighted=False to walk uniformly over "
                         "out-edges, or shift/clip the weights")


def _check_dtype(dtype: Any) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def _check_generator(generator: Any) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` uniform float64 numbers in [0, 1) on ``device``.

    They are drawn on the generator's device (a CPU generator with a CUDA graph
    draws on the CPU and copies), so a seeded generator gives the same numbers
    whatever device the graph is on.
    """
    if generator is None:
        return torch.rand(n, dtype=torch.float64, device=device)
    return torch.rand(n, dtype=torch.float64, device=generator.device, generator=generator).to(device)


# ------------------------------------------------------------ neighbour step
_CUM_CACHE: list = []  # [(weakref to values, values._version, weakref to crow, cum, total)], last graph


def _weighted_cumsum(graph: ProximityGraph):
    """Global running sum of the transition probabilities, and each row's total (1, or 0 if dangling).

    Cached for the last graph used (keyed by its weight tensor), so repeated weighted
    sampling on one graph pays the O(nnz) set-up once.
    """
    vals = graph.values
    if _CUM_CACHE:
        ref, version, crow_ref, cum, total = _CUM_CACHE[0]
        if ref() is vals and version == vals._version and crow_ref() is graph.crow:
            return cum, total
    prob = graph.to(dtype=torch.float64).transition_matrix(weighted=True).values
    # cum[0] = 0 and cum[e + 1] = prob[0] + ... + prob[e]: edge e owns [cum[e], cum[e + 1])
    cum = torch.cat([torch.zeros(1, dtype=torch.float64, device=prob.device), torch.cumsum(prob, 0)])
    total = cum[graph.crow[1:]] - cum[graph.crow[:-1]]
    _CUM_CACHE[:] = [(weakref.ref(vals), vals._version, weakref.ref(graph.crow), cum, total)]
    weakref.finalize(vals, _CUM_CACHE.clear)  # drop the arrays with the graph (a later miss is harmless)
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
        >>> from graphbatch.walk import sample_neighbors
        >>> g = ProximityGraph.from_coo([0, 0, 1], [1, 2, 2], num_nodes=3)
        >>> out = sample_neighbors(g, [0, 1, 2], generator=torch.Generator().manual_seed(0))
        >>> out[0].item() in (1, 2), out[1:].tolist()
        (True, [2, -1])
    """
    graph = _check_graph(graph)
    weighted = _check_bool("weighted", weighted)
    generator = _check_generator(generator)
    idx = as_index_tensor("nodes", nodes, num_nodes=graph.num_nodes, device=graph.device, allow_empty=True)
    _check_weights(graph, weighted)
    if idx.numel() == 0:
        return idx.clone()
    u = _rand(idx.numel(), generator, graph.device)
    return _Stepper(graph, weighted)(idx, u)


# ------------------------------------------------------------ common set-up
def _prepare(graph: Any, seeds: Any, restart_prob: Any, weighted: Any):
    graph = _check_graph(graph)
    p = check_probability("restart_prob", restart_prob)
    weighted = _check_bool("weighted", weighted)
    if graph.num_nodes == 0:
        raise ValueError("graph has no nodes; an RWR needs at least one")
    s = as_index_tensor("seeds", seeds, num_nodes=graph.num_nodes, device=graph.device)
    _check_weights(graph, weighted)
    return graph, s, p, weighted


# ---------------------------------------------------- exact: power iteration
def _transpose(trans: ProximityGraph) -> ProximityGraph:
    """CSR of Pᵀ by one stable sort of the column indices (rows of P are already in order).

    Sorting int32 keys when they fit is ~2.5x faster on CPU than the general (row, col) sort.
    """
    n = trans.num_nodes
    col = trans.col.to(torch.int32) if n < 2**31 else trans.col
    col_sorted, perm = torch.sort(col, stable=True)
    crow = torch.zeros(n + 1, dtype=torch.int64, device=trans.device)
    torch.cumsum(torch.bincount(col_sorted, minlength=n), 0, out=crow[1:])
    return ProximityGraph(crow, trans.row()[perm], trans.values[perm], n, check=False)


class _TorchEngine:
    """Power-iteration kernels with torch tensors (CPU or CUDA); Pᵀ as a torch sparse CSR tensor."""

    name = "torch"

    def __init__(self, trans: ProximityGraph, seeds: torch.Tensor) -> None:
        t = _transpose(trans)
        self.pt = _sparse_csr(t.crow, t.col, t.values, (t.num_nodes, t.num_nodes))
        self.seeds = seeds.to(trans.device)
        self.cols = torch.arange(seeds.numel(), device=trans.device)
        self.dtype, self.device = trans.dtype, trans.device

    def start(self) -> torch.Tensor:
        x = torch.zeros(self.pt.shape[0], self.seeds.numel(), dtype=self.dtype, device=self.device)
        x[self.seeds, self.cols] = 1.0
        return x

    def spmm(self, x: torch.Tensor) -> torch.Tensor:
        return self.pt @ x

    @staticmethod
    def max_col_l1(x: torch.Tensor) -> float:
        return float(x.abs_().sum(0).max())  # in place: x is scratch here (vector_norm(dim=0) is slow on CPU)

    @staticmethod
    def to_torch(x: torch.Tensor) -> torch.Tensor:
        return x


class _ArrayEngine:
    """Power-iteration kernels for a numpy-like namespace ``xp`` and a scipy-like CSR matrix (scipy, cupyx)."""

    def __init__(self, name: str, xp: Any, pt: Any, seeds: Any, to_torch: Any) -> None:
        self.name, self.xp, self.pt, self.seeds, self._to_torch = name, xp, pt, seeds, to_torch
        self.cols = xp.arange(seeds.shape[0])

    def start(self) -> Any:
        x = self.xp.zeros((self.pt.shape[0], self.seeds.shape[0]), dtype=self.pt.dtype)
        x[self.seeds, self.cols] = 1.0
        return x

    def spmm(self, x: Any) -> Any:
        return self.pt @ x

    def max_col_l1(self, x: Any) -> float:
        return float(self.xp.abs(x, out=x).sum(0).max())  # x is scratch here

    def to_torch(self, x: Any) -> torch.Tensor:
        return self._to_torch(x)


def _scipy_engine(trans: ProximityGraph, seeds: torch.Tensor) -> _ArrayEngine:
    import numpy as np

    _backend.require("scipy.sparse", "rwr(backend='scipy')")
    pt = trans.to("cpu").to_scipy().T.tocsr()
    pt.sort_indices()
    return _ArrayEngine("scipy", np, pt, seeds.cpu().numpy(), lambda x: torch.from_numpy(np.ascontiguousarray(x)))


def _cupy_engine(trans: ProximityGraph, seeds: torch.Tensor) -> _ArrayEngine:
    cp = _backend.require("cupy", "rwr(backend='cupy')")
    _backend.require("cupyx.scipy.sparse", "rwr(backend='cupy')")
    if not _backend.WITH_CUDA:
        raise ValueError("backend='cupy' needs a CUDA device visible to torch, and none is")
    t = trans if trans.device.type == "cuda" else trans.to("cuda")
    pt = _transpose(t).to_cupy()  # values shared with torch through DLPack; int32 index copies
    s = cp.from_dlpack(seeds.to(t.device).contiguous())
    return _ArrayEngine("cupy", cp, pt, s, torch.from_dlpack)


def _make_engine(name: str, trans: ProximityGraph, seeds: torch.Tensor, q: float) -> Any:
    """The backend seam: ``start()`` (the ``(N, S)`` block of seed indicators), ``spmm(X)`` (``q Pᵀ @ X``),
    ``max_col_l1(X)`` (max column L1 norm; may clobber X), ``to_torch(X)``, and index arrays ``seeds``, ``cols``.
    """
    trans = ProximityGraph(trans.crow, trans.col, trans.values * q, trans.num_nodes, check=False)
    if name == "torch":
        return _TorchEngine(trans, seeds)
    if name == "scipy":
        return _scipy_engine(trans, seeds)
    return _cupy_engine(trans, seeds)


def _power_step(eng: Any, x: Any):
    """One power iteration on the ``(N, S)`` block ``x``; returns the new block and the max L1 change.

    ``x`` is clobbered. Block passes: the SpMM, one column sum, ``x -= y``, ``|x|`` in place, one column sum.
    """
    y = eng.spmm(x)  # (1 - p) Pᵀ x: the scale is folded into the matrix
    # mass that left the walk (restart with prob. p, plus dangling nodes) returns to the seed;
    # computing it as 1 - column sum also keeps every column summing to 1 in floating point
    y[eng.seeds, eng.cols] += 1.0 - y.sum(0)
    x -= y
    return y, eng.max_col_l1(x)


def _resolve_backend(name: Any, graph: ProximityGraph) -> str:
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, got {type(name).__name__} ({name!r})")
    if name == "auto":
        use_cupy = _backend.WITH_CUDA and _backend.WITH_CUPY and graph.device.type == "cuda"
        return "cupy" if use_cupy else "torch"
    if name not in BACKENDS:
        raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {name!r}")
    return name


def rwr(graph: ProximityGraph, seeds: Any, restart_prob: float, *, tol: float = 1e-8, max_iter: int = 1000,
        backend: str = "auto", weighted: bool = True, return_info: bool = False,
        dtype: torch.dtype = torch.float64) -> Any:
    """Exact RWR (personalised PageRank) vectors of many seeds, by power iteration.

    Row ``j`` of the result solves ``r = p e_s + (1 - p) (P^T r + (d . r) e_s)``
    for ``s = seeds[j]`` (dangling nodes send their mass back to the seed, as
    in ``networkx.pagerank(G, alpha=1 - p, personalization={s: 1})``). All
    seeds iterate together: the ``(N, S)`` block ``R^T`` is updated with one
    sparse (CSR ``P^T``) x dense product per iteration. Since the iteration map
    contracts by ``1 - p`` in L1, stopping when the L1 change of every row is
    below ``tol`` leaves an L1 error of at most ``tol * (1 - p) / p``.

    Args:
        graph: the proximity graph.
        seeds: 1-D seed node indices (repeats allowed).
        restart_prob: probability ``p`` in (0, 1] of jumping back to the seed at each step.
        tol: stop once the max over seeds of the L1 change in one iteration is below ``tol``.
        max_iter: iteration cap (``info.converged`` tells whether ``tol`` was reached).
        backend: ``"auto"`` (CuPy when available and the graph is on CUDA, else torch),
            ``"torch"`` (CPU/CUDA sparse CSR), ``"scipy"`` (CPU) or ``"cupy"`` (cuSPARSE).
        weighted: walk with probabilities proportional to edge weights (must be
            non-negative); ``False`` walks uniformly over out-edges.
        return_info: also return an :class:`RWRInfo`.
        dtype: ``torch.float64`` (default) or ``torch.float32`` (half the memory traffic).

    Memory: about three ``(N, S)`` blocks of ``dtype`` (``N = 1M``, ``S = 512`` in
    float64 is 4 GB per block); pass fewer seeds per call, or use :func:`rwr_truncated`.

    Returns:
        ``(S, N)`` dense tensor on the graph's device, rows summing to 1; with
        ``return_info``, ``(R, info)``.

    Raises:
        TypeError: ``graph`` is not a ProximityGraph; wrong argument types.
        ValueError: ``restart_prob`` outside (0, 1]; ``seeds`` empty or out of range;
            unknown ``backend``; negative weights with ``weighted=True``.
        graphbatch.backend.MissingDependencyError: ``backend="cupy"`` without CuPy.

    Example:
        >>> import torch
        >>> from graphbatch import ProximityGraph
        >>> from graphbatch.walk import rwr
        >>> g = ProximityGraph.from_coo([0, 1, 1], [1, 0, 2], num_nodes=3)  # node 2 is dangling
        >>> r, info = rwr(g, [0], 0.3, return_info=True)
        >>> round(float(r.sum()), 12), info.converged, info.backend
        (1.0, True, 'torch')
    """
    graph, s, p, weighted = _prepare(graph, seeds, restart_prob, weighted)
    tol = _check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, low=1)
    return_info = _check_bool("return_info", return_info)
    dtype = _check_dtype(dtype)
    name = _resolve_backend(backend, graph)
    trans = graph.to(dtype=dtype).transition_matrix(weighted=weighted)
    eng = _make_engine(name, trans, s, 1.0 - p)
    x = eng.start()
    delta = float("inf")
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        x, delta = _power_step(eng, x)
        if delta < tol:
            break
    r = eng.to_torch(x).t().contiguous().to(graph.device)
    if not return_info:
        return r
    return r, RWRInfo(iterations=it, residual=delta, backend=eng.name, converged=delta < tol)


# ------------------------------------------------------ sparse: forward push
def _expand_rows(crow: torch.Tensor, nodes: torch.Tensor, deg: torch.Tensor):
    """For each node in ``nodes``, the positions of its out-edges: (owner index, edge index)."""
    counts = deg[nodes]
    owner = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), counts)
    first = torch.cumsum(counts, 0) - counts
    offs = torch.arange(owner.numel(), device=nodes.device) - first[owner]
    return owner, crow[nodes][owner] + offs


#: rwr_truncated uses a padded (N, max out-degree) neighbour table when it has at most this many
#: slots per edge (k-NN graphs: ~1); otherwise it expands the CSR rows of the pushed nodes.
_GRID_SLACK = 1.25


def _sparse_csr(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(crow, col, val, shape, check_invariants=False)


_PUSH_CACHE: list = []  # [(key refs..., setup tuple)] for the last graph pushed on


def _push_setup(graph: ProximityGraph, weighted: bool):
    """Arrays the push needs (O(nnz) to build: P in float64, dangling mask, padded table).

    Cached for the last graph (keyed by its tensors, freed with it), so calling
    :func:`rwr_truncated` chunk by chunk on one graph pays the set-up once.
    """
    key = (weighted, _GRID_SLACK)
    if _PUSH_CACHE:
        refs, version, ckey, setup = _PUSH_CACHE[0]
        if ckey == key and version == graph.values._version and all(
                r() is t for r, t in zip(refs, (graph.crow, graph.col, graph.values))):
            return setup
    n, dev = graph.num_nodes, graph.device
    trans = graph.to(dtype=torch.float64).transition_matrix(weighted=weighted)
    crow, col, prob = trans.crow, trans.col, trans.values
    deg = trans.out_degree()
    # dangling: no out-edges, or (weighted) zero total weight, i.e. an all-zero row of P
    dangling = trans.out_degree(weighted=True) < 0.5
    # near-regular graphs (k-NN: out-degree <= K) use a padded neighbour table; padding slots point
    # at node 0 with probability 0, adding nothing (dangling rows are all padding)
    kmax = int(deg.max()) if n else 0
    grid = None
    if 0 < kmax and n * kmax <= _GRID_SLACK * max(trans.nnz, 1):
        slots = torch.arange(kmax, device=dev)
        inside = slots.unsqueeze(0) < deg.unsqueeze(1)
        eidx = (crow[:-1].unsqueeze(1) + slots).clamp_max(max(trans.nnz - 1, 0))
        grid = (torch.where(inside, col[eidx], torch.zeros_like(eidx)),
                torch.where(inside, prob[eidx], torch.zeros(1, dtype=prob.dtype, device=dev)))
    setup = (crow, col, prob, dangling, grid, deg)
    refs = tuple(weakref.ref(t) for t in (graph.crow, graph.col, graph.values))
    _PUSH_CACHE[:] = [(refs, graph.values._version, key, setup)]
    weakref.finalize(graph.values, _PUSH_CACHE.clear)  # free the arrays with the graph
    return setup


def _k_push(crow, col, prob, dangling, seeds, p, eps, max_rounds, res, x, inq, mark, queue, touched):
    """Compiled (numba) FIFO forward push, one seed after another, on CPU arrays.

    Same push rule and invariant as the vectorised engine: a node whose residual
    exceeds ``eps`` is queued; popping it moves ``p res`` into ``x`` and spreads
    ``(1 - p) res`` along its row of ``P`` (to the seed if dangling). A *round* is
    one generation of the FIFO queue (the nodes queued when the previous round
    ended), so ``max_rounds`` and the returned round count mean what they mean for
    the vectorised engine. ``res``, ``x`` (float64), ``inq``, ``mark`` (bool),
    ``queue`` and ``touched`` (int64) are ``N``-sized scratch arrays, zero/False on
    entry and on exit: only touched entries are cleared, so a seed costs time in
    the nodes it reaches, not in ``N``.
    """
    n = res.shape[0]
    n_seeds = seeds.shape[0]
    cap = 1024
    out_col = np.empty(cap, dtype=np.int64)
    out_val = np.empty(cap, dtype=np.float64)
    out_ptr = np.zeros(n_seeds + 1, dtype=np.int64)
    err = np.zeros(n_seeds, dtype=np.float64)
    rounds_max = 0
    converged = True
    q = 1.0 - p
    for j in range(n_seeds):
        s = seeds[j]
        nt = 0
        res[s] = 1.0
        mark[s] = True
        touched[nt] = s
        nt += 1
        head = 0
        qlen = 1
        queue[0] = s
        inq[s] = True
        rounds = 0
        left = 0  # nodes left in the current round
        while qlen > 0:
            if left == 0:
                if rounds == max_rounds:
                    converged = False
                    break
                rounds += 1
                left = qlen
            u = queue[head]
            head = head + 1 if head + 1 < n else 0
            qlen -= 1
            left -= 1
            inq[u] = False
            r = res[u]
            res[u] = 0.0
            x[u] += p * r
            if dangling[u]:
                res[s] += q * r
                if res[s] > eps and not inq[s]:
                    queue[(head + qlen) % n] = s
                    qlen += 1
                    inq[s] = True
            else:
                for e in range(crow[u], crow[u + 1]):
                    v = col[e]
                    if not mark[v]:
                        mark[v] = True
                        touched[nt] = v
                        nt += 1
                    res[v] += q * r * prob[e]
                    if res[v] > eps and not inq[v]:
                        queue[(head + qlen) % n] = v
                        qlen += 1
                        inq[v] = True
        if rounds > rounds_max:
            rounds_max = rounds
        # x's support (every pushed node holds x > 0), sorted, appended to the output
        sup = np.empty(nt, dtype=np.int64)
        ns = 0
        for i in range(nt):
            t = touched[i]
            if x[t] > 0.0:
                sup[ns] = t
                ns += 1
        sup = np.sort(sup[:ns])
        start = out_ptr[j]
        while start + ns > cap:
            cap *= 2
            grown_c = np.empty(cap, dtype=np.int64)
            grown_v = np.empty(cap, dtype=np.float64)
            grown_c[:start] = out_col[:start]
            grown_v[:start] = out_val[:start]
            out_col, out_val = grown_c, grown_v
        total = 0.0
        for i in range(ns):
            out_col[start + i] = sup[i]
            out_val[start + i] = x[sup[i]]
            total += x[sup[i]]
        out_ptr[j + 1] = start + ns
        err[j] = max(1.0 - total, 0.0)
        for i in range(nt):  # sparse clean-up of the scratch arrays
            t = touched[i]
            res[t] = 0.0
            x[t] = 0.0
            mark[t] = False
            inq[t] = False
    return out_ptr, out_col[:out_ptr[n_seeds]], out_val[:out_ptr[n_seeds]], err, rounds_max, converged


_PUSH_KERNEL: list = []


def _push_kernel():
    """The compiled :func:`_k_push` (numba, compiled on first use and cached on disk)."""
    if not _PUSH_KERNEL:
        numba = _backend.require("numba", "rwr_truncated(engine='numba')")
        _PUSH_KERNEL.append(numba.njit(cache=True, nogil=True)(_k_push))
    return _PUSH_KERNEL[0]


def _resolve_engine(engine: Any, graph: ProximityGraph) -> str:
    if engine not in ("auto", "torch", "numba"):
        raise ValueError(f"engine must be 'auto', 'torch' or 'numba', got {engine!r}")
    if engine == "numba" and graph.device.type != "cpu":
        raise ValueError(f"engine='numba' runs on CPU graphs only; this graph is on {graph.device}")
    if engine == "auto":
        return "numba" if graph.device.type == "cpu" and _backend.WITH_NUMBA else "torch"
    return engine


def rwr_truncated(graph: ProximityGraph, seeds: Any, restart_prob: float, *, eps: float = 1e-4,
                  max_iter: int = 10_000, weighted: bool = True, return_info: bool = False,
                  dtype: torch.dtype = torch.float64, chunk_size: int | None = None,
                  engine: str = "auto") -> Any:
    """Sparse approximate RWR vectors by vectorised forward push (Andersen-Chung-Lang style).

    Each seed keeps an estimate ``x`` and a residual ``res`` (start: ``x = 0``,
    ``res = e_s``). Every round, all (seed, node) residual entries above ``eps``
    are pushed at once: ``x[u] += p res[u]`` and ``(1 - p) res[u]`` spreads to
    ``u``'s out-neighbours by ``P[u, :]`` (to the seed if ``u`` is dangling).
    Entries at or below ``eps`` are never pushed: that is the mass the truncation
    drops. Work touches only nodes the walk reaches with non-negligible mass, so
    the cost per seed does not grow with ``N``: at most ``1 / (p eps)`` pushes per
    seed (each moves more than ``p eps`` of the seed's unit mass into ``x``), each
    costing one row of ``P``; an epoch's ``N / B`` seeds cost ``O(N)``. The
    ``O(nnz)`` set-up (``P`` in float64, a padded neighbour table for k-NN-like
    graphs) is cached for the last graph, so calling chunk by chunk is cheap.

    Error bound (exact, not asymptotic). With ``M = P^T + e_s d^T`` and
    ``G = (I - (1 - p) M)^{-1} = sum_k (1 - p)^k M^k``, every push keeps the
    invariant ``r = x + p G res``. ``p G`` is non-negative and column-stochastic, so
    ``0 <= r - x`` entrywise and ``||r - x||_1 = ||res||_1 = 1 - sum(x)`` exactly,
    per seed, even when ``max_iter`` stops the push early. Once the push has
    converged every residual entry is ``<= eps``, hence
    ``||r - x||_1 <= eps * |supp(res)| <= eps * N``, and each entry of ``r - x``
    is at most ``||res||_1``. The exact per-seed L1 error is returned in
    ``info.error`` (``info.residual`` is its maximum). How much mass sits below
    ``eps`` depends on the graph: clustered k-NN graphs keep it small, expanders
    (random graphs) spread it thin and need a smaller ``eps``.

    Args:
        graph: the proximity graph.
        seeds: 1-D seed node indices (repeats allowed).
        restart_prob: restart probability ``p`` in (0, 1].
        eps: residual threshold (> 0); smaller is more accurate and costlier.
        max_iter: cap on push rounds (the push terminates on its own after at most
            ``1 / (p eps)`` rounds; ``info.converged`` says whether it did).
        weighted: walk by edge weights (non-negative) or uniformly (``False``).
        return_info: also return an :class:`RWRInfo` with ``error`` per seed.
        dtype: value dtype of the result, ``torch.float64`` (default) or ``torch.float32``;
            the push itself runs in float64.
        chunk_size: seeds pushed together (three 8-byte scratch arrays of
            ``chunk_size * N`` entries, reused across chunks and cleared sparsely);
            default: as many as fit in 256 MiB. Used by the ``"torch"`` engine only.
        engine: ``"torch"`` (the vectorised rounds above, on the graph's device),
            ``"numba"`` (a compiled FIFO push, one seed after another, CPU graphs only:
            the same push rule, invariant and error accounting, a round being one
            generation of the queue; results differ from ``"torch"`` within the bound
            because the push order differs) or ``"auto"`` (numba for a CPU graph when
            numba is installed, else torch).

    Returns:
        torch sparse CSR tensor ``(S, N)`` on the graph's device (sorted column
        indices); with ``return_info``, ``(R, info)``.

    Raises:
        TypeError: ``graph`` is not a ProximityGraph; wrong argument types.
        ValueError: ``restart_prob`` outside (0, 1]; ``eps`` not > 0; bad ``seeds``;
            negative weights with ``weighted=True``.

    Example:
        >>> import torch
        >>> from graphbatch import ProximityGraph
        >>> from graphbatch.walk import rwr, rwr_truncated
        >>> g = ProximityGraph.from_neighbors(torch.tensor([[1, 2], [2, 0], [0, 1]]))
        >>> r, info = rwr_truncated(g, [0], 0.2, eps=1e-6, return_info=True)
        >>> err = (rwr(g, [0], 0.2) - r.to_dense()).abs().sum().item()
        >>> abs(err - info.residual) < 1e-9, info.residual <= 1e-6 * 3
        (True, True)
    """
    graph, s, p, weighted = _prepare(graph, seeds, restart_prob, weighted)
    eps = _check_positive("eps", eps)
    max_iter = check_int("max_iter", max_iter, low=1)
    return_info = _check_bool("return_info", return_info)
    dtype = _check_dtype(dtype)
    n, S, dev = graph.num_nodes, s.numel(), graph.device
    if chunk_size is None:
        chunk_size = max(1, (256 << 20) // (24 * n))
    chunk_size = min(check_int("chunk_size", chunk_size, low=1), S)
    crow, col, prob, dangling, grid, deg = _push_setup(graph, weighted)
    if _resolve_engine(engine, graph) == "numba":
        return _rwr_truncated_numba(crow, col, prob, dangling, s, p, eps, max_iter, return_info, dtype, n)
    q = 1.0 - p

    # dense scratch for one chunk of seeds, indexed by key = local_seed * n + node; cleared sparsely
    # between chunks (zeros() itself is cheap: lazily mapped pages on CPU, a memset on GPU)
    size = chunk_size * n
    res = torch.zeros(size, dtype=torch.float64, device=dev)
    x = torch.zeros(size, dtype=torch.float64, device=dev)
    slot = torch.empty(size, dtype=torch.int64, device=dev)  # sort-free de-duplication (written before read)
    out_keys, out_vals, rounds, converged = [], [], 0, True
    for c0 in range(0, S, chunk_size):
        cs = s[c0:c0 + chunk_size]
        C = cs.numel()
        active = torch.arange(C, device=dev) * n + cs
        res[active] = 1.0
        touched, pushed = [active], [active]
        it, done = 0, False
        for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
            a_val = res[active]
            res[active] = 0.0
            x.index_add_(0, active, p * a_val)
            a_seed = torch.div(active, n, rounding_mode="floor")
            a_node = active - a_seed * n
            dang = dangling[a_node]
            if grid is not None:  # padded (n, Kmax) table: two row gathers, no ragged expansion
                nbr, pw = grid
                spread_key = ((a_seed * n).unsqueeze(1) + nbr[a_node]).reshape(-1)
                spread_val = ((q * a_val).unsqueeze(1) * pw[a_node]).reshape(-1)
            else:
                live = ~dang
                owner, edge = _expand_rows(crow, a_node[live], deg)
                spread_key = a_seed[live][owner] * n + col[edge]
                spread_val = (q * a_val[live])[owner] * prob[edge]
            new_key = torch.cat([spread_key, a_seed[dang] * n + cs[a_seed[dang]]])
            new_val = torch.cat([spread_val, q * a_val[dang]])
            res.index_add_(0, new_key, new_val)
            touched.append(new_key)
            # only entries that just received mass can have crossed eps
            cand = new_key[res[new_key] > eps]
            if cand.numel() == 0:
                done = True
                break
            # de-duplicate without sorting: one writer per key wins its slot, keep the winners
            pos = torch.arange(cand.numel(), device=dev)
            slot[cand] = pos
            active = cand[slot[cand] == pos]
            pushed.append(active)
        rounds = max(rounds, it)
        converged = converged and done
        # x's support: every key ever pushed (all held > eps when pushed, so x > 0 there)
        support = torch.unique(torch.cat(pushed))
        out_keys.append(support + c0 * n)
        out_vals.append(x[support])
        x[support] = 0.0
        res[torch.cat(touched)] = 0.0

    key = torch.cat(out_keys)
    val = torch.cat(out_vals)
    rows = torch.div(key, n, rounding_mode="floor")
    crow_out = torch.zeros(S + 1, dtype=torch.int64, device=dev)
    torch.cumsum(torch.bincount(rows, minlength=S), 0, out=crow_out[1:])
    out = _sparse_csr(crow_out, key - rows * n, val.to(dtype), (S, n))
    if not return_info:
        return out
    # mass conservation: what is not in x is the residual, which is the exact L1 error
    err = (1.0 - torch.zeros(S, dtype=torch.float64, device=dev).index_add_(0, rows, val)).clamp_min(0.0)
    return out, RWRInfo(iterations=rounds, residual=float(err.max()), backend="torch-push",
                        converged=converged, error=err)


def _rwr_truncated_numba(crow, col, prob, dangling, s, p, eps, max_iter, return_info, dtype, n):
    """``rwr_truncated`` with the compiled engine (CPU tensors in, sparse CSR tensor out)."""
    kernel = _push_kernel()
    res = np.zeros(n, dtype=np.float64)
    x = np.zeros(n, dtype=np.float64)
    inq = np.zeros(n, dtype=np.bool_)
    mark = np.zeros(n, dtype=np.bool_)
    queue = np.empty(max(n, 1), dtype=np.int64)
    touched = np.empty(max(n, 1), dtype=np.int64)
    ptr, cols, vals, err, rounds, converged = kernel(
        crow.numpy(), col.numpy(), prob.numpy(), dangling.numpy(), s.numpy(), float(p), float(eps),
        int(max_iter), res, x, inq, mark, queue, touched)
    out = _sparse_csr(torch.from_numpy(ptr), torch.from_numpy(cols), torch.from_numpy(vals).to(dtype),
                      (s.numel(), n))
    if not return_info:
        return out
    err_t = torch.from_numpy(err)
    return out, RWRInfo(iterations=int(rounds), residual=float(err_t.max()) if err_t.numel() else 0.0,
                        backend="numba-push", converged=bool(converged), error=err_t)


# ------------------------------------------------------------- Monte Carlo
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
        >>> from graphbatch.walk import rwr, rwr_monte_carlo
        >>> g = ProximityGraph.from_neighbors(torch.tensor([[1, 2], [2, 0], [0, 1]]))
        >>> est = rwr_monte_carlo(g, [0], 0.3, num_walks=20000, generator=torch.Generator().manual_seed(0))
        >>> bool((est - rwr(g, [0], 0.3)).abs().sum() < 0.05)
        True
    """
    graph, s, p, weighted = _prepare(graph, seeds, restart_prob, weighted)
    num_walks = check_int("num_walks", num_walks, low=1)
    generator = _check_generator(generator)
    if estimator not in ("visits", "terminal"):
        raise ValueError(f"estimator must be 'visits' or 'terminal', got {estimator!r}")
    if max_steps is None:
        max_steps = 0 if p >= 1.0 else int(math.ceil(math.log(1e-9) / math.log1p(-p)))
    max_steps = check_int("max_steps", max_steps, low=0)
    return_info = _check_bool("return_info", return_info)
    n, S, dev = graph.num_nodes, s.numel(), graph.device
    step = _Stepper(graph, weighted)
    visits = estimator == "visits"

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
        u = _rand(pos.numel(), generator, dev)
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
    scale = (p if visits else 1.0) / num_walks
    r = (counts * scale).reshape(S, n)
    if not return_info:
        return r
    return r, RWRInfo(iterations=t, residual=float("nan"), backend="torch-mc", converged=True)
