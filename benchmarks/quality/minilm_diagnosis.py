"""Why the paper's kNN batches lose on the pre-trained MiniLM (issue 14): what the loss sees in each batch.

    HF_HUB_OFFLINE=1 nice -n 19 python benchmarks/quality/minilm_diagnosis.py

No training: the MiniLM cell's start (all-MiniLM-L6-v2 on its 2,000 STS-B train sentences, the embeddings
every sampler of that cell is built from), one epoch of batches of 64 from each sampler of the cell
(``common.make_sampler`` with the cell's arguments, sampler seeds 0-4), and per batch, at the loss's
temperature 0.05:

* ``excess cos``: mean in-batch cosine minus that of the random batches;
* ``close pairs / batch``: pairs with cosine above ``common.guard_threshold`` (0.70 here: a quarter of the
  sentences have their nearest neighbour above it);
* ``paraphrase pairs / batch``: pairs joined by an STS-B train pair scored >= 4 (the cell's false negatives);
* ``top-pair share``: for each anchor, the largest in-batch negative's share of the InfoNCE denominator's
  negative mass ``sum_j exp(cos_ij / 0.05)``, averaged over anchors: near 1 means one negative sets the
  anchor's whole gradient;
* ``close-pair mass``: the share of all negative mass owed to the close pairs.

Prints a table and writes ``benchmarks/out/minilm_diagnosis.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402
import sentences as S  # noqa: E402

SAMPLERS = ("random", "knn", "rwr_walk", "knn_capped", "metis", "knn_guard")
TEMPERATURE = 0.05


def batch_terms(z: torch.Tensor, batch: list[int], labels: np.ndarray, threshold: float) -> dict:
    """What the InfoNCE loss sees in one batch (cosines of normalised rows ``z``)."""
    idx = torch.as_tensor(batch)
    sim = z[idx] @ z[idx].T
    off = ~torch.eye(len(idx), dtype=torch.bool)
    upper = torch.triu(off, diagonal=1)
    lab = torch.as_tensor(labels[batch])
    mass = torch.where(off, torch.exp((sim - 1.0) / TEMPERATURE), torch.zeros(()))  # scaled by e^(-1/tau)
    close = (sim > threshold) & off
    return {"mean_cos": float(sim[upper].mean()),
            "close_pairs": int(((sim > threshold) & upper).sum()),
            "paraphrase_pairs": int(((lab[:, None] == lab[None, :]) & upper).sum()),
            "top_share": float((mass.max(dim=1).values / mass.sum(dim=1)).mean()),
            "close_mass": float((mass * close).sum() / mass.sum())}


def diagnose(emb: torch.Tensor, labels: np.ndarray, *, batch_size: int = 64, seeds=range(5)) -> dict:
    """Per sampler: the mean of :func:`batch_terms` over one epoch for each sampler seed."""
    z = F.normalize(emb.float(), dim=1)
    n = len(z)
    threshold = C.guard_threshold(z)
    out = {"threshold": round(threshold, 4), "n": n, "batch_size": batch_size, "rows": {}}
    for name in SAMPLERS:
        per_seed = []
        for seed in seeds:
            sampler = C.make_sampler(name, n, batch_size, seed=seed, embeddings=z, k=20,
                                     candidates=min(500, n - 1), refresh_every=max(1, n // batch_size // 2))
            terms = [batch_terms(z, list(b), labels, threshold) for b in sampler]
            per_seed.append({k: float(np.mean([t[k] for t in terms])) for k in terms[0]})
        out["rows"][name] = {k: float(np.mean([s[k] for s in per_seed])) for k in per_seed[0]}
    base = out["rows"]["random"]["mean_cos"]
    for row in out["rows"].values():
        row["excess_cos"] = row["mean_cos"] - base
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(C.REPO.parent / "shared" / "data"))
    ap.add_argument("--json", default=str(C.REPO / "benchmarks" / "out" / "minilm_diagnosis.json"))
    args = ap.parse_args()
    device = C.pick_device()
    n_train = S.budget(False)["n_train"]
    sents, labels, _ = S.load_stsb(Path(args.data), n_train, None)
    model = S.load_model(device)
    model.max_seq_length = 32
    emb = model.encode(sents, convert_to_tensor=True, batch_size=128).cpu()
    res = diagnose(emb, labels)
    print(f"MiniLM start, N = {res['n']}, B = {res['batch_size']}, close = cosine > {res['threshold']:.3f}, "
          f"tau = {TEMPERATURE}, one epoch x 5 sampler seeds")
    print("| sampler | excess cos | close pairs / batch | paraphrase pairs / batch | top-pair share | "
          "close-pair mass |")
    print("|---|---|---|---|---|---|")
    for name, r in res["rows"].items():
        print(f"| {name} | {r['excess_cos']:+.3f} | {r['close_pairs']:.2f} | {r['paraphrase_pairs']:.2f} | "
              f"{r['top_share']:.3f} | {r['close_mass']:.3f} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
