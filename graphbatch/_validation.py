"""Argument checks shared by the whole package: one place, one message style.

Every check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right
kind, wrong value) with a message of the form ``"<name> must be <what>, got
<value>"``, naming the argument as the caller spells it. Never ``assert``:
asserts vanish under ``python -O``.

Accepted types, everywhere: integers are Python ``int``, NumPy integers and
0-d integer tensors (never ``bool``); reals add Python/NumPy floats and 0-d
float tensors; booleans are ``bool`` and ``numpy.bool_``.

Example:
    >>> from graphbatch._validation import check_int, check_choice
    >>> check_int("k", 5, low=1)
    5
    >>> check_choice("metric", "cosine", ("cosine", "ip"))
    'cosine'
"""
from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "describe",
    "check_int",
    "check_real",
    "check_probability",
    "check_bool",
    "check_choice",
    "check_seed",
    "check_device",
    "check_generator",
    "check_dtype",
    "as_index_tensor",
    "as_float_matrix",
    "as_embedding_rows",
    "to_float32",
]

MAX_SEED = 2**63 - 1


def describe(value: Any) -> str:
    """``value`` for an error message: its repr (shortened), with the type when that is not obvious."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, (bool, int, float, str)) or value is None:
        return text
    return f"{type(value).__name__} {text}"


def _scalar(value: Any) -> Any:
    """Unwrap a 0-d tensor or NumPy array into a Python/NumPy scalar (anything else unchanged)."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]``.

    Raises:
        TypeError: not an integer (``bool`` and floats are refused, even ``2.0``).
        ValueError: outside the bounds.
    """
    v = _scalar(value)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int, got {describe(value)}")
    v = int(v)
    if low is not None and v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def check_real(name: str, value: Any, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in the interval given by ``low``/``high`` (closed unless ``*_open``).

    Raises:
        TypeError: not a real number.
        ValueError: NaN, infinite or outside the interval.
    """
    v = _scalar(value)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    v = float(v)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {v!r}")
    return v


def check_probability(name: str, value: Any, *, open_low: bool = True, closed_high: bool = True) -> float:
    """``value`` as a ``float`` in ``(0, 1]`` (default), ``[0, 1]``, ``(0, 1)`` or ``[0, 1)``."""
    return check_real(name, value, low=0.0, high=1.0, low_open=open_low, high_open=not closed_high)


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a ``bool`` (``bool`` and ``numpy.bool_`` only: ``0``/``1`` and strings are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {describe(value)}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared with ``==`` among values of the same type)."""
    choices = tuple(choices)
    if not any(type(value) is type(c) and value == c for c in choices):
        options = ", ".join(repr(c) for c in choices)
        if isinstance(value, str) or not all(isinstance(c, str) for c in choices):
            raise ValueError(f"{name} must be one of {options}, got {describe(value)}")
        raise TypeError(f"{name} must be one of {options}, got {describe(value)}")
    return value


def check_seed(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """A seed: an int in ``[0, 2**63 - 1]`` (or ``None`` when ``allow_none``)."""
    if value is None and allow_none:
        return None
    return check_int(name, value, low=0, high=MAX_SEED)


def check_device(name: str, value: Any, *, default: torch.device | None = None) -> torch.device:
    """A torch device from a ``str`` or ``torch.device`` (``None`` gives ``default``); CUDA must be usable.

    Raises:
        TypeError: not a str / torch.device.
        ValueError: not a device name, or CUDA asked for without a CUDA device visible to torch.
    """
    if value is None and default is not None:
        return default
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a str or torch.device, got {describe(value)}")
    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{name} must be a torch device such as 'cpu' or 'cuda:0', got {value!r} ({exc})") from None
    if dev.type == "cuda":
        from . import backend

        if not backend.WITH_CUDA:
            raise ValueError(f"{name} must be a usable device, got {value!r}, but torch sees no CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name} must be a usable device, got {value!r}, but only "
                             f"{torch.cuda.device_count()} CUDA device(s) are visible")
    return dev


def check_generator(name: str, value: Any) -> torch.Generator | None:
    """``value`` if it is a ``torch.Generator`` or ``None``."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {describe(value)}")
    return value


