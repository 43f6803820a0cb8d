"""Building the proximity graph from instance embeddings.

* :mod:`.api` -- :func:`build_proximity_graph` and :func:`neighbor_table` (incremental rows);
* :mod:`.candidates` -- the paper's ``M`` random candidates per anchor, and :func:`draw_candidates`;
* :mod:`.exact` -- exact kNN by chunked matrix products;
* :mod:`.nndescent` -- approximate kNN by pynndescent;
* :mod:`.faiss_knn` -- approximate (HNSW, IVF) or exact kNN by faiss;
* :mod:`.scoring` -- the metrics (cosine, inner product, negative squared distance, Tanimoto) and a fast top-k.

Example:
    >>> import torch
    >>> from graphbatch import build_proximity_graph
    >>> g = build_proximity_graph(torch.randn(1000, 16), 10, candidates=200, seed=0)
    >>> g.num_nodes, g.nnz, bool((g.out_degree() == 10).all())
    (1000, 10000, True)
"""
from .api import DEFAULT_CHUNK_SIZE, METHODS, METRICS, build_proximity_graph, neighbor_table
from .candidates import BLOCK_DIVISOR, draw_candidates

__all__ = ["build_proximity_graph", "neighbor_table", "draw_candidates", "METHODS", "METRICS",
           "BLOCK_DIVISOR", "DEFAULT_CHUNK_SIZE"]
