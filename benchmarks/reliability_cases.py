"""Fault and adversarial cases of issue 12, through the public API only, with the outcome of each.

    python benchmarks/reliability_cases.py [--label NAME] [--json PATH]

Runs every case on whichever ``graphbatch`` is imported (``PYTHONPATH=<other checkout>`` runs an
earlier version), prints a table (case, outcome, ``ok``) and writes JSON
(``benchmarks/out/reliability_cases.json``). A case is ``ok`` when the library does the right
thing: same results run after run, a clear error naming the problem, the user's files left alone.
The multi-process cases (a refresh failing on one rank, two-view updates on 3 ranks) and the
mid-install MemoryError need internals or several processes: they live in the test suite
(``tests/samplers/test_distributed.py``, ``tests/samplers/test_reliability.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

import graphbatch as gb

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:90]}"


@case
def duplicate_updates():
    """1. update(cat[idx, idx], cat[z1, z2]) five times: one bank?"""
    n, d = 20000, 64
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(n, generator=g)[:8192]
    z1, z2 = torch.randn(8192, d, generator=g), torch.randn(8192, d, generator=g)
    banks = []
    for _ in range(5):
        s = gb.RWRBatchSampler(n, 256, k=4, candidates=20)
        s.update(torch.cat([idx, idx]), torch.cat([z1, z2]))
        banks.append(s.state_dict()["bank"][idx].clone())
    distinct = len({b.numpy().tobytes() for b in banks})
    mean = torch.allclose(banks[0], (z1 + z2) / 2)
    return f"{distinct} distinct bank(s) in 5 runs; rows = mean of the views: {mean}", distinct == 1


@case
def bandwidth_weights():
    """3. BandwidthBatchSampler(threshold=...) leaves the graph's weights alone?"""
    emb = torch.randn(300, 8, generator=torch.Generator().manual_seed(1))
    ref = gb.build_proximity_graph(emb, 5, candidates=None)
    s = gb.BandwidthBatchSampler(300, 20, k=5, candidates=None, embeddings=emb, threshold=0.2)
    list(s)
    same = torch.allclose(s.graph.values, ref.values)
    return f"graph weights {'unchanged' if same else 'overwritten'} (unique {s.graph.values.unique().numel()})", same


@case
def scipy_export_aliasing():
    """3. Writing into to_scipy()'s arrays changes the graph?"""
    g = gb.build_proximity_graph(torch.randn(50, 4), 3, candidates=None)
    before = g.values.clone()
    m = g.to_scipy()
    try:
        m.data[:] = 7.0
    except ValueError as e:
        return f"refused: {_err(e)}", True
    changed = not torch.equal(g.values, before)
    return f"graph {'changed' if changed else 'unchanged'} through the export", not changed


@case
def cli_foreign_files():
    """4. --out on a folder with report.json and a user file: the user file survives?"""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        (out / "report.json").write_text("{}")
        (out / "my_notes.txt").write_text("precious")
        np.save(Path(tmp) / "e.npy", np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32))
        r = subprocess.run([sys.executable, "-m", "graphbatch", "analyze", "--embeddings", str(Path(tmp) / "e.npy"),
                            "--out", str(out), "--batch-size", "16", "--k", "4", "--candidates", "20",
                            "--no-plots", "--quiet"], capture_output=True, text=True, timeout=300)
        kept = (out / "my_notes.txt").exists()
        said = r.stderr.strip().splitlines()[-1][:90] if r.returncode else "exit 0"
        return f"user file {'kept' if kept else 'DELETED'} ({said})", kept


@case
def resume_with_guard():
    """5. Resume mid-epoch with max_similarity after later updates: same batches (this epoch and the next)?"""
    n = 200
    emb = torch.randn(n, 8, generator=torch.Generator().manual_seed(2))

    def make():
        return gb.RWRBatchSampler(n, 20, k=5, candidates=40, embeddings=emb, seed=3, max_similarity=0.3,
                                  refresh_every=1000, warmup_epochs=0)

    a = make()
    it = iter(a)
    first = [next(it) for _ in range(3)]
    a.update(torch.arange(n), torch.randn(n, 8, generator=torch.Generator().manual_seed(9)))  # not yet refreshed
    state = a.state_dict()
    rest = [list(b) for b in it]
    a.set_epoch(1)
    rest += [list(x) for x in a]  # planned with the guard as of the last refresh
    b = make()
    b.load_state_dict(state)
    resumed = [list(x) for x in b]
    b.set_epoch(1)
    resumed += [list(x) for x in b]
    ok = resumed == rest and len(first) == 3
    return f"remaining batches {'equal' if ok else 'differ'} ({len(rest)} batches)", ok


