"""Sparse approximate RWR by forward push (``rwr_truncated``), and the push scores the ppr sampler ranks by.

Two engines follow one push rule (a node whose residual exceeds ``eps`` moves ``p`` of it
into its estimate and spreads the rest along its row of ``P``; dangling nodes send it to
the seed): the vectorised torch engine (all entries above ``eps`` pushed per round, on any
device: the engine for CUDA graphs) and the compiled FIFO kernel
:func:`graphbatch.kernels.compiled.push_seed` (CPU), which is also the one kernel of
``RWRBatchSampler(mode="ppr")``. :func:`push_scores` gives, per seed, every node the push
reached with score ``x + r`` (estimate plus residual): the PPR ranking rule stated in
:mod:`graphbatch.kernels.compiled`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import backend
from .._validation import check_bool, check_choice, check_dtype, check_int, check_real
from ..graph import ProximityGraph
from ..graph._csr import sparse_csr_tensor
from ._common import RWRInfo, prepare

__all__ = ["rwr_truncated", "push_scores", "ENGINES"]

#: Names accepted by ``rwr_truncated(..., engine=...)``.
ENGINES = ("auto", "torch", "numba")
#: rwr_truncated uses a padded (N, max out-degree) neighbour table when it has at most this many
#: slots per edge (k-NN graphs: ~1); otherwise it expands the CSR rows of the pushed nodes.
_GRID_SLACK = 1.25


def _expand_rows(crow: torch.Tensor, nodes: torch.Tensor, counts: torch.Tensor, total: int):
    """The first ``counts[i]`` out-edges of each ``nodes[i]``: (owner index, edge index), ``total`` pairs.

    ``total = counts.sum()`` is passed in (known on the host), so the expansion needs no host sync.
    """
    owner = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), counts, output_size=total)
    first = torch.cumsum(counts, 0) - counts
    offs = torch.arange(total, device=nodes.device) - first[owner]
    return owner, crow[nodes][owner] + offs


def _compact(values: torch.Tensor, keep: torch.Tensor, count: int) -> torch.Tensor:
    """``values[keep]`` when ``count = keep.sum()`` is known on the host: no host sync (``values[keep]``
    needs one on CUDA to size its output). The ``j``-th kept entry is where the running count of kept
    entries first reaches ``j + 1``.
    """
    running = torch.cumsum(keep, 0)  # integer cumsum: deterministic on CUDA too
    return values[torch.searchsorted(running, torch.arange(1, count + 1, device=values.device))]


def _claim(slot: torch.Tensor, keys: torch.Tensor, pos: torch.Tensor) -> None:
    """``slot[k]`` = the position of one copy of every key ``k`` in ``keys``.

    ``pos`` holds the copies' positions, larger than any position claimed before (so stale slots
    never win). On CPU the last copy wins (``scatter_reduce`` amax): with repeated keys,
    ``slot[keys] = pos`` keeps whichever copy torch's threads write last once the array is large
    enough to be split, so the order of the next active set, hence the rounding of the sums, could
    change from run to run. On CUDA ``slot[keys] = pos``: ``scatter_reduce`` raises under
    ``torch.use_deterministic_algorithms(True)``, where index_put is deterministic (sorted); without
    that mode the CUDA ``index_add_`` sums are not reproducible bit for bit anyway.
    """
    if keys.device.type == "cpu":
        slot.scatter_reduce_(0, keys, pos, "amax")
    else:
        slot[keys] = pos


def _to_host(t: torch.Tensor) -> list:
    """The push's one host sync per round: a few counts copied to the host together."""
    return t.tolist()


def _push_setup(graph: ProximityGraph, weighted: bool):
    """Arrays the push needs (O(nnz) to build: P in float64, dangling mask, padded table).

    Cached on the (immutable) graph, so calling :func:`rwr_truncated` chunk by chunk on one
    graph pays the set-up once.
    """
    key = ("push_setup", weighted, _GRID_SLACK)
    if key in graph._cache:
        return graph._cache[key]
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
    graph._cache[key] = setup
    return setup


def _resolve_engine(engine: Any, graph: ProximityGraph) -> str:
    engine = check_choice("engine", engine, ENGINES)
    if engine == "numba" and graph.device.type != "cpu":
        raise ValueError(f"engine='numba' runs on CPU graphs only; this graph is on {graph.device}")
    if engine == "auto":
        return "numba" if graph.device.type == "cpu" and backend.WITH_NUMBA else "torch"
    return engine


def _scratch(n: int) -> tuple[np.ndarray, ...]:
    """The compiled push's scratch bundle (see :mod:`graphbatch.kernels.slots`)."""
    m = max(n, 1)
    return (np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.bool_),
            np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64))


