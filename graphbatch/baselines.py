"""Baseline batch samplers to compare :class:`~graphbatch.RWRBatchSampler` against.

All share the epoch machinery of :class:`graphbatch.sampler.EpochBatchSampler`
(exact epochs, ``len``, ``set_epoch``, determinism, ``state_dict`` resume,
distributed shares, ``update``/``refresh`` with an embedding bank, warm-up of
random batches until every row has been embedded once):

* :class:`RandomBatchSampler` -- a shuffled permutation cut into batches.
* :class:`KNNBatchSampler` -- the paper's kNN baseline: a random unused seed plus
  its most similar unused neighbours in the proximity graph; when those run out
  the batch continues from the unused neighbours (1-2 hops) of the node added
  last, else a random unused node.
* :class:`ClusterBatchSampler` -- TAS-Balanced style (Hofstaetter et al., SIGIR
  2021): k-means clusters of the embeddings; each epoch visits clusters in random
  order with members shuffled inside, cuts that sequence into batches and
  shuffles the batch order, so a batch comes from one cluster (two at a cluster
  boundary).
* :class:`BandwidthBatchSampler` -- GCBS style (Sachidananda et al., 2023):
  reverse Cuthill-McKee order of the (optionally thresholded) symmetrised
  similarity graph, which places similar instances close together; the order is
  rotated by a random offset each epoch, cut into batches, and the batch order
  shuffled.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from . import backend
from ._validation import check_int
from .sampler import EpochBatchSampler, GraphSamplerBase

__all__ = ["RandomBatchSampler", "KNNBatchSampler", "ClusterBatchSampler", "BandwidthBatchSampler"]


def _chunk_shuffle(seq: np.ndarray, batch_size: int, rng: np.random.Generator, rotate: bool = False) -> np.ndarray:
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

    uses_embeddings = False


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
        drop_last: drop the last short batch.
        seed: base random seed.
        embeddings: ``(N, d)`` embeddings to build the graph at construction (skips warm-up).
        **kwargs: as :class:`~graphbatch.sampler.GraphSamplerBase` / ``EpochBatchSampler``
            (``metric``, ``refresh_every``, ``warmup_epochs``, ``labels``, ``num_replicas``, ...).

    Example:
        >>> import torch
        >>> from graphbatch import KNNBatchSampler
        >>> s = KNNBatchSampler(50, 10, k=5, candidates=None, embeddings=torch.randn(50, 4))
        >>> sorted(sum(list(s), [])) == list(range(50))
        True
    """

    def __init__(self, num_nodes: int, batch_size: int, *, k: int | None = None, candidates: int | None = 1000,
                 **kwargs: Any) -> None:
        if k is None:
            k = max(1, min(check_int("batch_size", batch_size, low=1), check_int("num_nodes", num_nodes, low=1)) - 1)
        super().__init__(num_nodes, batch_size, k=k, candidates=candidates, **kwargs)

    def _plan(self, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int) -> np.ndarray:
        crow, col, val = self._host
        return self._run_list_plan(used, n_plan, rng, consumed, crow, col, val, False, self._host)


