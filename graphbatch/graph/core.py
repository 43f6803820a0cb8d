"""The :class:`ProximityGraph`: a canonical CSR matrix over the training instances, on one torch device.

The class is thin: construction and validation live here, conversions in
:mod:`graphbatch.graph.convert`, structural operations in
:mod:`graphbatch.graph.ops`, files in :mod:`graphbatch.graph.io`.
The immutability contract (what shares memory and what copies) is stated in
the class docstring and in ``docs/concepts.md``.
"""
from __future__ import annotations

import os
from typing import Any, Union

import torch

from .._validation import check_int
from . import convert, io, ops
from ._csr import check_canonical, check_values, rows_of, to_tensor

__all__ = ["ProximityGraph"]

Device = Union[str, torch.device, None]


def _owned(t: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``t`` as ``dtype`` on ``device``, never sharing memory with ``t`` (so not with the caller's array)."""
    out = t.to(device=device, dtype=dtype)
    return out.clone() if out is t else out


class ProximityGraph:
    """A weighted directed graph over ``num_nodes`` instances, stored as canonical CSR on a torch device.

    Row ``i`` holds the out-edges of instance ``i`` (its proximity neighbours);
    values are edge weights (similarities, so possibly negative). *Canonical*:
    ``crow`` runs from 0 to ``nnz`` without decreasing, columns are strictly
    increasing within a row (sorted, no duplicates), indices lie in
    ``[0, num_nodes)``, values are finite floats. Constructors canonicalise
    (sort, and sum duplicate edges as scipy and PyG's ``coalesce`` do).

    Immutability contract:

    * **The graph owns its storage.** Every constructor copies the caller's
      arrays (``ProximityGraph(crow, col, values)`` and every ``from_*``), so
      later changes to them do not reach the graph; no constructor modifies
      its input (``from_cupy`` and ``from_scipy`` sort a copy, not the
      caller's matrix). Every operation returns a new graph.
    * **Zero-copy, read-only views:** the ``crow``, ``col`` and ``values``
      properties return the graph's own tensors (torch cannot mark a tensor
      read-only), and :meth:`to_scipy` returns a ``csr_matrix`` over read-only
      NumPy views of a CPU graph (writing to it raises). Modifying a tensor
      obtained from the properties in place breaks the contract; the graph
      notices (it remembers the tensors' version counters) and its next use
      raises ``RuntimeError`` instead of computing on changed data.
    * **Copies:** ``to_torch``, ``to_torch_coo``, ``to_edge_index``,
      ``to_dense``, ``to_torch_sparse``, ``to_cupy``, ``to_networkx``,
      ``to_scipy(copy=True)`` and :meth:`to` to another device or dtype.

    Args:
        crow: ``(num_nodes + 1,)`` row pointers.
        col: ``(nnz,)`` column indices, sorted and unique within each row.
        values: ``(nnz,)`` finite edge weights (float); ``None`` means all ones.
        num_nodes: number of instances (rows and columns); default ``len(crow) - 1``.
        check: verify the arrays are canonical (O(nnz)); turn off only for arrays
            produced by graphbatch itself.

    Raises:
        ValueError: the arrays are inconsistent, unsorted, out of range or non-finite.
        TypeError: an argument has the wrong type.

    Example:
        >>> import torch
        >>> from graphbatch import ProximityGraph
        >>> g = ProximityGraph.from_neighbors(torch.tensor([[1, 2], [2, 0], [0, 1]]))
        >>> g.num_nodes, g.nnz, g.out_degree().tolist()
        (3, 6, [2, 2, 2])
        >>> g.to_scipy().data.flags.writeable  # a read-only view
        False
    """

    __slots__ = ("_crow", "_col", "_values", "_num_nodes", "_versions", "_cache")

    def __init__(self, crow: Any, col: Any, values: Any = None, num_nodes: int | None = None,
                 *, check: bool = True) -> None:
        crow_t = to_tensor("crow", crow)
        col_t = to_tensor("col", col)
        if crow_t.dim() != 1 or crow_t.numel() < 1:
            raise ValueError(f"crow must be 1-D with num_nodes + 1 entries, got shape {tuple(crow_t.shape)}")
        n = check_int("num_nodes", crow_t.numel() - 1 if num_nodes is None else num_nodes, low=0)
        if crow_t.numel() != n + 1:
            raise ValueError(f"crow must have num_nodes + 1 = {n + 1} entries, got {crow_t.numel()}")
        if col_t.dim() != 1:
            raise ValueError(f"col must be 1-D, got shape {tuple(col_t.shape)}")
        for name, t in (("crow", crow_t), ("col", col_t)):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
        device = crow_t.device
        nnz = col_t.numel()
        if values is None:
            val_t = torch.ones(nnz, dtype=torch.float32, device=device)
        else:
            raw = to_tensor("values", values)
            checked = check_values("values", raw, nnz)
            val_t = checked.to(device) if checked is not raw else _owned(raw, raw.dtype, device)
        crow_t = _owned(crow_t, torch.int64, device)
        col_t = _owned(col_t, torch.int64, device)
        if check:
            check_canonical(crow_t, col_t, n)
        self._set(crow_t, col_t, val_t, n)

    def _set(self, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n: int) -> None:
        self._crow, self._col, self._values, self._num_nodes = crow, col, values, n
        self._versions = (crow._version, col._version, values._version)
        self._cache: dict[Any, Any] = {}  # arrays derived by the solvers (valid: the graph is immutable)

    @classmethod
    def _wrap(cls, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n: int) -> ProximityGraph:
        """A graph over freshly made canonical arrays that nobody else holds (no copy, no check)."""
        g = cls.__new__(cls)
        g._set(crow, col, values, n)
        return g

    @classmethod
    def _adopt(cls, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n: int) -> ProximityGraph:
        """A graph over new tensors made for it (int64 indices, float values): validated, not copied."""
        check_canonical(crow, col, n)
        if values.dim() != 1 or values.numel() != col.numel():
            raise ValueError(f"values must be 1-D with one value per edge ({col.numel()}), got shape "
                             f"{tuple(values.shape)}")
        if col.numel() and not bool(torch.isfinite(values).all()):
            raise ValueError("values must be finite, got NaN or infinite values")
        return cls._wrap(crow, col, values, n)

    def _intact(self) -> None:
        if (self._crow._version, self._col._version, self._values._version) != self._versions:
            raise RuntimeError("this ProximityGraph's crow/col/values tensors were modified in place; a graph is "
                               "immutable (build a new one, e.g. ProximityGraph(crow, col, new_values))")

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
        """Row pointers, int64, ``(num_nodes + 1,)``: the graph's own tensor (read-only by contract)."""
        self._intact()
        return self._crow

    @property
    def col(self) -> torch.Tensor:
        """Column indices, int64, ``(nnz,)``: the graph's own tensor (read-only by contract)."""
        self._intact()
        return self._col

    @property
    def values(self) -> torch.Tensor:
        """Edge weights, ``(nnz,)``: the graph's own tensor (read-only by contract)."""
        self._intact()
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
        """Row index of every edge (COO rows), int64 ``(nnz,)`` (a new tensor)."""
        return rows_of(self.crow)

    def __repr__(self) -> str:
        return (f"ProximityGraph(num_nodes={self._num_nodes}, nnz={self.nnz}, "
                f"dtype={self.dtype}, device={self.device})")

    def _new(self, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor) -> ProximityGraph:
        return ProximityGraph._wrap(crow, col, values, self._num_nodes)

    def to(self, device: Device = None, dtype: torch.dtype | None = None) -> ProximityGraph:
        """The graph on ``device`` with weights of ``dtype`` (``self`` when nothing changes, else a copy)."""
        self._intact()
        device = torch.device(device) if device is not None else self.device
        dtype = dtype or self.dtype
        if device == self.device and dtype == self.dtype:
            return self
        return ProximityGraph._wrap(self._crow.to(device, copy=True), self._col.to(device, copy=True),
                                    self._values.to(device=device, dtype=dtype, copy=True), self._num_nodes)

    def equal(self, other: ProximityGraph, *, atol: float = 0.0) -> bool:
        """Same structure and (within ``atol``) same weights; devices may differ."""
        if not isinstance(other, ProximityGraph) or other.num_nodes != self.num_nodes or other.nnz != self.nnz:
            return False
        o = other.to(self.device)
        if not (torch.equal(self.crow, o.crow) and torch.equal(self.col, o.col)):
            return False
        return bool(torch.allclose(self.values.double(), o.values.double(), rtol=0.0, atol=atol))

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_coo(cls, row: Any, col: Any, values: Any = None, num_nodes: int | None = None) -> ProximityGraph:
        """Build from COO arrays (any order; duplicate edges are summed); ``num_nodes`` defaults to max index + 1."""
        return convert.from_coo(cls, row, col, values, num_nodes)

    @classmethod
    def from_neighbors(cls, index: Any, scores: Any = None, *, num_nodes: int | None = None) -> ProximityGraph:
        """Build from a dense ``(N, K)`` neighbour table (``-1`` = empty slot); see :func:`convert.from_neighbors`."""
        return convert.from_neighbors(cls, index, scores, num_nodes)

    @classmethod
    def from_edge_index(cls, edge_index: Any, edge_weight: Any = None,
                        num_nodes: int | None = None) -> ProximityGraph:
        """Build from a PyG-style ``(2, E)`` ``edge_index`` (source row 0, target row 1)."""
        return convert.from_edge_index(cls, edge_index, edge_weight, num_nodes)

    @classmethod
    def from_torch(cls, tensor: torch.Tensor) -> ProximityGraph:
        """Build from a square torch sparse tensor (COO, CSR, CSC, BSR, BSC) or a dense square tensor."""
        return convert.from_torch(cls, tensor)

    @classmethod
    def from_scipy(cls, m: Any, device: Device = None) -> ProximityGraph:
        """Build from a square scipy sparse matrix or array (any format; explicit zeros are kept)."""
        return convert.from_scipy(cls, m, device)

    @classmethod
    def from_torch_sparse(cls, m: Any) -> ProximityGraph:
        """Build from a ``torch_sparse.SparseTensor`` (needs the optional ``torch-sparse``)."""
        return convert.from_torch_sparse(cls, m)

    @classmethod
    def from_cupy(cls, m: Any) -> ProximityGraph:
        """Build from a ``cupyx.scipy.sparse`` matrix (copied; the caller's matrix is not modified)."""
        return convert.from_cupy(cls, m)

    @classmethod
    def from_networkx(cls, g: Any, weight: str | None = "weight", default: float = 1.0,
                      nodelist: list | None = None) -> ProximityGraph:
        """Build from a networkx graph; node ``nodelist[i]`` (default ``sorted(g)`` if sortable) becomes node i."""
        return convert.from_networkx(cls, g, weight, default, nodelist)

    # ----------------------------------------------------------------- exports
    def to_torch(self) -> torch.Tensor:
        """Torch sparse CSR tensor (a copy)."""
        return convert.to_torch(self)

    def to_torch_coo(self) -> torch.Tensor:
        """Coalesced torch sparse COO tensor (a copy)."""
        return convert.to_torch_coo(self)

    def to_edge_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(edge_index, edge_weight)`` in PyG's convention, edges sorted by (source, target) (copies)."""
        return convert.to_edge_index(self)

    def to_scipy(self, *, copy: bool = False) -> Any:
        """scipy ``csr_matrix``: read-only views of a CPU graph's arrays, or a writable copy with ``copy=True``."""
        return convert.to_scipy(self, copy=copy)

    def to_torch_sparse(self) -> Any:
        """``torch_sparse.SparseTensor`` (a copy; needs the optional ``torch-sparse``)."""
        return convert.to_torch_sparse(self)

    def to_cupy(self) -> Any:
        """``cupyx.scipy.sparse.csr_matrix`` on the GPU (a copy)."""
        return convert.to_cupy(self)

    def to_networkx(self, weight: str = "weight") -> Any:
        """``networkx.DiGraph`` with nodes ``0..num_nodes-1`` and the weights under ``weight``."""
        return convert.to_networkx(self, weight)

    def to_dense(self) -> torch.Tensor:
        """Dense ``(N, N)`` weight matrix (small graphs only)."""
        return convert.to_dense(self)

    # --------------------------------------------------------------- structure
    def out_degree(self, weighted: bool = False) -> torch.Tensor:
        """Out-degree of every node: edge count (int64), or the sum of weights when ``weighted``."""
        return ops.out_degree(self, weighted)

    def in_degree(self, weighted: bool = False) -> torch.Tensor:
        """In-degree of every node: edge count (int64), or the sum of weights when ``weighted``."""
        return ops.in_degree(self, weighted)

    def transpose(self) -> ProximityGraph:
        """The reversed graph (CSR of Aᵀ)."""
        return ops.transpose(self)

    def symmetrize(self, reduce: str = "max") -> ProximityGraph:
        """Undirected version: edge (i, j) if (i, j) or (j, i) exists; see :func:`ops.symmetrize`."""
        return ops.symmetrize(self, reduce)

    def mutual(self, reduce: str = "min") -> ProximityGraph:
        """Only the edges present in both directions; see :func:`ops.mutual`."""
        return ops.mutual(self, reduce)

    def remove_self_loops(self) -> ProximityGraph:
        """The graph without edges (i, i)."""
        return ops.remove_self_loops(self)

    def transition_matrix(self, weighted: bool = True) -> ProximityGraph:
        """Row-stochastic transition matrix P (dangling rows stay zero); see :func:`ops.transition_matrix`."""
        return ops.transition_matrix(self, weighted)

    def subgraph(self, nodes: Any) -> ProximityGraph:
        """Induced subgraph on distinct ``nodes``; node ``nodes[i]`` becomes node ``i``."""
        return ops.subgraph(self, nodes)

    # --------------------------------------------------------------- save/load
    def save(self, path: Union[str, os.PathLike]) -> None:
        """Save to ``path`` atomically (a torch file readable with ``weights_only=True``); see :func:`io.save`."""
        io.save(self, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], device: Device = None) -> ProximityGraph:
        """Load and validate a graph written by :meth:`save` onto ``device`` (default CPU)."""
        return io.load(cls, path, device)
