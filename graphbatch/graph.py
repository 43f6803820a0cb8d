"""The proximity graph: a CSR sparse matrix over the training instances.

Row ``i`` holds the out-edges of instance ``i`` (its proximity neighbours),
values are edge weights (similarities). The graph lives on one torch device
and is immutable in use: every operation returns a new graph, and the
tensors it exposes must not be modified in place.

The CSR arrays are always *canonical*: ``crow`` is non-decreasing from 0 to
``nnz``; within a row the column indices are strictly increasing (sorted, no
duplicates); all indices lie in ``[0, num_nodes)``; values are finite.
Constructors canonicalise (sort, and sum duplicate edges, as scipy and PyG's
``coalesce`` do) so everything downstream can rely on this.

Interop (``from_*`` / ``to_*``): dense neighbour tables, PyG ``edge_index``,
torch sparse COO/CSR, scipy sparse, ``torch_sparse.SparseTensor``, cupyx
sparse and networkx. Conversions that can share memory do (torch CSR, scipy
CSR on CPU via numpy, DLPack between torch CUDA and CuPy); the rest copy.

Example:
    >>> import torch
    >>> from graphbatch import ProximityGraph
    >>> g = ProximityGraph.from_neighbors(torch.tensor([[1, 2], [2, 0], [0, 1]]))
    >>> g.num_nodes, g.nnz
    (3, 6)
    >>> g.out_degree().tolist()
    [2, 2, 2]
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Union

import numpy as np
import torch

from . import backend
from ._validation import as_index_tensor, check_int

__all__ = ["ProximityGraph"]

_FORMAT = "graphbatch.ProximityGraph"
_FORMAT_VERSION = 1

Device = Union[str, torch.device, None]


def _to_tensor(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, (list, tuple)):
        return torch.as_tensor(np.asarray(value))
    raise TypeError(f"{name} must be a torch.Tensor, numpy.ndarray or sequence, got {type(value).__name__}")


def _check_values(name: str, values: torch.Tensor, nnz: int) -> torch.Tensor:
    if values.dim() != 1 or values.numel() != nnz:
        raise ValueError(f"{name} must be 1-D with one value per edge ({nnz}), got shape {tuple(values.shape)}")
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {values.dtype}")
    if not values.is_floating_point():
        values = values.to(torch.float32)
    if nnz and not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return values


def _coalesced_csr(row: torch.Tensor, col: torch.Tensor, val: torch.Tensor,
                   num_nodes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort COO edges by (row, col), sum duplicates, and return canonical CSR arrays."""
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
    counts = torch.bincount(row, minlength=num_nodes)
    crow = torch.zeros(num_nodes + 1, dtype=torch.int64, device=device)
    torch.cumsum(counts, 0, out=crow[1:])
    return crow, col.to(torch.int64), val


