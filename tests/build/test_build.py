"""Tests of graphbatch.build against numpy brute force on fresh random inputs.

Random continuous data has no exact ties, but float32 scores can swap two
neighbours whose float64 scores differ by ~1e-7; comparisons therefore check
scores to a tolerance, and index sets only on rows whose k-th and (k+1)-th
reference scores are clearly apart.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from graphbatch import ProximityGraph, backend
from graphbatch.build import (
    BLOCK_DIVISOR,
    build_proximity_graph,
    draw_candidates,
    neighbor_table,
)

METRICS = ["cosine", "ip", "euclidean"]
TOL = 2e-5
GAP = 1e-4


def sim_matrix(x: np.ndarray, metric: str) -> np.ndarray:
    x = x.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ x.T
    if metric == "ip":
        return x @ x.T
    sq = (x * x).sum(1)
    return -(sq[:, None] + sq[None, :] - 2 * x @ x.T)


def reference_topk(sim_rows: np.ndarray, allowed: np.ndarray, k: int):
    """Top-k of each row of ``sim_rows`` restricted to the boolean mask ``allowed``."""
    s = np.where(allowed, sim_rows, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")
    idx = order[:, :k]
    val = np.take_along_axis(s, idx, axis=1)
    nxt = np.take_along_axis(s, order[:, k:k + 1], axis=1)[:, 0] if s.shape[1] > k else np.full(len(s), -np.inf)
    return idx, val, val[:, -1] - nxt


def assert_matches(idx: torch.Tensor, val: torch.Tensor, sim_rows: np.ndarray, allowed: np.ndarray, k: int,
                   scale: float = 1.0):
    """``(idx, val)`` is the top-k of each row of ``sim_rows`` over ``allowed`` (see module docstring)."""
    idx, val = idx.cpu().numpy(), val.cpu().double().numpy()
    ref_idx, ref_val, gap = reference_topk(sim_rows, allowed, k)
    tol = TOL * scale
    assert idx.shape == ref_idx.shape
    # every chosen neighbour is allowed, distinct, and its score is what the row reports
    assert np.take_along_axis(allowed, idx, axis=1).all()
    assert all(len(set(r)) == k for r in idx.tolist())
    np.testing.assert_allclose(val, np.take_along_axis(sim_rows, idx, axis=1), atol=tol, rtol=0)
    # rows are sorted by decreasing score and equal the reference scores
    assert (np.diff(val, axis=1) <= tol).all()
    np.testing.assert_allclose(val, ref_val, atol=tol, rtol=0)
    clear = gap > GAP * scale
    assert clear.mean() > 0.5  # the index check below must cover most rows
    for r in np.flatnonzero(clear):
        assert set(idx[r].tolist()) == set(ref_idx[r].tolist()), f"row {r}"


def data(rng, n, d, dtype=np.float32):
    return rng.standard_normal((n, d)).astype(dtype)


# ----------------------------------------------------------------------------- exact
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("self_loops", [False, True])
def test_exact_equals_brute_force(rng, metric, self_loops):
    n, d, k = int(rng.integers(150, 400)), int(rng.integers(4, 24)), int(rng.integers(1, 12))
    x = data(rng, n, d)
    sim = sim_matrix(x, metric)
    allowed = np.ones((n, n), bool)
    if not self_loops:
        np.fill_diagonal(allowed, False)
    # small chunk_size forces several row and column chunks and the running merge
    idx, val = neighbor_table(x, k, method="exact", metric=metric, self_loops=self_loops,
                              chunk_size=int(rng.integers(k + 1, 5000)))
    assert_matches(idx, val, sim, allowed, k, scale=np.abs(sim).max())


def test_exact_graph_is_the_table(rng):
    n, k = 300, 7
    x = torch.from_numpy(data(rng, n, 10))
    g = build_proximity_graph(x, k, method="exact")
    idx, val = neighbor_table(x, k, method="exact")
    assert isinstance(g, ProximityGraph)
    assert g.equal(ProximityGraph.from_neighbors(idx, val))
    assert g.out_degree().tolist() == [k] * n
    assert not bool((g.row() == g.col).any())  # no self loops by default


def test_exact_wide_rows_use_two_stage_topk(rng):
    # 2000 columns >= 4 * k * 8: exercises the grouped top-k path in one chunk
    n, k = 2000, 12
    x = data(rng, n, 6)
    sim = sim_matrix(x, "ip")
    allowed = ~np.eye(n, dtype=bool)
    rows = rng.choice(n, 200, replace=False)
    idx, val = neighbor_table(x, k, method="exact", metric="ip", rows=rows)
    assert_matches(idx, val, sim[rows], allowed[rows], k, scale=np.abs(sim).max())


def test_embeddings_requiring_grad_are_detached(rng):
    x = torch.from_numpy(data(rng, 120, 6)).requires_grad_(True)
    idx, val = neighbor_table(x, 4, candidates=30, seed=0)
    assert not val.requires_grad
    g = build_proximity_graph(x, 4, method="exact")
    assert not g.values.requires_grad
    assert_matches(*neighbor_table(x, 4, method="exact"), sim_matrix(x.detach().numpy(), "cosine"),
                   ~np.eye(120, dtype=bool), 4)


def test_float64_and_numpy_inputs(rng):
    x = data(rng, 200, 5, np.float64)
    idx, val = neighbor_table(x, 4, method="exact")
    assert val.dtype == torch.float64
    allowed = ~np.eye(200, dtype=bool)
    assert_matches(idx, val, sim_matrix(x, "cosine"), allowed, 4)


# ------------------------------------------------------------------------ candidates
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("self_loops", [False, True])
@pytest.mark.parametrize("k,m,block_size", [(3, 100, 7), (10, 50, 64), (5, 300, 1000)])
def test_candidates_are_topk_of_their_draw(rng, metric, self_loops, k, m, block_size):
    n, d = int(rng.integers(700, 1200)), 8
    x = data(rng, n, d)
    seed = int(rng.integers(2**31))
    idx, val = neighbor_table(x, k, candidates=m, metric=metric, seed=seed, self_loops=self_loops,
                              block_size=block_size)
    cand = draw_candidates(n, m, seed=seed, block_size=block_size, self_loops=self_loops).numpy()
    assert cand.shape == (n, m + 1 if self_loops else m)
    allowed = np.zeros((n, n), bool)
    np.put_along_axis(allowed, cand, True, axis=1)
    sim = sim_matrix(x, metric)
    assert_matches(idx, val, sim, allowed, k, scale=np.abs(sim).max())
    if self_loops:
        assert (cand[:, -1] == np.arange(n)).all()


@pytest.mark.parametrize("block_size", [1, 5, 32, None])
def test_draw_semantics(rng, block_size):
    n, m = int(rng.integers(200, 600)), int(rng.integers(5, 60))
    seed = int(rng.integers(2**31))
    cand = draw_candidates(n, m, seed=seed, block_size=block_size).numpy()
    anchors = np.arange(n)[:, None]
    assert cand.shape == (n, m)
    assert ((cand >= 0) & (cand < n)).all()
    assert not (cand == anchors).any()  # the anchor is never its own candidate
    assert all(len(set(r)) == m for r in cand.tolist())  # M distinct candidates
    if block_size is None:  # the default shares a pool among (M + 1) // BLOCK_DIVISOR anchors
        explicit = draw_candidates(n, m, seed=seed, block_size=max(1, (m + 1) // BLOCK_DIVISOR)).numpy()
        assert np.array_equal(cand, explicit)
    # same seed, same draw; another seed, another draw
    assert np.array_equal(cand, draw_candidates(n, m, seed=seed, block_size=block_size).numpy())
    assert not np.array_equal(cand, draw_candidates(n, m, seed=seed + 1, block_size=block_size).numpy())


def test_draw_is_roughly_uniform(rng):
    # each anchor's candidates are uniform over the other nodes: the count of
    # (anchor, candidate) pairs per node is close to its mean M for every node
    n, m = 2000, 50
    cand = draw_candidates(n, m, seed=int(rng.integers(2**31)), block_size=16).numpy()
    counts = np.bincount(cand.ravel(), minlength=n)
    assert counts.sum() == n * m
    assert counts.std() < 0.4 * m
    # and anchors in different positions are not biased toward nearby indices
    dist = np.abs(cand - np.arange(n)[:, None]).mean()
    assert abs(dist - n / 3) < 0.05 * n


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_all_candidates_equals_exact(rng, metric):
    n, k = int(rng.integers(100, 300)), 6
    x = torch.from_numpy(data(rng, n, 9))
    exact = build_proximity_graph(x, k, method="exact", metric=metric)
    for m in (None, n - 1, 10 * n):
        g = build_proximity_graph(x, k, candidates=m, metric=metric, seed=3)
        assert g.equal(exact, atol=1e-6)
    allowed = ~np.eye(n, dtype=bool)
    sim = sim_matrix(x.numpy(), metric)
    idx, val = neighbor_table(x, k, candidates=n - 1, metric=metric)
    assert_matches(idx, val, sim, allowed, k, scale=np.abs(sim).max())


def test_seed_determinism(rng):
    x = torch.from_numpy(data(rng, 1500, 12))
    g1 = build_proximity_graph(x, 10, candidates=200, seed=5)
    g2 = build_proximity_graph(x, 10, candidates=200, seed=5)
    g3 = build_proximity_graph(x, 10, candidates=200, seed=6)
    assert g1.equal(g2)
    assert not g1.equal(g3)
    # the global RNG is neither used nor disturbed
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    build_proximity_graph(x, 10, candidates=200, seed=5)
    assert torch.equal(torch.rand(3), before)
    # seed=None draws fresh candidates
    assert not build_proximity_graph(x, 10, candidates=200).equal(build_proximity_graph(x, 10, candidates=200))


def test_graph_matches_table(rng):
    n, k = 900, 8
    x = torch.from_numpy(data(rng, n, 6))
    g = build_proximity_graph(x, k, candidates=120, seed=1, metric="euclidean")
    idx, val = neighbor_table(x, k, candidates=120, seed=1, metric="euclidean")
    assert g.equal(ProximityGraph.from_neighbors(idx, val))
    assert g.out_degree().tolist() == [k] * n
    assert bool((g.values <= 0).all())  # negative squared distances


@pytest.mark.parametrize("method,extra", [("candidates", {"candidates": 90, "block_size": 13}),
                                          ("candidates", {"candidates": 500}),
                                          ("exact", {"chunk_size": 3000})])
def test_rows_equal_full_table(rng, method, extra):
    n, k = 800, 5
    x = torch.from_numpy(data(rng, n, 7))
    full_i, full_v = neighbor_table(x, k, method=method, seed=11, **extra)
    rows = torch.from_numpy(rng.integers(0, n, 60))  # unsorted, with duplicates
    rows[:3] = rows[0]
    idx, val = neighbor_table(x, k, method=method, seed=11, rows=rows, **extra)
    # equal up to float rounding (a GEMM over fewer rows may round differently), so
    # indices are compared where the k-th and (k+1)-th scores are clearly apart
    torch.testing.assert_close(val, full_v[rows], atol=1e-5, rtol=0)
    _, wider = neighbor_table(x, k + 1, method=method, seed=11, **extra)  # same draw, one more
    clear = (wider[:, k - 1] - wider[:, k] > 1e-5)[rows]
    assert clear.float().mean() > 0.8
    assert torch.equal(idx[clear], full_i[rows][clear])
    empty_i, empty_v = neighbor_table(x, k, method=method, seed=11, rows=[], **extra)
    assert empty_i.shape == (0, k) and empty_v.shape == (0, k)


def test_progress_bar_runs(rng, capsys):
    x = data(rng, 300, 4)
    g = build_proximity_graph(x, 3, candidates=40, seed=0, progress=True, block_size=32)
    assert g.nnz == 900
    g = build_proximity_graph(x, 3, method="exact", progress=True)
    assert g.nnz == 900


# ------------------------------------------------------------------------- nndescent
def test_nndescent_jit_cache_is_switched_on_once(monkeypatch):
    """pynndescent's uncached numba functions get numba's on-disk cache, so a later process loads them."""
    pytest.importorskip("pynndescent")
    from numba.core.caching import NullCache
    from pynndescent import pynndescent_, utils

    import graphbatch.build.nndescent as nnd

    monkeypatch.setattr(nnd, "_CACHE_ENABLED", False)
    monkeypatch.setenv("GRAPHBATCH_NNDESCENT_CACHE", "0")
    assert nnd.enable_jit_cache() == 0 and not nnd._CACHE_ENABLED  # the off switch touches nothing
    uncached = [f for f in (pynndescent_.nn_descent, utils.deheap_sort, pynndescent_.init_rp_tree)
                if isinstance(f._cache, NullCache)]
    monkeypatch.delenv("GRAPHBATCH_NNDESCENT_CACHE")
    if uncached:  # (a previous test of this process may have switched it on already)
        assert nnd.enable_jit_cache() > 0
        assert not any(isinstance(f._cache, NullCache) for f in uncached)
    assert nnd.enable_jit_cache() == 0  # once per process


def test_nndescent_recall(rng):
    # numba compiles pynndescent on first use in a process (several seconds)
    n, k = 5000, 10
    centers = rng.standard_normal((50, 16)).astype(np.float32)
    x = centers[rng.integers(0, 50, n)] + 0.5 * data(rng, n, 16)
    g = build_proximity_graph(x, k, method="nndescent", seed=0)
    idx, val = neighbor_table(x, k, method="exact")
    assert g.out_degree().max() <= k and g.nnz >= 0.99 * n * k
    assert not bool((g.row() == g.col).any())
    exact_edges = set(zip(np.repeat(np.arange(n), k).tolist(), idx.reshape(-1).tolist()))
    got = set(zip(g.row().tolist(), g.col.tolist()))
    recall = len(got & exact_edges) / len(exact_edges)
    assert recall >= 0.95, recall
    # scores are recomputed exactly
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    ref = (xn[g.row().numpy()] * xn[g.col.numpy()]).sum(1)
    np.testing.assert_allclose(g.values.numpy(), ref, atol=1e-5)


def test_nndescent_inner_product_small(rng):
    n, k = 600, 5
    x = data(rng, n, 8) * rng.uniform(0.5, 2.0, (n, 1)).astype(np.float32)
    idx, val = neighbor_table(x, k, method="nndescent", metric="ip", seed=0)
    ref_idx, _ = neighbor_table(x, k, method="exact", metric="ip")
    hits = sum(len(set(a) & set(b)) for a, b in zip(idx.tolist(), ref_idx.tolist()))
    assert hits / (n * k) >= 0.9
    assert not bool((idx == torch.arange(n).unsqueeze(1)).any())
    sim = sim_matrix(x, "ip")
    np.testing.assert_allclose(val.numpy(), np.take_along_axis(sim, idx.numpy(), 1), atol=1e-4)


# ------------------------------------------------------------------------- bad input
GOOD = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"embeddings": np.array([[1.0, np.nan]] * 5)}, ValueError, "embeddings"),
    ({"embeddings": np.array([[1.0, np.inf]] * 5)}, ValueError, "embeddings"),
    ({"embeddings": np.ones(10)}, ValueError, "embeddings"),
    ({"embeddings": np.ones((2, 3, 4))}, ValueError, "embeddings"),
    ({"embeddings": np.ones((0, 4))}, ValueError, "embeddings"),
    ({"embeddings": np.ones((5, 0))}, ValueError, "embeddings"),
    ({"embeddings": [[1.0, 2.0]] * 5}, TypeError, "embeddings"),
    ({"k": 0}, ValueError, "k"),
    ({"k": 50}, ValueError, "k"),
    ({"k": 2.5}, TypeError, "k"),
    ({"candidates": 2}, ValueError, "candidates"),
    ({"candidates": 0}, ValueError, "candidates"),
    ({"candidates": "many"}, TypeError, "candidates"),
    ({"method": "annoy"}, ValueError, "method"),
    ({"method": None}, TypeError, "method"),
    ({"metric": "manhattan"}, ValueError, "metric"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"self_loops": "yes"}, TypeError, "self_loops"),
    ({"block_size": 0}, ValueError, "block_size"),
    ({"chunk_size": 0}, ValueError, "chunk_size"),
    ({"progress": 1}, TypeError, "progress"),
    ({"device": "nonsense"}, ValueError, "device"),
])
def test_bad_input(kwargs, exc, match):
    args = {"embeddings": GOOD, "k": 3, "candidates": 10}
    args.update(kwargs)
    emb, k = args.pop("embeddings"), args.pop("k")
    with pytest.raises(exc, match=match):
        build_proximity_graph(emb, k, **args)
    with pytest.raises(exc, match=match):
        neighbor_table(emb, k, **args)


def test_single_row_and_bad_rows():
    with pytest.raises(ValueError, match="embeddings"):
        build_proximity_graph(np.ones((1, 3), np.float32), 1)
    with pytest.raises(ValueError, match="rows"):
        neighbor_table(GOOD, 3, candidates=10, rows=[0, 50])
    with pytest.raises(TypeError, match="rows"):
        neighbor_table(GOOD, 3, candidates=10, rows=[0.5])


def test_draw_candidates_bad_input():
    with pytest.raises(ValueError, match="candidates"):
        draw_candidates(10, 9)  # M >= N - 1 means exact kNN: nothing to draw
    with pytest.raises(ValueError, match="num_nodes"):
        draw_candidates(1, 1)
    with pytest.raises(ValueError, match="block_size"):
        draw_candidates(10, 3, block_size=0)
    with pytest.raises(TypeError, match="self_loops"):
        draw_candidates(10, 3, self_loops=None)


def test_missing_pynndescent_is_reported(monkeypatch):
    def fail(name, purpose=""):
        raise backend.MissingDependencyError(f"graphbatch needs the optional package '{name}'")

    monkeypatch.setattr(backend, "require", fail)
    with pytest.raises(backend.MissingDependencyError, match="pynndescent"):
        build_proximity_graph(GOOD, 3, method="nndescent")


# ------------------------------------------------------------------------------- device traffic
class _Traffic(TorchDispatchMode):
    """Records host->device copies and the operations that make the host wait for a CUDA device."""

    SYNC = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default",
            "aten._unique2.default", "aten.unique_consecutive.default"}

    def __init__(self) -> None:
        super().__init__()
        self.copies, self.syncs = [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        if name == "aten._to_copy.default" and args[0].device.type == "cpu" and "device" in kwargs:
            if torch.device(kwargs["device"]).type != "cpu":
                self.copies.append(tuple(args[0].shape))
        if name in self.SYNC or (name.startswith("aten.index") and any(
                isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in (args[1] or ()))):
            self.syncs.append(name)
        return func(*args, **kwargs)


@pytest.fixture
def one_thread():
    """Small arrays: torch's intra-op threads only add contention on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_draws_are_the_sequential_permutations(rng, monkeypatch):
    """The candidate plan's permutations come in batches but are the generator's sequential draws."""
    from graphbatch.build import candidates

    n, count, seed = int(rng.integers(5, 300)), int(rng.integers(1, 12)), int(rng.integers(2**31))
    monkeypatch.setattr(candidates, "_DRAW_BATCH_BYTES", 8 * n * int(rng.integers(1, 4)))  # 1-3 per batch
    got = list(candidates._draws(n, count, torch.Generator().manual_seed(seed), torch.device("cpu")))
    gen = torch.Generator().manual_seed(seed)
    want = [torch.randperm(n, generator=gen) for _ in range(count)]
    assert len(got) == count and all(torch.equal(a, b) for a, b in zip(got, want))


