"""A sampler's ``state_dict``: what it holds, and a ``load_state_dict`` that validates everything before it commits.

The state is a dict of tensors, ints, floats, strings, bools, ``None`` and dicts of those, so
``torch.load(..., weights_only=True)`` reads a saved one. :func:`restore` checks the format, the
configuration (every setting that decides the batches: it names each one that differs), the plan
(a permutation of ``range(N)``), the counters, the bank and the masks, and the model's arrays,
into locals first; only when all of it is valid does it replace the sampler's state, so a bad
state leaves the sampler exactly as it was.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

__all__ = ["dump", "restore", "STATE_VERSION"]

STATE_VERSION = 2


def dump(s: Any, include_bank: bool) -> dict[str, Any]:
    """The state of sampler ``s`` (see :meth:`EpochBatchSampler.state_dict`)."""
    bank = s._bank
    return {
        "format": type(s).__name__, "version": STATE_VERSION, "config": s.config(),
        "epoch": s._epoch, "next_epoch": s._next_epoch, "in_progress": s._in_progress,
        "yielded": s._yielded, "step": s._step, "last_refresh_step": s._last_refresh_step,
        "plan": None if s._plan_arr is None else torch.from_numpy(s._plan_arr.copy()),
        "plan_version": s._plan_version, "model_version": s._version,
        "model": s._model.state_dict(s._state) if s._state is not None else None,
        "bank": None if (bank.rows is None or not include_bank) else bank.rows.detach().cpu().clone(),
        "seen": torch.from_numpy(bank.seen.copy()), "dirty": torch.from_numpy(bank.dirty.copy()),
        "stats": dict(s.stats),
    }


def _int(state: dict, key: str, low: int, high: int | None = None) -> int:
    v = state.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low or (high is not None and v > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"state['{key}'] must be an int {bound}, got {v!r}")
    return int(v)


def _mask(state: dict, key: str, n: int) -> np.ndarray:
    t = state.get(key)
    if not isinstance(t, torch.Tensor) or t.dtype != torch.bool or tuple(t.shape) != (n,):
        raise ValueError(f"state['{key}'] must be a bool tensor of shape ({n},), got "
                         f"{type(t).__name__} {getattr(t, 'dtype', '')} {tuple(getattr(t, 'shape', ()))}")
    return t.numpy().copy()


def _check_config(s: Any, state: dict) -> None:
    mine, theirs = s.config(), state.get("config")
    if not isinstance(theirs, dict):
        raise ValueError("state has no 'config' (saved by another version of graphbatch?)")
    differ = [k for k in mine if theirs.get(k, mine[k]) != mine[k]] + [k for k in theirs if k not in mine]
    if differ:
        raise ValueError("state was saved with another configuration: " + ", ".join(
            f"{k}={theirs.get(k)!r} (this sampler: {mine.get(k)!r})" for k in differ))


def _plan(state: dict, n: int) -> np.ndarray | None:
    p = state.get("plan")
    if p is None:
        return None
    if not isinstance(p, torch.Tensor) or p.dim() != 1 or p.is_floating_point() or p.numel() != n:
        raise ValueError(f"state['plan'] must be a 1-D integer tensor of {n} node indices, got "
                         f"{type(p).__name__} {tuple(getattr(p, 'shape', ()))}")
    arr = p.numpy().astype(np.int64)
    if arr.min() < 0 or arr.max() >= n or np.bincount(arr, minlength=n).max() != 1:
        raise ValueError(f"state['plan'] must be a permutation of range({n}) (every node once)")
    return arr


def restore(s: Any, state: Any) -> None:
    """Validate ``state`` completely, then make it sampler ``s``'s state (see :meth:`load_state_dict`)."""
    if not isinstance(state, dict) or state.get("format") != type(s).__name__:
        raise ValueError(f"state must be a state_dict of a {type(s).__name__}, got "
                         f"{state.get('format') if isinstance(state, dict) else type(state).__name__}")
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"state has version {state.get('version')}, expected {STATE_VERSION}")
    _check_config(s, state)
    n = s.num_nodes
    new = SimpleNamespace()
    new.plan = _plan(state, n)
    new.epoch = _int(state, "epoch", -1)
    new.next_epoch = _int(state, "next_epoch", 0)
    if not isinstance(state.get("in_progress"), (bool, np.bool_)):
        raise ValueError(f"state['in_progress'] must be a bool, got {state.get('in_progress')!r}")
    new.in_progress = bool(state["in_progress"])
    if new.in_progress and new.plan is None:
        raise ValueError("state['plan'] is missing for an epoch in progress")
    new.yielded = _int(state, "yielded", 0, len(s))
    new.step = _int(state, "step", new.yielded)
    new.last_refresh_step = _int(state, "last_refresh_step", 0, new.step)
    new.version = _int(state, "model_version", 0)
    new.plan_version = _int(state, "plan_version", -1, new.version)
    new.seen, new.dirty = _mask(state, "seen", n), _mask(state, "dirty", n)
    rows = state.get("bank")
    if rows is not None and (not isinstance(rows, torch.Tensor) or rows.dim() != 2 or rows.shape[0] != n
                             or not rows.is_floating_point()):
        raise ValueError(f"state['bank'] must be a float tensor ({n}, d), got {type(rows).__name__} "
                         f"{tuple(getattr(rows, 'shape', ()))}")
    if not isinstance(state.get("stats"), dict):
        raise ValueError("state['stats'] must be a dict")
    new.state = new.prepared = None
    if state.get("model") is not None:
        if not s.learns:
            raise ValueError(f"state['model'] must be None for a {type(s).__name__}")
        dev = s._bank.rows.device if s._bank.rows is not None else torch.device("cpu")
        try:
            new.state = s._model.load_state(state["model"], dev)
            bank = SimpleNamespace(rows=None if rows is None else rows.to(dev), seen=new.seen, dirty=new.dirty)
            new.prepared = s._model.prepare(new.state, bank, None)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"state['model'] is not a valid model state: {type(exc).__name__}: {exc}") from None
    # everything is valid: commit
    s._plan_arr, s._plan_list = new.plan, None
    s._epoch, s._next_epoch, s._in_progress = new.epoch, new.next_epoch, new.in_progress
    s._yielded, s._step, s._last_refresh_step = new.yielded, new.step, new.last_refresh_step
    s._plan_version, s._version = new.plan_version, new.version
    bank = s._bank
    if rows is not None:
        dev = bank.rows.device if bank.rows is not None else "cpu"
        bank.rows = rows.to(dev, bank.dtype or rows.dtype, copy=True)
        bank.seen, bank.dirty = new.seen, new.dirty
    elif s.learns:  # saved without the bank: it must be filled again by update()
        bank.forget()
    else:
        bank.seen, bank.dirty = new.seen, new.dirty
    s._state, s._prepared = new.state, new.prepared
    s.stats = dict(state["stats"])
