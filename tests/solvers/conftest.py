"""Stand-ins for a GPU in the solver tests: a numpy-backed ``cupy`` and a counter of host syncs.

``fake_cupy`` lets the CuPy power-iteration engine (``graphbatch.solvers.power._cupy_engine``)
run its own code end to end on the CPU: numpy stands in for ``cupy``, ``scipy.sparse`` for
``cupyx.scipy.sparse``, numpy's DLPack import for ``cupy.from_dlpack`` (``torch.from_dlpack``
reads numpy arrays back). The ``cupy.cuda`` pieces the engine uses (``Device``,
``ExternalStream``, ``using_allocator``, ``UnownedMemory``, ``MemoryPointer``) record what
they are given, and every array the stand-in creates records the device, stream and allocator
current at that moment, so tests can check where CuPy would have run and allocated.

``count_syncs`` counts, with a ``TorchDispatchMode``, the torch operations that make a CUDA
program wait for the GPU (a scalar read, ``nonzero``, boolean-mask indexing, ``unique``,
``repeat_interleave`` without ``output_size``, ...): on the CPU they cost nothing, so this is
how CPU tests check that a hot loop is free of them.
"""
from __future__ import annotations

import contextlib
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from graphbatch import backend

#: The device index the stand-in GPU carries (a CPU device labelled 1: ``torch.device("cpu", 1)``
#: holds ordinary CPU tensors), so a test can see which index reaches ``cupy.cuda.Device``.
FAKE_INDEX = 1
#: The stream pointer ``torch.cuda.current_stream(...)`` reports in the stand-in.
FAKE_STREAM = 0xBEEF


@dataclass
class CupyRecord:
    """What the stand-in CuPy saw (``index`` and ``stream_ptr``: the stand-in GPU's index and torch stream)."""

    index: int = FAKE_INDEX
    stream_ptr: int = FAKE_STREAM
    device: int | None = None  # CuPy's current device (None: never set)
    stream: int | None = None  # CuPy's current stream pointer
    allocator: Any = None  # the allocator set by using_allocator (None: CuPy's own pool)
    calls: list = field(default_factory=list)  # (what, device, stream, allocator) per array created
    devices_entered: list = field(default_factory=list)
    streams_entered: list = field(default_factory=list)  # (ptr, device_id)
    allocators: list = field(default_factory=list)
    stream_queries: list = field(default_factory=list)  # devices passed to torch.cuda.current_stream


def _build_cupy(rec: CupyRecord) -> dict[str, types.ModuleType]:
    def note(what: str) -> None:
        rec.calls.append((what, rec.device, rec.stream, rec.allocator))

    def recording(what: str, fn):
        def wrapper(*args, **kwargs):
            note(what)
            return fn(*args, **kwargs)
        return wrapper

    cupy = types.ModuleType("cupy")
    cupy.__getattr__ = lambda name: getattr(np, name)  # dtypes, abs, ... (PEP 562)
    for name in ("zeros", "ones", "empty", "arange", "array", "asarray"):
        setattr(cupy, name, recording(name, getattr(np, name)))
    cupy.from_dlpack = recording("from_dlpack", np.from_dlpack)
    cupy.ndarray = np.ndarray

    cuda = types.ModuleType("cupy.cuda")

    class Device:
        def __init__(self, index: int | None = None) -> None:
            self.id = index

        def __enter__(self):
            self._prev, rec.device = rec.device, self.id
            rec.devices_entered.append(self.id)
            return self

        def __exit__(self, *exc):
            rec.device = self._prev

    class ExternalStream:
        def __init__(self, ptr: int, device_id: int = -1) -> None:
            self.ptr, self.device_id = ptr, device_id

        def __enter__(self):
            self._prev, rec.stream = rec.stream, self.ptr
            rec.streams_entered.append((self.ptr, self.device_id))
            return self

        def __exit__(self, *exc):
            rec.stream = self._prev

    @contextlib.contextmanager
    def using_allocator(allocator=None):
        prev, rec.allocator = rec.allocator, allocator
        rec.allocators.append(allocator)
        try:
            yield
        finally:
            rec.allocator = prev

    class UnownedMemory:
        def __init__(self, ptr: int, size: int, owner: Any, device_id: int = -1) -> None:
            self.ptr, self.size, self.owner, self.device_id = ptr, size, owner, device_id

    class MemoryPointer:
        def __init__(self, mem: UnownedMemory, offset: int) -> None:
            self.mem, self.ptr = mem, mem.ptr + offset

    cuda.Device, cuda.ExternalStream, cuda.using_allocator = Device, ExternalStream, using_allocator
    cuda.UnownedMemory, cuda.MemoryPointer = UnownedMemory, MemoryPointer
    cupy.cuda = cuda

    cupyx = types.ModuleType("cupyx")
    cupyx_scipy = types.ModuleType("cupyx.scipy")
    sparse = types.ModuleType("cupyx.scipy.sparse")
    sparse.csr_matrix = recording("csr_matrix", sp.csr_matrix)
    sparse.issparse = sp.issparse
    cupyx.scipy, cupyx_scipy.sparse = cupyx_scipy, sparse
    return {"cupy": cupy, "cupy.cuda": cuda, "cupyx": cupyx, "cupyx.scipy": cupyx_scipy, "cupyx.scipy.sparse": sparse}


@pytest.fixture
def fake_cupy(monkeypatch) -> CupyRecord:
    """Install the numpy-backed CuPy and a stand-in GPU ``cpu:1`` for the CuPy engine; yield its record.

    ``backend`` reports CuPy installed, CUDA present and the CuPy probe passed, so
    ``rwr(backend="auto")`` on a CUDA graph and ``rwr(backend="cupy")`` take the CuPy engine.
    The engine's device choice (``_cuda_device``) returns the stand-in device, and
    ``torch.cuda.current_stream`` a stream object with pointer :data:`FAKE_STREAM`.
    """
    from graphbatch.solvers import power

    rec = CupyRecord()
    for name, module in _build_cupy(rec).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(backend, "WITH_CUPY", True)
    monkeypatch.setattr(backend, "WITH_CUDA", True)
    monkeypatch.setattr(backend, "_PROBES", {"cupy": (True, "")})
    monkeypatch.setattr(power, "_cuda_device", lambda device: torch.device("cpu", FAKE_INDEX), raising=False)

    def current_stream(device=None):
        rec.stream_queries.append(device)
        return types.SimpleNamespace(cuda_stream=FAKE_STREAM, device=device)

    monkeypatch.setattr(torch.cuda, "current_stream", current_stream)
    return rec


# ------------------------------------------------------------------ host syncs
_SYNC_OPS = {
    "aten._local_scalar_dense.default",  # .item(), int(t), float(t), bool(t)
    "aten.nonzero.default", "aten.argwhere.default", "aten.masked_select.default",
    "aten._unique2.default", "aten.unique_dim.default", "aten.unique_consecutive.default",
    "aten.bincount.default", "aten.histc.default",
}


def _is_bool_index(indices) -> bool:
    return any(isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8) for t in indices or ())


class SyncCounter(TorchDispatchMode):
    """Counts the operations that would make the host wait for a CUDA device (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        if (name in _SYNC_OPS
                or (name.startswith("aten.repeat_interleave") and kwargs.get("output_size") is None)
                or (name.startswith(("aten.index.", "aten.index_put")) and _is_bool_index(args[1]))):
            self.ops.append(name)
        return func(*args, **kwargs)


@pytest.fixture
def count_syncs():
    """``with count_syncs() as c: ...`` then ``c.ops``: the implicit host syncs the block made."""
    return SyncCounter
