"""Sharded graph builds: every rank scores its share, the gathered table equals the single-process one.

The share arithmetic is checked in-process (every rank's share computed here and assembled),
the collectives with real gloo process groups of 2 and 3 ranks.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from graphbatch import build_proximity_graph, neighbor_table
from graphbatch.build.api import BuildArgs, _table, table_share
from graphbatch.build.sharded import shard_rows

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")


def _random_case(seed: int) -> tuple[torch.Tensor, int, dict, torch.Tensor | None]:
    rng = np.random.default_rng(seed)
    n, d, k = int(rng.integers(60, 2500)), int(rng.integers(2, 16)), int(rng.integers(1, 7))
    method = str(rng.choice(["candidates", "exact"]))
    kw = {"method": method, "seed": int(rng.integers(1000)), "metric": str(rng.choice(["cosine", "euclidean", "ip"])),
          "block_size": None if rng.random() < 0.5 else int(rng.integers(1, 90)),
          "chunk_size": int(rng.integers(2000, 200000)),
          "candidates": int(rng.integers(k, n - 1)) if method == "candidates" else None}
    rows = None if rng.random() < 0.5 else torch.from_numpy(rng.choice(n, int(rng.integers(1, n)), replace=True))
    return torch.from_numpy(rng.normal(size=(n, d)).astype(np.float32)), k, kw, rows


@pytest.mark.parametrize("case", range(16))
def test_shares_assemble_to_the_single_process_table(case):
    x, k, kw, rows = _random_case(case)
    ref_i, ref_v = neighbor_table(x, k, rows=rows, **kw)
    uniq = None if rows is None else torch.unique(rows)
    a = BuildArgs(x, k, kw["candidates"], kw["method"], kw["metric"], kw["seed"], False, None, False,
                  kw["block_size"], kw["chunk_size"])
    for world in (2, 3, 5):
        shares = shard_rows(a, uniq, world)
        ids = torch.cat(shares)
        expect = torch.arange(x.shape[0]) if uniq is None else uniq
        assert torch.equal(torch.sort(ids).values, expect)  # a partition of the requested anchors
        table_i = torch.empty((expect.numel(), ref_i.shape[1]), dtype=torch.int64)
        table_v = torch.empty((expect.numel(), ref_i.shape[1]), dtype=ref_v.dtype)
        for share in shares:  # each rank's own computation, as that rank makes it
            i, v = _table(a, share)
            at = torch.searchsorted(expect, share)
            table_i[at], table_v[at] = i, v
        back = torch.arange(x.shape[0]) if rows is None else torch.searchsorted(expect, rows)
        got_i, got_v = table_i[back], table_v[back]
        assert torch.equal(got_i, ref_i) and torch.equal(got_v, ref_v), (case, world)


def test_shares_are_balanced_at_scale():
    x = torch.randn(40000, 4)
    for method, m in (("candidates", 500), ("exact", None)):
        a = BuildArgs(x, 10, m, method, "cosine", 0, False, None, False, None, 1 << 22)
        for world in (2, 3, 4):
            sizes = [s.numel() for s in shard_rows(a, None, world)]
            assert sum(sizes) == 40000
            assert max(sizes) <= 1.1 * 40000 / world, (method, world, sizes)


def test_table_share_keeps_a_local_failure_for_the_caller(monkeypatch):
    import graphbatch.build.api as api

    def boom(a, rows):
        raise MemoryError("simulated out of memory")

    monkeypatch.setattr(api, "_table", boom)
    part = table_share(torch.randn(100, 4), 3, rank=0, world=2, candidates=20, seed=0)
    assert isinstance(part.error, MemoryError)
    with pytest.raises(RuntimeError, match="share of the build failed"):
        part.gather()  # never reached in real use: the ranks agree on the failure first


def _builds(distributed: bool) -> dict[str, tuple]:
    """Four builds (candidates, exact euclidean, half-precision input with skip, a rows table) as tensors."""
    x = torch.from_numpy(np.random.default_rng(7).normal(size=(3001, 12)).astype(np.float32))
    rows = torch.from_numpy(np.random.default_rng(8).choice(3001, 700))
    out = {
        "candidates": build_proximity_graph(x, 9, candidates=400, seed=5, distributed=distributed),
        "exact": build_proximity_graph(x, 6, method="exact", metric="euclidean", chunk_size=50000,
                                       distributed=distributed),
        "half": build_proximity_graph(x.half(), 7, candidates=300, seed=2, skip=2, distributed=distributed),
        "rows": neighbor_table(x, 5, candidates=200, seed=3, rows=rows, distributed=distributed),
    }
    return {name: ((g.crow, g.col, g.values) if hasattr(g, "crow") else g) for name, g in out.items()}


def _build_worker(rank: int, world: int, store: str, outdir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(_builds(distributed=True), os.path.join(outdir, f"build{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_gloo_sharded_builds_equal_the_single_process_build(tmp_path, world):
    mp.spawn(_build_worker, args=(world, str(tmp_path / "store"), str(tmp_path)), nprocs=world, join=True)
    ref = _builds(distributed=False)
    for r in range(world):
        got = torch.load(tmp_path / f"build{r}.pt", weights_only=False)
        for name, want in ref.items():
            assert all(torch.equal(u, v) for u, v in zip(got[name], want)), (r, name)


N_S, B_S = 1200, 32


def _sampler_worker(rank: int, world: int, store: str, outdir: str) -> None:
    """A sampler built with embeddings= and refreshed (full and incremental) under a process group."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        from graphbatch import RWRBatchSampler

        g = np.random.default_rng(0)
        emb = torch.tensor(g.normal(size=(N_S, 8)), dtype=torch.float32)
        s = RWRBatchSampler(N_S, B_S, k=6, candidates=80, seed=4, refresh_every=3, embeddings=emb,
                            incremental_fraction=0.3, bank_dtype=torch.float16)
        built_at_construction = s.stats["rows_scored"]
        checks = []
        real = s._begin_build

        def spy():
            # the single-process build of the same bank and previous graph, made here without collectives
            bank = SimpleNamespace(rows=s._bank.rows.clone(), dirty=s._bank.dirty.copy(), seen=s._bank.seen.copy())
            checks.append(s._model.build(bank, s._state, s.seed)[0].graph)
            return real()

        s._begin_build = spy
        versions = []
        for epoch in range(2):
            s.set_epoch(epoch)
            for bt in s:
                s.update(bt, emb[bt] * (1.5 + epoch) + 0.01 * rank)  # ranks differ: the gathered bank does not
                if s._version != (versions[-1] if versions else 1):
                    versions.append(s._version)
                    want = checks[-1]
                    assert torch.equal(s.graph.col, want.col) and torch.equal(s.graph.values, want.values)
        torch.save({"col": s.graph.col, "values": s.graph.values, "bank": s.bank, "stats": s.stats,
                    "first": built_at_construction, "checks": len(checks), "versions": versions},
                   os.path.join(outdir, f"sampler{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_gloo_sampler_refreshes_are_sharded_and_agree(tmp_path, world):
    mp.spawn(_sampler_worker, args=(world, str(tmp_path / "store"), str(tmp_path)), nprocs=world, join=True)
    res = [torch.load(tmp_path / f"sampler{r}.pt", weights_only=False) for r in range(world)]
    for r in range(1, world):
        assert torch.equal(res[0]["col"], res[r]["col"]) and torch.equal(res[0]["values"], res[r]["values"])
        assert torch.equal(res[0]["bank"], res[r]["bank"])
    assert res[0]["bank"].dtype == torch.float16
    st = res[0]["stats"]
    assert st["full_refreshes"] >= 1 and st["incremental_refreshes"] >= 1 and res[0]["checks"] >= 2
    # the work is split: the construction build scored about N / W rows per rank, all N together
    firsts = [r["first"] for r in res]
    assert sum(firsts) == N_S and max(firsts) <= 1.25 * N_S / world
    assert sum(r["stats"]["rows_scored"] for r in res) < 1.3 * (st["refreshes"] + 1) * N_S
