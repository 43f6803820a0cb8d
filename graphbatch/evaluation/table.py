"""A tiny column table (pandas is not a dependency) for hardness results.

:class:`Table` is an ordered mapping of column name to 1-D array with row access, records, and a
fixed-width text rendering; :func:`to_json_safe` turns results into JSON-writable values.

Example:
    >>> from graphbatch.evaluation import Table
    >>> t = Table({"name": ["a", "b"], "x": [1.0, 2.5]})
    >>> t["x"].mean(), t[1]["name"], len(t)
    (np.float64(1.75), 'b', 2)
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["Table", "to_json_safe"]


class Table:
    """A minimal column-oriented table: an ordered mapping of column name to 1-D numpy array.

    Numeric columns are float/int arrays; other columns (names, settings) are object arrays.
    ``table["col"]`` gives a column, ``table[i]`` a row as a dict, ``len(table)`` the number of
    rows; :meth:`to_records` gives a list of row dicts with plain Python values (NaN kept as
    ``float('nan')`` unless ``json_safe=True``, which writes ``None``), :meth:`to_string`
    a fixed-width text rendering.

    Args:
        columns: mapping of column name to a sequence; all of the same length.

    Example:
        >>> from graphbatch.evaluation import Table
        >>> t = Table({"name": ["a", "b"], "x": [1.0, 2.5]})
        >>> t["x"].mean(), t[1]["name"], len(t)
        (np.float64(1.75), 'b', 2)
        >>> print(t.to_string())
        name      x
        a    1.0000
        b    2.5000
    """

    def __init__(self, columns: Mapping[str, Any]):
        if not isinstance(columns, Mapping):
            raise TypeError(f"columns must be a mapping of name -> sequence, got {type(columns).__name__}")
        self._cols: dict[str, np.ndarray] = {}
        length: int | None = None
        for name, values in columns.items():
            if not isinstance(name, str):
                raise TypeError(f"column names must be str, got {name!r}")
            arr = _as_column(values)
            if length is None:
                length = arr.shape[0]
            elif arr.shape[0] != length:
                raise ValueError(f"column {name!r} has {arr.shape[0]} rows, expected {length}")
            self._cols[name] = arr
        self._len = 0 if length is None else length

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        return list(self._cols)

    def __len__(self) -> int:
        return self._len

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in self._cols:
                raise KeyError(f"no column {key!r}; columns are {self.columns}")
            return self._cols[key]
        if isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, bool):
            i = int(key)
            if not -self._len <= i < self._len:
                raise IndexError(f"row {i} out of range for a table of {self._len} rows")
            return {name: _py(col[i]) for name, col in self._cols.items()}
        raise TypeError(f"index a Table with a column name or a row number, got {type(key).__name__}")

    def to_records(self, json_safe: bool = False) -> list[dict[str, Any]]:
        """Rows as dicts of plain Python values; ``json_safe`` turns NaN/inf into ``None``."""
        rows = [self[i] for i in range(self._len)]
        return [to_json_safe(r) for r in rows] if json_safe else rows

    def to_dict(self) -> dict[str, list[Any]]:
        """Columns as lists of plain Python values."""
        return {name: [_py(v) for v in col] for name, col in self._cols.items()}

    def to_string(self, float_format: str = "{:.4f}", columns: Sequence[str] | None = None,
                  max_rows: int | None = None) -> str:
        """Render as fixed-width text (numbers right-, text left-aligned), optionally some columns / rows."""
        names = list(columns) if columns is not None else self.columns
        n = self._len if max_rows is None else min(self._len, max_rows)
        cells = [[_fmt(self._cols[c][i], float_format) for c in names] for i in range(n)]
        widths = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(names)]
        left = [self._cols[c].dtype == object for c in names]  # text columns left-aligned

        def line(vals: Sequence[str]) -> str:
            return " ".join((v.ljust(w) if lf else v.rjust(w)) for v, w, lf in zip(vals, widths, left)).rstrip()

        lines = [line(names)] + [line(row) for row in cells]
        if n < self._len:
            lines.append(f"... ({self._len - n} more rows)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"Table({self._len} rows; columns={self.columns})"


def _as_column(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            out[i] = v
        return out
    return arr


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def to_json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): to_json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return [to_json_safe(x) for x in v.tolist()]
    v = _py(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _fmt(v: Any, float_format: str) -> str:
    v = _py(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else float_format.format(v)
    if isinstance(v, dict):
        return ",".join(f"{k}={x}" for k, x in v.items())
    return str(v)
