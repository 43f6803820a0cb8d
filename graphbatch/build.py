"""Build the proximity graph from instance embeddings.

Each instance (the *anchor*) links to its top-``k`` most similar instances,
chosen either among ``candidates`` randomly drawn instances (the BatchSampler
paper's construction, ``method="candidates"``), among all instances (exact kNN,
``method="exact"``), or by approximate nearest-neighbour descent
(``method="nndescent"``, via pynndescent on CPU). Edge values are the
similarity scores, so they may be negative (cosine) and are *not* probabilities.

Similarities (``metric``):

* ``"cosine"``: ``<x/|x|, y/|y|>``; rows are normalised once. An all-zero row has
  similarity 0 to everything.
* ``"ip"``: the plain inner product ``<x, y>``.
* ``"euclidean"``: the negative squared distance ``-|x - y|^2`` (larger = closer).

Scores are computed in float32 (float64 when the embeddings are float64;
float16/bfloat16 inputs are computed in float32) by matrix products on the
embeddings' device (or ``device``), in chunks whose size bounds the memory.

Ties: the ``k`` best are picked by :func:`torch.topk`; among candidates with
*exactly* equal scores the choice is implementation-defined (it may differ
between CPU and CUDA). With continuous embeddings ties have probability 0.

Example:
    >>> import torch
    >>> from graphbatch import build_proximity_graph
    >>> x = torch.randn(1000, 16)
    >>> g = build_proximity_graph(x, 10, candidates=200, seed=0)
    >>> g.num_nodes, g.nnz
    (1000, 10000)
    >>> bool((g.out_degree() == 10).all())
    True
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Union

import numpy as np
import torch

from . import backend
from ._validation import as_float_matrix, as_index_tensor, check_int
from .graph import ProximityGraph

__all__ = [
    "build_proximity_graph",
    "neighbor_table",
    "draw_candidates",
    "METHODS",
    "METRICS",
    "BLOCK_DIVISOR",
    "DEFAULT_CHUNK_SIZE",
]

METHODS = ("candidates", "exact", "nndescent")
METRICS = ("cosine", "ip", "euclidean")

#: With the default ``block_size=None``, a pool of ``M + 1`` candidates is shared by
#: ``(M + 1) // BLOCK_DIVISOR`` anchors (at least 1, at most 1024), so every node lands in
#: about ``BLOCK_DIVISOR`` pools. Chosen from the in-degree measurements in
#: ``benchmarks/RESULTS.md`` (section 1): at this ratio the in-degree distribution (max, Gini,
#: top-1% share) matches per-anchor pools; 4x larger blocks start to grow hubs.
BLOCK_DIVISOR = 16
#: Largest number of similarity scores held at once by ``method="exact"`` (64 MiB of float32).
DEFAULT_CHUNK_SIZE = 1 << 24

Device = Union[str, torch.device, None]
_NEG_INF = float("-inf")
# pynndescent builds at least this many neighbours (more = better recall, slower).
_NND_MIN_NEIGHBORS = 30
# Search breadth of the inner-product query (pynndescent's default 0.1 gives ~0.9 recall).
_NND_QUERY_EPSILON = 0.3


# --------------------------------------------------------------------------- checks
def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {choices}, got {type(value).__name__} ({value!r})")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} ({value!r})")
    return bool(value)


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    return check_int("seed", seed, low=0, high=2**63 - 1)


def _check_device(device: Device, default: torch.device) -> torch.device:
    if device is None:
        return default
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__} ({device!r})")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"device is not a valid torch device: {device!r} ({exc})") from exc
    if dev.type == "cuda" and not backend.WITH_CUDA:
        raise ValueError(f"device={device!r} asks for CUDA, but torch sees no CUDA device")
    return dev


class _Args:
    """Validated arguments shared by :func:`build_proximity_graph` and :func:`neighbor_table`."""

    __slots__ = ("x", "n", "k", "m", "method", "metric", "seed", "self_loops", "device",
                 "progress", "block_size", "chunk_size")

    def __init__(self, embeddings: Any, k: Any, candidates: Any, method: Any, metric: Any, seed: Any,
                 self_loops: Any, device: Device, progress: Any, block_size: Any, chunk_size: Any) -> None:
        x = as_float_matrix("embeddings", embeddings)
        n = int(x.shape[0])
        if n < 2:
            raise ValueError(f"embeddings must have at least 2 rows to link anything, got shape {tuple(x.shape)}")
        self.method = _check_choice("method", method, METHODS)
        self.metric = _check_choice("metric", metric, METRICS)
        self.k = check_int("k", k, low=1, high=n - 1)
        if candidates is None:
            self.m = None
        else:
            m = check_int("candidates", candidates, low=1)
            if m < self.k:
                raise ValueError(f"candidates must be >= k={self.k} (each anchor keeps its top-k of them), got {m}")
            self.m = m
        self.seed = _check_seed(seed)
        self.self_loops = _check_bool("self_loops", self_loops)
        self.progress = _check_bool("progress", progress)
        self.block_size = _block_size(block_size, self.m)
        self.chunk_size = check_int("chunk_size", chunk_size, low=1)
        self.device = _check_device(device, x.device)
        self.n, self.x = n, x


# ------------------------------------------------------------------- similarities
class _Scorer:
    """Embeddings prepared once for a metric: rows normalised for cosine, squared norms for euclidean."""

    def __init__(self, x: torch.Tensor, metric: str, device: torch.device) -> None:
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x = x.detach().to(device=device, dtype=dtype)
        self.metric = metric
        self.sq: torch.Tensor | None = None
        if metric == "cosine":
            x = torch.nn.functional.normalize(x, dim=1)
        elif metric == "euclidean":
            self.sq = (x * x).sum(1)
        self.x = x.contiguous()

    def scores(self, a: torch.Tensor, b: torch.Tensor, a_sq: torch.Tensor | None = None,
               b_sq: torch.Tensor | None = None) -> torch.Tensor:
        """Similarity matrix ``(len(a), len(b))`` of prepared rows ``a`` and ``b``."""
        s = torch.mm(a, b.t())
        if self.metric == "euclidean":
            # -|a-b|^2 = 2<a,b> - |a|^2 - |b|^2, clamped at 0 against rounding.
            s.mul_(2.0).sub_(a_sq.unsqueeze(1)).sub_(b_sq.unsqueeze(0)).clamp_(max=0.0)
        return s

    def self_scores(self, idx: torch.Tensor) -> torch.Tensor:
        """Similarity of each row in ``idx`` with itself."""
        if self.metric == "euclidean":
            return torch.zeros(idx.numel(), dtype=self.x.dtype, device=self.x.device)
        a = self.x.index_select(0, idx)
        return (a * a).sum(1)


_GROUP = 8  # group width of the two-stage top-k


def _topk_rows(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise ``torch.topk(s, k)`` (sorted, descending), about 2x faster for wide rows on CPU.

    Two stages: split each row's ``w`` columns into ``w / _GROUP`` groups (group
    ``j`` = columns ``j, j + w/_GROUP, ...``, so the maxima are element-wise maxima
    of contiguous slices), keep the ``k`` groups with the largest maxima, then
    ``topk`` over those ``k * _GROUP`` values only. The ``k`` largest values of a
    row all lie in those groups (a value outside them is below ``k`` group maxima,
    hence below ``k`` values), so the result is the same as a plain ``topk`` (up
    to the order of exact ties). Used when the width is a multiple of ``_GROUP``
    and at least ``4 * k * _GROUP``; otherwise plain ``torch.topk``.
    """
    rows, width = s.shape
    if s.device.type != "cpu" or width % _GROUP or width < 4 * k * _GROUP:
        return torch.topk(s, k, dim=1)  # CUDA's radix-select topk needs no help
    n_groups = width // _GROUP
    groups = s.view(rows, _GROUP, n_groups).amax(dim=1)
    top_groups = torch.topk(groups, k, dim=1, sorted=False).indices
    cols = (top_groups.unsqueeze(2)
            + torch.arange(0, width, n_groups, device=s.device)).view(rows, k * _GROUP)
    val, pos = torch.topk(torch.gather(s, 1, cols), k, dim=1)
    return val, torch.gather(cols, 1, pos)


