"""graphbatch: hard-negative mini-batches for in-batch contrastive learning.

Embed every instance, build a proximity graph over them (:func:`build_proximity_graph`),
then form each mini-batch by a random walk with restart on that graph
(:class:`RWRBatchSampler`), refreshing the graph from fresh embeddings as training goes.
The package, one folder per concept (``docs/architecture.md``): ``graph`` (the sparse
graph), ``build`` (graph building), ``solvers`` (the RWR solvers), ``kernels`` (compiled code,
loaded lazily), ``samplers``, ``adapters`` (datasets and augmentations), ``evaluation``
(hardness metrics and reports), ``integrations``, and ``backend`` (optional packages).

Example:
    >>> import torch, graphbatch as gb
    >>> s = gb.RWRBatchSampler(100, 10, k=5, candidates=50, embeddings=torch.randn(100, 8))
    >>> sorted(sum(list(s), [])) == list(range(100))
    True
"""
from . import backend, losses
from .adapters import (
    GraphDataset,
    ImageDataset,
    SentenceDataset,
    augment,
    batch_index,
    check_sampler,
    embed_dataset,
    make_loader,
)
from .build import build_proximity_graph, draw_candidates, neighbor_table
from .evaluation import batch_hardness, compare_samplers, epoch_summary, tune
from .graph import ProximityGraph
from .samplers import (
    BandwidthBatchSampler,
    ClusterBatchSampler,
    KNNBatchSampler,
    MetisBatchSampler,
    RandomBatchSampler,
    RWRBatchSampler,
    linear_decay,
)
from .solvers import RWRInfo, rwr, rwr_monte_carlo, rwr_truncated, sample_neighbors

__version__ = "0.1.0"

__all__ = [
    "backend",
    "ProximityGraph",
    "build_proximity_graph",
    "neighbor_table",
    "draw_candidates",
    "RWRBatchSampler",
    "linear_decay",
    "RandomBatchSampler",
    "KNNBatchSampler",
    "ClusterBatchSampler",
    "BandwidthBatchSampler",
    "MetisBatchSampler",
    "RWRInfo",
    "rwr",
    "rwr_truncated",
    "rwr_monte_carlo",
    "sample_neighbors",
    "batch_hardness",
    "epoch_summary",
    "compare_samplers",
    "tune",
    "losses",
    "augment",
    "ImageDataset",
    "SentenceDataset",
    "GraphDataset",
    "make_loader",
    "check_sampler",
    "batch_index",
    "embed_dataset",
    "__version__",
]
