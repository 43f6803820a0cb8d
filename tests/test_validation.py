"""The one validation module: every check names the argument and the value, in one style, everywhere."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import graphbatch as gb
from graphbatch import _validation as v


@pytest.mark.parametrize("check,good,bad,exc", [
    (lambda x: v.check_int("k", x, low=1), [3, np.int64(3), torch.tensor(3)], [True, 2.0, "3", None], TypeError),
    (lambda x: v.check_int("k", x, low=1), [], [0, -5], ValueError),
    (lambda x: v.check_real("tol", x, low=0.0, low_open=True), [1e-8, np.float32(0.5), 3], [0.0, float("nan"),
                                                                                         float("inf")], ValueError),
    (lambda x: v.check_real("tol", x), [], [True, "1e-3", None], TypeError),
    (lambda x: v.check_probability("restart_prob", x), [1.0, 0.2], [0.0, 1.5, -0.1], ValueError),
    (lambda x: v.check_bool("drop_last", x), [True, np.bool_(False)], [1, "yes", None], TypeError),
    (lambda x: v.check_choice("metric", x, ("cosine", "ip")), ["ip"], ["cosin", "IP"], ValueError),
    (lambda x: v.check_choice("metric", x, ("cosine", "ip")), [], [3, None], TypeError),
    (lambda x: v.check_seed("seed", x), [0, 2**63 - 1], [-1, 2**63], ValueError),
    (lambda x: v.check_generator("generator", x), [None, torch.Generator()], [0, np.random.default_rng()],
     TypeError),
])
def test_checks_accept_and_refuse_naming_argument_and_value(check, good, bad, exc):
    for x in good:
        check(x)
    for x in bad:
        with pytest.raises(exc) as info:
            check(x)
        msg = str(info.value)
        name = msg.split(" ")[0]
        assert name in ("k", "tol", "restart_prob", "drop_last", "metric", "seed", "generator"), msg
        assert " must be " in msg and ", got " in msg, msg


def test_numpy_bools_and_ints_are_accepted_by_every_public_entry_point():
    """``np.bool_`` / ``np.int64`` were accepted in some places and refused in others."""
    emb = torch.randn(40, 4)
    g = gb.build_proximity_graph(emb, np.int64(3), candidates=np.int64(10), seed=np.int64(1),
                                 self_loops=np.bool_(False))
    s = gb.RWRBatchSampler(np.int64(40), np.int64(8), k=3, candidates=10, drop_last=np.bool_(True),
                           ppr_sample=np.bool_(False), embeddings=emb)
    assert len(list(s)) == 5
    r = gb.rwr_truncated(g, [0], 0.3, weighted=np.bool_(False), return_info=np.bool_(False))
    assert r.shape == (1, 40)


def test_choices_are_validated_at_construction_not_at_refresh():
    """A metric typo used to be accepted and turn every refresh into a caught error."""
    for cls in (gb.RWRBatchSampler, gb.KNNBatchSampler, gb.BandwidthBatchSampler):
        with pytest.raises(ValueError,
                           match="metric must be one of 'cosine', 'ip', 'euclidean', 'tanimoto', got 'cosin'"):
            cls(100, 10, k=5, candidates=20, metric="cosin")
        with pytest.raises(ValueError, match=r"build_kwargs\['method'\] must be one of"):
            cls(100, 10, k=5, candidates=20, build_kwargs={"method": "exactly"})
    with pytest.raises(ValueError, match="metric"):
        gb.ClusterBatchSampler(100, 10, metric="cosin")
    with pytest.raises(ValueError, match="mode must be one of 'walk', 'ppr', got 'bfs'"):
        gb.RWRBatchSampler(100, 10, mode="bfs")


def test_sparse_csr_beta_warning_never_reaches_the_user():
    import warnings

    # non-negative embeddings: cosine weights >= 0, so the weighted walks below accept the graph on any seed
    x = torch.rand(60, 4, generator=torch.Generator().manual_seed(0))
    g = gb.build_proximity_graph(x, 4, candidates=20, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g.to_torch()
        gb.rwr(g, [0, 1], 0.3, backend="torch")
        gb.rwr_truncated(g, [0], 0.3, eps=1e-3, weighted=False, engine="torch")
        gb.rwr_truncated(g, [0], 0.3, eps=1e-3, weighted=False, engine="numba")
        list(gb.RWRBatchSampler(60, 6, k=4, candidates=20, graph=g, mode="ppr", ppr_engine="rwr_truncated"))
