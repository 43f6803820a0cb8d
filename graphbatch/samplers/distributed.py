"""The samplers' use of ``torch.distributed``: world defaults and gathering embedding rows.

Every collective here must be called on all ranks at the same point, as DDP requires.
"""
from __future__ import annotations

import torch

from .._validation import check_int
from ..build.sharded import agree

__all__ = ["world_default", "is_distributed", "all_gather_rows", "agree"]


def is_distributed() -> bool:
    """Whether ``torch.distributed`` is initialised with more than one rank."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_default(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``(num_replicas, rank)``: the given values, else the initialised process group's, else ``(1, 0)``."""
    dist = torch.distributed
    inited = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if inited else 1
    num_replicas = check_int("num_replicas", num_replicas, low=1)
    if rank is None:
        rank = dist.get_rank() if inited else 0
    rank = check_int("rank", rank, low=0, high=num_replicas - 1)
    return num_replicas, rank


def all_gather_rows(idx: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate ``(indices, rows)`` from every rank, in rank order (the ranks' row counts may differ)."""
    dist = torch.distributed
    world = dist.get_world_size()
    dev = emb.device
    n = torch.tensor([idx.numel()], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_l = [int(s) for s in sizes]
    m = max(sizes_l)
    idx_p = torch.zeros(m, dtype=torch.int64, device=dev)
    idx_p[: idx.numel()] = idx.to(dev)
    emb_p = torch.zeros((m, emb.shape[1]), dtype=emb.dtype, device=dev)
    emb_p[: emb.shape[0]] = emb
    idx_all = [torch.empty_like(idx_p) for _ in range(world)]
    emb_all = [torch.empty_like(emb_p) for _ in range(world)]
    dist.all_gather(idx_all, idx_p)
    dist.all_gather(emb_all, emb_p)
    return (torch.cat([t[:s] for t, s in zip(idx_all, sizes_l)]),
            torch.cat([t[:s] for t, s in zip(emb_all, sizes_l)]))