def _numba_push(graph: ProximityGraph, s: torch.Tensor, p: float, eps: float, max_iter: int, weighted: bool,
                candidates: bool):
    """:func:`~graphbatch.kernels.compiled.push_many` on a CPU graph; uniform transitions use the kernel's own rule."""
    from ..kernels import load

    kernel = load("rwr_truncated(engine='numba')").push_many
    if weighted:
        crow, col, prob, dangling, _, _ = _push_setup(graph, True)
        arrays = (crow.numpy(), col.numpy(), prob.numpy(), dangling.numpy())
    else:  # empty prob: the kernel spreads evenly and treats out-degree 0 as dangling
        arrays = (graph.crow.numpy(), graph.col.numpy(), np.zeros(0), np.zeros(0, dtype=np.bool_))
    return kernel(*arrays, s.numpy(), float(p), float(eps), int(max_iter), candidates, _scratch(graph.num_nodes))


def _torch_push(graph: ProximityGraph, s: torch.Tensor, p: float, eps: float, max_iter: int, weighted: bool,
                chunk_size: int, candidates: bool):
    """The vectorised engine: returns ``(keys, values, rounds, converged)``, keys = ``seed_position * N + node``.

    ``candidates=False``: the estimate on its support (pushed keys); ``True``: ``x + res`` on every
    key that received mass (the seed's included), both in increasing key order.

    One host sync per round (:func:`_to_host`: the size of the next round's active set and, for the
    ragged CSR expansion, its number of out-edges); every other step keeps its sizes on the host.
    """
    n, S, dev = graph.num_nodes, s.numel(), graph.device
    crow, col, prob, dangling, grid, deg = _push_setup(graph, weighted)
    q = 1.0 - p
    # dense scratch for one chunk of seeds, indexed by key = local_seed * n + node; cleared sparsely
    # between chunks (zeros() itself is cheap: lazily mapped pages on CPU, a memset on GPU). One more
    # slot, ``sink``, takes the 0.0 that non-dangling pushed entries send "home" (so every pushed entry
    # sends exactly one home entry: fixed sizes, no boolean selection); it never exceeds eps.
    size = chunk_size * n
    sink = size
    res = torch.zeros(size + 1, dtype=torch.float64, device=dev)
    x = torch.zeros(size, dtype=torch.float64, device=dev)
    slot = torch.zeros(size + 1, dtype=torch.int64, device=dev)  # sort-free de-duplication (_claim)
    base = 1  # next position to claim: each round's positions are new, so stale slots never win
    live_deg = torch.where(dangling, 0, deg)  # out-edges a pushed node spreads over (none when dangling)
    out_keys, out_vals, rounds, converged = [], [], 0, True
    for c0 in range(0, S, chunk_size):
        cs = s[c0:c0 + chunk_size]
        C = cs.numel()
        active = torch.arange(C, device=dev) * n + cs
        res[active] = 1.0
        touched, pushed = [active], []
        # sizes of the active set and of its out-edges, on the host (the seeds start at 1.0 > eps or not at all)
        count = C if 1.0 > eps else 0
        total = int(live_deg[cs].sum()) if grid is None and count else 0
        active = active[:count]
        it, done = 0, False
        for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
            if count == 0:  # the rule: only residuals above eps are pushed (active holds exactly those)
                done, it = True, it - 1
                break
            pushed.append(active)
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
                owner, edge = _expand_rows(crow, a_node, live_deg[a_node], total)
                spread_key = a_seed[owner] * n + col[edge]
                spread_val = (q * a_val)[owner] * prob[edge]
            # a dangling node sends its (1 - p) share back to its seed; the others send 0.0 to the sink
            home_key = torch.where(dang, a_seed * n + cs[a_seed], sink)
            home_val = torch.where(dang, q * a_val, torch.zeros_like(a_val))
            new_key = torch.cat([spread_key, home_key])
            res.index_add_(0, new_key, torch.cat([spread_val, home_val]))
            touched.append(new_key)
            # only entries that just received mass can have crossed eps; de-duplicate without sorting:
            # one writer per key wins its slot, keep the winners above eps (whether a key is above eps
            # does not depend on which of its copies is asked, so this is "filter, then de-duplicate")
            pos = torch.arange(base, base + new_key.numel(), device=dev)
            base += new_key.numel()
            _claim(slot, new_key, pos)
            keep = (slot[new_key] == pos) & (res[new_key] > eps)
            if grid is None:
                nxt = torch.where(keep, live_deg[new_key % n], 0).sum()
                count, total = _to_host(torch.stack([keep.sum(), nxt]))
            else:
                count, = _to_host(keep.sum().view(1))
            active = _compact(new_key, keep, count)
        else:
            done = count == 0
        rounds = max(rounds, it)
        converged = converged and done
        reached = torch.unique(torch.cat(touched if candidates else (pushed or [active[:0]])))
        if candidates:
            reached = reached[reached != sink]
        out_keys.append(reached + c0 * n)
        out_vals.append(x[reached] + res[reached] if candidates else x[reached])
        x[reached] = 0.0
        res[torch.cat(touched)] = 0.0
    return torch.cat(out_keys), torch.cat(out_vals), rounds, converged


