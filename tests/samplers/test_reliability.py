"""Trustworthy under faults: duplicate updates, failed refreshes and plans, corrupt states, resume round trips.

Each test here was written before its fix and failed on the code of that time (issue 12).
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphbatch as gb
from graphbatch.samplers import planners

from helpers import check_epoch, mixture


# ------------------------------------------------------------------ 1. duplicate indices in update()
def test_duplicate_indices_are_averaged_deterministically(rng):
    """SimCLR-style two-view updates (the same index twice) raced across threads: the rule is the mean."""
    n, d = 300, 16
    idx = torch.as_tensor(rng.permutation(n)[:200])
    z1, z2 = torch.randn(200, d), torch.randn(200, d)
    banks = []
    for _ in range(5):
        s = gb.RWRBatchSampler(n, 10, k=4, candidates=20)
        s.update(torch.cat([idx, idx, idx[:50]]), torch.cat([z1, z2, z1[:50] * 3]))
        banks.append(s.bank.clone())
    assert all(torch.equal(banks[0], b) for b in banks[1:])
    expect = (z1 + z2) / 2
    expect[:50] = (z1[:50] + z2[:50] + 3 * z1[:50]) / 3
    torch.testing.assert_close(banks[0][idx], expect, rtol=0, atol=1e-6)


def test_a_later_update_replaces_the_row(rng):
    s = gb.RWRBatchSampler(20, 5, k=3, candidates=10)
    s.update([1, 2], torch.ones(2, 4))
    s.update([2], torch.full((1, 4), 5.0))
    assert s.bank[1].tolist() == [1.0] * 4 and s.bank[2].tolist() == [5.0] * 4


def test_bank_dtype_is_at_least_float32():
    """A bfloat16 first update used to fix the bank's dtype and truncate every later float32 row."""
    s = gb.RWRBatchSampler(10, 5, k=3, candidates=9)
    s.update([0], torch.ones(1, 3, dtype=torch.bfloat16))
    s.update([1], torch.full((1, 3), 1.0001))
    assert s.bank.dtype == torch.float32 and s.bank[1, 0].item() == pytest.approx(1.0001, abs=1e-7)
    t = gb.RWRBatchSampler(10, 5, k=3, candidates=9)
    t.update([0], torch.ones(1, 3, dtype=torch.float64))
    assert t.bank.dtype == torch.float64


# ------------------------------------------------------------------ 3. Bandwidth and the graph's memory
def test_bandwidth_leaves_the_graphs_weights_alone(rng):
    n = 120
    emb, _ = mixture(rng, n)
    g = gb.build_proximity_graph(emb, 6, method="exact")
    before = g.values.clone()
    s = gb.BandwidthBatchSampler(n, 12, k=6, candidates=None, graph=g, threshold=0.3)
    list(s)
    assert torch.equal(g.values, before) and torch.equal(s.graph.values, before)
    state = s.state_dict()
    assert torch.equal(state["model"]["values"], before)
    t = gb.BandwidthBatchSampler(n, 12, k=6, candidates=None, threshold=0.3)
    t.load_state_dict(state)
    s.set_epoch(1)
    t.set_epoch(1)
    assert list(s) == list(t)


# ------------------------------------------------------------------ 5. resume with max_similarity
def test_resume_with_a_similarity_guard_is_exact(rng):
    """The guard used the bank as of the resume instead of the bank as of the last refresh."""
    n, b = 200, 10
    emb, _ = mixture(rng, n)

    def make():
        return gb.RWRBatchSampler(n, b, k=6, candidates=None, embeddings=emb, max_similarity=0.9, seed=2,
                                  refresh_every=1000)

    s = make()
    it = iter(s)
    head = [next(it) for _ in range(3)]
    s.update(np.arange(n), (emb + 2 * torch.randn(n, emb.shape[1])).numpy())  # moves the bank, no refresh yet
    state = s.state_dict()
    rest = list(it)
    s.set_epoch(1)
    rest += list(s)  # planned with the guard as of the last refresh
    t = make()
    t.load_state_dict(state)
    resumed = list(t)
    t.set_epoch(1)
    assert head and resumed + list(t) == rest


