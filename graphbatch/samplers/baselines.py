"""Baseline batch samplers to compare :class:`~graphbatch.RWRBatchSampler` against, with the same API.

* :class:`RandomBatchSampler` -- a shuffled permutation cut into batches.
* :class:`KNNBatchSampler` -- the paper's kNN baseline: a random unused seed plus its most
  similar unused neighbours; when those run out the batch continues from the unused
  neighbours (1-2 hops) of the node added last, else a random unused node.
* :class:`ClusterBatchSampler` -- TAS-Balanced style (Hofstaetter et al., SIGIR 2021):
  batches within k-means clusters of the embeddings.
* :class:`BandwidthBatchSampler` -- GCBS style (Sachidananda et al., 2023): chunks of a
  reverse Cuthill-McKee order of the (optionally thresholded) symmetrised similarity graph,
  rotated by a random offset each epoch, batch order shuffled.
* :class:`MetisBatchSampler` -- B3 style (arXiv 2505.11293): METIS clusters of the rank-window
  mutual graph; each batch is a random set of clusters.

All share the epoch machinery of :class:`~graphbatch.samplers.EpochBatchSampler`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..graph import ProximityGraph
from .base import EpochBatchSampler
from .graph_sampler import GraphSamplerBase
from .models import ClusterModel
from .planners import CommunityPlanner, OrderPlanner, RankedPlanner

__all__ = ["RandomBatchSampler", "KNNBatchSampler", "ClusterBatchSampler", "BandwidthBatchSampler",
           "MetisBatchSampler"]


class RandomBatchSampler(EpochBatchSampler):
    """Uniformly random batches (each epoch a fresh permutation), with the common sampler interface.

    ``update``/``refresh`` are accepted (and validated) for drop-in comparison but learn nothing.

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B`` in ``[1, N]``.
        drop_last: drop the last short batch.
        seed: base random seed.
        embeddings: accepted for interface parity (checked, not used).
        num_replicas: distributed world size (default from ``torch.distributed``).
        rank: distributed rank (default from ``torch.distributed``).
        **kwargs: ``refresh_every``, ``warmup_epochs`` (no effect here).

    Example:
        >>> from graphbatch import RandomBatchSampler
        >>> s = RandomBatchSampler(10, 4, seed=1)
        >>> [len(b) for b in s], sorted(sum(list(s), []))  == list(range(10))
        ([4, 4, 2], True)
    """

    def __init__(self, num_nodes: int, batch_size: int, *, drop_last: bool = False, seed: int = 0,
                 embeddings: Any = None, num_replicas: int | None = None, rank: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(num_nodes, batch_size, drop_last=drop_last, seed=seed, embeddings=embeddings,
                         num_replicas=num_replicas, rank=rank, **kwargs)


class KNNBatchSampler(GraphSamplerBase):
    """The kNN baseline: a random seed plus its most similar unused neighbours.

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B`` in ``[1, N]``.
        k: neighbours per node in the proximity graph (clamped to ``N - 1``). Default
            ``None`` = ``batch_size - 1``: a batch is a seed and its ``B - 1`` nearest unused
            neighbours, the paper's kNN baseline. With a smaller ``k`` a batch takes the seed's
            ``k`` neighbours and then fills up from their neighbourhood (the 2-hop fallback of
            :class:`~graphbatch.RWRBatchSampler`), which is easier than the paper's baseline.
        candidates: random candidates per node (``None``: exact kNN).
        **kwargs: as :class:`~graphbatch.samplers.graph_sampler.GraphSamplerBase` /
            :class:`~graphbatch.samplers.EpochBatchSampler` (``metric``, ``refresh_every``,
            ``warmup_epochs``, ``groups``, ``drop_last``, ``seed``, ``embeddings``, ``num_replicas``, ...).

    Example:
        >>> import torch
        >>> from graphbatch import KNNBatchSampler
        >>> s = KNNBatchSampler(50, 10, k=5, candidates=None, embeddings=torch.randn(50, 4))
        >>> sorted(sum(list(s), [])) == list(range(50))
        True
    """

    def __init__(self, num_nodes: int, batch_size: int, *, k: int | None = None, candidates: int | None = 1000,
                 **kwargs: Any) -> None:
        n = check_int("num_nodes", num_nodes, low=1)
        b = check_int("batch_size", batch_size, low=1, high=n)
        if k is None:
            k = max(1, min(b, n) - 1)

        def planner(guard, stall_steps, rounds):
            return RankedPlanner(n, b, guard, rounds)

        super().__init__(n, b, planner=planner, k=k, candidates=candidates, **kwargs)


class ClusterBatchSampler(EpochBatchSampler):
    """TAS-Balanced-style batches drawn within k-means clusters of the embeddings.

    Each epoch visits the clusters in random order with members shuffled inside, cuts that
    sequence into batches and shuffles the batch order, so a batch comes from one cluster (two
    at a cluster boundary). Clustering uses scikit-learn's ``MiniBatchKMeans`` on CPU; every
    refresh re-clusters the whole bank (no incremental path).

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B`` in ``[1, N]``.
        num_clusters: number of k-means clusters (default ``max(1, N // B)``; clamped to ``N``).
        metric: ``"cosine"`` (cluster L2-normalised embeddings) or ``"euclidean"``/``"ip"`` (raw).
        **kwargs: ``drop_last``, ``seed``, ``embeddings``, ``refresh_every``, ``warmup_epochs``,
            ``num_replicas``, ``rank``.

    Example:
        >>> import torch
        >>> from graphbatch import ClusterBatchSampler
        >>> s = ClusterBatchSampler(60, 10, num_clusters=6, embeddings=torch.randn(60, 4))
        >>> sorted(sum(list(s), [])) == list(range(60))
        True
    """

    def __init__(self, num_nodes: int, batch_size: int, *, num_clusters: int | None = None,
                 metric: str = "cosine", **kwargs: Any) -> None:
        n = check_int("num_nodes", num_nodes, low=1)
        b = check_int("batch_size", batch_size, low=1, high=n)
        self.num_clusters = min(check_int("num_clusters", max(1, n // b) if num_clusters is None else num_clusters,
                                          low=1), n)
        self.metric = check_choice("metric", metric, ("cosine", "euclidean", "ip"))
        super().__init__(n, b, model=ClusterModel(b, self.num_clusters, self.metric), **kwargs)

    @property
    def assignments(self) -> np.ndarray | None:
        """Cluster id of every instance (``None`` before the first clustering)."""
        return None if self._state is None else self._state[0]


def rcm_order(graph: ProximityGraph, threshold: float | None) -> np.ndarray:
    """Reverse Cuthill-McKee order of the symmetrised graph, edges with weight below ``threshold`` dropped."""
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    a = graph.to_scipy(copy=True)  # a writable copy: the graph's own weights are never touched
    if threshold is not None:
        a.data[a.data < threshold] = 0.0
        a.eliminate_zeros()
    a.data[:] = 1.0
    sym = (a + a.T).tocsr()
    sym.sort_indices()
    return np.asarray(reverse_cuthill_mckee(sym, symmetric_mode=True), dtype=np.int64)


class BandwidthBatchSampler(GraphSamplerBase):
    """GCBS-style batches: contiguous chunks of a reverse Cuthill-McKee order of the similarity graph.

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B`` in ``[1, N]``.
        k: neighbours per node in the similarity graph (clamped to ``N - 1``).
        candidates: random candidates per node (``None``: exact kNN).
        threshold: drop edges whose similarity is below this before ordering (``None``: keep all).
        **kwargs: as :class:`~graphbatch.samplers.graph_sampler.GraphSamplerBase` /
            :class:`~graphbatch.samplers.EpochBatchSampler`.

    Example:
        >>> import torch
        >>> from graphbatch import BandwidthBatchSampler
        >>> s = BandwidthBatchSampler(50, 10, k=5, candidates=None, embeddings=torch.randn(50, 4))
        >>> sorted(sum(list(s), [])) == list(range(50))
        True
    """

    def __init__(self, num_nodes: int, batch_size: int, *, k: int = 20, candidates: int | None = 1000,
                 threshold: float | None = None, **kwargs: Any) -> None:
        b = check_int("batch_size", batch_size, low=1)
        self.threshold = None if threshold is None else check_real("threshold", threshold)
        thr = self.threshold

        def planner(guard, stall_steps, rounds):
            if rounds:
                raise ValueError("plan='rounds' has no meaning for BandwidthBatchSampler (its batches are chunks "
                                 "of one ordering)")
            return OrderPlanner(b, lambda g: rcm_order(g, thr), threshold=thr)

        super().__init__(num_nodes, batch_size, planner=planner, k=k, candidates=candidates, **kwargs)

    @property
    def order(self) -> np.ndarray | None:
        """The reverse Cuthill-McKee order of the current graph (``None`` before the first build)."""
        return None if self._state is None else self._prepared


class MetisBatchSampler(GraphSamplerBase):
    """B3-style batches (Wang et al., arXiv 2505.11293): random sets of METIS clusters of the proximity graph.

    At every build the graph (each node's top-``k`` after its ``skip`` most similar candidates,
    mutual edges only, by default) is partitioned by METIS into clusters of ``cluster_size``
    nodes (roughly: METIS balances small parts loosely, e.g. 5-11 nodes for ``cluster_size=8``,
    within about 20% from 32 on); each epoch shuffles the clusters and their members,
    concatenates them and cuts the sequence into batches, so a batch holds about
    ``batch_size / cluster_size`` random clusters. B3 drops the top 30-70 of 100 ranked
    neighbours (``skip``) as likely false negatives. Needs the optional ``pymetis``
    (``pip install 'graphbatch[metis]'``).

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B`` in ``[1, N]``.
        cluster_size: nodes per METIS cluster (default ``max(2, B // 8)``).
        k: neighbours per node in the graph before ``mutual`` (clamped to ``N - 1``).
        candidates: random candidates per node (``None``: exact kNN).
        skip: each node's most similar candidates left out (the rank window).
        mutual: keep only edges present in both directions.
        embeddings: ``(N, d)`` embeddings to build the graph and clusters at construction.
        graph: a prebuilt graph (its clusters are computed at the first build from embeddings).
        seed: base random seed (also seeds METIS).
        **kwargs: as :class:`~graphbatch.samplers.graph_sampler.GraphSamplerBase` /
            :class:`~graphbatch.samplers.EpochBatchSampler` (``drop_last``, ``refresh_every``, ...).

    Example:
        >>> import torch
        >>> from graphbatch import MetisBatchSampler
        >>> s = MetisBatchSampler(80, 16, cluster_size=4, k=6, candidates=None, embeddings=torch.randn(80, 5))
        >>> sorted(sum(list(s), [])) == list(range(80))
        True
    """

    def __init__(self, num_nodes: int, batch_size: int, *, cluster_size: int | None = None, k: int = 20,
                 candidates: int | None = 1000, skip: int = 0, mutual: bool = True, embeddings: Any = None,
                 graph: ProximityGraph | None = None, seed: int = 0, **kwargs: Any) -> None:
        b = check_int("batch_size", batch_size, low=1)
        self.cluster_size = check_int("cluster_size", max(2, b // 8) if cluster_size is None else cluster_size,
                                      low=1)
        for reserved in ("community_size", "community_method", "max_per_community", "plan"):
            if reserved in kwargs:
                raise ValueError(f"{reserved} is set by MetisBatchSampler (its clusters are its communities)")

        def planner(guard, stall_steps, rounds):
            return CommunityPlanner(b)

        super().__init__(num_nodes, batch_size, planner=planner, k=k, candidates=candidates, skip=skip,
                         mutual=mutual, community_size=self.cluster_size, community_method="metis",
                         embeddings=embeddings, graph=graph, seed=seed, **kwargs)

    @property
    def clusters(self) -> np.ndarray | None:
        """The METIS cluster of every node (``None`` before the first build)."""
        return None if self._state is None else self._state.communities
