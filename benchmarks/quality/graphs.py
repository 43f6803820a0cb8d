"""GraphCL (GIN encoder) unsupervised pre-training on TU data sets, evaluated by the GraphCL protocol.

    nice -n 19 python benchmarks/quality/graphs.py --dataset MUTAG --sampler rwr_walk --seed 0

Protocol (GraphCL, You et al. 2020, unsupervised_TU): a 3-layer GIN (hidden 32, batch norm), graph
embedding = concatenation of the sum-pooled node features of every layer (96-d); a 2-layer projection
head; two views per graph from a random choice of node dropping / edge perturbation / attribute masking
/ subgraph (ratio 0.2); symmetric cross-view InfoNCE (`graphbatch.losses.info_nce`) at temperature
0.2; Adam lr 0.01. Evaluation: frozen embeddings of the
unaugmented graphs, SVM (sklearn ``SVC``, C chosen by inner 5-fold grid search over a small grid),
10-fold stratified CV accuracy. Shrunk for a CPU: 20 epochs, batch 32 (MUTAG) / 64 (PROTEINS).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

from graphbatch.losses import info_nce  # noqa: E402

BATCH = {"MUTAG": 32, "PROTEINS": 64}
DATASETS = ("MUTAG", "PROTEINS")
PAPER = {"MUTAG": {"random": 86.80, "rwr_walk": 87.78}, "PROTEINS": {"random": 74.39, "rwr_walk": 75.04}}


def budget(quick: bool) -> dict:
    """Training budget per run: the full sweep's, or a tiny smoke (``--quick``)."""
    return {"epochs": 2, "folds": 3} if quick else {"epochs": 20, "folds": 10}


def load_tu(data: Path, name: str, workdir: Path):
    """Copy ``<data>/TU/<name>/raw`` into ``workdir`` (PyG writes processed/ there) and load it."""
    from torch_geometric.datasets import TUDataset

    src = C.require_data(Path(data) / "TU" / name / "raw", f"TU data set {name}")
    dst = Path(workdir) / name / "raw"
    if not dst.exists():
        shutil.copytree(src, dst)
    return TUDataset(str(workdir), name=name)


class GIN(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int = 32, layers: int = 3) -> None:
        super().__init__()
        from torch_geometric.nn import GINConv

        dims = [in_dim] + [hidden] * layers
        self.convs = torch.nn.ModuleList(
            GINConv(torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.ReLU(), torch.nn.Linear(b, b)))
            for a, b in zip(dims, dims[1:]))
        self.bns = torch.nn.ModuleList(torch.nn.BatchNorm1d(hidden) for _ in range(layers))
        out = hidden * layers
        self.proj = torch.nn.Sequential(torch.nn.Linear(out, out), torch.nn.ReLU(), torch.nn.Linear(out, out))

    def embed(self, batch) -> torch.Tensor:
        from torch_geometric.nn import global_add_pool

        x, pooled = batch.x, []
        for conv, bn in zip(self.convs, self.bns):
            x = bn(F.relu(conv(x, batch.edge_index)))
            pooled.append(global_add_pool(x, batch.batch, size=batch.num_graphs))
        return torch.cat(pooled, dim=1)

    def forward(self, batch) -> torch.Tensor:
        return self.proj(self.embed(batch))


def svm_cv(x: np.ndarray, y: np.ndarray, *, folds: int, seed: int, grid=(0.01, 0.1, 1.0, 10.0, 100.0)) -> float:
    """GraphCL's evaluation: per outer fold, SVC with C picked by inner grid search; mean accuracy (%)."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    accs = []
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        inner = min(5, int(np.bincount(y[tr]).min()))
        clf = GridSearchCV(SVC(), {"C": list(grid)}, cv=max(2, inner), scoring="accuracy")
        clf.fit(x[tr], y[tr])
        accs.append(float((clf.predict(x[te]) == y[te]).mean()))
    return 100.0 * float(np.mean(accs))


def run(dataset: str, sampler_name: str, seed: int, data: Path, *, epochs: int = 20, limit: int | None = None,
        folds: int = 10, log_every: int = 5, workdir: Path | None = None) -> dict:
    """Train with one sampler and evaluate; returns a small JSON-able dict (no tensors)."""
    from torch_geometric.loader import DataLoader

    from graphbatch.adapters import (
        AttributeMasking,
        EdgePerturbation,
        GraphDataset,
        NodeDropping,
        RandomSubgraph,
        embed_dataset,
    )
    from graphbatch.adapters import augment as A

    t_start = time.perf_counter()
    own_tmp = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="gb_tu_")) if own_tmp else Path(workdir)
    try:
        tu = load_tu(data, dataset, workdir)
        if limit is not None:
            tu = tu[:limit]
        graphs = [g for g in tu]  # materialise once (cheap for TU sizes)
    finally:
        if own_tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    labels = np.array([int(g.y) for g in graphs])
    device = C.pick_device()
    C.seed_all(seed)
    n, bs = len(graphs), min(BATCH.get(dataset, 32), len(graphs) // 2)
    model = GIN(graphs[0].x.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    aug = A.RandomChoice([NodeDropping(0.2), EdgePerturbation(0.2), AttributeMasking(0.2), RandomSubgraph(0.2)])
    ds = GraphDataset(graphs, augment=aug, seed=seed)
    fwd = lambda m, b: F.normalize(m(b), dim=1)  # noqa: E731
    bank = embed_dataset(model, ds, forward=fwd, progress=False, device=device).float()
    steps = epochs * (n // bs)
    sampler = C.make_sampler(sampler_name, n, bs, seed=seed, embeddings=bank.clone(), k=10,
                             candidates=min(100, n - 1), refresh_every=max(1, n // bs))
    loader = DataLoader(ds, batch_sampler=sampler)

    def step_fn(batch):
        v1, v2 = (v.to(device) for v in batch)
        z1, z2 = model(v1), model(v2)
        return info_nce(z1, z2, temperature=0.2, in_view_negatives=False), v1.node_index, z1

    plain = ds.for_embedding()

    def embed_fn(idx):
        return model(ds.collate_fn([plain[int(i)] for i in idx]).to(device))

    model.train()
    log = C.HardnessLog(labels, log_every, temperature=0.2, n=n, embed_fn=embed_fn, seed=seed, model=model)
    info = C.train(lambda e: (ds.set_epoch(e), loader)[1], sampler, step_fn, opt, steps=steps, log=log)
    model.eval()
    emb = embed_dataset(model, ds, forward=lambda m, b: m.embed(b), progress=False, device=device)
    acc = svm_cv(emb.cpu().double().numpy(), labels, folds=folds, seed=seed)
    return {"modality": "graphs", "dataset": dataset, "sampler": sampler_name, "seed": seed, "metric": "svm_acc",
            "score": round(acc, 3), "n": n, "batch_size": bs, "epochs": epochs, "folds": folds,
            "device": str(device), "seconds": round(time.perf_counter() - t_start, 2), **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="MUTAG", choices=sorted(BATCH))
    ap.add_argument("--sampler", default="rwr_walk", choices=C.SAMPLERS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--data", default=str(C.REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    res = run(args.dataset, args.sampler, args.seed, Path(args.data), epochs=args.epochs)
    res.pop("hardness_log")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
