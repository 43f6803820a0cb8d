"""Benchmark the RWR solvers: time per power iteration and achieved memory bandwidth.

For every graph size N (out-degree K), seed count S, backend and variant it reports:

* ``dense`` (power iteration, :func:`graphbatch.rwr`): seconds per iteration (one CSR
  ``P^T @ X`` SpMM on the ``(N, S)`` block plus the restart/residual updates), and
  bytes/s against a traffic model (see ``bytes_model``);
* ``truncated`` (:func:`graphbatch.rwr_truncated`, sparse push): seconds for all S
  seeds, rounds, output nnz and the exact L1 error.

The machine's stream bandwidth is measured with a large tensor copy (``--stream-mb``).

Traffic model for one dense iteration, ``b`` = bytes per value (4 or 8), ``nnz = N K``:

* CSR of ``P^T``: ``nnz (8 + b) + 8 (N + 1)`` bytes (int64 column indices, values, row pointers);
* SpMM reads a ``b S``-byte row of ``X`` per nonzero: ``nnz S b`` bytes if every gather
  misses cache (``gather`` model) or ``N S b`` if each row of ``X`` is read once (``ideal``);
* SpMM writes ``Y``: ``N S b``;
* the update (``1 - p`` is folded into the matrix; column sums r; ``X -= Y`` 2r+w; ``|X|`` in
  place r+w; column sums r) streams the block 7 more times: ``7 N S b``.

``ideal`` = CSR + 9 N S b is the traffic of this code with perfect caching of ``X`` rows; at
the stream bandwidth it gives the best time an iteration of this code could take (a fused
update kernel could bring the block passes from 9 down to ~3). ``gather`` replaces the one
read of ``X`` by per-nonzero row reads, the traffic of a cache-less SpMM.

At N = 1M with S = 512 a float64 block is 4 GB (the loop holds ~3 blocks), so
``--dtype auto`` uses float32 for N >= 500k and float64 below; ``--max-block-gb`` skips
configurations whose block would exceed the cap.

Example:
    python benchmarks/bench_rwr.py --sizes 100000 --seeds 64 --backends torch,scipy --iters 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from graphbatch import ProximityGraph, backend, rwr_monte_carlo, rwr_truncated
from graphbatch.solvers.power import make_engine, power_step


def local_knn_graph(n: int, k: int, window: int, seed: int, device: str) -> ProximityGraph:
    """A clustered k-NN-like graph: node i links to k nodes drawn within +-window of i (ring), random weights.

    Like a real proximity graph it has locality (neighbours of neighbours are neighbours),
    unlike a uniformly random graph (an expander), which spreads RWR mass thinly.
    """
    g = torch.Generator().manual_seed(seed)
    off = torch.randint(-window, window + 1, (n, k), generator=g)
    idx = (torch.arange(n).unsqueeze(1) + off) % n
    w = torch.rand(n, k, generator=g) + 0.1
    return ProximityGraph.from_neighbors(idx, w).to(device)


def random_graph(n: int, k: int, seed: int, device: str) -> ProximityGraph:
    g = torch.Generator().manual_seed(seed)
    return ProximityGraph.from_neighbors(torch.randint(0, n, (n, k), generator=g),
                                         torch.rand(n, k, generator=g) + 0.1).to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def stream_bandwidth(mb: int, device: str, reps: int = 5) -> float:
    """Bytes/s of a large tensor copy (read + write counted)."""
    a = torch.ones(mb * (1 << 20) // 4, dtype=torch.float32, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        b.copy_(a)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * a.numel() * 4 / best


def bytes_model(n: int, nnz: int, s: int, item: int) -> dict:
    csr = nnz * (8 + item) + 8 * (n + 1)
    block = n * s * item
    return {"ideal": csr + 9 * block, "gather": csr + nnz * s * item + 8 * block}


def bench_dense(graph: ProximityGraph, seeds: torch.Tensor, name: str, dtype: torch.dtype, iters: int,
                p: float, device: str) -> dict:
    trans = graph.to(dtype=dtype).transition_matrix()
    t0 = time.perf_counter()
    eng = make_engine(name, trans, seeds, 1 - p)
    x = eng.start()
    x, _ = power_step(eng, x)  # warm-up iteration (allocations, library init)
    sync(device)
    setup = time.perf_counter() - t0
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        x, _ = power_step(eng, x)
        sync(device)
        times.append(time.perf_counter() - t)
    spmm = []
    for _ in range(iters):  # the sparse product alone, without the restart/residual updates
        t = time.perf_counter()
        y = eng.spmm(x)
        sync(device)
        spmm.append(time.perf_counter() - t)
        del y
    del x, eng
    return {"setup_s": setup, "iter_s": min(times), "iter_s_median": sorted(times)[len(times) // 2],
            "spmm_s": min(spmm)}


def bench_truncated(graph: ProximityGraph, seeds: torch.Tensor, p: float, eps: float, device: str,
                    iters: int, engine: str = "torch") -> dict:
    """Cold call (includes the O(nnz) set-up, cached per graph), then the best of ``iters`` warm calls."""
    graph = ProximityGraph(graph.crow, graph.col, graph.values, graph.num_nodes)  # a copy: no cached set-up
    t = time.perf_counter()
    rwr_truncated(graph, seeds, p, eps=eps, dtype=torch.float32, engine=engine)
    sync(device)
    cold = time.perf_counter() - t
    warm = []
    for _ in range(iters):
        t = time.perf_counter()
        out, info = rwr_truncated(graph, seeds, p, eps=eps, return_info=True, dtype=torch.float32, engine=engine)
        sync(device)
        warm.append(time.perf_counter() - t)
    el = min(warm)
    return {"cold_s": cold, "total_s": el, "warm_s_all": warm, "per_seed_ms": 1e3 * el / seeds.numel(),
            "rounds": info.iterations, "nnz_per_seed": out.values().numel() / seeds.numel(),
            "l1_error_mean": float(info.error.mean()), "l1_error_max": info.residual}


def bench_monte_carlo(graph: ProximityGraph, seeds: torch.Tensor, p: float, walks: int, device: str) -> dict:
    """One warm-up call on a few seeds, then one timed call; walker-steps/s = S * walks / p / time."""
    gen = torch.Generator().manual_seed(0)
    rwr_monte_carlo(graph, seeds[:2], p, num_walks=walks, generator=gen)
    sync(device)
    t = time.perf_counter()
    _, info = rwr_monte_carlo(graph, seeds, p, num_walks=walks, generator=gen, return_info=True)
    sync(device)
    el = time.perf_counter() - t
    steps = seeds.numel() * walks / p  # expected visits
    return {"total_s": el, "walks": walks, "steps_per_s": steps / el, "longest_walk": info.iterations}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated N")
    ap.add_argument("--seeds", default="64,512", help="comma-separated S")
    ap.add_argument("--k", type=int, default=20, help="out-degree K")
    ap.add_argument("--backends", default=None,
                    help="comma-separated from torch,scipy,cupy (default: torch,scipy (+cupy if present))")
    ap.add_argument("--variants", default="dense,truncated", help="from dense,truncated,montecarlo")
    ap.add_argument("--walks", type=int, default=1000, help="walks per seed for the montecarlo variant")
    ap.add_argument("--iters", type=int, default=3,
                    help="timed power iterations / warm rwr_truncated calls (best is reported)")
    ap.add_argument("--p", type=float, default=0.2, help="restart probability")
    ap.add_argument("--eps", type=float, default=1e-4, help="rwr_truncated threshold")
    ap.add_argument("--engines", default=None,
                    help="rwr_truncated engines, from torch,numba (default: numba on CPU when installed, and torch)")
    ap.add_argument("--graph", choices=["local", "random"], default="local")
    ap.add_argument("--window", type=int, default=100, help="locality window of the 'local' graph")
    ap.add_argument("--dtype", choices=["auto", "float32", "float64"], default="auto")
    ap.add_argument("--max-block-gb", type=float, default=2.5, help="skip dense runs with a bigger (N, S) block")
    ap.add_argument("--device", default="cuda" if backend.WITH_CUDA else "cpu")
    ap.add_argument("--stream-mb", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--json", default=os.path.join("benchmarks", "out", "bench_rwr.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    sizes = [int(v) for v in args.sizes.split(",")]
    seed_counts = [int(v) for v in args.seeds.split(",")]
    if args.backends is None:
        names = ["torch", "scipy"] + (["cupy"] if backend.WITH_CUPY and backend.WITH_CUDA else [])
    else:
        names = args.backends.split(",")
    variants = args.variants.split(",")
    if args.engines is None:
        engines = ["torch"] + (["numba"] if args.device == "cpu" and backend.WITH_NUMBA else [])
    else:
        engines = args.engines.split(",")
    bw = stream_bandwidth(args.stream_mb, args.device)
    print(f"device={args.device} threads={torch.get_num_threads()} stream copy bandwidth: {bw / 1e9:.2f} GB/s")

    rows = []
    for n in sizes:
        t = time.perf_counter()
        graph = (local_knn_graph(n, args.k, args.window, 0, args.device) if args.graph == "local"
                 else random_graph(n, args.k, 0, args.device))
        print(f"\nN={n} K={args.k} nnz={graph.nnz} graph={args.graph} (built in {time.perf_counter() - t:.1f}s)")
        dtype = (torch.float32 if n >= 500_000 else torch.float64) if args.dtype == "auto" \
            else getattr(torch, args.dtype)
        item = torch.empty(0, dtype=dtype).element_size()
        for s in seed_counts:
            seeds = torch.randperm(n, generator=torch.Generator().manual_seed(1))[:s].to(args.device)
            if "dense" in variants:
                for name in names:
                    block_gb = n * s * item / 1e9
                    if block_gb > args.max_block_gb:
                        print(f"  dense {name:6s} S={s:4d}: skipped (block {block_gb:.1f} GB > --max-block-gb)")
                        continue
                    r = bench_dense(graph, seeds, name, dtype, args.iters, args.p, args.device)
                    m = bytes_model(n, graph.nnz, s, item)
                    row = {"N": n, "K": args.k, "S": s, "variant": "dense", "backend": name,
                           "dtype": str(dtype).replace("torch.", ""), **r,
                           "bytes_ideal": m["ideal"], "bytes_gather": m["gather"],
                           "GBps_ideal": m["ideal"] / r["iter_s"] / 1e9,
                           "GBps_gather": m["gather"] / r["iter_s"] / 1e9,
                           "frac_of_stream_ideal": m["ideal"] / r["iter_s"] / bw,
                           "bound_iter_s": m["ideal"] / bw}
                    rows.append(row)
                    print(f"  dense {name:6s} S={s:4d} {row['dtype']}: {r['iter_s'] * 1e3:9.1f} ms/iter "
                          f"(SpMM alone {r['spmm_s'] * 1e3:8.1f} ms) "
                          f"(bound {row['bound_iter_s'] * 1e3:7.1f} ms)  ideal {row['GBps_ideal']:6.2f} GB/s "
                          f"= {100 * row['frac_of_stream_ideal']:5.1f}% of stream; "
                          f"gather-model {row['GBps_gather']:6.2f} GB/s; setup {r['setup_s']:.2f}s")
            for engine in (engines if "truncated" in variants else []):
                r = bench_truncated(graph, seeds, args.p, args.eps, args.device, args.iters, engine)
                row = {"N": n, "K": args.k, "S": s, "variant": "truncated", "backend": f"{engine}-push",
                       "eps": args.eps, **r}
                rows.append(row)
                print(f"  trunc  {engine:5s} S={s:4d} eps={args.eps:g}: cold {r['cold_s']:.2f} s, "
                      f"warm {r['total_s']:.3f} s, "
                      f"{r['per_seed_ms']:.3f} ms/seed, {r['rounds']} rounds, {r['nnz_per_seed']:.0f} nnz/seed, "
                      f"L1 err mean {r['l1_error_mean']:.3g} max {r['l1_error_max']:.3g}")
            if "montecarlo" in variants:
                r = bench_monte_carlo(graph, seeds, args.p, args.walks, args.device)
                rows.append({"N": n, "K": args.k, "S": s, "variant": "montecarlo", "backend": "torch-mc", **r})
                print(f"  mc     torch  S={s:4d} walks={args.walks}: {r['total_s']:.2f} s, "
                      f"{r['steps_per_s'] / 1e6:.2f} M walker-steps/s, longest walk {r['longest_walk']} steps")
        del graph

    out = {"machine": platform.processor() or platform.machine(), "device": args.device,
           "threads": torch.get_num_threads(), "stream_GBps": bw / 1e9, "args": vars(args), "rows": rows,
           "date": time.strftime("%Y-%m-%d %H:%M")}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
