"""Shared pieces of the quality benchmarks: samplers, the training loop, hardness logging, caching.

Every modality script trains the same model with each sampler for the SAME number of steps and
batch size (equal compute), refreshes the graph samplers from the trainer's own embeddings
(``sampler.update(index, z.detach())``) and logs, every ``log_every`` steps, the hardness of the
batch actually used (:func:`graphbatch.evaluation.batch_hardness` on the current embedding bank).
"""
from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import graphbatch as gb
from graphbatch.evaluation import batch_hardness

SAMPLERS = ("random", "knn", "rwr_walk", "rwr_ppr", "knn_capped", "metis", "knn_guard")
# the samplers of the issue-14 matrix (every new cell): random, the paper's kNN, the paper's RWR walk, the
# false-negative-controlled setting of RESULTS.md section 4b and the B3 (METIS) baseline
MATRIX_SAMPLERS = ("random", "knn", "rwr_walk", "knn_capped", "metis")
REPO = Path(__file__).resolve().parents[2]


def pick_device() -> torch.device:
    """CUDA when available, else CPU (the scripts run unchanged on a GPU box).

    On CPU torch is limited to ``QUALITY_THREADS`` threads (default 1): on a shared, loaded box
    intra-op thread pools spin against each other (a GIN step went from 0.5 s to 25 ms with 1 thread).
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(int(os.environ.get("QUALITY_THREADS", "1")))
    return torch.device("cpu")


def require_data(path: Path, what: str) -> Path:
    """Return ``path`` or exit with a clear message naming the missing folder/file."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"quality benchmark: {what} not found at {path} -- pass --data pointing at the "
                         f"shared data folder (default ../shared/data, relative to the repo root)")
    return path


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def make_sampler(name: str, n: int, batch_size: int, *, seed: int, embeddings: torch.Tensor, k: int,
                 candidates: int | None, refresh_every: int, restart_prob: float = 0.2):
    """One of :data:`SAMPLERS`, all built from the same initial embeddings and refreshed alike.

    ``k``/``candidates`` configure the RWR graph. The kNN baseline is the paper's: a random seed and its
    ``batch_size - 1`` exact nearest unused neighbours (``k = batch_size - 1``, all candidates), so a batch
    is one neighbourhood rather than ``k`` neighbours topped up by the sampler's fallbacks.

    ``knn_capped`` is the label-free false-negative-controlled setting chosen by ``graphbatch.tune`` in
    RESULTS.md section 4b: exact kNN over ``k = 8B - 1`` neighbours, k-means communities of ``1.5 B``
    members, at most ``0.375 B`` of one community per batch, all batches grown in rounds.
    ``metis`` is the B3 baseline of section 4b: random sets of METIS clusters of ``B / 8`` nodes of the
    exact top-``k`` mutual graph after each node's 5 most similar candidates (``k`` as the RWR graph's).
    ``knn_guard`` is the paper's kNN baseline with the similarity guard of section 4b: no two members of a
    batch more similar than :func:`guard_threshold` of the initial embeddings (label-free; used to
    investigate the kNN loss on the pre-trained MiniLM).
    """
    common = dict(seed=seed, refresh_every=refresh_every, drop_last=True)
    if name == "random":
        return gb.RandomBatchSampler(n, batch_size, **common)
    if name == "knn":
        return gb.KNNBatchSampler(n, batch_size, k=min(batch_size - 1, n - 1), candidates=None,
                                  embeddings=embeddings, **common)
    if name in ("rwr_walk", "rwr_ppr"):
        return gb.RWRBatchSampler(n, batch_size, k=k, candidates=candidates, restart_prob=restart_prob,
                                  mode=name.split("_")[1], embeddings=embeddings, **common)
    if name == "knn_capped":
        return gb.KNNBatchSampler(n, batch_size, k=min(8 * batch_size - 1, n - 1), candidates=None,
                                  community_size=max(2, round(1.5 * batch_size)),
                                  max_per_community=max(1, round(0.375 * batch_size)), plan="rounds",
                                  embeddings=embeddings, **common)
    if name == "metis":
        skip = max(0, min(5, n - 2 - k))
        return gb.MetisBatchSampler(n, batch_size, k=min(k, n - 1 - skip), candidates=None, skip=skip,
                                    embeddings=embeddings, **common)
    if name == "knn_guard":
        return gb.KNNBatchSampler(n, batch_size, k=min(batch_size - 1, n - 1), candidates=None,
                                  max_similarity=guard_threshold(embeddings), embeddings=embeddings, **common)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {name!r}")


GUARD_QUANTILE = 0.75


def guard_threshold(embeddings: torch.Tensor, quantile: float = GUARD_QUANTILE) -> float:
    """The ``quantile`` of every instance's cosine similarity to its nearest other instance.

    A label-free threshold for ``max_similarity``: at 0.75 a quarter of the instances have their nearest
    neighbour above it, so the guard removes the closest pairs (where unlabelled near-duplicates sit) and
    keeps the rest of each neighbourhood.
    """
    _, best = gb.neighbor_table(embeddings.float(), 1, method="exact", metric="cosine")  # nearest other row
    return float(torch.quantile(best[:, 0], quantile))


# ------------------------------------------------------------------------------------------ losses
LOSSES = ("infonce", "dcl", "hcl")
TAU_PLUS, BETA = 0.1, 1.0  # DCL / HCL (Chuang et al. 2020, Robinson et al. 2021): their defaults