def _corrupt(key_fn, what):
    s = gb.RWRBatchSampler(100, 10, k=4, candidates=20, embeddings=torch.randn(100, 8), seed=1)
    it = iter(s)
    next(it)
    state = s.state_dict()
    key_fn(state)
    t = gb.RWRBatchSampler(100, 10, k=4, candidates=20, embeddings=torch.randn(100, 8), seed=1)
    before = t.state_dict()
    try:
        t.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 -- any clear refusal counts
        unchanged = all(torch.equal(torch.as_tensor(before[k]), torch.as_tensor(t.state_dict()[k]))
                        for k in ("epoch", "yielded", "step"))
        return f"{what}: {_err(e)}; state {'unchanged' if unchanged else 'half-written'}", unchanged
    return f"{what}: accepted", False


@case
def state_bad_plan():
    """6. A plan that is not a permutation of range(N)."""
    def shift(st):
        st["plan"] = (torch.as_tensor(st["plan"]) + 1) % 101
    return _corrupt(shift, "plan ids shifted")


@case
def state_bad_bank():
    """6. A bank of the wrong shape (99 rows for N = 100)."""
    def wrong(st):
        st["bank"] = st["bank"][:99].contiguous()
    return _corrupt(wrong, "bank of 99 rows for N = 100")


@case
def state_other_k():
    """6. A state from a sampler with another k."""
    s = gb.RWRBatchSampler(100, 10, k=6, candidates=20, embeddings=torch.randn(100, 8), seed=1)
    state = s.state_dict()
    t = gb.RWRBatchSampler(100, 10, k=4, candidates=20, embeddings=torch.randn(100, 8), seed=1)
    try:
        t.load_state_dict(state)
    except Exception as e:  # noqa: BLE001
        return f"k=6 state into k=4: {_err(e)}", "k" in str(e)
    return "k=6 state into k=4: accepted", False


@case
def failed_plan_replays():
    """7. A schedule valid at epoch 0 and NaN at epoch 1: the retry of epoch 1 repeats epoch 0?"""
    emb = torch.randn(100, 8, generator=torch.Generator().manual_seed(4))
    s = gb.RWRBatchSampler(100, 10, k=4, candidates=20, embeddings=emb, seed=0,
                           restart_prob=lambda epoch, *a, **k: 0.3 if epoch == 0 else float("nan"))
    s.set_epoch(0)
    e0 = [list(b) for b in s]
    s.set_epoch(1)
    outcomes = []
    for _ in range(2):
        try:
            got = [list(b) for b in s]
            outcomes.append("replayed epoch 0" if got == e0 else "ran")
        except Exception as e:  # noqa: BLE001
            outcomes.append(type(e).__name__)
    return "first try: " + outcomes[0] + "; second try: " + outcomes[1], "replayed epoch 0" not in outcomes


@case
def concurrent_saves():
    """9. 8 threads saving one path 50 times each while a reader loads it."""
    g = gb.build_proximity_graph(torch.randn(2000, 8), 10, candidates=None)
    errors, corrupt = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "g.pt")
        g.save(path)
        stop = threading.Event()

        def writer():
            for _ in range(50):
                try:
                    g.save(path)
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

        def reader():
            while not stop.is_set():
                try:
                    h = gb.ProximityGraph.load(path)
                    if not torch.equal(h.col, g.col):
                        corrupt.append(1)
                except Exception:  # noqa: BLE001
                    corrupt.append(1)

        threads = [threading.Thread(target=writer) for _ in range(8)]
        rd = threading.Thread(target=reader)
        rd.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        rd.join()
        left = [f for f in os.listdir(tmp) if f != "g.pt"]
    ok = not errors and not corrupt and not left
    return f"{len(errors)}/400 saves failed, {len(corrupt)} bad reads, {len(left)} temp files left", ok


