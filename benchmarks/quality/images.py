"""SimCLR with a small CNN on a Fashion-MNIST subset, evaluated by a linear probe.

    nice -n 19 python benchmarks/quality/images.py --sampler rwr_walk --seed 0

Protocol (SimCLR, shrunk for a 2-core CPU): a 3-block CNN encoder (BatchNorm, 128-d output) and a
2-layer projection head; two views per image from :func:`graphbatch.adapters.augment.simclr_augment` (resized
crop 0.2-1, flip, brightness/contrast jitter, grey noise); symmetric cross-view InfoNCE
(`graphbatch.losses.info_nce`, no in-view negatives), temperature 0.2; Adam
lr 1e-3. Evaluation: frozen encoder features of the unaugmented train subset -> standardised ->
logistic regression, top-1 accuracy on a fixed test subset. Shrunk: 5,000 train images, 2,000 test
images (fixed random subsets), batch 256, 150 steps (about 8 epochs), 1 torch thread.

Methods (issue 14): ``simclr`` (the above, InfoNCE; issue 7's cell), ``simclr_dcl`` / ``simclr_hcl``
(``graphbatch.losses.dcl`` / ``hcl``, tau+ 0.1, beta 1) and ``mocov3`` (MoCo v3 without a queue: the
online CNN + projection head + a predictor (2-layer MLP, BatchNorm), a momentum copy of the encoder and
head (m = 0.99) giving the keys, loss ``info_nce(q1, k2) + info_nce(q2, k1)`` over the in-batch keys,
temperature 0.2; the samplers are refreshed from the keys, the negatives' space). The new cells run
``NEW_BUDGET``: the same 5,000 / 2,000 images but 100 steps at batch 128 (issue 14's compute budget: a
MoCo v3 step at batch 256 took 1.1 s on the shared box, 135 s a run).
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

METHODS = ("simclr", "simclr_dcl", "simclr_hcl", "mocov3")
LOSS = {"simclr": "infonce", "simclr_dcl": "dcl", "simclr_hcl": "hcl", "mocov3": "infonce"}
DATASETS = ("fashion-mnist",)
# BatchSampler paper, ImageNet-100 top-1 (100 epochs); it gives no DCL / HCL rows for images
PAPER = {"simclr": {"fashion-mnist": {"random": 64.0, "rwr_walk": 64.7}},
         "mocov3": {"fashion-mnist": {"random": 68.9, "rwr_walk": 69.5}}}
NEW_BUDGET = {"n_train": 5000, "n_test": 2000, "steps": 100, "batch_size": 128}
MOMENTUM = 0.99


def budget(quick: bool, method: str = "simclr") -> dict:
    """Training budget per run: the full sweep's, or a tiny smoke (``--quick``)."""
    if quick:
        return {"n_train": 600, "n_test": 300, "steps": 6, "batch_size": 64, "log_every": 2}
    if method != "simclr":
        return dict(NEW_BUDGET)
    return {"n_train": 5000, "n_test": 2000, "steps": 150, "batch_size": 256}


def read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), dtype=np.uint8, offset=header)


