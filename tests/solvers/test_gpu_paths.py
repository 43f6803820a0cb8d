"""The solvers' GPU code paths, exercised on the CPU, and the same checks on a real device (marked ``gpu``).

* The CuPy power-iteration engine runs its own code through a numpy stand-in for CuPy
  (``fake_cupy`` in ``conftest.py``) and is compared with a dense linear solve and
  networkx; the stand-in records which device, stream and allocator CuPy would have used.
* float32 power iteration reaches its (dtype-aware) default tolerance.
* The walk set-up avoids the float ``torch.cumsum`` that CUDA refuses under
  ``torch.use_deterministic_algorithms(True)``; results do not depend on that mode.
* The vectorised push makes one host sync per round and is reproducible bit for bit.
"""
from __future__ import annotations

import gc
import math
import warnings
import weakref
from fractions import Fraction

import networkx as nx
import numpy as np
import pytest
import torch

from graphbatch import ProximityGraph, backend
from graphbatch.solvers import monte_carlo, power, push, rwr, rwr_monte_carlo, rwr_truncated, sample_neighbors

from helpers import dense_solve


@pytest.fixture(autouse=True)
def _one_thread():
    """These graphs are small: torch's intra-op threads only add contention (10-40x slower on 2 busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_graph(rng: np.random.Generator, n: int, avg_deg: float = 4.0) -> ProximityGraph:
    """Random weighted digraph with dangling nodes (no out-edges) and zero-weight rows."""
    m = int(avg_deg * n)
    row, col = rng.integers(0, n, m), rng.integers(0, n, m)
    dangling = rng.random(n) < 0.1
    dangling[0] = True
    keep = ~dangling[row]
    row, col = row[keep], col[keep]
    val = rng.uniform(0.05, 2.0, row.size)
    val[np.isin(row, rng.choice(np.unique(row), 2, replace=False))] = 0.0  # dangling for weighted walks only
    return ProximityGraph.from_coo(row, col, val, num_nodes=n)


def knn_graph(rng: np.random.Generator, n: int, k: int) -> ProximityGraph:
    """k-NN-like graph: each node points to k nodes near it on a ring (clustered, like a proximity graph)."""
    idx = (np.arange(n)[:, None] + rng.integers(-30, 31, (n, k))) % n
    return ProximityGraph.from_neighbors(torch.from_numpy(idx), torch.from_numpy(rng.uniform(0.1, 1.0, (n, k))))


# ------------------------------------------------------------------ the CuPy engine through the stand-in
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cupy_engine_stand_in_matches_references(rng, fake_cupy, dtype):
    g = random_graph(rng, int(rng.integers(60, 120)))
    p = float(rng.uniform(0.1, 0.6))
    seeds = [0] + rng.integers(0, g.num_nodes, 3).tolist()
    seeds.append(seeds[-1])  # a repeated seed
    R, info = rwr(g, seeds, p, backend="cupy", dtype=dtype, return_info=True)
    assert info.backend == "cupy" and info.converged
    assert R.dtype == dtype and R.device == g.device and R.shape == (len(seeds), g.num_nodes)
    # error <= residual (1 - p) / p by the contraction; float32 adds its rounding of the result
    bound = info.residual * (1 - p) / p + (1e-12 if dtype == torch.float64 else 2e-6)
    err = np.abs(R.double().numpy() - dense_solve(g, seeds, p)).sum(1)
    assert err.max() <= bound
    G = g.to_networkx()
    for j in (0, 1):
        pr = nx.pagerank(G, alpha=1 - p, personalization={seeds[j]: 1}, tol=1e-13, max_iter=10000)
        assert np.abs(R[j].double().numpy() - [pr[i] for i in range(g.num_nodes)]).sum() <= bound + 1e-9
    # every CuPy array was created on the graph's GPU, on torch's stream, from torch's allocator
    kinds = {call[0] for call in fake_cupy.calls}
    assert {"from_dlpack", "csr_matrix", "zeros", "arange"} <= kinds
    alloc = fake_cupy.allocators[0]
    assert alloc is not None and all(a is alloc for a in fake_cupy.allocators)
    assert all(call[1:] == (fake_cupy.index, fake_cupy.stream_ptr, alloc) for call in fake_cupy.calls), fake_cupy.calls
    assert set(fake_cupy.devices_entered) == {fake_cupy.index}
    assert set(fake_cupy.streams_entered) == {(fake_cupy.stream_ptr, fake_cupy.index)}
    assert set(fake_cupy.stream_queries) == {torch.device("cpu", fake_cupy.index)}
    # and CuPy's state is restored once rwr returns
    assert (fake_cupy.device, fake_cupy.stream, fake_cupy.allocator) == (None, None, None)


def test_cupy_engine_stand_in_agrees_with_the_torch_engine(rng, fake_cupy):
    g = random_graph(rng, 200)
    seeds = rng.integers(0, 200, 6)
    for weighted in (True, False):
        a = rwr(g, seeds, 0.25, backend="cupy", tol=1e-13, weighted=weighted)
        b = rwr(g, seeds, 0.25, backend="torch", tol=1e-13, weighted=weighted)
        assert (a - b).abs().sum(1).max() < 1e-11


def test_cupy_allocations_come_from_torch_and_return_to_it(rng, fake_cupy):
    """The allocator the engine hands CuPy gives torch-owned memory, released with CuPy's last reference."""
    rwr(random_graph(rng, 30), [1, 2], 0.3, backend="cupy")
    alloc = fake_cupy.allocators[0]
    size = int(rng.integers(1, 1 << 20))
    ptr = alloc(size)
    owner = ptr.mem.owner
    assert isinstance(owner, torch.Tensor) and owner.dtype == torch.uint8 and owner.numel() == size
    assert ptr.mem.ptr == ptr.ptr == owner.data_ptr() and ptr.mem.size == size and ptr.mem.device_id == fake_cupy.index
    alive = weakref.ref(owner)
    del owner, ptr
    gc.collect()
    assert alive() is None  # nothing but CuPy's pointer kept the block: it is back in torch's allocator


