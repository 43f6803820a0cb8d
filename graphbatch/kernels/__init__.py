"""The compiled kernels (numba), kept out of ``import graphbatch``.

* :mod:`.slots` -- counter slot names and the argument bundles (plain Python);
* :mod:`.compiled` -- the forward-push kernel and the batch planners (walk, ranked lists, PPR).

Nothing here is imported by ``import graphbatch``: the samplers and ``rwr_truncated``
import :mod:`.compiled` (and so numba) the first time they plan or push. Use
:func:`load` to get it with a clear error when numba is missing.
"""
from __future__ import annotations

from types import ModuleType

__all__ = ["load"]


def load(purpose: str = "planning batches") -> ModuleType:
    """The :mod:`graphbatch.kernels.compiled` module (imports numba; kernels compile on first call)."""
    from .. import backend

    backend.require("numba", purpose)
    from . import compiled as module

    return module
