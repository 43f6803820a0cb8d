"""Capabilities and optional dependencies, probed in one place.

At import time this module only *locates* optional packages
(:func:`importlib.util.find_spec`): ``import graphbatch`` imports none of them.
Whether a located package actually works is probed lazily, once, on first use:
:func:`cupy_usable` runs a tiny sparse product on the GPU (an importable CuPy
can still lack a driver, NVRTC or nvJitLink). Code that needs an optional
package calls :func:`require`, which imports it or raises
:class:`MissingDependencyError` naming the pip package and the graphbatch extra.

Attributes:
    WITH_CUDA: a CUDA device is usable from torch.
    WITH_CUPY: CuPy is installed (see :func:`cupy_usable` for whether it works).
    WITH_TORCH_SPARSE: ``torch_sparse`` is installed.
    WITH_PYNNDESCENT, WITH_NUMBA, WITH_SENTENCE_TRANSFORMERS, WITH_FAISS, WITH_PYMETIS,
    WITH_LIGHTNING: the package is installed.

Example:
    >>> from graphbatch import backend
    >>> isinstance(backend.WITH_CUPY, bool), backend.capabilities()["WITH_NUMBA"]
    (True, True)
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from types import ModuleType

import torch

__all__ = [
    "WITH_CUDA",
    "WITH_CUPY",
    "WITH_TORCH_SPARSE",
    "WITH_PYNNDESCENT",
    "WITH_NUMBA",
    "WITH_SENTENCE_TRANSFORMERS",
    "WITH_FAISS",
    "WITH_PYMETIS",
    "WITH_LIGHTNING",
    "MissingDependencyError",
    "require",
    "cupy_usable",
    "capabilities",
]


class MissingDependencyError(ImportError):
    """An optional package that a call needs is not installed (or fails to import)."""


# import name -> (pip package, graphbatch extra or None for a core dependency)
_OPTIONAL: dict[str, tuple[str, str | None]] = {
    "cupy": ("cupy-cuda12x or cupy-cuda13x", "cuda12"),
    "cupyx": ("cupy-cuda12x or cupy-cuda13x", "cuda12"),
    "torch_sparse": ("torch-sparse", "torch-sparse"),
    "faiss": ("faiss-cpu (or faiss-gpu)", "faiss"),
    "pymetis": ("pymetis", "metis"),
    "lightning": ("lightning", "lightning"),
    "sentence_transformers": ("sentence-transformers", "sentence"),
    "pynndescent": ("pynndescent", None),
    "numba": ("numba", None),
    "torch_geometric": ("torch-geometric", None),
    "sklearn": ("scikit-learn", None),
    "matplotlib": ("matplotlib", None),
}


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:  # noqa: BLE001 - a broken install can raise anything here
        return False


def _cuda_available() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


WITH_CUDA: bool = _cuda_available()
WITH_CUPY: bool = _installed("cupy")
WITH_TORCH_SPARSE: bool = _installed("torch_sparse")
WITH_PYNNDESCENT: bool = _installed("pynndescent")
WITH_NUMBA: bool = _installed("numba")
WITH_SENTENCE_TRANSFORMERS: bool = _installed("sentence_transformers")
WITH_FAISS: bool = _installed("faiss")
WITH_PYMETIS: bool = _installed("pymetis")
WITH_LIGHTNING: bool = _installed("lightning")


def require(name: str, purpose: str = "") -> ModuleType:
    """Import an optional package or raise a clear error.

    Args:
        name: import name, e.g. ``"cupy"``, ``"torch_sparse"``, ``"cupyx.scipy.sparse"``.
        purpose: what the caller wanted to do, quoted in the error message.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: the package is not installed or fails to import;
            the message names the pip package and the graphbatch extra.

    Example:
        >>> from graphbatch.backend import require, MissingDependencyError
        >>> try:
        ...     require("no_such_package_xyz", "a demo")
        ... except MissingDependencyError as e:
        ...     print(str(e).split(" (")[0])
        graphbatch needs the optional package 'no_such_package_xyz' for a demo, which is not available
    """
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        top = name.split(".")[0]
        dist, extra = _OPTIONAL.get(top, (top, None))
        why = f" for {purpose}" if purpose else ""
        hint = f"pip install {dist}" if extra is None else f"pip install 'graphbatch[{extra}]'"
        raise MissingDependencyError(
            f"graphbatch needs the optional package '{name}'{why}, which is not available "
            f"({type(exc).__name__}: {exc}). Install it with: {hint}  [pip package: {dist}]"
        ) from exc


_PROBES: dict[str, tuple[bool, str]] = {}


def _probe_cupy() -> tuple[bool, str]:
    if not (WITH_CUPY and WITH_CUDA):
        return False, "CuPy is not installed" if not WITH_CUPY else "torch sees no CUDA device"
    try:
        cp = importlib.import_module("cupy")
        sp = importlib.import_module("cupyx.scipy.sparse")
        a = sp.csr_matrix((cp.ones(1), cp.zeros(1, dtype=cp.int32), cp.array([0, 1], dtype=cp.int32)), shape=(1, 1))
        ok = float((a @ cp.ones((1, 2))).sum()) == 2.0
        return ok, "" if ok else "a 1x1 sparse product gave a wrong result"
    except Exception as exc:  # noqa: BLE001 - no driver, NVRTC, nvJitLink, ...: any failure means unusable
        return False, f"{type(exc).__name__}: {exc}"


def cupy_usable(*, warn: bool = True) -> bool:
    """Whether CuPy works here: imported and a tiny sparse product run on the GPU (probed once).

    With ``warn``, an installed CuPy that fails the probe warns once (with the reason), so
    callers that fall back to the torch engine say so.

    Example:
        >>> from graphbatch.backend import cupy_usable, WITH_CUPY
        >>> cupy_usable(warn=False) if not WITH_CUPY else True
        False
    """
    if "cupy" not in _PROBES:
        _PROBES["cupy"] = _probe_cupy()
        ok, why = _PROBES["cupy"]
        if warn and WITH_CUPY and WITH_CUDA and not ok:
            warnings.warn(f"CuPy is installed but unusable ({why}); graphbatch uses its torch engine instead",
                          RuntimeWarning, stacklevel=2)
    return _PROBES["cupy"][0]


def capabilities() -> dict[str, bool]:
    """The capability flags as a dict (for reports and bug reports); probes nothing."""
    return {name: globals()[name] for name in __all__ if name.startswith("WITH_")}
