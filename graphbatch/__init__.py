"""graphbatch: hard-negative mini-batches for in-batch contrastive learning.

Embed every instance, build a proximity graph over them
(:func:`build_proximity_graph`), then form each mini-batch by a random walk
with restart on that graph (:class:`RWRBatchSampler`), refreshing the graph
from fresh embeddings as training goes.
"""
from . import augment, backend
from .adapters import (
    GraphDataset,
    ImageDataset,
    SentenceDataset,
    batch_index,
    check_sampler,
    embed_dataset,
    make_loader,
)
from .baselines import BandwidthBatchSampler, ClusterBatchSampler, KNNBatchSampler, RandomBatchSampler
from .build import build_proximity_graph, draw_candidates, neighbor_table
from .graph import ProximityGraph
from .metrics import batch_hardness, compare_samplers, epoch_summary
from .sampler import RWRBatchSampler, linear_decay
from .walk import RWRInfo, rwr, rwr_monte_carlo, rwr_truncated, sample_neighbors

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
    "RWRInfo",
    "rwr",
    "rwr_truncated",
    "rwr_monte_carlo",
    "sample_neighbors",
    "batch_hardness",
    "epoch_summary",
    "compare_samplers",
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
