"""How hard are the negatives in a batch? Per-batch and per-epoch hardness metrics, from frozen embeddings.

In-batch contrastive learning treats every other member of a batch as a negative. A sampler that
packs similar instances together gives harder negatives and, where labels exist, more *false*
negatives (pairs of one class pushed apart). :func:`batch_hardness` scores every batch of an epoch
(mean / max in-batch cosine, excess hardness over the global mean, z-score against uniformly random
batches of the same size, exactly, false-negative rate, label entropy, the InfoNCE a frozen encoder
sees); :func:`epoch_summary` summarises an epoch (coverage, duplicates, hardness along the epoch).
The definitions are in ``docs/concepts.md`` (section 5); tests check each against brute force.

Example:
    >>> import numpy as np
    >>> from graphbatch.evaluation import batch_hardness, epoch_summary
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
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from .._validation import as_float_matrix, as_index_tensor, check_choice, check_int, check_real, warn_user
from .table import Table

__all__ = ["batch_hardness", "epoch_summary", "global_mean_cosine", "random_batch_reference", "HARDNESS_COLUMNS",
           "label_codes", "unit_rows"]

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


def unit_rows(embeddings: Any) -> torch.Tensor:
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
    z = unit_rows(embeddings)
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
    z = unit_rows(embeddings)
    n = z.shape[0]
    b = check_int("batch_size", batch_size, low=2)
    if b > n:
        raise ValueError(f"batch_size must be <= the number of embeddings ({n}), got {b}")
    method = check_choice("method", method, ("analytic", "sampled"))
    if method == "analytic":
        stats = _global_stats(z)
        return stats["mu"], _analytic_sd(stats, b)
    num_random = check_int("num_random", num_random, low=2)
    means = _sampled_means(z, b, num_random, seed)
    return float(_global_stats(z)["mu"]), float(np.std(means, ddof=1))


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
def label_codes(labels: Any, n: int, device: torch.device) -> torch.Tensor:
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
    if arr.dtype.kind in "fc" and arr.size and not np.array_equal(arr, np.round(arr)):
        example = arr[np.flatnonzero(arr != np.round(arr))[0]]
        raise ValueError(f"labels look continuous (e.g. {example:.6g}): the false-negative rate and label entropy "
                         "need class ids; bin a continuous target first (e.g. numpy.digitize) or pass integer ids")
    if arr.dtype.kind == "O":
        arr = arr.astype(str)
    uniq, codes = np.unique(arr, return_inverse=True)
    if n >= 20 and uniq.size > n // 2:
        warn_user(f"labels have {uniq.size} distinct values for {n} rows: most classes have a single member, so "
                  "the false-negative rate is near 0 by construction. Are these ids or a continuous target "
                  "rather than class labels?", RuntimeWarning)
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


def _score_chunk(z: torch.Tensor, idx: torch.Tensor, sel: np.ndarray, codes: torch.Tensor | None, tau: float,
                 mu: float, sd: float, cols: dict[str, np.ndarray], dups: np.ndarray) -> None:
    """Fill the metric columns at rows ``sel`` for the stacked equal-size batches ``idx`` ``(c, b)``."""
    b = idx.shape[1]
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
        return
    npairs = b * (b - 1)
    off_sum = g.sum(dim=(1, 2)) - diag.sum(dim=1)
    mean_cos = (off_sum / npairs).cpu().numpy()
    eye = torch.eye(b, dtype=torch.bool, device=z.device)
    cols["mean_cosine"][sel] = mean_cos
    cols["max_cosine"][sel] = g.masked_fill(eye, float("-inf")).amax(dim=(1, 2)).cpu().numpy()
    cols["excess_hardness"][sel] = mean_cos - mu
    if sd > 0:
        cols["z_score"][sel] = (mean_cos - mu) / sd
    if codes is not None:
        cols["false_negative_rate"][sel] = ((eq.sum(dim=(1, 2)) - b).to(torch.float64) / npairs).cpu().numpy()


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
    z = unit_rows(embeddings)
    n, d = z.shape
    tau = check_real("temperature", temperature, low=0.0, low_open=True)
    reference = check_choice("reference", reference, ("analytic", "sampled"))
    num_random = check_int("num_random", num_random, low=2)
    max_chunk_bytes = check_int("max_chunk_bytes", max_chunk_bytes, low=1)
    codes = None if labels is None else label_codes(labels, n, z.device)
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
            _score_chunk(z, torch.stack([blist[i] for i in sel]), sel, codes, tau, mu, sd, cols, dups)

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
        (the mean over batches weighted by their number of pairs ``b (b - 1) / 2``, NaN
        ignored: for ``mean_cosine``, ``excess_hardness`` and ``false_negative_rate`` this is
        the mean over every in-batch pair of the epoch, so a short last batch weighs what its
        few pairs weigh), ``hardness_slope`` (pair-weighted least-squares slope of
        ``excess_hardness`` against ``position``; NaN with fewer than 2 batches) and
        ``hardness_by_segment`` (pair-weighted mean ``excess_hardness`` in each of
        ``num_segments`` consecutive parts of the epoch).

    Example:
        >>> import numpy as np
        >>> emb = np.random.default_rng(0).normal(size=(20, 3))
        >>> batches = [[0, 1, 2], [2, 3, 4]]
        >>> s = epoch_summary(batch_hardness(emb, batches), batches, num_nodes=20)
        >>> s["coverage"], s["duplicates"]
        (0.25, 1)
    """
    if not isinstance(table, Table):
        raise TypeError(f"table must be a graphbatch.evaluation.Table, got {type(table).__name__}")
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
    size = np.asarray(table["size"], dtype=np.float64)
    pairs = size * (size - 1) / 2  # each batch weighs what its pairs weigh: a short last batch barely counts
    for name in HARDNESS_COLUMNS:
        if name in table:
            out[f"mean_{name}"] = _weighted_mean(table[name], pairs)
    ex = table["excess_hardness"]
    pos = table["position"]
    ok = np.isfinite(ex) & (pairs > 0)
    if ok.sum() >= 2 and np.ptp(pos[ok]) > 0:
        out["hardness_slope"] = float(np.polyfit(pos[ok], ex[ok], 1, w=np.sqrt(pairs[ok]))[0])
    else:
        out["hardness_slope"] = float("nan")
    seg = np.minimum((pos * num_segments).astype(int), num_segments - 1)
    out["hardness_by_segment"] = [_weighted_mean(ex[seg == s], pairs[seg == s]) for s in range(num_segments)]
    return out


def _weighted_mean(col: np.ndarray, weights: np.ndarray) -> float:
    """Mean of the finite entries of ``col`` with positive weight, weighted; NaN when there are none."""
    col = np.asarray(col, dtype=np.float64)
    ok = np.isfinite(col) & (weights > 0)
    return float(np.sum(col[ok] * weights[ok]) / np.sum(weights[ok])) if ok.any() else float("nan")
