"""Evaluation: how hard (and how falsely negative) a sampler's batches are, compared and reported.

* :mod:`.hardness` -- per-batch and per-epoch metrics (excess hardness, z-score against random
  batches, false-negative rate, InfoNCE of a frozen encoder), checked against brute force;
* :mod:`.compare` -- :func:`compare_samplers` over a grid of samplers on the same embeddings;
* :mod:`.plots` -- matplotlib figures of a comparison (headless);
* :mod:`.report` -- the ``graphbatch demo`` / ``analyze`` report written to a folder;
* :mod:`.tune` -- :func:`tune`: the sampler setting nearest a target hardness with the fewest false negatives;
* :mod:`.table` -- :class:`Table`, the small column table the results come in.

Example:
    >>> import numpy as np
    >>> from graphbatch.evaluation import batch_hardness, epoch_summary
    >>> emb = np.random.default_rng(0).normal(size=(100, 8))
    >>> batches = [list(range(i, i + 10)) for i in range(0, 100, 10)]
    >>> epoch_summary(batch_hardness(emb, batches), batches, num_nodes=100)["coverage"]
    1.0
"""
from .compare import SamplerSpec, compare_samplers, default_sampler_grid
from .hardness import HARDNESS_COLUMNS, batch_hardness, epoch_summary, global_mean_cosine, random_batch_reference
from .table import Table
from .tune import TuneResult, tune

__all__ = ["Table", "batch_hardness", "epoch_summary", "global_mean_cosine", "random_batch_reference",
           "HARDNESS_COLUMNS", "SamplerSpec", "default_sampler_grid", "compare_samplers", "tune", "TuneResult"]