def test_candidate_plan_reaches_the_device_in_a_few_copies(rng, monkeypatch, one_thread):
    """On the meta device (a stand-in GPU: reading its values raises, so the plan never waits for it) the
    plan copies its permutations in batches and makes no per-pool or per-group copy; it is the CPU plan."""
    from graphbatch.build import candidates

    n, m, b = 2001, 40, 2  # 1001 blocks (the last one short), 48 pools per permutation: 21 + the anchors'
    seed = int(rng.integers(2**31))
    monkeypatch.setattr(candidates, "_DRAW_BATCH_BYTES", 8 * n * 5)  # 5 permutations per batch
    blocks = torch.from_numpy(rng.random(1001) < 0.3)
    blocks[-1] = True
    for mask in (None, blocks):
        with _Traffic() as t:
            plan = list(candidates._iter_plan(n, m, b, seed, torch.device("meta"), group=64, blocks=mask))
        assert len(t.copies) == -(-22 // 5) + 1, t.copies  # the draw batches, and the block indices once
        cpu = list(candidates._iter_plan(n, m, b, seed, torch.device("cpu"), group=64, blocks=mask))
        assert [tuple(x.shape for x in item) for item in plan] == [tuple(x.shape for x in item) for item in cpu]
    # and the CPU plan is the documented draw
    cand = draw_candidates(n, m, seed=seed, block_size=b).numpy()
    assert not (cand == np.arange(n)[:, None]).any() and all(len(set(r)) == m for r in cand.tolist())


def test_exact_scan_makes_no_host_sync_per_block(rng, one_thread):
    n, k = 600, 5
    x = torch.from_numpy(data(rng, n, 6))
    rows = torch.from_numpy(rng.choice(n, 300, replace=False))
    out = {}
    for chunk in (n * n, 64 * 16):  # one score block, then 5 row chunks x 38 column blocks
        with _Traffic() as t:
            out[chunk] = neighbor_table(x, k, method="exact", chunk_size=chunk, rows=rows)
        out[chunk] += (len(t.syncs),)
    assert out[n * n][2] == out[64 * 16][2], (out[n * n][2], out[64 * 16][2])  # the scorer's set-up checks only
    sim = sim_matrix(x.numpy(), "cosine")[rows.numpy()]
    allowed = np.ones_like(sim, dtype=bool)
    allowed[np.arange(rows.numel()), rows.numpy()] = False  # never the anchor itself
    for idx, val, _ in out.values():
        assert_matches(idx, val, sim, allowed, k)


# ------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("method", ["candidates", "exact"])
def test_cuda_matches_cpu(rng, method):
    x = torch.from_numpy(data(rng, 3000, 32))
    kw = {"candidates": 400} if method == "candidates" else {}
    cpu_i, cpu_v = neighbor_table(x, 10, method=method, seed=2, **kw)
    gpu_i, gpu_v = neighbor_table(x.cuda(), 10, method=method, seed=2, **kw)
    assert gpu_i.device.type == "cuda"
    torch.testing.assert_close(gpu_v.cpu(), cpu_v, atol=1e-4, rtol=0)
    same = (gpu_i.cpu() == cpu_i).float().mean()
    assert same > 0.99
    g = build_proximity_graph(x, 10, method=method, seed=2, device="cuda", **kw)
    assert g.device.type == "cuda"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scorer_normalises_rows_as_taken_with_the_bits_of_normalize(rng, dtype):
    """Cosine rows are normalised when taken (no normalised copy of the bank), bit for bit as F.normalize."""
    from graphbatch.build.scoring import Scorer

    n = int(rng.integers(50, 300))
    x = torch.tensor(rng.normal(size=(n, int(rng.integers(3, 70)))) * rng.uniform(0.01, 100), dtype=dtype)
    x[int(rng.integers(n))] = 0.0  # an all-zero row stays zero
    ref = torch.nn.functional.normalize(x, dim=1)
    sc = Scorer(x, "cosine", torch.device("cpu"))
    ids = torch.as_tensor(rng.integers(0, n, size=400))
    assert torch.equal(sc.take(ids), ref[ids])
    a, b = sorted(rng.integers(0, n, size=2).tolist())
    assert torch.equal(sc.span(a, b), ref[a:b])
    assert sc.x.data_ptr() == x.data_ptr()  # no copy of the rows


@pytest.mark.parametrize("metric", ["cosine", "ip", "euclidean"])
@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e300), (np.float32, 1e25)])
def test_finite_embeddings_whose_scores_overflow_are_refused(rng, metric, dtype, scale):
    """Finite but huge rows gave a graph of zero (cosine) or NaN (ip, euclidean) weights, silently."""
    x = (rng.normal(size=(40, 4)) * scale).astype(dtype)
    with pytest.raises(ValueError, match="too large for .* scores"):
        build_proximity_graph(x, 3, candidates=None, metric=metric)
    g = build_proximity_graph(x / scale, 3, candidates=None, metric=metric)  # scaled down: a graph
    assert bool(torch.isfinite(g.values).all())


