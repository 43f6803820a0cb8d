"""Planners: how a graph sampler orders the unused nodes of an epoch into batches.

A planner has two methods: ``prepare(graph, bank, recycle)`` derives what planning needs
from a newly built graph (host CSR arrays, guard embeddings, an ordering) without touching
anything in use (``recycle`` is the previously prepared object, whose buffers it may
overwrite), and ``plan(prepared, used, n_plan, rng, consumed, epoch)`` returns the order of
the ``n_plan`` unused nodes (``~used``) cut into consecutive batches, and the planner
counters (:data:`graphbatch.kernels.slots.COUNTERS`). ``prepared`` is ``None`` before the
first graph: batches are random (respecting a group guard).

* :class:`WalkPlanner` -- random walks with restart (``RWRBatchSampler(mode="walk")``);
* :class:`PprPlanner` -- top personalized-PageRank scores (``mode="ppr"``);
* :class:`RankedPlanner` -- a seed plus its best-scored unused neighbours (the kNN baseline);
* :class:`OrderPlanner` -- consecutive chunks of a graph ordering (the bandwidth baseline);
* :class:`CommunityPlanner` -- batches of whole random communities (the METIS / B3 baseline).

Example:
    >>> import numpy as np
    >>> from graphbatch.samplers.planners import random_plan
    >>> used = np.array([True, False, False, True])
    >>> sorted(random_plan(used, np.random.default_rng(0)).tolist())
    [1, 2]
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validation import as_index_tensor
from ..graph import ProximityGraph
from ..kernels import load
from ..kernels.slots import COUNTERS, SKIPPED_SEEDS, STEPS

__all__ = ["Guard", "HostGraph", "random_plan", "WalkPlanner", "PprPlanner", "RankedPlanner", "OrderPlanner",
           "CommunityPlanner", "chunk_shuffle"]

_NO_GROUPS = np.zeros(0, dtype=np.int64)
_NO_GEMB = np.zeros((0, 1), dtype=np.float32)


def random_plan(used: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The unused nodes in uniformly random order."""
    rest = np.flatnonzero(~used)
    return rest[rng.permutation(rest.shape[0])]


def _counters() -> np.ndarray:
    return np.zeros(len(COUNTERS), dtype=np.int64)


def _seed_state(rng: np.random.Generator) -> np.ndarray:
    return np.array([int(rng.integers(1, 2**63 - 1))], dtype=np.uint64)


# ================================================================================ guard
class Guard:
    """The false-negative guard: group ids never batched together, a community cap, a similarity ceiling.

    Args:
        num_nodes: ``N``.
        groups: ``(N,)`` group ids (``-1`` = no group) or ``None``: at most one member per group in a batch.
        max_similarity: never put two nodes more similar than this together (``None``: off).
        metric: the graph's metric (``"cosine"`` normalises the guard embeddings).
        scan_limit: unused nodes a guarded random fallback examines.
        max_per_community: at most this many members of one community (of the graph state's
            ``communities``) in a batch (``None``: off).
        name: the group argument's name in error messages.
    """

    def __init__(self, num_nodes: int, groups: Any, max_similarity: float | None, metric: str,
                 scan_limit: int, *, max_per_community: int | None = None, name: str = "groups") -> None:
        self.groups = None if groups is None else _group_codes(name, groups, num_nodes)
        self.max_similarity = max_similarity
        self.metric = metric
        self.scan_limit = scan_limit
        self.max_per_community = max_per_community

    def config(self) -> dict[str, Any]:
        groups = None if self.groups is None else int(np.abs(self.groups * 2654435761 + 7).sum() % (2**61 - 1))
        return {"max_similarity": self.max_similarity, "max_per_community": self.max_per_community,
                "groups_checksum": groups, "scan_limit": self.scan_limit}

    def embeddings(self, bank: Any) -> np.ndarray | None:
        """Guard embeddings from the bank rows (``None`` without a similarity guard or a bank)."""
        if self.max_similarity is None or bank is None or bank.rows is None:
            return None
        e = bank.rows.detach().to("cpu", torch.float32)
        if self.metric == "cosine":
            e = torch.nn.functional.normalize(e, dim=1)
        return e.numpy().copy()

    def bundle(self, gemb: np.ndarray | None, communities: np.ndarray | None) -> tuple:
        """The kernels' guard bundle ``(labels, communities, cap, gemb, max_sim, scan_limit)``."""
        labels = self.groups if self.groups is not None else _NO_GROUPS
        use_comm = communities is not None and self.max_per_community is not None
        comm = communities if use_comm else _NO_GROUPS
        cap = int(self.max_per_community) if use_comm else 1
        if gemb is not None:
            return labels, comm, cap, gemb, float(self.max_similarity), self.scan_limit
        return labels, comm, cap, _NO_GEMB, 0.0, self.scan_limit


