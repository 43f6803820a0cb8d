"""The base of every sampler whose model is a proximity graph built from the embedding bank.

:class:`GraphSamplerBase` validates the graph arguments, builds the :class:`GraphBuilder`,
the false-negative :class:`~graphbatch.samplers.planners.Guard` and (through the
``planner`` factory its subclass passes) the planner, and hands the resulting
:class:`~graphbatch.samplers.models.GraphModel` to :class:`EpochBatchSampler`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_choice, check_int, check_real, describe, warn_user
from ..graph import ProximityGraph
from .base import EpochBatchSampler
from .models import GraphBuilder, GraphModel, GraphState
from .planners import Guard

__all__ = ["GraphSamplerBase", "resolve_groups", "check_groups_feasible"]


def _warn_clamps(builder: GraphBuilder, n: int) -> None:
    """Say when ``k`` or ``candidates`` exceed the data (the paper's 100 / 1000 on a small data set)."""
    over = []
    if builder.k > n - 1:
        over.append(f"k={builder.k} -> {builder.k_eff}")
    if builder.candidates is not None and builder.candidates > n:
        over.append(f"candidates={builder.candidates} -> all {n - 1} (exact kNN)")
    if over:
        warn_user(f"{' and '.join(over)}: only {n} instances (the paper's k=100, candidates=1000 are meant for "
                  "data sets of 10^5 and more; candidates=None asks for exact kNN)", UserWarning)


def resolve_groups(groups: Any, labels: Any, owner: str) -> tuple[Any, str]:
    """``groups=``, or its deprecated name ``labels=`` (with a ``FutureWarning``); returns ``(groups, name)``."""
    if labels is None:
        return groups, "groups"
    if groups is not None:
        raise TypeError(f"{owner}: pass groups= only (labels= is its deprecated name), not both")
    warn_user(f"{owner}(labels=...) is deprecated and will be removed in the next release: the sampler's "
              "argument is a group guard (never two members of a group in one batch), now named groups=. "
              "Class labels for the metrics go to graphbatch.batch_hardness / compare_samplers.", FutureWarning)
    return labels, "labels"


def check_groups_feasible(codes: Any, batch_size: int, num_batches: int, name: str = "groups") -> None:
    """Warn when the group guard cannot hold (too few groups for a batch, a group larger than the epoch).

    ``codes`` are dense group codes (``-1`` = no group). A batch of ``batch_size`` needs that many
    distinct groups (ungrouped nodes count as their own); a group of ``s`` members needs ``s``
    batches. Otherwise the planners must break the guard (``stats["guard_violations"]``) or
    fall back to random nodes, which is usually a sign that class labels were passed.
    """
    has = codes >= 0
    sizes = np.bincount(codes[has]) if has.any() else np.zeros(0, dtype=np.int64)
    free = int((~has).sum())
    problems = []
    if sizes.size + free < batch_size:
        problems.append(f"only {sizes.size} groups (and {free} ungrouped nodes) for batches of {batch_size}")
    if sizes.size and int(sizes.max()) > num_batches:
        problems.append(f"the largest group has {int(sizes.max())} members for {num_batches} batches per epoch")
    if problems:
        warn_user(f"{name}= never puts two members of a group in one batch, but there are {' and '.join(problems)}: "
                  "the guard cannot hold (guard violations, random fill). Pass group ids of near-duplicates, "
                  "not class labels (those are for the metrics).", RuntimeWarning)


class GraphSamplerBase(EpochBatchSampler):
    """Base of the samplers whose model is a proximity graph built from the embedding bank.

    Args (beyond :class:`EpochBatchSampler`):
        planner: ``(guard, stall_steps) -> planner`` (see :mod:`graphbatch.samplers.planners`);
            passed by the subclass.
        k: neighbours per node (clamped to ``N - 1``).
        candidates: ``M`` random candidates per node among which the top-``k`` are kept
            (``None`` or ``>= N - 1``: exact kNN). Every full rebuild draws fresh candidates, seeded
            by ``(seed, draw number)``, so over training each node meets new candidates (as in the
            paper); an incremental refresh keeps the current draw, so the rows it recomputes equal
            those of a full rebuild with that draw. Pass ``build_kwargs={"seed": s}`` to fix the draw.
        metric: similarity for the graph (``"cosine"``, ``"ip"``, ``"euclidean"``).
        incremental_fraction: rebuild incrementally when at most this fraction of rows changed.
        build_kwargs: extra keyword arguments for :func:`graphbatch.build.neighbor_table`
            (e.g. ``method=``, ``device=``).
        groups: ``(N,)`` group ids for the false-negative guard: never two members of one group
            in a batch (``-1`` = no group), e.g. the ids of near-duplicate sets or of the source
            document. Not class labels: with fewer groups than ``batch_size`` (or a group larger
            than the number of batches) the guard cannot hold, and a warning says so.
        labels: deprecated name of ``groups`` (a ``FutureWarning``; removed in the next release).
        max_similarity: similarity threshold for the false-negative guard.
        stall_steps: walk steps without a new node before a fallback jump.
        scan_limit: unused candidates examined by a guarded random fallback.
        graph: a prebuilt :class:`~graphbatch.ProximityGraph` to start from (skips warm-up; later
            refreshes rebuild from the bank once every row has been passed to :meth:`update`).
        skip, margin, mutual: the graph's false-negative controls (see
            :func:`graphbatch.build_proximity_graph`): leave out each node's ``skip`` most similar
            candidates, every candidate more similar than ``margin``; keep only mutual edges.
        community_size: at every build, split the nodes into communities of about this many
            (``community_method``: ``"kmeans"`` on the bank, or ``"metis"`` on the graph).
        max_per_community: at most this many members of one community in a batch (needs
            ``community_size``): a hard batch then spans several nearby dense regions instead of
            one, which removes most of its same-class pairs (``docs/concepts.md``).
        plan: ``"sequential"`` (batches one after another, the paper's) or ``"rounds"`` (every batch
            of the epoch grows at once, one node each per turn: hardness holds to the end of the
            epoch instead of decaying as neighbourhoods are used up).

    Example:
        >>> import torch
        >>> from graphbatch import KNNBatchSampler  # a GraphSamplerBase subclass
        >>> s = KNNBatchSampler(40, 8, k=4, candidates=None, embeddings=torch.randn(40, 3))
        >>> s.graph.num_nodes, s.graph.out_degree().tolist()[:3]
        (40, [4, 4, 4])
    """

    def __init__(self, num_nodes: int, batch_size: int, *, planner: Callable[[Guard, int, bool], Any],
                 k: int = 100, candidates: int | None = 1000, metric: str = "cosine",
                 incremental_fraction: float = 0.5, build_kwargs: dict[str, Any] | None = None,
                 groups: Any = None, labels: Any = None, max_similarity: float | None = None,
                 stall_steps: int = 32,
                 scan_limit: int = 4096, graph: ProximityGraph | None = None, skip: int = 0,
                 margin: float | None = None, mutual: bool = False, community_size: int | None = None,
                 community_method: str = "kmeans", max_per_community: int | None = None,
                 plan: str = "sequential", **kwargs: Any) -> None:
        n = check_int("num_nodes", num_nodes, low=1)
        builder = GraphBuilder(n, k=k, candidates=candidates, metric=metric,
                               incremental_fraction=incremental_fraction, build_kwargs=build_kwargs, skip=skip,
                               margin=margin, mutual=mutual, community_size=community_size,
                               community_method=community_method)
        _warn_clamps(builder, n)
        if max_per_community is not None:
            max_per_community = check_int("max_per_community", max_per_community, low=1)
            if community_size is None:
                raise ValueError("max_per_community needs community_size= (the communities it caps)")
        self.plan = check_choice("plan", plan, ("sequential", "rounds"))
        if max_similarity is not None:
            max_similarity = check_real("max_similarity", max_similarity)
            if builder.metric not in ("cosine", "ip"):
                raise ValueError(f"max_similarity needs metric 'cosine' or 'ip', got metric={metric!r}")
        self.k, self.candidates, self.metric = builder.k, builder.candidates, builder.metric
        self.incremental_fraction, self.build_kwargs = builder.incremental_fraction, builder.build_kwargs
        self.skip, self.margin, self.mutual = builder.skip, builder.margin, builder.mutual
        self.community_size, self.community_method = builder.community_size, builder.community_method
        self.max_per_community = max_per_community
        self.max_similarity = max_similarity
        self.stall_steps = check_int("stall_steps", stall_steps, low=1)
        self.scan_limit = check_int("scan_limit", scan_limit, low=1)
        groups, name = resolve_groups(groups, labels, type(self).__name__)
        guard = Guard(n, groups, max_similarity, builder.metric, self.scan_limit,
                      max_per_community=max_per_community, name=name)
        initial = None
        if graph is not None:
            if not isinstance(graph, ProximityGraph):
                raise TypeError(f"graph must be a ProximityGraph, got {describe(graph)}")
            if graph.num_nodes != n:
                raise ValueError(f"graph must have num_nodes={n} nodes, got {graph.num_nodes}")
            initial = GraphState(graph)
        planner_obj = planner(guard, self.stall_steps, self.plan == "rounds")
        super().__init__(n, batch_size, model=GraphModel(builder, planner_obj),
                         initial_state=initial, **kwargs)
        if guard.groups is not None:
            check_groups_feasible(guard.groups, self.batch_size, self._num_plan_batches, name)

    def graph_settings(self) -> str:
        """``k`` and ``candidates`` as given and as used (they are clamped to the data), for ``repr``."""
        b = self._model.builder
        k = f"k={self.k}" if b.k_eff == self.k else f"k={self.k}->{b.k_eff}"
        if self.candidates is None:
            m = "candidates=None (exact kNN)"
        elif b.m_eff is None:
            m = f"candidates={self.candidates}->all {self.num_nodes - 1} (exact kNN)"
        else:
            m = f"candidates={self.candidates}"
        return f"{k}, {m}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_nodes={self.num_nodes}, batch_size={self.batch_size}, "
                f"{self.graph_settings()}, refresh_every={self.refresh_description()}, drop_last={self.drop_last}, "
                f"seed={self.seed})")

    @property
    def graph(self) -> ProximityGraph | None:
        """The current proximity graph (``None`` before the first build)."""
        return None if self._state is None else self._state.graph

    @property
    def _groups(self):
        return self._model.planner.guard.groups