@pytest.mark.parametrize("method", ["candidates", "exact"])
def test_tanimoto_on_fingerprints_equals_jaccard_brute_force(rng, method):
    """metric='tanimoto' on 0/1 fingerprints: edges and weights are the exact Jaccard top-k."""
    n, d, k = int(rng.integers(40, 120)), int(rng.integers(16, 64)), int(rng.integers(2, 6))
    fp = rng.random((n, d)) < rng.uniform(0.05, 0.4)
    fp[int(rng.integers(n))] = False  # an all-zero fingerprint: similarity 0 to everything
    g = build_proximity_graph(fp.astype(np.float32), k, candidates=None if method == "exact" else n - 1,
                              method=method, metric="tanimoto")
    inter = fp.astype(np.int64) @ fp.T.astype(np.int64)
    cnt = fp.sum(1)
    union = cnt[:, None] + cnt[None, :] - inter
    jac = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    np.fill_diagonal(jac, -np.inf)
    crow, col, val = g.crow.numpy(), g.col.numpy(), g.values.numpy()
    for i in range(n):
        mine = col[crow[i]:crow[i + 1]]
        np.testing.assert_allclose(val[crow[i]:crow[i + 1]], jac[i, mine], rtol=1e-6)
        kth = np.sort(jac[i])[::-1][k - 1]
        assert (jac[i, mine] >= kth - 1e-6).all()  # the top-k up to ties
    with pytest.raises(ValueError, match="nndescent"):
        build_proximity_graph(fp.astype(np.float32), k, method="nndescent", metric="tanimoto")