def test_cupy_engine_runs_on_the_graphs_gpu(monkeypatch):
    """A graph on cuda:1 runs on GPU 1; a CPU graph (or a bare "cuda") on torch's current device."""
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert power._cuda_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert power._cuda_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert power._cuda_device(torch.device("cuda")) == torch.device("cuda", 3)
    assert power._cuda_device(torch.device("cpu")) == torch.device("cuda", 3)


def test_auto_backend_takes_a_working_cupy_for_cuda_graphs_only(fake_cupy):
    import types

    assert power._resolve_backend("auto", types.SimpleNamespace(device=torch.device("cuda", 0))) == "cupy"
    assert power._resolve_backend("auto", types.SimpleNamespace(device=torch.device("cpu"))) == "torch"


# ------------------------------------------------------------------ float32 power iteration
@pytest.mark.parametrize("be", ["torch", "scipy"])
def test_float32_reaches_its_default_tolerance(rng, be):
    n = int(rng.integers(2000, 4000))
    g = knn_graph(rng, n, int(rng.integers(5, 15)))
    p = float(rng.uniform(0.05, 0.3))
    seeds = rng.integers(0, n, 8)
    r, info = rwr(g, seeds, p, dtype=torch.float32, backend=be, return_info=True)
    assert r.dtype == torch.float32
    assert info.converged and info.residual < power.DEFAULT_TOL[torch.float32] and info.iterations < 400
    exact = rwr(g, seeds, p, tol=1e-13)
    err = (r.double() - exact).abs().sum(1).max().item()
    assert err <= info.residual * (1 - p) / p + 1e-6  # the stated bound, plus float32 rounding
    # an explicit tol is still honoured
    _, info64 = rwr(g, seeds, p, tol=1e-3, return_info=True)
    assert info64.residual < 1e-3 and info64.iterations < info.iterations


def test_col_sums_accumulate_in_float64(rng):
    n, s = int(rng.integers(100_000, 200_000)), 4  # not a multiple of the 64-row groups
    x = torch.from_numpy(rng.random((n, s)).astype(np.float32))
    ref = x.double().numpy().sum(0)
    got = power._col_sums(x)
    assert got.dtype == torch.float64
    assert np.abs(got.numpy() - ref).max() / ref.max() < 1e-8  # a float32 sum errs by ~1e-7 here
    strided = power._col_sums(x.t().contiguous().t())  # a non-contiguous block: summed in float64 directly
    assert np.abs(strided.numpy() - ref).max() / ref.max() < 1e-12
    y = torch.from_numpy(rng.random((n, s)))
    assert torch.equal(power._col_sums(y), y.sum(0))  # float64 blocks: as before


