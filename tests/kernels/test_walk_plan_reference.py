"""The compiled walk planner against a plain-Python reference written from the documented rules.

The reference is a direct, unoptimised transcription of the rules in the
:mod:`graphbatch.kernels.compiled` docstring and ``docs/concepts.md`` (one xorshift64* draw per step: low 32 bits
decide the restart, high 32 bits pick the out-neighbour; a node goes to the first
walker that reaches it; after ``stall_steps`` steps without a new node the walker
jumps near its node, then near its seed, else to the next unused node of the
shuffled order). It shares only the random stream's definition with the kernel, so
on the same inputs both must produce the same plan and the same counters. The
kernel's software pipelining, branch-free claims, regular-row shortcut and
wrap-free row scans are what this checks.
"""
from __future__ import annotations

import numpy as np
import pytest

from graphbatch.kernels import load
from graphbatch.kernels.slots import COUNTERS, HOPS2, NEAR_JUMPS, RANDOM_JUMPS, STEPS

MASK = (1 << 64) - 1


class XorShift:
    """xorshift64* on Python ints (the sampler's documented stream)."""

    def __init__(self, state: int) -> None:
        self.state = state

    def draw(self) -> int:
        x = self.state
        x ^= x >> 12
        x ^= (x << 25) & MASK
        x ^= x >> 27
        self.state = x
        return (x * 2685821657736338717) & MASK

    def randint(self, n: int) -> int:
        return ((self.draw() >> 32) * n) >> 32


def reference_plan(crow, col, used, perm, n_plan, batch, p_thr, stall_steps, state, walkers, hops2):
    """Plain-Python walk planner: returns (out, steps, near_jumps, random_jumps)."""
    crow = [int(v) for v in crow]
    col = [int(v) for v in col]
    perm = [int(v) for v in perm]
    used = [bool(v) for v in used]
    n = len(crow) - 1
    out = [-1] * n_plan
    rng = XorShift(state)
    ptr = 0
    steps = near_jumps = random_jumps = 0

    def next_unused():
        nonlocal ptr
        while ptr < n and used[perm[ptr]]:
            ptr += 1
        return perm[ptr] if ptr < n else -1

    def scan(b, e, off):
        for t in list(range(b + off, b + e)) + list(range(b, b + off)):
            if not used[col[t]]:
                return col[t]
        return -1

    def near(x):
        a, d = crow[x], crow[x + 1] - crow[x]
        if d == 0:
            return -1
        v = scan(a, d, rng.randint(d))
        if v >= 0:
            return v
        for _ in range(min(hops2, d)):
            y = col[a + rng.randint(d)]
            b, e = crow[y], crow[y + 1] - crow[y]
            if e == 0:
                continue
            v = scan(b, e, rng.randint(e))
            if v >= 0:
                return v
        return -1

    nb = -(-n_plan // batch)
    slots: list = [None] * min(walkers, nb)  # None: wants a batch; "done"; or the walker's state
    next_j = 0
    while True:
        for w, s in enumerate(slots):  # finished walkers take the next batch, in batch order
            if s is None or (s != "done" and s["pos"] >= s["end"]):
                if next_j < nb:
                    seed = next_unused()
                    used[seed] = True
                    out[next_j * batch] = seed
                    slots[w] = {"pos": next_j * batch + 1, "end": min((next_j + 1) * batch, n_plan),
                                "root": seed, "cur": seed, "stall": 0}
                    next_j += 1
                else:
                    slots[w] = "done"
        if all(s == "done" for s in slots):
            break
        live = [s for s in slots if s != "done" and s["pos"] < s["end"]]
        steps += len(live)
        for s in live:  # every walker moves ...
            r = rng.draw()
            x = s["root"] if (r & 0xFFFFFFFF) < p_thr else s["cur"]
            d = crow[x + 1] - crow[x]
            s["cur"] = col[crow[x] + (((r >> 32) * d) >> 32)] if d > 0 else s["root"]
        for s in live:  # ... then claims in walker order
            v = s["cur"]
            if not used[v]:
                used[v] = True
                out[s["pos"]] = v
                s["pos"] += 1
                s["stall"] = 0
                continue
            s["stall"] += 1
            if s["stall"] >= stall_steps:
                v = near(v)
                if v < 0 and s["root"] != s["cur"]:
                    v = near(s["root"])
                if v >= 0:
                    near_jumps += 1
                else:
                    v = next_unused()
                    random_jumps += 1
                used[v] = True
                out[s["pos"]] = v
                s["pos"] += 1
                s["root"] = s["cur"] = v
                s["stall"] = 0
    return out, steps, near_jumps, random_jumps


def random_csr(rng, n, regular):
    if regular:
        k = int(rng.integers(1, min(n, 12)))
        deg = np.full(n, k)
    else:
        deg = rng.integers(0, min(n, 12), n)  # dangling nodes included
    crow = np.concatenate([[0], np.cumsum(deg)]).astype(np.int32)
    col = rng.integers(0, n, int(crow[-1])).astype(np.int32)
    return crow, col


def degree_of(crow):
    d = np.diff(crow)
    return int(d[0]) if d.size and d[0] > 0 and bool((d == d[0]).all()) else 0


@pytest.mark.parametrize("trial", range(24))
def test_walk_kernel_equals_reference(trial):
    rng = np.random.default_rng([trial, 7])  # fresh graph, sizes and knobs per trial
    n = int(rng.integers(2, 250))
    crow, col = random_csr(rng, n, regular=bool(trial % 2))
    used = np.zeros(n, dtype=bool)
    if trial % 3 == 0:  # a re-plan: part of the epoch is already handed out
        used[rng.choice(n, int(rng.integers(0, n)), replace=False)] = True
    n_plan = int((~used).sum())
    if n_plan == 0:
        used[0] = False
        n_plan = 1
    batch = int(rng.integers(1, n_plan + 1))
    p = float(rng.choice([0.05, 0.2, 0.5, 1.0]))
    p_thr = min(round(p * 2.0**32), 2**32)
    stall = int(rng.choice([1, 3, 32]))
    walkers = int(rng.choice([1, 2, 5, 8]))
    state = int(rng.integers(1, 2**63 - 1))
    perm = rng.permutation(n).astype(np.int64)

    out = np.empty(n_plan, dtype=np.int64)
    counters = np.zeros(len(COUNTERS), dtype=np.int64)
    order = (perm, np.zeros(1, np.int64), np.array([state], dtype=np.uint64))
    no_guard = (np.zeros(0, np.int64), np.zeros(0, np.int64), 1, np.zeros((0, 1), np.float32), 0.0, 4096)
    load().walk_plan((crow, col, degree_of(crow)), used.copy(), order, out, n_plan, batch, np.uint64(p_thr), stall,
                     no_guard, walkers, counters)
    ref, steps, near_jumps, random_jumps = reference_plan(crow, col, used, perm, n_plan, batch, p_thr, stall, state,
                                                          walkers, HOPS2)
    assert out.tolist() == ref
    assert sorted(ref) == sorted(np.flatnonzero(~used).tolist())  # the plan covers exactly the unused nodes
    assert counters[STEPS] == steps
    assert counters[NEAR_JUMPS] == near_jumps
    assert counters[RANDOM_JUMPS] == random_jumps
