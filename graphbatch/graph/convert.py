"""Conversions between :class:`~graphbatch.ProximityGraph` and the sparse formats of the ecosystem.

Imports: COO arrays, dense neighbour tables, PyG ``edge_index``, torch sparse
(COO/CSR/CSC/BSR/BSC) and dense tensors, scipy sparse, ``torch_sparse.SparseTensor``,
``cupyx.scipy.sparse`` and networkx. Every import copies the caller's arrays and
never modifies them. Exports copy, except :func:`to_scipy` (read-only views by
default); see the contract in :class:`~graphbatch.ProximityGraph`.
Optional packages (torch-sparse, CuPy) are imported only by the functions that need them.

Example:
    >>> import torch
    >>> from graphbatch import ProximityGraph
    >>> g = ProximityGraph.from_edge_index(torch.tensor([[0, 1, 1], [1, 0, 2]]), num_nodes=3)
    >>> ei, w = g.to_edge_index()
    >>> ei.tolist(), w.tolist()
    ([[0, 1, 1], [1, 0, 2]], [1.0, 1.0, 1.0])
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import backend
from .._validation import as_index_tensor, check_int, describe
from ._csr import check_values, coalesced_csr, is_canonical_csr, rows_of, sparse_csr_tensor, to_tensor

__all__ = [
    "from_coo", "from_neighbors", "from_edge_index", "from_torch", "from_scipy", "from_torch_sparse",
    "from_cupy", "from_networkx", "to_torch", "to_torch_coo", "to_edge_index", "to_scipy",
    "to_torch_sparse", "to_cupy", "cupy_csr", "to_networkx", "to_dense",
]


# ------------------------------------------------------------------------------------ imports
def from_coo(cls: type, row: Any, col: Any, values: Any = None, num_nodes: int | None = None) -> Any:
    """COO arrays (any order; duplicate edges summed) -> graph; ``num_nodes`` defaults to max index + 1."""
    r = as_index_tensor("row", to_tensor("row", row), allow_empty=True)
    c = as_index_tensor("col", to_tensor("col", col), device=r.device, allow_empty=True)
    if r.numel() != c.numel():
        raise ValueError(f"row and col must have the same length, got {r.numel()} and {c.numel()}")
    if num_nodes is None:
        num_nodes = int(max(int(r.max()), int(c.max())) + 1) if r.numel() else 0
    n = check_int("num_nodes", num_nodes, low=0)
    for name, t in (("row", r), ("col", c)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
            raise ValueError(f"{name} must hold indices in [0, num_nodes={n}), got {int(t.min())}..{int(t.max())}")
    if values is None:
        v = torch.ones(r.numel(), dtype=torch.float32, device=r.device)
    else:
        v = check_values("values", to_tensor("values", values), r.numel()).to(r.device)
    crow, col_s, val = coalesced_csr(r, c, v, n)
    return cls._wrap(crow, col_s, val, n)


def from_neighbors(cls: type, index: Any, scores: Any = None, num_nodes: int | None = None) -> Any:
    """A dense top-K neighbour table -> graph.

    Row ``i`` of ``index`` lists the neighbours of node ``i``; ``-1`` marks an empty
    slot. Repeated neighbours in a row are merged (their scores summed). When every
    slot is filled and each row's neighbours are distinct, the CSR is built directly
    (one sort within rows, no global sort).

    Args:
        cls: the graph class.
        index: ``(N, K)`` integer neighbour table.
        scores: ``(N, K)`` edge weights (e.g. similarities); ``None`` for ones.
        num_nodes: number of nodes, default ``N``.

    Raises:
        ValueError: wrong shapes, indices outside ``[-1, num_nodes)``, non-finite scores.
    """
    idx = to_tensor("index", index)
    if idx.dim() != 2:
        raise ValueError(f"index must be 2-D (N, K), got shape {tuple(idx.shape)}")
    if idx.is_floating_point() or idx.dtype == torch.bool:
        raise TypeError(f"index must hold integers, got dtype {idx.dtype}")
    n_rows, k = idx.shape
    n = check_int("num_nodes", n_rows if num_nodes is None else num_nodes, low=n_rows)
    idx = idx.to(torch.int64)
    if idx.numel() and (int(idx.min()) < -1 or int(idx.max()) >= n):
        raise ValueError(f"index must hold entries in [-1, {n}), got {int(idx.min())}..{int(idx.max())}")
    if scores is None:
        sc = torch.ones(idx.shape, dtype=torch.float32, device=idx.device)
    else:
        sc = to_tensor("scores", scores)
        if tuple(sc.shape) != tuple(idx.shape):
            raise ValueError(f"scores must have the shape of index {tuple(idx.shape)}, got {tuple(sc.shape)}")
        sc = check_values("scores", sc.reshape(-1), sc.numel()).reshape(idx.shape).to(idx.device)
    direct = table_to_csr(idx, sc, n)
    if direct is not None:
        return cls._wrap(*direct, n)
    row = torch.arange(n_rows, device=idx.device).repeat_interleave(k)
    flat = idx.reshape(-1)
    keep = flat >= 0
    return from_coo(cls, row[keep], flat[keep], sc.reshape(-1)[keep], n)


#: Rows sorted at once by :func:`sort_table_rows` (bounds its temporaries to a few MiB per 64 columns).
TABLE_CHUNK_ROWS = 1 << 16


def sort_table_rows(idx: torch.Tensor, sc: torch.Tensor, out_idx: torch.Tensor, out_sc: torch.Tensor,
                    anchors: torch.Tensor | None = None) -> bool:
    """Sort each row of a neighbour table by id into ``out_idx``/``out_sc`` (may be ``idx``/``sc``).

    Rows are sorted in chunks of :data:`TABLE_CHUNK_ROWS`, so the temporaries stay small.

    Args:
        idx: ``(R, K)`` int64 neighbour ids.
        sc: ``(R, K)`` scores.
        out_idx, out_sc: outputs of the same shapes (``idx`` and ``sc`` themselves: in place).
        anchors: the node of each row; a row holding its own node is then rejected.

    Returns:
        ``False`` when a slot is empty (``-1``), a row repeats an id or holds its anchor; the
        outputs are then partly written (each written row a permutation of its input row).
    """
    r, k = idx.shape
    for a in range(0, r, TABLE_CHUNK_ROWS):
        b = min(r, a + TABLE_CHUNK_ROWS)
        c, order = torch.sort(idx[a:b], dim=1)
        if bool((c[:, 0] < 0).any()) or (k > 1 and bool((c[:, 1:] == c[:, :-1]).any())):
            return False
        if anchors is not None and bool((c == anchors[a:b, None]).any()):
            return False
        out_sc[a:b] = torch.gather(sc[a:b], 1, order)
        out_idx[a:b] = c
    return True


def table_to_csr(idx: torch.Tensor, sc: torch.Tensor, n: int, *, inplace: bool = False,
                 self_loops: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Canonical CSR of a full ``(R, K)`` table with distinct entries per row (``R <= n`` rows), else ``None``.

    One sort within each row (:func:`sort_table_rows`) replaces the global COO sort and
    de-duplication; the result takes ``R K`` ids and values more (nothing more with ``inplace``).

    Args:
        idx: ``(R, K)`` int64 neighbour ids; row ``i`` lists the neighbours of node ``i``.
        sc: ``(R, K)`` scores.
        n: number of nodes.
        inplace: sort ``idx`` and ``sc`` in place and return views of them (the caller owns
            both); after a ``None`` their rows may be permuted.
        self_loops: ``False``: a row holding its own node gives ``None`` too.

    Returns:
        ``(crow, col, values)``, or ``None`` (an empty slot, a repeated id in a row, a refused self-loop).
    """
    r, k = idx.shape
    if k == 0 or r == 0:
        return None
    col = idx if inplace else torch.empty_like(idx)
    values = sc if inplace else torch.empty_like(sc)
    anchors = None if self_loops else torch.arange(r, device=idx.device)
    if not sort_table_rows(idx, sc, col, values, anchors):
        return None
    crow = torch.zeros(n + 1, dtype=torch.int64, device=idx.device)
    crow[1:r + 1] = torch.arange(k, r * k + 1, k, dtype=torch.int64, device=idx.device)
    crow[r + 1:] = r * k
    return crow, col.reshape(-1), values.reshape(-1)