def contrastive_loss(name: str, z1: torch.Tensor, z2: torch.Tensor, *, temperature: float,
                     symmetric: bool = True, in_view_negatives: bool = False) -> torch.Tensor:
    """``graphbatch.losses`` by name: ``"infonce"``, ``"dcl"`` (tau+ 0.1) or ``"hcl"`` (tau+ 0.1, beta 1)."""
    from graphbatch.losses import dcl, hcl, info_nce

    kw = dict(temperature=temperature, symmetric=symmetric, in_view_negatives=in_view_negatives)
    if name == "infonce":
        return info_nce(z1, z2, **kw)
    if name == "dcl":
        return dcl(z1, z2, tau_plus=TAU_PLUS, **kw)
    if name == "hcl":
        return hcl(z1, z2, tau_plus=TAU_PLUS, beta=BETA, **kw)
    raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")


class HardnessLog:
    """Every ``every`` steps: hardness / false negatives of the batch just used vs a random batch.

    Both the training batch and a uniformly random batch of the same size are embedded afresh by
    ``embed_fn(indices) -> (b, d)`` (the current model, no augmentation, no grad, ``model`` in eval
    mode, its train/eval mode restored afterwards), so the two are measured under the same
    conditions; :func:`graphbatch.evaluation.batch_hardness` scores both. ``excess_cosine`` is the
    batch's mean in-batch cosine minus the random batch's (0 in expectation for random batches).
    """

    COLS = ("mean_cosine", "false_negative_rate", "infonce")

    def __init__(self, labels: Any, every: int, temperature: float, n: int, embed_fn: Callable, seed: int,
                 model: torch.nn.Module) -> None:
        self.model = model
        self.labels = None if labels is None else np.asarray(labels)
        self.every = max(1, int(every))
        self.temperature = temperature
        self.n = n
        self.embed_fn = embed_fn
        self.rng = np.random.default_rng(10_000 + seed)
        self.rows: list[dict] = []

    def maybe(self, step: int, index: torch.Tensor) -> None:
        if step % self.every:
            return
        idx = index.cpu().numpy().astype(np.int64)
        ref = self.rng.choice(self.n, size=idx.size, replace=False)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                z = torch.cat([self.embed_fn(idx).float(), self.embed_fn(ref).float()]).cpu()
        finally:
            self.model.train(was)
        labels = None if self.labels is None else np.concatenate([self.labels[idx], self.labels[ref]])
        b = idx.size
        with warnings.catch_warnings():  # the sentence labels are mostly singletons on purpose (paraphrase groups)
            warnings.filterwarnings("ignore", message="labels have", category=RuntimeWarning)
            t = batch_hardness(z, [list(range(b)), list(range(b, 2 * b))], labels=labels,
                               temperature=self.temperature)
        row = {"step": step}
        for c in self.COLS:
            if c in t:
                row[c] = round(float(t[c][0]), 5)
                row["random_" + c] = round(float(t[c][1]), 5)
        row["excess_cosine"] = round(row["mean_cosine"] - row["random_mean_cosine"], 5)
        self.rows.append(row)

    def summary(self) -> dict:
        out = {}
        for c in self.rows[0] if self.rows else ():
            if c != "step":
                vals = [r[c] for r in self.rows if r.get(c) is not None and r[c] == r[c]]
                if vals:
                    out[c] = round(float(np.mean(vals)), 5)
        return out


def train(loader_factory: Callable[[int], Any], sampler, step_fn: Callable[[Any], tuple], opt, *, steps: int,
          log: HardnessLog) -> dict:
    """Run ``steps`` optimisation steps; ``step_fn(batch) -> (loss, index, z)``; feeds ``z`` to the sampler."""
    step, epoch, losses, t0 = 0, 0, [], time.perf_counter()
    while step < steps:
        sampler.set_epoch(epoch)
        for batch in loader_factory(epoch):
            loss, index, z = step_fn(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sampler.update(index, F.normalize(z.detach().float(), dim=1))
            step += 1
            losses.append(float(loss.detach()))
            log.maybe(step, index)
            if step >= steps:
                break
        epoch += 1
    stats = getattr(sampler, "stats", {}) or {}
    return {"train_seconds": round(time.perf_counter() - t0, 2), "steps": step, "epochs": epoch,
            "loss_first": round(float(np.mean(losses[:5])), 4), "loss_last": round(float(np.mean(losses[-5:])), 4),
            "refreshes": int(stats.get("refreshes", 0)) if isinstance(stats, dict) else 0,
            "sampler_repr": repr(sampler),
            "hardness": log.summary(), "hardness_log": log.rows}


# ------------------------------------------------------------------------------------------ cache
def cache_file(out: Path, modality: str, dataset: str, sampler: str, seed: int, quick: bool,
               method: str | None = None) -> Path:
    """One run's JSON; ``method`` (a modality's non-default method, e.g. ``"mvgrl"``) joins the name.

    The default method of each modality (GraphCL, SimCLR, SimCSE on MiniLM: issue 7's cells) keeps the
    original ``<dataset>__<sampler>__seed<k>.json`` name, so the old cache stays valid.
    """
    tag = "quick" if quick else "full"
    stem = dataset if method is None else f"{dataset}__{method}"
    return Path(out) / tag / modality / f"{stem}__{sampler}__seed{seed}.json"


def save_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")))
    os.replace(tmp, path)


def mean_std(values) -> tuple[float, float]:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0
