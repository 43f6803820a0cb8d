"""Approximate (or exact) k-nearest neighbours by faiss (``method="faiss"``).

For data sets past what the candidate draw and the exact method serve: an index built with
``faiss.index_factory`` from ``faiss_index`` (default ``"HNSW32"``; ``"Flat"`` is exact,
``"IVF1024,Flat"`` an inverted file) and searched for every anchor. ``"cosine"`` searches
normalised rows by inner product, ``"ip"`` by inner product, ``"euclidean"`` by squared L2;
the neighbours' scores are then recomputed exactly in the requested metric by the
:class:`~graphbatch.build.scoring.Scorer`, so the edge values agree with the other methods.
``faiss_params`` sets search parameters (``"efSearch=128"``, ``"nprobe=16"``, faiss's
``ParameterSpace`` syntax; default ``efSearch = max(64, 2 (k + 1))`` for HNSW and
``nprobe = 16`` for IVF). faiss-cpu or faiss-gpu is optional (``pip install 'graphbatch[faiss]'``);
with faiss-gpu and a CUDA ``device`` the index is moved to that GPU.

Determinism: the same as faiss's own (HNSW's construction runs in parallel threads and may
differ run to run by a few neighbours; ``"Flat"`` is exact and reproducible).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import backend
from .scoring import NEG_INF, Scorer

__all__ = ["faiss_table", "DEFAULT_FAISS_INDEX"]

#: The index ``method="faiss"`` builds unless told otherwise.
DEFAULT_FAISS_INDEX = "HNSW32"


def _index(faiss: Any, data: np.ndarray, metric: str, spec: str, params: str | None, k: int, device: Any) -> Any:
    kind = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
    try:
        index = faiss.index_factory(data.shape[1], spec, kind)
    except RuntimeError as exc:
        raise ValueError(f"faiss_index {spec!r} is not a faiss index_factory string ({exc})") from None
    if device.type == "cuda" and hasattr(faiss, "StandardGpuResources"):
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), device.index or 0, index)
    if not index.is_trained:
        index.train(data)
    index.add(data)
    if params is None:
        inner = faiss.downcast_index(index) if hasattr(faiss, "downcast_index") else index
        if hasattr(inner, "hnsw"):
            params = f"efSearch={max(64, 2 * (k + 1))}"
        elif hasattr(inner, "nprobe"):
            params = "nprobe=16"
    if params:
        try:
            faiss.ParameterSpace().set_index_parameters(index, params)
        except RuntimeError as exc:
            raise ValueError(f"faiss_params {params!r} do not apply to {spec!r} ({exc})") from None
    return index


def faiss_table(sc: Scorer, a: Any, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-``a.k`` table of the anchors ``rows`` (all when ``None``) searched in a faiss index."""
    faiss = backend.require("faiss", "method='faiss'")
    n, k = a.n, a.k
    data = np.ascontiguousarray(sc.span(0, n).detach().to("cpu", torch.float32).numpy())
    want = min(n, k if a.self_loops else k + 1)
    index = _index(faiss, data, a.metric, a.faiss_index or DEFAULT_FAISS_INDEX, a.faiss_params, want, a.device)
    anchors = np.arange(n) if rows is None else rows.cpu().numpy()
    _, nbr = index.search(data[anchors], want)
    nbr = np.asarray(nbr, dtype=np.int64)
    if not a.self_loops:
        # drop the anchor where faiss returned it, else the last (worst) neighbour
        order = np.argsort(nbr == anchors[:, None], axis=1, kind="stable")
        nbr = np.take_along_axis(nbr, order, axis=1)[:, :k]
    idx = torch.from_numpy(np.ascontiguousarray(nbr)).to(a.device)
    missing = idx < 0
    safe = idx.clamp(min=0)
    anc = torch.from_numpy(anchors).to(a.device)
    xa = sc.take(anc)
    xb = sc.take(safe.reshape(-1)).view(idx.shape[0], idx.shape[1], -1)
    val = torch.einsum("rd,rkd->rk", xa, xb)
    if a.metric == "euclidean":
        val = (2.0 * val - sc.sq[anc].unsqueeze(1) - sc.sq[safe]).clamp(max=0.0)
    val = sc.cap_(val.masked_fill(missing, NEG_INF), anc)
    val, order = torch.sort(val, dim=1, descending=True)
    idx = torch.gather(idx, 1, order).masked_fill(torch.isinf(val), -1)
    return idx, val.masked_fill(idx < 0, 0.0)
