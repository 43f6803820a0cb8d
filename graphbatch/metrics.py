"""How hard are the negatives in a batch? Per-batch and per-epoch hardness metrics.

In-batch contrastive learning treats every other member of a batch as a
negative. A sampler that packs similar instances together gives harder
negatives (and, if labels exist, more *false* negatives: pairs of the same
class pushed apart). This module measures both, for any sampler's epoch, from
frozen embeddings.

Definitions (``z_i`` = row ``i`` of the embeddings scaled to unit length,
``c_ij = z_i . z_j`` its cosine similarity; a batch ``B`` of size ``b`` is a
sequence of indices; its *pairs* are the ``b(b-1)/2`` unordered pairs of
distinct **positions**, so an index repeated in a batch forms a pair with
itself, of cosine 1 and equal label, which is what a training step sees):

* ``mean_cosine`` / ``max_cosine``: mean / max of ``c_ij`` over the pairs.
* ``global_mean_cosine`` ``mu``: the mean of ``c_ij`` over all ``N(N-1)``
  ordered pairs of distinct instances, computed exactly in ``O(Nd)`` as
  ``(||sum_i z_i||^2 - N) / (N(N-1))``. It is the expected ``mean_cosine`` of a
  batch drawn uniformly at random without replacement, of any size.
* ``excess_hardness`` = ``mean_cosine - mu``: 0 on average for random batches.
* ``z_score`` = ``excess_hardness / sd_b`` with ``sd_b`` the standard deviation
  of ``mean_cosine`` over uniformly random size-``b`` batches (without
  replacement). ``reference="analytic"`` computes ``sd_b`` exactly (the
  variance of a U-statistic under simple random sampling, see
  :func:`random_batch_reference`); ``reference="sampled"`` estimates it from
  ``num_random`` seeded random batches.
* ``false_negative_rate``: share of the pairs whose labels are equal.
* ``label_entropy``: Shannon entropy, in nats, of the label distribution in
  the batch (``log(b)`` at most; 0 when all labels agree).
* ``infonce``: the in-batch InfoNCE loss that a frozen encoder sees when each
  instance's positive is itself (a noise-free second view, similarity
  ``c_ii = 1``) and the other batch members are its negatives, i.e. the
  SimCLR / CLIP cross-entropy over the logits ``c_ij / tau``, row ``i``,
  target ``i``, averaged over the batch::

      infonce(B) = (1/b) sum_{i in B} [ log sum_{j in B} exp(c_ij / tau) - c_ii / tau ]

  It lies in ``[0, log b]``; harder negatives give larger values. It isolates
  the negative (uniformity) term of the training loss: what a sampler changes.
* ``position``: ``batch / num_batches``, where the batch sits in the epoch.

Batches of size 1 have no pairs: their pair metrics are NaN, their
``infonce`` and ``label_entropy`` are 0.

:func:`compare_samplers` runs several samplers (by default :func:`default_sampler_grid`:
random, kNN, cluster, bandwidth and RWR over a grid of M and restart probabilities) for one
epoch on the same embeddings and tabulates these metrics per sampler; :mod:`graphbatch.plots`
draws them and ``python -m graphbatch demo`` / ``analyze`` (:mod:`graphbatch.cli`) do it all
from the command line.

Example:
    >>> import numpy as np
    >>> from graphbatch.metrics import batch_hardness, epoch_summary
    >>> emb = np.random.default_rng(0).normal(size=(100, 8))
    >>> batches = [list(range(i, i + 10)) for i in range(0, 100, 10)]
    >>> table = batch_hardness(emb, batches, labels=np.arange(100) % 3)
    >>> len(table), table["mean_cosine"].shape
    (10, (10,))
    >>> epoch_summary(table, batches, num_nodes=100)["coverage"]
    1.0
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ._validation import as_float_matrix, as_index_tensor, check_int

__all__ = [
    "Table",
    "batch_hardness",
    "epoch_summary",
    "global_mean_cosine",
    "random_batch_reference",
    "HARDNESS_COLUMNS",
    "SamplerSpec",
    "default_sampler_grid",
    "compare_samplers",
]

#: The numeric per-batch columns :func:`batch_hardness` returns (label columns only with labels).
HARDNESS_COLUMNS = (
    "mean_cosine",
    "max_cosine",
    "excess_hardness",
    "z_score",
    "false_negative_rate",
    "label_entropy",
    "infonce",
)


# --------------------------------------------------------------------------------------------
# A tiny column table (pandas is not a dependency)
# --------------------------------------------------------------------------------------------
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
        return [_json_safe(r) for r in rows] if json_safe else rows

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


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_json_safe(x) for x in v.tolist()]
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


# --------------------------------------------------------------------------------------------
# Global statistics and the random-batch reference
# --------------------------------------------------------------------------------------------
def _unit_rows(embeddings: Any) -> torch.Tensor:
    """Validate the embeddings (2-D, finite, no all-zero row) and return them as a float tensor.

    The tensor keeps its dtype and device (no float64 copy of the whole matrix); rows are
    normalised in float64 by :func:`_unit64` only where they are used.
    """
    z = as_float_matrix("embeddings", embeddings)
    zero = torch.nonzero(~(z != 0).any(dim=1)).flatten()
    if zero.numel():
        raise ValueError(f"embeddings row {int(zero[0])} has zero norm; cosine similarity is undefined for it")
    return z


def _unit64(rows: torch.Tensor) -> torch.Tensor:
    """Rows (any leading shape, last dim d) cast to float64 and scaled to unit L2 norm."""
    x = rows.to(torch.float64)
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)


_ROW_CHUNK_ELEMS = 1 << 22  # float64 elements per row chunk in the global passes (32 MiB)


def _row_chunks(z: torch.Tensor):
    step = max(1, _ROW_CHUNK_ELEMS // max(1, z.shape[1]))
    for start in range(0, z.shape[0], step):
        yield _unit64(z[start:start + step])


def _global_stats(z: torch.Tensor) -> dict[str, float]:
    """Sufficient statistics of the off-diagonal cosine matrix for the random-batch reference.

    With ``C`` the cosine matrix with zero diagonal, ``r = C 1`` its row sums:
    ``T`` = sum over unordered pairs of ``c_ij``, ``A2`` = sum over unordered pairs of
    ``(c_ij - mu)^2``, ``A3`` = sum over ordered pairs of distinct unordered pairs sharing one
    node of ``(c_e - mu)(c_f - mu)``. All exact, in ``O(N d^2)`` time and ``O(d^2)`` extra
    memory (two passes over row chunks, in float64).
    """
    n, d = z.shape
    s = torch.zeros(d, dtype=torch.float64, device=z.device)
    gram = torch.zeros(d, d, dtype=torch.float64, device=z.device)
    sq_norms = 0.0   # sum_i c_ii
    diag_sq = 0.0    # sum_i c_ii^2
    for x in _row_chunks(z):
        s += x.sum(dim=0)
        gram += x.T @ x
        nn = (x * x).sum(dim=1)
        sq_norms += float(nn.sum())
        diag_sq += float((nn * nn).sum())
    total = (float(s @ s) - sq_norms) / 2.0           # T = sum over unordered pairs of c_ij
    pairs = n * (n - 1) / 2.0
    if n < 2:
        return {"n": n, "mu": float("nan"), "a2": 0.0, "a3": 0.0}
    mu = total / pairs
    a2_raw = (float((gram * gram).sum()) - diag_sq) / 2.0   # sum over unordered pairs of c_ij^2
    a2 = a2_raw - 2.0 * mu * total + mu * mu * pairs
    centred_sq = 0.0
    for x in _row_chunks(z):
        centred = x @ s - (x * x).sum(dim=1) - (n - 1) * mu  # r_i - (n-1) mu
        centred_sq += float((centred * centred).sum())
    a3 = centred_sq - 2.0 * a2
    return {"n": n, "mu": mu, "a2": max(a2, 0.0), "a3": a3}


def _falling(n: int, k: int) -> float:
    out = 1.0
    for i in range(k):
        out *= n - i
    return out


def _analytic_sd(stats: Mapping[str, float], b: int) -> float:
    """Standard deviation of the mean pairwise cosine of a uniform random size-``b`` subset."""
    n = int(stats["n"])
    if b < 2 or b > n:
        return float("nan")
    p2 = _falling(b, 2) / _falling(n, 2)
    p3 = _falling(b, 3) / _falling(n, 3) if n >= 3 else 0.0
    p4 = _falling(b, 4) / _falling(n, 4) if n >= 4 else 0.0
    # Var(S) for S = sum over the subset's pairs of (c_e - mu); E[S] = 0 and A4 = -A2 - A3.
    var_s = stats["a2"] * (p2 - p4) + stats["a3"] * (p3 - p4)
    var_s = max(var_s, 0.0)
    return math.sqrt(var_s) / (b * (b - 1) / 2.0)


def global_mean_cosine(embeddings: Any) -> float:
    """Mean cosine similarity over all ordered pairs of distinct instances, exactly, in O(N d).

    Uses ``sum_{i != j} c_ij = ||sum_i z_i||^2 - sum_i ||z_i||^2`` for unit rows ``z_i``.

    Args:
        embeddings: (N, d) array or tensor, N >= 2, no NaN/inf, no zero rows.

    Returns:
        ``mu = (||sum z||^2 - N) / (N (N-1))``.

    Example:
        >>> import numpy as np
        >>> round(global_mean_cosine(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])), 6)
        0.471405
    """
    z = _unit_rows(embeddings)
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"embeddings must have at least 2 rows for a pairwise mean, got {n}")
    s = torch.zeros(z.shape[1], dtype=torch.float64, device=z.device)
    sq = 0.0
    for x in _row_chunks(z):
        s += x.sum(dim=0)
        sq += float((x * x).sum())
    return (float(s @ s) - sq) / (n * (n - 1))


def random_batch_reference(embeddings: Any, batch_size: int, *, method: str = "analytic",
                           num_random: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of ``mean_cosine`` over uniform random batches of one size.

    Random batches are drawn uniformly without replacement. The mean is always the global
    mean cosine ``mu``. ``method="analytic"`` gives the exact standard deviation: with
    ``S`` the sum of ``c_e - mu`` over the batch's pairs, ``p_k = b^(k) / N^(k)`` (falling
    factorials) the chance that ``k`` given instances all land in the batch,
    ``A2 = sum_e (c_e - mu)^2`` over unordered pairs and ``A3`` the same product summed over
    ordered pairs of distinct pairs that share one instance,
    ``Var S = A2 (p2 - p4) + A3 (p3 - p4)``, and ``sd = sqrt(Var S) / (b(b-1)/2)``.
    ``method="sampled"`` estimates it from ``num_random`` random batches drawn with ``seed``.

    Args:
        embeddings: (N, d) array or tensor.
        batch_size: ``2 <= batch_size <= N``.
        method: ``"analytic"`` or ``"sampled"``.
        num_random: number of random batches for ``"sampled"`` (>= 2).
        seed: seed for ``"sampled"``.

    Returns:
        ``(mean, sd)`` of the mean in-batch cosine under random batching.

    Example:
        >>> import numpy as np
        >>> emb = np.random.default_rng(0).normal(size=(50, 4))
        >>> mean, sd = random_batch_reference(emb, 10)
        >>> sd > 0
        True
    """
    z = _unit_rows(embeddings)
    n = z.shape[0]
    b = check_int("batch_size", batch_size, low=2)
    if b > n:
        raise ValueError(f"batch_size must be <= the number of embeddings ({n}), got {b}")
    if method == "analytic":
        stats = _global_stats(z)
        return stats["mu"], _analytic_sd(stats, b)
    if method == "sampled":
        num_random = check_int("num_random", num_random, low=2)
        means = _sampled_means(z, b, num_random, seed)
        return float(_global_stats(z)["mu"]), float(np.std(means, ddof=1))
    raise ValueError(f"method must be 'analytic' or 'sampled', got {method!r}")