# ------------------------------------------------------------------ deterministic algorithms
def test_running_sum_is_the_exact_prefix_sum_rounded_sequentially(rng):
    v = rng.random(3000)
    v[rng.random(3000) < 0.1] = 0.0
    out = monte_carlo.running_sum(torch.from_numpy(v))
    assert out.dtype == torch.float64 and out.numel() == v.size + 1 and out[0] == 0
    exact, acc = [Fraction(0)], Fraction(0)
    for a in v:
        acc += Fraction(a)
        exact.append(acc)
    err = np.array([abs(float(Fraction(o) - e)) for o, e in zip(out.tolist(), exact)])
    # sequential summation of non-negative terms: |error of the i-th sum| <= (i - 1) u (exact i-th sum)
    bound = np.arange(-1, v.size) .clip(0) * 2.0 ** -53 * np.array([float(e) for e in exact])
    assert (err <= bound + 1e-300).all()
    assert bool((out[1:] >= out[:-1]).all())  # non-decreasing: searchsorted's precondition
    assert abs(float(out[-1]) - math.fsum(v)) <= v.size * 2.0 ** -53 * math.fsum(v)
    f32 = monte_carlo.running_sum(torch.from_numpy(v.astype(np.float32)))
    assert f32.dtype == torch.float64 and torch.equal(f32[1:], torch.cumsum(torch.from_numpy(v.astype(np.float32))
                                                                            .double(), 0))


def _fresh(g: ProximityGraph) -> ProximityGraph:
    return ProximityGraph(g.crow.clone(), g.col.clone(), g.values.clone(), g.num_nodes)  # empty solver cache


def _walks(g: ProximityGraph, nodes: torch.Tensor, seeds) -> list[torch.Tensor]:
    return [sample_neighbors(g, nodes, generator=torch.Generator().manual_seed(5), weighted=True),
            rwr_monte_carlo(g, seeds, 0.3, num_walks=200, generator=torch.Generator().manual_seed(6)),
            rwr_truncated(g, seeds, 0.3, eps=1e-5, engine="torch").to_dense(),
            rwr(g, seeds, 0.3, backend="torch")]


def test_walks_do_not_depend_on_deterministic_algorithms_mode(rng):
    g = random_graph(rng, 300, avg_deg=6)
    nodes = torch.from_numpy(rng.integers(0, 300, 2000))
    seeds = rng.integers(0, 300, 5).tolist()
    free = _walks(_fresh(g), nodes, seeds)
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        strict = _walks(_fresh(g), nodes, seeds)
    finally:
        torch.use_deterministic_algorithms(was)
    for a, b in zip(free, strict):
        assert torch.equal(a, b)


# ------------------------------------------------------------------ the vectorised push: host syncs, reproducibility
@pytest.mark.parametrize("table", [True, False])
@pytest.mark.parametrize("candidates", [False, True])
def test_push_makes_one_host_sync_per_round(rng, count_syncs, monkeypatch, table, candidates):
    g = knn_graph(rng, 400, 6) if table else random_graph(rng, 400, avg_deg=5)
    weighted = not candidates  # push_scores (candidates) walks uniformly
    assert (push._push_setup(g, weighted)[4] is not None) == table  # the padded-table or the ragged path
    seeds = torch.from_numpy(rng.integers(0, 400, 6))
    copies = []
    real = getattr(push, "_to_host", None)
    monkeypatch.setattr(push, "_to_host", lambda t: copies.append(t.numel()) or real(t), raising=False)
    with count_syncs() as c:
        keys, vals, rounds, converged = push._torch_push(g, seeds, 0.2, 1e-5, 10**6, weighted, 6, candidates)
    assert converged and rounds >= 10
    assert len(copies) == rounds  # one batched device-to-host copy per round...
    assert len(c.ops) <= 3, c.ops  # ...and no other sync but a few per chunk of seeds (unique, ...)
    # still the push: estimates below the exact vector by at most eps * N in L1, the seeds reached
    T = torch.zeros(6 * 400, dtype=torch.float64).index_put_((keys,), vals).view(6, 400)
    exact = rwr(g, seeds, 0.2, tol=1e-13, weighted=weighted)
    slack = (exact - T).sum(1) if not candidates else (exact - T).abs().sum(1)
    assert (slack <= 1e-5 * 400 + 1e-12).all() and (T[torch.arange(6), seeds] > 0).all()


