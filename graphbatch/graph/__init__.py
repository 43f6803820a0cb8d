"""The proximity graph: a canonical sparse CSR matrix over the training instances.

* :mod:`.core` -- :class:`ProximityGraph`, its construction, validation and immutability contract;
* :mod:`.convert` -- from/to neighbour tables, PyG ``edge_index``, torch sparse, scipy,
  ``torch_sparse.SparseTensor``, cupyx sparse and networkx;
* :mod:`.ops` -- degrees, transpose, ``symmetrize``, ``mutual``, transition matrix, subgraph;
* :mod:`.io` -- atomic save / validated load.

Example:
    >>> import torch
    >>> from graphbatch.graph import ProximityGraph
    >>> ProximityGraph.from_neighbors(torch.tensor([[1, 2], [2, 0], [0, 1]])).nnz
    6
"""
from .core import ProximityGraph

__all__ = ["ProximityGraph"]
