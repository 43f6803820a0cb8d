"""Partitions of the instances into communities: METIS on the proximity graph, or k-means on the embeddings.

Communities serve two samplers: :class:`~graphbatch.MetisBatchSampler` (B3: batches of whole
METIS clusters) and the community cap of the graph samplers (``max_per_community``: a hard
batch spread over several nearby communities instead of one, which cuts the false negatives
a single dense region brings). :func:`metis_parts` needs the optional ``pymetis``
(``pip install 'graphbatch[metis]'``); :func:`kmeans_parts` uses scikit-learn.

Example:
    >>> import torch
    >>> from graphbatch.build.partition import communities
    >>> x = torch.cat([torch.randn(50, 4) + 5, torch.randn(50, 4) - 5])
    >>> c = communities(x, size=50, method="kmeans", seed=0)
    >>> len(set(c[:50].tolist())), len(set(c[50:].tolist())), c[0] != c[50]
    (1, 1, True)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import backend
from .._validation import as_float_matrix, check_choice, check_int, check_seed, describe
from ..graph import ProximityGraph

__all__ = ["communities", "metis_parts", "kmeans_parts", "METHODS"]

METHODS = ("kmeans", "metis")


def metis_parts(graph: ProximityGraph, nparts: int, *, seed: int = 0) -> np.ndarray:
    """METIS k-way partition of the undirected version of ``graph`` into ``nparts`` parts of (almost) equal size.

    Edges are unweighted (METIS minimises the number of cut edges), self-loops dropped.

    Returns:
        ``(N,)`` int64 part ids in ``[0, nparts)``.
    """
    if not isinstance(graph, ProximityGraph):
        raise TypeError(f"graph must be a ProximityGraph, got {describe(graph)}")
    n = graph.num_nodes
    nparts = check_int("nparts", nparts, low=1, high=max(1, n))
    seed = check_seed("seed", seed)
    if nparts == 1 or n <= 1:
        return np.zeros(n, dtype=np.int64)
    pymetis = backend.require("pymetis", "METIS partitions")
    sym = graph.remove_self_loops().symmetrize("max").to("cpu")
    xadj = sym.crow.numpy().astype(np.int64)
    adjncy = sym.col.numpy().astype(np.int64)
    options = pymetis.Options(seed=int(seed % (2**31 - 1)))
    if hasattr(pymetis, "CSRAdjacency"):
        result = pymetis.part_graph(nparts, adjacency=pymetis.CSRAdjacency(xadj, adjncy), options=options)
    else:  # pymetis < 2025.2
        result = pymetis.part_graph(nparts, xadj=xadj, adjncy=adjncy, options=options)
    return np.asarray(result[1], dtype=np.int64)


def kmeans_parts(embeddings: Any, nparts: int, *, seed: int = 0, metric: str = "cosine") -> np.ndarray:
    """k-means (scikit-learn ``MiniBatchKMeans``) of the embeddings into ``nparts`` clusters.

    ``metric="cosine"`` clusters the L2-normalised rows. Returns ``(N,)`` int64 cluster ids.
    """
    x = as_float_matrix("embeddings", embeddings).detach().to("cpu", torch.float32)
    nparts = check_int("nparts", nparts, low=1, high=x.shape[0])
    seed = check_seed("seed", seed)
    if nparts == 1:
        return np.zeros(x.shape[0], dtype=np.int64)
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    backend.require("sklearn", "k-means communities")
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=nparts, random_state=int(seed % (2**31 - 1)), n_init=3,
                         batch_size=max(1024, 4 * nparts))
    return km.fit_predict(x.numpy()).astype(np.int64)


def communities(embeddings: Any = None, graph: ProximityGraph | None = None, *, size: int,
                method: str = "kmeans", seed: int = 0, metric: str = "cosine") -> np.ndarray:
    """Communities of about ``size`` instances: ``ceil(N / size)`` k-means clusters or METIS parts.

    Args:
        embeddings: ``(N, d)`` (needed for ``"kmeans"``).
        graph: the proximity graph (needed for ``"metis"``).
        size: the target community size (``>= 1``).
        method: ``"kmeans"`` (clusters of the embeddings; sizes vary) or ``"metis"`` (parts of the
            graph; sizes equal within a few per cent).
        seed: seed of the clustering.
        metric: the embeddings' similarity (``"cosine"`` clusters normalised rows).

    Returns:
        ``(N,)`` int64 community ids.
    """
    method = check_choice("method", method, METHODS)
    size = check_int("size", size, low=1)
    if method == "metis":
        if graph is None:
            raise ValueError("method='metis' needs graph=")
        n = graph.num_nodes
        return metis_parts(graph, -(-n // size), seed=seed)
    if embeddings is None:
        raise ValueError("method='kmeans' needs embeddings=")
    n = int(embeddings.shape[0])
    return kmeans_parts(embeddings, min(n, -(-n // size)), seed=seed, metric=metric)
