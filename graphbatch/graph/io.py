"""Saving and loading a :class:`~graphbatch.ProximityGraph`.

The file is a torch file (``torch.load(..., weights_only=True)`` reads it)
holding a dict ``{"format", "version", "num_nodes", "crow", "col", "values"}``.
:func:`save` is atomic and safe with concurrent writers (every DDP rank saving
to one path): it writes a temporary file with a unique name in the target's
folder, flushes it to disk, renames it over the target and removes it on any
failure, so readers see either the old file or the new one, never a part.

Example:
    >>> import os, tempfile, torch
    >>> from graphbatch import ProximityGraph
    >>> g = ProximityGraph.from_neighbors(torch.tensor([[1], [0]]))
    >>> path = os.path.join(tempfile.mkdtemp(), "g.pt")
    >>> g.save(path)
    >>> ProximityGraph.load(path).equal(g), os.listdir(os.path.dirname(path))
    (True, ['g.pt'])
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Union

import torch

__all__ = ["save", "load", "atomic_write", "FORMAT", "FORMAT_VERSION"]

FORMAT = "graphbatch.ProximityGraph"
FORMAT_VERSION = 1
_KEYS = ("num_nodes", "crow", "col", "values")


def atomic_write(path: Union[str, os.PathLike], write: Any) -> None:
    """Call ``write(file_object)`` on a unique temporary file beside ``path``, fsync it, rename it to ``path``.

    The temporary file is removed if anything fails (the exception propagates).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def save(g: Any, path: Union[str, os.PathLike]) -> None:
    """Write ``g`` to ``path`` atomically (see the module docstring)."""
    state = {"format": FORMAT, "version": FORMAT_VERSION, "num_nodes": g.num_nodes,
             "crow": g.crow.cpu(), "col": g.col.cpu(), "values": g.values.cpu()}
    atomic_write(path, lambda fh: torch.save(state, fh))


def load(cls: type, path: Union[str, os.PathLike], device: Any = None) -> Any:
    """Read and validate a graph written by :func:`save`, onto ``device`` (default CPU).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is empty, truncated, not a torch file, not a saved graph, of
            another format version, or holds inconsistent arrays (the message says which).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no saved ProximityGraph at {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty, not a saved ProximityGraph")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds (EOFError, KeyError, UnpicklingError, ...)
        raise ValueError(f"{path} is not a readable saved ProximityGraph (truncated or another kind of file: "
                         f"{type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved ProximityGraph (no '{FORMAT}' format marker)")
    if state.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {state.get('version')}, expected {FORMAT_VERSION}")
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise ValueError(f"{path} is a damaged saved ProximityGraph: missing {missing}")
    try:
        g = cls(state["crow"], state["col"], state["values"], state["num_nodes"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path} is a damaged saved ProximityGraph: {exc}") from None
    return g.to(device) if device is not None else g
