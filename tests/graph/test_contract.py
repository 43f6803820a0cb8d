"""The graph's immutability contract, its files under concurrency and damage, and its messages (issue 12)."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

from graphbatch import ProximityGraph


def small(rng, n=12):
    idx = np.stack([rng.choice(n, 3, replace=False) for _ in range(n)])
    return ProximityGraph.from_neighbors(torch.from_numpy(idx), torch.from_numpy(rng.random((n, 3))))


def test_constructors_copy_the_callers_arrays(rng):
    crow = np.array([0, 1, 2])
    col = np.array([1, 0])
    val = np.array([0.5, 0.25])
    g = ProximityGraph(crow, col, val)
    col[0], val[0] = 0, 9.0
    assert g.col.tolist() == [1, 0] and g.values.tolist() == [0.5, 0.25]
    t = torch.tensor([1.0, 2.0])
    h = ProximityGraph(torch.tensor([0, 1, 2]), torch.tensor([1, 0]), t)
    t.mul_(10)
    assert h.values.tolist() == [1.0, 2.0]


def test_from_scipy_does_not_sort_the_callers_matrix(rng):
    import scipy.sparse as sp

    m = sp.csr_matrix((np.array([1.0, 2.0]), np.array([2, 1]), np.array([0, 2, 2, 2])), shape=(3, 3))
    m.has_sorted_indices = False
    g = ProximityGraph.from_scipy(m)
    assert m.indices.tolist() == [2, 1]  # untouched
    assert g.col.tolist() == [1, 2] and g.values.tolist() == [2.0, 1.0]


def test_to_scipy_is_a_read_only_view_and_copy_is_writable(rng):
    g = small(rng)
    m = g.to_scipy()
    with pytest.raises(ValueError, match="read-only"):
        m.data[:] = 1.0
    c = g.to_scipy(copy=True)
    c.data[:] = 1.0
    assert not torch.equal(g.values, torch.ones_like(g.values))


def test_torch_exports_are_copies(rng):
    g = small(rng)
    before = g.values.clone()
    g.to_torch().values().mul_(0)
    g.to_edge_index()[1].mul_(0)
    g.to_torch_coo().values().mul_(0)
    g.to_dense().mul_(0)
    assert torch.equal(g.values, before)


def test_in_place_changes_through_the_properties_are_detected(rng):
    g = small(rng)
    g.values.mul_(2)  # breaks the contract
    with pytest.raises(RuntimeError, match="modified in place"):
        g.to_scipy()
    h = small(rng)
    h.col[0] = 0
    with pytest.raises(RuntimeError, match="immutable"):
        _ = h.values


def test_empty_column_list_is_an_empty_graph():
    g = ProximityGraph([0, 0, 0], [])
    assert g.num_nodes == 2 and g.nnz == 0 and g.dtype == torch.float32


# ------------------------------------------------------------------ save / load
def test_concurrent_saves_never_corrupt_and_leave_no_temp_files(rng, tmp_path):
    graphs = [small(rng, n) for n in (10, 20, 30, 40)]
    path = tmp_path / "g.pt"
    graphs[0].save(path)
    errors, bad_reads = [], []

    def writer(g):
        for _ in range(25):
            try:
                g.save(path)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    def reader():
        for _ in range(60):
            try:
                h = ProximityGraph.load(path)
                if not any(h.equal(g) for g in graphs):
                    bad_reads.append("a graph that was never saved")
            except Exception as exc:  # noqa: BLE001
                bad_reads.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(g,)) for g in graphs] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and bad_reads == []
    assert sorted(os.listdir(tmp_path)) == ["g.pt"]


def test_a_failed_save_leaves_the_old_file_and_no_temp_file(rng, tmp_path, monkeypatch):
    path = tmp_path / "g.pt"
    old = small(rng)
    old.save(path)

    def broken(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        small(rng, 20).save(path)
    monkeypatch.undo()
    assert ProximityGraph.load(path).equal(old)
    assert sorted(os.listdir(tmp_path)) == ["g.pt"]


@pytest.mark.parametrize("damage, match", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(p.read_bytes()[:40]), "truncated"),
    (lambda p: torch.save({"format": "graphbatch.ProximityGraph", "version": 1, "num_nodes": 3}, p), "missing"),
    (lambda p: torch.save({"a": 1}, p), "not a saved ProximityGraph"),
    (lambda p: p.write_text("hello"), "not a readable saved ProximityGraph"),
])
def test_load_names_what_is_wrong(rng, tmp_path, damage, match):
    path = tmp_path / "g.pt"
    small(rng).save(path)
    damage(path)
    with pytest.raises(ValueError, match=match):
        ProximityGraph.load(path)
    with pytest.raises(FileNotFoundError, match="no saved ProximityGraph"):
        ProximityGraph.load(tmp_path / "nope.pt")