def check_dtype(name: str, value: Any, choices: Sequence[torch.dtype] = (torch.float32, torch.float64)) -> torch.dtype:
    """``value`` if it is one of the torch dtypes ``choices``."""
    if not isinstance(value, torch.dtype) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(str(c) for c in choices)}, got {describe(value)}")
    return value


def as_index_tensor(name: str, value: Any, *, num_nodes: int | None = None,
                    device: torch.device | None = None, allow_empty: bool = False) -> torch.Tensor:
    """A sequence / array / tensor of node indices as a 1-D int64 tensor, range-checked against ``num_nodes``.

    A single integer is taken as one index.
    """
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, (np.ndarray, list, tuple, range)):
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{name} must hold integers, got a sequence of mixed or non-numeric values")
        if arr.dtype.kind in "US":
            raise TypeError(f"{name} must hold integers, got strings (dtype {arr.dtype})")
        t = torch.as_tensor(arr)
    elif isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_)):
        t = torch.tensor([int(value)])
    else:
        raise TypeError(f"{name} must be a 1-D sequence, array or tensor of ints, got {describe(value)}")
    if t.numel() == 0:
        if not allow_empty:
            raise ValueError(f"{name} must not be empty")
        t = t.reshape(0).to(torch.int64)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    t = t.to(device=device if device is not None else t.device, dtype=torch.int64)
    if num_nodes is not None and t.numel() > 0:
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= num_nodes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must hold indices in [0, {num_nodes}), got {bad}")
    return t


def _first_bad_row(t: torch.Tensor) -> int:
    return int(torch.nonzero(~torch.isfinite(t).all(dim=1))[0, 0])


def as_float_matrix(name: str, value: Any, *, allow_empty: bool = False, finite: bool = True) -> torch.Tensor:
    """A 2-D real array / tensor as a floating torch tensor (device and float dtype kept).

    Integer and boolean inputs become float32 (a 0/1 fingerprint is a valid embedding).
    With ``finite`` NaN and infinite values are refused, naming the first bad row.
    """
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        t = torch.from_numpy(value)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {describe(value)}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {tuple(t.shape)}")
    if (t.shape[0] == 0 or t.shape[1] == 0) and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {tuple(t.shape)}")
    if t.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    if finite and t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got NaN or infinite values (first in row {_first_bad_row(t)})")
    return t


def as_embedding_rows(name: str, value: Any, *, width: int | None = None) -> torch.Tensor:
    """Embedding rows ``(n, d)`` for a sampler's bank: float tensor, ``d >= 1`` (and ``== width`` if given).

    Unlike :func:`as_float_matrix` this keeps NaN (a bank may hold it; the refresh refuses it)
    and allows ``n = 0``.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            raise TypeError(f"{name} must be floating point, got dtype {value.dtype}")
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {describe(value)}")
    if value.dim() != 2 or value.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D (n, d) with d >= 1, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {value.dtype}")
    if width is not None and value.shape[1] != width:
        raise ValueError(f"{name} must have width d={width} (the bank's), got {value.shape[1]}")
    return value


def to_float32(name: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, refusing finite values that float32 cannot hold (they would become infinite)."""
    out = t.to(torch.float32)
    if t.dtype == torch.float64 and out.numel() and not bool(torch.isfinite(out).all()) \
            and bool(torch.isfinite(t).all()):
        biggest = float(t.abs().max())
        raise ValueError(f"{name} must fit in float32, got values too large for float32 (max |x| = {biggest:.3g}); "
                         f"scale the embeddings (cosine similarity does not change)")
    return out


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside graphbatch (the user's line)."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
