"""Comparing samplers on the same embeddings: one epoch each, scored by the hardness metrics.

:func:`compare_samplers` runs several samplers (by default :func:`default_sampler_grid`: random,
kNN, cluster, bandwidth and RWR over a grid of M and restart probabilities) for one epoch on
the same embeddings and tabulates :mod:`graphbatch.evaluation.hardness` per sampler;
:mod:`graphbatch.evaluation.plots` draws the result and :mod:`graphbatch.evaluation.report`
writes it to a folder (``graphbatch demo`` / ``graphbatch analyze``).
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .. import samplers as _samplers
from .._validation import as_float_matrix, check_int, to_float32
from .hardness import batch_hardness, epoch_summary, label_codes, unit_rows
from .table import Table

__all__ = ["SamplerSpec", "default_sampler_grid", "compare_samplers", "select_samplers", "FAMILIES", "FAMILY_GROUPS"]


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
        >>> from graphbatch.evaluation import SamplerSpec
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
                         baselines: bool = True, controls: bool = True) -> list[SamplerSpec]:
    """The sampler configurations :func:`compare_samplers` runs by default.

    Baselines (``RandomBatchSampler``, ``KNNBatchSampler`` with ``k = batch_size - 1`` on the exact
    graph (the paper's kNN baseline), ``BandwidthBatchSampler`` with ``k`` neighbours on the largest M,
    ``ClusterBatchSampler(num_clusters=ceil(N / batch_size))``),
    then ``RWRBatchSampler`` in ``mode="walk"`` for every ``candidates`` M x
    ``restart_probs`` p, and in ``mode="ppr"`` for every M in ``ppr_candidates`` (default: the
    same as ``candidates``) x ``ppr_restart_probs``; all with
    ``k`` neighbours per node. ``None`` in ``candidates`` means all N instances (exact kNN
    graph); values above N are clipped to N. With ``controls`` the false-negative controls follow
    (``docs/concepts.md``): RWR walk in rounds on the exact graph, kNN in rounds over ``4B``
    candidates, the community-capped kNN in rounds (``k = 8B``, communities of ``1.5B``, at most
    ``0.375B`` per community: the label-free :func:`~graphbatch.tune` choice on digits) and, when
    pymetis is installed, B3's METIS clusters (``B / 8`` nodes, rank window 5).

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
        controls: include the false-negative-control and rounds configurations.

    Returns:
        A list of :class:`SamplerSpec`.

    Example:
        >>> specs = default_sampler_grid(1000, 32, candidates=(100,), restart_probs=(0.2,), ppr_restart_probs=(),
        ...                              controls=False)
        >>> [s.name for s in specs]
        ['random', 'knn', 'cluster', 'bandwidth', 'rwr-walk M=100 p=0.2']
    """
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
            SamplerSpec("random", _samplers.RandomBatchSampler, {}, "random"),
            # the paper's kNN baseline: a seed and its B - 1 nearest neighbours
            SamplerSpec("knn", _samplers.KNNBatchSampler,
                        {"k": min(max(batch_size - 1, 1), num_nodes - 1), "candidates": num_nodes}, "knn"),
            SamplerSpec("cluster", _samplers.ClusterBatchSampler,
                        {"num_clusters": max(1, math.ceil(num_nodes / batch_size))}, "cluster"),
            SamplerSpec("bandwidth", _samplers.BandwidthBatchSampler, {"k": k, "candidates": max(ms)},
                        "bandwidth"),
        ]
    for mode, probs, mlist in (("walk", restart_probs, ms), ("ppr", ppr_restart_probs, ppr_ms)):
        for m in mlist:
            for p in probs:
                specs.append(SamplerSpec(
                    f"rwr-{mode} M={'all' if m == num_nodes else m} p={p:g}",
                    _samplers.RWRBatchSampler,
                    {"mode": mode, "k": min(k, m), "candidates": m, "restart_prob": float(p)},
                    f"rwr-{mode}",
                ))
    if controls:
        specs += _control_specs(num_nodes, batch_size, k, max(ms))
    return specs


def _control_specs(n: int, b: int, k: int, m: int) -> list[SamplerSpec]:
    """The false-negative controls and rounds planning, sized by the batch size."""
    from .. import backend

    specs = [
        SamplerSpec("rwr-walk rounds M=all p=0.3", _samplers.RWRBatchSampler,
                    {"k": min(k, n - 1), "candidates": n, "restart_prob": 0.3, "plan": "rounds"}, "rwr-walk rounds"),
        SamplerSpec("knn rounds k=4B", _samplers.KNNBatchSampler,
                    {"k": min(4 * b - 1, n - 1), "candidates": n, "plan": "rounds"}, "knn rounds"),
        SamplerSpec("knn capped rounds", _samplers.KNNBatchSampler,
                    {"k": min(8 * b - 1, n - 1), "candidates": n, "community_size": max(1, (3 * b) // 2),
                     "max_per_community": max(1, (3 * b) // 8), "plan": "rounds"}, "knn capped"),
    ]
    if backend.WITH_PYMETIS:
        km = min(20, n - 1, m)
        specs.append(SamplerSpec("metis (B3)", _samplers.MetisBatchSampler,
                                 {"cluster_size": max(2, b // 8), "k": km, "candidates": m,
                                  "skip": max(0, min(5, m - km, n - 1 - km))}, "metis"))
    return specs


#: Sampler families of :func:`default_sampler_grid`, by the name ``graphbatch analyze --samplers`` takes,
#: and the groups of them it also accepts.
FAMILIES = {"random": "random", "knn": "knn", "cluster": "cluster", "bandwidth": "bandwidth",
            "rwr-walk": "rwr-walk", "rwr-ppr": "rwr-ppr", "rwr-walk-rounds": "rwr-walk rounds",
            "knn-rounds": "knn rounds", "knn-capped": "knn capped", "metis": "metis"}
FAMILY_GROUPS = {"baselines": ("random", "knn", "cluster", "bandwidth"), "rwr": ("rwr-walk", "rwr-ppr"),
                 "controls": ("rwr-walk-rounds", "knn-rounds", "knn-capped", "metis"), "all": tuple(FAMILIES)}


def select_samplers(specs: Sequence[SamplerSpec], names: Sequence[str]) -> list[SamplerSpec]:
    """The specs of the named families (:data:`FAMILIES`, or a group of :data:`FAMILY_GROUPS`), in grid order.

    Raises:
        ValueError: an unknown name (the message lists the known ones), or none of the specs left.

    Example:
        >>> specs = default_sampler_grid(500, 32, candidates=(100,), restart_probs=(0.2,), ppr_restart_probs=())
        >>> [s.name for s in select_samplers(specs, ["random", "rwr"])]
        ['random', 'rwr-walk M=100 p=0.2']
    """
    wanted: set[str] = set()
    for name in names:
        key = str(name).strip().lower()
        if key in FAMILY_GROUPS:
            wanted.update(FAMILIES[f] for f in FAMILY_GROUPS[key])
        elif key in FAMILIES:
            wanted.add(FAMILIES[key])
        else:
            raise ValueError(f"unknown sampler {name!r}: choose from {', '.join([*FAMILIES, *FAMILY_GROUPS])}")
    out = [s for s in specs if s.family in wanted]
    if not out:
        raise ValueError(f"no sampler of {', '.join(map(str, names))} is in the grid "
                         "(metis needs pymetis; rwr-ppr needs ppr restart probabilities)")
    return out


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
            with warnings.catch_warnings():  # its small sample clamps k / candidates: the real run warns if it must
                warnings.simplefilter("ignore")
                for _ in spec.factory(m, min(batch_size, m), embeddings=z[:m], seed=seed, **spec.settings):
                    pass
        except Exception:  # noqa: BLE001 - untimed warm-up only; the timed run reports real errors
            pass


def _run_spec(spec: SamplerSpec, z: torch.Tensor, z32: torch.Tensor, labels: Any, batch_size: int, seed: int,
              temperature: float, reference: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One sampler: build it, draw one epoch, score it; returns its table row and its details."""
    n = z.shape[0]
    t0 = time.perf_counter()
    sampler = spec.factory(n, batch_size, embeddings=z32, seed=seed, **spec.settings)
    t1 = time.perf_counter()
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(0)
    batches = [list(map(int, b)) for b in sampler]
    t2 = time.perf_counter()
    table = batch_hardness(z, batches, labels, temperature=temperature, reference=reference, seed=seed)
    summary = epoch_summary(table, batches, n)
    t3 = time.perf_counter()
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
               build_s=t1 - t0, plan_s=t2 - t1, metrics_s=t3 - t2)
    return row, {"table": table, "batches": batches, "summary": summary, "spec": spec, "stats": stats}


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
        ``plan_s`` (drawing the epoch's batches), ``metrics_s`` (scoring them). With
        ``return_details``: ``(table, details)``.

    Example:
        >>> import numpy as np
        >>> from graphbatch.evaluation import compare_samplers, SamplerSpec
        >>> def sequential(n, b, **kw):
        ...     return [list(range(i, min(i + b, n))) for i in range(0, n, b)]
        >>> emb = np.random.default_rng(0).normal(size=(40, 3))
        >>> t = compare_samplers(emb, batch_size=8, samplers=[SamplerSpec("seq", sequential)])
        >>> t[0]["name"], t[0]["coverage"]
        ('seq', 1.0)
    """
    z = as_float_matrix("embeddings", embeddings)
    n = z.shape[0]
    batch_size = check_int("batch_size", batch_size, low=1, high=n)  # n: the number of embeddings
    if labels is not None:
        label_codes(labels, n, torch.device("cpu"))  # validate before any sampler runs
    unit_rows(z)
    specs = default_sampler_grid(n, batch_size) if samplers is None else [
        _as_spec(s, i) for i, s in enumerate(samplers)]
    if not specs:
        raise ValueError("samplers must name at least one sampler, got none")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"samplers must have distinct names, got {names}")
    z32 = to_float32("embeddings", z)
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
        row, details[spec.name] = _run_spec(spec, z, z32, labels, batch_size, seed, temperature, reference)
        rows.append(row)
    out = Table({key: [r[key] for r in rows] for key in rows[0]}) if rows else Table({})
    return (out, details) if return_details else out