def from_edge_index(cls: type, edge_index: Any, edge_weight: Any = None, num_nodes: int | None = None) -> Any:
    """A PyG-style ``(2, E)`` ``edge_index`` (source row 0, target row 1) -> graph."""
    ei = to_tensor("edge_index", edge_index)
    if ei.dim() != 2 or ei.shape[0] != 2:
        raise ValueError(f"edge_index must have shape (2, E), got {tuple(ei.shape)}")
    if edge_weight is not None:
        w = to_tensor("edge_weight", edge_weight)
        if w.dim() != 1 or w.numel() != ei.shape[1]:
            raise ValueError(f"edge_weight must have shape ({ei.shape[1]},), got {tuple(w.shape)}")
        edge_weight = w
    return from_coo(cls, ei[0], ei[1], edge_weight, num_nodes)


def from_torch(cls: type, tensor: torch.Tensor) -> Any:
    """A square torch sparse tensor (any layout) or dense square tensor -> graph."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {describe(tensor)}")
    if tensor.dim() != 2 or tensor.shape[0] != tensor.shape[1]:
        raise ValueError(f"tensor must be square 2-D, got shape {tuple(tensor.shape)}")
    n = tensor.shape[0]
    if tensor.layout == torch.sparse_csr:
        crow, col = tensor.crow_indices(), tensor.col_indices()
        if is_canonical_csr(crow, col):
            return cls(crow, col, tensor.values(), n)
        return from_torch(cls, tensor.to_sparse_coo())
    if tensor.layout == torch.sparse_coo:
        t = tensor.coalesce()
        return from_coo(cls, t.indices()[0], t.indices()[1], t.values(), n)
    if tensor.layout in (torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc):
        return from_torch(cls, tensor.to_sparse_coo())
    if tensor.layout == torch.strided:
        idx = tensor.nonzero().t()
        return from_coo(cls, idx[0], idx[1], tensor[idx[0], idx[1]], n)
    raise TypeError(f"tensor has an unsupported layout {tensor.layout}")


def from_scipy(cls: type, m: Any, device: Any = None) -> Any:
    """A square scipy sparse matrix or array (any format; explicit zeros kept) -> graph (copied)."""
    import scipy.sparse as sp

    if not sp.issparse(m):
        raise TypeError(f"m must be a scipy sparse matrix, got {describe(m)}")
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"m must be square, got shape {m.shape}")
    csr = m.tocsr(copy=False)
    if not csr.has_canonical_format:
        csr = csr.copy()  # sum_duplicates sorts in place: never on the caller's matrix
        csr.sum_duplicates()
    data = np.asarray(csr.data)
    dtype = data.dtype if np.issubdtype(data.dtype, np.floating) else np.float32
    # np.array copies: the graph owns its arrays (and the caller's may be read-only)
    g = cls._adopt(torch.from_numpy(np.array(csr.indptr, dtype=np.int64)),
                   torch.from_numpy(np.array(csr.indices, dtype=np.int64)),
                   torch.from_numpy(np.array(data, dtype=dtype)), csr.shape[0])
    return g.to(device) if device is not None else g


def from_torch_sparse(cls: type, m: Any) -> Any:
    """A ``torch_sparse.SparseTensor`` -> graph (needs the optional ``torch-sparse``)."""
    ts = backend.require("torch_sparse", "SparseTensor interop")
    if not isinstance(m, ts.SparseTensor):
        raise TypeError(f"m must be a torch_sparse.SparseTensor, got {describe(m)}")
    rows, cols = m.sparse_sizes()
    if rows != cols:
        raise ValueError(f"m must be square, got sparse sizes {(rows, cols)}")
    crow, col, val = m.csr()
    return cls(crow, col, val, rows)


def from_cupy(cls: type, m: Any) -> Any:
    """A ``cupyx.scipy.sparse`` matrix -> graph on the same GPU (copied; ``m`` is not modified)."""
    backend.require("cupy", "cupyx sparse interop")
    cpsp = backend.require("cupyx.scipy.sparse", "cupyx sparse interop")
    if not cpsp.issparse(m):
        raise TypeError(f"m must be a cupyx.scipy.sparse matrix, got {describe(m)}")
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"m must be square, got shape {m.shape}")
    csr = m.tocsr(copy=True)
    csr.sum_duplicates()  # sorts the copy's indices; a no-op when canonical
    return cls(torch.from_dlpack(csr.indptr).to(torch.int64), torch.from_dlpack(csr.indices).to(torch.int64),
               torch.from_dlpack(csr.data), m.shape[0])


def from_networkx(cls: type, g: Any, weight: str | None = "weight", default: float = 1.0,
                  nodelist: list | None = None) -> Any:
    """A networkx graph -> graph; undirected graphs give both directions of each edge.

    Node ``nodelist[i]`` (default: ``sorted(g)`` when sortable, else insertion order) becomes node ``i``.
    """
    import networkx as nx

    if not isinstance(g, nx.Graph):
        raise TypeError(f"g must be a networkx graph, got {describe(g)}")
    if nodelist is None:
        try:
            nodelist = sorted(g.nodes)
        except TypeError:
            nodelist = list(g.nodes)
    pos = {u: i for i, u in enumerate(nodelist)}
    if len(pos) != g.number_of_nodes() or len(nodelist) != len(pos):
        raise ValueError("nodelist must list every node of g exactly once")
    rows, cols, vals = [], [], []
    for u, v, d in g.edges(data=True):
        w = float(d.get(weight, default)) if weight is not None else float(default)
        rows.append(pos[u])
        cols.append(pos[v])
        vals.append(w)
        if not g.is_directed() and u != v:
            rows.append(pos[v])
            cols.append(pos[u])
            vals.append(w)
    return from_coo(cls, torch.tensor(rows, dtype=torch.int64), torch.tensor(cols, dtype=torch.int64),
                    torch.tensor(vals, dtype=torch.float64), len(nodelist))


# ------------------------------------------------------------------------------------ exports
def to_torch(g: Any) -> torch.Tensor:
    """Torch sparse CSR tensor (a copy)."""
    return sparse_csr_tensor(g.crow.clone(), g.col.clone(), g.values.clone(), (g.num_nodes, g.num_nodes))


def to_torch_coo(g: Any) -> torch.Tensor:
    """Coalesced torch sparse COO tensor (a copy)."""
    idx = torch.stack([g.row(), g.col])
    return torch.sparse_coo_tensor(idx, g.values.clone(), (g.num_nodes,) * 2, is_coalesced=True,
                                   check_invariants=False)


def to_edge_index(g: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edge_index, edge_weight)`` in PyG's convention, edges sorted by (source, target) (copies)."""
    return torch.stack([g.row(), g.col]), g.values.clone()