# ------------------------------------------------------------------ 6. load_state_dict validates, atomically
def _state(rng, **kw):
    emb, _ = mixture(rng, 60)
    s = gb.RWRBatchSampler(60, 6, k=4, candidates=30, embeddings=emb, seed=1, **kw)
    it = iter(s)
    next(it)
    return s, s.state_dict()


@pytest.mark.parametrize("corrupt, match", [
    (lambda st: st.update(plan=torch.arange(60).flip(0)[:50]), "plan"),
    (lambda st: st.update(plan=torch.arange(1, 61)), "plan"),
    (lambda st: st.update(plan=torch.zeros(60, dtype=torch.int64)), "plan"),
    (lambda st: st.update(bank=torch.zeros(59, 8)), "bank"),
    (lambda st: st.update(seen=torch.zeros(7, dtype=torch.bool)), "seen"),
    (lambda st: st.update(yielded=99), "yielded"),
    (lambda st: st["model"].update(col=st["model"]["col"][:-1]), "model"),
])
def test_load_state_dict_refuses_corrupt_states_and_changes_nothing(rng, corrupt, match):
    s, state = _state(rng)
    corrupt(state)
    t = gb.RWRBatchSampler(60, 6, k=4, candidates=30, seed=1)
    before = t.state_dict()
    with pytest.raises(ValueError, match=match):
        t.load_state_dict(state)
    after = t.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        if isinstance(before[key], torch.Tensor):
            assert torch.equal(before[key], after[key]), key
        elif key != "model":
            assert before[key] == after[key], key


@pytest.mark.parametrize("other, match", [
    (dict(k=5), "k=4"), (dict(candidates=40), "candidates=30"), (dict(refresh_every=50), "refresh_every"),
    (dict(mode="ppr"), "mode"), (dict(metric="ip"), "metric"), (dict(seed=2), "seed"),
])
def test_load_state_dict_refuses_another_configuration_naming_it(rng, other, match):
    _, state = _state(rng)
    kw = dict(k=4, candidates=30, seed=1)
    kw.update(other)
    with pytest.raises(ValueError, match=match):
        gb.RWRBatchSampler(60, 6, **kw).load_state_dict(state)


# ------------------------------------------------------------------ 7. a failed epoch plan
def test_a_failed_plan_does_not_replay_the_previous_epoch(rng):
    emb, _ = mixture(rng, 80)
    sched = lambda epoch: 0.3 if epoch == 0 else float("nan")  # noqa: E731 - valid at 0, NaN at 1
    s = gb.RWRBatchSampler(80, 8, k=4, candidates=30, embeddings=emb, restart_prob=sched)
    first = list(s)
    for _ in range(2):  # epoch 1 fails, every time: it must never hand out epoch 0's batches again
        with pytest.raises(ValueError, match="restart_prob"):
            list(s)
    assert s.epoch == 1
    s.set_epoch(0)
    assert list(s) == first


# ------------------------------------------------------------------ 8. an exception while installing a graph
def test_memory_error_mid_install_keeps_the_old_graph_whole(rng, monkeypatch):
    n, b = 150, 10
    emb, _ = mixture(rng, n)
    s = gb.RWRBatchSampler(n, b, k=5, candidates=None, embeddings=emb, seed=4, restart_prob=1.0, walkers=1)
    g0, host0 = s.graph, s._prepared
    crow0, col0 = host0.crow.copy(), host0.col.copy()
    calls = {"n": 0}
    real = planners._host_copy

    def failing(buf, t, dtype):
        calls["n"] += 1
        if calls["n"] == 2:  # crow copied, col not: the middle of the install
            raise MemoryError("simulated: no memory for the host copy")
        return real(buf, t, dtype)

    monkeypatch.setattr(planners, "_host_copy", failing)
    s.update(np.arange(n), torch.randn(n, emb.shape[1]))
    with pytest.warns(RuntimeWarning, match="MemoryError"):
        assert s.refresh() is False
    assert s.graph is g0 and s._prepared is host0
    np.testing.assert_array_equal(host0.crow, crow0)
    np.testing.assert_array_equal(host0.col, col0)
    assert s._bank.dirty.all()  # the changed rows stay marked for the next refresh
    monkeypatch.setattr(planners, "_host_copy", real)
    batch = list(s)[0]  # restart_prob = 1: the first k new nodes are the seed's neighbours in the old graph
    seed_row = set(g0.col[g0.crow[batch[0]]:g0.crow[batch[0] + 1]].tolist())
    assert set(batch[1:6]) == seed_row


