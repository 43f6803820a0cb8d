"""Two real processes (gloo): identical plans, equal lengths, union over ranks = the epoch."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

N, B = 101, 10  # 11 batches: rank 1 gets one padded batch


def _worker(rank: int, world: int, store: str, outdir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        from graphbatch import RWRBatchSampler

        g = np.random.default_rng(0)
        centers = g.normal(size=(5, 6)) * 4
        emb = torch.tensor(centers[g.integers(0, 5, N)] + g.normal(size=(N, 6)), dtype=torch.float32)
        s = RWRBatchSampler(N, B, k=5, candidates=30, seed=3, refresh_every=4)
        assert s.num_replicas == world and s.rank == rank
        epochs = []
        for epoch in range(3):
            s.set_epoch(epoch)
            batches = []
            for bt in s:
                batches.append(bt)
                # each rank only knows its own batch; update() all-gathers so every bank is identical
                s.update(bt, emb[bt] * (1 + epoch))
            epochs.append(batches)
        torch.save({"epochs": epochs, "plan": torch.from_numpy(s._plan_arr.copy()), "len": len(s),
                    "crow": s.graph.crow, "col": s.graph.col, "bank": s.bank, "stats": s.stats},
                   os.path.join(outdir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_two_process_gloo(tmp_path):
    world = 2
    store = str(tmp_path / "store")
    mp.spawn(_worker, args=(world, store, str(tmp_path)), nprocs=world, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(world)]
    assert torch.equal(res[0]["plan"], res[1]["plan"])
    assert torch.equal(res[0]["crow"], res[1]["crow"]) and torch.equal(res[0]["col"], res[1]["col"])
    assert torch.equal(res[0]["bank"], res[1]["bank"])
    assert res[0]["len"] == res[1]["len"] == 6
    nb = -(-N // B)
    for e in range(3):
        per = [res[r]["epochs"][e] for r in range(world)]
        assert len(per[0]) == len(per[1]) == 6
        plan = [per[g % world][g // world] for g in range(nb)]
        assert sorted(i for bt in plan for i in bt) == list(range(N))
        assert per[1][5] == plan[0]  # the padded batch wraps around to the epoch's first batch
    assert res[0]["stats"]["refreshes"] >= 2 and res[0]["stats"]["random_epochs"] == 1


def _two_view_worker(rank: int, world: int, store: str, outdir: str) -> None:
    """SimCLR-style updates: every rank passes both views of its batch (each index twice)."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        from graphbatch import RWRBatchSampler

        n, b = 300, 16
        g = np.random.default_rng(1)
        emb = torch.tensor(g.normal(size=(n, 8)), dtype=torch.float32)
        s = RWRBatchSampler(n, b, k=6, candidates=40, seed=5, refresh_every=3)
        epochs = []
        for epoch in range(3):
            s.set_epoch(epoch)
            batches = []
            for bt in s:
                batches.append(list(bt))
                idx = torch.tensor(bt)
                z1 = emb[idx] + 0.1 * torch.randn(len(bt), 8)  # each rank draws its own views: they differ
                z2 = emb[idx] + 0.1 * torch.randn(len(bt), 8)
                s.update(torch.cat([idx, idx]), torch.cat([z1, z2]))
            epochs.append(batches)
        torch.save({"epochs": epochs, "bank": s.bank, "crow": s.graph.crow, "col": s.graph.col,
                    "plan": torch.from_numpy(s._plan_arr.copy()), "len": len(s)},
                   os.path.join(outdir, f"views{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_three_process_two_view_updates_keep_ranks_identical(tmp_path):
    world, n, b = 3, 300, 16
    mp.spawn(_two_view_worker, args=(world, str(tmp_path / "store"), str(tmp_path)), nprocs=world, join=True)
    res = [torch.load(tmp_path / f"views{r}.pt", weights_only=False) for r in range(world)]
    for r in range(1, world):
        assert torch.equal(res[0]["bank"], res[r]["bank"])
        assert torch.equal(res[0]["crow"], res[r]["crow"]) and torch.equal(res[0]["col"], res[r]["col"])
        assert torch.equal(res[0]["plan"], res[r]["plan"])
    nb = -(-n // b)
    for e in range(3):
        per = [res[r]["epochs"][e] for r in range(world)]
        plan = [per[g % world][g // world] for g in range(nb)]
        assert sorted(i for bt in plan for i in bt) == list(range(n))  # every epoch a partition of range(N)


def _failing_refresh_worker(rank: int, world: int, store: str, outdir: str) -> None:
    """A refresh that fails on rank 1 only (a transient out-of-memory) must fail on every rank, never hang."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        from graphbatch import RWRBatchSampler
        from graphbatch.samplers.models import GraphBuilder

        n, b = 200, 10
        emb = torch.tensor(np.random.default_rng(2).normal(size=(n, 6)), dtype=torch.float32)
        s = RWRBatchSampler(n, b, k=5, candidates=30, seed=1, refresh_every=4, embeddings=emb)
        real_begin, real_assemble = GraphBuilder.begin, GraphBuilder._assemble
        calls = {"begin": 0, "assemble": 0}

        def flaky_begin(self, *args, **kwargs):  # before the sharded build's gather: its local share
            calls["begin"] += 1
            if rank == 1 and calls["begin"] == 1:
                raise RuntimeError("CUDA out of memory (simulated, rank 1 only)")
            return real_begin(self, *args, **kwargs)

        def flaky_assemble(self, *args, **kwargs):  # after the gather: the graph from the gathered table
            calls["assemble"] += 1
            if rank == 1 and calls["assemble"] == 2:
                raise MemoryError("simulated, rank 1 only, after the gather")
            return real_assemble(self, *args, **kwargs)

        GraphBuilder.begin, GraphBuilder._assemble = flaky_begin, flaky_assemble
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            epochs = []
            for epoch in range(2):
                s.set_epoch(epoch)
                batches = []
                for bt in s:
                    batches.append(list(bt))
                    s.update(bt, emb[bt] * (2.0 + epoch))
                epochs.append(batches)
        torch.save({"epochs": epochs, "version": s._version, "stats": s.stats, "col": s.graph.col},
                   os.path.join(outdir, f"flaky{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_refresh_failing_on_one_rank_fails_on_all(tmp_path):
    world, n, b = 2, 200, 10
    mp.spawn(_failing_refresh_worker, args=(world, str(tmp_path / "store"), str(tmp_path)), nprocs=world, join=True)
    res = [torch.load(tmp_path / f"flaky{r}.pt", weights_only=False) for r in range(world)]
    assert res[0]["version"] == res[1]["version"]  # the same graph versions on both ranks
    # one failure before the sharded build's collective gather and one after it: both fail on every rank
    assert res[0]["stats"]["refresh_failures"] == res[1]["stats"]["refresh_failures"] == 2
    assert "another rank" in res[0]["stats"]["last_refresh_error"]
    assert "after the gather" in res[1]["stats"]["last_refresh_error"]
    assert res[0]["stats"]["refreshes"] == res[1]["stats"]["refreshes"] >= 1
    assert torch.equal(res[0]["col"], res[1]["col"])
    nb = -(-n // b)
    for e in range(2):
        plan = [res[g % world]["epochs"][e][g // world] for g in range(nb)]
        assert sorted(i for bt in plan for i in bt) == list(range(n))


def _failing_construction_worker(rank: int, world: int, store: str, outdir: str) -> None:
    """The build at construction (embeddings=) failing on rank 1 only raises on every rank, no hang."""
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        from graphbatch import RWRBatchSampler
        from graphbatch.samplers.models import GraphBuilder

        real = GraphBuilder._assemble

        def flaky(self, *args, **kwargs):  # after the sharded gather
            if rank == 1:
                raise MemoryError("simulated, rank 1 only")
            return real(self, *args, **kwargs)

        GraphBuilder._assemble = flaky
        emb = torch.tensor(np.random.default_rng(3).normal(size=(150, 5)), dtype=torch.float32)
        try:
            RWRBatchSampler(150, 10, k=4, candidates=30, seed=0, embeddings=emb)
            outcome = "built"
        except (RuntimeError, MemoryError) as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        dist.barrier()  # both ranks get here: nobody waits in a collective
        torch.save({"outcome": outcome}, os.path.join(outdir, f"ctor{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_construction_build_failing_on_one_rank_raises_on_all(tmp_path):
    mp.spawn(_failing_construction_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    out = [torch.load(tmp_path / f"ctor{r}.pt")["outcome"] for r in range(2)]
    assert out[1].startswith("MemoryError") and "another rank" in out[0]