def load_fashion(data: Path, n_train: int, n_test: int):
    """Fixed random subsets (seed 0, independent of the run's seed) of the train and test splits."""
    root = C.require_data(Path(data) / "fashion-mnist", "Fashion-MNIST")
    out = []
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = read_idx(root / f"{split}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
        y = read_idx(root / f"{split}-labels-idx1-ubyte.gz", 8).astype(np.int64)
        pick = np.sort(np.random.default_rng(0).permutation(len(y))[:n])
        out += [torch.from_numpy(x[pick].copy()), y[pick]]
    return out


class CNN(torch.nn.Module):
    def __init__(self, width: int = 32, out: int = 128, proj: int = 64) -> None:
        super().__init__()

        def block(a, b):
            return [torch.nn.Conv2d(a, b, 3, padding=1, bias=False), torch.nn.BatchNorm2d(b), torch.nn.ReLU()]

        self.encoder = torch.nn.Sequential(
            *block(1, width), torch.nn.MaxPool2d(2), *block(width, 2 * width), torch.nn.MaxPool2d(2),
            *block(2 * width, out), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.proj = torch.nn.Sequential(torch.nn.Linear(out, out), torch.nn.ReLU(), torch.nn.Linear(out, proj))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.encoder(x))


def linear_probe(f_tr: np.ndarray, y_tr: np.ndarray, f_te: np.ndarray, y_te: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(f_tr)
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(sc.transform(f_tr), y_tr)
    return 100.0 * float((clf.predict(sc.transform(f_te)) == y_te).mean())


def mlp(a: int, h: int, b: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(a, h, bias=False), torch.nn.BatchNorm1d(h), torch.nn.ReLU(),
                               torch.nn.Linear(h, b))


def run(dataset: str, sampler_name: str, seed: int, data: Path, *, method: str = "simclr", n_train: int = 5000,
        n_test: int = 2000, steps: int = 150, batch_size: int = 256, log_every: int = 10) -> dict:
    """Train with one sampler and evaluate; returns a small JSON-able dict (no tensors)."""
    import copy

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    from graphbatch.adapters import ImageDataset, embed_dataset, make_loader
    from graphbatch.adapters.augment import simclr_augment

    t_start = time.perf_counter()
    x_tr, y_tr, x_te, y_te = load_fashion(data, n_train, n_test)
    device = C.pick_device()
    C.seed_all(seed)
    model = CNN().to(device)
    params = list(model.parameters())
    if method == "mocov3":
        predictor = mlp(64, 128, 64).to(device)
        momentum = copy.deepcopy(model)
        for q in momentum.parameters():
            q.requires_grad_(False)
        params += list(predictor.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    ds = ImageDataset(x_tr, simclr_augment(28, strength=0.5), labels=y_tr, seed=seed)
    n = len(ds)
    fwd = lambda m, b: F.normalize(m(b["views"][0]), dim=1)  # noqa: E731
    emb0 = embed_dataset(model, ds, forward=fwd, progress=False, device=device).float()
    sampler = C.make_sampler(sampler_name, n, batch_size, seed=seed, embeddings=emb0, k=20,
                             candidates=min(500, n - 1), refresh_every=max(1, n // batch_size // 2))
    loader = make_loader(ds, sampler)
    plain = (x_tr.float() / 255.0).unsqueeze(1)

    def step_fn(batch):
        v1, v2 = (v.to(device, non_blocking=True) for v in batch["views"])
        if method == "mocov3":
            with torch.no_grad():  # momentum update, then the keys (MoCo v3's order)
                for q, k in zip(model.parameters(), momentum.parameters()):
                    k.mul_(MOMENTUM).add_(q.detach(), alpha=1.0 - MOMENTUM)
                k1, k2 = momentum(v1), momentum(v2)
            q1, q2 = predictor(model(v1)), predictor(model(v2))
            loss = (C.contrastive_loss("infonce", q1, k2, temperature=0.2, symmetric=False)
                    + C.contrastive_loss("infonce", q2, k1, temperature=0.2, symmetric=False))
            return loss, batch["index"], k1
        z1, z2 = model(v1), model(v2)
        return C.contrastive_loss(LOSS[method], z1, z2, temperature=0.2), batch["index"], z1

    def embed_fn(idx):
        return model(plain[torch.as_tensor(idx)].to(device))

    model.train()
    log = C.HardnessLog(y_tr, log_every, temperature=0.2, n=n, embed_fn=embed_fn, seed=seed, model=model)
    info = C.train(lambda e: (ds.set_epoch(e), loader)[1], sampler, step_fn, opt, steps=steps, log=log)
    model.eval()
    with torch.no_grad():
        feats = lambda x: torch.cat([model.encoder(c.to(device)).cpu()  # noqa: E731
                                     for c in (x.float() / 255.0).unsqueeze(1).split(512)]).double().numpy()
        acc = linear_probe(feats(x_tr), y_tr, feats(x_te), y_te)
    return {"modality": "images", "dataset": dataset, "method": method, "sampler": sampler_name, "seed": seed,
            "metric": "linear_probe_acc", "score": round(acc, 3), "n": n, "n_test": int(len(y_te)),
            "batch_size": batch_size, "device": str(device), "seconds": round(time.perf_counter() - t_start, 2),
            **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="simclr", choices=METHODS)
    ap.add_argument("--sampler", default="rwr_walk", choices=C.SAMPLERS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="default: the sweep's budget")
    ap.add_argument("--data", default=str(C.REPO.parent / "shared" / "data"))
    args = ap.parse_args()
    b = budget(False, args.method)
    if args.steps is not None:
        b["steps"] = args.steps
    res = run("fashion-mnist", args.sampler, args.seed, Path(args.data), method=args.method, **b)
    res.pop("hardness_log")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
