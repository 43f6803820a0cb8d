"""A new user's first day (issue 15): silent traps of the samplers made right or loud.

Each test failed on the code before its fix (2: no warning; 4: no ``groups=``, no warning;
7: the paper's defaults kept silently on small data, no cadence in epochs).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import graphbatch as gb

from helpers import check_epoch, mixture


# ------------------------------------------------------------------ 2. forgetting update()
def _run(s, epochs, feed):
    for e in range(epochs):
        s.set_epoch(e)
        for batch in s:
            if feed(e, batch):
                s.update(batch, torch.randn(len(batch), 4))


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_an_epoch_past_warm_up_without_a_graph_warns_once_with_the_count(rng, share):
    """Never calling update() (or feeding only some batches) left the batches random for ever, silently."""
    n, b = 120, 10
    s = gb.RWRBatchSampler(n, b, k=4, candidates=30, warmup_epochs=1, seed=int(rng.integers(100)))
    fed = set()

    def feed(e, batch):
        keep = rng.random() < share
        if keep:
            fed.update(batch)
        return keep

    with pytest.warns(RuntimeWarning, match="never passed to update") as rec:
        _run(s, 4, feed)
    msgs = [str(w.message) for w in rec if "never passed" in str(w.message)]
    assert len(msgs) == 1  # once, not every epoch
    missing = n - len(fed)  # fed after epoch 0 is over by the time epoch 1 starts: count at the warning
    assert f"of {n} rows" in msgs[0] and s.stats["random_epochs"] == 4
    assert missing > 0


def test_feeding_every_batch_builds_the_graph_and_stays_quiet(rng):
    s = gb.RWRBatchSampler(80, 8, k=4, candidates=30, warmup_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(s, 3, lambda e, batch: True)
    assert s.graph is not None and s.stats["random_epochs"] == 1


def test_the_warning_counts_the_rows_never_embedded():
    n = 50
    s = gb.RWRBatchSampler(n, 10, k=3, candidates=20, warmup_epochs=1)
    s.set_epoch(0)
    for i, batch in enumerate(s):
        if i < 2:
            s.update(batch, torch.randn(len(batch), 4))
    s.set_epoch(1)
    with pytest.warns(RuntimeWarning, match=f"{n - 20} of {n} rows were never passed"):
        list(s)


def test_drop_last_rows_missing_in_the_first_epoch_do_not_warn():
    n, b = 53, 10  # 3 rows dropped per epoch: the graph comes once every row was seen
    s = gb.RWRBatchSampler(n, b, k=3, candidates=20, warmup_epochs=1, drop_last=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.set_epoch(0)
        for batch in s:
            s.update(batch, torch.randn(len(batch), 4))
        s.set_epoch(1)
        list(s)


# ------------------------------------------------------------------ 4. groups=, not labels=
def test_groups_is_the_guard_and_labels_is_deprecated(rng):
    n, b = 90, 6
    emb, _ = mixture(rng, n)
    groups = rng.permutation(np.repeat(np.arange(n // 3), 3))
    a = gb.RWRBatchSampler(n, b, k=5, candidates=30, embeddings=emb, groups=groups, seed=1)
    with pytest.warns(FutureWarning, match="groups="):
        old = gb.RWRBatchSampler(n, b, k=5, candidates=30, embeddings=emb, labels=groups, seed=1)
    with pytest.warns(FutureWarning):
        knn = gb.KNNBatchSampler(n, b, k=5, candidates=None, embeddings=emb, labels=groups)
    epoch = list(a)
    assert epoch == list(old)  # the same guard under both names
    for s, batches in ((a, epoch), (knn, list(knn))):
        # two of a group only where the planner had to break the guard (the epoch's last nodes), counted
        doubles = sum(len(bt) - len(set(groups[bt])) for bt in batches)
        assert doubles == s.stats["guard_violations"] <= n // 10
    with pytest.raises(TypeError, match="not both"):
        gb.RWRBatchSampler(n, b, groups=groups, labels=groups)


@pytest.mark.parametrize("classes", [4, 10])
def test_class_labels_passed_as_groups_warn_that_the_guard_cannot_hold(rng, classes):
    """4 class labels as the guard gave 1,201 violations and 94% random jumps with no hint."""
    n, b = 400, 32
    emb, _ = mixture(rng, n)
    labels = rng.integers(0, classes, n)
    with pytest.warns(RuntimeWarning, match=f"only {classes} groups .* for batches of {b}"):
        s = gb.RWRBatchSampler(n, b, k=5, candidates=40, embeddings=emb, groups=labels)
    check_epoch(list(s), n, b, False, len(s))


def test_a_group_larger_than_the_epoch_warns(rng):
    n, b = 100, 10
    groups = np.arange(n)
    groups[:15] = 0  # 15 members, 10 batches
    with pytest.warns(RuntimeWarning, match="largest group has 15 members for 10 batches"):
        gb.KNNBatchSampler(n, b, k=4, candidates=None, embeddings=torch.randn(n, 3), groups=groups)


def test_feasible_groups_are_quiet(rng):
    n = 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gb.RWRBatchSampler(n, 10, k=4, candidates=30, groups=np.arange(n) // 2)


# ------------------------------------------------------------------ 7. paper defaults on small data
def test_paper_defaults_on_small_data_are_clamped_visibly():
    n = 405
    with pytest.warns(UserWarning, match=r"candidates=1000 -> all 404 \(exact kNN\)"):
        s = gb.RWRBatchSampler(n, 32)
    assert "candidates=1000->all 404 (exact kNN)" in repr(s)
    with pytest.warns(UserWarning, match="k=500 -> 404"):
        t = gb.KNNBatchSampler(n, 32, k=500, candidates=None)
    assert "k=500->404" in repr(t)


@pytest.mark.parametrize("every, batches", [("epoch", 13), ("0.5 epoch", 6), ("2 epochs", 26), (5, 5)])
def test_refresh_cadence_in_epochs(rng, every, batches):
    n, b = 125, 10  # 13 batches per epoch
    emb, _ = mixture(rng, n)
    s = gb.RWRBatchSampler(n, b, k=4, candidates=30, embeddings=emb, refresh_every=every)
    assert s.refresh_batches == batches and f"{batches} batches" in repr(s)
    steps = []
    for e in range(4):
        s.set_epoch(e)
        for batch in s:
            before = s.stats["refreshes"]
            s.update(batch, torch.as_tensor(emb[batch]) + 0.01 * e)
            steps.append(before)
    # one refresh per cadence, each at a multiple of the cadence (counted in this rank's batches)
    refreshed_at = [i for i in range(1, len(steps)) if steps[i] > steps[i - 1]]
    assert refreshed_at == [i for i in range(1, len(steps)) if i % batches == 0]


def test_an_epoch_cadence_refreshes_before_planning(rng):
    """'epoch': the new graph plans the whole next epoch (no plan thrown away after its first batch)."""
    n, b = 60, 10
    emb, _ = mixture(rng, n)
    s = gb.RWRBatchSampler(n, b, k=4, candidates=30, embeddings=emb, refresh_every="epoch")
    built = s.stats["refreshes"]  # the graph built at construction
    for e in range(3):
        s.set_epoch(e)
        for batch in s:
            s.update(batch, torch.as_tensor(emb[batch]) * (1 + e))
    assert s.stats["refreshes"] == built + 2 and s.stats["replans"] == 0 and s.stats["plans"] == 3


@pytest.mark.parametrize("bad, err", [(0.5, TypeError), ("often", ValueError), ("-1 epoch", ValueError),
                                      (0, ValueError), (True, TypeError)])
def test_refresh_every_refuses_ambiguous_values(bad, err):
    with pytest.raises(err, match="refresh_every"):
        gb.RWRBatchSampler(50, 5, refresh_every=bad)

