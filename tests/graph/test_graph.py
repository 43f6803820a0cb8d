"""ProximityGraph: construction, conversions (round trips), structure ops, save/load, bad input.

References are independent: dense numpy matrices accumulated edge by edge, scipy and networkx.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphbatch import ProximityGraph, backend


def random_coo(rng, n=None, density=0.15, dup=True):
    n = int(rng.integers(2, 40)) if n is None else n
    m = int(rng.integers(1, max(2, int(density * n * n))))
    row = rng.integers(0, n, m)
    col = rng.integers(0, n, m)
    if dup and m > 2:  # force some duplicate edges
        row[-1], col[-1] = row[0], col[0]
    val = rng.random(m) + 0.1
    return n, row, col, val


def dense_reference(n, row, col, val):
    a = np.zeros((n, n))
    for r, c, v in zip(row, col, val):
        a[r, c] += v  # duplicates summed
    return a


def test_from_coo_matches_dense_reference(rng):
    for _ in range(5):
        n, row, col, val = random_coo(rng)
        g = ProximityGraph.from_coo(row, col, val, n)
        np.testing.assert_allclose(g.to_dense().numpy(), dense_reference(n, row, col, val), rtol=1e-12)
        # canonical: sorted unique columns per row, row pointers consistent
        crow, colt = g.crow.numpy(), g.col.numpy()
        for i in range(n):
            seg = colt[crow[i]:crow[i + 1]]
            assert np.all(np.diff(seg) > 0)
        assert g.nnz == np.count_nonzero(dense_reference(n, row, col, np.ones_like(val)))


def test_from_neighbors_table(rng):
    n, k = int(rng.integers(5, 30)), 4
    idx = np.stack([rng.choice(n, k, replace=False) for _ in range(n)])
    idx[0, -1] = -1  # empty slot
    scores = rng.random((n, k)).astype(np.float32)
    g = ProximityGraph.from_neighbors(torch.from_numpy(idx), torch.from_numpy(scores))
    ref = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        for j in range(k):
            if idx[i, j] >= 0:
                ref[i, idx[i, j]] += scores[i, j]
    np.testing.assert_allclose(g.to_dense().numpy(), ref)
    assert g.out_degree().tolist() == [k - 1] + [k] * (n - 1)
    assert g.dtype == torch.float32


def test_round_trips(rng, tmp_path):
    n, row, col, val = random_coo(rng, n=25)
    g = ProximityGraph.from_coo(row, col, val, n)
    # scipy
    s = g.to_scipy()
    assert isinstance(s, sp.csr_matrix)
    np.testing.assert_allclose(s.toarray(), g.to_dense().numpy())
    assert ProximityGraph.from_scipy(s).equal(g)
    assert ProximityGraph.from_scipy(sp.coo_matrix(s)).equal(g)
    # edge_index
    ei, w = g.to_edge_index()
    assert ei.shape == (2, g.nnz)
    assert ProximityGraph.from_edge_index(ei, w, num_nodes=n).equal(g)
    # torch sparse CSR and COO, dense
    assert ProximityGraph.from_torch(g.to_torch()).equal(g)
    assert ProximityGraph.from_torch(g.to_torch_coo()).equal(g)
    assert ProximityGraph.from_torch(g.to_dense()).equal(g)
    # networkx
    G = g.to_networkx()
    assert G.number_of_nodes() == n and G.number_of_edges() == g.nnz
    for u, v, d in G.edges(data=True):
        assert d["weight"] == pytest.approx(float(s[u, v]))
    assert ProximityGraph.from_networkx(G).equal(g, atol=1e-12)
    # save / load
    path = tmp_path / "g.pt"
    g.save(path)
    assert ProximityGraph.load(path).equal(g)


def test_networkx_undirected_and_labels():
    G = nx.karate_club_graph()
    g = ProximityGraph.from_networkx(G, weight=None)
    assert g.nnz == 2 * G.number_of_edges()
    np.testing.assert_array_equal(g.to_dense().numpy(), nx.to_numpy_array(G, weight=None, nodelist=sorted(G)))
    H = nx.relabel_nodes(nx.path_graph(3), {0: "a", 1: "b", 2: "c"})
    h = ProximityGraph.from_networkx(H)
    assert h.num_nodes == 3 and h.nnz == 4


def test_structure_ops_against_dense(rng):
    n, row, col, val = random_coo(rng, n=30)
    g = ProximityGraph.from_coo(row, col, val, n)
    a = dense_reference(n, row, col, val)
    np.testing.assert_array_equal(g.out_degree().numpy(), (a != 0).sum(1))
    np.testing.assert_array_equal(g.in_degree().numpy(), (a != 0).sum(0))
    np.testing.assert_allclose(g.out_degree(weighted=True).numpy(), a.sum(1))
    np.testing.assert_allclose(g.in_degree(weighted=True).numpy(), a.sum(0))
    np.testing.assert_allclose(g.transpose().to_dense().numpy(), a.T)
    # symmetrize with each reduction, edge by edge
    for reduce in ("max", "min", "sum", "mean"):
        ref = np.zeros_like(a)
        for i in range(n):
            for j in range(n):
                pair = [x for x in (a[i, j], a[j, i]) if x != 0]
                if i == j and a[i, i] != 0:
                    pair = [a[i, i], a[i, i]]
                if pair:
                    ref[i, j] = {"max": max, "min": min, "sum": sum, "mean": np.mean}[reduce](pair)
        np.testing.assert_allclose(g.symmetrize(reduce).to_dense().numpy(), ref, err_msg=reduce)
    # transition matrix: rows with edges sum to 1, dangling rows zero
    p = g.transition_matrix().to_dense().numpy()
    sums = a.sum(1)
    np.testing.assert_allclose(p[sums > 0], a[sums > 0] / sums[sums > 0, None])
    assert np.all(p[sums == 0] == 0)
    pu = g.transition_matrix(weighted=False).to_dense().numpy()
    deg = (a != 0).sum(1)
    np.testing.assert_allclose(pu[deg > 0], (a[deg > 0] != 0) / deg[deg > 0, None])
    # self loops
    np.testing.assert_allclose(g.remove_self_loops().to_dense().numpy(), a - np.diag(np.diag(a)))


def test_subgraph(rng):
    n, row, col, val = random_coo(rng, n=20)
    g = ProximityGraph.from_coo(row, col, val, n)
    nodes = rng.choice(n, 7, replace=False)
    sub = g.subgraph(nodes)
    a = dense_reference(n, row, col, val)
    np.testing.assert_allclose(sub.to_dense().numpy(), a[np.ix_(nodes, nodes)])
    with pytest.raises(ValueError, match="nodes"):
        g.subgraph([0, 0])
    with pytest.raises(ValueError, match="nodes"):
        g.subgraph([n])


def test_to_device_and_dtype():
    g = ProximityGraph.from_neighbors(torch.tensor([[1], [0]]))
    assert g.to("cpu") is g
    h = g.to(dtype=torch.float64)
    assert h.dtype == torch.float64 and h.equal(g)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="index"):
        ProximityGraph.from_neighbors(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="index"):
        ProximityGraph.from_neighbors(torch.tensor([[1], [5]]))
    with pytest.raises(TypeError, match="index"):
        ProximityGraph.from_neighbors(torch.tensor([[1.0], [0.0]]))
    with pytest.raises(ValueError, match="scores"):
        ProximityGraph.from_neighbors(torch.tensor([[1], [0]]), torch.ones(2, 2))
    with pytest.raises(ValueError, match="scores"):
        ProximityGraph.from_neighbors(torch.tensor([[1], [0]]), torch.tensor([[float("nan")], [1.0]]))
    with pytest.raises(ValueError, match="edge_index"):
        ProximityGraph.from_edge_index(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="edge_weight"):
        ProximityGraph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), torch.ones(3))
    with pytest.raises(ValueError, match="row"):
        ProximityGraph.from_coo([0, -1], [1, 0], num_nodes=2)
    with pytest.raises(ValueError, match="col"):
        ProximityGraph.from_coo([0, 1], [1, 2], num_nodes=2)
    with pytest.raises(ValueError, match="same length"):
        ProximityGraph.from_coo([0, 1], [1], num_nodes=2)
    with pytest.raises(ValueError, match="crow"):
        ProximityGraph(torch.tensor([0, 2, 1]), torch.tensor([1, 0]), num_nodes=2)
    with pytest.raises(ValueError, match="col"):
        ProximityGraph(torch.tensor([0, 2, 2]), torch.tensor([1, 1]), num_nodes=2)  # duplicate in row
    with pytest.raises(TypeError, match="m must be a scipy"):
        ProximityGraph.from_scipy(np.eye(3))
    with pytest.raises(ValueError, match="square"):
        ProximityGraph.from_scipy(sp.csr_matrix(np.ones((2, 3))))
    with pytest.raises(TypeError, match="tensor"):
        ProximityGraph.from_torch(np.eye(2))
    with pytest.raises(TypeError, match="networkx"):
        ProximityGraph.from_networkx("not a graph")
    neg = ProximityGraph.from_coo([0, 1], [1, 0], [-0.5, 1.0], 2)
    with pytest.raises(ValueError, match="negative"):
        neg.transition_matrix()
    assert neg.transition_matrix(weighted=False).values.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="reduce"):
        neg.symmetrize("avg")
    bad = tmp_path / "x.pt"
    torch.save({"format": "other"}, bad)
    with pytest.raises(ValueError, match="not a saved ProximityGraph"):
        ProximityGraph.load(bad)


@pytest.mark.skipif(backend.WITH_TORCH_SPARSE, reason="torch_sparse is installed: the missing-package path cannot run")
def test_missing_torch_sparse_names_package():
    g = ProximityGraph.from_neighbors(torch.tensor([[1], [0]]))
    with pytest.raises(backend.MissingDependencyError, match="torch-sparse"):
        g.to_torch_sparse()


def test_torch_sparse_round_trip(rng):
    pytest.importorskip("torch_sparse", reason="torch-sparse is optional and not installed")
    n, row, col, val = random_coo(rng, n=20)
    g = ProximityGraph.from_coo(row, col, val, n)
    assert ProximityGraph.from_torch_sparse(g.to_torch_sparse()).equal(g)


@pytest.mark.gpu
def test_cuda_and_cupy_round_trip(rng):
    n, row, col, val = random_coo(rng, n=50)
    g = ProximityGraph.from_coo(row, col, val, n)
    gc = g.to("cuda")
    assert gc.device.type == "cuda" and gc.equal(g)
    assert ProximityGraph.from_torch(gc.to_torch()).equal(g)
    if backend.WITH_CUPY:
        m = gc.to_cupy()
        np.testing.assert_allclose(m.toarray().get(), g.to_dense().numpy(), rtol=1e-6)
        back = ProximityGraph.from_cupy(m)
        assert back.device.type == "cuda" and back.equal(g, atol=1e-7)
