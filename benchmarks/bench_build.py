"""Benchmark of graphbatch.build: proximity-graph construction time, throughput and recall.

Two parts:

* timing (default): for each size N and method, seconds to build the neighbour
  table (d=128, K=20, M=1000 by default), GFLOP/s of the similarity products
  (``2 N (M+1) d`` flops for "candidates", ``2 N^2 d`` for "exact"), edges/s,
  and recall against exact kNN on a sample of rows. Exact kNN at large N is
  timed on ``--exact-rows`` sampled rows and extrapolated (marked "sampled").
  The peak GEMM rate of this machine is measured first with a plain ``torch.mm``.
  faiss rows (``faiss-flat`` exact, ``faiss-hnsw``, ``faiss-ivf``; needs faiss-cpu) run in the
  same process, so they compare with graphbatch's builders as ratios within one run.
* ``--hubness``: in-degree distribution (max, Gini, top-1% share, zero in-degree)
  of the candidate graph for several ``block_size`` values, against per-anchor
  independent pools (the literal paper construction) and exact kNN, on Gaussian
  and on clustered, class-sorted data.

Examples::

    python benchmarks/bench_build.py --sizes 10000 100000 --methods candidates exact
    python benchmarks/bench_build.py --sizes 1000000 --methods candidates --repeat 2
    python benchmarks/bench_build.py --sizes 100000 --methods exact faiss-flat faiss-hnsw nndescent --data clustered
    python benchmarks/bench_build.py --hubness --hub-n 20000
"""
# ruff: noqa: B023  (the lambdas below are called at once, inside their loop iteration)
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np
import torch

from graphbatch.build import BLOCK_DIVISOR, neighbor_table


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CPU_SECONDS: list = []  # process CPU time of the best run of the last best_time() call


def best_time(fn, repeat: int, device: torch.device):
    """Best wall time of ``repeat`` runs (and, in CPU_SECONDS, that run's process CPU time).

    On a machine shared with other jobs wall time is inflated by time slicing;
    with ``--threads 1`` the CPU time is the steadier figure.
    """
    best, out = float("inf"), None
    CPU_SECONDS[:] = [float("inf")]
    for _ in range(repeat):
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        sync(device)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if wall < best:
            best = wall
        CPU_SECONDS[0] = min(CPU_SECONDS[0], cpu)
    return best, out


def peak_gemm(device: torch.device, m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """Best GFLOP/s of a plain (m x k) @ (k x n) float32 torch.mm over short timed bursts."""
    a = torch.randn(m, k, device=device)
    b = torch.randn(n, k, device=device)
    out = torch.empty(m, n, device=device)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sync(device)
        t = time.perf_counter()
        for _ in range(5):
            torch.mm(a, b.t(), out=out)
        sync(device)
        best = max(best, 5 * 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return best


def recall(idx: torch.Tensor, ref: torch.Tensor) -> float:
    idx, ref = idx.cpu().numpy(), ref.cpu().numpy()
    hits = sum(len(set(a) & set(b)) for a, b in zip(idx.tolist(), ref.tolist()))
    return hits / ref.size


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        name = next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line), "?")
    except OSError:
        name = platform.processor() or "?"
    return f"{name}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


# ------------------------------------------------------------------------- timing
def _faiss_spec(method: str, n: int) -> str:
    """faiss-flat (exact), faiss-hnsw (HNSW32), faiss-ivf (IVF with 4 sqrt(N) lists, nprobe 16)."""
    kind = method.split("-", 1)[1]
    if kind == "flat":
        return "Flat"
    if kind == "hnsw":
        return "HNSW32"
    if kind == "ivf":
        return f"IVF{max(16, int(4 * n ** 0.5))},Flat"
    raise SystemExit(f"unknown faiss method {method} (faiss-flat, faiss-hnsw, faiss-ivf)")