def test_push_dedup_keeps_the_last_copy_of_each_key(rng):
    """Reference: numpy's last occurrence. torch's CPU ``slot[keys] = pos`` keeps an arbitrary copy once split
    across threads, which made the push's rounding differ from run to run."""
    torch.set_num_threads(2)
    m = 200_000
    keys = torch.from_numpy(rng.integers(0, m // 3, m))
    slot = torch.zeros(m // 3, dtype=torch.int64)
    claim = getattr(push, "_claim", lambda s, k, p: s.index_put_((k,), p))
    claim(slot, keys, torch.arange(1, m + 1))
    uniq, first_rev = np.unique(keys.numpy()[::-1], return_index=True)
    assert np.array_equal(slot.numpy()[uniq], m - first_rev)  # 1-based position of the last copy


def test_torch_push_is_reproducible_bit_for_bit(rng):
    torch.set_num_threads(2)  # the race needs threads
    g = knn_graph(rng, 400, 8)
    seeds = rng.integers(0, 400, 24).tolist()
    runs = [rwr_truncated(_fresh(g), seeds, 0.3, eps=2e-5, engine="torch") for _ in range(3)]
    for r in runs[1:]:
        assert torch.equal(r.col_indices(), runs[0].col_indices()) and torch.equal(r.values(), runs[0].values())


def test_compact_equals_boolean_selection(rng):
    for m in (0, 1, 17, 5000):
        v = torch.from_numpy(rng.integers(0, 10**9, m))
        keep = torch.from_numpy(rng.random(m) < rng.random())
        assert torch.equal(push._compact(v, keep, int(keep.sum())), v[keep])


# ------------------------------------------------------------------ on a real GPU
def _knn_cuda(n: int, k: int, device: str = "cuda") -> ProximityGraph:
    return knn_graph(np.random.default_rng(0), n, k).to(device)


@pytest.mark.gpu
@pytest.mark.skipif(not backend.WITH_CUPY, reason="needs CuPy")
def test_cuda_cupy_memory_returns_to_torch_and_follows_the_stream():
    import cupy as cp

    n, S = 20000, 64
    g = _knn_cuda(n, 10)
    seeds = torch.arange(0, n, n // S, device="cuda")[:S]
    pool = cp.get_default_memory_pool()
    torch.cuda.synchronize()
    base, pool0 = torch.cuda.memory_allocated(), pool.total_bytes()
    r = rwr(g, seeds, 0.2, backend="cupy", tol=1e-12)
    block = n * S * 8
    assert pool.total_bytes() - pool0 < block // 8  # the (N, S) blocks did not come from CuPy's pool
    assert torch.cuda.memory_allocated() - base >= block  # the result is torch memory
    del r
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - base < block // 8  # all of it came back to torch
    reserved = torch.cuda.memory_reserved()
    again = torch.empty(block, dtype=torch.uint8, device="cuda")  # served from a block CuPy's arrays held
    assert torch.cuda.memory_reserved() - reserved < block
    del again
    ref = rwr(g, seeds, 0.2, backend="torch", tol=1e-12)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # CuPy follows torch onto the side stream
        out = rwr(g, seeds, 0.2, backend="cupy", tol=1e-12) * 1.0
    torch.cuda.synchronize()
    assert (out - ref).abs().sum(1).max() < 1e-9  # both within 4e-12 of the exact vectors


@pytest.mark.gpu
@pytest.mark.skipif(not backend.WITH_CUPY or torch.cuda.device_count() < 2, reason="needs CuPy and two GPUs")
def test_cuda_cupy_runs_on_the_graphs_device():
    g = _knn_cuda(5000, 10, "cuda:1")
    torch.cuda.synchronize(0)
    before = torch.cuda.memory_allocated(0)
    r = rwr(g, [0, 1, 2], 0.2, backend="cupy")
    assert r.device == torch.device("cuda", 1)
    assert torch.cuda.memory_allocated(0) == before
    assert (r.cpu() - rwr(g.to("cpu"), [0, 1, 2], 0.2)).abs().sum(1).max() < 1e-9


@pytest.mark.gpu
def test_cuda_float32_reaches_its_default_tolerance():
    g = _knn_cuda(20000, 10)
    for name in ("torch",) + (("cupy",) if backend.WITH_CUPY else ()):
        _, info = rwr(g, [0, 5, 9], 0.15, dtype=torch.float32, backend=name, return_info=True)
        assert info.converged and info.iterations < 400, (name, info)


@pytest.mark.gpu
def test_cuda_walks_under_deterministic_algorithms():
    g = random_graph(np.random.default_rng(1), 300, avg_deg=6)
    nodes = torch.from_numpy(np.random.default_rng(2).integers(0, 300, 2000))
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        on_gpu = _walks(_fresh(g).to("cuda"), nodes.cuda(), [1, 2, 3])
    finally:
        torch.use_deterministic_algorithms(was)
    on_cpu = _walks(_fresh(g), nodes, [1, 2, 3])
    assert torch.equal(on_gpu[0].cpu(), on_cpu[0]) and torch.equal(on_gpu[1].cpu(), on_cpu[1])
    assert (on_gpu[3].cpu() - on_cpu[3]).abs().sum(1).max() < 1e-7  # each within tol (1 - p) / p = 2.3e-8


@pytest.mark.gpu
def test_cuda_push_syncs_once_per_round():
    g = _knn_cuda(5000, 10)
    seeds = torch.arange(0, 5000, 500, device="cuda")
    push._push_setup(g, True)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            _, _, rounds, _ = push._torch_push(g, seeds, 0.2, 1e-5, 10**6, True, seeds.numel(), False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert rounds >= 10 and len(syncs) <= rounds + 4, (rounds, len(syncs))
