"""Models: what a learning sampler is composed with, built from the embedding bank at every refresh.

A *model* has five methods, called by :class:`~graphbatch.samplers.EpochBatchSampler`:

* ``build(bank, previous, seed) -> (state, kind)``: a new state from the bank (``kind`` is
  ``"full"`` or ``"incremental"``); it must not modify ``previous`` or the bank;
* ``prepare(state, bank, recycle) -> prepared``: what planning needs (``recycle`` is the
  prepared object before the current one, free to overwrite);
* ``plan(prepared, used, n_plan, rng, consumed, epoch) -> (order, counters)``;
* ``state_dict(state) -> dict`` and ``load_state(dict, device) -> state``.

:class:`GraphModel` (every graph sampler) pairs a :class:`GraphBuilder` with a planner from
:mod:`graphbatch.samplers.planners`; :class:`ClusterModel` is the k-means baseline's.

Example:
    >>> import torch
    >>> from graphbatch.samplers.bank import EmbeddingBank
    >>> from graphbatch.samplers.models import GraphBuilder
    >>> bank = EmbeddingBank(50); bank.fill(torch.randn(50, 4))
    >>> state, kind = GraphBuilder(50, k=3, candidates=20).build(bank, None, seed=0)
    >>> kind, state.graph.nnz, state.draw
    ('full', 150, 1)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from .. import backend
from .._validation import check_bool, check_choice, check_int, check_probability, check_real, describe
from ..build import METHODS, METRICS, neighbor_table
from ..build.api import table_share
from ..build.partition import communities
from ..graph import ProximityGraph
from ..graph.convert import sort_table_rows, table_to_csr

__all__ = ["GraphState", "GraphBuilder", "GraphModel", "ClusterModel"]


@dataclass(frozen=True)
class GraphState:
    """What a refresh builds: the proximity graph, the number of its candidate draw, its communities.

    ``raw`` is the directed top-k graph before ``mutual`` (kept only then: incremental
    refreshes splice their rows into it); ``communities`` the community of every node
    (only with a community cap); ``guard`` the similarity guard's embeddings as of this
    build (only with ``max_similarity``: a resumed sampler must not take the bank's later rows).
    """

    graph: ProximityGraph
    draw: int = 0
    communities: np.ndarray | None = None
    raw: ProximityGraph | None = None
    guard: np.ndarray | None = None


class PendingBuild:
    """A build begun by a model's ``begin()``: ``finish()`` returns ``(state, kind)``.

    ``rows_scored``: the anchors whose neighbours this rank computed (``N / W`` or so in a sharded
    build over ``W`` ranks; ``N`` for a full single-process build).
    """

    def __init__(self, finish: Callable[[], tuple[Any, str]], rows_scored: int) -> None:
        self._finish, self.rows_scored = finish, rows_scored

    def finish(self) -> tuple[Any, str]:
        return self._finish()


class GraphBuilder:
    """Builds a sampler's proximity graph from its embedding bank, fully or only for the changed rows.

    Args:
        num_nodes: ``N``.
        k: neighbours per node (clamped to ``N - 1``).
        candidates: ``M`` random candidates per node (``None`` or ``>= N - 1``: exact kNN). Every
            full build draws fresh candidates, seeded by ``(seed, draw number)``; an incremental
            one keeps the current draw, so its rows equal those of a full build with that draw.
        metric: ``"cosine"``, ``"ip"``, ``"euclidean"`` or ``"tanimoto"`` (see :mod:`graphbatch.build.scoring`).
        incremental_fraction: build incrementally when at most this fraction of rows changed.
        build_kwargs: extra arguments of :func:`graphbatch.build.neighbor_table` (``method=``,
            ``device=``, ...; ``seed=`` fixes the draw).
        skip: each node's ``skip`` most similar candidates are left out (the rank window).
        margin: candidates more similar than this are left out (a similarity ceiling).
        mutual: keep only the edges present in both directions.
        community_size: compute communities of about this many nodes at every build (``None``: none).
        community_method: ``"kmeans"`` (on the bank) or ``"metis"`` (on the graph; needs pymetis).

    Raises:
        ValueError, TypeError: a bad argument, at construction (never first at a refresh).
    """

    def __init__(self, num_nodes: int, *, k: int = 100, candidates: int | None = 1000, metric: str = "cosine",
                 incremental_fraction: float = 0.5, build_kwargs: dict[str, Any] | None = None, skip: int = 0,
                 margin: float | None = None, mutual: bool = False, community_size: int | None = None,
                 community_method: str = "kmeans") -> None:
        self.num_nodes = check_int("num_nodes", num_nodes, low=1)
        self.k = check_int("k", k, low=1)
        self.skip = check_int("skip", skip, low=0)
        if candidates is not None:
            candidates = check_int("candidates", candidates, low=1)
            if candidates < self.k + self.skip:
                need = f"k + skip = {self.k} + {self.skip}" if self.skip else f"k={self.k}"
                raise ValueError(f"candidates must be >= {need} (each node keeps its top-k of them), "
                                 f"got {candidates}")
        self.candidates = candidates
        self.margin = None if margin is None else check_real("margin", margin)
        self.mutual = check_bool("mutual", mutual)
        self.community_size = None if community_size is None else check_int("community_size", community_size,
                                                                              low=1)
        self.community_method = check_choice("community_method", community_method, ("kmeans", "metis"))
        if self.community_method == "metis" and self.community_size is not None:
            backend.require("pymetis", "community_method='metis'")
        self.metric = check_choice("metric", metric, METRICS)
        self.incremental_fraction = check_probability("incremental_fraction", incremental_fraction, open_low=False)
        if build_kwargs is not None and not isinstance(build_kwargs, dict):
            raise TypeError(f"build_kwargs must be a dict, got {describe(build_kwargs)}")
        self.build_kwargs = dict(build_kwargs or {})
        if "method" in self.build_kwargs:
            check_choice("build_kwargs['method']", self.build_kwargs["method"], METHODS)
        for reserved in ("rows", "k", "candidates", "embeddings", "skip", "margin"):
            if reserved in self.build_kwargs:
                raise ValueError(f"build_kwargs must not set {reserved!r}: the sampler sets it")

    @property
    def k_eff(self) -> int:
        return max(1, min(self.k, self.num_nodes - 1))

    @property
    def skip_eff(self) -> int:
        return max(0, min(self.skip, self.num_nodes - 1 - self.k_eff))

    @property
    def m_eff(self) -> int | None:
        m = self.candidates
        return None if m is None or m >= self.num_nodes - 1 else max(m, self.k_eff + self.skip_eff)

    def config(self) -> dict[str, Any]:
        """The settings a state must have been built with (checked by ``load_state_dict``)."""
        return {"k": self.k, "candidates": self.candidates, "metric": self.metric, "skip": self.skip,
                "margin": self.margin, "mutual": self.mutual, "community_size": self.community_size,
                "community_method": self.community_method}

    @staticmethod
    def pool_seed(seed: int, draw: int) -> int:
        """Seed of the candidate draw number ``draw``, derived from ``(seed, draw)``."""
        state = np.random.SeedSequence([seed, draw]).generate_state(1, dtype=np.uint64)[0]
        return int(state >> np.uint64(1))

    def _rows(self, emb: torch.Tensor, rows: torch.Tensor | None, seed: int, draw: int, rank: int = 0,
              world: int = 1) -> tuple[Callable[[], tuple[torch.Tensor, torch.Tensor]], int]:
        """The table of ``rows`` (``None``: all), begun: ``(finish, rows this rank scored)``.

        With ``world > 1`` this rank scores its share only and ``finish()`` all-gathers the shares
        (a collective); the table equals the single-process one bit for bit.
        """
        kwargs = dict(self.build_kwargs)
        kwargs.setdefault("metric", self.metric)
        kwargs.setdefault("seed", self.pool_seed(seed, draw))
        common = dict(candidates=self.m_eff, rows=rows, skip=self.skip_eff, margin=self.margin, **kwargs)
        if world == 1:
            idx, sc = neighbor_table(emb, self.k_eff, **common)
            return (lambda: (idx, sc)), int(idx.shape[0])
        share = table_share(emb, self.k_eff, rank=rank, world=world, **common)
        if share.error is not None:
            raise share.error
        return share.gather, share.rows_scored

    def _assemble(self, idx: torch.Tensor, sc: torch.Tensor, rows_t: torch.Tensor, previous: GraphState | None,
                  dirty: np.ndarray) -> ProximityGraph:
        """The directed top-k graph from the new rows' table (spliced into ``previous`` when given).

        ``idx``/``sc`` are this build's own table (sorted in place). A full table with every
        slot filled, and a table of dirty rows over a previous graph of exactly ``k`` entries
        per row, become the CSR directly: no global sort and de-duplication of all ``N k``
        edges, and only the new graph's arrays are allocated. Otherwise (slots emptied by
        ``margin``, a previous graph with shorter rows) the edges go through the COO path.
        """
        n = self.num_nodes
        if previous is None:
            direct = table_to_csr(idx, sc, n, inplace=True, self_loops=False)
            if direct is not None:
                return ProximityGraph._wrap(*direct, n)
        else:
            old = previous.raw if previous.raw is not None else previous.graph
            old = old.to(idx.device)
            k = idx.shape[1]
            if old.nnz == n * k and bool((old.crow.diff() == k).all()) \
                    and sort_table_rows(idx, sc, idx, sc, anchors=rows_t):
                col = old.col.view(n, k).clone()
                val = old.values.view(n, k).to(sc.dtype, copy=True)
                col[rows_t] = idx
                val[rows_t] = sc
                return ProximityGraph._wrap(old.crow.clone(), col.view(-1), val.view(-1), n)
        row = rows_t.view(-1, 1).expand_as(idx)
        keep = (idx >= 0) & (idx != row)  # drop empty slots and self-loops
        r, c, v = row[keep], idx[keep], sc[keep]
        if previous is not None:
            old_row = old.row()
            stay = ~torch.from_numpy(dirty).to(old.device)[old_row]
            r = torch.cat([old_row[stay], r])
            c = torch.cat([old.col[stay], c])
            v = torch.cat([old.values[stay].to(v.dtype), v])
        return ProximityGraph.from_coo(r, c, v, n)

    def build(self, bank: Any, previous: GraphState | None, seed: int) -> tuple[GraphState, str]:
        """A new :class:`GraphState` from ``bank.rows`` (incremental over ``previous`` for few dirty rows)."""
        return self.begin(bank, previous, seed).finish()

    def begin(self, bank: Any, previous: GraphState | None, seed: int, *, rank: int = 0,
              world: int = 1) -> PendingBuild:
        """:meth:`build` in two steps: this rank's share of the table now, the rest in ``finish()``.

        With ``world > 1`` (a ``torch.distributed`` group) ``finish()`` is a collective that every
        rank must call; the graph is the one a single process builds.
        """
        n, emb = self.num_nodes, bank.rows
        dev = emb.device
        if n == 1:
            g = ProximityGraph._wrap(torch.zeros(2, dtype=torch.int64, device=dev),
                                     torch.zeros(0, dtype=torch.int64, device=dev),
                                     torch.zeros(0, dtype=torch.float32, device=dev), 1)
            return PendingBuild(lambda: (GraphState(g, 0 if previous is None else previous.draw), "full"), 0)
        full = previous is None or bank.dirty.mean() > self.incremental_fraction
        # A full build draws fresh candidate pools (draw + 1), so over training every node meets
        # new candidates, as in the paper; an incremental one keeps the current draw.
        draw = (0 if previous is None else previous.draw) + 1 if full else previous.draw
        rows_t = torch.arange(n, device=dev) if full else torch.from_numpy(np.flatnonzero(bank.dirty)).to(dev)
        table, scored = self._rows(emb, None if full else rows_t, seed, draw, rank, world)
        return PendingBuild(lambda: self._finish(table(), emb, rows_t, full, previous, bank.dirty, seed, draw),
                            scored)

    def _finish(self, table: tuple[torch.Tensor, torch.Tensor], emb: torch.Tensor, rows_t: torch.Tensor, full: bool,
                previous: GraphState | None, dirty: np.ndarray, seed: int, draw: int) -> tuple[GraphState, str]:
        idx, sc = table
        dev = emb.device
        idx = idx.to(dev, torch.int64)
        sc = sc.to(dev)
        if sc.is_floating_point() and sc.dtype in (torch.float16, torch.bfloat16):
            sc = sc.to(torch.float32)
        raw = self._assemble(idx, sc, rows_t, None if full else previous, dirty)
        graph = raw.mutual() if self.mutual else raw
        comm = None
        if self.community_size is not None:
            comm = communities(emb, graph, size=self.community_size, method=self.community_method,
                               seed=self.pool_seed(seed, draw + (1 << 20)), metric=self.metric)
        state = GraphState(graph, draw, comm, raw if self.mutual else None)
        return state, "full" if full else "incremental"


class GraphModel:
    """A graph sampler's model: a :class:`GraphBuilder` and a planner (see :mod:`graphbatch.samplers.planners`)."""

    def __init__(self, builder: GraphBuilder, planner: Any) -> None:
        self.builder, self.planner = builder, planner

    def build(self, bank: Any, previous: GraphState | None, seed: int) -> tuple[GraphState, str]:
        return self.begin(bank, previous, seed).finish()

    def begin(self, bank: Any, previous: GraphState | None, seed: int, *, rank: int = 0,
              world: int = 1) -> PendingBuild:
        """The builder's :meth:`GraphBuilder.begin`, with the similarity guard's embeddings added at the end."""
        job = self.builder.begin(bank, previous, seed, rank=rank, world=world)
        guard = getattr(self.planner, "guard", None)
        if guard is None or guard.max_similarity is None:
            return job

        def finish() -> tuple[GraphState, str]:
            state, kind = job.finish()
            return replace(state, guard=guard.embeddings(bank)), kind

        return PendingBuild(finish, job.rows_scored)

    def prepare(self, state: GraphState, bank: Any, recycle: Any) -> Any:
        return self.planner.prepare(state, bank, recycle)

    def plan(self, prepared: Any, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int,
             epoch: int) -> tuple[np.ndarray, np.ndarray]:
        return self.planner.plan(prepared, used, n_plan, rng, consumed, epoch)

    def config(self) -> dict[str, Any]:
        return {**self.builder.config(), **self.planner.config()}

    def state_dict(self, state: GraphState) -> dict[str, Any]:
        out: dict[str, Any] = {"pool_draw": state.draw}
        for key, g in (("", state.graph), ("raw_", state.raw)):
            if g is not None:
                out.update({f"{key}crow": g.crow.cpu(), f"{key}col": g.col.cpu(), f"{key}values": g.values.cpu()})
        for key in ("communities", "guard"):
            if getattr(state, key) is not None:
                out[key] = torch.from_numpy(getattr(state, key).copy())
        return out

    def load_state(self, d: dict[str, Any], device: torch.device) -> GraphState:
        n = self.builder.num_nodes
        g = ProximityGraph(d["crow"], d["col"], d["values"], n).to(device)
        raw = ProximityGraph(d["raw_crow"], d["raw_col"], d["raw_values"], n).to(device) if "raw_crow" in d else None
        comm = d["communities"].numpy().astype(np.int64) if d.get("communities") is not None else None
        if comm is not None and comm.shape != (n,):
            raise ValueError(f"state['model']['communities'] must have {n} entries, got {comm.shape}")
        guard = d["guard"].numpy().copy() if d.get("guard") is not None else None
        if guard is not None and (guard.ndim != 2 or guard.shape[0] != n):
            raise ValueError(f"state['model']['guard'] must have {n} rows, got shape {guard.shape}")
        return GraphState(g, int(d.get("pool_draw", 0)), comm, raw, guard)