def to_scipy(g: Any, *, copy: bool = False) -> Any:
    """scipy ``csr_matrix`` with sorted indices.

    ``copy=False`` (default): the matrix's arrays are read-only (for a CPU graph its data
    array is a view of the graph's weights; the index arrays are scipy's own int32 copies
    when they fit); writing to them raises ``ValueError``. ``copy=True``: writable copies.
    """
    import scipy.sparse as sp

    h = g.to("cpu")
    arrays = [h.values.numpy(), h.col.numpy(), h.crow.numpy()]
    if copy:
        arrays = [a.copy() for a in arrays]
    m = sp.csr_matrix(tuple(arrays), shape=(g.num_nodes, g.num_nodes))
    m.has_sorted_indices = True
    if not copy:
        for a in (m.data, m.indices, m.indptr):
            a.flags.writeable = False
    return m


def to_torch_sparse(g: Any) -> Any:
    """``torch_sparse.SparseTensor`` (a copy; needs the optional ``torch-sparse``)."""
    ts = backend.require("torch_sparse", "SparseTensor interop")
    return ts.SparseTensor(rowptr=g.crow.clone(), col=g.col.clone(), value=g.values.clone(),
                           sparse_sizes=(g.num_nodes, g.num_nodes), is_sorted=True, trust_data=True)


