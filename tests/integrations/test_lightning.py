"""Lightning integration: GraphBatchCallback inside a real ``lightning.Trainer`` (CPU, tiny linear encoder).

Every run is checked against an independent reference: a plain sampler driven by hand
(``set_epoch`` / iterate / ``update`` with the embeddings the run recorded), the uninterrupted run
(for resume), or the sampler's documented partition rule (for DDP). Skipped without lightning.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

L = pytest.importorskip("lightning", reason="lightning is not installed")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

import graphbatch as gb  # noqa: E402
from graphbatch.integrations.lightning import GraphBatchCallback  # noqa: E402

from helpers import mixture  # noqa: E402

N, B = 40, 8  # 5 batches per epoch
SAMPLER = {"k": 3, "candidates": 16, "refresh_every": 3, "seed": 5}
TRAINER = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
           "enable_model_summary": False, "num_sanity_val_steps": 0}

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*(does not have many workers|not resumable|LeafSpec|ckpt_path|callbacks used to create):Warning")


class Items(Dataset):
    """Items ``{"index", "x", "epoch"}``; ``epoch`` is read from the sampler's batch, as the adapters do."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"index": i, "x": self.x[i], "epoch": -1}

    def __getitems__(self, idx: list[int]) -> list[dict]:
        return [{"index": i, "x": self.x[i], "epoch": getattr(idx, "epoch", -1)} for i in idx]