def _group_codes(name: str, groups: Any, n: int) -> np.ndarray:
    """Group ids as dense codes ``0..G-1`` (``-1`` kept)."""
    lab = as_index_tensor(name, groups.reshape(-1) if hasattr(groups, "reshape") else groups,
                          allow_empty=True).cpu().numpy()
    if lab.shape[0] != n:
        raise ValueError(f"{name} must have num_nodes={n} entries, got {lab.shape[0]}")
    if lab.size and lab.min() < -1:
        raise ValueError(f"{name} must be >= -1 (-1 = no group), got {int(lab.min())}")
    out = np.full(n, -1, dtype=np.int64)
    has = lab >= 0
    out[has] = np.unique(lab[has], return_inverse=True)[1]
    return out


# ================================================================================ host copies
@dataclass
class HostGraph:
    """A graph prepared for the compiled planners: host CSR (int32 indices when they fit), guard embeddings."""

    graph: ProximityGraph
    crow: np.ndarray
    col: np.ndarray
    values: np.ndarray | None  # edge weights in the graph's dtype, only for the planners that rank by them
    deg: int  # > 0: every row has exactly this many entries (the walk computes row starts)
    gemb: np.ndarray | None
    communities: np.ndarray | None = None

    def guard(self, guard: Guard) -> tuple:
        return guard.bundle(self.gemb, self.communities)

    @property
    def bundle(self) -> tuple[np.ndarray, np.ndarray, int]:
        return self.crow, self.col, self.deg


def _host_copy(buf: np.ndarray | None, t: torch.Tensor, dtype: Any) -> np.ndarray:
    """``t`` as a host array of ``dtype``, written into ``buf`` when it has that shape and dtype.

    A refresh usually yields a graph of the same size (a top-k table has ``N k`` edges),
    so its host copy reuses the buffers of the graph before the previous one (``recycle``,
    no longer in use) instead of allocating and first-touching ``4 (N + 1) + 12 N k`` bytes.
    """
    src = t.detach().cpu().numpy()
    if buf is not None and buf.shape == src.shape and buf.dtype == np.dtype(dtype):
        np.copyto(buf, src, casting="unsafe")
        return buf
    return src.astype(dtype)


def host_graph(state: Any, bank: Any, recycle: Any, guard: Guard, values: bool = False) -> HostGraph:
    """Host copies of ``state.graph`` for planning (reusing ``recycle``'s buffers when it is a :class:`HostGraph`).

    The edge weights are copied only with ``values`` (the ranked planner's scores), in the graph's dtype.
    """
    graph = state.graph
    itype = np.int32 if max(graph.nnz, graph.num_nodes) < 2**31 - 1 else np.int64
    old = recycle if isinstance(recycle, HostGraph) else None
    crow = _host_copy(old.crow if old else None, graph.crow, itype)
    col = _host_copy(old.col if old else None, graph.col, itype)
    vals = None
    if values:
        vdtype = np.float64 if graph.values.dtype == torch.float64 else np.float32
        vals = _host_copy(old.values if old else None, graph.values, vdtype)
    d = np.diff(crow)
    deg = int(d[0]) if d.size and d[0] > 0 and bool((d == d[0]).all()) else 0
    return HostGraph(graph, crow, col, vals, deg, state.guard, state.communities)