def to_cupy(g: Any) -> Any:
    """``cupyx.scipy.sparse.csr_matrix`` on the graph's GPU (a copy; int32 indices, as cuSPARSE wants).

    A CPU graph is first copied to the current CUDA device. The matrix is built with that GPU
    as CuPy's current device (CuPy's own stream and memory pool, as any CuPy array).
    """
    cp = backend.require("cupy", "cupyx sparse interop")
    h = g if g.device.type == "cuda" else g.to("cuda")
    with cp.cuda.Device(h.device.index):
        return cupy_csr(h)


def cupy_csr(g: Any) -> Any:
    """The graph as a ``cupyx.scipy.sparse.csr_matrix`` built from its arrays where they are (copies).

    No device change: the caller picks CuPy's device, stream and allocator (``to_cupy`` for users,
    the CuPy RWR engine inside its scope). The arrays cross by DLPack (int32 indices for cuSPARSE).

    Raises:
        ValueError: more than ``2**31 - 1`` nodes or edges (int32 indices).
    """
    cp = backend.require("cupy", "cupyx sparse interop")
    cpsp = backend.require("cupyx.scipy.sparse", "cupyx sparse interop")
    if g.num_nodes >= 2**31 or g.nnz >= 2**31:
        raise ValueError("graph too large for CuPy's int32 CSR indices")
    data = cp.from_dlpack(g.values.clone())
    indices = cp.from_dlpack(g.col.to(torch.int32))
    indptr = cp.from_dlpack(g.crow.to(torch.int32))
    return cpsp.csr_matrix((data, indices, indptr), shape=(g.num_nodes, g.num_nodes))


def to_networkx(g: Any, weight: str = "weight") -> Any:
    """``networkx.DiGraph`` with nodes ``0..num_nodes-1`` and the weights under ``weight``."""
    import networkx as nx

    out = nx.DiGraph()
    out.add_nodes_from(range(g.num_nodes))
    ei, w = to_edge_index(g)
    ei, w = ei.cpu().tolist(), w.cpu().tolist()
    out.add_weighted_edges_from(zip(ei[0], ei[1], w), weight=weight)
    return out


def to_dense(g: Any) -> torch.Tensor:
    """Dense ``(N, N)`` weight matrix (small graphs only)."""
    out = torch.zeros((g.num_nodes, g.num_nodes), dtype=g.dtype, device=g.device)
    out[rows_of(g.crow), g.col] = g.values
    return out