@case
def load_truncated():
    """11. ProximityGraph.load on an empty / truncated file."""
    g = gb.build_proximity_graph(torch.randn(100, 4), 3, candidates=None)
    out = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "g.pt")
        g.save(p)
        data = open(p, "rb").read()
        for name, content in (("empty", b""), ("truncated", data[: len(data) // 2])):
            open(p, "wb").write(content)
            try:
                gb.ProximityGraph.load(p)
                out.append(f"{name}: loaded")
                ok = False
            except Exception as e:  # noqa: BLE001
                out.append(f"{name}: {type(e).__name__}")
                ok &= isinstance(e, ValueError)
    return "; ".join(out), ok


@case
def huge_values():
    """11. Finite values too large for float32: called NaN?"""
    x = np.random.default_rng(0).normal(size=(50, 4)) * 1e300
    try:
        gb.build_proximity_graph(x, 3, candidates=None)
    except Exception as e:  # noqa: BLE001
        return _err(e), "NaN" not in str(e)
    return "accepted", False


@case
def candidates_message():
    """11. CLI --k 10 --candidates 20 --batch-size 64: runs, or names the user's own arguments?"""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "e.npy", np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32))
        r = subprocess.run([sys.executable, "-m", "graphbatch", "analyze", "--embeddings", str(Path(tmp) / "e.npy"),
                            "--out", str(Path(tmp) / "out"), "--batch-size", "64", "--k", "10",
                            "--candidates", "20", "--no-plots", "--quiet"], capture_output=True, text=True,
                           timeout=300)
    if r.returncode == 0:
        return "ran (exit 0)", True
    last = r.stderr.strip().splitlines()[-1][:110]
    return f"exit {r.returncode}: {last}", "k=63" not in last


@case
def empty_col_list():
    """11. ProximityGraph(crow, []) for a graph without edges."""
    try:
        g = gb.ProximityGraph(torch.zeros(4, dtype=torch.int64), [])
        return f"ok: {g.num_nodes} nodes, {g.nnz} edges", True
    except Exception as e:  # noqa: BLE001
        return _err(e), False


@case
def string_labels():
    """11. String group ids: is the argument named?"""
    try:
        gb.RWRBatchSampler(4, 2, k=2, candidates=3, groups=["a", "b", "a", "c"])
    except Exception as e:  # noqa: BLE001
        return _err(e), "groups" in str(e)
    return "accepted", False


@case
def drop_last_zero_batches():
    """11. drop_last with fewer batches than ranks: warned?"""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = gb.RandomBatchSampler(30, 10, drop_last=True, num_replicas=4, rank=0)
    said = any("0 batches" in str(x.message) for x in w)
    return f"{len(s)} batches per rank, {'warned' if said else 'silent'}", said


@case
def bf16_first_update():
    """11. A bf16 first update: later float32 rows truncated to bf16?"""
    s = gb.RWRBatchSampler(10, 2, k=2, candidates=5)
    s.update(torch.arange(10), torch.randn(10, 4).to(torch.bfloat16))
    z = torch.randn(10, 4, dtype=torch.float64) / 3
    s.update(torch.arange(10), z)
    bank = s.state_dict()["bank"]
    exact = torch.equal(bank.to(torch.float32), z.to(torch.float32))
    return f"bank {bank.dtype}; float32 rows {'kept' if exact else 'truncated'}", exact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="")
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "out" / "reliability_cases.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for fn in CASES:
        try:
            outcome, ok = fn()
        except Exception as e:  # noqa: BLE001 -- an unexpected crash is an outcome too
            outcome, ok = f"crashed: {_err(e)}", False
        rows.append({"case": fn.__name__, "what": fn.__doc__, "outcome": outcome, "ok": bool(ok)})
        print(f"{fn.__name__:24s} {'ok ' if ok else 'BAD'} {outcome}", flush=True)
    print(f"{sum(r['ok'] for r in rows)}/{len(rows)} ok  ({gb.__file__}) {args.label}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"label": args.label, "graphbatch": gb.__file__, "cases": rows}, indent=1))


if __name__ == "__main__":
    main()
