"""Tests for graphbatch.solvers: neighbour sampling and the RWR solvers, against independent references."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from graphbatch import ProximityGraph, backend
from graphbatch.backend import MissingDependencyError
from graphbatch.solvers import RWRInfo, rwr, rwr_monte_carlo, rwr_truncated, sample_neighbors

from helpers import dense_solve


def random_digraph(rng: np.random.Generator, n: int, *, avg_deg: float = 3.0, p_dangling: float = 0.15,
                   n_components: int = 3, zero_weight_rows: int = 0) -> ProximityGraph:
    """Random weighted directed graph with dangling nodes and several components (blocks of nodes)."""
    perm = rng.permutation(n)
    bounds = np.linspace(0, n, n_components + 1).astype(int)
    rows, cols = [], []
    for c in range(n_components):
        block = perm[bounds[c]:bounds[c + 1]]
        m = int(avg_deg * len(block))
        rows.append(rng.choice(block, m))
        cols.append(rng.choice(block, m))
    row, col = np.concatenate(rows), np.concatenate(cols)
    dangling = rng.random(n) < p_dangling
    dangling[rng.integers(n)] = True  # at least one
    keep = ~dangling[row]
    row, col = row[keep], col[keep]
    val = rng.uniform(0.05, 2.0, row.size)
    if zero_weight_rows:
        # some rows whose edges all weigh 0: dangling for weighted walks, not for uniform ones
        zr = rng.choice(np.unique(row), zero_weight_rows, replace=False)
        val[np.isin(row, zr)] = 0.0
    return ProximityGraph.from_coo(torch.from_numpy(row), torch.from_numpy(col),
                                   torch.from_numpy(val), num_nodes=n)


# ------------------------------------------------------------------ sample_neighbors
@pytest.mark.parametrize("weighted", [False, True])
def test_sample_neighbors_distribution(rng, torch_gen, weighted):
    g = random_digraph(rng, 30, avg_deg=4, zero_weight_rows=2)
    P = g.transition_matrix(weighted=weighted).to_dense().numpy()
    reps = 4000
    nodes = torch.arange(g.num_nodes).repeat(reps)
    out = sample_neighbors(g, nodes, generator=torch_gen, weighted=weighted).reshape(reps, -1).numpy()
    for u in range(g.num_nodes):
        if P[u].sum() == 0:
            assert (out[:, u] == -1).all()
            continue
        assert (out[:, u] >= 0).all()
        counts = np.bincount(out[:, u], minlength=g.num_nodes)
        # never an edge with zero probability
        assert counts[P[u] == 0].sum() == 0
        expected = reps * P[u]
        support = P[u] > 0
        chi2 = (((counts - expected) ** 2)[support] / expected[support]).sum()
        dof = max(int(support.sum()) - 1, 1)
        # chi-square with dof degrees of freedom: mean dof, sd sqrt(2 dof); 6 sd is a loose, failing-able bound
        assert chi2 < dof + 6 * np.sqrt(2 * dof) + 10, (u, chi2, dof)


def test_sample_neighbors_reproducible_and_dangling(rng):
    g = random_digraph(rng, 50)
    nodes = torch.from_numpy(rng.integers(0, 50, 500))
    a = sample_neighbors(g, nodes, generator=torch.Generator().manual_seed(7), weighted=True)
    b = sample_neighbors(g, nodes, generator=torch.Generator().manual_seed(7), weighted=True)
    c = sample_neighbors(g, nodes, generator=torch.Generator().manual_seed(8), weighted=True)
    assert torch.equal(a, b) and not torch.equal(a, c)
    deg = g.out_degree()
    assert torch.equal(a == -1, deg[nodes] == 0)
    # every draw is a real edge
    dense = g.to_dense() != 0
    ok = a >= 0
    assert bool(dense[nodes[ok], a[ok]].all())
    assert sample_neighbors(g, [], generator=torch.Generator()).numel() == 0
    empty = ProximityGraph.from_coo(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                                    num_nodes=5)
    for weighted in (False, True):
        assert sample_neighbors(empty, [0, 4, 4], weighted=weighted).tolist() == [-1, -1, -1]


def test_sample_neighbors_bad_input(rng):
    g = random_digraph(rng, 10)
    with pytest.raises(TypeError, match="graph"):
        sample_neighbors(g.to_torch(), [0])
    with pytest.raises(ValueError, match="nodes"):
        sample_neighbors(g, [0, 10])
    with pytest.raises(TypeError, match="generator"):
        sample_neighbors(g, [0], generator=np.random.default_rng(0))
    neg = ProximityGraph.from_coo([0, 1], [1, 0], [-0.5, 1.0])
    with pytest.raises(ValueError, match="weighted"):
        sample_neighbors(neg, [0], weighted=True)
    assert sample_neighbors(neg, [0, 1]).tolist() == [1, 0]


@pytest.mark.gpu
def test_sample_neighbors_cuda_matches_cpu(rng):
    g = random_digraph(rng, 200)
    nodes = torch.from_numpy(rng.integers(0, 200, 1000))
    for weighted in (False, True):
        a = sample_neighbors(g, nodes, generator=torch.Generator().manual_seed(3), weighted=weighted)
        b = sample_neighbors(g.to("cuda"), nodes.cuda(), generator=torch.Generator().manual_seed(3),
                             weighted=weighted)
        assert b.device.type == "cuda"
        assert torch.equal(a, b.cpu())


# ------------------------------------------------------------------ exact RWR
CPU_BACKENDS = ["torch", "scipy"]


def nx_rwr(g: ProximityGraph, seeds, p: float, weight="weight") -> np.ndarray:
    """Reference: networkx personalised PageRank (dangling mass follows the personalisation)."""
    G = g.to_networkx()
    out = np.zeros((len(seeds), g.num_nodes))
    for j, s in enumerate(seeds):
        pr = nx.pagerank(G, alpha=1 - p, personalization={int(s): 1}, weight=weight, tol=1e-12, max_iter=10000)
        out[j] = [pr[i] for i in range(g.num_nodes)]
    return out


@pytest.mark.parametrize("be", CPU_BACKENDS)
@pytest.mark.parametrize("weighted", [True, False])
def test_rwr_matches_networkx(rng, be, weighted):
    g = random_digraph(rng, int(rng.integers(40, 90)), zero_weight_rows=2)
    p = float(rng.uniform(0.1, 0.6))
    deg = g.out_degree().numpy()
    # include a dangling seed and a seed with out-edges, plus random ones
    seeds = [int(np.flatnonzero(deg == 0)[0]), int(np.flatnonzero(deg > 0)[0])]
    seeds += rng.integers(0, g.num_nodes, 3).tolist()
    R, info = rwr(g, seeds, p, backend=be, weighted=weighted, return_info=True)
    ref = nx_rwr(g, seeds, p, weight="weight" if weighted else None)
    assert R.shape == (len(seeds), g.num_nodes) and R.dtype == torch.float64 and R.device == g.device
    assert np.abs(R.numpy() - ref).sum(1).max() < 1e-6
    assert torch.allclose(R.sum(1), torch.ones(len(seeds), dtype=torch.float64), atol=1e-12)
    assert isinstance(info, RWRInfo) and info.backend == be and info.converged
    assert info.residual < 1e-8 and 1 <= info.iterations < 1000


@pytest.mark.parametrize("weighted", [True, False])
def test_rwr_matches_dense_linear_solve(rng, weighted):
    g = random_digraph(rng, 50, zero_weight_rows=2)  # self-loops and repeated draws included
    p = float(rng.uniform(0.05, 0.9))
    seeds = rng.integers(0, 50, 4)
    ref = dense_solve(g, seeds, p, weighted)
    for be in CPU_BACKENDS:
        R = rwr(g, seeds, p, backend=be, weighted=weighted, tol=1e-13, max_iter=5000)
        assert np.abs(R.numpy() - ref).sum(1).max() < 1e-9


def test_rwr_multi_seed_equals_single_seed_and_backends_agree(rng):
    g = random_digraph(rng, 120, avg_deg=4)
    p = 0.25
    seeds = rng.integers(0, g.num_nodes, 6).tolist() + [3, 3]
    R = rwr(g, seeds, p, tol=1e-12)
    for j, s in enumerate(seeds):
        single = rwr(g, [s], p, tol=1e-12)
        assert torch.allclose(R[j], single[0], atol=1e-11, rtol=0)
    Rs = rwr(g, seeds, p, tol=1e-12, backend="scipy")
    assert torch.allclose(R, Rs, atol=1e-11, rtol=0)
    assert torch.equal(R[-1], R[-2])


def test_rwr_special_cases(rng):
    g = random_digraph(rng, 30)
    seeds = torch.tensor([0, 7, 29])
    eye = torch.zeros(3, 30, dtype=torch.float64)
    eye[torch.arange(3), seeds] = 1
    # p = 1: the walk never leaves the seed
    assert torch.allclose(rwr(g, seeds, 1.0), eye)
    # a graph without edges: every node is dangling, all mass stays at the seed
    empty = ProximityGraph.from_coo(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
                                    num_nodes=30)
    for be in CPU_BACKENDS:
        assert torch.allclose(rwr(empty, seeds, 0.3, backend=be), eye)
    # max_iter caps the iterations and reports non-convergence; auto picks torch on CPU
    _, info = rwr(g, seeds, 0.05, max_iter=2, return_info=True)
    assert info.iterations == 2 and not info.converged and info.residual > 1e-8 and info.backend == "torch"
    # float32: same answer to float32 accuracy
    r32 = rwr(g, seeds, 0.3, dtype=torch.float32)
    assert r32.dtype == torch.float32
    assert (r32.double() - rwr(g, seeds, 0.3)).abs().sum(1).max() < 1e-5


def test_rwr_error_bound_from_tol(rng):
    """Stopping at L1 change < tol leaves error <= tol (1 - p) / p."""
    g = random_digraph(rng, 80)
    p, tol = 0.15, 1e-3
    seeds = rng.integers(0, 80, 4)
    loose, info = rwr(g, seeds, p, tol=tol, return_info=True)
    exact = rwr(g, seeds, p, tol=1e-13)
    err = (loose - exact).abs().sum(1).max().item()
    assert err <= info.residual * (1 - p) / p + 1e-12
    assert info.residual < tol


def test_rwr_bad_input(rng):
    g = random_digraph(rng, 20)
    with pytest.raises(TypeError, match="graph"):
        rwr(g.to_scipy(), [0], 0.2)
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="restart_prob"):
            rwr(g, [0], bad)
    with pytest.raises(ValueError, match="seeds"):
        rwr(g, [], 0.2)
    with pytest.raises(ValueError, match="seeds"):
        rwr(g, [0, 20], 0.2)
    with pytest.raises(ValueError, match="seeds"):
        rwr(g, [-1], 0.2)
    with pytest.raises(ValueError, match="backend"):
        rwr(g, [0], 0.2, backend="numba")
    with pytest.raises(ValueError, match="tol"):
        rwr(g, [0], 0.2, tol=0)
    with pytest.raises(ValueError, match="max_iter"):
        rwr(g, [0], 0.2, max_iter=0)
    with pytest.raises(ValueError, match="dtype"):
        rwr(g, [0], 0.2, dtype=torch.int64)
    neg = ProximityGraph.from_coo([0, 1, 2], [1, 2, 0], [0.5, -0.2, 1.0])
    with pytest.raises(ValueError, match="weighted"):
        rwr(neg, [0], 0.2)
    # uniform walks ignore the signs of the weights
    assert torch.allclose(rwr(neg, [0], 0.2, weighted=False).sum(), torch.tensor(1.0, dtype=torch.float64))
    for fn in (rwr_truncated, lambda *a, **k: rwr_monte_carlo(*a, num_walks=10, **k)):
        with pytest.raises(ValueError, match="restart_prob"):
            fn(g, [0], 0)
        with pytest.raises(ValueError, match="seeds"):
            fn(g, [99], 0.2)
        with pytest.raises(TypeError, match="graph"):
            fn(None, [0], 0.2)
        with pytest.raises(ValueError, match="weighted"):
            fn(neg, [0], 0.2)


@pytest.mark.skipif(backend.WITH_CUPY, reason="checks the error raised when CuPy is missing")
def test_rwr_cupy_missing(rng):
    g = random_digraph(rng, 10)
    with pytest.raises(MissingDependencyError, match="cupy"):
        rwr(g, [0], 0.2, backend="cupy")


# ------------------------------------------------------------------ truncated (push)
ENGINES = ["torch", "numba"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("weighted", [True, False])
def test_rwr_truncated_within_bound(rng, weighted, engine):
    g = random_digraph(rng, 150, avg_deg=5, zero_weight_rows=3 if weighted else 0)
    p = float(rng.uniform(0.1, 0.5))
    seeds = rng.integers(0, g.num_nodes, 5).tolist()
    exact = rwr(g, seeds, p, tol=1e-13, weighted=weighted)
    prev = None
    for eps in (1e-2, 1e-3, 1e-5):
        T, info = rwr_truncated(g, seeds, p, eps=eps, weighted=weighted, return_info=True, engine=engine)
        assert T.layout == torch.sparse_csr and T.shape == (5, g.num_nodes) and info.converged
        D = T.to_dense()
        diff = exact - D
        # the estimate never overshoots, and its L1 error is exactly the unpushed residual mass
        assert diff.min() >= -1e-12
        err = diff.abs().sum(1)
        assert torch.allclose(err, info.error, atol=1e-10, rtol=0)
        assert torch.allclose(D.sum(1), 1 - info.error, atol=1e-10, rtol=0)
        # stated bound: every residual entry <= eps, so error <= eps * N; and the push count bound
        assert (info.error <= eps * g.num_nodes).all()
        nnz_per_row = T.crow_indices().diff()
        assert (nnz_per_row <= 1 / (p * eps) + 1).all()
        if prev is not None:
            assert info.residual <= prev + 1e-15
        prev = info.residual
    assert prev < 1e-5 * g.num_nodes


def test_rwr_truncated_knn_table_path(rng, monkeypatch):
    """k-NN-like graphs take the padded-table push; it must agree with the ragged CSR path and the bound."""
    import graphbatch.solvers.push as walk

    n, k = 150, 6
    idx = rng.integers(0, n, (n, k))
    idx[rng.random((n, k)) < 0.05] = -1  # a few empty slots
    idx[rng.choice(n, 6, replace=False)] = -1  # dangling rows
    g = ProximityGraph.from_neighbors(torch.from_numpy(idx), torch.from_numpy(rng.uniform(0.1, 1.0, (n, k))))
    assert n * int(g.out_degree().max()) <= walk._GRID_SLACK * g.nnz  # the table path is taken
    seeds = rng.integers(0, n, 4).tolist() + [int(np.flatnonzero(g.out_degree().numpy() == 0)[0])]
    exact = rwr(g, seeds, 0.2, tol=1e-13)
    T, info = rwr_truncated(g, seeds, 0.2, eps=1e-4, return_info=True, engine="torch")
    diff = exact - T.to_dense()
    assert diff.min() >= -1e-12
    assert torch.allclose(diff.sum(1), info.error, atol=1e-10, rtol=0)
    assert (info.error <= 1e-4 * n).all()
    monkeypatch.setattr(walk, "_GRID_SLACK", 0.0)
    T2 = rwr_truncated(g, seeds, 0.2, eps=1e-4, engine="torch")
    assert torch.equal(T2.crow_indices(), T.crow_indices()) and torch.equal(T2.col_indices(), T.col_indices())
    assert torch.allclose(T2.values(), T.values(), atol=1e-13, rtol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_rwr_truncated_row_equals_single_seed(rng, engine):
    g = random_digraph(rng, 100)
    seeds = [4, 17, 4]
    T = rwr_truncated(g, seeds, 0.3, eps=1e-4, engine=engine).to_dense()
    for j, s in enumerate(seeds):
        single = rwr_truncated(g, [s], 0.3, eps=1e-4, engine=engine).to_dense()[0]
        assert torch.allclose(T[j], single, atol=1e-14, rtol=0)
    # chunking the seeds (scratch arrays reused and cleared between chunks) changes nothing
    for chunk in (1, 2):
        assert torch.allclose(rwr_truncated(g, seeds, 0.3, eps=1e-4, chunk_size=chunk, engine=engine).to_dense(),
                              T, atol=1e-14, rtol=0)
    # the cached set-up is per (graph, weighted): switching weighting on the same graph is honoured
    for weighted in (False, True, False):
        Tw, info = rwr_truncated(g, seeds, 0.3, eps=1e-6, weighted=weighted, return_info=True, engine=engine)
        ex = rwr(g, seeds, 0.3, weighted=weighted, tol=1e-13)
        assert torch.allclose((ex - Tw.to_dense()).sum(1), info.error, atol=1e-10, rtol=0)
    # stopped early: not converged, but the reported error is still exact
    exact = rwr(g, seeds, 0.3, tol=1e-13)
    early, info = rwr_truncated(g, seeds, 0.3, eps=1e-6, max_iter=2, return_info=True, engine=engine)
    assert not info.converged and info.iterations == 2
    assert torch.allclose((exact - early.to_dense()).sum(1), info.error, atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="eps"):
        rwr_truncated(g, [0], 0.3, eps=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        rwr_truncated(g, [0], 0.3, chunk_size=0)


def test_rwr_truncated_engines_agree_within_the_bound(rng):
    """Push order differs between the engines, so they agree within the stated bound, not exactly."""
    g = random_digraph(rng, 200, avg_deg=6)
    seeds = rng.integers(0, g.num_nodes, 6).tolist()
    exact = rwr(g, seeds, 0.25, tol=1e-13, weighted=False)
    eps = 1e-5
    out = {}
    for engine in ENGINES:
        T, info = rwr_truncated(g, seeds, 0.25, eps=eps, weighted=False, return_info=True, engine=engine)
        assert info.converged and info.backend == ("numba-push" if engine == "numba" else "torch-push")
        assert torch.allclose((exact - T.to_dense()).abs().sum(1), info.error, atol=1e-10, rtol=0)
        out[engine] = T.to_dense()
    # each is within eps * N of the exact vector in L1, so they are within 2 eps N of each other
    assert ((out["torch"] - out["numba"]).abs().sum(1) <= 2 * eps * g.num_nodes).all()
    with pytest.raises(ValueError, match="engine"):
        rwr_truncated(g, [0], 0.3, engine="fast")


@pytest.mark.gpu
def test_rwr_truncated_numba_engine_refuses_cuda_graph(rng):
    g = random_digraph(rng, 20).to("cuda")
    with pytest.raises(ValueError, match="engine"):
        rwr_truncated(g, [0], 0.3, engine="numba")


# ------------------------------------------------------------------ Monte Carlo
@pytest.mark.parametrize("estimator", ["visits", "terminal"])
def test_rwr_monte_carlo_converges_and_is_reproducible(rng, estimator):
    g = random_digraph(rng, 60, avg_deg=3)
    p = 0.3
    deg = g.out_degree().numpy()
    seeds = [int(np.flatnonzero(deg == 0)[0])] + rng.choice(np.flatnonzero(deg > 0), 3, replace=False).tolist()
    exact = rwr(g, seeds, p, tol=1e-13)
    seed = int(rng.integers(2**31))
    small = rwr_monte_carlo(g, seeds, p, num_walks=2000, estimator=estimator,
                            generator=torch.Generator().manual_seed(seed))
    big = rwr_monte_carlo(g, seeds, p, num_walks=50000, estimator=estimator,
                          generator=torch.Generator().manual_seed(seed + 1))
    e_small = (small - exact).abs().sum(1)
    e_big = (big - exact).abs().sum(1)
    # sampling error ~ 1/sqrt(walks): 25x more walks should cut it ~5x; ask for 2x on the mean
    assert e_big.mean() < e_small.mean() / 2
    assert e_big.max() < 0.08
    if estimator == "terminal":
        assert torch.allclose(big.sum(1), torch.ones(4, dtype=torch.float64))
    again = rwr_monte_carlo(g, seeds, p, num_walks=2000, estimator=estimator,
                            generator=torch.Generator().manual_seed(seed))
    assert torch.equal(small, again)


def test_rwr_monte_carlo_options(rng):
    g = random_digraph(rng, 40)
    w = rwr_monte_carlo(g, [1, 2], 1.0, num_walks=50)
    eye = torch.zeros(2, 40, dtype=torch.float64)
    eye[0, 1] = eye[1, 2] = 1
    assert torch.equal(w, eye)
    # max_steps=0: walks never leave the seed
    assert torch.equal(rwr_monte_carlo(g, [1, 2], 0.2, num_walks=30, max_steps=0, estimator="terminal"), eye)
    with pytest.raises(ValueError, match="num_walks"):
        rwr_monte_carlo(g, [0], 0.2, num_walks=0)
    with pytest.raises(ValueError, match="estimator"):
        rwr_monte_carlo(g, [0], 0.2, num_walks=5, estimator="mean")
    with pytest.raises(ValueError, match="max_steps"):
        rwr_monte_carlo(g, [0], 0.2, num_walks=5, max_steps=-1)


# ------------------------------------------------------------------ GPU paths (compared with the CPU result)
@pytest.mark.gpu
def test_rwr_torch_cuda_matches_cpu(rng):
    g = random_digraph(rng, 300, avg_deg=5, zero_weight_rows=3)
    seeds = rng.integers(0, 300, 8).tolist()
    p, eps = 0.2, 1e-5
    cpu = rwr(g, seeds, p, backend="torch", tol=1e-12)
    gpu, info = rwr(g.to("cuda"), seeds, p, backend="torch", tol=1e-12, return_info=True)
    assert gpu.device.type == "cuda" and info.backend == "torch"
    assert (gpu.cpu() - cpu).abs().sum(1).max() < 1e-9
    # rwr_truncated on CUDA (vectorised torch engine) and on CPU (default: the compiled FIFO engine) push in
    # different orders, so they differ (by up to ~1e-5 here), by design. Each is below the exact vector by
    # exactly its reported error (<= eps N), so the two are within the sum of their errors of each other.
    exact = rwr(g, seeds, p, tol=1e-13)
    runs = {"cuda": rwr_truncated(g.to("cuda"), seeds, p, eps=eps, return_info=True),
            "cpu": rwr_truncated(g, seeds, p, eps=eps, return_info=True),
            "cpu-torch": rwr_truncated(g, seeds, p, eps=eps, engine="torch", return_info=True)}
    assert runs["cuda"][0].device.type == "cuda" and runs["cuda"][1].backend == "torch-push"
    dense, err = {}, {}
    for name, (T, tinfo) in runs.items():
        dense[name], err[name] = T.to_dense().cpu(), tinfo.error.cpu()
        diff = exact - dense[name]
        assert diff.min() >= -1e-12 and tinfo.converged
        assert torch.allclose(diff.sum(1), err[name], atol=1e-10, rtol=0)
        assert (err[name] <= eps * g.num_nodes).all()
    for other in ("cpu", "cpu-torch"):
        assert ((dense["cuda"] - dense[other]).abs().sum(1) <= err["cuda"] + err[other] + 1e-10).all()
    mc_cpu = rwr_monte_carlo(g, seeds, p, num_walks=500, generator=torch.Generator().manual_seed(1))
    mc_gpu = rwr_monte_carlo(g.to("cuda"), seeds, p, num_walks=500, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(mc_gpu.cpu(), mc_cpu, atol=1e-12)  # same uniforms, same running sum: same walks


@pytest.mark.gpu
@pytest.mark.skipif(not backend.WITH_CUPY, reason="needs CuPy")
def test_rwr_cupy_matches_cpu(rng):
    g = random_digraph(rng, 300, avg_deg=5)
    seeds = rng.integers(0, 300, 8).tolist()
    cpu = rwr(g, seeds, 0.2, backend="scipy", tol=1e-12)
    gpu, info = rwr(g.to("cuda"), seeds, 0.2, tol=1e-12, return_info=True)
    assert info.backend == "cupy" and gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().sum(1).max() < 1e-9
    for dtype in (torch.float32, torch.float64):
        r, info = rwr(g, seeds, 0.2, backend="cupy", dtype=dtype, return_info=True)
        assert r.device.type == "cpu" and r.dtype == dtype and info.converged
        # the contraction bound at the default tol, plus float32 rounding of the result
        assert (r.double() - cpu).abs().sum(1).max() <= info.residual * 0.8 / 0.2 + 2e-6