class Encoder(L.LightningModule):
    """A linear encoder; records every step as ``(epoch, batch_idx, sampler epoch, indices, views)``."""

    def __init__(self, x: torch.Tensor, *, views: int = 1, index_in_output: bool = True,
                 sampler_kwargs: dict | None = None, num_workers: int = 0, out_dir: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.x, self.views, self.index_in_output = x, views, index_in_output
        self.sampler_kwargs, self.num_workers, self.out_dir = sampler_kwargs, num_workers, out_dir
        self.enc = torch.nn.Linear(x.shape[1], 4)
        self.steps: list[tuple] = []

    def training_step(self, batch, batch_idx):
        z = self.enc(batch["x"])
        views = (z, self.enc(0.5 * batch["x"])) if self.views == 2 else (z,)
        self.steps.append((self.current_epoch, batch_idx, int(batch["epoch"][0]), batch["index"].tolist(),
                           [v.detach().clone() for v in views]))
        out = {"loss": (z - 1.0).pow(2).mean(), "embeddings": views if self.views == 2 else z}
        if self.index_in_output:
            out["index"] = batch["index"]
        return out

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class BuildsLoader(Encoder):
    """Builds its sampler in ``train_dataloader()`` (on each rank under DDP); writes its results per rank."""

    def train_dataloader(self):
        self.sampler = gb.RWRBatchSampler(len(self.x), B, **self.sampler_kwargs)
        return DataLoader(Items(self.x), batch_sampler=self.sampler, num_workers=self.num_workers)

    def on_train_end(self):
        if self.out_dir is None:
            return
        g = self.sampler.graph
        result = {"steps": [(e, i, idx, torch.cat(v).tolist()) for e, i, _, idx, v in self.steps],
                  "views": self.views, "bank": self.sampler.bank.tolist(), "graph": [g.crow.tolist(), g.col.tolist()],
                  "stats": {k: v for k, v in self.sampler.stats.items() if isinstance(v, int)},
                  "shard": [self.sampler.num_replicas, self.sampler.rank, len(self.sampler)]}
        with open(f"{self.out_dir}/rank{self.global_rank}.json", "w") as f:
            json.dump(result, f)


def index_and_views(outputs, batch):
    """An ``extract=`` function (module level, so ``ddp_spawn`` can pickle it)."""
    return outputs["index"], outputs["embeddings"]


def _data(seed: int = 0, n: int = N) -> torch.Tensor:
    return mixture(np.random.default_rng(seed), n, d=6, clusters=4)[0]


def _fit(module, loader=None, callbacks=(), ckpt_path=None, **trainer_kwargs):
    opts = {**TRAINER, "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
            **trainer_kwargs}
    trainer = L.Trainer(callbacks=list(callbacks), **opts)
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return trainer


def _graph(sampler):
    g = sampler.graph
    return g.crow.tolist(), g.col.tolist(), g.values.tolist()


# ---------------------------------------------------------------------------------------------- (a) epochs and updates
def test_callback_sets_epochs_and_feeds_the_bank_like_a_manual_loop():
    """Two views, index taken from the batch; 3 of 5 batches per epoch, so an epoch is left unfinished and only
    set_epoch starts the next one. A hand-driven sampler fed the recorded embeddings gives the same batches."""
    x = _data()
    init = torch.randn(N, 4, generator=torch.Generator().manual_seed(1))
    sampler = gb.RWRBatchSampler(N, B, embeddings=init, **SAMPLER)
    model = Encoder(x, views=2, index_in_output=False)
    _fit(model, DataLoader(Items(x), batch_sampler=sampler), [GraphBatchCallback(sampler)],
         max_epochs=3, limit_train_batches=3)

    assert [(s[0], s[1]) for s in model.steps] == [(e, i) for e in range(3) for i in range(3)]
    assert all(s[2] == s[0] for s in model.steps), "the sampler's epoch must follow trainer.current_epoch"
    ref = gb.RWRBatchSampler(N, B, embeddings=init, **SAMPLER)
    for epoch in range(3):
        ref.set_epoch(epoch)
        it = iter(ref)
        for *_, idx, views in (s for s in model.steps if s[0] == epoch):
            assert next(it) == idx
            ref.update(torch.tensor(idx).repeat(2), torch.cat(views))
    assert torch.equal(sampler.bank, ref.bank)
    assert _graph(sampler) == _graph(ref)
    assert sampler.stats == ref.stats
    # the bank holds, per row, the mean of the two views of its last step (initial rows elsewhere)
    expected = init.clone()
    for *_, idx, (z1, z2) in model.steps:
        expected[idx] = (z1 + z2) / 2
    torch.testing.assert_close(sampler.bank, expected, rtol=0, atol=1e-6)
    assert not torch.equal(sampler.bank, init)
    assert sampler.stats["refreshes"] >= 3 and sampler.stats["replans"] >= 2  # built + 2 periodic, mid-epoch


# ---------------------------------------------------------------------------------------------- (b) mid-epoch resume
def _resume_case(tmp_path, found: bool, num_workers: int = 0, epochs: int = 3):
    x = _data(2)
    kwargs = {**SAMPLER, "warmup_epochs": 1}  # epoch 0 random, the graph is built at the start of epoch 1

    def run(ckpt=None, dirpath=None):
        cbs = [ModelCheckpoint(dirpath=dirpath, every_n_train_steps=1, save_top_k=-1, filename="{step}"),
               ModelCheckpoint(dirpath=dirpath, save_top_k=-1, filename="end-{epoch}")] if dirpath else []
        if found:
            model = BuildsLoader(x, sampler_kwargs=kwargs, num_workers=num_workers)
            _fit(model, None, [GraphBatchCallback(), *cbs], ckpt_path=ckpt, max_epochs=epochs)
            return model, model.sampler
        sampler = gb.RWRBatchSampler(N, B, **kwargs)
        model = Encoder(x)
        _fit(model, DataLoader(Items(x), batch_sampler=sampler, num_workers=num_workers),
             [GraphBatchCallback(sampler), *cbs], ckpt_path=ckpt, max_epochs=epochs)
        return model, sampler

    return run


def _same_tail(full, sampler_full, resumed, sampler_resumed, k):
    assert [s[:4] for s in resumed.steps] == [s[:4] for s in full.steps[k:]], f"resume from step {k}"
    torch.testing.assert_close(sampler_resumed.bank, sampler_full.bank, rtol=0, atol=1e-6)
    assert _graph(sampler_resumed) == _graph(sampler_full)
    assert sampler_resumed.stats == sampler_full.stats


@pytest.mark.parametrize("found", [False, True], ids=["explicit-sampler", "found-in-train_dataloader"])
def test_resume_from_mid_epoch_checkpoints_sees_the_uninterrupted_batches(tmp_path, found):
    run = _resume_case(tmp_path, found)
    full, s_full = run(dirpath=tmp_path)
    assert len(full.steps) == 15 and s_full.stats["full_refreshes"] >= 1 and s_full.stats["replans"] >= 1
    # 2: mid warm-up epoch; 5: the epoch boundary before the first graph; 8: mid-epoch after a refresh
    for k in (2, 5, 8):
        resumed, s_res = run(ckpt=str(tmp_path / f"step={k}.ckpt"))
        _same_tail(full, s_full, resumed, s_res, k)
        assert resumed.steps[0][:2] == full.steps[k][:2]  # Lightning's batch_idx continues too
    resumed, s_res = run(ckpt=str(tmp_path / "end-epoch=1.ckpt"))  # saved at on_train_epoch_end
    _same_tail(full, s_full, resumed, s_res, 10)


def test_workers_resume_exactly_at_epoch_ends_and_warn_mid_epoch(tmp_path):
    """A DataLoader worker prefetches from the batch sampler: mid-epoch checkpoints warn; epoch ends are exact."""
    run = _resume_case(tmp_path, found=True, num_workers=1, epochs=2)
    with pytest.warns(RuntimeWarning, match="handed out .* more than were trained"):
        full, s_full = run(dirpath=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        resumed, s_res = run(ckpt=str(tmp_path / "step=5.ckpt"))
    _same_tail(full, s_full, resumed, s_res, 5)


def test_checkpoint_state_fits_every_rank():
    """Only rank 0's state is written: restoring it on rank 1 continues rank 1's own share of the plan."""
    emb = _data(3)
    s0, s1 = (gb.RWRBatchSampler(N, B, embeddings=emb, num_replicas=2, rank=r, **SAMPLER) for r in (0, 1))
    it0, it1 = iter(s0), iter(s1)
    for _ in range(2):  # the same (all-gathered) updates reach both ranks
        b0, b1 = next(it0), next(it1)
        both = torch.tensor(b0 + b1)
        s0.update(both, emb[both] + 1.0, gather=False)
        s1.update(both, emb[both] + 1.0, gather=False)
    fresh = gb.RWRBatchSampler(N, B, embeddings=emb, num_replicas=2, rank=1, **SAMPLER)
    cb = GraphBatchCallback(fresh)
    cb.load_state_dict({"version": 1, "sampler": s0.state_dict()})
    assert list(fresh) == list(it1)
    bad = GraphBatchCallback(gb.RWRBatchSampler(N, B, embeddings=emb, num_replicas=4, rank=1, **SAMPLER))
    with pytest.raises(ValueError, match="does not fit this sampler.*num_replicas"):
        bad.load_state_dict({"version": 1, "sampler": s0.state_dict()})


class SavesInStep(Encoder):
    def training_step(self, batch, batch_idx):
        if batch_idx == 1:
            self.trainer.save_checkpoint(self.ckpt)
        return super().training_step(batch, batch_idx)


def test_checkpoints_that_cannot_resume_exactly_warn(tmp_path):
    x = _data(6)
    sampler = gb.RWRBatchSampler(N, B, **SAMPLER)
    model = SavesInStep(x)
    model.ckpt = str(tmp_path / "in_step.ckpt")
    with pytest.warns(RuntimeWarning, match="inside a training step, before this batch's embeddings"):
        _fit(model, DataLoader(Items(x), batch_sampler=sampler), [GraphBatchCallback(sampler)], max_epochs=1)
    model.ckpt = str(tmp_path / "no_state.ckpt")  # written without the sampler's state
    sampler = gb.RWRBatchSampler(N, B, **SAMPLER)
    _fit(model, DataLoader(Items(x), batch_sampler=sampler), [GraphBatchCallback(checkpoint=False)], max_epochs=1)
    sampler = gb.RWRBatchSampler(N, B, **SAMPLER)
    with pytest.warns(RuntimeWarning, match="holds no GraphBatchCallback state.*starts afresh"):
        _fit(Encoder(x), DataLoader(Items(x), batch_sampler=sampler), [GraphBatchCallback(sampler)],
             ckpt_path=model.ckpt, max_epochs=1)


# ---------------------------------------------------------------------------------------------- (c) DDP
def test_ddp_spawn_shards_each_epoch_and_keeps_ranks_identical(tmp_path):
    n, world, epochs = 50, 2, 2  # 7 plan batches: rank 1's 4th batch is padding (plan batch 0 again)
    x = _data(4, n)
    model = BuildsLoader(x, views=2, sampler_kwargs={**SAMPLER, "refresh_every": 2}, out_dir=str(tmp_path))
    _fit(model, None, [GraphBatchCallback(extract=index_and_views)], max_epochs=epochs, devices=world,
         strategy="ddp_spawn", use_distributed_sampler=False, enable_checkpointing=False)
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    nb = -(-n // B)
    per_rank = -(-nb // world)
    assert [r["shard"] for r in res] == [[world, r, per_rank] for r in range(world)]
    for epoch in range(epochs):
        mine = [[s for s in r["steps"] if s[0] == epoch] for r in res]
        assert [[s[1] for s in m] for m in mine] == [list(range(per_rank))] * world
        plan = {j * world + r: mine[r][j][2] for r in range(world) for j in range(per_rank)}
        flat = [i for p in range(nb) for i in plan[p]]
        assert sorted(flat) == list(range(n)), f"epoch {epoch}: plan batches must partition range({n})"
        assert [len(plan[p]) for p in range(nb)] == [B] * (nb - 1) + [n - (nb - 1) * B]
        for p in range(nb, per_rank * world):  # padding wraps around to the epoch's first batches
            assert plan[p] == plan[p % nb]
    assert res[0]["bank"] == res[1]["bank"] and res[0]["graph"] == res[1]["graph"]
    # every counter agrees across ranks but the rows each rank scored in its (sharded) graph builds
    same = [{k: v for k, v in r["stats"].items() if k != "rows_scored"} for r in res]
    assert same[0] == same[1] and res[0]["stats"]["full_refreshes"] >= 1
    assert 0 < res[0]["stats"]["rows_scored"] < res[0]["stats"]["rows_scored"] + res[1]["stats"]["rows_scored"]
    # the bank: every rank's rows were gathered; a row holds the mean of the views of its last write
    expected: dict[int, np.ndarray] = {}
    for step in range(epochs * per_rank):
        for r in range(world):
            _, _, idx, rows = res[r]["steps"][step]
            z = np.asarray(rows).reshape(2, len(idx), -1).mean(axis=0)
            expected.update(zip(idx, z))
    np.testing.assert_allclose(np.asarray(res[0]["bank"]), np.stack([expected[i] for i in range(n)]), atol=1e-6)


def test_ddp_resume_from_mid_epoch_checkpoint(tmp_path):
    """Rank 0's state restored on both ranks (ddp_fork: the same machinery as ddp_spawn, without re-imports)."""
    x = _data(7, 50)
    kwargs = {**SAMPLER, "refresh_every": 2}

    def run(out, ckpt=None, dirpath=None):
        out.mkdir()
        cbs = [ModelCheckpoint(dirpath=dirpath, every_n_train_steps=1, save_top_k=-1, filename="{step}")] \
            if dirpath else []
        model = BuildsLoader(x, sampler_kwargs=kwargs, out_dir=str(out))
        _fit(model, None, [GraphBatchCallback(), *cbs], ckpt_path=ckpt, max_epochs=2, devices=2,
             strategy="ddp_fork", use_distributed_sampler=False)
        return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]

    full = run(tmp_path / "full", dirpath=tmp_path / "ckpt")
    resumed = run(tmp_path / "resumed", ckpt=str(tmp_path / "ckpt" / "step=6.ckpt"))  # epoch 1, batch 2 of 4
    for r in range(2):
        assert [s[:3] for s in resumed[r]["steps"]] == [s[:3] for s in full[r]["steps"][6:]]
        assert resumed[r]["graph"] == full[r]["graph"]
        # rank 0's state is restored on both ranks: every counter but the rows this rank scored itself
        drop = (lambda st: {k: v for k, v in st.items() if k != "rows_scored"}) if r else (lambda st: st)
        assert drop(resumed[r]["stats"]) == drop(full[r]["stats"])
        np.testing.assert_allclose(resumed[r]["bank"], full[r]["bank"], atol=1e-6)


# ---------------------------------------------------------------------------------------------- (d) bad input
STEP_OUTPUTS = {
    "ok": lambda z: {"loss": z.sum(), "embeddings": z},
    "loss": lambda z: z.sum(),  # Lightning hands {"loss": ...} to the callback
    "no_embeddings": lambda z: {"loss": z.sum(), "z": z},
    "concat": lambda z: {"loss": z.sum(), "embeddings": torch.cat([z, z])},
}


class Returns(Encoder):
    """``training_step`` returns ``STEP_OUTPUTS[kind]`` of the embeddings."""

    def __init__(self, x: torch.Tensor, kind: str) -> None:
        super().__init__(x)
        self.kind = kind

    def training_step(self, batch, batch_idx):
        return STEP_OUTPUTS[self.kind](self.enc(batch[0] if isinstance(batch, list) else batch["x"]))


def _bad_fit(loader_kind: str, step_output: str):
    x = _data(5, 16)
    sampler = gb.RWRBatchSampler(16, 4, **SAMPLER)
    loader = {"graphbatch": DataLoader(Items(x), batch_sampler=sampler),
              "plain": DataLoader(Items(x), batch_size=4),
              "as_sampler": DataLoader(Items(x), sampler=sampler),
              "tensors": DataLoader(TensorDataset(x), batch_sampler=sampler)}[loader_kind]
    return Returns(x, step_output), loader, sampler


@pytest.mark.parametrize("loader_kind, step_output, error, match", [
    ("plain", "ok", ValueError, "found no graphbatch sampler.*DataLoader with batch_sampler=BatchSampler"),
    ("as_sampler", "ok", ValueError, "pass it as DataLoader\\(dataset, batch_sampler=sampler\\)"),
    ("graphbatch", "loss", ValueError, "has no 'embeddings' \\(keys: \\['loss'\\]\\)"),
    ("graphbatch", "no_embeddings", ValueError, "has no 'embeddings' \\(keys: \\['loss', 'z'\\]\\)"),
    ("graphbatch", "concat", ValueError, "one row per index \\(4 indices\\).*tuple \\(z1, z2\\)"),
    ("tensors", "ok", ValueError, "no node indices.*neither has the batch \\(list\\)"),
])
def test_fit_errors_name_the_problem(loader_kind, step_output, error, match):
    model, loader, _ = _bad_fit(loader_kind, step_output)
    with pytest.raises(error, match=match):
        _fit(model, loader, [GraphBatchCallback()], max_epochs=1, enable_checkpointing=False)


def test_explicit_sampler_must_be_the_loaders_and_sharded_for_the_world():
    model, loader, sampler = _bad_fit("graphbatch", "ok")
    other = gb.RWRBatchSampler(16, 4, **SAMPLER)
    with pytest.raises(ValueError, match="another graphbatch sampler than the one passed"):
        _fit(model, loader, [GraphBatchCallback(other)], max_epochs=1, enable_checkpointing=False)
    two = gb.RWRBatchSampler(16, 4, num_replicas=2, rank=0, **SAMPLER)
    model, _, _ = _bad_fit("graphbatch", "ok")
    with pytest.raises(ValueError, match="sharded for num_replicas=2, rank=0 but this is rank 0 of a world of 1"):
        _fit(model, DataLoader(Items(model.x), batch_sampler=two), [GraphBatchCallback(two)], max_epochs=1,
             enable_checkpointing=False)


def test_distributed_strategy_needs_use_distributed_sampler_false():
    model, loader, _ = _bad_fit("graphbatch", "ok")
    trainer = L.Trainer(strategy="ddp", **TRAINER, max_epochs=1, enable_checkpointing=False)
    with pytest.raises(ValueError, match="use_distributed_sampler=False"):
        GraphBatchCallback().setup(trainer, model, "fit")
    off = L.Trainer(strategy="ddp", **{**TRAINER, "max_epochs": 1}, use_distributed_sampler=False)
    GraphBatchCallback().setup(off, model, "fit")  # accepted


def test_constructor_and_extract_errors():
    with pytest.raises(TypeError, match="sampler must be a graphbatch sampler"):
        GraphBatchCallback(DataLoader(range(4)))
    with pytest.raises(TypeError, match="index_key must be a str"):
        GraphBatchCallback(index_key=0)
    with pytest.raises(TypeError, match="extract must be a callable"):
        GraphBatchCallback(extract="index")
    cb = GraphBatchCallback(extract=lambda out, batch: out["embeddings"])
    with pytest.raises(TypeError, match="extract must return \\(index, embeddings\\)"):
        cb.embeddings_of({"embeddings": torch.zeros(2, 3)}, None)
    with pytest.raises(TypeError, match="must be a tensor .* or a tuple/list of view tensors"):
        GraphBatchCallback().embeddings_of({"embeddings": [[0.0, 1.0]], "index": [0]}, None)
    with pytest.raises(ValueError, match="not a version-1 state"):
        GraphBatchCallback().load_state_dict({"sampler": {}})


def test_imports_without_lightning():
    code = ("import sys\n"
            "import graphbatch, graphbatch.integrations, graphbatch.integrations.lightning as gl\n"
            "assert not {'lightning', 'pytorch_lightning'} & set(sys.modules), 'lightning imported eagerly'\n"
            "sys.modules['lightning'] = sys.modules['pytorch_lightning'] = None\n"
            "try:\n    gl.GraphBatchCallback\nexcept ImportError as e:\n    print('ImportError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ImportError: graphbatch needs the optional package 'lightning.pytorch'" in out.stdout
    assert "pip install 'graphbatch[lightning]'" in out.stdout
