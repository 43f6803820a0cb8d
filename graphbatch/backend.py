"""Capabilities and optional dependencies, probed in one place.

Every optional package graphbatch can use is detected here, once, at import
time, without importing anything heavy (pynndescent pulls in numba and is only
located, not imported). Code that needs an optional package calls
:func:`require`, which returns the module or raises
:class:`MissingDependencyError` naming the package and the extra that installs
it.

Attributes:
    WITH_CUDA: a CUDA device is usable from torch.
    WITH_CUPY: CuPy imports (it may still lack a device; see ``WITH_CUDA``).
    WITH_TORCH_SPARSE: ``torch_sparse`` imports.
    WITH_PYNNDESCENT: ``pynndescent`` is installed.
    WITH_NUMBA: ``numba`` is installed (compiled samplers and push engine).
    WITH_SENTENCE_TRANSFORMERS: ``sentence_transformers`` is installed.

Example:
    >>> from graphbatch import backend
    >>> isinstance(backend.WITH_CUPY, bool)
    True
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import torch

__all__ = [
    "WITH_CUDA",
    "WITH_CUPY",
    "WITH_TORCH_SPARSE",
    "WITH_PYNNDESCENT",
    "WITH_NUMBA",
    "WITH_SENTENCE_TRANSFORMERS",
    "MissingDependencyError",
    "require",
    "capabilities",
]


class MissingDependencyError(ImportError):
    """An optional package that a call needs is not installed (or fails to import)."""


# package import name -> (distribution name, extra that installs it)
_OPTIONAL: dict[str, tuple] = {
    "cupy": ("cupy-cuda12x or cupy-cuda13x", "cuda12 / cuda13"),
    "cupyx": ("cupy-cuda12x or cupy-cuda13x", "cuda12 / cuda13"),
    "torch_sparse": ("torch-sparse", "torch-sparse"),
    "pynndescent": ("pynndescent", "(core dependency)"),
    "numba": ("numba", "(core dependency)"),
    "sentence_transformers": ("sentence-transformers", "sentence"),
    "torch_geometric": ("torch-geometric", "(core dependency)"),
    "sklearn": ("scikit-learn", "(core dependency)"),
    "matplotlib": ("matplotlib", "(core dependency)"),
}


def _importable(name: str) -> bool:
    """Import ``name``; any exception (a broken CUDA install raises more than ImportError) means no."""
    try:
        importlib.import_module(name)
        return True
    except Exception:  # noqa: BLE001 - deliberately broad, see docstring
        return False


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:  # noqa: BLE001
        return False


def _cuda_available() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


WITH_CUDA: bool = _cuda_available()
# CuPy import is cheap when absent and needed on GPU anyway; importing it also
# tells a broken install (wrong CUDA major) apart from a working one.
WITH_CUPY: bool = _installed("cupy") and _importable("cupy")
WITH_TORCH_SPARSE: bool = _installed("torch_sparse") and _importable("torch_sparse")
WITH_PYNNDESCENT: bool = _installed("pynndescent")
WITH_NUMBA: bool = _installed("numba")
WITH_SENTENCE_TRANSFORMERS: bool = _installed("sentence_transformers")


def require(name: str, purpose: str = "") -> ModuleType:
    """Import an optional package or raise a clear error.

    Args:
        name: import name, e.g. ``"cupy"``, ``"torch_sparse"``, ``"pynndescent"``.
        purpose: what the caller wanted to do, quoted in the error message.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: the package is not installed or fails to import;
            the message names the pip package and the graphbatch extra.
    """
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        dist, extra = _OPTIONAL.get(name, (name, None))
        why = f" for {purpose}" if purpose else ""
        hint = f"pip install {dist}" if extra is None or extra.startswith("(") else (
            f"pip install 'graphbatch[{extra.split(' / ')[0]}]'"
            + (f" (or [{extra.split(' / ')[1]}])" if " / " in extra else "")
        )
        raise MissingDependencyError(
            f"graphbatch needs the optional package '{name}'{why}, which is not available "
            f"({type(exc).__name__}: {exc}). Install it with: {hint}  [pip package: {dist}]"
        ) from exc


def capabilities() -> dict[str, bool]:
    """Return the capability flags as a dict (for reports and bug reports)."""
    return {
        "WITH_CUDA": WITH_CUDA,
        "WITH_CUPY": WITH_CUPY,
        "WITH_TORCH_SPARSE": WITH_TORCH_SPARSE,
        "WITH_PYNNDESCENT": WITH_PYNNDESCENT,
        "WITH_NUMBA": WITH_NUMBA,
        "WITH_SENTENCE_TRANSFORMERS": WITH_SENTENCE_TRANSFORMERS,
    }
