"""Baseline samplers: same exact-epoch machinery, plus what each promises."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee

from graphbatch import (
    BandwidthBatchSampler,
    ClusterBatchSampler,
    KNNBatchSampler,
    RandomBatchSampler,
    RWRBatchSampler,
)

from helpers import check_epoch, mixture, same_label_pair_fraction

CLASSES = [RandomBatchSampler, KNNBatchSampler, ClusterBatchSampler, BandwidthBatchSampler]


def make(cls, n, b, emb=None, **kw):
    extra = {"k": 5, "candidates": 40} if cls in (KNNBatchSampler, BandwidthBatchSampler) else {}
    if cls is ClusterBatchSampler:
        extra = {"num_clusters": max(1, min(8, n // 4))}
    extra.update(kw)
    return cls(n, b, embeddings=emb, **extra)


@pytest.mark.filterwarnings("ignore:.*every rank gets 0 batches:RuntimeWarning")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cls=st.sampled_from(CLASSES), n=st.integers(2, 150), bfrac=st.floats(0.01, 1.0),
       drop_last=st.booleans(), seed=st.integers(0, 1000), world=st.integers(1, 3))
def test_exact_epochs_property(cls, n, bfrac, drop_last, seed, world):
    b = max(1, int(round(bfrac * n)))
    emb, _ = mixture(np.random.default_rng(seed), n, d=4, clusters=3)
    per_rank = []
    for r in range(world):
        s = make(cls, n, b, emb, drop_last=drop_last, seed=seed, num_replicas=world, rank=r)
        per_rank.append([list(s), list(s)])
    assert len({len(x[0]) for x in per_rank}) == 1
    if world == 1:
        for ep in per_rank[0]:
            check_epoch(ep, n, b, drop_last, len(s))
    else:
        nb = n // b if drop_last else -(-n // b)
        plan = [per_rank[g % world][0][g // world] for g in range(min(nb, len(s) * world))]
        flat = [i for bt in plan for i in bt]
        assert len(flat) == len(set(flat))
        if not drop_last:
            assert sorted(flat) == list(range(n))


@pytest.mark.parametrize("cls", CLASSES)
def test_determinism_resume_and_refresh(cls, rng):
    n, b = 160, 16
    emb, _ = mixture(rng, n)

    def run(s, epochs, stop=None, start=0):
        out = []
        for e in range(start, epochs):
            s.set_epoch(e)
            for bt in s:
                out.append(bt)
                s.update(bt, emb[bt] + 0.2 * e)
                if stop is not None and len(out) == stop:
                    return out, e
        return out, None

    kw = dict(refresh_every=4, seed=9)
    full, _ = run(make(cls, n, b, **kw), 3)
    again, _ = run(make(cls, n, b, **kw), 3)
    assert full == again
    other, _ = run(make(cls, n, b, refresh_every=4, seed=10), 3)
    assert other != full
    s1 = make(cls, n, b, **kw)
    head, epoch = run(s1, 3, stop=23)
    s2 = make(cls, n, b, **kw)
    s2.load_state_dict(s1.state_dict())
    tail, _ = run(s2, 3, start=epoch)
    assert head + tail == full
    if cls is not RandomBatchSampler:
        assert s2.stats["refreshes"] >= 2 and s2.stats["random_epochs"] == 1
    else:
        assert s2.refresh() is False


@pytest.mark.parametrize("cls", [KNNBatchSampler, ClusterBatchSampler, BandwidthBatchSampler])
def test_closer_than_random(cls, rng):
    n, b = 800, 40
    emb, lab = mixture(rng, n, d=12, clusters=10)
    s = make(cls, n, b, emb, **({"k": 10, "candidates": None} if cls is not ClusterBatchSampler else
                                {"num_clusters": 10}))
    f = same_label_pair_fraction(list(s), lab)
    fr = same_label_pair_fraction(list(RandomBatchSampler(n, b, seed=1)), lab)
    assert f > fr + 0.3, (f, fr)


def test_knn_first_batch_is_seed_plus_nearest(rng):
    n, b, k = 300, 6, 10
    emb, _ = mixture(rng, n)
    s = KNNBatchSampler(n, b, k=k, candidates=None, embeddings=emb)
    first = next(iter(s))
    seed = first[0]
    e = emb.double().numpy()
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e[seed]
    sim[seed] = -np.inf
    nearest = np.argsort(-sim)[: b - 1]
    assert set(first[1:]) == set(nearest.tolist())


def test_bandwidth_order_is_rcm(rng):
    n, b = 120, 10
    emb, _ = mixture(rng, n)
    s = BandwidthBatchSampler(n, b, k=4, candidates=None, embeddings=emb)
    g = s.graph
    a = csr_matrix((np.ones(g.nnz), g.col.numpy(), g.crow.numpy()), shape=(n, n))
    sym = (a + a.T).tocsr()
    sym.sort_indices()
    np.testing.assert_array_equal(s.order, reverse_cuthill_mckee(sym, symmetric_mode=True))
    # every full batch is a contiguous run of the (rotated) order
    pos = np.empty(n, dtype=np.int64)
    pos[s.order] = np.arange(n)
    for bt in list(s)[:-1]:
        p = np.sort(pos[bt])
        gaps = np.diff(p)
        assert (gaps == 1).sum() >= len(bt) - 2  # one wrap-around gap at most


def test_bandwidth_threshold_prunes(rng):
    emb, _ = mixture(rng, 100)
    s = BandwidthBatchSampler(100, 10, k=5, candidates=None, embeddings=emb, threshold=2.0)
    assert sorted(s.order.tolist()) == list(range(100))  # no edges left: still a permutation
    with pytest.raises(ValueError, match="threshold"):
        BandwidthBatchSampler(100, 10, threshold=float("nan"))


def test_cluster_batches_within_clusters(rng):
    n, b = 400, 20
    emb, _ = mixture(rng, n, clusters=5)
    s = ClusterBatchSampler(n, b, num_clusters=5, embeddings=emb)
    a = s.assignments
    assert a.shape == (n,) and set(a.tolist()) <= set(range(5))
    straddling = sum(len(set(a[bt].tolist())) > 1 for bt in s)
    assert straddling <= 5  # only at cluster boundaries


def test_baseline_bad_inputs(rng):
    emb, _ = mixture(rng, 20)
    for cls in CLASSES:
        with pytest.raises(ValueError, match="batch_size"):
            cls(20, 0)
        with pytest.raises(ValueError, match="batch_size"):
            cls(20, 21)
        with pytest.raises(ValueError, match="embeddings"):
            cls(20, 5, embeddings=emb[:10])
        s = cls(20, 5)
        with pytest.raises(ValueError, match="indices"):
            s.update([25], emb[:1])
    with pytest.raises(ValueError, match="num_clusters"):
        ClusterBatchSampler(20, 5, num_clusters=0)
    with pytest.raises(ValueError, match="metric"):
        ClusterBatchSampler(20, 5, metric="manhattan")


def test_state_dict_kind_checked():
    with pytest.raises(ValueError, match="RandomBatchSampler"):
        RandomBatchSampler(10, 2).load_state_dict(RWRBatchSampler(10, 2, k=2, candidates=5).state_dict())


def test_torch_dataloader_with_baseline(rng):
    ds = torch.utils.data.TensorDataset(torch.arange(50))
    s = ClusterBatchSampler(50, 7, num_clusters=3, embeddings=mixture(rng, 50)[0])
    exp = list(s)
    s.set_epoch(0)
    assert [x[0].tolist() for x in torch.utils.data.DataLoader(ds, batch_sampler=s)] == exp
