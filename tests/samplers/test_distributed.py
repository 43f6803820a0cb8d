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
