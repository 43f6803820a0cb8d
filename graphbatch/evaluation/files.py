"""Reading the arrays of ``graphbatch analyze``: ``.npy``, ``.npz`` (one named array), CSV / TSV / text.

Embeddings may be floats, integers, or bool / uint8 fingerprints (read as 0/1). Labels may be
numbers or strings. Text files: one row per instance, fields separated by ``,`` (``.csv``), tabs
(``.tsv``) or whitespace / commas (anything else); a first row that is not numeric while the rest
are is a header and skipped. An ``.npz`` archive with several arrays needs ``FILE.npz:NAME``.

Example:
    >>> import os, tempfile
    >>> from graphbatch.evaluation.files import read_array
    >>> path = os.path.join(tempfile.mkdtemp(), "e.csv")
    >>> _ = open(path, "w").write("a,b\\n1,2\\n3,4\\n")
    >>> read_array("--embeddings", path).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
"""
from __future__ import annotations

import csv
import os
import zipfile

import numpy as np

__all__ = ["read_array", "FileError"]

_TEXT = (".csv", ".tsv", ".txt", ".dat")
#: A labels file whose first field is one of these has a header row (strings labels cannot tell).
_LABEL_HEADERS = {"label", "labels", "y", "class", "target", "category"}


class FileError(ValueError):
    """An input file cannot be read as asked (the message names the file and why)."""


def _numeric(field: str) -> bool:
    try:
        float(field)
        return True
    except ValueError:
        return False


def _rows(path: str) -> list[list[str]]:
    suffix = os.path.splitext(path)[1].lower()
    with open(path, newline="", encoding="utf-8") as fh:
        text = fh.read()
    if suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))
    elif suffix == ".tsv":
        rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    else:
        rows = [line.replace(",", " ").split() for line in text.splitlines()]
    return [[f.strip() for f in r] for r in rows if r and any(f.strip() for f in r)]


def _from_text(name: str, path: str, labels: bool) -> np.ndarray:
    rows = _rows(path)
    if not rows:
        raise FileError(f"{name}: {path} holds no rows")
    if len(rows) > 1 and not all(_numeric(f) for f in rows[0]) and all(_numeric(f) for f in rows[1]):
        rows = rows[1:]  # a header
    elif labels and rows[0] and rows[0][0].lower() in _LABEL_HEADERS:
        rows = rows[1:]
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise FileError(f"{name}: {path} has rows of different lengths ({sorted(widths)[:4]} fields)")
    if labels:
        if widths != {1}:
            raise FileError(f"{name}: {path} must hold one label per row, got {widths.pop()} fields")
        values = [r[0] for r in rows]
        if all(_numeric(v) for v in values):
            arr = np.array([float(v) for v in values])
            return arr.astype(np.int64) if np.all(arr == np.round(arr)) else arr
        return np.array(values, dtype=str)
    bad = next(((i, f) for i, r in enumerate(rows) for f in r if not _numeric(f)), None)
    if bad is not None:
        raise FileError(f"{name}: {path} row {bad[0] + 1} holds a non-numeric field {bad[1]!r}")
    return np.array([[float(f) for f in r] for r in rows], dtype=np.float64)


def _from_npz(name: str, path: str, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        if key is None:
            if len(keys) != 1:
                raise FileError(f"{name}: {path} holds {len(keys)} arrays ({', '.join(keys[:6])}); pass "
                                f"{path}:NAME to pick one")
            key = keys[0]
        if key not in keys:
            raise FileError(f"{name}: {path} has no array {key!r} (it holds {', '.join(keys[:6])})")
        return z[key]


def read_array(name: str, path: str, *, labels: bool = False) -> np.ndarray:
    """The array in ``path`` (``FILE.npz:NAME`` picks one array of an archive).

    Raises:
        FileError: missing, empty or unreadable file, or an archive without the array asked for.
    """
    key = None
    if not os.path.exists(path) and ":" in path and path.rsplit(":", 1)[0].lower().endswith(".npz"):
        path, key = path.rsplit(":", 1)
    if not os.path.exists(path):
        raise FileError(f"{name}: file not found: {path}")
    if os.path.isdir(path):
        raise FileError(f"{name}: {path} is a folder, expected a file")
    if os.path.getsize(path) == 0:
        raise FileError(f"{name}: {path} is empty")
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npz" or (suffix != ".npy" and zipfile.is_zipfile(path) and suffix not in _TEXT):
            arr = _from_npz(name, path, key)
        elif suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = _from_text(name, path, labels)
    except FileError:
        raise
    except UnicodeDecodeError:
        raise FileError(f"{name}: {path} is neither a NumPy file nor text (expected .npy, .npz, .csv, .tsv, "
                        f".txt)") from None
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError, OSError, EOFError, ... for damaged files
        raise FileError(f"{name}: cannot read {path} ({type(exc).__name__}: {exc})") from None
    if not labels and arr.dtype.kind == "b":
        arr = arr.astype(np.float32)  # fingerprints: 0/1
    if labels and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr
