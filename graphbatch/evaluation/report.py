"""The batch-hardness report behind ``graphbatch demo`` / ``graphbatch analyze``: inputs, output folder, files.

:func:`run_analysis` compares the samplers on a set of embeddings
(:func:`graphbatch.evaluation.compare_samplers`) and writes ``table.txt``, ``per_batch.csv``,
``batches.json``, plots and ``report.json`` into an output folder. :func:`digits_embeddings`
is the demo's embedding of scikit-learn's bundled digits (1,797 real 8x8 images with labels,
no download): standardise the 64 pixel intensities, project on the top 32 principal
components (full SVD, deterministic), L2-normalise.

The output folder is written by :class:`~graphbatch.evaluation.output.OutputDir`: completely or not
at all, and never deleting files graphbatch did not write.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_int
from .compare import compare_samplers, default_sampler_grid, select_samplers
from .files import FileError, read_array
from .hardness import global_mean_cosine
from .output import OutputDir, OutputError
from .table import to_json_safe

__all__ = ["run_analysis", "digits_embeddings", "load_array", "environment_info", "CLIError"]
_TABLE_COLUMNS = ["name", "mean_cosine", "excess_hardness", "z_score", "false_negative_rate", "infonce",
                  "coverage", "duplicates", "random_jump_share", "build_s", "plan_s"]


#: What each column of the report means (written into ``report.json``).
DEFINITIONS = {
    "excess_hardness": "mean in-batch pairwise cosine minus the global mean pairwise cosine",
    "z_score": "excess hardness / exact sd of the mean in-batch cosine of uniform random batches",
    "false_negative_rate": "share of in-batch pairs with the same label",
    "infonce": "in-batch InfoNCE at `temperature`, positive = the instance itself (cosine 1)",
    "hardness_by_quarter": "mean excess hardness of the batches in each quarter of the epoch (pair-weighted)",
    "hardness_slope": "pair-weighted least-squares slope of per-batch excess hardness against position in the "
                      "epoch",
    "coverage": "unique indices in the epoch / N",
    "duplicates": "indices drawn in the epoch minus unique indices",
    "build_s": "seconds to construct the sampler (graph included)",
    "plan_s": "seconds to draw one epoch of batches",
    "metrics_s": "seconds to score the epoch's batches",
    "random_jump_share": "share of the epoch's samples a graph sampler placed by a random "
                         "fallback jump (its stats['random_jumps'] / samples); null if not reported",
}


class CLIError(Exception):
    """A user-facing error: printed as one line on stderr, exit status 1."""


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def digits_embeddings(dim: int = 32) -> tuple[np.ndarray, np.ndarray, str]:
    """Embed scikit-learn's digits: standardised pixels -> PCA to ``dim`` -> L2-normalised.

    Why this embedding: it is deterministic (full SVD; PCA sign flips do not change cosines),
    takes milliseconds, needs no download or training, and has realistic structure: most
    nearest neighbours share the digit label, but not all, so false negatives are measurable.

    Args:
        dim: number of principal components (1..64).

    Returns:
        ``(embeddings float32 (1797, dim), labels int64 (1797,), description)``.

    Example:
        >>> emb, y, _ = digits_embeddings(8)
        >>> emb.shape, int(y.max())
        ((1797, 8), 9)
    """
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    dim = check_int("dim", dim, low=1, high=64)
    x, y = load_digits(return_X_y=True)
    z = StandardScaler().fit_transform(x)
    z = PCA(n_components=dim, svd_solver="full").fit_transform(z)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    desc = (f"sklearn digits (1797 8x8 images): StandardScaler on 64 pixels -> PCA({dim}, full SVD) "
            f"-> L2 normalisation")
    return z.astype(np.float32), y.astype(np.int64), desc


def load_array(name: str, path: str, *, labels: bool = False) -> np.ndarray:
    """:func:`graphbatch.evaluation.files.read_array`, with its errors as :class:`CLIError`."""
    try:
        return read_array(name, path, labels=labels)
    except FileError as exc:
        raise CLIError(str(exc)) from None


def _to_device(embeddings: np.ndarray, device: str) -> Any:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise CLIError(f"--device {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {device!r} requested but torch sees no CUDA device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CLIError(f"--device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    t = torch.from_numpy(np.ascontiguousarray(embeddings))
    return t if dev.type == "cpu" else t.to(dev)


def _check_inputs(emb: np.ndarray, labels: np.ndarray | None, batch_size: int) -> None:
    if emb.ndim != 2:
        raise CLIError(f"embeddings must be a 2-D array (N, d), got shape {emb.shape}")
    if emb.dtype.kind not in "biuf":
        raise CLIError(f"embeddings must be numeric, got dtype {emb.dtype}")
    n = emb.shape[0]
    if n < 2 or emb.shape[1] < 1:
        raise CLIError(f"embeddings must have at least 2 rows and 1 column, got shape {emb.shape}")
    if emb.dtype.kind == "f" and not np.isfinite(emb).all():
        bad = int(np.argwhere(~np.isfinite(emb))[0, 0])
        raise CLIError(f"embeddings contain NaN or infinite values (first in row {bad})")
    zero = np.nonzero(~np.any(emb != 0, axis=1))[0]
    if zero.size:
        raise CLIError(f"embeddings row {int(zero[0])} is all zeros; the metrics' cosine similarity is undefined "
                       "for it")
    if labels is not None:
        if labels.ndim != 1:
            raise CLIError(f"labels must be a 1-D array, got shape {labels.shape}")
        if labels.shape[0] != n:
            raise CLIError(f"labels has {labels.shape[0]} entries but embeddings has {n} rows; they must match")
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            raise CLIError("labels contain NaN or infinite values")
    if batch_size < 2:
        raise CLIError(f"--batch-size must be at least 2, got {batch_size}")
    if batch_size > n:
        raise CLIError(f"--batch-size {batch_size} is larger than the number of embeddings ({n})")


# --------------------------------------------------------------------------------------------
# Atomic output folder
# --------------------------------------------------------------------------------------------
def _write_json(path: Path, obj: Any, indent: int | None = 2) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent, allow_nan=False, default=str,
                  separators=None if indent else (",", ":"))
        fh.write("\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------
def environment_info() -> dict[str, Any]:
    """Versions, CPU and capabilities, for the report."""
    import scipy
    import sklearn
    import torch

    import graphbatch
    from graphbatch import backend

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "graphbatch": graphbatch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "capabilities": backend.capabilities(),
    }


def run_analysis(embeddings: np.ndarray, labels: np.ndarray | None, *, out: str, batch_size: int = 64,
                 k: int = 10, candidates: Sequence[int | None] = (50, 200, None),
                 restart_probs: Sequence[float] = (0.1, 0.3, 0.6), ppr_restart_probs: Sequence[float] = (0.3,),
                 ppr_candidates: Sequence[int | None] | None = (200,),
                 temperature: float = 0.05, seed: int = 0, plots: bool = True, progress: bool | None = None,
                 overwrite: bool = False, dataset: dict[str, Any] | None = None,
                 stream: Any = None, command: Sequence[str] | None = None, device: str = "cpu",
                 samplers: Sequence[str] | None = None, drop_last: bool = False, metric: str = "cosine",
                 timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Compare the samplers on ``embeddings`` and write table, plots and ``report.json`` into ``out``.

    Args:
        embeddings: (N, d) numeric array.
        labels: optional (N,) labels.
        out: output folder (written atomically; a folder holding files graphbatch did not write is
            refused unless ``overwrite``, and those files are never deleted).
        batch_size, k, candidates, restart_probs, ppr_restart_probs, ppr_candidates: the sampler grid, see
            :func:`graphbatch.evaluation.default_sampler_grid`.
        temperature: InfoNCE temperature.
        seed: sampler seed.
        plots: write PNG plots.
        progress: tqdm progress bar over samplers (on stderr); ``None``: when stderr is a terminal.
        overwrite: allow writing into a folder that holds other files (they are kept).
        dataset: description stored in the report.
        stream: where to print the table (default stdout).
        command: the command-line arguments, recorded in the report.
        device: torch device for graph building and metrics (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        samplers: families to run (:data:`graphbatch.evaluation.compare.FAMILIES` or a group such as
            ``"baselines"``); default all.
        drop_last: every sampler drops the short last batch.
        metric: the samplers' graph similarity (``"tanimoto"`` for 0/1 fingerprints); the metrics
            stay cosine.
        timings: seconds already spent (e.g. ``{"load": 0.2}``), reported before this run's steps.

    Returns:
        The report dict (also written to ``out/report.json``), with ``timings`` per step.

    Raises:
        CLIError: bad inputs or an unwritable output folder (nothing is left behind).

    Example:
        >>> import io, os, tempfile
        >>> import numpy as np
        >>> emb = np.random.default_rng(0).normal(size=(100, 8))
        >>> out = os.path.join(tempfile.mkdtemp(), "res")
        >>> report = run_analysis(emb, np.arange(100) % 5, out=out, batch_size=20, candidates=(50,),
        ...                       restart_probs=(0.3,), ppr_restart_probs=(), plots=False, progress=False,
        ...                       stream=io.StringIO())
        >>> names = [s["name"] for s in report["samplers"]]
        >>> "knn capped rounds" in names, os.path.isfile(os.path.join(out, "report.json"))
        (True, True)
    """
    stream = sys.stdout if stream is None else stream
    progress = sys.stderr.isatty() if progress is None else progress
    times = dict(timings or {})
    _check_inputs(embeddings, labels, batch_size)
    if not (np.isfinite(temperature) and temperature > 0):
        raise CLIError(f"--temperature must be a positive number, got {temperature}")
    n = embeddings.shape[0]
    specs = _grid(n, batch_size, k, candidates, restart_probs, ppr_restart_probs, ppr_candidates, samplers,
                  drop_last, metric)
    data = _to_device(embeddings, device)
    try:
        outdir = OutputDir(out, overwrite)
    except OutputError as exc:
        raise CLIError(str(exc)) from None
    try:
        t0 = time.perf_counter()
        table, details = compare_samplers(data, labels, batch_size=batch_size, samplers=specs, seed=seed,
                                          temperature=temperature, progress=progress, return_details=True)
        times.update(_sampler_times(table, time.perf_counter() - t0))
        t1 = time.perf_counter()
        text = table.to_string(columns=[c for c in _TABLE_COLUMNS if c in table])
        (outdir.path("table.txt")).write_text(text + "\n", encoding="utf-8")
        _write_per_batch_csv(outdir.path("per_batch.csv"), details)
        _write_json(outdir.path("batches.json"), {name: det["batches"] for name, det in details.items()},
                    indent=None)
        plot_files = _plots(table, details, outdir.tmp) if plots else []
        times["plots and files"] = time.perf_counter() - t1
        times["total"] = sum(v for key, v in times.items() if key in _STEPS)
        report = {
            "tool": "graphbatch",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": list(command) if command is not None else [],
            "dataset": dict(dataset or {}, num_instances=int(n), dim=int(embeddings.shape[1]),
                            labels=labels is not None),
            "batch_size": batch_size, "drop_last": drop_last, "metric": metric,
            "temperature": temperature,
            "seed": seed,
            "device": str(data.device),
            "global_mean_cosine": global_mean_cosine(embeddings),
            "definitions": DEFINITIONS,
            "samplers": to_json_safe(table.to_records()),
            "sampler_stats": {name: to_json_safe(det["stats"]) for name, det in details.items()},
            "files": ["table.txt", "per_batch.csv", "batches.json"] + plot_files,
            "environment": environment_info(),
            "timings": times,
            "elapsed_s": times["total"],
        }
        _write_json(outdir.path("report.json"), report)
        final = outdir.commit()
    except BaseException:
        outdir.abort()
        raise
    print(text, file=stream)
    print(f"\nglobal mean cosine: {report['global_mean_cosine']:.4f}; batch size {batch_size}; "
          f"{len(table)} sampler configurations", file=stream)
    print("time: " + _format_times(times), file=stream)
    print(f"wrote {', '.join(report['files'] + ['report.json'])} to {final}", file=stream)
    report["out"] = str(final)
    return report


