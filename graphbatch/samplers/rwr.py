"""``RWRBatchSampler``: mini-batches of hard negatives by random walk with restart (BatchSampler, KDD 2023).

A thin class: it validates its arguments and composes a
:class:`~graphbatch.samplers.planners.WalkPlanner` (``mode="walk"``) or
:class:`~graphbatch.samplers.planners.PprPlanner` (``mode="ppr"``) with the graph machinery of
:class:`~graphbatch.samplers.graph_sampler.GraphSamplerBase`. The batch-forming rules (walk,
stall fallback, ppr ranking, guard) are specified in ``docs/concepts.md``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

from .._validation import check_bool, check_choice, check_int, check_probability
from .graph_sampler import GraphSamplerBase
from .planners import PprPlanner, WalkPlanner

__all__ = ["RWRBatchSampler"]

RestartProb = Union[float, Callable[[int], float]]


def _schedule(restart_prob: RestartProb) -> Callable[[int], float]:
    """``epoch -> p``, checked at every call (a schedule may leave (0, 1] at a later epoch)."""
    if callable(restart_prob):
        check_probability("restart_prob", restart_prob(0))
        return lambda epoch: check_probability("restart_prob", restart_prob(epoch))
    p = check_probability("restart_prob", restart_prob)
    return lambda epoch: p


class RWRBatchSampler(GraphSamplerBase):
    """Mini-batches of hard negatives by random walk with restart on a proximity graph (BatchSampler, KDD'23).

    Use as ``DataLoader(dataset, batch_sampler=sampler)``; after each training
    step pass the batch's embeddings to :meth:`update`. See ``docs/concepts.md`` for the
    exact-epoch, refresh, warm-up, determinism and distributed rules.

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B`` in ``[1, N]``.
        k: neighbours per node in the proximity graph (paper: 100; clamped to ``N - 1``).
        candidates: random candidates per node, ``M`` (paper: 1000; ``None`` = exact kNN).
        restart_prob: walk restart probability in (0, 1] (paper: 0.2), or a schedule
            ``epoch -> float`` such as :class:`linear_decay` ``(0.2, 0.05, epochs)``.
        refresh_every: rebuild the graph from the embedding bank every this many batches (paper: 100),
            or in epochs: ``"epoch"`` (at every epoch start), ``"0.5 epoch"``, ``"2 epochs"``.
        warmup_epochs: random epochs before the first graph (skipped when ``embeddings`` is given).
        mode: ``"walk"`` (the paper's walker) or ``"ppr"`` (top personalized-PageRank scores from the seed).
        drop_last: drop the last short batch.
        seed: base random seed.
        embeddings: ``(N, d)`` embeddings to build the first graph from at construction.
        metric: similarity for the graph: ``"cosine"``, ``"ip"``, ``"euclidean"`` or ``"tanimoto"`` (0/1 fingerprints).
        groups: ``(N,)`` group ids never put together in a batch (``-1`` = none): near-duplicate
            sets, not class labels (see :class:`~graphbatch.samplers.graph_sampler.GraphSamplerBase`).
        labels: deprecated name of ``groups`` (``FutureWarning``).
        max_similarity: never put two instances more similar than this together.
        ppr_eps: push tolerance for ``mode="ppr"`` (default ``0.1 / batch_size`` for ``"push"``,
            ``0.25 / batch_size`` for ``"rwr_truncated"``: at most ``1 / (p eps)`` pushes per seed, enough
            support to fill a batch; smaller is slower and slightly purer).
        ppr_sample: ``mode="ppr"``: sample by score instead of taking the top scores.
        ppr_engine: ``mode="ppr"`` scores: ``"push"`` (the compiled push, one seed at a time, on the
            host copy of the graph), ``"rwr_truncated"`` (``ppr_chunk`` seeds per call on the graph's
            device, :func:`graphbatch.solvers.push.push_scores`) or ``"auto"`` (``rwr_truncated`` for a CUDA
            graph, else ``push``). Both rank by the one rule of :mod:`graphbatch.kernels.compiled`.
        ppr_chunk: seeds per ``rwr_truncated`` call.
        walkers: ``mode="walk"``: batches built at once, one step each in turn, so their cache
            misses overlap (a node goes to the walker that reaches it first; 1 = strictly one
            batch after another; forced to 1 with ``groups``). More is faster but walkers that
            share a cluster split it (measured in ``benchmarks/RESULTS.md``).
        num_replicas: distributed world size (default from ``torch.distributed``).
        rank: distributed rank (default from ``torch.distributed``).
        **kwargs: ``incremental_fraction``, ``build_kwargs``, ``stall_steps``, ``scan_limit``, ``graph``
            (see :class:`~graphbatch.samplers.graph_sampler.GraphSamplerBase`).

    Example:
        >>> import torch
        >>> from graphbatch import RWRBatchSampler
        >>> emb = torch.randn(100, 8)
        >>> sampler = RWRBatchSampler(100, 16, k=5, candidates=50, embeddings=emb)
        >>> batches = list(sampler)
        >>> len(batches) == len(sampler) == 7, sorted(sum(batches, [])) == list(range(100))
        (True, True)
        >>> sampler.update(batches[0], emb[batches[0]])  # after a training step
    """

    def __init__(self, num_nodes: int, batch_size: int, *, k: int = 100, candidates: int | None = 1000,
                 restart_prob: RestartProb = 0.2, refresh_every: int | str = 100, warmup_epochs: int = 1,
                 mode: str = "walk", drop_last: bool = False, seed: int = 0, embeddings: Any = None,
                 metric: str = "cosine", groups: Any = None, labels: Any = None,
                 max_similarity: float | None = None,
                 ppr_eps: float | None = None, ppr_sample: bool = False, ppr_chunk: int = 64,
                 ppr_engine: str = "auto", walkers: int = 8,
                 num_replicas: int | None = None, rank: int | None = None, **kwargs: Any) -> None:
        n = check_int("num_nodes", num_nodes, low=1)
        b = check_int("batch_size", batch_size, low=1, high=n)
        schedule = _schedule(restart_prob)
        self.restart_prob = restart_prob
        self.mode = check_choice("mode", mode, ("walk", "ppr"))
        self.ppr_eps = None if ppr_eps is None else check_probability("ppr_eps", ppr_eps)
        self.ppr_sample = check_bool("ppr_sample", ppr_sample)
        self.ppr_chunk = check_int("ppr_chunk", ppr_chunk, low=1)
        self.ppr_engine = check_choice("ppr_engine", ppr_engine, ("auto", "push", "rwr_truncated"))
        self.walkers = check_int("walkers", walkers, low=1)
        walkers, eps, sample, engine, chunk = self.walkers, self.ppr_eps, self.ppr_sample, self.ppr_engine, \
            self.ppr_chunk
        if self.mode == "walk":
            def planner(guard, stall_steps, rounds):
                return WalkPlanner(n, b, guard, schedule, stall_steps, walkers, rounds)
        else:
            def planner(guard, stall_steps, rounds):
                if rounds:
                    raise ValueError("plan='rounds' is for mode='walk' (and KNNBatchSampler), not mode='ppr'")
                return PprPlanner(n, b, guard, schedule, eps, sample, engine, chunk)
        super().__init__(n, b, planner=planner, k=k, candidates=candidates, metric=metric, groups=groups,
                         labels=labels,
                         max_similarity=max_similarity, refresh_every=refresh_every,
                         warmup_epochs=warmup_epochs, drop_last=drop_last, seed=seed, embeddings=embeddings,
                         num_replicas=num_replicas, rank=rank, **kwargs)

    def current_restart_prob(self, epoch: int | None = None) -> float:
        """The restart probability used in ``epoch`` (default: the current epoch)."""
        e = self.epoch if epoch is None else check_int("epoch", epoch, low=0)
        return self._model.planner.restart_prob(e)

    def __repr__(self) -> str:
        return (f"RWRBatchSampler(num_nodes={self.num_nodes}, batch_size={self.batch_size}, {self.graph_settings()}, "
                f"restart_prob={self.restart_prob!r}, refresh_every={self.refresh_description()}, mode={self.mode!r}, "
                f"drop_last={self.drop_last}, seed={self.seed})")
