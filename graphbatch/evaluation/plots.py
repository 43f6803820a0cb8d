"""Plots of batch hardness for :func:`graphbatch.evaluation.compare_samplers` results.

matplotlib is imported lazily, inside each function. Figures are built with the
object-oriented API (``matplotlib.figure.Figure``), so nothing here touches
pyplot's global state or needs a display: it works headless. Pass ``ax=`` to
draw into an existing axes (e.g. from ``plt.subplots()`` in a notebook).

Example:
    >>> import numpy as np
    >>> from graphbatch.evaluation import compare_samplers, SamplerSpec
    >>> from graphbatch.evaluation.plots import plot_hardness_distribution
    >>> def seq(n, b, **kw):
    ...     return [list(range(i, min(i + b, n))) for i in range(0, n, b)]
    >>> emb = np.random.default_rng(0).normal(size=(40, 3))
    >>> table, details = compare_samplers(emb, batch_size=8, samplers=[SamplerSpec("seq", seq)],
    ...                                   return_details=True)
    >>> fig = plot_hardness_distribution(details)
    >>> type(fig).__name__
    'Figure'
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import backend
from .._validation import check_int
from .table import Table

__all__ = [
    "plot_hardness_distribution",
    "plot_tradeoff",
    "plot_hardness_along_epoch",
    "save_comparison_plots",
]

_LABELS = {
    "excess_hardness": "excess hardness (mean in-batch cosine - global mean)",
    "mean_cosine": "mean in-batch cosine",
    "z_score": "z-score vs random batches",
    "false_negative_rate": "false-negative rate (same-label pairs)",
    "infonce": "InfoNCE of a frozen encoder",
}


def _axes(ax: Any, figsize: tuple) -> tuple:
    if ax is not None:
        return ax.figure, ax
    backend.require("matplotlib", "plotting")
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _check_details(details: Any) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(details, Mapping) or not details:
        raise TypeError("details must be the non-empty per-sampler dict that "
                        "compare_samplers(..., return_details=True) returns")
    return details


def plot_hardness_distribution(details: Mapping[str, Mapping[str, Any]], *, metric: str = "excess_hardness",
                               names: Sequence[str] | None = None, ax: Any = None) -> Any:
    """Box plot of a per-batch metric for each sampler (one box per sampler, batches as points).

    Args:
        details: the per-sampler details from ``compare_samplers(..., return_details=True)``.
        metric: a per-batch column of :func:`graphbatch.evaluation.batch_hardness`.
        names: samplers to show, in order (default: all).
        ax: matplotlib axes to draw into (default: a new figure).

    Returns:
        The matplotlib ``Figure``.

    Example:
        >>> import numpy as np
        >>> from graphbatch.evaluation import compare_samplers, SamplerSpec
        >>> def seq(n, b, **kw):
        ...     return [list(range(i, min(i + b, n))) for i in range(0, n, b)]
        >>> emb = np.random.default_rng(0).normal(size=(40, 3))
        >>> table, details = compare_samplers(emb, np.arange(40) % 4, batch_size=8,
        ...                                   samplers=[SamplerSpec("seq", seq)], return_details=True)
        >>> [t.get_text() for t in plot_hardness_distribution(details).axes[0].get_yticklabels()]
        ['seq']
    """
    details = _check_details(details)
    names = list(details) if names is None else list(names)
    data, shown = [], []
    for name in names:
        if name not in details:
            raise ValueError(f"names holds {name!r}, which is not a sampler in details ({list(details)})")
        table: Table = details[name]["table"]
        if metric not in table:
            raise ValueError(f"metric must be a per-batch column, got {metric!r}; columns are {table.columns}")
        col = np.asarray(table[metric], dtype=float)
        data.append(col[np.isfinite(col)])
        shown.append(name)
    fig, ax = _axes(ax, (max(6.0, 0.55 * len(shown) + 2), 4.5))
    import matplotlib

    major_minor = tuple(int(v) for v in matplotlib.__version__.split(".")[:2])
    orient = {"orientation": "horizontal"} if major_minor >= (3, 10) else {"vert": False}
    ax.boxplot(data, showfliers=False, **orient)
    rng = np.random.default_rng(0)
    for i, col in enumerate(data, start=1):
        ax.plot(col, i + rng.uniform(-0.15, 0.15, size=col.size), ".", alpha=0.35, ms=3, color="tab:blue")
    ax.set_yticks(range(1, len(shown) + 1), shown)
    ax.invert_yaxis()
    if metric == "excess_hardness":
        ax.axvline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(_LABELS.get(metric, metric))
    ax.set_title("Per-batch hardness, one epoch per sampler")
    return fig


def plot_tradeoff(table: Table, *, x: str = "excess_hardness", y: str = "false_negative_rate",
                  ax: Any = None) -> Any:
    """False negatives against hardness, one point per sampler configuration.

    RWR configurations with the same mode and restart probability are joined by a line in
    order of increasing M (candidates) and annotated with M, so the effect of both knobs
    is visible: the trade-off the paper tunes. Baselines are drawn as labelled markers.

    Args:
        table: the summary table from :func:`graphbatch.evaluation.compare_samplers` (needs labels
            for the default ``y``).
        x, y: summary columns for the axes.
        ax: matplotlib axes to draw into (default: a new figure).

    Returns:
        The matplotlib ``Figure``.

    Example:
        >>> import numpy as np
        >>> from graphbatch.evaluation import compare_samplers, SamplerSpec
        >>> def seq(n, b, **kw):
        ...     return [list(range(i, min(i + b, n))) for i in range(0, n, b)]
        >>> emb = np.random.default_rng(0).normal(size=(40, 3))
        >>> table, details = compare_samplers(emb, np.arange(40) % 4, batch_size=8,
        ...                                   samplers=[SamplerSpec("seq", seq)], return_details=True)
        >>> plot_tradeoff(table).axes[0].get_ylabel().startswith("false-negative")
        True
    """
    if not isinstance(table, Table):
        raise TypeError(f"table must be a graphbatch.evaluation.Table, got {type(table).__name__}")
    for name, col in (("x", x), ("y", y)):
        if col not in table:
            raise ValueError(f"{name} must be a column of table, got {col!r} (labels are needed for "
                             f"false_negative_rate); columns are {table.columns}")
    fig, ax = _axes(ax, (7.0, 5.0))
    groups: dict[tuple, list[tuple]] = {}
    markers = iter(["s", "D", "^", "v", "P", "X", "*", "h"])
    for row in table.to_records():
        settings = row["settings"] or {}
        if "restart_prob" in settings and "candidates" in settings:
            key = (row["family"], settings["restart_prob"])
            groups.setdefault(key, []).append((settings["candidates"], row[x], row[y]))
        else:
            ax.plot([row[x]], [row[y]], next(markers, "o"), ms=8, color="black", alpha=0.8, label=row["name"])
    for (family, p), pts in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        pts.sort(key=lambda t: t[0])
        ls = "-" if family.endswith("walk") else "--"
        line, = ax.plot([q[1] for q in pts], [q[2] for q in pts], ls, marker="o", label=f"{family} p={p:g}")
        for m, xv, yv in pts:
            ax.annotate(f"M={m}", (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=line.get_color())
    ax.set_xlabel(_LABELS.get(x, x))
    ax.set_ylabel(_LABELS.get(y, y))
    ax.set_title("Hardness vs false negatives (RWR: lines over M per restart prob.; markers: the rest)")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig


def plot_hardness_along_epoch(details: Mapping[str, Mapping[str, Any]], *, metric: str = "excess_hardness",
                              names: Sequence[str] | None = None, window: int = 3, ax: Any = None) -> Any:
    """A per-batch metric against the batch's position in the epoch, one line per sampler.

    Lines show a moving average over ``window`` batches, each weighted by its number of pairs
    (raw values as faint points).

    Args:
        details: the per-sampler details from ``compare_samplers(..., return_details=True)``.
        metric: a per-batch column.
        names: samplers to show (default: all).
        window: moving-average width in batches (1: no smoothing).
        ax: matplotlib axes to draw into (default: a new figure).

    Returns:
        The matplotlib ``Figure``.

    Example:
        >>> import numpy as np
        >>> from graphbatch.evaluation import compare_samplers, SamplerSpec
        >>> def seq(n, b, **kw):
        ...     return [list(range(i, min(i + b, n))) for i in range(0, n, b)]
        >>> emb = np.random.default_rng(0).normal(size=(40, 3))
        >>> table, details = compare_samplers(emb, np.arange(40) % 4, batch_size=8,
        ...                                   samplers=[SamplerSpec("seq", seq)], return_details=True)
        >>> plot_hardness_along_epoch(details).axes[0].get_legend_handles_labels()[1]
        ['seq']
    """
    details = _check_details(details)
    window = check_int("window", window, low=1)
    names = list(details) if names is None else list(names)
    fig, ax = _axes(ax, (8.0, 4.5))
    for name in names:
        if name not in details:
            raise ValueError(f"names holds {name!r}, which is not a sampler in details ({list(details)})")
        table: Table = details[name]["table"]
        if metric not in table:
            raise ValueError(f"metric must be a per-batch column, got {metric!r}; columns are {table.columns}")
        pos = np.asarray(table["position"], dtype=float)
        val = np.asarray(table[metric], dtype=float)
        size = np.asarray(table["size"], dtype=float)
        pairs = size * (size - 1) / 2
        ok = np.isfinite(val) & (pairs > 0)
        pos, val, pairs = pos[ok], val[ok], pairs[ok]
        w = min(int(window), max(1, val.size))
        box = np.ones(w)
        # pair-weighted moving average: a short last batch does not end the line in a spike
        smooth = np.convolve(val * pairs, box, mode="valid") / np.convolve(pairs, box, mode="valid") \
            if val.size else val
        spos = np.convolve(pos, box / w, mode="valid") if val.size else pos
        line, = ax.plot(spos, smooth, label=name, lw=1.5)
        ax.plot(pos, val, ".", ms=3, alpha=0.3, color=line.get_color())
    if metric == "excess_hardness":
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("position in the epoch (batch index / number of batches)")
    ax.set_ylabel(_LABELS.get(metric, metric))
    ax.set_title("Hardness along the epoch")
    ax.legend(fontsize=7, ncol=2, loc="best")
    ax.grid(alpha=0.3)
    return fig


def save_comparison_plots(table: Table, details: Mapping[str, Mapping[str, Any]], out_dir: str | os.PathLike,
                          *, epoch_names: Sequence[str] | None = None, dpi: int = 110) -> list[str]:
    """Write the three standard plots as PNG files into ``out_dir`` and return their file names.

    Files: ``hardness_distribution.png``, ``tradeoff_fn_vs_hardness.png`` (only when the
    table has ``false_negative_rate``, i.e. labels were given), ``hardness_along_epoch.png``.

    Args:
        table, details: ``compare_samplers(..., return_details=True)``.
        out_dir: an existing, writable folder.
        epoch_names: samplers for the along-the-epoch plot (default: all).
        dpi: resolution.

    Returns:
        The names of the files written, relative to ``out_dir``.

    Example:
        >>> import numpy as np
        >>> from graphbatch.evaluation import compare_samplers, SamplerSpec
        >>> def seq(n, b, **kw):
        ...     return [list(range(i, min(i + b, n))) for i in range(0, n, b)]
        >>> emb = np.random.default_rng(0).normal(size=(40, 3))
        >>> table, details = compare_samplers(emb, np.arange(40) % 4, batch_size=8,
        ...                                   samplers=[SamplerSpec("seq", seq)], return_details=True)
        >>> import tempfile
        >>> save_comparison_plots(table, details, tempfile.mkdtemp())
        ['hardness_distribution.png', 'tradeoff_fn_vs_hardness.png', 'hardness_along_epoch.png']
    """
    out: list[str] = []
    figs = [("hardness_distribution.png", plot_hardness_distribution(details))]
    if "false_negative_rate" in table:
        figs.append(("tradeoff_fn_vs_hardness.png", plot_tradeoff(table)))
    figs.append(("hardness_along_epoch.png", plot_hardness_along_epoch(details, names=epoch_names)))
    for fname, fig in figs:
        fig.savefig(os.path.join(os.fspath(out_dir), fname), dpi=dpi)
        out.append(fname)
    return out