def _progress_bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="block")


# ------------------------------------------------------------------- candidate draw
def _num_blocks(n: int, block_size: int) -> int:
    return -(-n // block_size)


def _make_generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


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
    blocks; unmarked blocks are skipped (the draw is the same).
    """
    gen = _make_generator(seed)
    anchor_perm = torch.randperm(n, generator=gen).to(device)
    width = m + 1
    per_perm = n // width
    nb = _num_blocks(n, block_size)
    n_full = n // block_size
    full = anchor_perm[:n_full * block_size].view(n_full, block_size)
    ar = torch.arange(n, device=device)
    first = 0
    while first < nb:
        perm = torch.randperm(n, generator=gen).to(device)
        last = min(nb, first + per_perm)
        sel = torch.arange(first, last) if blocks is None else first + blocks[first:last].nonzero().view(-1)
        if sel.numel():
            inv = torch.empty_like(perm)
            inv[perm] = ar  # position of every node in this permutation
            pools_all = perm[:per_perm * width].view(per_perm, width)
            for g0 in range(0, sel.numel(), group):
                bsel = sel[g0:g0 + group]
                parts = [bsel[bsel < n_full], bsel[bsel >= n_full]]  # full blocks, then the short one
                for part in parts:
                    if part.numel() == 0:
                        continue
                    if int(part[0]) < n_full:
                        anchors = full[part.to(device)]
                    else:
                        anchors = anchor_perm[n_full * block_size:].unsqueeze(0)
                    j = (part - first).to(device)  # pool index within this permutation
                    pos = inv[anchors] - (j * width).unsqueeze(1)
                    slot = torch.where((pos >= 0) & (pos < width), pos, torch.full_like(pos, width - 1))
                    yield anchors, pools_all[j], slot
        first = last


def _block_size(block_size: Any, m: int | None) -> int:
    """``block_size`` checked, or its default for ``m`` candidates (see ``BLOCK_DIVISOR``)."""
    if block_size is None:
        return 1 if m is None else max(1, min(1024, (m + 1) // BLOCK_DIVISOR))
    return check_int("block_size", block_size, low=1)


def _check_draw_args(num_nodes: Any, candidates: Any, block_size: Any) -> tuple[int, int, int]:
    n = check_int("num_nodes", num_nodes, low=2)
    m = check_int("candidates", candidates, low=1, high=n - 2)
    return n, m, _block_size(block_size, m)


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
    seed = _check_seed(seed)
    self_loops = _check_bool("self_loops", self_loops)
    dev = _check_device(device, torch.device("cpu"))
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


# ------------------------------------------------------------------- the tables
#: Anchors per batched matrix product (``group`` blocks of ``block_size``) in ``method="candidates"``,
#: on CPU (keeps the gathered pools near cache size) and on CUDA (amortises kernel launches).
_ANCHORS_PER_STEP = {"cpu": 512, "cuda": 16384}


def _candidates_table(sc: _Scorer, a: _Args, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    n, m, k, dev = a.n, a.m, a.k, a.device
    bsz = min(a.block_size, n)
    r = n if rows is None else rows.numel()
    out_i = torch.empty((r, k), dtype=torch.int64, device=dev)
    out_v = torch.empty((r, k), dtype=sc.x.dtype, device=dev)
    if r == 0:
        return out_i, out_v
    width = m + 1
    # Pad pools to a multiple of _GROUP columns (repeated ids, masked) for _topk_rows' fast path.
    pad = -width % _GROUP if width >= 4 * k * _GROUP else 0
    where = blocks = None
    if rows is not None:
        # Score only the blocks that hold a requested anchor; the draw itself is unchanged.
        where = torch.full((n,), -1, dtype=torch.int64, device=dev)
        where[rows] = torch.arange(r, device=dev)
        gen = _make_generator(a.seed)
        anchor_perm = torch.randperm(n, generator=gen).to(dev)  # the plan's first draw
        pos = torch.empty_like(anchor_perm)
        pos[anchor_perm] = torch.arange(n, device=dev)
        blocks = torch.zeros(_num_blocks(n, bsz), dtype=torch.bool)
        blocks[(pos[rows] // bsz).cpu()] = True
    x, sq = sc.x, sc.sq
    group = max(1, _ANCHORS_PER_STEP.get(dev.type, 1024) // bsz)
    n_steps = _num_blocks(_num_blocks(n, bsz) if blocks is None else int(blocks.sum()), group)
    bar = _progress_bar(a.progress, n_steps, "proximity graph (candidates)")
    for anchors, pools, slot in _iter_plan(n, m, bsz, a.seed, dev, group=group, blocks=blocks):
        g, bb = anchors.shape
        cols = pools if pad == 0 else torch.cat([pools, pools[:, :pad]], dim=1)
        xa = x.index_select(0, anchors.reshape(-1)).view(g, bb, -1)
        xp = x.index_select(0, cols.reshape(-1)).view(g, width + pad, -1)
        s = torch.bmm(xa, xp.transpose(1, 2))
        if sq is not None:  # euclidean: -|a - p|^2
            s.mul_(2.0).sub_(sq[anchors].unsqueeze(2)).sub_(sq[cols].unsqueeze(1)).clamp_(max=0.0)
        if pad:
            s[:, :, width:] = _NEG_INF
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
        s[ar, flat_slot] = sc.self_scores(flat_anchors) if a.self_loops else _NEG_INF
        val, col = _topk_rows(s, k)
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


def _exact_table(sc: _Scorer, a: _Args, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    n, k, dev = a.n, a.k, a.device
    anchors_all = torch.arange(n, device=dev) if rows is None else rows
    r = anchors_all.numel()
    out_i = torch.empty((r, k), dtype=torch.int64, device=dev)
    out_v = torch.empty((r, k), dtype=sc.x.dtype, device=dev)
    if r == 0:
        return out_i, out_v
    # rows x cols of one score block <= chunk_size (at least 64 rows / k + 1 columns).
    rows_per = max(1, min(r, max(64, a.chunk_size // n)))
    cols_per = max(min(n, k + 1), min(n, a.chunk_size // rows_per))
    if cols_per < n:
        cols_per = max(cols_per - cols_per % _GROUP, min(n, k + 1))  # keep _topk_rows' fast path
    x, sq = sc.x, sc.sq
    n_chunks = _num_blocks(r, rows_per)
    bar = _progress_bar(a.progress, n_chunks, "proximity graph (exact)")
    for start in range(0, r, rows_per):
        anchors = anchors_all[start:start + rows_per]
        xa = x.index_select(0, anchors)
        sqa = None if sq is None else sq.index_select(0, anchors)
        best_v = best_i = None
        for c0 in range(0, n, cols_per):
            c1 = min(n, c0 + cols_per)
            s = sc.scores(xa, x[c0:c1], sqa, None if sq is None else sq[c0:c1])
            if not a.self_loops:
                inside = (anchors >= c0) & (anchors < c1)
                ri = inside.nonzero().squeeze(1)
                s[ri, anchors[ri] - c0] = _NEG_INF
            v, i = _topk_rows(s, min(k, c1 - c0))
            i += c0
            if best_v is None:
                best_v, best_i = v, i
            else:
                v = torch.cat([best_v, v], dim=1)
                i = torch.cat([best_i, i], dim=1)
                best_v, pos = torch.topk(v, k, dim=1)
                best_i = torch.gather(i, 1, pos)
        out_i[start:start + rows_per] = best_i
        out_v[start:start + rows_per] = best_v
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out_i, out_v


def _nndescent_table(sc: _Scorer, a: _Args, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    pynndescent = backend.require("pynndescent", "method='nndescent'")
    n, k = a.n, a.k
    data = sc.x.detach().to("cpu", torch.float32).numpy()
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
    xa = sc.x.index_select(0, anc)
    xb = sc.x.index_select(0, safe.reshape(-1)).view(idx.shape[0], k, -1)
    val = torch.einsum("rd,rkd->rk", xa, xb)
    if a.metric == "euclidean":
        val = (2.0 * val - sc.sq[anc].unsqueeze(1) - sc.sq[safe]).clamp(max=0.0)
    val = val.masked_fill(missing, _NEG_INF)
    val, order = torch.sort(val, dim=1, descending=True)
    idx = torch.gather(idx, 1, order)
    val = val.masked_fill(idx < 0, 0.0)
    return idx, val


_TABLES = {"candidates": _candidates_table, "exact": _exact_table, "nndescent": _nndescent_table}


@torch.no_grad()
def _table(a: _Args, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    sc = _Scorer(a.x, a.metric, a.device)
    method = a.method
    if method == "candidates" and (a.m is None or a.m >= a.n - 1):
        method = "exact"  # every other node is a candidate
    return _TABLES[method](sc, a, rows)


def neighbor_table(embeddings: Any, k: int, *, candidates: int | None = None, method: str = "candidates",
                   metric: str = "cosine", seed: int | None = None, rows: Any = None,
                   self_loops: bool = False, device: Device = None, progress: bool = False,
                   block_size: int | None = None,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` neighbour table of the anchor ``rows`` (default: all rows).

    Same arguments and semantics as :func:`build_proximity_graph`; for a fixed
    ``seed``, ``neighbor_table(..., rows=r)`` equals the rows ``r`` of the full
    table (the candidate draw is made for all anchors, only the requested ones are
    scored), which is what incremental graph refresh needs: the same neighbours,
    with scores equal up to float rounding (a matrix product over fewer rows may
    round differently, which can swap two neighbours whose scores tie to ~1e-7).

    Args:
        embeddings: ``(N, d)`` torch tensor or numpy array.
        k: neighbours per anchor, ``1 <= k <= N - 1``.
        candidates: ``M`` random candidates per anchor (``None`` or ``M >= N - 1``: exact kNN).
        method: ``"candidates"``, ``"exact"`` or ``"nndescent"``.
        metric: ``"cosine"``, ``"ip"`` or ``"euclidean"``.
        seed: seed of the candidate draw / nndescent (non-negative int) or ``None``.
        rows: anchor rows (1-D ints, duplicates allowed), default all ``N``.
        self_loops: allow an anchor to be its own neighbour.
        device: compute (and return) on this device; default the embeddings' device.
        progress: show a tqdm progress bar.
        block_size: anchors sharing one candidate pool (``method="candidates"``);
            ``None``: ``(M + 1) // 16``, clipped to ``[1, 1024]``.
        chunk_size: most scores held at once (``method="exact"``).

    Returns:
        ``(index, scores)``: LongTensor ``(R, k)`` of neighbour ids and their
        similarity scores ``(R, k)``, each row sorted by decreasing score. With
        ``method="nndescent"`` an id of ``-1`` (score 0) marks a neighbour
        pynndescent failed to find (rare).

    Raises:
        ValueError, TypeError: a bad argument (the message names it).

    Example:
        >>> import torch
        >>> from graphbatch import neighbor_table
        >>> x = torch.randn(500, 8)
        >>> idx, sc = neighbor_table(x, 5, candidates=100, seed=1, rows=[3, 7])
        >>> idx.shape, sc.shape
        (torch.Size([2, 5]), torch.Size([2, 5]))
        >>> full, _ = neighbor_table(x, 5, candidates=100, seed=1)
        >>> torch.equal(full[[3, 7]], idx)
        True
    """
    a = _Args(embeddings, k, candidates, method, metric, seed, self_loops, device, progress, block_size, chunk_size)
    if rows is None:
        return _table(a, None)
    r = as_index_tensor("rows", rows, num_nodes=a.n, device=a.device, allow_empty=True)
    uniq, inverse = torch.unique(r, return_inverse=True)
    idx, val = _table(a, uniq)
    return idx[inverse], val[inverse]


def build_proximity_graph(embeddings: Any, k: int, *, candidates: int | None = None,
                          method: str = "candidates", metric: str = "cosine", seed: int | None = None,
                          self_loops: bool = False, device: Device = None, progress: bool = False,
                          block_size: int | None = None,
                          chunk_size: int = DEFAULT_CHUNK_SIZE) -> ProximityGraph:
    """Link every instance to its top-``k`` most similar instances.

    ``method="candidates"`` (the BatchSampler construction): each anchor keeps
    its top-``k`` among ``M = candidates`` random other instances; small ``M``
    gives easier, more diverse neighbours (fewer false negatives), large ``M``
    harder ones; ``M >= N - 1`` or ``None`` is exact kNN. The draw is described
    in :func:`~graphbatch.build.draw_candidates` (anchors shuffled into blocks of
    ``block_size`` sharing one pool of ``M + 1`` distinct nodes; each anchor sees
    exactly ``M`` distinct other nodes, uniformly at random). The work is one
    ``(block_size x d) @ (d x (M + 1))`` matrix product per block (batched over
    several blocks) and a row-wise ``topk``: ``2 N (M + 1) d`` flops, no
    ``N x M`` intermediate.

    ``method="exact"``: exact kNN over all other instances by chunked matrix
    products and a running ``topk`` (at most ``chunk_size`` scores in memory).

    ``method="nndescent"``: approximate kNN by pynndescent on CPU (numba; the
    first call in a process spends seconds compiling). ``"ip"`` is reduced to a
    Euclidean search on augmented vectors. The neighbours' scores are recomputed
    exactly in ``metric``. ``candidates`` is ignored by ``"exact"`` and ``"nndescent"``.

    Self-loops are excluded unless ``self_loops=True`` (then the anchor is always
    one of its own candidates, and usually its own top neighbour for cosine).

    Args:
        embeddings: ``(N, d)`` torch tensor or numpy array, finite values.
        k: out-degree, ``1 <= k <= N - 1``.
        candidates: ``M`` random candidates per anchor, ``M >= k``; ``None`` = all.
        method: ``"candidates"``, ``"exact"`` or ``"nndescent"``.
        metric: ``"cosine"``, ``"ip"`` (inner product) or ``"euclidean"``
            (edge value ``-|x - y|^2``).
        seed: non-negative int; the same seed gives the same graph (the draw uses
            its own :class:`torch.Generator`, never the global RNG). ``None``: fresh.
        self_loops: allow an anchor to link to itself.
        device: compute on (and return the graph on) this device; default the
            embeddings' device.
        progress: show a tqdm progress bar.
        block_size: anchors sharing a candidate pool (``method="candidates"``);
            ``None``: ``(M + 1) // 16``, clipped to ``[1, 1024]`` (larger blocks grow
            in-degree hubs, see :func:`~graphbatch.build.draw_candidates`).
        chunk_size: most similarity scores held at once (``method="exact"``).

    Returns:
        :class:`~graphbatch.ProximityGraph` with ``k`` out-edges per node (fewer
        only where nndescent found fewer), edge values = similarity scores.

    Raises:
        ValueError: NaN/inf or empty embeddings, non-2-D input, ``k`` outside
            ``[1, N - 1]``, ``candidates < k``, unknown ``method``/``metric``, bad rows.
        TypeError: an argument of the wrong type.
        graphbatch.backend.MissingDependencyError: pynndescent missing for ``"nndescent"``.

    Example:
        >>> import torch
        >>> from graphbatch import build_proximity_graph
        >>> x = torch.randn(2000, 32)
        >>> g = build_proximity_graph(x, 20, candidates=500, seed=0)
        >>> g.nnz
        40000
        >>> exact = build_proximity_graph(x, 20, method="exact")
        >>> exact.values.mean() > g.values.mean()  # exact neighbours are closer
        tensor(True)
    """
    a = _Args(embeddings, k, candidates, method, metric, seed, self_loops, device, progress, block_size, chunk_size)
    idx, val = _table(a, None)
    return _graph_from_table(idx, val, a.n)


def _graph_from_table(idx: torch.Tensor, val: torch.Tensor, n: int) -> ProximityGraph:
    if bool((idx < 0).any()):
        return ProximityGraph.from_neighbors(idx, val, num_nodes=n)
    # Each row holds distinct columns: sorting within rows gives canonical CSR directly.
    col, order = torch.sort(idx, dim=1)
    values = torch.gather(val, 1, order)
    k = idx.shape[1]
    crow = torch.arange(0, n * k + 1, k, dtype=torch.int64, device=idx.device)
    return ProximityGraph(crow, col.reshape(-1), values.reshape(-1), n, check=False)
