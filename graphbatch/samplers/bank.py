"""The embedding bank a learning sampler refreshes its model from.

An ``(N, d)`` tensor on the embeddings' device, plus two host masks: ``seen`` (the row
was written at least once) and ``dirty`` (written since the model was last built).
Rules: rows given for one index in one write are **averaged** (in the order given, so the
result is the same on every run, device and rank; two views of a batch give their mean);
a later write replaces the row. The bank is float32, or float64 when the first rows are
float64 (half-precision rows are stored in float32), unless a ``dtype`` is given: float16 or
bfloat16 halve its memory (rows given for one index are averaged in float32, then rounded once).

Example:
    >>> import torch
    >>> from graphbatch.samplers.bank import EmbeddingBank
    >>> bank = EmbeddingBank(4)
    >>> bank.write(torch.tensor([1, 3]), torch.ones(2, 2))
    >>> bank.rows.shape, bank.missing, bank.dirty.tolist()
    (torch.Size([4, 2]), 2, [False, True, False, True])
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["EmbeddingBank"]


class EmbeddingBank:
    """Rows of embeddings indexed by node, with ``seen`` / ``dirty`` masks.

    Args:
        num_nodes: number of rows ``N``.
        dtype: the rows' dtype (``None``: float32, float64 for float64 rows).
    """

    def __init__(self, num_nodes: int, dtype: torch.dtype | None = None) -> None:
        self.num_nodes = num_nodes
        self.dtype = dtype
        self.rows: torch.Tensor | None = None
        self.seen = np.zeros(num_nodes, dtype=bool)
        self.dirty = np.zeros(num_nodes, dtype=bool)

    @property
    def complete(self) -> bool:
        """Every row has been written at least once."""
        return bool(self.seen.all())

    @property
    def missing(self) -> int:
        """Rows never written."""
        return self.num_nodes - int(self.seen.sum())

    def write(self, idx: torch.Tensor, emb: torch.Tensor) -> None:
        """Store rows ``emb`` at ``idx`` (allocating the bank on ``emb``'s device first); see the module rules."""
        if self.rows is None:
            dtype = self.dtype or (torch.float64 if emb.dtype == torch.float64 else torch.float32)
            self.rows = torch.zeros((self.num_nodes, emb.shape[1]), dtype=dtype, device=emb.device)
        if idx.numel() == 0:
            return
        idx = idx.to(self.rows.device)
        uniq, inverse, counts = torch.unique(idx, return_inverse=True, return_counts=True)
        if uniq.numel() == idx.numel():
            self.rows[idx] = emb.to(self.rows.device, self.rows.dtype)
        else:
            work = self.rows.dtype if self.rows.dtype in (torch.float32, torch.float64) else torch.float32
            self.rows[uniq] = _mean_by_group(emb.to(self.rows.device, work), inverse, counts).to(self.rows.dtype)
        host = idx.cpu().numpy()
        self.seen[host] = True
        self.dirty[host] = True

    def fill(self, emb: torch.Tensor) -> None:
        """Every row at once (a copy of ``emb``); all rows become seen and dirty."""
        self.rows = emb.detach().to(dtype=self.dtype or emb.dtype, copy=True)
        self.seen[:] = True
        self.dirty[:] = True

    def forget(self) -> None:
        """Drop the rows (a state restored without its bank must be filled again)."""
        self.rows = None
        self.seen[:] = False
        self.dirty[:] = False


def _mean_by_group(emb: torch.Tensor, group: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of the rows of each group, summed in the order given: deterministic on CPU and CUDA.

    The r-th occurrences of all groups are added in one step (``r = 0, 1, ...``): within a step
    every target is distinct, so no two additions race and the result does not depend on threads.
    """
    order = torch.sort(group, stable=True).indices
    g = group[order]
    start = torch.cumsum(counts, 0) - counts  # first position of each group in the sorted order
    rank = torch.arange(g.numel(), device=g.device) - start[g]
    out = torch.zeros((counts.numel(), emb.shape[1]), dtype=emb.dtype, device=emb.device)
    for r in range(int(counts.max())):
        at = rank == r
        out[g[at]] += emb[order[at]]
    return out / counts.unsqueeze(1).to(emb.dtype)
