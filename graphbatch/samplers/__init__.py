"""Batch samplers: the epoch machinery, the RWR sampler, the baselines and their planners.

* :mod:`.base` -- :class:`EpochBatchSampler`: exact epochs, determinism, refresh, resume, DDP shares;
* :mod:`.bank` -- the embedding bank; :mod:`.distributed` -- ``torch.distributed`` helpers;
* :mod:`.models` -- what a sampler is composed with: :class:`~.models.GraphBuilder` + a planner;
* :mod:`.planners` -- walk, ppr, ranked-list and ordering planners over the compiled kernels;
* :mod:`.graph_sampler` -- :class:`GraphSamplerBase`, the base of the graph samplers;
* :mod:`.rwr` -- :class:`RWRBatchSampler`; :mod:`.schedules` -- :class:`linear_decay`;
* :mod:`.baselines` -- random, kNN, cluster (k-means) and bandwidth (RCM) samplers.

Example:
    >>> import torch
    >>> from graphbatch.samplers import RWRBatchSampler
    >>> s = RWRBatchSampler(60, 8, k=4, candidates=30, embeddings=torch.randn(60, 5))
    >>> len(list(s)) == len(s) == 8
    True
"""
from .base import EpochBatchSampler
from .baselines import (
    BandwidthBatchSampler,
    ClusterBatchSampler,
    KNNBatchSampler,
    MetisBatchSampler,
    RandomBatchSampler,
)
from .graph_sampler import GraphSamplerBase
from .rwr import RWRBatchSampler
from .schedules import linear_decay

__all__ = ["EpochBatchSampler", "GraphSamplerBase", "RWRBatchSampler", "linear_decay", "RandomBatchSampler",
           "KNNBatchSampler", "ClusterBatchSampler", "BandwidthBatchSampler", "MetisBatchSampler"]