def make_data(n: int, d: int, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Gaussian rows, or ``clustered``: 100 Gaussian clusters (unit spread around centres of spread 3)."""
    if kind == "gaussian":
        return torch.randn(n, d, generator=gen)
    centres = torch.randn(100, d, generator=gen) * 3
    return centres[torch.randint(0, 100, (n,), generator=gen)] + torch.randn(n, d, generator=gen)


def run_timing(args) -> dict:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() and not args.cpu_only
                                       else [])
    rows_out = []
    peaks = {}
    for dev in devices:
        bs = args.block_size or max(1, (args.candidates + 1) // BLOCK_DIVISOR)
        peaks[str(dev)] = {
            "block_shape": peak_gemm(dev, bs, args.dim, args.candidates + 1),
            "large": peak_gemm(dev, 4096, args.dim, 4096),
        }
        print(f"[{dev}] peak torch.mm GFLOP/s: ({bs}x{args.dim})@({args.dim}x{args.candidates + 1}) "
              f"{peaks[str(dev)]['block_shape']:.0f}, (4096x{args.dim})@({args.dim}x4096) "
              f"{peaks[str(dev)]['large']:.0f}", flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    for n in args.sizes:
        x_cpu = make_data(n, args.dim, args.data, gen)
        sample = torch.randperm(n, generator=gen)[:min(n, args.recall_rows)]
        for dev in devices:
            x = x_cpu.to(dev)
            ref_idx = None
            exact_row_time = None
            # exact kNN on the sample rows: the recall reference (and the "exact" timing at large N)
            t_ref, (ref_idx, _) = best_time(
                lambda: neighbor_table(x, args.k, method="exact", rows=sample.to(dev)), 1, dev)
            exact_row_time = t_ref / sample.numel()
            exact_cpu_row = CPU_SECONDS[0] / sample.numel()
            for method in args.methods:
                rec = {"n": n, "d": args.dim, "k": args.k, "device": str(dev), "method": method}
                if method == "candidates":
                    rec["candidates"] = args.candidates
                    rec["block_size"] = args.block_size
                    secs, (idx, _) = best_time(
                        lambda: neighbor_table(x, args.k, candidates=args.candidates, seed=args.seed,
                                               block_size=args.block_size), args.repeat, dev)
                    flops = 2.0 * n * (args.candidates + 1) * args.dim
                    rec["recall"] = recall(idx[sample], ref_idx)
                elif method == "exact":
                    flops = 2.0 * n * n * args.dim
                    if n <= args.exact_max_n:
                        secs, (idx, _) = best_time(lambda: neighbor_table(x, args.k, method="exact"),
                                                   args.repeat, dev)
                        rec["recall"] = recall(idx[sample], ref_idx)
                    else:
                        secs = exact_row_time * n
                        CPU_SECONDS[0] = exact_cpu_row * n
                        rec["sampled"] = f"{sample.numel()} rows timed, extrapolated to N"
                        rec["recall"] = 1.0
                elif method.startswith("faiss-"):
                    spec = _faiss_spec(method, n)
                    rec["faiss_index"] = spec
                    neighbor_table(x[:500], args.k, method="faiss", faiss_index="Flat")  # load faiss once
                    secs, (idx, _) = best_time(lambda: neighbor_table(x, args.k, method="faiss", faiss_index=spec),
                                               1 if spec != "Flat" else args.repeat, dev)
                    flops = 2.0 * n * n * args.dim if spec == "Flat" else None
                    rec["recall"] = recall(idx[sample], ref_idx)
                elif method == "nndescent":
                    if dev.type != "cpu":
                        continue  # pynndescent runs on CPU; timed once
                    if n > args.nnd_max_n:
                        print(f"  skip nndescent at N={n} (> --nnd-max-n {args.nnd_max_n})")
                        continue
                    # warm the numba JIT so the timing measures the search, not compilation
                    neighbor_table(x[:500], args.k, method="nndescent", seed=0)
                    secs, (idx, _) = best_time(lambda: neighbor_table(x, args.k, method="nndescent",
                                                                      seed=args.seed), 1, dev)
                    flops = None
                    rec["recall"] = recall(idx[sample], ref_idx)
                else:
                    raise SystemExit(f"unknown method {method}")
                rec["seconds"] = secs
                rec["cpu_seconds"] = CPU_SECONDS[0]
                rec["gflops"] = None if flops is None else flops / secs / 1e9
                rec["edges_per_s"] = n * args.k / secs
                rows_out.append(rec)
                g = "-" if rec["gflops"] is None else f"{rec['gflops']:.1f}"
                print(f"  N={n:>8} {str(dev):>5} {method:<10} {secs:9.3f} s (cpu {rec['cpu_seconds']:8.3f} s)  "
                      f"{g:>7} GFLOP/s  "
                      f"{rec['edges_per_s']:.3g} edges/s  recall@{args.k}={rec['recall']:.3f}"
                      + (f"  ({rec['sampled']})" if "sampled" in rec else ""), flush=True)
    return {"peak_gflops": peaks, "results": rows_out}


# ------------------------------------------------------------------------ hubness
def in_degree_stats(idx: torch.Tensor, n: int) -> dict:
    deg = np.bincount(idx.reshape(-1).cpu().numpy(), minlength=n).astype(np.float64)
    s = np.sort(deg)
    gini = float((2 * np.arange(1, n + 1) - n - 1).dot(s) / (n * s.sum()))
    top = s[-max(1, n // 100):].sum() / s.sum()
    return {"max": int(s[-1]), "gini": gini, "top1pct_share": float(top), "zero_frac": float((deg == 0).mean()),
            "std": float(deg.std())}


def per_anchor_pools(x: torch.Tensor, k: int, m: int, seed: int, chunk: int = 128) -> torch.Tensor:
    """Literal construction: every anchor draws its own M distinct non-self candidates."""
    n = x.shape[0]
    xn = torch.nn.functional.normalize(x, dim=1)
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(n, k, dtype=torch.int64)
    for s in range(0, n, chunk):
        a = torch.arange(s, min(n, s + chunk))
        # M distinct from the N - 1 others: argsort of random keys, then shift past the anchor
        cand = torch.rand(a.numel(), n - 1, generator=gen).argsort(dim=1)[:, :m]
        cand = cand + (cand >= a.unsqueeze(1)).long()
        sc = torch.bmm(xn[cand], xn[a].unsqueeze(2)).squeeze(2)
        out[a] = torch.gather(cand, 1, sc.topk(k, dim=1).indices)
    return out


def consecutive_shared_pools(x: torch.Tensor, k: int, m: int, b: int, seed: int) -> torch.Tensor:
    """Naive alternative: blocks of *consecutive* anchors share one iid pool (no anchor shuffle)."""
    n = x.shape[0]
    xn = torch.nn.functional.normalize(x, dim=1)
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(n, k, dtype=torch.int64)
    for s in range(0, n, b):
        a = torch.arange(s, min(n, s + b))
        pool = torch.randperm(n, generator=gen)[:m + 1]
        sc = xn[a] @ xn[pool].t()
        sc[pool.unsqueeze(0) == a.unsqueeze(1)] = float("-inf")
        out[a] = pool[sc.topk(k, dim=1).indices]
    return out


def run_hubness(args) -> dict:
    n, d, k, m = args.hub_n, args.dim, args.k, args.candidates
    gen = torch.Generator().manual_seed(args.seed)
    centers = torch.randn(args.hub_clusters, d, generator=gen)
    labels = torch.sort(torch.randint(0, args.hub_clusters, (n,), generator=gen)).values  # class-sorted
    datasets = {
        "gaussian": torch.randn(n, d, generator=gen),
        f"clustered{args.hub_clusters}-sorted": centers[labels] + 0.7 * torch.randn(n, d, generator=gen),
    }
    out = []
    for name, x in datasets.items():
        variants = [("exact kNN", lambda: neighbor_table(x, k, method="exact")[0]),
                    ("per-anchor pools", lambda: per_anchor_pools(x, k, m, args.seed))]
        for b in args.hub_blocks:
            variants.append((f"graphbatch block_size={b}",
                             lambda b=b: neighbor_table(x, k, candidates=m, seed=args.seed, block_size=b)[0]))
        for b in (256, 1024):
            variants.append((f"naive consecutive block={b}",
                             lambda b=b: consecutive_shared_pools(x, k, m, b, args.seed)))
        for label, fn in variants:
            t = time.perf_counter()
            idx = fn()
            st = in_degree_stats(idx, n)
            st.update({"data": name, "variant": label, "seconds": time.perf_counter() - t})
            out.append(st)
            print(f"  {name:<20} {label:<32} max {st['max']:>5}  gini {st['gini']:.3f}  "
                  f"top1% {st['top1pct_share']:.4f}  std {st['std']:6.2f}  zero {st['zero_frac']:.4f}", flush=True)
    return {"hubness": out, "n": n, "d": d, "k": k, "candidates": m}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--data", choices=["gaussian", "clustered"], default="gaussian")
    p.add_argument("--methods", nargs="+", default=["candidates", "exact", "nndescent"],
                   choices=["candidates", "exact", "nndescent", "faiss-flat", "faiss-hnsw", "faiss-ivf"])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--block-size", type=int, default=None,
                   help=f"anchors per candidate pool (default: (M+1)//{BLOCK_DIVISOR}, the library default)")
    p.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    p.add_argument("--recall-rows", type=int, default=1000, help="rows sampled for recall vs exact")
    p.add_argument("--exact-max-n", type=int, default=100_000, help="above this, exact is timed on sampled rows")
    p.add_argument("--nnd-max-n", type=int, default=100_000, help="skip nndescent above this N")
    p.add_argument("--cpu-only", action="store_true")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (1 is steadier on a machine shared with other jobs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hubness", action="store_true", help="run the in-degree study instead of the timing")
    p.add_argument("--hub-n", type=int, default=20_000)
    p.add_argument("--hub-clusters", type=int, default=100)
    p.add_argument("--hub-blocks", type=int, nargs="+", default=[1, 16, 64, 256, 1024, 4096])
    p.add_argument("--json", default=None, help="output path (default benchmarks/out/build[_hubness].json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine())
    res = run_hubness(args) if args.hubness else run_timing(args)
    res.update({"machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "argv": sys.argv[1:], "load_avg_at_end": os.getloadavg()})
    path = args.json or os.path.join(os.path.dirname(__file__), "out",
                                     "build_hubness.json" if args.hubness else "build.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
