"""The embedding bank a learning sampler refreshes its model from.

An ``(N, d)`` tensor on the embeddings' device, plus two host masks: ``seen`` (the row
was written at least once) and ``dirty`` (written since the model was last built).

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
    """

    def __init__(self, num_nodes: int) -> None:
        self.num_nodes = num_nodes
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
        """Store rows ``emb`` at ``idx`` (allocating the bank with ``emb``'s width, dtype and device first)."""
        if self.rows is None:
            self.rows = torch.zeros((self.num_nodes, emb.shape[1]), dtype=emb.dtype, device=emb.device)
        if idx.numel() == 0:
            return
        self.rows[idx.to(self.rows.device)] = emb.to(self.rows.device, self.rows.dtype)
        host = idx.cpu().numpy()
        self.seen[host] = True
        self.dirty[host] = True

    def fill(self, emb: torch.Tensor) -> None:
        """Every row at once (a copy of ``emb``); all rows become seen and dirty."""
        self.rows = emb.detach().clone()
        self.seen[:] = True
        self.dirty[:] = True

    def forget(self) -> None:
        """Drop the rows (a state restored without its bank must be filled again)."""
        self.rows = None
        self.seen[:] = False
        self.dirty[:] = False