class ProximityGraph:
    """A weighted directed graph over ``num_nodes`` instances, stored as CSR on a torch device.

    Use the ``from_*`` constructors or :func:`graphbatch.build_proximity_graph`;
    the plain constructor takes CSR arrays and checks (by default) that they are
    canonical.

    Args:
        crow: ``(num_nodes + 1,)`` row pointers.
        col: ``(nnz,)`` column indices, sorted and unique within each row.
        values: ``(nnz,)`` finite edge weights (float); ``None`` means all ones.
        num_nodes: number of instances (rows and columns).
        check: verify the arrays are canonical (O(nnz)); turn off only for arrays
            produced by graphbatch itself.

    Raises:
        ValueError: the arrays are inconsistent, unsorted, out of range or non-finite.
        TypeError: an argument has the wrong type.
    """

    __slots__ = ("_crow", "_col", "_values", "_num_nodes")

    def __init__(self, crow: Any, col: Any, values: Any = None, num_nodes: int | None = None,
                 *, check: bool = True) -> None:
        crow_t = _to_tensor("crow", crow)
        col_t = _to_tensor("col", col)
        if crow_t.dim() != 1 or crow_t.numel() < 1:
            raise ValueError(f"crow must be 1-D with num_nodes + 1 entries, got shape {tuple(crow_t.shape)}")
        if num_nodes is None:
            num_nodes = crow_t.numel() - 1
        n = check_int("num_nodes", num_nodes, low=0)
        if crow_t.numel() != n + 1:
            raise ValueError(f"crow must have num_nodes + 1 = {n + 1} entries, got {crow_t.numel()}")
        if col_t.dim() != 1:
            raise ValueError(f"col must be 1-D, got shape {tuple(col_t.shape)}")
        for name, t in (("crow", crow_t), ("col", col_t)):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
        device = crow_t.device
        crow_t = crow_t.to(torch.int64)
        col_t = col_t.to(device=device, dtype=torch.int64)
        nnz = col_t.numel()
        if values is None:
            val_t = torch.ones(nnz, dtype=torch.float32, device=device)
        else:
            val_t = _check_values("values", _to_tensor("values", values), nnz).to(device)
        if check:
            if int(crow_t[0]) != 0 or int(crow_t[-1]) != nnz:
                raise ValueError(f"crow must start at 0 and end at nnz={nnz}, got {int(crow_t[0])}..{int(crow_t[-1])}")
            if n and bool((crow_t[1:] < crow_t[:-1]).any()):
                raise ValueError("crow must be non-decreasing")
            if nnz:
                if int(col_t.min()) < 0 or int(col_t.max()) >= n:
                    raise ValueError(f"col holds indices outside [0, {n})")
                row = torch.repeat_interleave(torch.arange(n, device=device), crow_t[1:] - crow_t[:-1])
                same_row = row[1:] == row[:-1]
                if bool((same_row & (col_t[1:] <= col_t[:-1])).any()):
                    raise ValueError("col must be strictly increasing within each row (sorted, no duplicate edges)")
        self._crow, self._col, self._values, self._num_nodes = crow_t, col_t, val_t, n

    # ------------------------------------------------------------------ basics
    @property
    def num_nodes(self) -> int:
        """Number of instances (rows = columns)."""
        return self._num_nodes

    @property
    def nnz(self) -> int:
        """Number of stored edges."""
        return int(self._col.numel())

    @property
    def crow(self) -> torch.Tensor:
        """Row pointers, int64, ``(num_nodes + 1,)``. Do not modify."""
        return self._crow

    @property
    def col(self) -> torch.Tensor:
        """Column indices, int64, ``(nnz,)``. Do not modify."""
        return self._col

    @property
    def values(self) -> torch.Tensor:
        """Edge weights, ``(nnz,)``. Do not modify."""
        return self._values

    @property
    def device(self) -> torch.device:
        """The torch device the arrays live on."""
        return self._crow.device

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the edge weights."""
        return self._values.dtype

    def row(self) -> torch.Tensor:
        """Row index of every edge (COO rows), int64 ``(nnz,)``."""
        return torch.repeat_interleave(torch.arange(self._num_nodes, device=self.device), self.out_degree())

    def __repr__(self) -> str:
        return (f"ProximityGraph(num_nodes={self._num_nodes}, nnz={self.nnz}, "
                f"dtype={self.dtype}, device={self.device})")

    def _new(self, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor) -> ProximityGraph:
        return ProximityGraph(crow, col, values, self._num_nodes, check=False)

    def to(self, device: Device = None, dtype: torch.dtype | None = None) -> ProximityGraph:
        """Return the graph on ``device`` with weights of ``dtype`` (self when nothing changes)."""
        device = torch.device(device) if device is not None else self.device
        dtype = dtype or self.dtype
        if device == self.device and dtype == self.dtype:
            return self
        return ProximityGraph(self._crow.to(device), self._col.to(device),
                              self._values.to(device=device, dtype=dtype), self._num_nodes, check=False)

    def equal(self, other: ProximityGraph, *, atol: float = 0.0) -> bool:
        """Same structure and (within ``atol``) same weights; devices may differ."""
        if not isinstance(other, ProximityGraph) or other.num_nodes != self.num_nodes or other.nnz != self.nnz:
            return False
        o = other.to(self.device)
        if not (torch.equal(self._crow, o.crow) and torch.equal(self._col, o.col)):
            return False
        return bool(torch.allclose(self._values.double(), o.values.double(), rtol=0.0, atol=atol))

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_coo(cls, row: Any, col: Any, values: Any = None, num_nodes: int | None = None) -> ProximityGraph:
        """Build from COO arrays (any order; duplicate edges are summed).

        Args:
            row: ``(nnz,)`` source nodes.
            col: ``(nnz,)`` target nodes.
            values: ``(nnz,)`` weights, or ``None`` for ones.
            num_nodes: number of nodes; inferred as ``max index + 1`` when ``None``.
        """
        r = as_index_tensor("row", _to_tensor("row", row), allow_empty=True)
        c = as_index_tensor("col", _to_tensor("col", col), device=r.device, allow_empty=True)
        if r.numel() != c.numel():
            raise ValueError(f"row and col must have the same length, got {r.numel()} and {c.numel()}")
        if num_nodes is None:
            num_nodes = int(max(int(r.max()), int(c.max())) + 1) if r.numel() else 0
        n = check_int("num_nodes", num_nodes, low=0)
        for name, t in (("row", r), ("col", c)):
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
                raise ValueError(f"{name} holds indices outside [0, num_nodes={n})")
        if values is None:
            v = torch.ones(r.numel(), dtype=torch.float32, device=r.device)
        else:
            v = _check_values("values", _to_tensor("values", values), r.numel()).to(r.device)
        crow, col_s, val = _coalesced_csr(r, c, v, n)
        return cls(crow, col_s, val, n, check=False)

    @classmethod
    def from_neighbors(cls, index: Any, scores: Any = None, *, num_nodes: int | None = None) -> ProximityGraph:
        """Build from a dense top-K neighbour table.

        Row ``i`` of ``index`` lists the neighbours of node ``i``; ``-1`` marks an
        empty slot (fewer than K neighbours). Repeated neighbours in a row are
        merged (their scores summed).

        Args:
            index: ``(N, K)`` integer neighbour table.
            scores: ``(N, K)`` edge weights (e.g. similarities); ``None`` for ones.
            num_nodes: number of nodes, default ``N``.

        Raises:
            ValueError: wrong shapes, indices outside ``[-1, num_nodes)``, non-finite scores.
        """
        idx = _to_tensor("index", index)
        if idx.dim() != 2:
            raise ValueError(f"index must be 2-D (N, K), got shape {tuple(idx.shape)}")
        if idx.is_floating_point() or idx.dtype == torch.bool:
            raise TypeError(f"index must hold integers, got dtype {idx.dtype}")
        n_rows, k = idx.shape
        n = check_int("num_nodes", n_rows if num_nodes is None else num_nodes, low=n_rows)
        idx = idx.to(torch.int64)
        if idx.numel() and (int(idx.min()) < -1 or int(idx.max()) >= n):
            raise ValueError(f"index holds entries outside [-1, {n})")
        if scores is None:
            sc = torch.ones(idx.shape, dtype=torch.float32, device=idx.device)
        else:
            sc = _to_tensor("scores", scores)
            if tuple(sc.shape) != tuple(idx.shape):
                raise ValueError(f"scores must have the shape of index {tuple(idx.shape)}, got {tuple(sc.shape)}")
            sc = _check_values("scores", sc.reshape(-1), sc.numel()).reshape(idx.shape).to(idx.device)
        row = torch.arange(n_rows, device=idx.device).repeat_interleave(k)
        flat = idx.reshape(-1)
        keep = flat >= 0
        return cls.from_coo(row[keep], flat[keep], sc.reshape(-1)[keep], n)

    @classmethod
    def from_edge_index(cls, edge_index: Any, edge_weight: Any = None,
                        num_nodes: int | None = None) -> ProximityGraph:
        """Build from a PyG-style ``(2, E)`` ``edge_index`` (source row 0, target row 1)."""
        ei = _to_tensor("edge_index", edge_index)
        if ei.dim() != 2 or ei.shape[0] != 2:
            raise ValueError(f"edge_index must have shape (2, E), got {tuple(ei.shape)}")
        if edge_weight is not None:
            w = _to_tensor("edge_weight", edge_weight)
            if w.dim() != 1 or w.numel() != ei.shape[1]:
                raise ValueError(f"edge_weight must have shape ({ei.shape[1]},), got {tuple(w.shape)}")
            edge_weight = w
        return cls.from_coo(ei[0], ei[1], edge_weight, num_nodes)

    @classmethod
    def from_torch(cls, tensor: torch.Tensor) -> ProximityGraph:
        """Build from a square torch sparse tensor (COO, CSR or CSC) or a dense square tensor."""
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dim() != 2 or tensor.shape[0] != tensor.shape[1]:
            raise ValueError(f"tensor must be square 2-D, got shape {tuple(tensor.shape)}")
        n = tensor.shape[0]
        if tensor.layout == torch.sparse_csr:
            return cls(tensor.crow_indices(), tensor.col_indices(), tensor.values(), n) \
                if _is_canonical_csr(tensor) else cls.from_torch(tensor.to_sparse_coo())
        if tensor.layout == torch.sparse_coo:
            t = tensor.coalesce()
            return cls.from_coo(t.indices()[0], t.indices()[1], t.values(), n)
        if tensor.layout in (torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc):
            return cls.from_torch(tensor.to_sparse_coo())
        if tensor.layout == torch.strided:
            idx = tensor.nonzero().t()
            return cls.from_coo(idx[0], idx[1], tensor[idx[0], idx[1]], n)
        raise TypeError(f"unsupported tensor layout {tensor.layout}")

    @classmethod
    def from_scipy(cls, m: Any, device: Device = None) -> ProximityGraph:
        """Build from a square scipy sparse matrix or array (any format); explicit zeros are kept."""
        import scipy.sparse as sp

        if not sp.issparse(m):
            raise TypeError(f"m must be a scipy sparse matrix, got {type(m).__name__}")
        if m.shape[0] != m.shape[1]:
            raise ValueError(f"m must be square, got shape {m.shape}")
        csr = m.tocsr(copy=False)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        data = np.asarray(csr.data)
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float32)
        g = cls(torch.from_numpy(np.asarray(csr.indptr).astype(np.int64, copy=False)),
                torch.from_numpy(np.asarray(csr.indices).astype(np.int64, copy=False)),
                torch.from_numpy(data), csr.shape[0])
        return g.to(device) if device is not None else g

    @classmethod
    def from_torch_sparse(cls, m: Any) -> ProximityGraph:
        """Build from a ``torch_sparse.SparseTensor`` (needs the optional ``torch-sparse``)."""
        ts = backend.require("torch_sparse", "SparseTensor interop")
        if not isinstance(m, ts.SparseTensor):
            raise TypeError(f"m must be a torch_sparse.SparseTensor, got {type(m).__name__}")
        rows, cols = m.sparse_sizes()
        if rows != cols:
            raise ValueError(f"m must be square, got sparse sizes {(rows, cols)}")
        crow, col, val = m.csr()
        return cls(crow, col, val, rows)

    @classmethod
    def from_cupy(cls, m: Any) -> ProximityGraph:
        """Build from a ``cupyx.scipy.sparse`` matrix; arrays cross to torch CUDA via DLPack."""
        backend.require("cupy", "cupyx sparse interop")
        cpsp = backend.require("cupyx.scipy.sparse", "cupyx sparse interop")
        if not cpsp.issparse(m):
            raise TypeError(f"m must be a cupyx.scipy.sparse matrix, got {type(m).__name__}")
        if m.shape[0] != m.shape[1]:
            raise ValueError(f"m must be square, got shape {m.shape}")
        csr = m.tocsr()
        csr.sum_duplicates()  # also sorts indices; no-op when canonical
        return cls(torch.from_dlpack(csr.indptr).to(torch.int64), torch.from_dlpack(csr.indices).to(torch.int64),
                   torch.from_dlpack(csr.data), m.shape[0])

    @classmethod
    def from_networkx(cls, g: Any, weight: str | None = "weight", default: float = 1.0,
                      nodelist: list | None = None) -> ProximityGraph:
        """Build from a networkx graph; node ``nodelist[i]`` (default: ``sorted(g)`` if sortable) becomes node i.

        Undirected graphs give both directions of each edge.
        """
        import networkx as nx

        if not isinstance(g, nx.Graph):
            raise TypeError(f"g must be a networkx graph, got {type(g).__name__}")
        if nodelist is None:
            try:
                nodelist = sorted(g.nodes)
            except TypeError:
                nodelist = list(g.nodes)
        pos = {u: i for i, u in enumerate(nodelist)}
        if len(pos) != g.number_of_nodes():
            raise ValueError("nodelist must list every node of g exactly once")
        rows, cols, vals = [], [], []
        for u, v, d in g.edges(data=True):
            w = float(d.get(weight, default)) if weight is not None else float(default)
            rows.append(pos[u]); cols.append(pos[v]); vals.append(w)
            if not g.is_directed() and u != v:
                rows.append(pos[v]); cols.append(pos[u]); vals.append(w)
        return cls.from_coo(torch.tensor(rows, dtype=torch.int64), torch.tensor(cols, dtype=torch.int64),
                            torch.tensor(vals, dtype=torch.float64), len(nodelist))

    # ----------------------------------------------------------------- exports
    def to_torch(self) -> torch.Tensor:
        """Torch sparse CSR tensor sharing this graph's arrays."""
        with warnings.catch_warnings():  # torch warns that sparse CSR is "beta" on every construction
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self._crow, self._col, self._values,
                                           (self._num_nodes, self._num_nodes), check_invariants=False)

    def to_torch_coo(self) -> torch.Tensor:
        """Coalesced torch sparse COO tensor (copies the indices)."""
        idx = torch.stack([self.row(), self._col])
        return torch.sparse_coo_tensor(idx, self._values, (self._num_nodes,) * 2, is_coalesced=True,
                                       check_invariants=False)

    def to_edge_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(edge_index, edge_weight)`` in PyG's convention, edges sorted by (source, target)."""
        return torch.stack([self.row(), self._col]), self._values

    def to_scipy(self) -> Any:
        """scipy ``csr_matrix`` (shares memory with a CPU graph; a GPU graph is copied to host)."""
        import scipy.sparse as sp

        g = self.to("cpu")
        m = sp.csr_matrix((g.values.numpy(), g.col.numpy(), g.crow.numpy()),
                          shape=(self._num_nodes, self._num_nodes))
        m.has_sorted_indices = True
        return m

    def to_torch_sparse(self) -> Any:
        """``torch_sparse.SparseTensor`` (needs the optional ``torch-sparse``)."""
        ts = backend.require("torch_sparse", "SparseTensor interop")
        return ts.SparseTensor(rowptr=self._crow, col=self._col, value=self._values,
                               sparse_sizes=(self._num_nodes, self._num_nodes), is_sorted=True, trust_data=True)

    def to_cupy(self) -> Any:
        """``cupyx.scipy.sparse.csr_matrix`` on the GPU.

        The weights cross from torch CUDA by DLPack without a copy; CuPy wants
        int32 indices, so the index arrays are converted (a copy). A CPU graph
        is first moved to the current CUDA device.
        """
        cp = backend.require("cupy", "cupyx sparse interop")
        cpsp = backend.require("cupyx.scipy.sparse", "cupyx sparse interop")
        g = self if self.device.type == "cuda" else self.to("cuda")
        if self._num_nodes >= 2**31 or self.nnz >= 2**31:
            raise ValueError("graph too large for CuPy's int32 CSR indices")
        data = cp.from_dlpack(g.values)
        indices = cp.from_dlpack(g.col.to(torch.int32))
        indptr = cp.from_dlpack(g.crow.to(torch.int32))
        return cpsp.csr_matrix((data, indices, indptr), shape=(self._num_nodes, self._num_nodes))

    def to_networkx(self, weight: str = "weight") -> Any:
        """``networkx.DiGraph`` with nodes ``0..num_nodes-1`` and the weights under ``weight``."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(range(self._num_nodes))
        ei, w = self.to_edge_index()
        ei, w = ei.cpu().tolist(), w.cpu().tolist()
        g.add_weighted_edges_from(zip(ei[0], ei[1], w), weight=weight)
        return g

    def to_dense(self) -> torch.Tensor:
        """Dense ``(N, N)`` weight matrix (small graphs only)."""
        return self.to_torch().to_dense()

    # --------------------------------------------------------------- structure
    def out_degree(self, weighted: bool = False) -> torch.Tensor:
        """Out-degree of every node: edge count (int64), or the sum of weights when ``weighted``."""
        if not weighted:
            return self._crow[1:] - self._crow[:-1]
        out = torch.zeros(self._num_nodes, dtype=self.dtype, device=self.device)
        return out.index_add_(0, self.row(), self._values)

    def in_degree(self, weighted: bool = False) -> torch.Tensor:
        """In-degree of every node: edge count (int64), or the sum of weights when ``weighted``."""
        if not weighted:
            return torch.bincount(self._col, minlength=self._num_nodes)
        out = torch.zeros(self._num_nodes, dtype=self.dtype, device=self.device)
        return out.index_add_(0, self._col, self._values)

    def transpose(self) -> ProximityGraph:
        """The reversed graph (CSR of Aᵀ)."""
        return ProximityGraph.from_coo(self._col, self.row(), self._values, self._num_nodes)

    def symmetrize(self, reduce: str = "max") -> ProximityGraph:
        """Undirected version: edge (i, j) exists if (i, j) or (j, i) does.

        Args:
            reduce: how the two weights of a mutual pair combine: ``"max"``,
                ``"min"``, ``"mean"`` (one-sided edges keep their weight) or ``"sum"``.
        """
        if reduce not in ("max", "min", "mean", "sum"):
            raise ValueError(f"reduce must be one of 'max', 'min', 'mean', 'sum', got {reduce!r}")
        n = self._num_nodes
        row = self.row()
        r = torch.cat([row, self._col])
        c = torch.cat([self._col, row])
        v = torch.cat([self._values, self._values])
        if r.numel() == 0:
            return self
        key = r * n + c
        key, perm = torch.sort(key, stable=True)
        v = v[perm]
        uniq, inverse, counts = torch.unique_consecutive(key, return_inverse=True, return_counts=True)
        m = uniq.numel()
        if reduce == "sum":
            out = torch.zeros(m, dtype=v.dtype, device=v.device).index_add_(0, inverse, v)
        elif reduce == "mean":
            out = torch.zeros(m, dtype=v.dtype, device=v.device).index_add_(0, inverse, v) / counts.to(v.dtype)
        else:
            init = torch.full((m,), float("-inf") if reduce == "max" else float("inf"), dtype=v.dtype, device=v.device)
            out = init.scatter_reduce(0, inverse, v, reduce="amax" if reduce == "max" else "amin")
        rows = torch.div(uniq, n, rounding_mode="floor")
        counts_row = torch.bincount(rows, minlength=n)
        crow = torch.zeros(n + 1, dtype=torch.int64, device=self.device)
        torch.cumsum(counts_row, 0, out=crow[1:])
        return self._new(crow, uniq % n, out)

    def remove_self_loops(self) -> ProximityGraph:
        """The graph without edges (i, i)."""
        row = self.row()
        keep = row != self._col
        if bool(keep.all()):
            return self
        return ProximityGraph.from_coo(row[keep], self._col[keep], self._values[keep], self._num_nodes)

    def transition_matrix(self, weighted: bool = True) -> ProximityGraph:
        """Row-stochastic transition matrix P (P[i, j] = w_ij / sum_j w_ij).

        Dangling rows (no out-edges, or zero total weight) stay all-zero; the walk
        functions decide what a dangling node does (see :func:`graphbatch.rwr`).

        Args:
            weighted: use edge weights; ``False`` walks uniformly over out-edges.

        Raises:
            ValueError: ``weighted`` and some weight is negative.
        """
        if not weighted:
            deg = self.out_degree().to(self.dtype)
            vals = torch.ones_like(self._values)
        else:
            if self.nnz and bool((self._values < 0).any()):
                raise ValueError("transition_matrix needs non-negative edge weights; the graph has negative "
                                 "ones (pass weighted=False, or shift/clip the similarities when building)")
            deg = self.out_degree(weighted=True)
            vals = self._values
        deg_e = torch.repeat_interleave(deg, self.out_degree())
        p = torch.where(deg_e > 0, vals / torch.where(deg_e > 0, deg_e, torch.ones_like(deg_e)),
                        torch.zeros_like(vals))
        return self._new(self._crow, self._col, p)

    def subgraph(self, nodes: Any) -> ProximityGraph:
        """Induced subgraph on ``nodes``; node ``nodes[i]`` becomes node ``i``.

        Args:
            nodes: distinct node indices (sequence, array or tensor).

        Raises:
            ValueError: indices out of range or repeated.
        """
        idx = as_index_tensor("nodes", nodes, num_nodes=self._num_nodes, device=self.device, allow_empty=True)
        if torch.unique(idx).numel() != idx.numel():
            raise ValueError("nodes must not contain repeated indices")
        relabel = torch.full((self._num_nodes,), -1, dtype=torch.int64, device=self.device)
        relabel[idx] = torch.arange(idx.numel(), device=self.device)
        row_new = relabel[self.row()]
        col_new = relabel[self._col]
        keep = (row_new >= 0) & (col_new >= 0)
        return ProximityGraph.from_coo(row_new[keep], col_new[keep], self._values[keep], idx.numel())

    # --------------------------------------------------------------- save/load
    def save(self, path: Union[str, os.PathLike]) -> None:
        """Save to ``path`` (a torch file readable with ``weights_only=True``); written atomically."""
        path = os.fspath(path)
        tmp = path + ".tmp"
        torch.save({"format": _FORMAT, "version": _FORMAT_VERSION, "num_nodes": self._num_nodes,
                    "crow": self._crow.cpu(), "col": self._col.cpu(), "values": self._values.cpu()}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], device: Device = None) -> ProximityGraph:
        """Load a graph written by :meth:`save` (validated on load) onto ``device`` (default CPU)."""
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a saved ProximityGraph")
        if state.get("version") != _FORMAT_VERSION:
            raise ValueError(f"{path} has format version {state.get('version')}, expected {_FORMAT_VERSION}")
        g = cls(state["crow"], state["col"], state["values"], state["num_nodes"])
        return g.to(device) if device is not None else g


def _is_canonical_csr(t: torch.Tensor) -> bool:
    col, crow = t.col_indices(), t.crow_indices()
    if col.numel() < 2:
        return True
    n = crow.numel() - 1
    row = torch.repeat_interleave(torch.arange(n, device=t.device), crow[1:] - crow[:-1])
    return not bool(((row[1:] == row[:-1]) & (col[1:] <= col[:-1])).any())
