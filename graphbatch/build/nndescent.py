"""Approximate k-nearest neighbours by NN-descent (``method="nndescent"``, pynndescent on CPU).

``"ip"`` is reduced to a Euclidean search on augmented vectors (Bachrach et al. 2014);
the neighbours' scores are recomputed exactly in the requested metric. The first call
in a process compiles pynndescent's numba code (about 31 s on the 2-core development machine).
Before that first call, numba's on-disk cache is switched on for every pynndescent function
that does not have it (:func:`enable_jit_cache`), so a later process loads most of them
instead of compiling them again (16 s instead of 31 s there; ``nn_descent`` itself uses dynamic
globals, which numba cannot cache). ``GRAPHBATCH_NNDESCENT_CACHE=0`` turns this off; numba's
``NUMBA_CACHE_DIR`` chooses where the cache lives.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import numpy as np
import torch

from .. import backend
from .scoring import NEG_INF, Scorer

__all__ = ["nndescent_table", "enable_jit_cache"]

_CACHE_ENABLED = False


def enable_jit_cache() -> int:
    """Switch numba's on-disk cache on for pynndescent's compiled functions that lack it (once per process).

    Returns:
        How many functions it was switched on for (0 on later calls, when turned off by
        ``GRAPHBATCH_NNDESCENT_CACHE=0``, or without pynndescent).
    """
    global _CACHE_ENABLED
    if _CACHE_ENABLED or os.environ.get("GRAPHBATCH_NNDESCENT_CACHE", "1") == "0":
        return 0
    _CACHE_ENABLED = True
    try:
        import pynndescent  # noqa: F401 - loads its submodules
        from numba.core.caching import NullCache
        from numba.core.registry import CPUDispatcher
    except ImportError:
        return 0
    count = 0
    for name, mod in list(sys.modules.items()):
        if not name.startswith("pynndescent") or mod is None:
            continue
        for obj in list(vars(mod).values()):
            if isinstance(obj, CPUDispatcher) and isinstance(getattr(obj, "_cache", None), NullCache):
                obj.enable_caching()
                count += 1
    return count

# pynndescent builds at least this many neighbours (more = better recall, slower).
_NND_MIN_NEIGHBORS = 30
# Search breadth of the inner-product query (pynndescent's default 0.1 gives ~0.9 recall).
_NND_QUERY_EPSILON = 0.3


def nndescent_table(sc: Scorer, a: Any, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    pynndescent = backend.require("pynndescent", "method='nndescent'")
    enable_jit_cache()
    with warnings.catch_warnings():
        # numba says which of the functions given a cache cannot use it (dynamic globals): not the user's concern
        warnings.filterwarnings("ignore", message="Cannot cache compiled function")
        nbr = _neighbours(pynndescent, sc, a, rows)
    return _rescore(sc, a, rows, nbr)


def _neighbours(pynndescent: Any, sc: Scorer, a: Any, rows: torch.Tensor | None) -> np.ndarray:
    n, k = a.n, a.k
    data = sc.span(0, n).detach().to("cpu", torch.float32).numpy()
    want = k if a.self_loops else k + 1
    seed = a.seed
    if a.metric == "ip":
        # Maximum inner product as nearest Euclidean neighbour (Bachrach et al. 2014):
        # data x -> [x, sqrt(R^2 - |x|^2)], query q -> [q, 0]; |q' - x'|^2 = |q|^2 + R^2 - 2<q, x>.
        sq = (data.astype(np.float64) ** 2).sum(1)
        extra = np.sqrt(np.maximum(sq.max() - sq, 0.0)).astype(np.float32)
        base = np.concatenate([data, extra[:, None]], axis=1)
        query = np.concatenate([data, np.zeros((n, 1), np.float32)], axis=1)
        index = pynndescent.NNDescent(base, metric="euclidean", n_neighbors=max(want, _NND_MIN_NEIGHBORS),
                                      random_state=seed, verbose=a.progress)
        q_rows = query if rows is None else query[rows.cpu().numpy()]
        nbr, _ = index.query(q_rows, k=want, epsilon=_NND_QUERY_EPSILON)
    else:
        metric = {"cosine": "cosine", "euclidean": "euclidean"}[a.metric]
        index = pynndescent.NNDescent(data, metric=metric, n_neighbors=max(want, _NND_MIN_NEIGHBORS),
                                      random_state=seed, verbose=a.progress)
        nbr = index.neighbor_graph[0][:, :want]
        if rows is not None:
            nbr = nbr[rows.cpu().numpy()]
    return nbr


def _rescore(sc: Scorer, a: Any, rows: torch.Tensor | None, nbr: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The neighbours' exact scores in ``a.metric``, each row sorted; the anchor itself dropped."""
    n, k = a.n, a.k
    anchors = (np.arange(n) if rows is None else rows.cpu().numpy())[:, None]
    nbr = np.asarray(nbr, dtype=np.int64)
    if not a.self_loops:
        # Drop the anchor where pynndescent returned it, else the last (worst) neighbour.
        is_self = nbr == anchors
        order = np.argsort(is_self, axis=1, kind="stable")
        nbr = np.take_along_axis(nbr, order, axis=1)[:, :k]
    idx = torch.from_numpy(np.ascontiguousarray(nbr)).to(a.device)
    missing = idx < 0
    safe = idx.clamp(min=0)
    anc = torch.from_numpy(anchors.ravel()).to(a.device)
    xa = sc.take(anc)
    xb = sc.take(safe.reshape(-1)).view(idx.shape[0], k, -1)
    val = torch.einsum("rd,rkd->rk", xa, xb)
    if a.metric == "euclidean":
        val = (2.0 * val - sc.sq[anc].unsqueeze(1) - sc.sq[safe]).clamp(max=0.0)
    val = sc.cap_(val.masked_fill(missing, NEG_INF), anc)
    val, order = torch.sort(val, dim=1, descending=True)
    idx = torch.gather(idx, 1, order)
    val = val.masked_fill(idx < 0, 0.0)
    return idx, val