#: The steps whose times add up to the run's total (the sampler lines split "samplers").
_STEPS = ("load", "embed", "warm-up", "samplers", "plots and files")


def _grid(n: int, batch_size: int, k: int, candidates: Any, restart_probs: Any, ppr_restart_probs: Any,
          ppr_candidates: Any, samplers: Sequence[str] | None, drop_last: bool, metric: str) -> list[Any]:
    """The sampler grid of a run, restricted to ``samplers`` and with ``drop_last`` / ``metric`` set."""
    from ..build import METRICS
    from ..samplers import RandomBatchSampler

    if metric not in METRICS:
        raise CLIError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    try:
        specs = default_sampler_grid(n, batch_size, k=k, candidates=candidates, restart_probs=restart_probs,
                                     ppr_restart_probs=ppr_restart_probs, ppr_candidates=ppr_candidates)
        specs = select_samplers(specs, samplers) if samplers else specs
    except ValueError as exc:
        raise CLIError(f"--samplers: {exc}" if samplers else str(exc)) from None
    for spec in specs:
        if drop_last:
            spec.settings["drop_last"] = True
        if metric != "cosine" and spec.factory is not RandomBatchSampler:
            spec.settings["metric"] = metric
    return specs


def _format_times(times: dict[str, float]) -> str:
    """``load 0.2 s | warm-up 0.8 s | samplers 3.1 s (graph builds 1.0, planning 0.2, metrics 1.9) | ...``."""
    parts = []
    for key, v in times.items():
        if key == "samplers":
            sub = ", ".join(f"{s} {times[s]:.2f}" for s in _SUBSTEPS if s in times)
            parts.append(f"samplers {v:.1f} s ({sub})")
        elif key not in _SUBSTEPS:
            parts.append(f"{key} {v:.1f} s")
    return " | ".join(parts)


