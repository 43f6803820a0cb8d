"""Benchmark: time to produce one epoch of batches with RWRBatchSampler, against a plain-Python reference.

For each N, K (graph prebuilt once per (N, K) with :func:`graphbatch.build_proximity_graph`
from random clustered Gaussian embeddings, ``candidates=M``; graph building is *excluded*
from every timing below) and each batch size B and mode, it times ``list(sampler)`` -- one
full epoch of batches, planning included, as a DataLoader would pull them -- and reports
wall time and process CPU time (min over ``--repeats`` epochs of one sampler, after
``--warmup-epochs`` untimed ones), the wall time of its very first epoch (``first_s``), walk steps
per node and the fallback jumps. The speed-up is the reference's CPU time over our min CPU time,
and (last column) the reference's wall time over our first epoch's. On the 2-core VM these
figures were taken on, the first epochs on a freshly allocated graph copy run up to ~2x slower
than later ones (its memory gets faster over the first passes that read it; see
benchmarks/RESULTS.md), which is why both are shown.

Reference (``--reference-max`` bounds N): the original BatchSampler algorithm as described
in the paper's code, re-implemented here in plain Python (not copied): per batch the set of
unused nodes is recomputed from scratch (O(N) per batch, so O(N^2 / B) and worse per
epoch), a seed is drawn from it, the walk is a Python loop drawing one neighbour at a time
with restart, the batch collects distinct nodes whether or not they were used before
(duplicates across batches allowed), and the epoch ends once every node is covered. At
N = 1M it is infeasible (hours), so it is skipped there.

Bound (mode="walk"): each walk step is one 64-bit xorshift draw and one dependent random
load (the column entry, int32; rows of a top-k graph all have K entries, so the row start is
computed, not loaded), so the graph touched is ``4 N K`` bytes; steps per node are printed
(``steps/node``). A single walker is latency-bound (~120 ns/step measured at N = 50k, K = 100:
one miss to the last-level cache or memory per step); ``walkers`` interleaved walks overlap the
misses (8 walkers: 17-30 ns/step on this VM, depending on how busy its host is).

Example:
    python benchmarks/bench_sampler.py --sizes 10000 50000 --batch 256 --k 100 --modes walk
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import time

import numpy as np
import torch

from graphbatch import RWRBatchSampler, backend
from graphbatch.build import build_proximity_graph
from graphbatch.kernels import load as load_kernels


def clustered_embeddings(n: int, d: int, cluster_size: int, seed: int) -> torch.Tensor:
    """Gaussian clusters of about ``cluster_size`` points in ``d`` dimensions."""
    g = torch.Generator().manual_seed(seed)
    c = max(1, n // cluster_size)
    centers = torch.randn(c, d, generator=g) * 2.0
    lab = torch.randint(0, c, (n,), generator=g)
    return centers[lab] + torch.randn(n, d, generator=g)


def reference_epoch(adj: list, n: int, b: int, p: float, seed: int) -> list:
    """Plain-Python BatchSampler epoch (see the module docstring): quadratic unused recomputation."""
    rnd = random.Random(seed)
    covered: set = set()
    batches = []
    while len(covered) < n:
        unused = sorted(set(range(n)) - covered)  # recomputed from scratch for every batch
        root = rnd.choice(unused)
        batch = {root}
        cur = root
        steps = 0
        while len(batch) < b:
            nbrs = adj[cur]
            if rnd.random() < p or not nbrs:
                cur = root
            else:
                cur = nbrs[rnd.randrange(len(nbrs))]
            batch.add(cur)
            steps += 1
            if steps > 100 * b:  # the walk's component is smaller than B: top up at random
                batch.add(rnd.randrange(n))
        covered.update(batch)
        batches.append(list(batch))
    return batches


def timed(fn, repeats: int, warmup: int = 0):
    """Call ``fn`` ``warmup + repeats`` times.

    Returns (min wall s, min CPU s, median wall s, wall s of the very first call, last result);
    min and median are over the last ``repeats`` calls, the first call is reported on its own.
    """
    walls, cpus, first_w, out = [], [], None, None
    for i in range(warmup + repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        first_w = w if first_w is None else first_w
        if i >= warmup:
            walls.append(w)
            cpus.append(c)
    return min(walls), min(cpus), float(np.median(walls)), first_w, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 1_000_000])
    ap.add_argument("--batch", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--k", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--modes", nargs="+", default=["walk", "ppr"], choices=["walk", "ppr"])
    ap.add_argument("--candidates", type=int, default=1000, help="M for the graph build")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--cluster-size", type=int, default=1000)
    ap.add_argument("--restart-prob", type=float, default=0.2)
    ap.add_argument("--repeats", type=int, default=5, help="epochs timed per walk configuration (min taken)")
    ap.add_argument("--warmup-epochs", type=int, default=3,
                    help="untimed epochs of each walk sampler before the timed ones (its first epoch is "
                         "still reported, as first_s)")
    ap.add_argument("--ppr-repeats", type=int, default=1, help="epochs timed per ppr configuration")
    ap.add_argument("--reference-max", type=int, default=50_000, help="largest N for the Python reference")
    ap.add_argument("--ppr-max", type=int, default=1_000_000, help="largest N for mode='ppr'")
    ap.add_argument("--ppr-engine", default="auto", choices=["auto", "push", "rwr_truncated"])
    ap.add_argument("--max-edges", type=float, default=3e7, help="skip (N, K) with N*K above this")
    ap.add_argument("--device", default="cuda" if backend.WITH_CUDA else "cpu",
                    help="where the graph lives (planning always runs on CPU arrays)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "out", "bench_sampler.json"))
    args = ap.parse_args()

    load_kernels()  # load numba; then compile (or load from cache) every kernel variant outside the timings
    tiny = build_proximity_graph(clustered_embeddings(300, 8, 50, 0), 5, candidates=50, seed=0)
    for mode in args.modes:
        list(RWRBatchSampler(300, 16, k=5, candidates=50, graph=tiny.to(args.device), mode=mode,
                             ppr_engine=args.ppr_engine))
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "")
    except OSError:
        cpu = platform.processor()
    rows = []
    print(f"# machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, device={args.device}")
    hdr = (f"{'N':>8} {'K':>4} {'B':>4} {'mode':>5} {'batches':>7} {'wall_s':>8} {'cpu_s':>8} {'med_s':>8} "
           f"{'first_s':>8} {'steps/node':>10} {'jumps':>7} | {'ref_batches':>11} {'ref_cpu_s':>9} "
           f"{'speedup(cpu)':>12} {'(1st epoch)':>11}")
    print(hdr)
    for n in args.sizes:
        for k in args.k:
            if n * k > args.max_edges:
                print(f"{n:>8} {k:>4}  skipped: N*K = {n * k:.0e} edges > --max-edges {args.max_edges:.0e}")
                continue
            emb = clustered_embeddings(n, args.dim, args.cluster_size, args.seed).to(args.device)
            t0 = time.perf_counter()
            graph = build_proximity_graph(emb, k, candidates=min(args.candidates, n - 1), seed=args.seed)
            build_s = time.perf_counter() - t0
            adj = None
            for b in args.batch:
                ref = None
                if n <= args.reference_max:
                    if adj is None:
                        crow, col = graph.crow.cpu().numpy(), graph.col.cpu().numpy()
                        adj = [col[crow[i]:crow[i + 1]].tolist() for i in range(n)]
                    rw, rc, _, _, rb = timed(lambda adj=adj, n=n, b=b: reference_epoch(adj, n, b, args.restart_prob,
                                                                                 args.seed), 1)
                    ref = {"wall_s": rw, "cpu_s": rc, "batches": len(rb),
                           "mean_batch": float(np.mean([len(x) for x in rb]))}
                for mode in args.modes:
                    if mode == "ppr" and n > args.ppr_max:
                        continue
                    s = RWRBatchSampler(n, b, k=k, candidates=args.candidates, graph=graph, mode=mode,
                                        restart_prob=args.restart_prob, seed=args.seed, ppr_engine=args.ppr_engine)
                    reps = args.repeats if mode == "walk" else args.ppr_repeats
                    warm = args.warmup_epochs if mode == "walk" else 0
                    w, c, w_med, w_first, batches = timed(lambda s=s: list(s), reps, warm)
                    flat = np.concatenate([np.asarray(x) for x in batches])
                    exact = bool(flat.size == n and np.unique(flat).size == n)
                    steps = s.stats["walk_steps"] / ((reps + warm) * n)
                    jumps = (s.stats["near_jumps"] + s.stats["random_jumps"]) / (reps + warm)
                    engine = s._model.planner.engine_for(s.graph) if mode == "ppr" else "walk"
                    row = {"N": n, "K": k, "B": b, "mode": mode, "engine": engine, "device": args.device,
                           "batches": len(batches),
                           "wall_s": w, "cpu_s": c, "median_wall_s": w_med, "first_epoch_wall_s": w_first,
                           "warmup_epochs": warm, "timed_epochs": reps,
                           "steps_per_node": steps, "jumps_per_epoch": jumps,
                           "exact_epoch": exact, "graph_build_s": build_s, "reference": ref,
                           "speedup_cpu": (ref["cpu_s"] / c) if ref else None,
                           "speedup_wall": (ref["wall_s"] / w) if ref else None,
                           "speedup_first_epoch_wall": (ref["wall_s"] / w_first) if ref else None}
                    rows.append(row)
                    rs = (f"{ref['batches']:>11} {ref['cpu_s']:>9.2f} {ref['cpu_s'] / c:>11.0f}x "
                          f"{ref['wall_s'] / w_first:>10.0f}x" if ref else f"{'(skipped)':>11} {'':>9} {'':>12}")
                    print(f"{n:>8} {k:>4} {b:>4} {mode:>5} {len(batches):>7} {w:>8.4f} {c:>8.4f} {w_med:>8.4f} "
                          f"{w_first:>8.4f} {steps:>10.2f} {jumps:>7.0f} | {rs}", flush=True)
            graph = adj = None  # free before the next (N, K)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "args": vars(args),
                   "rows": rows}, f, indent=1)
    print(f"# wrote {args.json}")


if __name__ == "__main__":
    main()