def _sampled_means(z: torch.Tensor, b: int, num_random: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = z.shape[0]
    out = np.empty(num_random)
    chunk = max(1, min(num_random, (1 << 24) // max(1, b * z.shape[1])))
    for start in range(0, num_random, chunk):
        m = min(chunk, num_random - start)
        idx = np.stack([rng.choice(n, size=b, replace=False) for _ in range(m)])
        s = _unit64(z[torch.as_tensor(idx, device=z.device)]).sum(dim=1)
        out[start:start + m] = ((s * s).sum(dim=1) - b).cpu().numpy() / (b * (b - 1))
    return out


# --------------------------------------------------------------------------------------------
# Per-batch metrics
# --------------------------------------------------------------------------------------------
def _label_codes(labels: Any, n: int, device: torch.device) -> torch.Tensor:
    if isinstance(labels, torch.Tensor):
        arr = labels.detach().cpu().numpy()
    elif isinstance(labels, (np.ndarray, list, tuple)):
        arr = np.asarray(labels)
    else:
        raise TypeError(f"labels must be a 1-D array, tensor or sequence, got {type(labels).__name__}")
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"labels has {arr.shape[0]} entries but embeddings has {n} rows; they must match")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError("labels contains NaN or infinite values")
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    _, codes = np.unique(arr, return_inverse=True)
    return torch.as_tensor(codes.reshape(-1).astype(np.int64), device=device)


def _as_batches(batches: Any, n: int, device: torch.device) -> list[torch.Tensor]:
    if isinstance(batches, (np.ndarray, torch.Tensor)) and batches.ndim == 2:
        batches = list(batches)
    if isinstance(batches, (str, bytes)) or not isinstance(batches, Iterable):
        raise TypeError(f"batches must be an iterable of index sequences, got {type(batches).__name__}")
    out = [as_index_tensor(f"batches[{i}]", b, num_nodes=n, device=device) for i, b in enumerate(batches)]
    if not out:
        raise ValueError("batches must contain at least one batch, got none")
    return out


def batch_hardness(embeddings: Any, batches: Any, labels: Any = None, *, temperature: float = 0.05,
                   reference: str = "analytic", num_random: int = 1000, seed: int = 0,
                   max_chunk_bytes: int = 1 << 26) -> Table:
    """Hardness metrics for each batch of an epoch (see the module docstring for definitions).

    Computation runs in float64 on the embeddings' device (rows are upcast chunk by chunk, the
    full matrix is never copied), batches of equal size stacked and processed in chunks of at
    most ``max_chunk_bytes`` of Gram matrices.

    Args:
        embeddings: (N, d) array or tensor of instance embeddings (cosine geometry; rows are
            L2-normalised here). No NaN/inf, no zero rows.
        batches: iterable of index sequences (e.g. one epoch of a batch sampler), or a 2-D array.
        labels: optional (N,) labels (ints or strings); adds ``false_negative_rate`` and
            ``label_entropy``.
        temperature: InfoNCE temperature ``tau`` (> 0); 0.05 as in SimCSE.
        reference: ``"analytic"`` (exact) or ``"sampled"`` standard deviation for ``z_score``.
        num_random: random batches per batch size when ``reference="sampled"``.
        seed: seed of those random batches.
        max_chunk_bytes: memory bound for stacked Gram matrices.

    Returns:
        A :class:`Table` with one row per batch, columns ``batch``, ``position``, ``size``,
        ``in_batch_duplicates``, ``mean_cosine``, ``max_cosine``, ``excess_hardness``,
        ``z_score``, [``false_negative_rate``, ``label_entropy``,] ``infonce``.

    Raises:
        ValueError: NaN/inf or zero-norm embeddings, labels of the wrong length, empty batches
            or out-of-range indices, a non-positive temperature, an unknown reference.

    Example:
        >>> import numpy as np
        >>> emb = np.eye(4)
        >>> t = batch_hardness(emb, [[0, 1], [2, 3]], labels=[0, 0, 1, 2])
        >>> t["mean_cosine"].tolist(), t["false_negative_rate"].tolist()
        ([0.0, 0.0], [1.0, 0.0])
    """
    z = _unit_rows(embeddings)
    n, d = z.shape
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not math.isfinite(float(temperature)) or float(temperature) <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    tau = float(temperature)
    if reference not in ("analytic", "sampled"):
        raise ValueError(f"reference must be 'analytic' or 'sampled', got {reference!r}")
    num_random = check_int("num_random", num_random, low=2)
    max_chunk_bytes = check_int("max_chunk_bytes", max_chunk_bytes, low=1)
    codes = None if labels is None else _label_codes(labels, n, z.device)
    blist = _as_batches(batches, n, z.device)
    nb = len(blist)

    stats = _global_stats(z)
    mu = stats["mu"]
    sizes = np.array([int(b.numel()) for b in blist])
    cols = {name: np.full(nb, np.nan) for name in HARDNESS_COLUMNS}
    dups = np.zeros(nb, dtype=np.int64)

    for b in np.unique(sizes):
        b = int(b)
        which = np.nonzero(sizes == b)[0]
        if b >= 2 and b <= n:
            if reference == "analytic":
                sd = _analytic_sd(stats, b)
            else:
                sd = float(np.std(_sampled_means(z, b, num_random, seed + b), ddof=1))
        else:
            sd = float("nan")
        per_chunk = max(1, max_chunk_bytes // max(1, 8 * b * max(b, d)))
        for start in range(0, which.size, per_chunk):
            sel = which[start:start + per_chunk]
            idx = torch.stack([blist[i] for i in sel])                 # (c, b)
            x = _unit64(z[idx])                                        # (c, b, d) float64 unit rows
            g = x @ x.transpose(1, 2)                                  # (c, b, b)
            diag = torch.diagonal(g, dim1=1, dim2=2)                   # (c, b)
            srt = torch.sort(idx, dim=1).values
            dups[sel] = (srt[:, 1:] == srt[:, :-1]).sum(dim=1).cpu().numpy() if b > 1 else 0
            lse = torch.logsumexp(g / tau, dim=2)                      # (c, b)
            cols["infonce"][sel] = (lse - diag / tau).mean(dim=1).cpu().numpy()
            if codes is not None:
                lab = codes[idx]
                eq = (lab[:, :, None] == lab[:, None, :])
                counts = eq.sum(dim=2).to(torch.float64)               # n_{label(i)} per position
                cols["label_entropy"][sel] = (-torch.log(counts / b).mean(dim=1)).cpu().numpy()
            if b < 2:
                continue
            npairs = b * (b - 1)
            off_sum = g.sum(dim=(1, 2)) - diag.sum(dim=1)
            mean_cos = (off_sum / npairs).cpu().numpy()
            eye = torch.eye(b, dtype=torch.bool, device=z.device)
            max_cos = g.masked_fill(eye, float("-inf")).amax(dim=(1, 2)).cpu().numpy()
            cols["mean_cosine"][sel] = mean_cos
            cols["max_cosine"][sel] = max_cos
            cols["excess_hardness"][sel] = mean_cos - mu
            if sd > 0:
                cols["z_score"][sel] = (mean_cos - mu) / sd
            if codes is not None:
                cols["false_negative_rate"][sel] = ((eq.sum(dim=(1, 2)) - b).to(torch.float64)
                                                    / npairs).cpu().numpy()

    if codes is None:
        cols["label_entropy"][:] = np.nan
    else:
        cols["label_entropy"][sizes == 1] = 0.0
    out: dict[str, Any] = {
        "batch": np.arange(nb),
        "position": np.arange(nb) / nb,
        "size": sizes,
        "in_batch_duplicates": dups,
    }
    for name in HARDNESS_COLUMNS:
        if codes is None and name in ("false_negative_rate", "label_entropy"):
            continue
        out[name] = cols[name]
    return Table(out)


# --------------------------------------------------------------------------------------------
# Per-epoch summary
# --------------------------------------------------------------------------------------------
def epoch_summary(table: Table, batches: Any, num_nodes: int, *, num_segments: int = 4) -> dict[str, Any]:
    """Summarise one epoch: coverage, duplicates, the mean of each metric and hardness along the epoch.

    Args:
        table: the :func:`batch_hardness` table of this epoch's ``batches``.
        batches: the epoch's batches (index sequences), as passed to :func:`batch_hardness`.
        num_nodes: N, the dataset size.
        num_segments: the epoch is cut into this many equal parts for ``hardness_by_segment``.

    Returns:
        A dict with ``num_batches``, ``num_samples`` (indices drawn), ``coverage`` (unique
        indices / N), ``duplicates`` (indices drawn more than once in the epoch, counted with
        multiplicity: ``num_samples - unique``), ``mean_<metric>`` for every metric column
        (NaN-ignoring mean over batches), ``hardness_slope`` (least-squares slope of
        ``excess_hardness`` against ``position``; NaN with fewer than 2 batches) and
        ``hardness_by_segment`` (mean ``excess_hardness`` in each of ``num_segments`` consecutive
        parts of the epoch).

    Example:
        >>> import numpy as np
        >>> emb = np.random.default_rng(0).normal(size=(20, 3))
        >>> batches = [[0, 1, 2], [2, 3, 4]]
        >>> s = epoch_summary(batch_hardness(emb, batches), batches, num_nodes=20)
        >>> s["coverage"], s["duplicates"]
        (0.25, 1)
    """
    if not isinstance(table, Table):
        raise TypeError(f"table must be a graphbatch.metrics.Table, got {type(table).__name__}")
    num_nodes = check_int("num_nodes", num_nodes, low=1)
    num_segments = check_int("num_segments", num_segments, low=1)
    blist = _as_batches(batches, num_nodes, torch.device("cpu"))
    if len(blist) != len(table):
        raise ValueError(f"batches has {len(blist)} batches but table has {len(table)} rows; they must match")
    flat = torch.cat(blist)
    unique = int(torch.unique(flat).numel())
    out: dict[str, Any] = {
        "num_batches": len(blist),
        "num_samples": int(flat.numel()),
        "coverage": unique / num_nodes,
        "duplicates": int(flat.numel()) - unique,
    }
    for name in HARDNESS_COLUMNS:
        if name in table:
            col = table[name]
            out[f"mean_{name}"] = float(np.nanmean(col)) if np.isfinite(col).any() else float("nan")
    ex = table["excess_hardness"]
    pos = table["position"]
    ok = np.isfinite(ex)
    if ok.sum() >= 2 and np.ptp(pos[ok]) > 0:
        out["hardness_slope"] = float(np.polyfit(pos[ok], ex[ok], 1)[0])
    else:
        out["hardness_slope"] = float("nan")
    seg = np.minimum((pos * num_segments).astype(int), num_segments - 1)
    out["hardness_by_segment"] = [
        float(np.nanmean(ex[(seg == s) & ok])) if ((seg == s) & ok).any() else float("nan")
        for s in range(num_segments)
    ]
    return out


# --------------------------------------------------------------------------------------------
# Comparing samplers on the same embeddings
# --------------------------------------------------------------------------------------------
class SamplerSpec:
    """One sampler configuration to compare: a display name, a factory and its settings.

    The factory is called as ``factory(num_nodes, batch_size, embeddings=..., seed=...,
    **settings)`` (the constructor signature shared by graphbatch's samplers) and must
    return an object whose iteration yields one epoch of batches (lists of indices); a
    ``set_epoch`` method, if present, is called with 0 first.

    Args:
        name: label used in tables, plots and reports.
        factory: a sampler class or any callable with that signature.
        settings: keyword arguments for the factory (shown in the tables).
        family: a short group name for plots (e.g. ``"rwr-walk"``); defaults to ``name``.

    Example:
        >>> from graphbatch.metrics import SamplerSpec
        >>> spec = SamplerSpec("random", lambda n, b, **kw: [list(range(n))[i:i + b] for i in range(0, n, b)])
        >>> spec.name, spec.settings
        ('random', {})
    """

    def __init__(self, name: str, factory: Any, settings: Mapping[str, Any] | None = None,
                 family: str | None = None):
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if not callable(factory):
            raise TypeError(f"factory must be callable (a sampler class), got {type(factory).__name__}")
        if settings is not None and not isinstance(settings, Mapping):
            raise TypeError(f"settings must be a mapping of keyword arguments, got {type(settings).__name__}")
        self.name = name
        self.factory = factory
        self.settings: dict[str, Any] = dict(settings or {})
        self.family = family or name

    def __repr__(self) -> str:
        return f"SamplerSpec({self.name!r}, settings={self.settings})"


def default_sampler_grid(num_nodes: int, batch_size: int, *, k: int = 10,
                         candidates: Sequence[int | None] = (50, 200, None),
                         restart_probs: Sequence[float] = (0.1, 0.3, 0.6),
                         ppr_restart_probs: Sequence[float] = (0.3,),
                         ppr_candidates: Sequence[int | None] | None = None,
                         baselines: bool = True) -> list[SamplerSpec]:
    """The sampler configurations :func:`compare_samplers` runs by default.

    Baselines (``RandomBatchSampler``, ``KNNBatchSampler`` with ``k = batch_size - 1`` (the
    paper's kNN baseline) and ``BandwidthBatchSampler`` with ``k`` neighbours, both on the
    largest M, ``ClusterBatchSampler(num_clusters=ceil(N /
    batch_size))``),
    then ``RWRBatchSampler`` in ``mode="walk"`` for every ``candidates`` M x
    ``restart_probs`` p, and in ``mode="ppr"`` for every M in ``ppr_candidates`` (default: the
    same as ``candidates``) x ``ppr_restart_probs``; all with
    ``k`` neighbours per node. ``None`` in ``candidates`` means all N instances (exact kNN
    graph); values above N are clipped to N.

    Args:
        num_nodes: N.
        batch_size: the batch size.
        k: proximity-graph out-degree (clipped to N - 1).
        candidates: values of M, the number of random candidates each node's neighbours are
            chosen from (the paper's main hardness knob, with the restart probability).
        restart_probs: restart probabilities for walk mode.
        ppr_restart_probs: restart probabilities for ppr mode (empty: no ppr rows).
        ppr_candidates: values of M for ppr mode (default: ``candidates``).
        baselines: include the baseline samplers.

    Returns:
        A list of :class:`SamplerSpec`.

    Example:
        >>> specs = default_sampler_grid(1000, 32, candidates=(100,), restart_probs=(0.2,), ppr_restart_probs=())
        >>> [s.name for s in specs]
        ['random', 'knn', 'cluster', 'bandwidth', 'rwr-walk M=100 p=0.2']
    """
    import graphbatch as gb

    num_nodes = check_int("num_nodes", num_nodes, low=2)
    batch_size = check_int("batch_size", batch_size, low=1, high=num_nodes)
    k = min(check_int("k", k, low=1), num_nodes - 1)
    def _ms(name: str, values: Sequence[int | None]) -> list[int]:
        out: list[int] = []
        for m in values:
            m = num_nodes if m is None else min(check_int(name, m, low=1), num_nodes)
            if m not in out:
                out.append(m)
        return out

    ms = _ms("candidates", candidates)
    ppr_ms = ms if ppr_candidates is None else _ms("ppr_candidates", ppr_candidates)
    specs: list[SamplerSpec] = []
    if baselines:
        specs += [
            SamplerSpec("random", _lazy(gb, "RandomBatchSampler"), {}, "random"),
            # the paper's kNN baseline: a seed and its B - 1 nearest neighbours
            SamplerSpec("knn", _lazy(gb, "KNNBatchSampler"),
                        {"k": min(max(batch_size - 1, 1), num_nodes - 1), "candidates": max(ms)}, "knn"),
            SamplerSpec("cluster", _lazy(gb, "ClusterBatchSampler"),
                        {"num_clusters": max(1, math.ceil(num_nodes / batch_size))}, "cluster"),
            SamplerSpec("bandwidth", _lazy(gb, "BandwidthBatchSampler"), {"k": k, "candidates": max(ms)},
                        "bandwidth"),
        ]
    for mode, probs, mlist in (("walk", restart_probs, ms), ("ppr", ppr_restart_probs, ppr_ms)):
        for m in mlist:
            for p in probs:
                specs.append(SamplerSpec(
                    f"rwr-{mode} M={'all' if m == num_nodes else m} p={p:g}",
                    _lazy(gb, "RWRBatchSampler"),
                    {"mode": mode, "k": min(k, m), "candidates": m, "restart_prob": float(p)},
                    f"rwr-{mode}",
                ))
    return specs


class _lazy:
    """Resolve ``graphbatch.<name>`` when called, so specs can be built before the samplers import."""

    def __init__(self, module: Any, name: str):
        self.module, self.name = module, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cls = getattr(self.module, self.name, None)
        if cls is None:  # not re-exported at top level: look in the defining modules
            import importlib

            for mod in ("graphbatch.sampler", "graphbatch.baselines"):
                try:
                    cls = getattr(importlib.import_module(mod), self.name, None)
                except ImportError:
                    cls = None
                if cls is not None:
                    break
        if cls is None:
            raise RuntimeError(f"graphbatch.{self.name} is not available in this installation")
        return cls(*args, **kwargs)

    def __repr__(self) -> str:
        return f"graphbatch.{self.name}"


def _as_spec(item: Any, i: int) -> SamplerSpec:
    if isinstance(item, SamplerSpec):
        return item
    if isinstance(item, tuple) and len(item) in (2, 3):
        return SamplerSpec(*item)
    raise TypeError(f"samplers[{i}] must be a SamplerSpec or a (name, factory[, settings]) tuple, "
                    f"got {type(item).__name__}")


def _warm_up(specs: Sequence[SamplerSpec], z: torch.Tensor, batch_size: int, seed: int) -> None:
    m = min(z.shape[0], max(2 * batch_size, 64))
    done = set()
    for spec in specs:
        key = (repr(spec.factory), spec.family, repr(spec.settings.get("mode")))
        if key in done:
            continue
        done.add(key)
        try:
            for _ in spec.factory(m, min(batch_size, m), embeddings=z[:m], seed=seed, **spec.settings):
                pass
        except Exception:  # noqa: BLE001 - untimed warm-up only; the timed run reports real errors
            pass


def compare_samplers(embeddings: Any, labels: Any = None, *, batch_size: int,
                     samplers: Sequence[Any] | None = None, seed: int = 0, temperature: float = 0.05,
                     reference: str = "analytic", progress: bool = False, warmup: bool = True,
                     return_details: bool = False) -> Any:
    """Run several batch samplers for one epoch on the same embeddings and tabulate their batches.

    Each sampler is built with ``embeddings`` (so graph-based samplers build their graph at
    construction, no warm-up), one epoch is drawn, and the batches are scored with
    :func:`batch_hardness` and :func:`epoch_summary`.

    Args:
        embeddings: (N, d) array or tensor (no NaN/inf, no zero rows).
        labels: optional (N,) labels for false-negative rate and label entropy.
        batch_size: batch size for every sampler (``1 <= batch_size <= N``).
        samplers: list of :class:`SamplerSpec` (or ``(name, factory[, settings])`` tuples);
            default :func:`default_sampler_grid`.
        seed: passed to every sampler.
        temperature: InfoNCE temperature.
        reference: z-score reference (see :func:`batch_hardness`).
        progress: show a tqdm bar over samplers.
        warmup: before timing, run each distinct sampler kind once, untimed, on the first
            ``min(N, max(2 * batch_size, 64))`` rows, so one-off costs (numba compilation,
            lazy imports) do not land in the first configuration's ``build_s`` / ``plan_s``.
        return_details: also return, per sampler name, a dict with its per-batch ``table``,
            ``batches``, ``summary``, ``spec`` and the sampler's ``stats`` after the epoch.

    Returns:
        A :class:`Table`, one row per sampler: ``name``, ``family``, ``settings``,
        ``mean_cosine``, ``excess_hardness``, ``z_score``, [``false_negative_rate``,
        ``label_entropy``,] ``infonce``, ``max_cosine``, ``coverage``, ``duplicates``,
        ``num_batches``, ``hardness_slope``, ``hardness_by_quarter`` (mean excess hardness in each
        quarter of the epoch, a list), ``random_jump_share`` (share of the epoch's samples
        that a graph sampler placed by a random fallback jump, from its ``stats["random_jumps"]``;
        NaN for samplers without it), ``build_s`` (construction, including the graph),
        ``plan_s`` (drawing the epoch's batches). With ``return_details``: ``(table, details)``.

    Example:
        >>> import numpy as np
        >>> from graphbatch.metrics import compare_samplers, SamplerSpec
        >>> def sequential(n, b, **kw):
        ...     return [list(range(i, min(i + b, n))) for i in range(0, n, b)]
        >>> emb = np.random.default_rng(0).normal(size=(40, 3))
        >>> t = compare_samplers(emb, batch_size=8, samplers=[SamplerSpec("seq", sequential)])
        >>> t[0]["name"], t[0]["coverage"]
        ('seq', 1.0)
    """
    import time

    z = as_float_matrix("embeddings", embeddings)
    n = z.shape[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, (numbers.Integral, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__} ({batch_size!r})")
    if not 1 <= int(batch_size) <= n:
        raise ValueError(f"batch_size must lie in [1, {n}] (the number of embeddings), got {batch_size}")
    batch_size = int(batch_size)
    if labels is not None:
        _label_codes(labels, n, torch.device("cpu"))  # validate before any sampler runs
    _unit_rows(z)
    specs = default_sampler_grid(n, batch_size) if samplers is None else [
        _as_spec(s, i) for i, s in enumerate(samplers)]
    if not specs:
        raise ValueError("samplers must name at least one sampler, got none")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"samplers must have distinct names, got {names}")
    z32 = z.to(torch.float32)
    if warmup:
        _warm_up(specs, z32, batch_size, seed)
    rows: list[dict[str, Any]] = []
    details: dict[str, dict[str, Any]] = {}
    it: Iterable[SamplerSpec] = specs
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(specs, desc="samplers", unit="sampler")
    for spec in it:
        if progress:
            it.set_postfix_str(spec.name)  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        sampler = spec.factory(n, batch_size, embeddings=z32, seed=seed, **spec.settings)
        t1 = time.perf_counter()
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(0)
        batches = [list(map(int, b)) for b in sampler]
        t2 = time.perf_counter()
        table = batch_hardness(z, batches, labels, temperature=temperature, reference=reference, seed=seed)
        summary = epoch_summary(table, batches, n)
        row: dict[str, Any] = {"name": spec.name, "family": spec.family, "settings": dict(spec.settings)}
        for col in ("mean_cosine", "excess_hardness", "z_score", "false_negative_rate", "label_entropy",
                    "infonce", "max_cosine"):
            if f"mean_{col}" in summary:
                row[col] = summary[f"mean_{col}"]
        stats = dict(getattr(sampler, "stats", None) or {})
        jumps = stats.get("random_jumps")
        row.update(coverage=summary["coverage"], duplicates=summary["duplicates"],
                   num_batches=summary["num_batches"], hardness_slope=summary["hardness_slope"],
                   hardness_by_quarter=summary["hardness_by_segment"],
                   random_jump_share=float(jumps) / max(1, summary["num_samples"])
                   if isinstance(jumps, (int, float, np.integer)) else float("nan"),
                   build_s=t1 - t0, plan_s=t2 - t1)
        rows.append(row)
        details[spec.name] = {"table": table, "batches": batches, "summary": summary, "spec": spec,
                              "stats": stats}
    out = Table({key: [r[key] for r in rows] for key in rows[0]}) if rows else Table({})
    return (out, details) if return_details else out
