"""``build_proximity_graph`` and ``neighbor_table``: argument checks and dispatch to the builders.

Each instance (the *anchor*) links to its top-``k`` most similar instances, chosen among
``candidates`` random instances (``method="candidates"``, the BatchSampler paper's
construction, :mod:`.candidates`), among all instances (``"exact"``, :mod:`.exact`) or by
NN-descent (``"nndescent"``, :mod:`.nndescent`). Edge values are the similarity scores
(:mod:`.scoring`), so they may be negative and are *not* probabilities.

Ties: the ``k`` best are picked by :func:`torch.topk`; among candidates with *exactly* equal
scores the choice is implementation-defined (it may differ between CPU and CUDA). With
continuous embeddings ties have probability 0.
"""
from __future__ import annotations

from typing import Any, Union

import torch

from .._validation import (
    as_float_matrix,
    as_index_tensor,
    check_bool,
    check_choice,
    check_device,
    check_int,
    check_real,
    check_seed,
    describe,
)
from ..graph import ProximityGraph
from ..graph.convert import table_to_csr
from .candidates import block_size_for, candidates_table
from .exact import exact_table
from .faiss_knn import faiss_table
from .nndescent import nndescent_table
from .scoring import Scorer, score_dtype
from .sharded import agree, gather_shares, local_share, resolved_method, send_buffers

__all__ = ["build_proximity_graph", "neighbor_table", "table_share", "TableShare", "BuildArgs", "METHODS", "METRICS",
           "DEFAULT_CHUNK_SIZE"]

METHODS = ("candidates", "exact", "nndescent", "faiss")
METRICS = ("cosine", "ip", "euclidean", "tanimoto")
#: Largest number of similarity scores held at once by ``method="exact"`` (64 MiB of float32).
DEFAULT_CHUNK_SIZE = 1 << 24

Device = Union[str, torch.device, None]