class ClusterBatchSampler(EpochBatchSampler):
    """TAS-Balanced-style batches drawn within k-means clusters of the embeddings.

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B`` in ``[1, N]``.
        num_clusters: number of k-means clusters (default ``max(1, N // B)``; clamped to ``N``).
        metric: ``"cosine"`` (cluster L2-normalised embeddings) or ``"euclidean"``/``"ip"`` (raw).
        drop_last: drop the last short batch.
        seed: base random seed.
        embeddings: ``(N, d)`` embeddings to cluster at construction (skips warm-up).
        **kwargs: ``refresh_every``, ``warmup_epochs``, ``num_replicas``, ``rank``.

    Clustering uses scikit-learn's ``MiniBatchKMeans`` on CPU; every refresh
    re-clusters the whole bank (no incremental path).

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
        if num_clusters is None:
            num_clusters = max(1, n // b)
        self.num_clusters = min(check_int("num_clusters", num_clusters, low=1), n)
        if metric not in ("cosine", "euclidean", "ip"):
            raise ValueError(f"metric must be 'cosine', 'euclidean' or 'ip', got {metric!r}")
        self.metric = metric
        super().__init__(n, b, **kwargs)

    @property
    def assignments(self) -> np.ndarray | None:
        """Cluster id of every instance (``None`` before the first clustering)."""
        return self._model

    def _rebuild(self, full: bool) -> np.ndarray:
        backend.require("sklearn", "ClusterBatchSampler (k-means)")
        from sklearn import cluster
        x = self._bank.detach().to("cpu", torch.float32)
        if self.metric == "cosine":
            x = torch.nn.functional.normalize(x, dim=1)
        seed = int(self._rng(self._model_version, 7).integers(2**31 - 1))
        km = cluster.MiniBatchKMeans(n_clusters=self.num_clusters, random_state=seed, n_init=3,
                                     batch_size=max(1024, 4 * self.num_clusters))
        return km.fit_predict(x.numpy()).astype(np.int64)

    def _plan(self, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int) -> np.ndarray:
        rest = np.flatnonzero(~used)
        cluster_rank = rng.permutation(self.num_clusters)[self._model[rest]]
        seq = rest[np.lexsort((rng.random(rest.shape[0]), cluster_rank))]
        return _chunk_shuffle(seq, self.batch_size, rng)

    def _model_state(self) -> dict[str, Any]:
        return {"assignments": torch.from_numpy(self._model.copy())}

    def _load_model_state(self, state: dict[str, Any]) -> np.ndarray:
        return state["assignments"].numpy().astype(np.int64)


class BandwidthBatchSampler(GraphSamplerBase):
    """GCBS-style batches: contiguous chunks of a reverse Cuthill-McKee order of the similarity graph.

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B`` in ``[1, N]``.
        k: neighbours per node in the similarity graph (clamped to ``N - 1``).
        candidates: random candidates per node (``None``: exact kNN).
        threshold: drop edges whose similarity is below this before ordering (``None``: keep all).
        drop_last: drop the last short batch.
        seed: base random seed.
        embeddings: ``(N, d)`` embeddings to build the graph at construction (skips warm-up).
        **kwargs: as :class:`~graphbatch.sampler.GraphSamplerBase` / ``EpochBatchSampler``.

    Example:
        >>> import torch
        >>> from graphbatch import BandwidthBatchSampler
        >>> s = BandwidthBatchSampler(50, 10, k=5, candidates=None, embeddings=torch.randn(50, 4))
        >>> sorted(sum(list(s), [])) == list(range(50))
        True
    """

    def __init__(self, num_nodes: int, batch_size: int, *, k: int = 20, candidates: int | None = 1000,
                 threshold: float | None = None, **kwargs: Any) -> None:
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
                                      or not np.isfinite(float(threshold))):
            raise ValueError(f"threshold must be a finite float or None, got {threshold!r}")
        self.threshold = None if threshold is None else float(threshold)
        self._order: np.ndarray | None = None
        super().__init__(num_nodes, batch_size, k=k, candidates=candidates, **kwargs)

    @property
    def order(self) -> np.ndarray | None:
        """The reverse Cuthill-McKee order of the current graph (``None`` before the first build)."""
        return self._order

    def _on_model(self, model: Any) -> None:
        super()._on_model(model)
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        a = model.to_scipy().tocsr()
        if self.threshold is not None:
            a.data[a.data < self.threshold] = 0.0
            a.eliminate_zeros()
        a.data[:] = 1.0
        sym = (a + a.T).tocsr()
        sym.sort_indices()
        self._order = np.asarray(reverse_cuthill_mckee(sym, symmetric_mode=True), dtype=np.int64)

    def _plan(self, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int) -> np.ndarray:
        seq = self._order[~used[self._order]]
        return _chunk_shuffle(seq, self.batch_size, rng, rotate=True)
