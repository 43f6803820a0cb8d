"""Sharded graph builds under ``torch.distributed``: each rank scores its share of the anchors.

Every rank derives the whole build plan from the seed (for ``method="candidates"`` that is a
few random permutations: cheap), so every rank knows which anchors each rank scores. A rank
computes the neighbour-table rows of its own share only (:func:`local_share`, no
communication) and the shares are all-gathered (:func:`gather_shares`: int32 ids, scores in
their dtype). Shares are made of whole *units* of the single-process build: whole groups of
candidate blocks (the blocks scored by one batched matrix product) for ``"candidates"``, whole
row chunks for ``"exact"``. Each row is thus computed by the very same operations as in a
single-process build, and the gathered table equals it bit for bit. Units are split into
contiguous ranges of about equal row counts, so a rank scores about ``1 / W`` of the rows.
``"nndescent"`` and ``"faiss"`` are not split: rank 0 builds the whole table and sends it.

Collectives: :func:`gather_shares` must be called by every rank, in the same order relative to
the group's other collectives; :func:`local_share` makes none, so a failure there can be agreed
on (``graphbatch.samplers.distributed.agree``) before anyone enters the gather.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .candidates import _ANCHORS_PER_STEP, _num_blocks, anchor_positions

__all__ = ["shard_rows", "local_share", "send_buffers", "gather_shares", "agree", "resolved_method", "comm_device"]


def resolved_method(a: Any) -> str:
    """The builder that ``a`` runs: ``"candidates"`` becomes ``"exact"`` when every other node is a candidate."""
    if a.method == "candidates" and (a.m is None or a.m >= a.n - 1):
        return "exact"
    return a.method


def _split(weights: np.ndarray, world: int) -> np.ndarray:
    """Cut points ``c_0 = 0 <= ... <= c_W = len(weights)``: contiguous ranges of about equal total weight."""
    cum = np.concatenate([[0], np.cumsum(weights, dtype=np.int64)])
    targets = cum[-1] * np.arange(world + 1) / world
    cuts = np.searchsorted(cum, targets, side="left")
    cuts[0], cuts[-1] = 0, len(weights)
    return np.maximum.accumulate(cuts)


def _candidate_shares(a: Any, rows: torch.Tensor | None, world: int) -> list[torch.Tensor]:
    n, m = a.n, a.m
    bsz = min(a.block_size, n)
    nb = _num_blocks(n, bsz)
    per_perm = n // (m + 1)
    group = max(1, _ANCHORS_PER_STEP.get(a.device.type, 1024) // bsz)
    anchor_perm, pos = (t.numpy() for t in anchor_positions(n, a.seed))
    if rows is None:
        sel = np.arange(nb)
        per_block = np.minimum(bsz, n - sel * bsz)
    else:
        block_of_row = pos[rows.cpu().numpy()] // bsz
        sel, per_block = np.unique(block_of_row, return_counts=True)
    # a unit is one group of the build loop: up to `group` consecutive selected blocks of one pool permutation
    seg = sel // per_perm
    first_in_seg = np.searchsorted(seg, seg, side="left")
    key = seg * (nb + 1) + (np.arange(sel.size) - first_in_seg) // group
    unit = np.concatenate([[0], np.cumsum(key[1:] != key[:-1])]) if sel.size else sel
    weights = np.bincount(unit, weights=per_block).astype(np.int64) if sel.size else np.zeros(0, np.int64)
    cuts = _split(weights, world)
    unit_cuts = np.searchsorted(unit, cuts, side="left")  # first selected block of each share
    shares = []
    for r in range(world):
        blocks = sel[unit_cuts[r]:unit_cuts[r + 1]]
        if rows is None:
            lo = int(blocks[0]) * bsz if blocks.size else 0
            hi = min(n, (int(blocks[-1]) + 1) * bsz) if blocks.size else 0
            share = anchor_perm[lo:hi]
        else:
            mine = np.zeros(nb, dtype=bool)
            mine[blocks] = True
            share = rows.cpu().numpy()[mine[block_of_row]]
        shares.append(torch.from_numpy(np.ascontiguousarray(share)).to(torch.int64))
    return shares


def _exact_shares(a: Any, rows: torch.Tensor | None, world: int) -> list[torch.Tensor]:
    from .exact import rows_per_chunk

    ids = torch.arange(a.n) if rows is None else rows.cpu()
    step = rows_per_chunk(a)
    sizes = np.full(_num_blocks(ids.numel(), step), step, dtype=np.int64)
    if sizes.size:
        sizes[-1] = ids.numel() - step * (sizes.size - 1)
    cuts = _split(sizes, world) * step
    return [ids[min(int(cuts[r]), ids.numel()):min(int(cuts[r + 1]), ids.numel())] for r in range(world)]


def shard_rows(a: Any, rows: torch.Tensor | None, world: int) -> list[torch.Tensor]:
    """The anchor ids each of ``world`` ranks scores (CPU int64 tensors; together: ``rows``, or all ids).

    Args:
        a: the validated build arguments (:class:`graphbatch.build.api.BuildArgs`).
        rows: the requested anchors (sorted, distinct) or ``None`` for all ``N``.
        world: number of ranks.
    """
    method = resolved_method(a)
    if method == "candidates":
        return _candidate_shares(a, rows, world)
    if method == "exact":
        return _exact_shares(a, rows, world)
    everything = torch.arange(a.n) if rows is None else rows.cpu()
    return [everything] + [everything[:0] for _ in range(world - 1)]


def local_share(a: Any, rows: torch.Tensor | None, rank: int, world: int, table: Any
                ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """This rank's rows of the table (no communication): ``(shares, idx, val)``.

    ``table(rows)`` computes the rows of the given anchor ids (the single-process builder).
    """
    shares = shard_rows(a, rows, world)
    mine = shares[rank].to(a.device)
    idx, val = table(mine)
    return shares, idx, val


def comm_device() -> torch.device:
    """Where collective tensors live: the current CUDA device under NCCL, else the CPU (gloo)."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def send_buffers(shares: list[torch.Tensor], idx: torch.Tensor, val: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """This rank's padded share and the receive buffers of :func:`gather_shares` (local: no communication).

    Allocated before the collective, so an allocation failure is a local failure that the ranks
    agree on before anyone gathers. Ids travel as int32 (``-1`` marks an empty slot), scores in
    their own dtype; every share is padded to the largest one.
    """
    world = len(shares)
    k = idx.shape[1]
    dev = comm_device()
    longest = max(1, max(int(s.numel()) for s in shares))
    if idx.numel() and int(idx.max()) >= 2**31:
        raise ValueError("a sharded build sends int32 ids: at most 2**31 - 1 nodes")
    mine_i = torch.full((longest, k), -1, dtype=torch.int32, device=dev)
    mine_v = torch.zeros((longest, k), dtype=val.dtype, device=dev)
    mine_i[:idx.shape[0]] = idx.to(dev, torch.int32)
    mine_v[:val.shape[0]] = val.to(dev)
    return mine_i, mine_v, [torch.empty_like(mine_i) for _ in range(world)], [torch.empty_like(mine_v)
                                                                               for _ in range(world)]


def gather_shares(shares: list[torch.Tensor], buffers: tuple, n_out: int, device: torch.device,
                  position: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather every rank's share into the ``(n_out, k)`` table (a collective: every rank calls it).

    ``buffers``: :func:`send_buffers`' result. ``position`` maps an anchor id to its row of the
    output (``None``: the id itself). The table is returned on ``device`` (ids int64).
    """
    dist = torch.distributed
    mine_i, mine_v, all_i, all_v = buffers
    dist.all_gather(all_i, mine_i)
    dist.all_gather(all_v, mine_v)
    k = mine_i.shape[1]
    out_i = torch.empty((n_out, k), dtype=torch.int64, device=device)
    out_v = torch.empty((n_out, k), dtype=mine_v.dtype, device=device)
    for s, gi, gv in zip(shares, all_i, all_v):
        r = s.numel()
        at = (s if position is None else position[s]).to(device)
        out_i[at] = gi[:r].to(device, torch.int64)
        out_v[at] = gv[:r].to(device)
    return out_i, out_v


def agree(ok: bool) -> bool:
    """Whether ``ok`` holds on every rank (an all-reduce of a flag; ``ok`` itself outside distributed runs)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=comm_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())
