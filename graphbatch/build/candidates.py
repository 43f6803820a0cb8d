"""The paper's candidate construction: each anchor keeps its top-``k`` among ``M`` random candidates.

:func:`draw_candidates` states (and reproduces) the draw; :func:`candidates_table`
scores it block by block, one batched matrix product per group of blocks and a
row-wise top-k, without ever forming the ``N x M`` candidate matrix.

Example:
    >>> from graphbatch.build import draw_candidates
    >>> draw_candidates(10, 3, seed=0).shape
    torch.Size([10, 3])
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Union

import torch

from .._validation import check_bool, check_device, check_int, check_seed
from .scoring import GROUP, NEG_INF, Scorer, progress_bar, topk_rows

__all__ = ["draw_candidates", "candidates_table", "anchor_positions", "block_size_for", "BLOCK_DIVISOR"]

#: With the default ``block_size=None``, a pool of ``M + 1`` candidates is shared by
#: ``(M + 1) // BLOCK_DIVISOR`` anchors (at least 1, at most 1024), so every node lands in
#: about ``BLOCK_DIVISOR`` pools. Chosen from the in-degree measurements in
#: ``benchmarks/RESULTS.md`` (section 1): at this ratio the in-degree distribution (max, Gini,
#: top-1% share) matches per-anchor pools; 4x larger blocks start to grow hubs.
BLOCK_DIVISOR = 16

Device = Union[str, torch.device, None]


def _num_blocks(n: int, block_size: int) -> int:
    return -(-n // block_size)


def _make_generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def anchor_positions(n: int, seed: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The draw's anchor permutation (its first random permutation, on the CPU) and each node's position in it.

    Anchor ``anchor_perm[i]`` is in block ``i // block_size``; ``position[v] // block_size`` is node ``v``'s block.
    """
    anchor_perm = torch.randperm(n, generator=_make_generator(seed))
    position = torch.empty_like(anchor_perm)
    position[anchor_perm] = torch.arange(n)
    return anchor_perm, position


#: Host memory (bytes) of the random permutations drawn and copied to the device together (``_draws``).
_DRAW_BATCH_BYTES = 64 << 20