@pytest.mark.skipif(not backend.WITH_FAISS, reason="faiss is optional and not installed")
@pytest.mark.parametrize("metric", ["cosine", "ip", "euclidean"])
def test_faiss_flat_is_exact_and_hnsw_recalls(rng, metric):
    """method='faiss': 'Flat' equals the exact kNN (edges and scores); HNSW reaches high recall."""
    n, d, k = 400, 16, 8
    x = torch.tensor(rng.normal(size=(n, d)) + rng.normal(size=(8, d))[rng.integers(0, 8, n)] * 2,
                     dtype=torch.float32)
    exact = build_proximity_graph(x, k, method="exact", metric=metric)
    flat = build_proximity_graph(x, k, method="faiss", metric=metric, faiss_index="Flat")
    assert torch.equal(flat.crow, exact.crow)
    same = (flat.col == exact.col).float().mean()
    assert same > 0.99  # ties in float32 search may swap a neighbour
    torch.testing.assert_close(flat.values[flat.col == exact.col], exact.values[flat.col == exact.col],
                               rtol=1e-5, atol=1e-5)
    hnsw = build_proximity_graph(x, k, method="faiss", metric=metric)
    ec, hc = exact.col.view(n, k).numpy(), hnsw.col.view(n, k).numpy()
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ec, hc)])
    assert recall > 0.95
    assert not bool((hnsw.row() == hnsw.col).any())  # no self-loops
    rows = torch.as_tensor(rng.choice(n, 20, replace=False))
    idx, _ = neighbor_table(x, k, method="faiss", metric=metric, faiss_index="Flat", rows=rows)
    ref, _ = neighbor_table(x, k, method="exact", metric=metric, rows=rows)
    assert (idx == ref).float().mean() > 0.99


@pytest.mark.skipif(not backend.WITH_FAISS, reason="faiss is optional and not installed")
def test_faiss_bad_arguments():
    x = torch.randn(50, 4)
    with pytest.raises(ValueError, match="index_factory"):
        build_proximity_graph(x, 3, method="faiss", faiss_index="NoSuchIndex")
    with pytest.raises(ValueError, match="for method='faiss'"):
        build_proximity_graph(x, 3, method="exact", faiss_index="Flat")
    with pytest.raises(ValueError, match="tanimoto"):
        build_proximity_graph(x, 3, method="faiss", metric="tanimoto")
    with pytest.raises(ValueError, match="faiss_params"):
        build_proximity_graph(x, 3, method="faiss", faiss_index="Flat", faiss_params="nprobe=zz")