class BuildArgs:
    """Validated arguments shared by :func:`build_proximity_graph` and :func:`neighbor_table`."""

    __slots__ = ("x", "n", "k", "m", "method", "metric", "seed", "self_loops", "device", "faiss_index", "faiss_params",
                 "progress", "block_size", "chunk_size", "skip", "ceiling")

    def __init__(self, embeddings: Any, k: Any, candidates: Any, method: Any, metric: Any, seed: Any,
                 self_loops: Any, device: Device, progress: Any, block_size: Any, chunk_size: Any,
                 skip: Any = 0, margin: Any = None, positive_scores: Any = None, faiss_index: Any = None,
                 faiss_params: Any = None) -> None:
        self.method = check_choice("method", method, METHODS)
        self.metric = check_choice("metric", metric, METRICS)
        if self.metric == "tanimoto" and self.method in ("nndescent", "faiss"):
            raise ValueError(f"metric='tanimoto' is computed by method='candidates' or 'exact', not {self.method!r}")
        x = as_float_matrix("embeddings", embeddings)
        n = int(x.shape[0])
        if n < 2:
            raise ValueError(f"embeddings must have at least 2 rows to link anything, got shape {tuple(x.shape)}")
        k = check_int("k", k, low=1, high=n - 1)
        self.skip = check_int("skip", skip, low=0, high=n - 1 - k)
        self.k = k + self.skip  # the tables select k + skip and drop the first skip (the rank window)
        if candidates is None:
            self.m = None
        else:
            m = check_int("candidates", candidates, low=1)
            if m < self.k:
                need = f"k + skip = {k} + {self.skip}" if self.skip else f"k={k}"
                raise ValueError(f"candidates must be >= {need} (each anchor keeps its top-k of them), got {m}")
            self.m = m
        self.seed = check_seed("seed", seed, allow_none=True)
        self.self_loops = check_bool("self_loops", self_loops)
        self.progress = check_bool("progress", progress)
        self.block_size = block_size_for(block_size, self.m)
        self.chunk_size = check_int("chunk_size", chunk_size, low=1)
        self.device = check_device("device", device, default=x.device)
        self.n, self.x = n, x
        self.ceiling = _ceiling(margin, positive_scores, n)
        for name, value in (("faiss_index", faiss_index), ("faiss_params", faiss_params)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TypeError(f"{name} must be a non-empty str, got {describe(value)}")
            if value is not None and self.method != "faiss":
                raise ValueError(f"{name} is for method='faiss', got method={self.method!r}")
        self.faiss_index, self.faiss_params = faiss_index, faiss_params


def _ceiling(margin: Any, positive_scores: Any, n: int) -> float | torch.Tensor | None:
    """The similarity ceiling: ``margin`` itself, or ``margin * positive_scores`` per anchor."""
    if margin is None:
        if positive_scores is not None:
            raise ValueError("positive_scores needs margin= (the fraction of each anchor's positive score kept)")
        return None
    margin = check_real("margin", margin)
    if positive_scores is None:
        return margin
    pos = as_float_matrix("positive_scores", torch.as_tensor(positive_scores).reshape(-1, 1)).reshape(-1)
    if pos.numel() != n:
        raise ValueError(f"positive_scores must have one score per row ({n}), got {pos.numel()}")
    return margin * pos


_TABLES = {"candidates": candidates_table, "exact": exact_table, "nndescent": nndescent_table, "faiss": faiss_table}


@torch.no_grad()
def _table(a: BuildArgs, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if rows is not None and rows.numel() == 0:
        return (torch.empty((0, a.k - a.skip), dtype=torch.int64, device=a.device),
                torch.empty((0, a.k - a.skip), dtype=score_dtype(a.x.dtype), device=a.device))
    sc = Scorer(a.x, a.metric, a.device, a.ceiling)
    idx, val = _TABLES[resolved_method(a)](sc, a, rows)  # "candidates" with every node a candidate: exact
    if a.skip:  # the rank window: drop each anchor's `skip` most similar candidates
        idx, val = idx[:, a.skip:].contiguous(), val[:, a.skip:].contiguous()
    if a.ceiling is not None:  # slots the ceiling emptied
        gone = torch.isinf(val)
        idx, val = idx.masked_fill(gone, -1), val.masked_fill(gone, 0.0)
    return idx, val


def neighbor_table(embeddings: Any, k: int, *, candidates: int | None = None, method: str = "candidates",
                   metric: str = "cosine", seed: int | None = None, rows: Any = None,
                   self_loops: bool = False, device: Device = None, progress: bool = False,
                   block_size: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE, skip: int = 0,
                   margin: float | None = None, positive_scores: Any = None, faiss_index: str | None = None,
                   faiss_params: str | None = None, distributed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
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
        method: ``"candidates"``, ``"exact"``, ``"nndescent"`` or ``"faiss"``.
        metric: ``"cosine"``, ``"ip"``, ``"euclidean"`` or ``"tanimoto"`` (see :mod:`graphbatch.build.scoring`).
        seed: seed of the candidate draw / nndescent (non-negative int) or ``None``.
        rows: anchor rows (1-D ints, duplicates allowed), default all ``N``.
        self_loops: allow an anchor to be its own neighbour.
        device: compute (and return) on this device; default the embeddings' device.
        progress: show a tqdm progress bar.
        block_size: anchors sharing one candidate pool (``method="candidates"``);
            ``None``: ``(M + 1) // 16``, clipped to ``[1, 1024]``.
        chunk_size: most scores held at once (``method="exact"``).
        skip, margin, positive_scores: the false-negative controls of :func:`build_proximity_graph`.
        faiss_index, faiss_params: the index and search parameters of ``method="faiss"``.
        distributed: a sharded build, as in :func:`build_proximity_graph`.

    Returns:
        ``(index, scores)``: LongTensor ``(R, k)`` of neighbour ids and their
        similarity scores ``(R, k)``, each row sorted by decreasing score. An id of
        ``-1`` (score 0) marks an empty slot: a neighbour pynndescent failed to find
        (rare), or fewer than ``k`` candidates under the ``margin`` ceiling.

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
    a = BuildArgs(embeddings, k, candidates, method, metric, seed, self_loops, device, progress, block_size, chunk_size,
                  skip, margin, positive_scores, faiss_index, faiss_params)
    if check_bool("distributed", distributed) and _world() > 1:
        return _sharded(a, rows)
    if rows is None:
        return _table(a, None)
    r = as_index_tensor("rows", rows, num_nodes=a.n, device=a.device, allow_empty=True)
    uniq, inverse = torch.unique(r, return_inverse=True)
    idx, val = _table(a, uniq)
    return idx[inverse], val[inverse]


def _world() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class TableShare:
    """One rank's part of a sharded neighbour table: computed locally, joined by :meth:`gather`.

    Made by :func:`table_share`. ``error`` holds the exception the local part raised (``None``
    when it succeeded): the caller agrees with the other ranks on success *before* anyone
    gathers, so a failure on one rank never leaves the others waiting in a collective.
    ``rows_scored``: how many anchors this rank scored.
    """

    def __init__(self, a: BuildArgs, rows: torch.Tensor | None, rank: int, world: int) -> None:
        self._n_out = a.n if rows is None else rows.numel()
        self._position = None
        self._inverse = None
        self._uniq = None
        self.error: BaseException | None = None
        self.rows_scored = 0
        self._shares = self._buffers = self._device = None
        try:
            if rows is not None:
                uniq, self._inverse = torch.unique(rows, return_inverse=True)
                self._uniq, self._n_out = uniq, uniq.numel()
            self._shares, idx, val = local_share(a, self._uniq, rank, world, lambda r: _table(a, r))
            self.rows_scored = int(idx.shape[0])
            self._buffers = send_buffers(self._shares, idx, val)
            if self._uniq is not None:  # anchor id -> its row of the table of distinct rows
                self._position = torch.full((a.n,), -1, dtype=torch.int64)
                self._position[self._uniq.cpu()] = torch.arange(self._uniq.numel())
            self._device = idx.device
        except (RuntimeError, ValueError, MemoryError) as exc:  # agreed on by the caller, then raised
            self.error = exc

    def gather(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole table, as :func:`neighbor_table` returns it (a collective: every rank calls it).

        Raises:
            RuntimeError: this rank's local part failed (agree first: then no rank gets here).
        """
        if self.error is not None:
            raise RuntimeError("this rank's share of the build failed") from self.error
        idx, val = gather_shares(self._shares, self._buffers, self._n_out, self._device, self._position)
        if self._inverse is not None:
            idx, val = idx[self._inverse], val[self._inverse]
        return idx, val


def table_share(embeddings: Any, k: int, *, rank: int, world: int, candidates: int | None = None,
                method: str = "candidates", metric: str = "cosine", seed: int | None = None, rows: Any = None,
                self_loops: bool = False, device: Device = None, progress: bool = False,
                block_size: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE, skip: int = 0,
                margin: float | None = None, positive_scores: Any = None, faiss_index: str | None = None,
                faiss_params: str | None = None) -> TableShare:
    """This rank's share of :func:`neighbor_table` (local work only; see :mod:`graphbatch.build.sharded`).

    Same arguments as :func:`neighbor_table`, plus ``rank`` and ``world``. Argument errors raise
    here (they are the same on every rank); a failure of the local work is kept in
    ``TableShare.error`` for the caller to agree on. Then every rank calls ``gather()``.
    """
    a = BuildArgs(embeddings, k, candidates, method, metric, seed, self_loops, device, progress, block_size, chunk_size,
                  skip, margin, positive_scores, faiss_index, faiss_params)
    world = check_int("world", world, low=1)
    rank = check_int("rank", rank, low=0, high=world - 1)
    r = None if rows is None else as_index_tensor("rows", rows, num_nodes=a.n, device=a.device, allow_empty=True)
    return TableShare(a, r, rank, world)


def _sharded(a: BuildArgs, rows: Any) -> tuple[torch.Tensor, torch.Tensor]:
    dist = torch.distributed
    r = None if rows is None else as_index_tensor("rows", rows, num_nodes=a.n, device=a.device, allow_empty=True)
    part = TableShare(a, r, dist.get_rank(), dist.get_world_size())
    if not agree(part.error is None):
        if part.error is not None:
            raise part.error
        raise RuntimeError("the sharded graph build failed on another rank")
    return part.gather()


def build_proximity_graph(embeddings: Any, k: int, *, candidates: int | None = None,
                          method: str = "candidates", metric: str = "cosine", seed: int | None = None,
                          self_loops: bool = False, device: Device = None, progress: bool = False,
                          block_size: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE, skip: int = 0,
                          mutual: bool = False, margin: float | None = None,
                          positive_scores: Any = None, faiss_index: str | None = None,
                          faiss_params: str | None = None, distributed: bool = False) -> ProximityGraph:
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
    exactly in ``metric``. ``candidates`` is ignored by ``"exact"``, ``"nndescent"`` and ``"faiss"``.

    ``method="faiss"``: a faiss index (``faiss_index``, default HNSW; ``"Flat"`` is exact)
    searched for every anchor, for data past what the other methods serve; the scores are
    recomputed exactly in ``metric`` (:mod:`graphbatch.build.faiss_knn`). Needs faiss-cpu or faiss-gpu.

    Self-loops are excluded unless ``self_loops=True`` (then the anchor is always
    one of its own candidates, and usually its own top neighbour for cosine).

    False-negative controls (composable with every method): ``skip`` drops each anchor's
    ``skip`` most similar candidates before taking its top-``k`` (B3's rank window: the
    nearest are the likeliest false negatives), so an anchor links to its candidates of rank
    ``skip + 1 .. skip + k``; ``margin`` drops every candidate more similar than ``margin``
    (an absolute ceiling), or than ``margin * positive_scores[i]`` for anchor ``i`` when the
    similarity of each anchor to its own positive view is given (NV-Retriever's
    positive-aware mining); ``mutual=True`` keeps only the edges present in both directions.

    Args:
        embeddings: ``(N, d)`` torch tensor or numpy array, finite values.
        k: out-degree, ``1 <= k <= N - 1``.
        candidates: ``M`` random candidates per anchor, ``M >= k``; ``None`` = all.
        method: ``"candidates"``, ``"exact"``, ``"nndescent"`` or ``"faiss"``.
        metric: ``"cosine"``, ``"ip"`` (inner product), ``"euclidean"`` (edge value
            ``-|x - y|^2``) or ``"tanimoto"`` (Jaccard's index on 0/1 fingerprints; not with
            ``"nndescent"``).
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
        skip: candidates of the top ranks left out, per anchor (``k + skip <= candidates``).
        mutual: keep only edges present in both directions (weight: the smaller score).
        margin: similarity ceiling (absolute, or a fraction of ``positive_scores``).
        positive_scores: ``(N,)`` similarity of each anchor to its positive (with ``margin``).
        faiss_index: ``method="faiss"``: a ``faiss.index_factory`` string (default ``"HNSW32"``;
            ``"Flat"`` exact, ``"IVF1024,Flat"``).
        faiss_params: ``method="faiss"``: search parameters, e.g. ``"efSearch=128"`` or ``"nprobe=32"``.
        distributed: under an initialised ``torch.distributed`` group of ``W > 1`` ranks, a
            collective build: every rank must call it with the same arguments (and embeddings);
            each scores about ``1 / W`` of the anchors and the table is all-gathered, so the graph
            equals the single-process build bit for bit (:mod:`graphbatch.build.sharded`). Without
            such a group: the plain build.

    Returns:
        :class:`~graphbatch.ProximityGraph` with ``k`` out-edges per node (fewer
        where nndescent found fewer, the margin left fewer, or ``mutual`` dropped some),
        edge values = similarity scores.

    Raises:
        ValueError: NaN/inf or empty embeddings, non-2-D input, ``k`` outside
            ``[1, N - 1]``, ``candidates < k``, unknown ``method``/``metric``, bad rows.
        TypeError: an argument of the wrong type.
        graphbatch.backend.MissingDependencyError: pynndescent missing for ``"nndescent"``, faiss for
            ``"faiss"``.

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
    a = BuildArgs(embeddings, k, candidates, method, metric, seed, self_loops, device, progress, block_size, chunk_size,
                  skip, margin, positive_scores, faiss_index, faiss_params)
    mutual = check_bool("mutual", mutual)
    idx, val = _sharded(a, None) if check_bool("distributed", distributed) and _world() > 1 else _table(a, None)
    graph = _graph_from_table(idx, val, a.n)
    return graph.mutual() if mutual else graph


def _graph_from_table(idx: torch.Tensor, val: torch.Tensor, n: int) -> ProximityGraph:
    direct = table_to_csr(idx, val, n)  # rows of distinct ids: canonical CSR by one sort within rows
    if direct is not None:
        return ProximityGraph._wrap(*direct, n)
    return ProximityGraph.from_neighbors(idx, val, num_nodes=n)