def _draws(n: int, count: int, gen: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """The next ``count`` random permutations of ``range(n)`` from ``gen``, in order, on ``device``.

    They are drawn on the CPU generator (so a seed gives the same plan on every device), several
    at a time (at most ``_DRAW_BATCH_BYTES`` of int64), into pinned memory when ``device`` is CUDA,
    and moved with one non-blocking copy per batch: no host sync and no pageable copy per pool.
    """
    per_batch = max(1, min(count, _DRAW_BATCH_BYTES // (8 * max(n, 1))))
    pin = device.type == "cuda"
    done = 0
    while done < count:
        b = min(per_batch, count - done)
        host = torch.empty((b, n), dtype=torch.int64, pin_memory=pin)
        for i in range(b):
            torch.randperm(n, generator=gen, out=host[i])
        batch = host.to(device, non_blocking=pin)
        yield from batch
        done += b


def _iter_plan(n: int, m: int, block_size: int, seed: int | None, device: torch.device, *,
               group: int = 1, blocks: torch.Tensor | None = None
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(anchors, pools, slot)`` for groups of blocks: the draw behind ``method="candidates"``.

    One CPU generator (seeded with ``seed``) first draws a permutation of the
    anchors, cut into consecutive blocks of ``block_size`` (the last may be
    shorter); then pools of ``m + 1`` distinct nodes are cut from a stream of
    fresh random permutations of all nodes, ``n // (m + 1)`` disjoint pools per
    permutation (the remainder unused), block ``b`` taking the ``b``-th pool.

    Each item covers up to ``group`` blocks (full blocks only; the short last
    block comes alone): ``anchors`` ``(G, B)``, ``pools`` ``(G, m + 1)``, and
    ``slot`` ``(G, B)``, the pool column each anchor gives up (its own position
    when it was drawn, else the last column). ``blocks``: optional bool mask over
    blocks (on the CPU); unmarked blocks are skipped (the draw is the same).

    The permutations reach the device in batches (:func:`_draws`); which blocks a group
    holds is decided on the host, and the block indices live on the device from the
    start, so the loop makes no host sync and no small host-to-device copy.
    """
    gen = _make_generator(seed)
    width = m + 1
    per_perm = n // width
    nb = _num_blocks(n, block_size)
    n_full = n // block_size
    draws = _draws(n, 1 + _num_blocks(nb, per_perm), gen, device)
    anchor_perm = next(draws)
    full = anchor_perm[:n_full * block_size].view(n_full, block_size)
    ar = torch.arange(n, device=device)
    # the selected blocks, in increasing order: on the host (to cut groups) and on the device (to index)
    sel_all = torch.arange(nb) if blocks is None else blocks.nonzero().view(-1)
    sel_dev = sel_all.to(device)
    first = 0
    while first < nb:
        perm = next(draws)
        last = min(nb, first + per_perm)
        lo, hi = (int(i) for i in torch.searchsorted(sel_all, torch.tensor([first, last])))
        if hi > lo:
            inv = torch.empty_like(perm)
            inv[perm] = ar  # position of every node in this permutation
            pools_all = perm[:per_perm * width].view(per_perm, width)
            for g0 in range(lo, hi, group):
                g1 = min(hi, g0 + group)
                n_in_full = int(torch.searchsorted(sel_all[g0:g1], n_full))  # full blocks come first
                for a, b in ((g0, g0 + n_in_full), (g0 + n_in_full, g1)):  # full blocks, then the short one
                    if b == a:
                        continue
                    part = sel_dev[a:b]
                    if a < g0 + n_in_full:
                        anchors = full[part]
                    else:
                        anchors = anchor_perm[n_full * block_size:].unsqueeze(0)
                    j = part - first  # pool index within this permutation
                    pos = inv[anchors] - (j * width).unsqueeze(1)
                    slot = torch.where((pos >= 0) & (pos < width), pos, torch.full_like(pos, width - 1))
                    yield anchors, pools_all[j], slot
        first = last


def block_size_for(block_size: Any, m: int | None) -> int:
    """``block_size`` checked, or its default for ``m`` candidates (see ``BLOCK_DIVISOR``)."""
    if block_size is None:
        return 1 if m is None else max(1, min(1024, (m + 1) // BLOCK_DIVISOR))
    return check_int("block_size", block_size, low=1)


def _check_draw_args(num_nodes: Any, candidates: Any, block_size: Any) -> tuple[int, int, int]:
    n = check_int("num_nodes", num_nodes, low=2)
    m = check_int("candidates", candidates, low=1, high=n - 2)
    return n, m, block_size_for(block_size, m)


def draw_candidates(num_nodes: int, candidates: int, *, seed: int | None = None,
                    block_size: int | None = None, self_loops: bool = False,
                    device: Device = None) -> torch.Tensor:
    """The candidate sets that ``method="candidates"`` uses for a given seed, one row per anchor.

    Semantics of "``M`` random candidates" (``M = candidates``), exactly as
    :func:`build_proximity_graph` draws them:

    * Anchors are shuffled by a random permutation and cut into blocks of
      ``block_size`` consecutive anchors (so a block holds unrelated anchors even
      when the data set is sorted by class).
    * Each block draws one *pool* of ``M + 1`` **distinct** nodes, uniformly
      without replacement. Pools are cut from a stream of random permutations of
      all nodes, ``num_nodes // (M + 1)`` disjoint pools per permutation, so every
      node lands in (almost) the same number of pools: the number of anchors
      that *see* a node is (almost) the same for all nodes, which keeps the
      in-degree spread as narrow as with independent per-anchor draws.
    * Every anchor in the block sees the pool minus one node: itself if it was
      drawn, otherwise the pool's last node. Hence each anchor's candidate set
      is a uniformly random set of exactly ``M`` **other** nodes (the anchor is
      never its own candidate), shared with the other anchors of its block up
      to that one swapped node.
    * ``self_loops=True`` adds the anchor itself as an ``(M + 1)``-th candidate.

    The draw depends only on ``(N, M, block_size, seed)`` (not on ``k``, the
    metric or the embeddings) and runs on a CPU :class:`torch.Generator`, so the
    same seed gives the same sets on every device; ``seed=None`` draws fresh
    entropy. Anchors of a block share all but one candidate, so their choices
    are correlated; ``benchmarks/RESULTS.md`` (section 1) measures the effect on the
    in-degree distribution against per-anchor pools.
    This materialises ``num_nodes x M`` indices: it is meant for inspection
    and tests, not for large graphs (the builder never forms it).

    Args:
        num_nodes: number of nodes ``N``.
        candidates: ``M``, with ``1 <= M <= N - 2`` (``M >= N - 1`` means every
            other node, i.e. exact kNN, and draws nothing).
        seed: seed of the draw (non-negative int) or ``None``.
        block_size: anchors sharing one pool; ``None``: ``(M + 1) // 16`` clipped to
            ``[1, 1024]`` (see ``BLOCK_DIVISOR``).
        self_loops: append the anchor itself as the last candidate.
        device: device of the result (default CPU).

    Returns:
        LongTensor ``(N, M)`` (``(N, M + 1)`` with ``self_loops``): row ``i`` lists
        the candidates of anchor ``i`` (order carries no meaning).

    Raises:
        ValueError, TypeError: a bad argument (the message names it).

    Example:
        >>> from graphbatch.build import draw_candidates
        >>> c = draw_candidates(100, 10, seed=0)
        >>> c.shape
        torch.Size([100, 10])
        >>> bool((c != torch.arange(100).unsqueeze(1)).all())  # never the anchor itself
        True
    """
    n, m, b = _check_draw_args(num_nodes, candidates, block_size)
    seed = check_seed("seed", seed, allow_none=True)
    self_loops = check_bool("self_loops", self_loops)
    dev = check_device("device", device, default=torch.device("cpu"))
    out = torch.empty((n, m + 1 if self_loops else m), dtype=torch.int64, device=dev)
    cols = torch.arange(m + 1, device=dev)
    for anchors, pools, slot in _iter_plan(n, m, min(b, n), seed, dev, group=64):
        g, bb = anchors.shape
        keep = cols.view(1, 1, -1) != slot.unsqueeze(2)  # (G, B, m + 1)
        sets = pools.unsqueeze(1).expand(g, bb, m + 1)[keep].view(g, bb, m)
        if self_loops:
            sets = torch.cat([sets, anchors.unsqueeze(2)], dim=2)
        out[anchors.reshape(-1)] = sets.reshape(g * bb, -1)
    return out


#: Anchors per batched matrix product (``group`` blocks of ``block_size``) in ``method="candidates"``,
#: on CPU (keeps the gathered pools near cache size) and on CUDA (amortises kernel launches).
_ANCHORS_PER_STEP = {"cpu": 512, "cuda": 16384}


def candidates_table(sc: Scorer, a: Any, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    n, m, k, dev = a.n, a.m, a.k, a.device
    bsz = min(a.block_size, n)
    r = n if rows is None else rows.numel()
    out_i = torch.empty((r, k), dtype=torch.int64, device=dev)
    out_v = torch.empty((r, k), dtype=sc.dtype, device=dev)
    if r == 0:
        return out_i, out_v
    width = m + 1
    # Pad pools to a multiple of GROUP columns (repeated ids, masked) for topk_rows' fast path.
    pad = -width % GROUP if width >= 4 * k * GROUP else 0
    where = blocks = None
    if rows is not None:
        # Score only the blocks that hold a requested anchor; the draw itself is unchanged.
        where = torch.full((n,), -1, dtype=torch.int64, device=dev)
        where[rows] = torch.arange(r, device=dev)
        pos = anchor_positions(n, a.seed)[1]
        blocks = torch.zeros(_num_blocks(n, bsz), dtype=torch.bool)
        blocks[pos[rows.cpu()] // bsz] = True
    sq = sc.sq
    group = max(1, _ANCHORS_PER_STEP.get(dev.type, 1024) // bsz)
    n_steps = _num_blocks(_num_blocks(n, bsz) if blocks is None else int(blocks.sum()), group)
    bar = progress_bar(a.progress, n_steps, "proximity graph (candidates)")
    for anchors, pools, slot in _iter_plan(n, m, bsz, a.seed, dev, group=group, blocks=blocks):
        g, bb = anchors.shape
        cols = pools if pad == 0 else torch.cat([pools, pools[:, :pad]], dim=1)
        xa = sc.take(anchors.reshape(-1)).view(g, bb, -1)
        xp = sc.take(cols.reshape(-1)).view(g, width + pad, -1)
        s = torch.bmm(xa, xp.transpose(1, 2))
        if sq is not None:  # euclidean -|a - p|^2, tanimoto <a, p> / (|a|^2 + |p|^2 - <a, p>)
            sc.finish_(s, sq[anchors].unsqueeze(2), sq[cols].unsqueeze(1))
        if pad:
            s[:, :, width:] = NEG_INF
        s = s.view(g * bb, width + pad)
        flat_anchors, flat_slot = anchors.reshape(-1), slot.reshape(-1)
        base = torch.arange(g, device=dev).repeat_interleave(bb) * width
        dest = flat_anchors
        if where is not None:
            # Keep only the requested anchors before the top-k, the dominant cost: a block
            # almost always holds some requested row, so filtering after it saves nothing.
            dest = where[flat_anchors]
            keep = dest >= 0
            s, flat_anchors, flat_slot = s[keep], flat_anchors[keep], flat_slot[keep]
            base, dest = base[keep], dest[keep]
        ar = torch.arange(s.shape[0], device=dev)
        s[ar, flat_slot] = sc.self_scores(flat_anchors) if a.self_loops else NEG_INF
        sc.cap_(s, flat_anchors)
        val, col = topk_rows(s, k)
        idx = pools.reshape(-1)[base.unsqueeze(1) + col]
        if a.self_loops:
            idx = torch.where(col == flat_slot.unsqueeze(1), flat_anchors.unsqueeze(1), idx)
        out_i[dest] = idx
        out_v[dest] = val
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out_i, out_v
