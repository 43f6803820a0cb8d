"""Hardness against false negatives, and hardness along the epoch, for a grid of samplers on two embeddings.

    python benchmarks/tradeoff.py [--seeds 5] [--data ../shared/data] [--json benchmarks/out/tradeoff.json]

Embeddings (cached in ``benchmarks/out/``):

* ``digits``: scikit-learn's digits, standardised pixels -> PCA(32) -> L2 (the demo's embedding);
* ``fmnist``: 5,000 Fashion-MNIST training images embedded by the small CNN of
  ``benchmarks/quality/images.py`` after 150 SimCLR steps with random batches (batch 256, seed 0):
  the projection head's output, L2-normalised (what the contrastive loss compares).

For every configuration and seed one epoch is drawn (batch size 64 on digits, 128 on fmnist) and
scored over its full batches with :func:`graphbatch.evaluation.batch_hardness`: excess hardness
(mean in-batch cosine minus the global mean), false-negative rate (share of same-class pairs) and the
excess hardness of the first and last quarter of the epoch. The table compares each configuration
with the paper's kNN baseline (``KNNBatchSampler``, ``k = B - 1`` on the exact graph) seed by seed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import graphbatch as gb
from graphbatch.evaluation import batch_hardness
from graphbatch.losses import info_nce

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"


def digits():
    from graphbatch.evaluation.report import digits_embeddings

    z, y, _ = digits_embeddings(32)
    return z, y, 64


def fmnist(data: Path):
    """SimCLR embedding of 5,000 Fashion-MNIST images (trained once, cached)."""
    cache = OUT / "fmnist_simclr_embedding.npz"
    if cache.exists():
        f = np.load(cache)
        return f["z"], f["y"], 128
    sys.path.insert(0, str(REPO / "benchmarks" / "quality"))
    import common as C  # noqa: E402
    import images as I  # noqa: E402
    import torch.nn.functional as F

    x_tr, y_tr, _, _ = I.load_fashion(data, 5000, 10)
    C.seed_all(0)
    torch.set_num_threads(1)
    model = I.CNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ds = gb.ImageDataset(x_tr, gb.augment.simclr_augment(28, strength=0.5), labels=y_tr, seed=0)
    sampler = gb.RandomBatchSampler(len(ds), 256, seed=0, drop_last=True)
    loader = gb.make_loader(ds, sampler)
    steps, epoch = 0, 0
    model.train()
    while steps < 150:
        sampler.set_epoch(epoch)
        for batch in loader:
            v1, v2 = batch["views"]
            loss = info_nce(model(v1), model(v2), temperature=0.2, in_view_negatives=False)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if steps == 150:
                break
        epoch += 1
    model.eval()
    with torch.no_grad():
        z = torch.cat([F.normalize(model((c.float() / 255.0).unsqueeze(1)), dim=1)
                       for c in x_tr.split(512)]).numpy().astype(np.float32)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, z=z, y=y_tr)
    return z, y_tr, 128


BASELINES = {
    "random": ("RandomBatchSampler", {}),
    "knn (paper)": ("KNNBatchSampler", {"candidates": None}),
    "rwr walk k=10 M=all p=0.3": ("RWRBatchSampler", {"k": 10, "candidates": None, "restart_prob": 0.3}),
    "cluster (k-means)": ("ClusterBatchSampler", {}),
    "bandwidth (RCM)": ("BandwidthBatchSampler", {"k": 10, "candidates": None}),
    "metis (B3), cluster B/8, skip 5": ("MetisBatchSampler", {"k": 20, "candidates": None, "skip": 5}),
    "knn skip=B/4": ("KNNBatchSampler", {"candidates": None, "skip": None}),
    "knn mutual k=2B": ("KNNBatchSampler", {"candidates": None, "k": None, "mutual": True}),
    "knn max_similarity=0.9": ("KNNBatchSampler", {"candidates": None, "max_similarity": 0.9}),
    "knn max_similarity=0.8": ("KNNBatchSampler", {"candidates": None, "max_similarity": 0.8}),
}


def baselines(b: int) -> dict:
    out = {}
    for name, (cls, settings) in BASELINES.items():
        settings = dict(settings)
        if settings.get("skip", 0) is None:
            settings["skip"] = b // 4
        if "k" in settings and settings["k"] is None:
            settings["k"] = 2 * b - 1
        out[name] = (cls, settings)
    return out


def evaluate(z: np.ndarray, y: np.ndarray, cls: str, settings: dict, b: int, seed: int) -> dict:
    t0 = time.perf_counter()
    sampler = getattr(gb, cls)(len(z), b, embeddings=torch.from_numpy(z), seed=seed, **settings)
    sampler.set_epoch(0)
    batches = [list(map(int, bt)) for bt in sampler]
    plan_s = time.perf_counter() - t0
    full = [bt for bt in batches if len(bt) == b]
    t = batch_hardness(z, full, y)
    ex, fn = t["excess_hardness"], t["false_negative_rate"]
    q = np.array_split(ex, 4)
    return {"excess": float(ex.mean()), "fn": float(fn.mean()), "q1": float(q[0].mean()), "q4": float(q[-1].mean()),
            "seconds": plan_s}


def paired(rows: dict, name: str) -> dict:
    """Seed-matched comparison of ``name`` with the kNN baseline."""
    from scipy import stats

    a, k = rows[name], rows["knn (paper)"]
    d_ex = np.array([x["excess"] - y["excess"] for x, y in zip(a, k)])
    fn_ratio = np.array([x["fn"] / y["fn"] for x, y in zip(a, k)])
    d_fn = np.array([x["fn"] - y["fn"] for x, y in zip(a, k)])
    p = float(stats.ttest_rel([x["fn"] for x in a], [y["fn"] for y in k]).pvalue) if len(a) > 1 else float("nan")
    return {"d_excess_mean": float(d_ex.mean()), "d_excess_max_abs": float(np.abs(d_ex).max()),
            "fn_ratio_mean": float(fn_ratio.mean()), "fn_ratio_max": float(fn_ratio.max()),
            "d_fn_mean": float(d_fn.mean()), "d_fn_sd": float(d_fn.std(ddof=1)) if len(d_fn) > 1 else 0.0,
            "p_fn": p, "wins": int((d_fn < 0).sum()), "seeds": len(a),
            "last_quarter_ratio": [x["q4"] / x["q1"] for x in a]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="evaluation seeds (tuning uses two other seeds)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--datasets", default="digits,fmnist")
    ap.add_argument("--json", default=str(OUT / "tradeoff.json"))
    args = ap.parse_args()
    results = {}
    eval_seeds = range(100, 100 + args.seeds)  # disjoint from the seeds tune() chooses on (0, 1)
    for name in args.datasets.split(","):
        z, y, b = digits() if name == "digits" else fmnist(Path(args.data))
        t0 = time.perf_counter()
        with_labels = gb.tune(z, y, batch_size=b, seeds=2)
        label_free = gb.tune(z, None, batch_size=b, seeds=2)
        tune_s = time.perf_counter() - t0
        configs = {**baselines(b),
                   f"tuned with labels: {with_labels.best['name']}": (with_labels.best["sampler"],
                                                                      with_labels.best["settings"]),
                   f"tuned label-free: {label_free.best['name']}": (label_free.best["sampler"],
                                                                    label_free.best["settings"])}
        rows = {cfg: [evaluate(z, y, cls, st, b, s) for s in eval_seeds] for cfg, (cls, st) in configs.items()}
        print(f"\n{name}: N={len(z)}, d={z.shape[1]}, B={b}, {len(set(y.tolist()))} classes; "
              f"seeds {eval_seeds.start}-{eval_seeds.stop - 1}; tuning took {tune_s:.0f} s")
        print(f"{'configuration':62s} {'excess':>7s} {'FN':>6s} {'dEx':>7s} {'FN/kNN':>7s} {'p':>8s} {'wins':>5s} "
              f"{'q4/q1':>6s}")
        summary = {}
        for cfg, rs in rows.items():
            pr = paired(rows, cfg)
            summary[cfg] = pr
            ex = np.mean([r["excess"] for r in rs])
            fn = np.mean([r["fn"] for r in rs])
            print(f"{cfg:62s} {ex:7.3f} {fn:6.3f} {pr['d_excess_mean']:+7.3f} {pr['fn_ratio_mean']:7.2f} "
                  f"{pr['p_fn']:8.1e} {pr['wins']:>2d}/{pr['seeds']} {np.mean(pr['last_quarter_ratio']):6.2f}")
        results[name] = {"n": len(z), "batch_size": b, "rows": rows, "paired": summary,
                         "tune_with_labels": {"best": with_labels.best, "target": with_labels.target,
                                              "curve": with_labels.table.to_records(json_safe=True)},
                         "tune_label_free": {"best": label_free.best, "target": label_free.target,
                                             "curve": label_free.table.to_records(json_safe=True)}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
