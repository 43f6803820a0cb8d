"""Sharded graph build under torch.distributed (gloo, one process per rank): per-rank work and time.

    python benchmarks/bench_sharded.py --n 200000 --dim 64 --k 20 --candidates 1000 --worlds 1 2 --json out.json

For each world size W, W processes build the same graph with ``build_proximity_graph(...,
distributed=True)``; every rank reports the rows it scored, the time of its local share and of the
all-gather, and whether its graph equals the single-process graph (built first, W = 1). Each process
uses ``--threads`` torch threads (default: cores // W, so every W uses the same cores): on a machine
with fewer cores than ranks the ranks share cores and the wall time cannot fall as 1/W, but the rows
per rank and the per-rank CPU time still show the split. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _data(n: int, d: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).normal(size=(n, d)).astype(np.float32))


def _worker(rank: int, world: int, store: str, out: str, args: dict) -> None:
    torch.set_num_threads(args["threads"])
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        from graphbatch.build.api import table_share

        x = _data(args["n"], args["dim"])
        kw = dict(candidates=args["candidates"], seed=0)
        dist.barrier()
        w0, c0 = time.perf_counter(), time.process_time()
        part = table_share(x, args["k"], rank=rank, world=world, **kw)
        w1, c1 = time.perf_counter(), time.process_time()
        dist.barrier()  # the gather time below is the collective's own, not waiting for slower ranks
        w2 = time.perf_counter()
        idx, val = part.gather()
        w3 = time.perf_counter()
        torch.save({"rows": part.rows_scored, "share_s": w1 - w0, "share_cpu_s": c1 - c0, "gather_s": w3 - w2,
                    "idx": idx, "val": val}, os.path.join(out, f"r{rank}.pt"))
    finally:
        dist.destroy_process_group()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--worlds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=None, help="torch threads per rank (default cores // W)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    from graphbatch import neighbor_table

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    x = _data(a.n, a.dim)
    t0 = time.perf_counter()
    ref_i, ref_v = neighbor_table(x, a.k, candidates=a.candidates, seed=0)
    single = time.perf_counter() - t0
    rows = [{"world": 0, "note": f"single process, {cores} threads", "wall_s": single}]
    print(f"# {platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}; "
          f"N={a.n} d={a.dim} K={a.k} M={a.candidates}; single process {single:.2f} s")
    print(f"{'W':>3} {'rank':>4} {'threads':>7} {'rows':>9} {'rows/N':>7} {'share_s':>8} {'cpu_s':>8} "
          f"{'gather_s':>8} {'equal':>5}")
    for world in a.worlds:
        threads = a.threads or max(1, cores // world)
        with tempfile.TemporaryDirectory() as tmp:
            mp.spawn(_worker, args=(world, os.path.join(tmp, "store"), tmp,
                                    {"n": a.n, "dim": a.dim, "k": a.k, "candidates": a.candidates,
                                     "threads": threads}), nprocs=world, join=True)
            for r in range(world):
                res = torch.load(os.path.join(tmp, f"r{r}.pt"), weights_only=False)
                equal = bool(torch.equal(res["idx"], ref_i) and torch.equal(res["val"], ref_v))
                row = {"world": world, "rank": r, "threads": threads, "rows": res["rows"],
                       "rows_share": res["rows"] / a.n, "share_s": res["share_s"], "share_cpu_s": res["share_cpu_s"],
                       "gather_s": res["gather_s"], "equal_single_process": equal}
                rows.append(row)
                print(f"{world:>3} {r:>4} {threads:>7} {res['rows']:>9} {res['rows'] / a.n:>7.3f} "
                      f"{res['share_s']:>8.2f} {res['share_cpu_s']:>8.2f} {res['gather_s']:>8.3f} {str(equal):>5}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"args": vars(a), "cores": cores, "torch": torch.__version__, "rows": rows}, fh, indent=1)
        print(f"# wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
