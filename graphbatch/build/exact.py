"""Exact k-nearest neighbours by chunked matrix products and a running top-k (``method="exact"``).

At most ``chunk_size`` similarity scores are held at once; each row chunk scans all
columns in blocks, keeping the ``k`` best so far.

Example:
    >>> import torch
    >>> from graphbatch import build_proximity_graph
    >>> build_proximity_graph(torch.eye(4) + 0.1, 1, method="exact").out_degree().tolist()
    [1, 1, 1, 1]
"""
from __future__ import annotations

from typing import Any

import torch

from .candidates import _num_blocks
from .scoring import GROUP, NEG_INF, Scorer, progress_bar, topk_rows

__all__ = ["exact_table", "rows_per_chunk"]


def rows_per_chunk(a: Any) -> int:
    """Anchors per score block: rows x columns of one block <= ``chunk_size`` (at least 512 rows).

    At least 512 rows per matrix product: with fewer (e.g. 167 at N = 100k, where a whole row of
    scores fits the default ``chunk_size``) the product ran ~25% below its speed at 512 rows on
    the CPU measured (benchmarks/RESULTS.md, section 1), and the column block is prepared once for
    fewer rows. It depends on ``N`` only (not on how many rows are requested), so a sharded build
    that cuts the rows at multiples of it scores every row in the very same block as a single process.
    """
    return max(1, min(a.n, max(512, a.chunk_size // a.n)))


def exact_table(sc: Scorer, a: Any, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    n, k, dev = a.n, a.k, a.device
    anchors_all = torch.arange(n, device=dev) if rows is None else rows
    r = anchors_all.numel()
    out_i = torch.empty((r, k), dtype=torch.int64, device=dev)
    out_v = torch.empty((r, k), dtype=sc.dtype, device=dev)
    if r == 0:
        return out_i, out_v
    rows_per = rows_per_chunk(a)
    cols_per = max(min(n, k + 1), min(n, a.chunk_size // rows_per))
    if cols_per < n:
        cols_per = max(cols_per - cols_per % GROUP, min(n, k + 1))  # keep topk_rows' fast path
    sq = sc.sq
    scratch = torch.empty(rows_per * cols_per, dtype=sc.dtype, device=dev)  # one score block, reused
    n_chunks = _num_blocks(r, rows_per)
    bar = progress_bar(a.progress, n_chunks * _num_blocks(n, cols_per), "proximity graph (exact)")
    # column blocks outside, row chunks inside: each column block is prepared (normalised) once, and
    # every anchor row merges its blocks' top-k in column order (the same operations as row-major order)
    for c0 in range(0, n, cols_per):
        c1 = min(n, c0 + cols_per)
        xb = sc.span(c0, c1)
        sqb = None if sq is None else sq[c0:c1]
        for start in range(0, r, rows_per):
            anchors = anchors_all[start:start + rows_per]
            xa = sc.take(anchors)
            sqa = None if sq is None else sq.index_select(0, anchors)
            s = sc.scores(xa, xb, sqa, sqb, out=scratch[:xa.shape[0] * (c1 - c0)].view(xa.shape[0], c1 - c0))
            if not a.self_loops:
                # each anchor's own column, if it is in this block, gets -inf: rows outside the block
                # write their first score back unchanged (no nonzero(), so no host sync per block)
                local = anchors - c0
                at = local.clamp(0, c1 - c0 - 1).unsqueeze(1)
                inside = ((local >= 0) & (local < c1 - c0)).unsqueeze(1)
                s.scatter_(1, at, torch.where(inside, NEG_INF, s.gather(1, at)))
            sc.cap_(s, anchors)
            v, i = topk_rows(s, min(k, c1 - c0))  # the first block has >= k + 1 columns (cols_per >= k + 1)
            i += c0
            if c0 > 0:
                v = torch.cat([out_v[start:start + rows_per], v], dim=1)
                i = torch.cat([out_i[start:start + rows_per], i], dim=1)
                v, pos = torch.topk(v, k, dim=1)
                i = torch.gather(i, 1, pos)
            out_i[start:start + rows_per] = i
            out_v[start:start + rows_per] = v
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return out_i, out_v
