"""Peak memory (RSS) that a sampler's graph refresh adds: construction, a full refresh, a 10% incremental refresh.

    python benchmarks/bench_refresh_memory.py [--n 2000000] [--d 64] [--k 20] [--candidates 1000]

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
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "out" / "bench_refresh_memory.json"))
    args = ap.parse_args()
    import graphbatch as gb

    torch.manual_seed(0)
    n, d, k = args.n, args.d, args.k
    emb = torch.randn(n, d)
    rows = {}
    with Peak() as p:
        s = gb.RWRBatchSampler(n, 256, k=k, candidates=args.candidates, embeddings=emb, refresh_every=10**9)
    rows["construction"] = p
    s.update(torch.arange(n), emb + 0.1)
    with Peak() as p:
        assert s.refresh()
    rows["full refresh"] = p
    few = torch.from_numpy(np.random.default_rng(0).permutation(n)[: n // 10])
    s.update(few, emb[few] - 0.1)
    with Peak() as p:
        assert s.refresh() and s.stats["incremental_refreshes"] == 1
    rows["10% incremental refresh"] = p
    bound = 16 * n * k / 2**20
    print(f"N={n:,} d={d} K={k} M={args.candidates}; bound ~{bound:.0f} MiB (16 bytes per edge) "
          f"{args.label}")
    print(f"{'phase':26s} {'added peak RSS MiB':>19s} {'seconds':>8s}")
    for name, p in rows.items():
        print(f"{name:26s} {p.added:19.0f} {p.seconds:8.1f}")
    out = {"n": n, "d": d, "k": k, "candidates": args.candidates, "label": args.label, "bound_mib": bound,
           "phases": {name: {"added_peak_mib": p.added, "seconds": p.seconds} for name, p in rows.items()}}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