class _HostPlanner(ABC):
    """Shared by the planners that plan on a host copy of the graph."""

    def __init__(self, num_nodes: int, batch_size: int, guard: Guard) -> None:
        self.num_nodes, self.batch_size, self.guard = num_nodes, batch_size, guard

    def config(self) -> dict[str, Any]:
        return {**self.guard.config(), **self._config()}

    @abstractmethod
    def _config(self) -> dict[str, Any]:
        """The planner's own settings (with ``mode``)."""

    def prepare(self, state: Any, bank: Any, recycle: Any) -> HostGraph:
        return host_graph(state, bank, recycle, self.guard)

    def plan(self, prepared: HostGraph | None, used: np.ndarray, n_plan: int, rng: np.random.Generator,
             consumed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if prepared is None:
            return self._random(used, n_plan, rng, consumed)
        return self._plan(prepared, used, n_plan, rng, consumed, epoch)

    @abstractmethod
    def _plan(self, prepared: HostGraph, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int,
              epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Plan with a graph (the planner's own rule)."""

    def _random(self, used: np.ndarray, n_plan: int, rng: np.random.Generator,
                consumed: int) -> tuple[np.ndarray, np.ndarray]:
        """Random batches before the first graph; with groups, guarded (no two of a group together)."""
        if self.guard.groups is None:
            return random_plan(used, rng), _counters()
        empty = np.zeros(self.num_nodes + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        no_graph = (np.zeros(self.num_nodes + 1, np.int64), np.zeros(0, np.int64), 0)
        return list_plan(used, n_plan, rng, self.batch_size, empty, no_graph, self.guard.bundle(None, None), False)


def list_plan(used: np.ndarray, n_plan: int, rng: np.random.Generator, batch_size: int, cands: tuple, graph: tuple,
              guard: tuple, sample: bool, rounds: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Seeds in shuffled order, each taking the best unused nodes of its candidate row (row = seed id).

    ``rounds``: every batch grows at once, one node per turn (:func:`~graphbatch.kernels.compiled.rounds_plan`).
    """
    k = load()
    perm = rng.permutation(used.shape[0]).astype(np.int64)
    out = np.empty(n_plan, dtype=np.int64)
    counters = _counters()
    order = (perm, np.zeros(1, np.int64), _seed_state(rng))
    if rounds:
        k.rounds_plan(cands, sample, graph, used, order, out, n_plan, batch_size, guard, counters)
    else:
        k.list_plan(perm, perm, cands, sample, graph, used, order, out, 0, n_plan, batch_size, guard, counters)
    counters[SKIPPED_SEEDS] = 0  # every node is a potential seed here: skipping used ones is not news
    return out, counters


# ================================================================================ planners
class WalkPlanner(_HostPlanner):
    """``mode="walk"``: batches by random walks with restart on the host CSR (see ``docs/concepts.md``).

    Args:
        num_nodes, batch_size: the sampler's ``N`` and ``B``.
        guard: the false-negative guard.
        restart_prob: ``epoch -> p``.
        stall_steps: steps without a new node before a fallback jump.
        walkers: batches built at once (``plan="sequential"``: forced to 1 with a group guard).
        rounds: every batch of the plan walks at once (``plan="rounds"``), one step each in turn.
    """

    def __init__(self, num_nodes: int, batch_size: int, guard: Guard, restart_prob: Callable[[int], float],
                 stall_steps: int, walkers: int, rounds: bool = False) -> None:
        super().__init__(num_nodes, batch_size, guard)
        self.restart_prob, self.stall_steps, self.walkers, self.rounds = restart_prob, stall_steps, walkers, rounds

    def _config(self) -> dict[str, Any]:
        return {"mode": "walk", "plan": "rounds" if self.rounds else "sequential", "walkers": self.walkers,
                "stall_steps": self.stall_steps}

    def _plan(self, prepared: HostGraph, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int,
              epoch: int) -> tuple[np.ndarray, np.ndarray]:
        perm = rng.permutation(self.num_nodes).astype(np.int64, copy=False)
        out = np.empty(n_plan, dtype=np.int64)
        counters = _counters()
        p_thr = np.uint64(min(round(self.restart_prob(epoch) * 2.0**32), 2**32))
        order = (perm, np.zeros(1, np.int64), _seed_state(rng))
        if self.rounds:
            walkers = -(-n_plan // self.batch_size)
        else:
            walkers = 1 if self.guard.groups is not None else self.walkers
        load().walk_plan(prepared.bundle, used, order, out, n_plan, self.batch_size, p_thr, self.stall_steps,
                         prepared.guard(self.guard), walkers, counters)
        return out, counters


class PprPlanner(_HostPlanner):
    """``mode="ppr"``: a seed plus the top-scoring unused nodes by personalized PageRank (the ranking rule
    of :mod:`graphbatch.kernels.compiled`), with the walk's fallbacks when the scores run out.

    Args:
        num_nodes, batch_size, guard: as :class:`WalkPlanner`.
        restart_prob: ``epoch -> p``.
        eps: push threshold (``None``: ``0.1 / B`` for ``"push"``, ``0.25 / B`` for ``"rwr_truncated"``).
        sample: sample by score (Efraimidis-Spirakis) instead of taking the top scores.
        engine: ``"push"`` (one seed at a time, compiled, host CSR), ``"rwr_truncated"`` (``chunk`` seeds per
            call on the graph's device through :func:`graphbatch.solvers.push.push_scores`) or ``"auto"``
            (``rwr_truncated`` for a CUDA graph, else ``push``).
        chunk: seeds per call of the ``rwr_truncated`` engine.
    """

    def __init__(self, num_nodes: int, batch_size: int, guard: Guard, restart_prob: Callable[[int], float],
                 eps: float | None, sample: bool, engine: str, chunk: int) -> None:
        super().__init__(num_nodes, batch_size, guard)
        self.restart_prob, self.eps, self.sample, self.engine, self.chunk = restart_prob, eps, sample, engine, chunk

    def _config(self) -> dict[str, Any]:
        return {"mode": "ppr", "ppr_eps": self.eps, "ppr_sample": self.sample, "ppr_engine": self.engine,
                "ppr_chunk": self.chunk}

    def engine_for(self, graph: ProximityGraph) -> str:
        if self.engine != "auto":
            return self.engine
        return "rwr_truncated" if graph.device.type == "cuda" else "push"

    def _plan(self, prepared: HostGraph, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int,
              epoch: int) -> tuple[np.ndarray, np.ndarray]:
        b, n = self.batch_size, self.num_nodes
        perm = rng.permutation(n).astype(np.int64)
        order = (perm, np.zeros(1, np.int64), _seed_state(rng))
        out = np.empty(n_plan, dtype=np.int64)
        counters = _counters()
        p = self.restart_prob(epoch)
        guard = prepared.guard(self.guard)
        k = load()
        if self.engine_for(prepared.graph) == "push":
            eps = self.eps if self.eps is not None else 0.1 / b
            scratch = (np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool),
                       np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64))
            k.ppr_plan(prepared.bundle, used, order, out, n_plan, b, p, eps, self.sample, guard, counters, scratch)
            return out, counters
        from ..solvers.push import push_scores

        eps = self.eps if self.eps is not None else 0.25 / b
        pos = 0
        start = 0  # seeds before this position of perm are used
        while pos < n_plan:
            while start < n and used[perm[start]]:
                start += 1
            want = min(self.chunk, -(-(n_plan - pos) // b))
            rest = perm[start:]
            seeds = rest[~used[rest]][:want]
            ptr, cand, score, pushes = push_scores(prepared.graph, torch.from_numpy(seeds).to(prepared.graph.device),
                                                   p, eps=eps)
            counters[STEPS] += pushes
            pos, _ = k.list_plan(seeds, np.arange(seeds.shape[0], dtype=np.int64), (ptr, cand, score), self.sample,
                                 prepared.bundle, used, order, out, pos, n_plan, b, guard, counters)
        return out, counters


class RankedPlanner(_HostPlanner):
    """The kNN baseline: a random unused seed plus its best-scored unused out-neighbours, then 1-2 hop fallbacks.

    Args:
        num_nodes, batch_size, guard: as :class:`WalkPlanner`.
        rounds: every batch of the plan grows at once, one node each per turn (``plan="rounds"``).
    """

    def __init__(self, num_nodes: int, batch_size: int, guard: Guard, rounds: bool = False) -> None:
        super().__init__(num_nodes, batch_size, guard)
        self.rounds = rounds

    def _config(self) -> dict[str, Any]:
        return {"mode": "ranked", "plan": "rounds" if self.rounds else "sequential"}

    def prepare(self, state: Any, bank: Any, recycle: Any) -> HostGraph:
        return host_graph(state, bank, recycle, self.guard, values=True)

    def _plan(self, prepared: HostGraph, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int,
              epoch: int) -> tuple[np.ndarray, np.ndarray]:
        cands = (prepared.crow, prepared.col, prepared.values)
        return list_plan(used, n_plan, rng, self.batch_size, cands, prepared.bundle, prepared.guard(self.guard),
                         False, self.rounds)


def chunk_shuffle(seq: np.ndarray, batch_size: int, rng: np.random.Generator, rotate: bool = False) -> np.ndarray:
    """Cut ``seq`` into consecutive batches, shuffle the full ones, keep the short tail last.

    With ``rotate`` the sequence is first rotated by a random offset in ``[0, batch_size)``
    so batch boundaries move from epoch to epoch.
    """
    n = seq.shape[0]
    if rotate and n > batch_size:
        seq = np.roll(seq, -int(rng.integers(batch_size)))
    full = n // batch_size
    head = seq[: full * batch_size].reshape(full, batch_size)[rng.permutation(full)].reshape(-1)
    return np.concatenate([head, seq[full * batch_size:]])


class OrderPlanner:
    """Consecutive chunks of an ordering derived from the graph, rotated and batch-shuffled each epoch.

    Args:
        batch_size: ``B``.
        order_of: ``graph -> (N,) int64 ordering`` (e.g. reverse Cuthill-McKee).
    """

    def __init__(self, batch_size: int, order_of: Callable[[ProximityGraph], np.ndarray], **settings: Any) -> None:
        self.batch_size, self.order_of, self.settings = batch_size, order_of, settings

    def config(self) -> dict[str, Any]:
        return {"mode": "order", **self.settings}

    def prepare(self, state: Any, bank: Any, recycle: Any) -> np.ndarray:
        return self.order_of(state.graph)

    def plan(self, prepared: np.ndarray | None, used: np.ndarray, n_plan: int, rng: np.random.Generator,
             consumed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if prepared is None:
            return random_plan(used, rng), _counters()
        seq = prepared[~used[prepared]]
        return chunk_shuffle(seq, self.batch_size, rng, rotate=True), _counters()


class CommunityPlanner:
    """Batches of whole communities in random order (B3): each epoch shuffles the communities and their members,
    concatenates them and cuts the sequence into batches, so a batch is a few random communities.

    Args:
        batch_size: ``B``.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    @staticmethod
    def config() -> dict[str, Any]:
        return {"mode": "community"}

    @staticmethod
    def prepare(state: Any, bank: Any, recycle: Any) -> np.ndarray | None:
        return state.communities

    def plan(self, prepared: np.ndarray | None, used: np.ndarray, n_plan: int, rng: np.random.Generator,
             consumed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if prepared is None:
            return random_plan(used, rng), _counters()
        rest = np.flatnonzero(~used)
        rank = rng.permutation(int(prepared.max()) + 1)[prepared[rest]]
        return rest[np.lexsort((rng.random(rest.shape[0]), rank))], _counters()
