"""CSR helpers shared by the graph, the solvers and the samplers.

:func:`sparse_csr_tensor` is the one place where graphbatch builds a
``torch.sparse_csr_tensor``, and so the one place that silences torch's
"sparse CSR tensor support is in beta" warning (raised on every construction).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .._validation import describe

__all__ = ["sparse_csr_tensor", "coalesced_csr", "is_canonical_csr", "check_canonical", "rows_of", "to_tensor",
           "check_values"]

_BETA_WARNING = ".*[Ss]parse CSR tensor support is in beta.*"


def sparse_csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> Any:
    """``torch.sparse_csr_tensor`` on trusted (canonical) arrays, without the beta warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BETA_WARNING, category=UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def to_tensor(name: str, value: Any) -> torch.Tensor:
    """A tensor, array or sequence as a tensor (zero-copy where possible; callers copy when they keep it)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.size == 0:
            arr = arr.astype(np.float32 if name in ("values", "scores", "edge_weight") else np.int64)
        return torch.as_tensor(arr)
    raise TypeError(f"{name} must be a torch.Tensor, numpy.ndarray or sequence, got {describe(value)}")


def check_values(name: str, values: torch.Tensor, nnz: int) -> torch.Tensor:
    """Edge weights: 1-D, one per edge, real; integers become float32; NaN/inf refused."""
    if values.dim() != 1 or values.numel() != nnz:
        raise ValueError(f"{name} must be 1-D with one value per edge ({nnz}), got shape {tuple(values.shape)}")
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {values.dtype}")
    if not values.is_floating_point():
        values = values.to(torch.float32)
    if nnz and not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} must be finite, got NaN or infinite values")
    return values


def rows_of(crow: torch.Tensor) -> torch.Tensor:
    """COO row index of every CSR entry."""
    n = crow.numel() - 1
    return torch.repeat_interleave(torch.arange(n, device=crow.device), crow[1:] - crow[:-1])


def coalesced_csr(row: torch.Tensor, col: torch.Tensor, val: torch.Tensor,
                  num_nodes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort COO edges by (row, col), sum duplicates, and return canonical CSR arrays (new tensors)."""
    device = row.device
    if row.numel():
        key = row * num_nodes + col
        key, perm = torch.sort(key)
        val = val[perm]
        uniq, inverse = torch.unique_consecutive(key, return_inverse=True)
        if uniq.numel() != key.numel():
            summed = torch.zeros(uniq.numel(), dtype=val.dtype, device=device)
            summed.index_add_(0, inverse, val)
            val = summed
        row, col = torch.div(uniq, num_nodes, rounding_mode="floor"), uniq % num_nodes
    else:
        val = val.clone()
    counts = torch.bincount(row, minlength=num_nodes)
    crow = torch.zeros(num_nodes + 1, dtype=torch.int64, device=device)
    torch.cumsum(counts, 0, out=crow[1:])
    return crow, col.to(torch.int64), val


def is_canonical_csr(crow: torch.Tensor, col: torch.Tensor) -> bool:
    """Whether the columns are strictly increasing within every row."""
    if col.numel() < 2:
        return True
    row = rows_of(crow)
    return not bool(((row[1:] == row[:-1]) & (col[1:] <= col[:-1])).any())


def check_canonical(crow: torch.Tensor, col: torch.Tensor, n: int) -> None:
    """Raise ``ValueError`` unless ``(crow, col)`` is a canonical CSR structure over ``n`` nodes."""
    nnz = col.numel()
    if int(crow[0]) != 0 or int(crow[-1]) != nnz:
        raise ValueError(f"crow must start at 0 and end at nnz={nnz}, got {int(crow[0])}..{int(crow[-1])}")
    if n and bool((crow[1:] < crow[:-1]).any()):
        raise ValueError("crow must be non-decreasing")
    if nnz:
        if int(col.min()) < 0 or int(col.max()) >= n:
            raise ValueError(f"col must hold indices in [0, {n})")
        row = rows_of(crow)
        if bool(((row[1:] == row[:-1]) & (col[1:] <= col[:-1])).any()):
            raise ValueError("col must be strictly increasing within each row (sorted, no duplicate edges)")
