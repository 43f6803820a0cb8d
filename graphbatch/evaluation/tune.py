"""Choosing a sampler's knobs for a data set: the setting nearest a target hardness with the fewest false negatives.

:func:`tune` draws one epoch per configuration of a grid (by default the community-capped kNN
sampler over candidate depth, community size, cap and plan, plus RWR walks and the paper's kNN),
on the user's embeddings, scores each over its full batches and returns the configuration whose
excess hardness is within ``tolerance`` of the target (by default: the paper's kNN baseline on
these embeddings) with the lowest false-negative rate, with the whole curve it searched. Without
labels the false-negative rate is replaced by a label-free proxy: the share of in-batch pairs
more similar than a high quantile of random pairs (near duplicates).

Example:
    >>> import torch
    >>> import graphbatch as gb
    >>> centers = torch.randn(6, 8) * 3
    >>> y = torch.arange(300) % 6
    >>> x = centers[y] + torch.randn(300, 8)
    >>> result = gb.tune(x, y, batch_size=20, seeds=1, grid="small")
    >>> result.best["name"] in result.table["name"], result.sampler(300, embeddings=x).batch_size
    (True, 20)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import samplers as _samplers
from .._validation import as_float_matrix, check_choice, check_int, check_probability, check_real
from .hardness import batch_hardness, label_codes, unit_rows
from .table import Table

__all__ = ["tune", "TuneResult", "default_tune_grid", "near_duplicate_rate"]


@dataclass
class TuneResult:
    """What :func:`tune` found.

    Attributes:
        best: the chosen configuration: ``name``, ``sampler`` (class name), ``settings`` and its scores.
        target: the excess hardness aimed at.
        measure: ``"false_negative_rate"`` (with labels) or ``"near_duplicate_rate"``.
        table: every configuration searched, one row each (means over seeds): ``name``, ``excess_hardness``,
            the measure, ``last_quarter_ratio`` (last quarter's excess hardness / first quarter's),
            ``distance`` (``|excess - target|``).
    """

    best: dict[str, Any]
    target: float
    measure: str
    table: Table

    def sampler(self, num_nodes: int, **kwargs: Any) -> Any:
        """A new sampler with the best configuration (``kwargs``: ``embeddings=``, ``seed=``, overrides)."""
        cls = getattr(_samplers, self.best["sampler"])
        return cls(num_nodes, self.best["batch_size"], **{**self.best["settings"], **kwargs})


def near_duplicate_rate(embeddings: Any, batches: Sequence[Sequence[int]], threshold: float) -> float:
    """Share of in-batch pairs (over all batches) whose cosine similarity exceeds ``threshold``."""
    z = torch.nn.functional.normalize(unit_rows(embeddings).to(torch.float64), dim=1)
    hits = pairs = 0
    for bt in batches:
        if len(bt) < 2:
            continue
        x = z[torch.as_tensor(list(bt))]
        g = x @ x.t()
        iu = torch.triu_indices(len(bt), len(bt), 1)
        hits += int((g[iu[0], iu[1]] > threshold).sum())
        pairs += iu.shape[1]
    return hits / max(pairs, 1)


def default_tune_grid(num_nodes: int, batch_size: int, size: str = "full") -> dict[str, tuple[str, dict]]:
    """``name -> (sampler class name, settings)`` searched by :func:`tune` (``size``: ``"full"`` or ``"small"``)."""
    b, n = batch_size, num_nodes
    grid: dict[str, tuple[str, dict]] = {"knn (paper)": ("KNNBatchSampler", {"candidates": None})}
    depths = (4, 8) if size == "full" else (8,)
    caps = (0.1875, 0.25, 0.3125, 0.375, 0.4375, 0.5) if size == "full" else (0.3125, 0.375, 0.4375)
    sizes = (1.0, 1.5, 2.0, 4.0) if size == "full" else (1.5, 2.0)
    for depth in depths:
        k = min(depth * b - 1, n - 1)
        for cs in sizes:
            for cap in caps:
                settings = {"k": k, "candidates": None, "community_size": max(1, int(cs * b)),
                            "max_per_community": max(1, int(cap * b)), "plan": "rounds"}
                grid[f"knn k={depth}B community={cs:g}B cap={cap:g}B rounds"] = ("KNNBatchSampler", settings)
    for p in ((0.2, 0.5) if size == "full" else (0.5,)):
        for plan in ("sequential", "rounds") if size == "full" else ("rounds",):
            grid[f"rwr walk k=20 M=all p={p:g} {plan}"] = (
                "RWRBatchSampler", {"k": min(20, n - 1), "candidates": None, "restart_prob": p, "plan": plan})
    return grid


def _score(z: torch.Tensor, codes: Any, threshold: float | None, cls: str, settings: dict, n: int, b: int,
           seed: int) -> tuple[float, float, float]:
    sampler = getattr(_samplers, cls)(n, b, embeddings=z, seed=seed, **settings)
    sampler.set_epoch(0)
    batches = [bt for bt in (list(map(int, x)) for x in sampler) if len(bt) == b]
    t = batch_hardness(z, batches, codes)
    ex = t["excess_hardness"]
    q = np.array_split(ex, 4)
    ratio = float(q[-1].mean() / q[0].mean()) if len(ex) >= 4 and q[0].mean() != 0 else float("nan")
    measure = float(t["false_negative_rate"].mean()) if codes is not None else near_duplicate_rate(z, batches,
                                                                                                  threshold)
    return float(ex.mean()), measure, ratio


def tune(embeddings: Any, labels: Any = None, *, batch_size: int, target: Any = "knn", tolerance: float = 0.01,
         seeds: int = 2, grid: Any = "full", duplicate_quantile: float = 0.99,
         progress: Callable[[str], None] | None = None) -> TuneResult:
    """Search a grid of sampler configurations for the one nearest ``target`` hardness with the fewest false negatives.

    Args:
        embeddings: ``(N, d)`` embeddings (e.g. of the current encoder).
        labels: optional ``(N,)`` class labels: false negatives are same-label pairs. Without them the
            measure is the near-duplicate rate (pairs above the ``duplicate_quantile`` of random pairs).
        batch_size: the training batch size ``B``.
        target: excess hardness to aim at (a number), or ``"knn"``: the paper's kNN baseline's on these
            embeddings.
        tolerance: configurations within this of the target compete on the measure; when none is,
            the nearest wins.
        seeds: epochs (seeds) averaged per configuration.
        grid: ``"full"``, ``"small"`` or a dict ``name -> (sampler class name, settings)``.
        duplicate_quantile: quantile of random-pair similarity above which a pair counts as a near duplicate.
        progress: called with each configuration's name before it runs.

    Returns:
        A :class:`TuneResult` (``result.sampler(N, embeddings=...)`` builds the chosen sampler).
    """
    z = as_float_matrix("embeddings", embeddings).detach().to(torch.float32)
    n = z.shape[0]
    b = check_int("batch_size", batch_size, low=2, high=n)
    tolerance = check_real("tolerance", tolerance, low=0.0)
    seeds = check_int("seeds", seeds, low=1)
    q = check_probability("duplicate_quantile", duplicate_quantile, closed_high=False)
    codes = None if labels is None else label_codes(labels, n, torch.device("cpu")).numpy()
    threshold = None
    if codes is None:
        rng = np.random.default_rng(0)
        zz = torch.nn.functional.normalize(z, dim=1)
        i, j = rng.integers(0, n, 20000), rng.integers(0, n, 20000)
        keep = i != j
        threshold = float(np.quantile((zz[i[keep]] * zz[j[keep]]).sum(1).numpy(), q))
    specs = default_tune_grid(n, b, check_choice("grid", grid, ("full", "small"))) if isinstance(grid, str) \
        else dict(grid)
    rows = []
    for name, (cls, settings) in specs.items():
        if progress is not None:
            progress(name)
        res = np.array([_score(z, codes, threshold, cls, settings, n, b, s) for s in range(seeds)])
        rows.append({"name": name, "sampler": cls, "settings": settings, "excess_hardness": float(res[:, 0].mean()),
                     "measure": float(res[:, 1].mean()), "last_quarter_ratio": float(np.nanmean(res[:, 2]))})
    if isinstance(target, str):
        check_choice("target", target, ("knn",))
        base = next((r for r in rows if r["name"] == "knn (paper)"), None)
        goal = base["excess_hardness"] if base else _score(z, codes, threshold, "KNNBatchSampler",
                                                           {"candidates": None}, n, b, 0)[0]
    else:
        goal = check_real("target", target)
    for r in rows:
        r["distance"] = abs(r["excess_hardness"] - goal)
    near = [r for r in rows if r["distance"] <= tolerance]
    best = min(near, key=lambda r: (r["measure"], r["distance"])) if near else \
        min(rows, key=lambda r: (r["distance"], r["measure"]))
    measure = "false_negative_rate" if codes is not None else "near_duplicate_rate"
    table = Table({"name": [r["name"] for r in rows], "excess_hardness": [r["excess_hardness"] for r in rows],
                   measure: [r["measure"] for r in rows],
                   "last_quarter_ratio": [r["last_quarter_ratio"] for r in rows],
                   "distance": [r["distance"] for r in rows]})
    chosen = {"name": best["name"], "sampler": best["sampler"], "settings": dict(best["settings"]),
              "batch_size": b, "excess_hardness": best["excess_hardness"], measure: best["measure"],
              "last_quarter_ratio": best["last_quarter_ratio"]}
    return TuneResult(best=chosen, target=goal, measure=measure, table=table)