# ------------------------------------------------------------------ 10. refresh memory: the CSR built directly
def _coo_reference(n, rows, idx, sc, previous=None, dirty=None):
    """The graph through the general COO path: table rows (no empty slots, no self-loops) + kept old rows."""
    rows = np.asarray(rows)
    r = np.repeat(rows, idx.shape[1])
    c, v = idx.reshape(-1), sc.reshape(-1)
    keep = (c >= 0) & (c != r)
    r, c, v = r[keep], c[keep], v[keep]
    if previous is not None:
        old_r = previous.row().numpy()
        stay = ~dirty[old_r]
        r = np.concatenate([old_r[stay], r])
        c = np.concatenate([previous.col.numpy()[stay], c])
        v = np.concatenate([previous.values.numpy()[stay], v])
    return gb.ProximityGraph.from_coo(r, c, v, n)


@pytest.mark.parametrize("metric", ["cosine", "ip", "euclidean"])
@pytest.mark.parametrize("margin", [None, 0.3])
def test_direct_csr_equals_the_coo_path(rng, metric, margin):
    """Full and incremental builds (direct CSR when every slot is filled) equal the COO path bit for bit."""
    from graphbatch.samplers.bank import EmbeddingBank
    from graphbatch.samplers.models import GraphBuilder

    n, d, k = int(rng.integers(60, 200)), 8, int(rng.integers(2, 7))
    emb = torch.tensor(rng.normal(size=(n, d)), dtype=torch.float32)
    bank = EmbeddingBank(n)
    bank.fill(emb)
    builder = GraphBuilder(n, k=k, candidates=int(rng.integers(k, 40)), metric=metric, margin=margin)
    seed = int(rng.integers(1000))
    state, kind = builder.build(bank, None, seed)
    assert kind == "full"
    idx, sc = builder._rows(bank.rows, None, seed, state.draw)[0]()
    ref = _coo_reference(n, np.arange(n), idx.numpy(), sc.numpy())
    _assert_same_csr(state.graph, ref)
    dirty = np.zeros(n, bool)
    dirty[rng.choice(n, n // 5, replace=False)] = True
    rows = np.flatnonzero(dirty)
    bank.dirty[:] = False  # the sampler clears them once a build is installed
    bank.write(torch.from_numpy(rows), torch.tensor(rng.normal(size=(rows.size, d)), dtype=torch.float32))
    assert np.array_equal(bank.dirty, dirty)
    new, kind = builder.build(bank, state, seed)
    assert kind == "incremental" and new.draw == state.draw
    idx, sc = builder._rows(bank.rows, torch.from_numpy(rows), seed, state.draw)[0]()
    ref = _coo_reference(n, rows, idx.numpy(), sc.numpy(), state.graph, dirty)
    _assert_same_csr(new.graph, ref)
    assert not bool((new.graph.row() == new.graph.col).any())  # no self-loops


def _assert_same_csr(g, ref):
    for name in ("crow", "col", "values"):
        a, b = getattr(g, name), getattr(ref, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name


# ------------------------------------------------------------------ 11. messages and warnings
def test_string_group_ids_name_the_argument():
    with pytest.raises(TypeError, match="groups must hold integers"):
        gb.RWRBatchSampler(4, 2, k=2, candidates=3, groups=["a", "b", "a", "c"])


def test_drop_last_with_fewer_batches_than_ranks_warns():
    with pytest.warns(RuntimeWarning, match="0 batches"):
        s = gb.RandomBatchSampler(30, 10, drop_last=True, num_replicas=4, rank=0)
    assert len(s) == 0


def test_huge_finite_embeddings_are_not_called_nan():
    x = np.random.default_rng(0).normal(size=(50, 4)) * 1e300
    with pytest.raises(ValueError, match="too large for float32"):
        gb.evaluation.compare_samplers(x, batch_size=10, samplers=[("knn", gb.KNNBatchSampler,
                                                                    {"candidates": None})])


# ------------------------------------------------------------------ property: resume round trips
SAMPLERS = ["walk", "ppr", "walk-rounds", "knn", "knn-capped", "random", "cluster", "bandwidth"]


def _make(kind, n, b, emb, seed, guard, schedule):
    kw = dict(seed=seed, embeddings=emb, refresh_every=3)
    if kind == "random":
        return gb.RandomBatchSampler(n, b, **kw)
    if kind == "cluster":
        return gb.ClusterBatchSampler(n, b, num_clusters=max(1, n // 8), **kw)
    if guard == "labels":
        kw["labels"] = np.arange(n) % max(2, n // 4)
    elif guard == "sim":
        kw["max_similarity"] = 0.95
    if kind == "bandwidth":
        return gb.BandwidthBatchSampler(n, b, k=4, candidates=None, **kw)
    if kind.startswith("knn"):
        extra = dict(community_size=max(1, n // 4), max_per_community=max(1, b // 2), plan="rounds") \
            if kind == "knn-capped" else {}
        return gb.KNNBatchSampler(n, b, k=min(6, n - 1), candidates=None, **kw, **extra)
    p = gb.linear_decay(0.5, 0.1, 2) if schedule else 0.3
    mode = "ppr" if kind == "ppr" else "walk"
    plan = "rounds" if kind == "walk-rounds" else "sequential"
    return gb.RWRBatchSampler(n, b, k=4, candidates=20, restart_prob=p, mode=mode, plan=plan, **kw)


def _run(s, emb, epochs, stop=None):
    """Train-like loop: (epoch, batch) list; ``stop=(epoch, j)`` returns early with the state after batch j."""
    out = []
    for e in range(epochs):
        s.set_epoch(e)
        for j, bt in enumerate(s):
            out.append((e, list(bt)))
            s.update(bt, emb[bt] * (1.0 + 0.5 * e) + 0.01 * j)
            if stop == (e, j):
                return out, s.state_dict()
    return out, None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(SAMPLERS), n=st.integers(8, 90), bfrac=st.floats(0.05, 0.5), seed=st.integers(0, 99),
       guard=st.sampled_from(["none", "labels", "sim"]), schedule=st.booleans(), cut=st.floats(0.0, 0.99),
       via_file=st.booleans())
def test_resume_anywhere_equals_the_uninterrupted_run(kind, n, bfrac, seed, guard, schedule, cut, via_file):
    b = max(1, int(bfrac * n))
    emb, _ = mixture(np.random.default_rng(seed), n, d=4, clusters=3)
    epochs = 2
    full, _ = _run(_make(kind, n, b, emb, seed, guard, schedule), emb, epochs)
    at = min(int(cut * len(full)), len(full) - 1)
    stop = full[at][0], sum(1 for e, _ in full[:at + 1] if e == full[at][0]) - 1
    head, state = _run(_make(kind, n, b, emb, seed, guard, schedule), emb, epochs, stop=stop)
    if via_file:
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        state = torch.load(buf, weights_only=True)
    t = _make(kind, n, b, None, seed, guard, schedule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t.load_state_dict(state)
    rest = []
    for e in range(stop[0], epochs):
        t.set_epoch(e)
        for j, bt in enumerate(t):
            rest.append((e, list(bt)))
            jj = j if e != stop[0] else j + stop[1] + 1
            t.update(bt, emb[bt] * (1.0 + 0.5 * e) + 0.01 * jj)
    assert head + rest == full
    for e in range(epochs):
        check_epoch([bt for ee, bt in full if ee == e], n, b, False, len(t))