def _rows_to_csr(keys: torch.Tensor, vals: torch.Tensor, S: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    rows = torch.div(keys, n, rounding_mode="floor")
    crow = torch.zeros(S + 1, dtype=torch.int64, device=keys.device)
    torch.cumsum(torch.bincount(rows, minlength=S), 0, out=crow[1:])
    return sparse_csr_tensor(crow, keys - rows * n, vals.to(dtype), (S, n))


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
            ``"numba"`` (the compiled FIFO push :func:`graphbatch.kernels.compiled.push_seed`,
            one seed after another, CPU graphs only: the same push rule, invariant and error
            accounting, a round being one generation of the queue; results differ from
            ``"torch"`` within the bound because the push order differs) or ``"auto"`` (numba
            for a CPU graph when numba is installed, else torch).

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
        >>> from graphbatch.solvers import rwr, rwr_truncated
        >>> g = ProximityGraph.from_neighbors(torch.tensor([[1, 2], [2, 0], [0, 1]]))
        >>> r, info = rwr_truncated(g, [0], 0.2, eps=1e-6, return_info=True)
        >>> err = (rwr(g, [0], 0.2) - r.to_dense()).abs().sum().item()
        >>> abs(err - info.residual) < 1e-9, info.residual <= 1e-6 * 3
        (True, True)
    """
    graph, s, p, weighted = prepare(graph, seeds, restart_prob, weighted)
    eps = check_real("eps", eps, low=0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, low=1)
    return_info = check_bool("return_info", return_info)
    dtype = check_dtype("dtype", dtype)
    n, S = graph.num_nodes, s.numel()
    if chunk_size is None:
        chunk_size = max(1, (256 << 20) // (24 * n))
    chunk_size = min(check_int("chunk_size", chunk_size, low=1), S)
    if _resolve_engine(engine, graph) == "numba":
        ptr, cols, vals, err, rounds, converged, _ = _numba_push(graph, s, p, eps, max_iter, weighted, False)
        out = sparse_csr_tensor(torch.from_numpy(ptr), torch.from_numpy(cols), torch.from_numpy(vals).to(dtype),
                                (S, n))
        info = RWRInfo(iterations=int(rounds), residual=float(err.max()) if err.size else 0.0, backend="numba-push",
                       converged=bool(converged), error=torch.from_numpy(err))
        return (out, info) if return_info else out
    keys, vals, rounds, converged = _torch_push(graph, s, p, eps, max_iter, weighted, chunk_size, False)
    out = _rows_to_csr(keys, vals, S, n, dtype)
    if not return_info:
        return out
    # mass conservation: what is not in x is the residual, which is the exact L1 error
    rows = torch.div(keys, n, rounding_mode="floor")
    err = (1.0 - torch.zeros(S, dtype=torch.float64, device=graph.device).index_add_(0, rows, vals)).clamp_min(0.0)
    return out, RWRInfo(iterations=rounds, residual=float(err.max()), backend="torch-push",
                        converged=converged, error=err)


def push_scores(graph: ProximityGraph, seeds: Any, restart_prob: float, *, eps: float, engine: str = "auto",
                chunk_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per seed, every node the push (uniform transitions) reached, scored ``x + r``: the ppr ranking rule.

    Compiled engine: candidates in the order the push first reached them; torch engine
    (CUDA graphs): in node order. Used by ``RWRBatchSampler(mode="ppr",
    ppr_engine="rwr_truncated")``.

    Returns:
        Host CSR ``(ptr, candidates, scores)`` with one row per seed, and the number of pushes
        (compiled engine; the torch engine reports pushed entries).

    Example:
        >>> import torch
        >>> from graphbatch import ProximityGraph
        >>> from graphbatch.solvers.push import push_scores
        >>> g = ProximityGraph.from_neighbors(torch.tensor([[1], [0], [0]]))
        >>> ptr, cand, score, _ = push_scores(g, [2], 0.5, eps=1e-3)
        >>> cand.tolist(), round(float(score.sum()), 6)  # node 2 pushes to 0, 0 and 1 to each other
        ([2, 0, 1], 1.0)
    """
    graph, s, p, _ = prepare(graph, seeds, restart_prob, False)
    eps = check_real("eps", eps, low=0.0, low_open=True)
    if _resolve_engine(engine, graph) == "numba":
        ptr, cand, score, _, _, _, pushes = _numba_push(graph, s, p, eps, 1 << 62, False, True)
        return ptr, cand, score, int(pushes)
    n, S = graph.num_nodes, s.numel()
    keys, vals, _, _ = _torch_push(graph, s, p, eps, 1 << 30, False, min(chunk_size, S), True)
    rows = torch.div(keys, n, rounding_mode="floor")
    ptr = torch.zeros(S + 1, dtype=torch.int64, device=keys.device)
    torch.cumsum(torch.bincount(rows, minlength=S), 0, out=ptr[1:])
    return ptr.cpu().numpy(), (keys - rows * n).cpu().numpy(), vals.cpu().numpy(), int(keys.numel())
