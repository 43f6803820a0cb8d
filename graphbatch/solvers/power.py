"""Exact RWR by power iteration: every seed at once, one sparse x dense product (SpMM) per iteration.

The backend seam (:func:`make_engine`) hides where the SpMM runs: torch sparse CSR (CPU or
CUDA), scipy (CPU) or CuPy/cuSPARSE (CUDA). Every engine offers ``start()`` (the ``(N, S)``
block of seed indicators), ``spmm(X)`` (``(1 - p) Pᵀ X``), ``lost_mass(Y)``, ``max_col_l1(X)``,
``to_torch(X)``, ``scope()`` (the context its calls run in) and the index arrays ``seeds``,
``cols``; :func:`power_step` is written once against it, so the CPU engines are the reference
for the GPU one.

The CuPy engine runs inside :func:`_cupy_scope`: CuPy's current device is the graph's GPU,
its current stream is torch's current stream there, and every CuPy allocation comes from
torch's caching allocator, so the ``(N, S)`` blocks return to torch's pool once freed.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .. import backend as caps
from .._validation import check_bool, check_choice, check_dtype, check_int, check_real
from ..graph import ProximityGraph
from ..graph._csr import sparse_csr_tensor
from ._common import RWRInfo, prepare

__all__ = ["rwr", "BACKENDS", "DEFAULT_TOL", "make_engine", "power_step"]

#: Names accepted by ``rwr(..., backend=...)`` besides ``"auto"``.
BACKENDS = ("torch", "scipy", "cupy")
#: ``rwr``'s default ``tol`` per dtype. In float32 the L1 change of one iteration bottoms out near
#: 1e-7 (rounding in the SpMM and in the column sums), so 1e-8 would never be reached there.
DEFAULT_TOL = {torch.float64: 1e-8, torch.float32: 1e-6}
#: Rows summed in the block's dtype before the float64 sum of those partial sums (:func:`_col_sums`).
_PARTIAL_ROWS = 64


def _col_sums(x: torch.Tensor) -> torch.Tensor:
    """Column sums of a torch ``(N, S)`` block, accumulated in float64 (returned as float64).

    A plain float32 column sum over ``N = 10^6`` rows errs by ~2e-7 relative, which floors the
    L1 change of a float32 power iteration near 1e-6. ``sum(0, dtype=torch.float64)`` would first
    cast the whole block (a float64 copy, ~10x slower on CPU); summing groups of 64 rows in the
    block's dtype and those partial sums in float64 costs one block pass and errs by ~1e-9.
    """
    if x.dtype == torch.float64 or not x.is_contiguous():
        return x.sum(0, dtype=torch.float64)
    n, s = x.shape
    m = n - n % _PARTIAL_ROWS
    head = x[:m].view(-1, _PARTIAL_ROWS, s).sum(1).sum(0, dtype=torch.float64)
    return head + x[m:].sum(0, dtype=torch.float64)


def _transpose(trans: ProximityGraph) -> ProximityGraph:
    """CSR of Pᵀ by one stable sort of the column indices (rows of P are already in order).

    Sorting int32 keys when they fit is ~2.5x faster on CPU than the general (row, col) sort.
    """
    n = trans.num_nodes
    col = trans.col.to(torch.int32) if n < 2**31 else trans.col
    col_sorted, perm = torch.sort(col, stable=True)
    crow = torch.zeros(n + 1, dtype=torch.int64, device=trans.device)
    torch.cumsum(torch.bincount(col_sorted, minlength=n), 0, out=crow[1:])
    return ProximityGraph._wrap(crow, trans.row()[perm], trans.values[perm], n)


class _TorchEngine:
    """Power-iteration kernels with torch tensors (CPU or CUDA); Pᵀ as a torch sparse CSR tensor."""

    name = "torch"

    def __init__(self, trans: ProximityGraph, seeds: torch.Tensor) -> None:
        t = _transpose(trans)
        self.pt = sparse_csr_tensor(t.crow, t.col, t.values, (t.num_nodes, t.num_nodes))
        self.seeds = seeds.to(trans.device)
        self.cols = torch.arange(seeds.numel(), device=trans.device)
        self.dtype, self.device = trans.dtype, trans.device

    def start(self) -> torch.Tensor:
        x = torch.zeros(self.pt.shape[0], self.seeds.numel(), dtype=self.dtype, device=self.device)
        x[self.seeds, self.cols] = 1.0
        return x

    def spmm(self, x: torch.Tensor) -> torch.Tensor:
        return self.pt @ x

    @staticmethod
    def lost_mass(y: torch.Tensor) -> torch.Tensor:
        return (1.0 - _col_sums(y)).to(y.dtype)

    @staticmethod
    def max_col_l1(x: torch.Tensor) -> float:
        return float(_col_sums(x.abs_()).max())  # in place: x is scratch here (vector_norm(dim=0) is slow on CPU)

    @staticmethod
    def to_torch(x: torch.Tensor) -> torch.Tensor:
        return x

    scope = staticmethod(contextlib.nullcontext)


class _ArrayEngine:
    """Power-iteration kernels for a numpy-like namespace ``xp`` and a scipy-like CSR matrix (scipy, cupyx).

    ``scope``: a context-manager factory every call of the engine runs in (``rwr`` enters it
    around the iteration; the engine is built inside it too).
    """

    def __init__(self, name: str, xp: Any, pt: Any, seeds: Any, to_torch: Any,
                 scope: Callable[[], Any] = contextlib.nullcontext) -> None:
        self.name, self.xp, self.pt, self.seeds, self._to_torch = name, xp, pt, seeds, to_torch
        self.scope = scope
        self.cols = xp.arange(seeds.shape[0])

    def start(self) -> Any:
        x = self.xp.zeros((self.pt.shape[0], self.seeds.shape[0]), dtype=self.pt.dtype)
        x[self.seeds, self.cols] = 1.0
        return x

    def spmm(self, x: Any) -> Any:
        return self.pt @ x

    def lost_mass(self, y: Any) -> Any:
        # float64 accumulation: numpy casts in buffered chunks and CuPy inside its reduction kernel (no
        # float64 copy of the block); numpy's float32 column sum over 10^6 rows errs by ~3e-5 otherwise
        return (1.0 - y.sum(0, dtype=self.xp.float64)).astype(y.dtype)

    def max_col_l1(self, x: Any) -> float:
        return float(self.xp.abs(x, out=x).sum(0, dtype=self.xp.float64).max())  # x is scratch here

    def to_torch(self, x: Any) -> torch.Tensor:
        return self._to_torch(x)


def _scipy_engine(trans: ProximityGraph, seeds: torch.Tensor) -> _ArrayEngine:
    import numpy as np

    caps.require("scipy.sparse", "rwr(backend='scipy')")
    pt = trans.to("cpu").to_scipy().T.tocsr()
    pt.sort_indices()
    return _ArrayEngine("scipy", np, pt, seeds.cpu().numpy(), lambda x: torch.from_numpy(np.ascontiguousarray(x)))


def _cuda_device(device: torch.device) -> torch.device:
    """The GPU the CuPy engine runs on: a CUDA graph's own device, else torch's current CUDA device."""
    if device.type == "cuda" and device.index is not None:
        return device
    return torch.device("cuda", torch.cuda.current_device())


def _torch_allocator(cp: Any, device: torch.device) -> Callable[[int], Any]:
    """A CuPy allocator that takes its memory from torch's caching allocator on ``device``.

    Each CuPy buffer is owned by a ``uint8`` torch tensor: when CuPy drops the buffer, the
    tensor dies and its block returns to torch's cache (for torch to reuse), instead of
    staying in CuPy's own pool, which torch cannot use. Blocks are allocated on torch's
    current stream, the stream :func:`_cupy_scope` makes CuPy's current one.
    """
    def alloc(size: int) -> Any:
        buf = torch.empty(max(int(size), 1), dtype=torch.uint8, device=device)
        return cp.cuda.MemoryPointer(cp.cuda.UnownedMemory(buf.data_ptr(), int(size), buf, device.index), 0)

    return alloc


def _cupy_scope(cp: Any, device: torch.device) -> Callable[[], Any]:
    """The context the CuPy engine's calls run in (a factory; each call gives a fresh context manager).

    Inside it CuPy's current device is ``device`` (a graph on ``cuda:1`` runs on GPU 1, not on
    CuPy's current device), CuPy's current stream is torch's current stream on that device (so
    torch and CuPy work on the same tensors in order, also on a side stream), and CuPy allocates
    through :func:`_torch_allocator`.
    """
    alloc = _torch_allocator(cp, device)

    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        stream = torch.cuda.current_stream(device)
        with cp.cuda.Device(device.index), cp.cuda.ExternalStream(stream.cuda_stream, device.index), \
                cp.cuda.using_allocator(alloc):
            yield

    return scope


def _cupy_engine(trans: ProximityGraph, seeds: torch.Tensor) -> _ArrayEngine:
    cp = caps.require("cupy", "rwr(backend='cupy')")
    caps.require("cupyx.scipy.sparse", "rwr(backend='cupy')")
    if not caps.WITH_CUDA:
        raise ValueError("backend='cupy' needs a CUDA device visible to torch, and none is")
    from ..graph.convert import cupy_csr

    device = _cuda_device(trans.device)
    scope = _cupy_scope(cp, device)
    with scope():
        pt = cupy_csr(_transpose(trans.to(device)))  # on the graph's GPU (int32 indices for cuSPARSE)
        s = cp.from_dlpack(seeds.to(device).contiguous())
        return _ArrayEngine("cupy", cp, pt, s, torch.from_dlpack, scope)


def make_engine(name: str, trans: ProximityGraph, seeds: torch.Tensor, q: float) -> Any:
    """The backend seam: ``start()`` (the ``(N, S)`` block of seed indicators), ``spmm(X)`` (``q Pᵀ @ X``),
    ``lost_mass(Y)`` (``1 -`` the column sums of Y, accumulated in float64, in Y's dtype), ``max_col_l1(X)``
    (max column L1 norm, accumulated in float64; may clobber X), ``to_torch(X)``, ``scope()`` (the
    context manager every call runs in: CuPy's device, stream and allocator; a no-op for torch and
    scipy), and index arrays ``seeds``, ``cols``.
    """
    trans = ProximityGraph._wrap(trans.crow, trans.col, trans.values * q, trans.num_nodes)
    if name == "torch":
        return _TorchEngine(trans, seeds)
    if name == "scipy":
        return _scipy_engine(trans, seeds)
    return _cupy_engine(trans, seeds)


def power_step(eng: Any, x: Any):
    """One power iteration on the ``(N, S)`` block ``x``; returns the new block and the max L1 change.

    ``x`` is clobbered. Block passes: the SpMM, one column sum, ``x -= y``, ``|x|`` in place, one column sum.
    """
    y = eng.spmm(x)  # (1 - p) Pᵀ x: the scale is folded into the matrix
    # mass that left the walk (restart with prob. p, plus dangling nodes) returns to the seed;
    # computing it as 1 - column sum also keeps every column summing to 1 in floating point
    y[eng.seeds, eng.cols] += eng.lost_mass(y)
    x -= y
    return y, eng.max_col_l1(x)


def _resolve_backend(name: Any, graph: ProximityGraph) -> str:
    name = check_choice("backend", name, ("auto",) + BACKENDS)
    if name == "auto":  # CuPy only where it was probed to work (else a warning, and torch)
        return "cupy" if graph.device.type == "cuda" and caps.cupy_usable() else "torch"
    return name


def rwr(graph: ProximityGraph, seeds: Any, restart_prob: float, *, tol: float | None = None, max_iter: int = 1000,
        backend: str = "auto", weighted: bool = True, return_info: bool = False,
        dtype: torch.dtype = torch.float64) -> Any:
    """Exact RWR (personalised PageRank) vectors of many seeds, by power iteration.

    Row ``j`` of the result solves ``r = p e_s + (1 - p) (P^T r + (d . r) e_s)``
    for ``s = seeds[j]`` (dangling nodes send their mass back to the seed, as
    in ``networkx.pagerank(G, alpha=1 - p, personalization={s: 1})``). All
    seeds iterate together: the ``(N, S)`` block ``R^T`` is updated with one
    sparse (CSR ``P^T``) x dense product per iteration. Since the iteration map
    contracts by ``1 - p`` in L1, stopping when the L1 change of every row is
    below ``tol`` leaves an L1 error of at most ``tol * (1 - p) / p``.

    Args:
        graph: the proximity graph.
        seeds: 1-D seed node indices (repeats allowed).
        restart_prob: probability ``p`` in (0, 1] of jumping back to the seed at each step.
        tol: stop once the max over seeds of the L1 change in one iteration is below ``tol``;
            default (``None``): ``1e-8`` in float64, ``1e-6`` in float32 (:data:`DEFAULT_TOL`), where
            the L1 change bottoms out near 1e-7, so a float32 ``tol`` much below 1e-6 may never be
            reached (``info.converged`` is then ``False`` after ``max_iter`` iterations).
        max_iter: iteration cap (``info.converged`` tells whether ``tol`` was reached).
        backend: ``"auto"`` (CuPy when it works here and the graph is on CUDA, else torch),
            ``"torch"`` (CPU/CUDA sparse CSR), ``"scipy"`` (CPU) or ``"cupy"`` (cuSPARSE, on the
            graph's GPU, or torch's current one for a CPU graph; its memory comes from torch's
            caching allocator and its work runs on torch's current stream).
        weighted: walk with probabilities proportional to edge weights (must be
            non-negative); ``False`` walks uniformly over out-edges.
        return_info: also return an :class:`RWRInfo`.
        dtype: ``torch.float64`` (default) or ``torch.float32`` (half the memory traffic).

    Memory: about three ``(N, S)`` blocks of ``dtype`` (``N = 1M``, ``S = 512`` in
    float64 is 4 GB per block); pass fewer seeds per call, or use :func:`rwr_truncated`.

    Returns:
        ``(S, N)`` dense tensor on the graph's device, rows summing to 1; with
        ``return_info``, ``(R, info)``.

    Raises:
        TypeError: ``graph`` is not a ProximityGraph; wrong argument types.
        ValueError: ``restart_prob`` outside (0, 1]; ``seeds`` empty or out of range;
            unknown ``backend``; negative weights with ``weighted=True``.
        graphbatch.backend.MissingDependencyError: ``backend="cupy"`` without CuPy.

    Example:
        >>> import torch
        >>> from graphbatch import ProximityGraph
        >>> from graphbatch.solvers import rwr
        >>> g = ProximityGraph.from_coo([0, 1, 1], [1, 0, 2], num_nodes=3)  # node 2 is dangling
        >>> r, info = rwr(g, [0], 0.3, return_info=True)
        >>> round(float(r.sum()), 12), info.converged, info.backend
        (1.0, True, 'torch')
    """
    graph, s, p, weighted = prepare(graph, seeds, restart_prob, weighted)
    dtype = check_dtype("dtype", dtype)
    tol = DEFAULT_TOL[dtype] if tol is None else check_real("tol", tol, low=0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, low=1)
    return_info = check_bool("return_info", return_info)
    name = _resolve_backend(backend, graph)
    trans = graph.to(dtype=dtype).transition_matrix(weighted=weighted)
    eng = make_engine(name, trans, s, 1.0 - p)
    delta = float("inf")
    it = 0
    with eng.scope():
        x = eng.start()
        for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
            x, delta = power_step(eng, x)
            if delta < tol:
                break
        r = eng.to_torch(x)
    r = r.t().contiguous().to(graph.device)
    if not return_info:
        return r
    return r, RWRInfo(iterations=it, residual=delta, backend=eng.name, converged=delta < tol)
