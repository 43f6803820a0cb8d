"""What the RWR solvers share: the result record, argument preparation, the weight check and seeded uniforms.

:class:`RWRInfo` is what every solver returns with ``return_info=True``; :func:`prepare` validates a
solver call's graph, seeds, restart probability and ``weighted`` flag in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .._validation import as_index_tensor, check_bool, check_probability, describe
from ..graph import ProximityGraph

__all__ = ["RWRInfo", "check_graph", "check_weights", "prepare", "uniforms"]


@dataclass
class RWRInfo:
    """What a walk solver did (returned with ``return_info=True``).

    Attributes:
        iterations: power iterations (``rwr``) or push rounds (``rwr_truncated``) used;
            walk steps of the longest walk (``rwr_monte_carlo``).
        residual: ``rwr``: max over seeds of the L1 change in the last iteration
            (the error is at most ``residual * (1 - p) / p``); ``rwr_truncated``: max
            over seeds of the exact L1 error (the residual mass left unpushed).
        backend: the backend that ran, e.g. ``"torch"``, ``"scipy"``, ``"cupy"``, ``"torch-push"``.
        converged: whether the stopping criterion was met before ``max_iter``.
        error: ``rwr_truncated`` only: per-seed exact L1 error, a ``(S,)`` tensor.
    """

    iterations: int
    residual: float
    backend: str
    converged: bool = True
    error: torch.Tensor | None = field(default=None, repr=False)


def check_graph(graph: Any) -> ProximityGraph:
    if not isinstance(graph, ProximityGraph):
        raise TypeError(f"graph must be a graphbatch.ProximityGraph, got {describe(graph)}")
    return graph


def check_weights(graph: ProximityGraph, weighted: bool) -> None:
    if weighted and graph.nnz and bool((graph.values < 0).any()):
        raise ValueError("weighted=True needs non-negative edge weights, but the graph has negative ones "
                         "(cosine similarities can be < 0): pass weighted=False to walk uniformly over "
                         "out-edges, or shift/clip the weights")


def prepare(graph: Any, seeds: Any, restart_prob: Any, weighted: Any) -> tuple[ProximityGraph, torch.Tensor,
                                                                               float, bool]:
    """Validated ``(graph, seeds on its device, p, weighted)`` for a solver call."""
    graph = check_graph(graph)
    p = check_probability("restart_prob", restart_prob)
    weighted = check_bool("weighted", weighted)
    if graph.num_nodes == 0:
        raise ValueError("graph must have at least one node for an RWR, got an empty graph")
    s = as_index_tensor("seeds", seeds, num_nodes=graph.num_nodes, device=graph.device)
    check_weights(graph, weighted)
    return graph, s, p, weighted


def uniforms(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` uniform float64 numbers in [0, 1) on ``device``.

    They are drawn on the generator's device (a CPU generator with a CUDA graph draws on
    the CPU and copies), so a seeded generator gives the same numbers whatever device the
    graph is on.
    """
    if generator is None:
        return torch.rand(n, dtype=torch.float64, device=device)
    return torch.rand(n, dtype=torch.float64, device=generator.device, generator=generator).to(device)
