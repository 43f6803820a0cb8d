"""Peak memory (RSS) that a sampler's graph refresh adds: construction, a full refresh, a 10% incremental refresh.

    python benchmarks/bench_refresh_memory.py [--n 2000000] [--d 64] [--k 20] [--candidates 1000]
    python benchmarks/bench_refresh_memory.py --n 10000000 --bank-dtype float16 --no-full-refresh --plan-epoch

One process, one sampler (``RWRBatchSampler``, walk mode): a thread samples the resident set
size every 5 ms; each phase reports its peak RSS above the RSS when the phase started, in MiB, and
its time. The bound to compare with: the new graph (``N k`` edges, 12 bytes each: int64 column,
float32 weight, sorted in place in the neighbour table it is built from) and its host copy for
planning (``N k`` int32 columns; walk and PPR do not copy the weights), 16 bytes per edge, plus the
scoring buffers of :func:`graphbatch.build.neighbor_table` (bounded, independent of N). A 10%
incremental refresh copies the previous graph (12 bytes per edge) and splices the new rows in.
Prints a table and writes JSON (``benchmarks/out/bench_refresh_memory.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Peak:
    """Peak RSS (MiB) above the RSS at entry, sampled every 5 ms."""

    def __enter__(self):
        self.base = rss_mib()
        self.peak = self.base
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        self.t0 = time.perf_counter()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, rss_mib())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, rss_mib())
        self.added = self.peak - self.base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--bank-dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                    help="dtype of the embeddings and of the sampler's bank")
    ap.add_argument("--no-full-refresh", action="store_true", help="skip the full refresh phase")
    ap.add_argument("--plan-epoch", action="store_true",
                    help="also time planning an epoch (the first batch of a new epoch) and handing out all of it")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "out" / "bench_refresh_memory.json"))
    args = ap.parse_args()
    import resource

    import graphbatch as gb

    torch.manual_seed(0)
    n, d, k = args.n, args.d, args.k
    dtype = getattr(torch, args.bank_dtype)
    emb = torch.empty(n, d, dtype=dtype)
    for i in range(0, n, 1 << 20):  # drawn in chunks: no float32 copy of all rows for a half-precision run
        emb[i:i + (1 << 20)] = torch.randn(min(1 << 20, n - i), d)
    start_rss = rss_mib()
    rows = {}
    with Peak() as p:
        s = gb.RWRBatchSampler(n, 256, k=k, candidates=args.candidates, embeddings=emb, refresh_every=10**9,
                               bank_dtype=dtype)
    rows["construction"] = p
    if not args.no_full_refresh:
        s.update(torch.arange(n), emb + 0.1)
        with Peak() as p:
            assert s.refresh()
        rows["full refresh"] = p
    few = torch.from_numpy(np.random.default_rng(0).permutation(n)[: n // 10])
    s.update(few, emb[few] - 0.1)
    with Peak() as p:
        assert s.refresh() and s.stats["incremental_refreshes"] == 1
    rows["10% incremental refresh"] = p
    if args.plan_epoch:
        s.set_epoch(0)
        it = iter(s)
        with Peak() as p:
            next(it)  # the epoch is planned at its first batch
        rows["plan an epoch"] = p
        with Peak() as p:
            count = 1 + sum(1 for _ in it)
        rows[f"hand out its {count} batches"] = p
    bound = 16 * n * k / 2**20
    g = s.graph
    graph_mib = (g.crow.numel() * 8 + g.col.numel() * g.col.element_size() + g.values.numel() * 4) / 2**20
    bank_mib = s.bank.numel() * s.bank.element_size() / 2**20
    plan_mib = n * 8 / 2**20
    peak_total = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"N={n:,} d={d} K={k} M={args.candidates} bank {args.bank_dtype}; bound ~{bound:.0f} MiB (16 bytes "
          f"per edge) {args.label}")
    print(f"{'phase':26s} {'added peak RSS MiB':>19s} {'seconds':>8s}")
    for name, p in rows.items():
        print(f"{name:26s} {p.added:19.0f} {p.seconds:8.1f}")
    print(f"peak RSS of the process {peak_total:.0f} MiB; the input embeddings and torch: {start_rss:.0f} MiB at "
          f"the start; graph {graph_mib:.0f} + bank {bank_mib:.0f} + plan {plan_mib:.0f} = "
          f"{graph_mib + bank_mib + plan_mib:.0f} MiB; peak minus the start = "
          f"{(peak_total - start_rss) / (graph_mib + bank_mib + plan_mib):.2f}x that")
    out = {"n": n, "d": d, "k": k, "candidates": args.candidates, "label": args.label, "bound_mib": bound,
           "bank_dtype": args.bank_dtype, "peak_rss_mib": peak_total, "start_rss_mib": start_rss,
           "graph_mib": graph_mib, "bank_mib": bank_mib, "plan_mib": plan_mib,
           "phases": {name: {"added_peak_mib": p.added, "seconds": p.seconds} for name, p in rows.items()}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