_SUBSTEPS = ("graph builds", "planning", "metrics")


def _sampler_times(table: Any, elapsed: float) -> dict[str, float]:
    """Seconds per step of :func:`compare_samplers`: warm-up (compilation), then build, plan and metrics."""
    build, plan, metrics = (float(np.sum(table[c])) for c in ("build_s", "plan_s", "metrics_s"))
    return {"warm-up": max(0.0, elapsed - build - plan - metrics), "samplers": build + plan + metrics,
            "graph builds": build, "planning": plan, "metrics": metrics}


def _plots(table: Any, details: dict[str, dict[str, Any]], folder: Path) -> list[str]:
    """The comparison plots; along the epoch: every non-RWR sampler and the median and hardest RWR settings."""
    from .plots import save_comparison_plots

    rwr = sorted((s for s in details if s.startswith("rwr")),
                 key=lambda s: details[s]["summary"]["mean_excess_hardness"])
    picked = list(dict.fromkeys([rwr[len(rwr) // 2], rwr[-1]])) if rwr else []
    epoch_names = [s for s in details if not s.startswith("rwr")] + picked
    return save_comparison_plots(table, details, folder, epoch_names=epoch_names)


def _write_per_batch_csv(path: Path, details: dict[str, dict[str, Any]]) -> None:
    import csv

    rows: list[list[Any]] = []
    header: list[str] | None = None
    for name, det in details.items():
        t = det["table"]
        if header is None:
            header = ["sampler"] + t.columns
        for rec in t.to_records():
            rows.append([name] + [rec[c] for c in header[1:]])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header or ["sampler"])
        w.writerows(rows)


