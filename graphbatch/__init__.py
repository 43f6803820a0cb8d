"""graphbatch: hard-negative mini-batches for in-batch contrastive learning.

Embed every instance, build a proximity graph over them
(:func:`build_proximity_graph`), then form each mini-batch by a random walk
with restart on that graph (:class:`RWRBatchSampler`), refreshing the graph
from fresh embeddings as training goes.
"""
from . import backend
from .graph import ProximityGraph

__version__ = "0.1.0"

__all__ = [
    "backend",
    "ProximityGraph",
    "__version__",
]