class ClusterModel:
    """k-means clusters of the bank (scikit-learn's ``MiniBatchKMeans``); batches within clusters.

    Each epoch visits clusters in random order with members shuffled inside, cuts that
    sequence into batches and shuffles the batch order.
    """

    def __init__(self, batch_size: int, num_clusters: int, metric: str) -> None:
        self.batch_size, self.num_clusters, self.metric = batch_size, num_clusters, metric

    def config(self) -> dict[str, Any]:
        return {"num_clusters": self.num_clusters, "metric": self.metric}

    def build(self, bank: Any, previous: Any, seed: int) -> tuple[np.ndarray, str]:
        from .. import backend

        backend.require("sklearn", "ClusterBatchSampler (k-means)")
        from sklearn import cluster

        x = bank.rows.detach().to("cpu", torch.float32)
        if self.metric == "cosine":
            x = torch.nn.functional.normalize(x, dim=1)
        version = 0 if previous is None else previous[1]
        km_seed = int(np.random.default_rng([seed, version, 7]).integers(2**31 - 1))
        km = cluster.MiniBatchKMeans(n_clusters=self.num_clusters, random_state=km_seed, n_init=3,
                                     batch_size=max(1024, 4 * self.num_clusters))
        return (km.fit_predict(x.numpy()).astype(np.int64), version + 1), "full"

    @staticmethod
    def prepare(state: tuple[np.ndarray, int], bank: Any, recycle: Any) -> np.ndarray:
        return state[0]

    def plan(self, prepared: np.ndarray | None, used: np.ndarray, n_plan: int, rng: np.random.Generator,
             consumed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        from .planners import _counters, chunk_shuffle, random_plan

        if prepared is None:
            return random_plan(used, rng), _counters()
        rest = np.flatnonzero(~used)
        cluster_rank = rng.permutation(self.num_clusters)[prepared[rest]]
        seq = rest[np.lexsort((rng.random(rest.shape[0]), cluster_rank))]
        return chunk_shuffle(seq, self.batch_size, rng), _counters()

    @staticmethod
    def state_dict(state: tuple[np.ndarray, int]) -> dict[str, Any]:
        return {"assignments": torch.from_numpy(state[0].copy()), "builds": state[1]}

    def load_state(self, d: dict[str, Any], device: torch.device) -> tuple[np.ndarray, int]:
        a = d["assignments"].numpy().astype(np.int64)
        if a.ndim != 1 or (a.size and (a.min() < 0 or a.max() >= self.num_clusters)):
            raise ValueError(f"assignments must be cluster ids in [0, {self.num_clusters}), got {a.shape}")
        return a, int(d.get("builds", 0))
