"""Small argument checks that raise ``ValueError``/``TypeError`` naming the argument.

Never ``assert``: asserts vanish under ``python -O``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an integer in ``[low, high]`` and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value.item())
        else:
            raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_probability(name: str, value: Any, *, open_low: bool = True, closed_high: bool = True) -> float:
    """Check that ``value`` is a real number in (0, 1] (default) and return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} ({value!r})")
    value = float(value)
    lo_ok = value > 0.0 if open_low else value >= 0.0
    hi_ok = value <= 1.0 if closed_high else value < 1.0
    if not (math.isfinite(value) and lo_ok and hi_ok):
        lo = "(0" if open_low else "[0"
        hi = "1]" if closed_high else "1)"
        raise ValueError(f"{name} must lie in {lo}, {hi}, got {value}")
    return value


def as_index_tensor(name: str, value: Any, *, num_nodes: int | None = None,
                    device: torch.device | None = None, allow_empty: bool = False) -> torch.Tensor:
    """Convert a sequence/array/tensor of node indices to a 1-D int64 tensor and range-check it."""
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, (np.ndarray, list, tuple, range)):
        t = torch.as_tensor(np.asarray(value))
    elif isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        t = torch.tensor([int(value)])
    else:
        raise TypeError(f"{name} must be a 1-D sequence, array or tensor of ints, got {type(value).__name__}")
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
            raise ValueError(f"{name} holds index {bad}, outside [0, {num_nodes})")
    return t


def as_float_matrix(name: str, value: Any, *, allow_empty: bool = False) -> torch.Tensor:
    """Convert a 2-D float array/tensor to a floating torch tensor (device kept); reject NaN/inf."""
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, np.ndarray):
        t = torch.from_numpy(value)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(value).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {tuple(t.shape)}")
    if (t.shape[0] == 0 or t.shape[1] == 0) and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        if t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"{name} must be real-valued, got dtype {t.dtype}")
        t = t.to(torch.float32)
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t
