"""Batch samplers that put hard negatives together: random walk with restart on a proximity graph.

:class:`RWRBatchSampler` is a ``torch.utils.data.Sampler[List[int]]`` for
``DataLoader(dataset, batch_sampler=sampler)`` (torch and PyG alike). It
implements BatchSampler (Yang et al., KDD 2023): every ``refresh_every``
batches the instances' current embeddings (fed through :meth:`update`) are
turned into a proximity graph (each node -> its top-``k`` most similar among
``candidates`` random ones), and each mini-batch is the set of distinct nodes a
random walk with restart collects from a random seed.

Guarantees shared by every sampler in this module and :mod:`graphbatch.baselines`
(they all derive from :class:`EpochBatchSampler`):

* **Exact epochs.** An epoch is a *plan*: a permutation of ``range(N)`` cut into
  consecutive batches of ``batch_size`` (the last may be shorter). Every index
  appears exactly once per epoch and never twice in one batch; ``drop_last``
  drops only that one short batch; ``len(sampler)`` is exact.
* **Determinism.** All randomness comes from generators seeded by
  ``(seed, epoch, batches consumed, graph version)``; the same seed and the same
  sequence of :meth:`update` calls give the same batches. :meth:`set_epoch`
  selects the epoch (without it, each new pass over the sampler takes the next
  epoch number; a pass abandoned half-way is continued by the next pass unless
  :meth:`set_epoch` picks another epoch). :meth:`state_dict` /
  :meth:`load_state_dict` resume mid-epoch: the remaining batches equal those of
  an uninterrupted run. The state counts batches *handed out*: a DataLoader that
  prefetches has pulled a few more than the model has consumed.
* **Live refresh.** :meth:`update` writes embeddings into a bank (``N x d``, on
  the embeddings' device). Before handing out a batch whose running count
  (over all epochs, per replica) is a positive multiple of ``refresh_every``, the
  graph is rebuilt from the bank if any row changed since the last build;
  :meth:`refresh` does the same on demand. The rebuild is *incremental* (only the
  changed rows' neighbour lists are recomputed, with
  :func:`graphbatch.build.neighbor_table` ``(rows=...)``, and spliced into the
  previous graph) when at most ``incremental_fraction`` of the rows changed, and
  full otherwise; a full rebuild draws fresh candidate pools (seeded by ``seed``
  and the draw number), an incremental one reuses the current draw. Unchanged
  rows keep their neighbour lists (and scores) from the previous build, even if
  a neighbour's embedding moved: that is the price of the incremental path.
  **When a refresh takes effect mid-epoch:** the batches already handed out stay as they are (distributed: the first
  ``W x`` (batches this rank handed out) batches of the plan); all nodes not yet
  handed out in this epoch are re-planned with the new graph (same batch size, so the epoch
  length and the exact-once guarantee are unchanged). A refresh that fails
  (NaN/inf in the bank, ``RuntimeError`` such as out-of-memory, ``ValueError``)
  keeps the previous graph, counts ``stats["refresh_failures"]``, stores the
  message in ``stats["last_refresh_error"]`` and warns; the changed rows stay
  marked so the next refresh retries.
* **Warm-up.** Without ``embeddings=`` at construction there is no graph at
  first: the first ``warmup_epochs`` epochs are random batches. The first graph
  is built automatically at the start of the first epoch ``>= warmup_epochs``
  (or at a later periodic refresh point) *once every row has been embedded at
  least once* -- a full random warm-up epoch whose batches are all passed to
  :meth:`update` guarantees it; until then batches stay random and
  ``stats["graph_waits"]`` counts the epochs that waited. Whenever a graph exists
  it is used (also when :meth:`refresh` is called during warm-up).
* **Distributed.** With ``num_replicas > 1`` (default: the initialised
  ``torch.distributed`` world) every rank builds the same plan (same seed; the
  bank is identical on all ranks because :meth:`update` all-gathers, and the
  graph build is deterministic for a given bank and seed) and rank
  ``r`` takes the batches ``r, r + W, r + 2W, ...`` of it. Every rank gets the
  same number of batches (unequal lengths hang DDP): with ``drop_last=False``
  the ranks that would come up short are *padded* by wrapping around to the
  first batches of the epoch (so a few batches are seen twice); with
  ``drop_last=True`` the short tail batch and then the last ``nb % W`` batches are
  dropped. A periodic refresh happens at the same per-rank batch count on every
  rank; call :meth:`refresh` yourself on all ranks at the same point, or not at
  all.

Batch forming (:class:`RWRBatchSampler`, ``mode="walk"``, the paper's): a walker
starts at a random unused seed; each step it restarts at the seed with
probability ``p`` = ``restart_prob`` and otherwise moves to a uniformly chosen
out-neighbour; every node it reaches that is not yet used in this epoch joins
the batch, until the batch has ``batch_size`` nodes. **Stall fallback:** after
``stall_steps`` consecutive steps without a new node (the neighbourhood is used
up, or the walker sits on a dangling node) the walker jumps to an unused node
near where it is -- an unused out-neighbour of its current node or of a few of
that node's neighbours (2 hops), else the same around the seed -- counted in
``stats["near_jumps"]``; if none exists, to a random unused node
(``stats["random_jumps"]``). The node jumped to becomes the new restart point.
``mode="ppr"`` scores nodes by personalized PageRank from the seed (forward
push with uniform transitions: a compiled per-seed push on CPU, or
:func:`graphbatch.walk.rwr_truncated` for many seeds per call, the default for a
graph on CUDA) and takes the top-scoring unused nodes (``ppr_sample=True``:
samples without replacement with probability proportional to the score), with
the same fallbacks when the score's support runs out. There
``stats["walk_steps"]`` counts pushes.

Planning is a compiled (numba) sweep over the whole epoch on CPU arrays (the
graph's CSR is copied to the host once per refresh, as int32 when it fits,
wherever the graph lives). ``walkers`` (default 8) batches are built at once,
one step each in turn, so the cache misses of independent walks overlap; a node
goes to whichever walk reaches it first. A restart and the following move out of
the seed count as one step (the seed is already in the batch, so skipping its
visits leaves the collected nodes distributed as in the plain walk).
Cost bound: each step is one xorshift draw, one random column load (plus a row-pointer
load before it when rows differ in length; a top-k graph has rows of exactly ``k``, so the
row start is computed) and one ``used`` lookup; the steps per node are
``stats["walk_steps"] / N`` (about 4-6 on clustered kNN graphs with ``B >> K``),
a stall adds at most ``stall_steps`` steps plus a scan of ``5 * max_degree``
entries, once per node added by a jump, and finding random unused nodes walks a
shuffled order once per plan (``O(N)`` in total). Memory: the int32 CSR plus
``O(N)`` bytes of plan state.

False-negative guard: ``labels=`` (group ids, ``-1`` = none) never puts two nodes
with the same label into one batch; ``max_similarity=`` never puts two nodes
whose embedding similarity (cosine, or inner product for ``metric="ip"``) exceeds
it together (applies once a graph exists, i.e. the whole bank is known). A
node that would break the constraint is skipped and stays unused for a later
batch (``stats["guard_deferrals"]``). A batch that must still be filled takes a
compliant random unused node from a bounded scan; only when none exists is a
violating node placed (``stats["guard_violations"]``), so the epoch stays exact.
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import Sampler

from . import backend
from ._validation import as_index_tensor, check_int, check_probability
from .graph import ProximityGraph

__all__ = ["EpochBatchSampler", "GraphSamplerBase", "RWRBatchSampler", "linear_decay"]

_STATE_VERSION = 1
RestartProb = Union[float, Callable[[int], float]]

# a stalled walk looks for an unused node among its out-neighbours, then among those of
# this many of them (2 hops); each look costs up to (1 + _HOPS2) * max_degree lookups
_HOPS2 = 4
# counters filled by the compiled kernels, by index: counters[0] steps, [1] near jumps, ...
_COUNTER_NAMES = ("walk_steps", "near_jumps", "random_jumps", "guard_deferrals", "guard_violations",
                  "skipped_seeds")


# ============================================================================ schedules
class linear_decay:  # noqa: N801 - used like a function
    """Restart-probability schedule: linear from ``start`` (epoch 0) to ``end`` (epoch ``epochs``), then flat.

    The paper decays the restart probability towards 0.05 as training goes, so
    walks reach further once the embeddings are good.

    Args:
        start: value at epoch 0, in (0, 1].
        end: value from epoch ``epochs`` on, in (0, 1].
        epochs: number of epochs the decay takes (>= 1).

    Example:
        >>> sched = linear_decay(0.2, 0.05, 3)
        >>> [round(sched(e), 3) for e in range(5)]
        [0.2, 0.15, 0.1, 0.05, 0.05]
    """

    def __init__(self, start: float, end: float, epochs: int) -> None:
        self.start = check_probability("start", start)
        self.end = check_probability("end", end)
        self.epochs = check_int("epochs", epochs, low=1)

    def __call__(self, epoch: int) -> float:
        t = min(max(int(epoch), 0), self.epochs) / self.epochs
        return self.start + (self.end - self.start) * t

    def __repr__(self) -> str:
        return f"linear_decay({self.start}, {self.end}, {self.epochs})"


# ============================================================================ compiled kernels
# Plain Python bodies, compiled with numba on first use (``_kernels``). Helpers are
# rebound to their compiled versions before the kernels that call them compile.
# PRNG: xorshift64* (deterministic across platforms and numba versions).

def _k_rand(state):
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    return x * np.uint64(2685821657736338717)


def _k_randint(state, n):
    # multiply-high: uniform in [0, n) for n < 2**32 without a division
    return np.int64(((_k_rand(state) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


def _k_uniform(state):
    return np.float64(_k_rand(state) >> np.uint64(11)) * 1.1102230246251565e-16


def _k_ok(v, out, bstart, pos, labels, stamp, bid, gemb, max_sim):
    """May node v join the batch out[bstart:pos] (false-negative guard)?"""
    if labels.shape[0] > 0:
        lab = labels[v]
        if lab >= 0 and stamp[lab] == bid:
            return False
    if gemb.shape[0] > 0:
        d = gemb.shape[1]
        for t in range(bstart, pos):
            u = out[t]
            s = 0.0
            for j in range(d):
                s += gemb[v, j] * gemb[u, j]
            if s > max_sim:
                return False
    return True


def _k_add(v, out, pos, used, labels, stamp, bid):
    used[v] = True
    out[pos] = v
    if labels.shape[0] > 0:
        lab = labels[v]
        if lab >= 0:
            stamp[lab] = bid
    return pos + 1


def _k_scan_row(b, e, off, col, used, out, bstart, pos, labels, stamp, bid, gemb, max_sim):
    """First unused, admissible node of the row ``col[b:b + e]`` scanned from ``off`` (wrapping); -1 if none."""
    for t in range(b + off, b + e):
        v = col[t]
        if not used[v] and _k_ok(v, out, bstart, pos, labels, stamp, bid, gemb, max_sim):
            return v
    for t in range(b, b + off):
        v = col[t]
        if not used[v] and _k_ok(v, out, bstart, pos, labels, stamp, bid, gemb, max_sim):
            return v
    return -1


def _k_near(x, crow, col, used, state, out, bstart, pos, labels, stamp, bid, gemb, max_sim, hops2):
    """An unused, admissible node among x's out-neighbours, else among those of up to hops2 of them; -1 if none.

    Each row is scanned from a random offset (wrapping around). The 2-hop rows belong to
    ``min(hops2, deg(x))`` neighbours of ``x`` drawn uniformly (with replacement), scanned in
    the order drawn.
    """
    a = crow[x]
    d = crow[x + 1] - a
    if d == 0:
        return -1
    v = _k_scan_row(a, d, _k_randint(state, d), col, used, out, bstart, pos, labels, stamp, bid, gemb, max_sim)
    if v >= 0:
        return v
    for _h in range(min(hops2, d)):
        y = col[a + _k_randint(state, d)]
        b = crow[y]
        e = crow[y + 1] - b
        if e == 0:
            continue
        v = _k_scan_row(b, e, _k_randint(state, e), col, used, out, bstart, pos, labels, stamp, bid, gemb,
                        max_sim)
        if v >= 0:
            return v
    return -1


def _k_random(perm, ptr, used, out, bstart, pos, labels, stamp, bid, gemb, max_sim, scan_limit):
    """Next unused node of the shuffled order that the guard admits (bounded scan).

    Returns (node, violated): violated is True when no admissible node was found
    within ``scan_limit`` unused candidates and the first unused one is returned.
    """
    p = ptr[0]
    n = perm.shape[0]
    while p < n and used[perm[p]]:
        p += 1
    ptr[0] = p
    if p >= n:
        return -1, False
    q = p
    seen = 0
    while q < n and seen < scan_limit:
        v = perm[q]
        if not used[v]:
            if _k_ok(v, out, bstart, pos, labels, stamp, bid, gemb, max_sim):
                return v, False
            seen += 1
        q += 1
    return perm[p], True


def _k_fill_fallback(last, root, crow, col, used, perm, ptr, state, out, bstart, pos, labels, stamp, bid,
                     gemb, max_sim, hops2, scan_limit, counters):
    """Pick the node a stalled batch continues from: near ``last``, near ``root``, else random."""
    v = _k_near(last, crow, col, used, state, out, bstart, pos, labels, stamp, bid, gemb, max_sim, hops2)
    if v < 0 and root != last:
        v = _k_near(root, crow, col, used, state, out, bstart, pos, labels, stamp, bid, gemb, max_sim, hops2)
    if v >= 0:
        counters[1] += 1
        return v
    v, viol = _k_random(perm, ptr, used, out, bstart, pos, labels, stamp, bid, gemb, max_sim, scan_limit)
    counters[2] += 1
    if viol:
        counters[4] += 1
    return v


def _k_stall_jump(w, cur, wj, wpos, wend, wroot, wcur, wstall, batch, bid0, crow, col, used, perm, ptr, state,
                  out, labels, stamp, gemb, max_sim, hops2, scan_limit, counters):
    """Walker ``w`` stalled at ``cur``: add a fallback node to its batch and restart from it there.

    Returns True when that completed the walker's batch.
    """
    pos = wpos[w]
    bstart = wj[w] * batch
    bid = bid0 + wj[w]
    v = _k_fill_fallback(cur, wroot[w], crow, col, used, perm, ptr, state, out, bstart, pos, labels, stamp, bid,
                         gemb, max_sim, hops2, scan_limit, counters)
    pos = _k_add(v, out, pos, used, labels, stamp, bid)
    wpos[w] = pos
    wroot[w] = v
    wcur[w] = v
    wstall[w] = 0
    return pos >= wend[w]


def _k_walk_plan(crow, col, deg, used, perm, ptr, out, n_plan, batch, bid0, p_thr, stall_steps, state,
                 labels, stamp, gemb, max_sim, hops2, scan_limit, walkers, counters):
    """Plan n_plan unused nodes into batches of ``batch`` by random walks with restart.

    Batch ``j`` fills ``out[j * batch : j * batch + size_j]``. ``walkers`` batches are
    built at once, one walk step each per round: their memory accesses are independent,
    so the CPU overlaps the cache misses of one walker with the others' (a single walk is
    latency-bound: each step's column load depends on the previous one). A node goes to
    whichever walker reaches it first. With a label guard use one walker (the label
    stamps are per batch). ``p_thr`` is the restart probability scaled to ``2**32``
    (restart when the low 32 bits of the step's random draw fall below it). ``deg > 0``
    says every row has exactly ``deg`` entries (a top-k table): the row of node ``x`` then
    starts at ``x * deg`` and the step skips the row-pointer load (same draw, same move).
    """
    nb = (n_plan + batch - 1) // batch
    nw = min(walkers, nb)
    wj = np.full(nw, -2, dtype=np.int64)  # batch of each walker (-2: wants one, -1: done)
    wpos = np.zeros(nw, dtype=np.int64)  # next free slot in out
    wend = np.zeros(nw, dtype=np.int64)
    wroot = np.zeros(nw, dtype=np.int64)
    wcur = np.zeros(nw, dtype=np.int64)
    wstall = np.zeros(nw, dtype=np.int64)
    wedge = np.zeros(nw, dtype=np.int64)
    live = np.zeros(nw, dtype=np.int64)  # walkers with an unfinished batch
    guarded = labels.shape[0] > 0 or gemb.shape[0] > 0
    udeg = np.uint64(max(deg, 0))
    lo32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    next_j = 0
    na = 0
    steps = 0
    refill = True  # some walker finished its batch: hand out the next ones
    while True:
        if refill:
            # hand finished walkers their next batch (in batch order: deterministic)
            refill = False
            for w in range(nw):
                if wj[w] == -2 or (wj[w] >= 0 and wpos[w] >= wend[w]):
                    if next_j < nb:
                        j = next_j
                        next_j += 1
                        bstart = j * batch
                        bid = bid0 + j
                        seed, viol = _k_random(perm, ptr, used, out, bstart, bstart, labels, stamp, bid, gemb,
                                               max_sim, scan_limit)
                        wj[w] = j
                        wend[w] = min(bstart + batch, n_plan)
                        wpos[w] = _k_add(seed, out, bstart, used, labels, stamp, bid)
                        wroot[w] = seed
                        wcur[w] = seed
                        wstall[w] = 0
                    else:
                        wj[w] = -1
            na = 0
            for w in range(nw):
                if wj[w] >= 0:
                    if wpos[w] < wend[w]:
                        live[na] = w
                        na += 1
                    else:
                        refill = True  # its batch was complete at the seed (batch == 1, or the tail)
            if na == 0:
                if refill:
                    continue
                break
        steps += na
        # Software-pipelined step. Phase 1a: every walker draws its move (and, for irregular
        # rows, loads its row pointers); phase 1b: the column loads. Neither has a data-dependent
        # branch and the walkers' loads are independent, so the CPU keeps their misses in flight.
        # One draw per step: the low 32 bits decide the restart, the high 32 bits pick the
        # neighbour. A restart and the move out of the root are one step: visits to the root
        # itself (already in the batch) cannot add a node, so skipping them leaves the
        # sequence of newly collected nodes distributed exactly as in the plain walk.
        x64 = state[0]  # xorshift64* kept in a register for the round (same stream as _k_rand)
        for i in range(na):
            w = live[i]
            x64 ^= x64 >> np.uint64(12)
            x64 ^= x64 << np.uint64(25)
            x64 ^= x64 >> np.uint64(27)
            r = x64 * np.uint64(2685821657736338717)
            x = wroot[w] if (r & lo32) < p_thr else wcur[w]
            if deg > 0:
                wedge[w] = x * deg + np.int64(((r >> s32) * udeg) >> s32)
            else:
                a = np.int64(crow[x])
                d = np.int64(crow[x + 1]) - a
                wedge[w] = a + np.int64(((r >> s32) * np.uint64(d)) >> s32) if d > 0 else -1
        state[0] = x64
        for i in range(na):
            w = live[i]
            e = wedge[w]
            wcur[w] = col[e] if e >= 0 else wroot[w]
        # phase 2: claim the nodes reached (first walker wins), handle stalls
        for i in range(na):
            w = live[i]
            cur = wcur[w]
            if not guarded:
                # branch-free claim: whether ``cur`` is new is close to a coin flip for the branch
                # predictor and only known once the column load returns (measured a few per cent
                # faster than branching on it, within this VM's noise). Writing out[pos] is harmless
                # when cur is not new (pos stays, the slot is overwritten later).
                fresh = np.int64(1) - np.int64(used[cur])
                pos = wpos[w]
                out[pos] = cur
                used[cur] = True
                pos += fresh
                wpos[w] = pos
                wstall[w] = (wstall[w] + 1) * (1 - fresh)
                if pos >= wend[w]:
                    refill = True
                elif wstall[w] >= stall_steps:
                    if _k_stall_jump(w, cur, wj, wpos, wend, wroot, wcur, wstall, batch, bid0, crow, col, used,
                                     perm, ptr, state, out, labels, stamp, gemb, max_sim, hops2, scan_limit,
                                     counters):
                        refill = True
                continue
            if not used[cur]:
                pos = wpos[w]
                bstart = wj[w] * batch
                bid = bid0 + wj[w]
                if not guarded or _k_ok(cur, out, bstart, pos, labels, stamp, bid, gemb, max_sim):
                    pos = _k_add(cur, out, pos, used, labels, stamp, bid)
                    wpos[w] = pos
                    wstall[w] = 0
                    if pos >= wend[w]:
                        refill = True
                    continue
                counters[3] += 1
            wstall[w] += 1
            if wstall[w] >= stall_steps:
                if _k_stall_jump(w, cur, wj, wpos, wend, wroot, wcur, wstall, batch, bid0, crow, col, used, perm,
                                 ptr, state, out, labels, stamp, gemb, max_sim, hops2, scan_limit, counters):
                    refill = True
    counters[0] += steps
    return n_plan


def _k_fill_ranked(s, cand, score, sample, crow, col, used, perm, ptr, state, out, bstart, pos, bend, labels,
                   stamp, bid, gemb, max_sim, hops2, scan_limit, counters):
    """Fill the batch out[bstart:bend] (seed ``s`` already in) with the best unused candidates.

    Candidates are ranked by ``score`` (descending; ties keep the given order), or with
    ``sample`` drawn without replacement proportionally to the score (Efraimidis-Spirakis
    keys ``log(u) / score``). When the candidates run out, near / random fallbacks finish
    the batch. Returns the next free position (``bend``).
    """
    m = cand.shape[0]
    last = s
    if m > 0:
        keys = np.empty(m, dtype=np.float64)
        for t in range(m):
            w = np.float64(score[t])
            if sample:
                if w > 0.0:
                    u = _k_uniform(state)
                    if u <= 0.0:
                        u = 1e-300
                    keys[t] = np.log(u) / w
                else:
                    keys[t] = -np.inf
            else:
                keys[t] = w
        order = np.argsort(-keys, kind="mergesort")
        for t in order:
            if pos >= bend:
                break
            v = cand[t]
            if used[v]:
                continue
            if _k_ok(v, out, bstart, pos, labels, stamp, bid, gemb, max_sim):
                pos = _k_add(v, out, pos, used, labels, stamp, bid)
                last = v
            else:
                counters[3] += 1
    while pos < bend:
        v = _k_fill_fallback(last, s, crow, col, used, perm, ptr, state, out, bstart, pos, labels, stamp,
                             bid, gemb, max_sim, hops2, scan_limit, counters)
        pos = _k_add(v, out, pos, used, labels, stamp, bid)
        last = v
    return pos


def _k_list_plan(seeds, seed_rows, cptr, cidx, cval, sample, crow, col, used, perm, ptr, out, pos0, n_plan,
                 batch, bid0, state, labels, stamp, gemb, max_sim, hops2, scan_limit, counters):
    """Form batches from ranked candidate lists: batch = seed + best unused candidates of its list.

    Seeds already used are skipped. Stops when n_plan nodes are planned or the
    seeds run out (returns (pos, seeds consumed)). A batch whose list runs dry
    continues with near / random fallbacks, so batches are always full.
    """
    pos = pos0
    i = 0
    ns = seeds.shape[0]
    while pos < n_plan and i < ns:
        s = seeds[i]
        r = seed_rows[i]
        i += 1
        if used[s]:
            counters[5] += 1
            continue
        bstart = pos
        bid = bid0 + pos // batch
        bend = min(pos + batch, n_plan)
        pos = _k_add(s, out, pos, used, labels, stamp, bid)
        a = cptr[r]
        e = cptr[r + 1]
        pos = _k_fill_ranked(s, cidx[a:e], cval[a:e], sample, crow, col, used, perm, ptr, state, out, bstart, pos,
                             bend, labels, stamp, bid, gemb, max_sim, hops2, scan_limit, counters)
    return pos, i


def _k_ppr_plan(crow, col, used, perm, ptr, out, n_plan, batch, bid0, p, eps, sample, state, labels, stamp,
                gemb, max_sim, hops2, scan_limit, counters, xs, rs, mark, inq, touched, queue):
    """Batches by personalized PageRank from a random unused seed, computed by forward push per seed.

    Andersen-Chung-Lang push with uniform transitions: a node whose residual exceeds
    ``eps`` moves ``p`` of it into its estimate and spreads the rest evenly over its
    out-neighbours (to the seed when dangling); at most ``1 / (p eps)`` pushes per seed.
    Candidates are the nodes reached, scored by estimate + residual. Scratch arrays
    (``xs``, ``rs``, ``mark``, ``inq``: zero / False; ``touched``, ``queue``: any) have length N
    and are reset after every seed, touching only the nodes reached.
    """
    n = crow.shape[0] - 1
    pos = 0
    pushes = 0
    while pos < n_plan:
        bstart = pos
        bid = bid0 + pos // batch
        bend = min(pos + batch, n_plan)
        s, viol = _k_random(perm, ptr, used, out, bstart, pos, labels, stamp, bid, gemb, max_sim, scan_limit)
        pos = _k_add(s, out, pos, used, labels, stamp, bid)
        nt = 1
        touched[0] = s
        mark[s] = True
        rs[s] = 1.0
        qh = 0
        qt = 1
        queue[0] = s
        inq[s] = True
        while qh < qt:
            u = queue[qh % n]
            qh += 1
            inq[u] = False
            ru = rs[u]
            if ru <= eps:
                continue
            pushes += 1
            xs[u] += p * ru
            rs[u] = 0.0
            a = crow[u]
            d = crow[u + 1] - a
            if d == 0:
                rs[s] += (1.0 - p) * ru
                if rs[s] > eps and not inq[s]:
                    queue[qt % n] = s
                    qt += 1
                    inq[s] = True
                continue
            share = (1.0 - p) * ru / d
            for e in range(a, a + d):
                v = col[e]
                if not mark[v]:
                    mark[v] = True
                    touched[nt] = v
                    nt += 1
                rs[v] += share
                if rs[v] > eps and not inq[v]:
                    queue[qt % n] = v
                    qt += 1
                    inq[v] = True
        cand = touched[:nt].copy()
        score = np.empty(nt, dtype=np.float64)
        for t in range(nt):
            v = cand[t]
            score[t] = xs[v] + rs[v]
            xs[v] = 0.0
            rs[v] = 0.0
            mark[v] = False
        pos = _k_fill_ranked(s, cand, score, sample, crow, col, used, perm, ptr, state, out, bstart, pos, bend,
                             labels, stamp, bid, gemb, max_sim, hops2, scan_limit, counters)
    counters[0] += pushes
    return pos


_HELPERS = ("_k_rand", "_k_randint", "_k_uniform", "_k_ok", "_k_add", "_k_scan_row", "_k_near", "_k_random",
            "_k_fill_fallback", "_k_stall_jump", "_k_fill_ranked")
_KERNELS: dict[str, Any] = {}


def _kernels() -> dict[str, Any]:
    """Compile (once per process; numba's on-disk cache makes later processes cheap) and return the kernels."""
    if not _KERNELS:
        numba = backend.require("numba", "planning batches with compiled random walks")
        g = globals()
        for name in _HELPERS:
            fn = g[name]
            if not hasattr(fn, "py_func"):
                g[name] = numba.njit(cache=True, nogil=True)(fn)
        _KERNELS["walk"] = numba.njit(cache=True, nogil=True)(_k_walk_plan)
        _KERNELS["list"] = numba.njit(cache=True, nogil=True)(_k_list_plan)
        _KERNELS["ppr"] = numba.njit(cache=True, nogil=True)(_k_ppr_plan)
    return _KERNELS


# ============================================================================ helpers
def _world_default(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    dist = torch.distributed
    inited = dist.is_available() and dist.is_initialized()
    if num_replicas is None:
        num_replicas = dist.get_world_size() if inited else 1
    num_replicas = check_int("num_replicas", num_replicas, low=1)
    if rank is None:
        rank = dist.get_rank() if inited else 0
    rank = check_int("rank", rank, low=0, high=num_replicas - 1)
    return num_replicas, rank


def _seed_state(rng: np.random.Generator) -> np.ndarray:
    return np.array([int(rng.integers(1, 2**63 - 1))], dtype=np.uint64)


def _all_gather_rows(idx: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate (indices, rows) from every rank, in rank order (sizes may differ)."""
    dist = torch.distributed
    world = dist.get_world_size()
    dev = emb.device
    n = torch.tensor([idx.numel()], dtype=torch.int64, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_l = [int(s) for s in sizes]
    m = max(sizes_l)
    idx_p = torch.zeros(m, dtype=torch.int64, device=dev)
    idx_p[: idx.numel()] = idx.to(dev)
    emb_p = torch.zeros((m, emb.shape[1]), dtype=emb.dtype, device=dev)
    emb_p[: emb.shape[0]] = emb
    idx_all = [torch.empty_like(idx_p) for _ in range(world)]
    emb_all = [torch.empty_like(emb_p) for _ in range(world)]
    dist.all_gather(idx_all, idx_p)
    dist.all_gather(emb_all, emb_p)
    return (torch.cat([t[:s] for t, s in zip(idx_all, sizes_l)]),
            torch.cat([t[:s] for t, s in zip(emb_all, sizes_l)]))


def _host_copy(buf: np.ndarray | None, t: torch.Tensor, dtype: Any) -> np.ndarray:
    """``t`` as a host array of ``dtype``, written into ``buf`` when it has that shape and dtype.

    A refresh usually yields a graph of the same size (a top-k table has ``N k`` edges),
    so its host copy reuses the previous buffers instead of allocating (and first-touching)
    ``4 (N + 1) + 12 N k`` fresh bytes per refresh.
    """
    src = t.detach().cpu().numpy()
    if buf is not None and buf.shape == src.shape and buf.dtype == np.dtype(dtype):
        np.copyto(buf, src, casting="unsafe")
        return buf
    return src.astype(dtype)


def _check_embedding_rows(name: str, emb: Any) -> torch.Tensor:
    if isinstance(emb, np.ndarray):
        emb = torch.from_numpy(emb)
    if not isinstance(emb, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(emb).__name__}")
    if emb.dim() != 2 or emb.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D (n, d) with d >= 1, got shape {tuple(emb.shape)}")
    if not emb.is_floating_point():
        raise TypeError(f"{name} must be floating point, got dtype {emb.dtype}")
    return emb


# ============================================================================ base class
class EpochBatchSampler(Sampler[list[int]]):
    """Shared epoch machinery: exact epochs, determinism, resume, distributed shares, embedding bank, refresh.

    Subclasses implement :meth:`_plan` (order the unused nodes into batches) and,
    when they learn from embeddings, :meth:`_rebuild` / :meth:`_model_state` /
    :meth:`_load_model_state`. See the module docstring for the guarantees.

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B``, in ``[1, N]``.
        drop_last: drop the last, short batch (and, distributed, the batches that do not split evenly).
        seed: base seed of every generator.
        embeddings: ``(N, d)`` initial embeddings; the model is built at construction and warm-up skipped.
        refresh_every: rebuild the model every this many batches (per replica) when embeddings changed.
        warmup_epochs: epochs of random batches before the model is built automatically.
        num_replicas: number of distributed ranks (default: ``torch.distributed`` world size, else 1).
        rank: this rank (default: ``torch.distributed`` rank, else 0).

    Example:
        >>> from graphbatch.sampler import EpochBatchSampler
        >>> s = EpochBatchSampler(10, 4, seed=0)  # no model: random batches with all the machinery
        >>> s.set_epoch(3); [len(b) for b in s]
        [4, 4, 2]

    Attributes:
        stats: running counters (over the sampler's life, restored by :meth:`load_state_dict`):
            ``epochs``, ``batches`` (handed out by this rank), ``plans`` / ``replans`` (epoch plans and
            mid-epoch re-plans after a refresh), ``random_epochs`` (planned without a model),
            ``refreshes``, ``full_refreshes``, ``incremental_refreshes``, ``refresh_failures``,
            ``last_refresh_error``, ``graph_waits`` (epochs that wanted a graph but had unseen rows),
            ``walk_steps``, ``near_jumps`` / ``random_jumps`` (stall fallbacks), ``guard_deferrals``,
            ``guard_violations``, ``skipped_seeds`` (``mode="ppr"`` seeds used up before their turn).
    """

    uses_embeddings = True

    def __init__(self, num_nodes: int, batch_size: int, *, drop_last: bool = False, seed: int = 0,
                 embeddings: Any = None, refresh_every: int = 100, warmup_epochs: int = 1,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        self.num_nodes = check_int("num_nodes", num_nodes, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1, high=self.num_nodes)
        if not isinstance(drop_last, (bool, np.bool_)):
            raise TypeError(f"drop_last must be a bool, got {type(drop_last).__name__} ({drop_last!r})")
        self.drop_last = bool(drop_last)
        self.seed = check_int("seed", seed, low=0)
        self.refresh_every = check_int("refresh_every", refresh_every, low=1)
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs, low=0)
        self.num_replicas, self.rank = _world_default(num_replicas, rank)
        self.stats: dict[str, Any] = {
            "epochs": 0, "batches": 0, "plans": 0, "replans": 0, "random_epochs": 0,
            "refreshes": 0, "full_refreshes": 0, "incremental_refreshes": 0, "refresh_failures": 0,
            "last_refresh_error": None, "graph_waits": 0,
            **{name: 0 for name in _COUNTER_NAMES},
        }
        self._bank: torch.Tensor | None = None
        self._seen = np.zeros(self.num_nodes, dtype=bool)
        self._dirty = np.zeros(self.num_nodes, dtype=bool)
        self._model: Any = None
        self._model_version = 0
        self._next_epoch = 0
        self._epoch = -1
        self._in_progress = False
        self._yielded = 0  # batches handed out by this rank in the current epoch
        self._step = 0  # batches handed out by this rank over all epochs
        self._last_refresh_step = 0
        self._plan_arr: np.ndarray | None = None
        self._plan_list: list[int] | None = None  # the plan as Python ints (built on first use)
        self._plan_version = -1  # model version the current plan was made with
        if embeddings is not None:
            emb = _check_embedding_rows("embeddings", embeddings)
            if emb.shape[0] != self.num_nodes:
                raise ValueError(f"embeddings must have num_nodes={self.num_nodes} rows, got {emb.shape[0]}")
            if not bool(torch.isfinite(emb).all()):
                raise ValueError("embeddings contains NaN or infinite values")
            if self.uses_embeddings:
                self._bank = emb.detach().clone()
                self._seen[:] = True
                self._dirty[:] = True
                self.warmup_epochs = 0
                self._install(self._rebuild(full=True))

    # ------------------------------------------------------------------ lengths
    @property
    def _num_plan_batches(self) -> int:
        n, b = self.num_nodes, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __len__(self) -> int:
        nb, w = self._num_plan_batches, self.num_replicas
        return nb // w if self.drop_last else -(-nb // w)

    def _global_index(self, j: int) -> int:
        """Plan batch index of this rank's j-th batch (wrapping around when padded)."""
        return (j * self.num_replicas + self.rank) % self._num_plan_batches

    # ------------------------------------------------------------------ epochs
    @property
    def epoch(self) -> int:
        """The current (or, before the first pass, the next) epoch number."""
        return self._epoch if self._in_progress else self._next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next pass produces (its batches depend on ``(seed, epoch)``).

        Setting the epoch that is in progress (e.g. after :meth:`load_state_dict`)
        keeps the progress, so the pass resumes.
        """
        epoch = check_int("epoch", epoch, low=0)
        if self._in_progress and epoch == self._epoch:
            return
        self._in_progress = False
        self._next_epoch = epoch

    def _rng(self, *parts: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *[int(p) for p in parts]])

    def _begin_epoch(self) -> None:
        self._epoch = self._next_epoch
        self._next_epoch = self._epoch + 1
        self._yielded = 0
        self._in_progress = True
        self.stats["epochs"] += 1
        if self._model is None and self.uses_embeddings and self._epoch >= self.warmup_epochs:
            if self._seen.all():
                self.refresh()
            else:
                self.stats["graph_waits"] += 1
        self._make_plan(consumed=0, replan=False)

    def _make_plan(self, consumed: int, replan: bool) -> None:
        """(Re)plan every node not in the first ``consumed`` plan batches."""
        n, b = self.num_nodes, self.batch_size
        keep = min(consumed * b, n)
        used = np.zeros(n, dtype=bool)
        if keep:
            used[self._plan_arr[:keep]] = True
        rng = self._rng(self._epoch, consumed, self._model_version)
        n_plan = n - keep
        if n_plan:
            if self._model is None:
                part = self._random_plan(used, n_plan, rng, consumed)
            else:
                part = self._plan(used, n_plan, rng, consumed)
        else:
            part = np.empty(0, dtype=np.int64)
        if part.shape[0] != n_plan:
            raise RuntimeError(f"internal error: planner returned {part.shape[0]} nodes, expected {n_plan}")
        self._plan_arr = np.concatenate([self._plan_arr[:keep], part]) if keep else part.astype(np.int64)
        self._plan_list = None
        self._plan_version = self._model_version
        self.stats["replans" if replan else "plans"] += 1
        if self._model is None and not replan:
            self.stats["random_epochs"] += 1

    def _random_plan(self, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int) -> np.ndarray:
        """Random batches (warm-up, and :class:`~graphbatch.RandomBatchSampler`)."""
        rest = np.flatnonzero(~used)
        return rest[rng.permutation(rest.shape[0])]

    def _plan(self, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int) -> np.ndarray:
        """Order the ``n_plan`` unused nodes (``~used``) into consecutive batches, using ``self._model``."""
        return self._random_plan(used, n_plan, rng, consumed)

    def __iter__(self) -> Iterator[list[int]]:
        if not self._in_progress:
            self._begin_epoch()
        length, b, n = len(self), self.batch_size, self.num_nodes
        while self._yielded < length:
            if self._step > self._last_refresh_step and self._step % self.refresh_every == 0:
                self._last_refresh_step = self._step
                self._periodic_refresh()
            if self._plan_version != self._model_version:
                consumed = min(self._yielded * self.num_replicas, self._num_plan_batches)
                self._make_plan(consumed=consumed, replan=True)
            if self._plan_list is None:  # one conversion per plan; slicing a list is cheap
                self._plan_list = self._plan_arr.tolist()
            g = self._global_index(self._yielded)
            batch = self._plan_list[g * b: min((g + 1) * b, n)]
            self._yielded += 1
            self._step += 1
            self.stats["batches"] += 1
            yield batch
        self._in_progress = False

    # ------------------------------------------------------------------ embeddings / refresh
    @property
    def bank(self) -> torch.Tensor | None:
        """The ``(N, d)`` embedding bank (``None`` before the first :meth:`update`). Do not modify."""
        return self._bank

    def update(self, indices: Any, embeddings: Any, *, gather: bool | None = None) -> None:
        """Store fresh embeddings of some instances (typically the batch just trained on).

        Args:
            indices: ``(n,)`` instance indices in ``[0, N)``.
            embeddings: ``(n, d)`` float tensor/array; detached and copied into the bank (NaN is stored,
                and makes the next refresh fail and keep the previous graph).
            gather: all-gather ``(indices, embeddings)`` from every rank first (default: when
                ``torch.distributed`` is initialised with more than one rank). Must be called on all ranks.

        Raises:
            ValueError: indices out of range, row count or width disagreeing.
            TypeError: wrong types or non-float embeddings.

        Example:
            >>> import torch
            >>> from graphbatch import RWRBatchSampler
            >>> s = RWRBatchSampler(10, 5, k=3, candidates=9)
            >>> s.update([0, 1], torch.randn(2, 4))
            >>> s.bank.shape
            torch.Size([10, 4])
        """
        if not self.uses_embeddings:
            _check_embedding_rows("embeddings", embeddings)
            as_index_tensor("indices", indices, num_nodes=self.num_nodes, allow_empty=True)
            return
        emb = _check_embedding_rows("embeddings", embeddings).detach()
        idx = as_index_tensor("indices", indices, num_nodes=self.num_nodes, allow_empty=True)
        if idx.numel() != emb.shape[0]:
            raise ValueError(f"embeddings must have one row per index: got {emb.shape[0]} rows for "
                             f"{idx.numel()} indices")
        if self._bank is not None and emb.shape[1] != self._bank.shape[1]:
            raise ValueError(f"embeddings must have width d={self._bank.shape[1]} (the bank's), "
                             f"got {emb.shape[1]}")
        dist = torch.distributed
        if gather is None:
            gather = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if gather:
            idx, emb = _all_gather_rows(idx, emb)
        if self._bank is None:
            self._bank = torch.zeros((self.num_nodes, emb.shape[1]), dtype=emb.dtype, device=emb.device)
        if idx.numel() == 0:
            return
        self._bank[idx.to(self._bank.device)] = emb.to(self._bank.device, self._bank.dtype)
        rows = idx.cpu().numpy()
        self._seen[rows] = True
        self._dirty[rows] = True

    def _periodic_refresh(self) -> None:
        if not self.uses_embeddings or not self._dirty.any() or not self._seen.all():
            return
        if self._model is None and self._epoch < self.warmup_epochs:
            return
        self.refresh()

    def refresh(self) -> bool:
        """Rebuild the model (graph) from the embedding bank now.

        Incremental when a model exists and at most ``incremental_fraction`` of the
        rows changed since the last build; full otherwise. On failure the previous
        model is kept, a warning is issued and ``stats["refresh_failures"]`` grows.

        Returns:
            True when a new model was installed.

        Raises:
            RuntimeError: the bank is missing rows that were never passed to :meth:`update`
                (the model needs every row once).

        Example:
            >>> import torch
            >>> from graphbatch import RWRBatchSampler
            >>> emb = torch.randn(30, 4)
            >>> s = RWRBatchSampler(30, 5, k=3, candidates=20, embeddings=emb)
            >>> s.update([0, 1], emb[:2] + 1.0)
            >>> s.refresh(), s.stats["incremental_refreshes"]
            (True, 1)
        """
        if not self.uses_embeddings:
            return False
        if self._bank is None or not self._seen.all():
            missing = self.num_nodes - int(self._seen.sum())
            raise RuntimeError(f"cannot build the graph yet: {missing} of {self.num_nodes} rows were never "
                               "passed to update() (finish a warm-up epoch, or pass embeddings=)")
        try:
            if not bool(torch.isfinite(self._bank).all()):
                bad = int((~torch.isfinite(self._bank).all(dim=1)).sum())
                raise ValueError(f"embedding bank has {bad} rows with NaN or infinite values")
            model = self._rebuild(full=self._model is None or not self._incremental_ok())
        except (RuntimeError, ValueError, MemoryError) as exc:
            self.stats["refresh_failures"] += 1
            self.stats["last_refresh_error"] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"{type(self).__name__}: refresh failed, keeping the previous "
                          f"{'graph' if self._model is not None else 'random batches'} "
                          f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=2)
            return False
        self._install(model)
        return True

    def _incremental_ok(self) -> bool:
        return False

    def _install(self, model: Any) -> None:
        self._model = model
        self._model_version += 1
        self._dirty[:] = False
        self.stats["refreshes"] += 1
        self._on_model(model)

    def _on_model(self, model: Any) -> None:
        """Derive caches from a newly installed or restored model (host copies, orders, ...)."""

    def _rebuild(self, full: bool) -> Any:
        """Build the model from ``self._bank``; raise on failure."""
        raise RuntimeError(f"{type(self).__name__} does not learn from embeddings")

    # ------------------------------------------------------------------ state
    def _model_state(self) -> dict[str, Any]:
        return {}

    def _load_model_state(self, state: dict[str, Any]) -> Any:
        return None

    def state_dict(self, *, include_bank: bool = True) -> dict[str, Any]:
        """Everything needed to resume mid-epoch and to keep refreshing identically.

        Args:
            include_bank: store the embedding bank (needed for identical future refreshes; it is
                ``N x d`` and moved to CPU). Without it the restored sampler keeps the graph and the
                plan, and builds again only once every row has been passed to :meth:`update` anew.

        Example:
            >>> from graphbatch import RWRBatchSampler
            >>> s = RWRBatchSampler(20, 4, k=3, candidates=19)
            >>> it = iter(s); first = [next(it) for _ in range(2)]
            >>> t = RWRBatchSampler(20, 4, k=3, candidates=19); t.load_state_dict(s.state_dict())
            >>> list(t) == list(it)
            True
        """
        return {
            "format": type(self).__name__, "version": _STATE_VERSION,
            "num_nodes": self.num_nodes, "batch_size": self.batch_size, "drop_last": self.drop_last,
            "seed": self.seed, "num_replicas": self.num_replicas, "rank": self.rank,
            "epoch": self._epoch, "next_epoch": self._next_epoch, "in_progress": self._in_progress,
            "yielded": self._yielded, "step": self._step, "last_refresh_step": self._last_refresh_step,
            "plan": None if self._plan_arr is None else torch.from_numpy(self._plan_arr.copy()),
            "plan_version": self._plan_version, "model_version": self._model_version,
            "model": self._model_state() if self._model is not None else None,
            "bank": None if (self._bank is None or not include_bank) else self._bank.detach().cpu().clone(),
            "seen": torch.from_numpy(self._seen.copy()), "dirty": torch.from_numpy(self._dirty.copy()),
            "stats": dict(self.stats),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next pass continues the interrupted epoch.

        Raises:
            ValueError: the state comes from a sampler of another kind or configuration.
        """
        if not isinstance(state, dict) or state.get("format") != type(self).__name__:
            raise ValueError(f"state must be a state_dict of a {type(self).__name__}, got "
                             f"{state.get('format') if isinstance(state, dict) else type(state).__name__}")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"state has version {state.get('version')}, expected {_STATE_VERSION}")
        for key in ("num_nodes", "batch_size", "drop_last", "num_replicas", "rank"):
            if state[key] != getattr(self, key):
                raise ValueError(f"state was saved with {key}={state[key]}, this sampler has "
                                 f"{key}={getattr(self, key)}")
        self.seed = state["seed"]
        self._epoch, self._next_epoch = state["epoch"], state["next_epoch"]
        self._in_progress, self._yielded = state["in_progress"], state["yielded"]
        self._step, self._last_refresh_step = state["step"], state["last_refresh_step"]
        self._plan_arr = None if state["plan"] is None else state["plan"].numpy().astype(np.int64)
        self._plan_list = None
        self._plan_version, self._model_version = state["plan_version"], state["model_version"]
        self._seen = state["seen"].numpy().copy()
        self._dirty = state["dirty"].numpy().copy()
        if state["bank"] is not None:
            dev = self._bank.device if self._bank is not None else "cpu"
            self._bank = state["bank"].to(dev).clone()
        elif self.uses_embeddings:  # saved without the bank: it must be filled again by update()
            self._bank = None
            self._seen[:] = False
            self._dirty[:] = False
        self._model = None if state["model"] is None else self._load_model_state(state["model"])
        if self._model is not None:
            self._on_model(self._model)
        self.stats = dict(state["stats"])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_nodes={self.num_nodes}, batch_size={self.batch_size}, "
                f"drop_last={self.drop_last}, seed={self.seed}, num_replicas={self.num_replicas}, "
                f"rank={self.rank})")


# ============================================================================ graph-based samplers
class GraphSamplerBase(EpochBatchSampler):
    """Base of the samplers whose model is a proximity graph built from the embedding bank.

    Args (beyond :class:`EpochBatchSampler`):
        k: neighbours per node (clamped to ``N - 1``).
        candidates: ``M`` random candidates per node among which the top-``k`` are kept
            (``None`` or ``>= N - 1``: exact kNN). Every full rebuild draws fresh candidates, seeded
            by ``(seed, draw number)``, so over training each node meets new candidates (as in the
            paper); an incremental refresh keeps the current draw, so the rows it recomputes equal
            those of a full rebuild with that draw. Pass ``build_kwargs={"seed": s}`` to fix the draw.
        metric: similarity for the graph (``"cosine"``, ``"ip"``, ``"euclidean"``, as
            :func:`graphbatch.build.neighbor_table`).
        incremental_fraction: rebuild incrementally when at most this fraction of rows changed.
        build_kwargs: extra keyword arguments for :func:`graphbatch.build.neighbor_table`
            (e.g. ``method=``, ``device=``).
        labels: ``(N,)`` group ids for the false-negative guard (``-1`` = no group).
        max_similarity: similarity threshold for the false-negative guard.
        stall_steps: walk steps without a new node before a fallback jump.
        scan_limit: unused candidates examined by a guarded random fallback.
        graph: a prebuilt :class:`~graphbatch.ProximityGraph` to start from (skips warm-up; later
            refreshes rebuild from the bank once every row has been passed to :meth:`update`).

    Example:
        >>> import torch
        >>> from graphbatch import KNNBatchSampler  # a GraphSamplerBase subclass
        >>> s = KNNBatchSampler(40, 8, k=4, candidates=None, embeddings=torch.randn(40, 3))
        >>> s.graph.num_nodes, s.graph.out_degree().tolist()[:3]
        (40, [4, 4, 4])
    """

    _list_sample = False

    def __init__(self, num_nodes: int, batch_size: int, *, k: int = 100, candidates: int | None = 1000,
                 metric: str = "cosine", incremental_fraction: float = 0.5,
                 build_kwargs: dict[str, Any] | None = None, labels: Any = None,
                 max_similarity: float | None = None, stall_steps: int = 32, scan_limit: int = 4096,
                 graph: ProximityGraph | None = None, **kwargs: Any) -> None:
        n = check_int("num_nodes", num_nodes, low=1)
        self.k = check_int("k", k, low=1)
        if candidates is not None:
            candidates = check_int("candidates", candidates, low=1)
            if candidates < self.k:
                raise ValueError(f"candidates must be >= k={self.k}, got {candidates}")
        self.candidates = candidates
        if not isinstance(metric, str):
            raise TypeError(f"metric must be a str, got {type(metric).__name__}")
        self.metric = metric
        if isinstance(incremental_fraction, bool) or not isinstance(incremental_fraction, numbers.Real) or \
                not 0.0 <= float(incremental_fraction) <= 1.0:
            raise ValueError(f"incremental_fraction must lie in [0, 1], got {incremental_fraction!r}")
        self.incremental_fraction = float(incremental_fraction)
        if build_kwargs is not None and not isinstance(build_kwargs, dict):
            raise TypeError(f"build_kwargs must be a dict, got {type(build_kwargs).__name__}")
        self.build_kwargs = dict(build_kwargs or {})
        self.stall_steps = check_int("stall_steps", stall_steps, low=1)
        self.scan_limit = check_int("scan_limit", scan_limit, low=1)
        self._labels = self._check_labels(labels, n)
        if max_similarity is not None:
            if isinstance(max_similarity, bool) or not isinstance(max_similarity, numbers.Real) or \
                    not math.isfinite(float(max_similarity)):
                raise ValueError(f"max_similarity must be a finite float, got {max_similarity!r}")
            max_similarity = float(max_similarity)
            if metric not in ("cosine", "ip"):
                raise ValueError(f"max_similarity needs metric 'cosine' or 'ip', got metric={metric!r}")
        self.max_similarity = max_similarity
        self._host: tuple[np.ndarray, ...] | None = None
        self._host_degree = 0  # > 0: every row of the host CSR has exactly this many entries
        self._guard_emb: np.ndarray | None = None
        self._pool_draw = 0  # number of the candidate draw behind the current graph
        super().__init__(n, batch_size, **kwargs)
        if graph is not None:
            if not isinstance(graph, ProximityGraph):
                raise TypeError(f"graph must be a ProximityGraph, got {type(graph).__name__}")
            if graph.num_nodes != n:
                raise ValueError(f"graph must have num_nodes={n} nodes, got {graph.num_nodes}")
            if kwargs.get("embeddings") is not None:
                raise ValueError("pass either graph= or embeddings=, not both")
            self.warmup_epochs = 0
            self._install(graph)

    @staticmethod
    def _check_labels(labels: Any, n: int) -> np.ndarray | None:
        if labels is None:
            return None
        lab = as_index_tensor("labels", labels.reshape(-1) if hasattr(labels, "reshape") else labels,
                              allow_empty=True).cpu().numpy()
        if lab.shape[0] != n:
            raise ValueError(f"labels must have num_nodes={n} entries, got {lab.shape[0]}")
        if lab.size and lab.min() < -1:
            raise ValueError(f"labels must be >= -1 (-1 = no group), got {int(lab.min())}")
        out = np.full(n, -1, dtype=np.int64)
        has = lab >= 0
        out[has] = np.unique(lab[has], return_inverse=True)[1]
        return out

    # ------------------------------------------------------------------ graph
    @property
    def graph(self) -> ProximityGraph | None:
        """The current proximity graph (``None`` before the first build)."""
        return self._model

    @property
    def _k_eff(self) -> int:
        return max(1, min(self.k, self.num_nodes - 1))

    @property
    def _m_eff(self) -> int | None:
        m = self.candidates
        return None if m is None or m >= self.num_nodes - 1 else max(m, self._k_eff)

    def _neighbor_rows(self, rows: torch.Tensor | None, draw: int) -> tuple[torch.Tensor, torch.Tensor]:
        from .build import neighbor_table

        kwargs = dict(self.build_kwargs)
        kwargs.setdefault("metric", self.metric)
        kwargs.setdefault("seed", self._pool_seed(draw))
        return neighbor_table(self._bank, self._k_eff, candidates=self._m_eff, rows=rows, **kwargs)

    def _pool_seed(self, draw: int) -> int:
        """Seed of the candidate draw number ``draw``, derived from ``(seed, draw)``."""
        state = np.random.SeedSequence([self.seed, draw]).generate_state(1, dtype=np.uint64)[0]
        return int(state >> np.uint64(1))

    def _incremental_ok(self) -> bool:
        return self._dirty.mean() <= self.incremental_fraction

    def _rebuild(self, full: bool) -> ProximityGraph:
        n = self.num_nodes
        if n == 1:
            return ProximityGraph(torch.zeros(2, dtype=torch.int64, device=self._bank.device),
                                  torch.zeros(0, dtype=torch.int64, device=self._bank.device), num_nodes=1)
        # A full rebuild draws fresh candidate pools (draw + 1), so over training every node meets
        # new candidates, as in the paper; an incremental one keeps the current draw, so its rows
        # equal those of a full rebuild with that draw.
        draw = self._pool_draw + 1 if full else self._pool_draw
        if full:
            rows_t = torch.arange(n, device=self._bank.device)
            idx, sc = self._neighbor_rows(None, draw)
        else:
            rows_t = torch.from_numpy(np.flatnonzero(self._dirty)).to(self._bank.device)
            idx, sc = self._neighbor_rows(rows_t, draw)
        idx = idx.to(self._bank.device, torch.int64)
        sc = sc.to(self._bank.device)
        if sc.is_floating_point():
            sc = sc.to(torch.float32) if sc.dtype in (torch.float16, torch.bfloat16) else sc
        row = rows_t.view(-1, 1).expand_as(idx)
        keep = (idx >= 0) & (idx != row)  # drop empty slots and self-loops
        r, c, v = row[keep], idx[keep], sc[keep]
        if not full:
            old = self._model.to(self._bank.device)
            old_row = old.row()
            stay = ~torch.from_numpy(self._dirty).to(old.device)[old_row]
            r = torch.cat([old_row[stay], r])
            c = torch.cat([old.col[stay], c])
            v = torch.cat([old.values[stay].to(v.dtype), v])
        graph = ProximityGraph.from_coo(r, c, v, n)
        self._pool_draw = draw
        self.stats["full_refreshes" if full else "incremental_refreshes"] += 1
        return graph

    def _on_model(self, model: Any) -> None:
        g = model
        # int32 indices halve the memory the walk touches at random (when they fit)
        itype = np.int32 if max(g.nnz, g.num_nodes) < 2**31 - 1 else np.int64
        old = self._host or (None, None, None)
        self._host = (_host_copy(old[0], g.crow, itype), _host_copy(old[1], g.col, itype),
                      _host_copy(old[2], g.values, np.float64))
        # every row the same length (a top-k table): the walk computes row starts instead of loading them
        d = np.diff(self._host[0])
        self._host_degree = int(d[0]) if d.size and d[0] > 0 and bool((d == d[0]).all()) else 0
        self._guard_emb = None
        if self.max_similarity is not None and self._bank is not None:
            e = self._bank.detach().to("cpu", torch.float32)
            if self.metric == "cosine":
                e = torch.nn.functional.normalize(e, dim=1)
            self._guard_emb = e.numpy().copy()

    def _model_state(self) -> dict[str, Any]:
        g = self._model
        return {"crow": g.crow.cpu(), "col": g.col.cpu(), "values": g.values.cpu(), "pool_draw": self._pool_draw}

    def _load_model_state(self, state: dict[str, Any]) -> ProximityGraph:
        dev = self._bank.device if self._bank is not None else torch.device("cpu")
        self._pool_draw = int(state.get("pool_draw", 0))
        return ProximityGraph(state["crow"], state["col"], state["values"], self.num_nodes).to(dev)

    # ------------------------------------------------------------------ planning helpers
    def _guard_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        labels = self._labels if self._labels is not None else np.zeros(0, dtype=np.int64)
        stamp = np.zeros(int(labels.max()) + 1 if labels.size else 0, dtype=np.int64)
        if self._guard_emb is not None and self._model is not None:
            gemb, max_sim = self._guard_emb, float(self.max_similarity)
        else:
            gemb, max_sim = np.zeros((0, 1), dtype=np.float32), 0.0
        return labels, stamp, gemb, max_sim

    def _count(self, counters: np.ndarray) -> None:
        for i, name in enumerate(_COUNTER_NAMES):
            self.stats[name] += int(counters[i])

    def _run_list_plan(self, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int,
                       cptr: np.ndarray, cidx: np.ndarray, cval: np.ndarray, sample: bool,
                       host: tuple[np.ndarray, ...] | None) -> np.ndarray:
        """Seeds in shuffled order, each taking the best unused nodes of its candidate row (row = seed id)."""
        kern = _kernels()["list"]
        perm = rng.permutation(self.num_nodes).astype(np.int64)
        labels, stamp, gemb, max_sim = self._guard_arrays()
        crow, col = (host[0], host[1]) if host is not None else (np.zeros(self.num_nodes + 1, np.int64),
                                                                 np.zeros(0, np.int64))
        out = np.empty(n_plan, dtype=np.int64)
        counters = np.zeros(len(_COUNTER_NAMES), dtype=np.int64)
        pos, _ = kern(perm, perm, cptr, cidx, cval, sample, crow, col, used, perm, np.zeros(1, np.int64), out, 0,
                      n_plan, self.batch_size, consumed + 1, _seed_state(rng), labels, stamp, gemb, max_sim, _HOPS2,
                      self.scan_limit, counters)
        counters[5] = 0  # skipped_seeds: every node is a potential seed here, skipping used ones is not news
        self._count(counters)
        return out

    def _random_plan(self, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int) -> np.ndarray:
        if self._labels is None:
            return super()._random_plan(used, n_plan, rng, consumed)
        empty_ptr = np.zeros(self.num_nodes + 1, np.int64)
        return self._run_list_plan(used, n_plan, rng, consumed, empty_ptr, np.zeros(0, np.int64),
                                   np.zeros(0, np.float64), False, None)


class RWRBatchSampler(GraphSamplerBase):
    """Mini-batches of hard negatives by random walk with restart on a proximity graph (BatchSampler, KDD'23).

    Use as ``DataLoader(dataset, batch_sampler=sampler)``; after each training
    step pass the batch's embeddings to :meth:`update`. See the module docstring
    for the exact-epoch, refresh, warm-up, determinism and distributed rules.

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B`` in ``[1, N]``.
        k: neighbours per node in the proximity graph (paper: 100; clamped to ``N - 1``).
        candidates: random candidates per node, ``M`` (paper: 1000; ``None`` = exact kNN).
        restart_prob: walk restart probability in (0, 1] (paper: 0.2), or a schedule
            ``epoch -> float`` such as :class:`linear_decay` ``(0.2, 0.05, epochs)``.
        refresh_every: rebuild the graph from the embedding bank every this many batches (paper: 100).
        warmup_epochs: random epochs before the first graph (skipped when ``embeddings`` is given).
        mode: ``"walk"`` (the paper's walker) or ``"ppr"`` (top personalized-PageRank scores from the seed).
        drop_last: drop the last short batch.
        seed: base random seed.
        embeddings: ``(N, d)`` embeddings to build the first graph from at construction.
        metric: similarity for the graph: ``"cosine"``, ``"ip"`` or ``"euclidean"``.
        labels: ``(N,)`` group ids never put together in a batch (``-1`` = none).
        max_similarity: never put two instances more similar than this together.
        ppr_eps: push tolerance for ``mode="ppr"`` (default ``0.1 / batch_size`` for ``"push"``,
            ``0.25 / batch_size`` for ``"rwr_truncated"``: at most ``1 / (p eps)`` pushes per seed, enough
            support to fill a batch; smaller is slower and slightly purer).
        ppr_sample: ``mode="ppr"``: sample by score instead of taking the top scores.
        ppr_engine: ``mode="ppr"`` scores: ``"push"`` (compiled forward push, one seed at a time, on the
            host copy of the graph), ``"rwr_truncated"`` (:func:`graphbatch.walk.rwr_truncated`, ``ppr_chunk``
            seeds per call, on the graph's device) or ``"auto"`` (``rwr_truncated`` for a CUDA graph, else
            ``push``). Both are forward push with uniform transitions and the same ``eps`` rule.
        ppr_chunk: seeds per :func:`~graphbatch.walk.rwr_truncated` call.
        walkers: ``mode="walk"``: batches built at once, one step each in turn, so their cache
            misses overlap (a node goes to the walker that reaches it first; 1 = strictly one
            batch after another; forced to 1 with ``labels``). More is faster but walkers that
            share a cluster split it: on a 40-cluster mixture (N = 20k, B = 256, K = 20) the
            same-cluster pair share was 0.66-0.67 with 1 and 8 walkers, 0.65 with 16, 0.62-0.64 with
            32, 0.53 with 128 (16 walkers plan ~5-10 % faster than 8).
        num_replicas: distributed world size (default from ``torch.distributed``).
        rank: distributed rank (default from ``torch.distributed``).
        **kwargs: ``incremental_fraction``, ``build_kwargs``, ``stall_steps``, ``scan_limit``
            (see :class:`GraphSamplerBase`).

    Example:
        >>> import torch
        >>> from graphbatch import RWRBatchSampler
        >>> emb = torch.randn(100, 8)
        >>> sampler = RWRBatchSampler(100, 16, k=5, candidates=50, embeddings=emb)
        >>> batches = list(sampler)
        >>> len(batches) == len(sampler) == 7, sorted(sum(batches, [])) == list(range(100))
        (True, True)
        >>> sampler.update(batches[0], emb[batches[0]])  # after a training step
    """

    def __init__(self, num_nodes: int, batch_size: int, *, k: int = 100, candidates: int | None = 1000,
                 restart_prob: RestartProb = 0.2, refresh_every: int = 100, warmup_epochs: int = 1,
                 mode: str = "walk", drop_last: bool = False, seed: int = 0, embeddings: Any = None,
                 metric: str = "cosine", labels: Any = None, max_similarity: float | None = None,
                 ppr_eps: float | None = None, ppr_sample: bool = False, ppr_chunk: int = 64,
                 ppr_engine: str = "auto", walkers: int = 8,
                 num_replicas: int | None = None, rank: int | None = None, **kwargs: Any) -> None:
        if callable(restart_prob):
            check_probability("restart_prob", restart_prob(0))
        else:
            check_probability("restart_prob", restart_prob)
        self.restart_prob = restart_prob
        if mode not in ("walk", "ppr"):
            raise ValueError(f"mode must be 'walk' or 'ppr', got {mode!r}")
        self.mode = mode
        if ppr_eps is not None:
            ppr_eps = check_probability("ppr_eps", ppr_eps)
        self.ppr_eps = ppr_eps
        self.ppr_sample = bool(ppr_sample)
        self.ppr_chunk = check_int("ppr_chunk", ppr_chunk, low=1)
        self.walkers = check_int("walkers", walkers, low=1)
        if ppr_engine not in ("auto", "push", "rwr_truncated"):
            raise ValueError(f"ppr_engine must be 'auto', 'push' or 'rwr_truncated', got {ppr_engine!r}")
        self.ppr_engine = ppr_engine
        super().__init__(num_nodes, batch_size, k=k, candidates=candidates, metric=metric, labels=labels,
                         max_similarity=max_similarity, refresh_every=refresh_every,
                         warmup_epochs=warmup_epochs, drop_last=drop_last, seed=seed, embeddings=embeddings,
                         num_replicas=num_replicas, rank=rank, **kwargs)

    def current_restart_prob(self, epoch: int | None = None) -> float:
        """The restart probability used in ``epoch`` (default: the current epoch)."""
        e = self.epoch if epoch is None else epoch
        p = self.restart_prob(e) if callable(self.restart_prob) else self.restart_prob
        return check_probability("restart_prob", p)

    def _plan(self, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int) -> np.ndarray:
        if self.mode == "ppr":
            return self._plan_ppr(used, n_plan, rng, consumed)
        crow, col, _ = self._host
        labels, stamp, gemb, max_sim = self._guard_arrays()
        perm = rng.permutation(self.num_nodes).astype(np.int64, copy=False)
        out = np.empty(n_plan, dtype=np.int64)
        counters = np.zeros(len(_COUNTER_NAMES), dtype=np.int64)
        p_thr = np.uint64(min(round(self.current_restart_prob() * 2.0**32), 2**32))
        _kernels()["walk"](crow, col, self._host_degree, used, perm, np.zeros(1, np.int64), out, n_plan,
                           self.batch_size, consumed + 1, p_thr, self.stall_steps, _seed_state(rng),
                           labels, stamp, gemb, max_sim, _HOPS2, self.scan_limit,
                           1 if self._labels is not None else self.walkers, counters)
        self._count(counters)
        return out

    def _ppr_engine_now(self) -> str:
        if self.ppr_engine != "auto":
            return self.ppr_engine
        return "rwr_truncated" if self._model.device.type == "cuda" else "push"

    def _plan_ppr(self, used: np.ndarray, n_plan: int, rng: np.random.Generator, consumed: int) -> np.ndarray:
        b, n = self.batch_size, self.num_nodes
        crow, col, _ = self._host
        labels, stamp, gemb, max_sim = self._guard_arrays()
        perm = rng.permutation(n).astype(np.int64)
        ptr = np.zeros(1, np.int64)
        state = _seed_state(rng)
        out = np.empty(n_plan, dtype=np.int64)
        counters = np.zeros(len(_COUNTER_NAMES), dtype=np.int64)
        p = self.current_restart_prob()
        engine = self._ppr_engine_now()
        if engine == "push":
            eps = self.ppr_eps if self.ppr_eps is not None else 0.1 / b
            _kernels()["ppr"](crow, col, used, perm, ptr, out, n_plan, b, consumed + 1, p, eps, self.ppr_sample,
                              state, labels, stamp, gemb, max_sim, _HOPS2, self.scan_limit, counters,
                              np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool),
                              np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64))
            self._count(counters)
            return out
        from .walk import rwr_truncated

        kern = _kernels()["list"]
        eps = self.ppr_eps if self.ppr_eps is not None else 0.25 / b
        graph = self._model
        pos = 0
        start = 0  # seeds before this position of perm are used
        while pos < n_plan:
            while start < perm.shape[0] and used[perm[start]]:
                start += 1
            want = min(self.ppr_chunk, -(-(n_plan - pos) // b))
            rest = perm[start:]
            seeds = rest[~used[rest]][:want]
            with warnings.catch_warnings():  # torch's "sparse CSR is beta" notice
                warnings.simplefilter("ignore", UserWarning)
                scores = rwr_truncated(graph, torch.from_numpy(seeds).to(graph.device), p, eps=eps,
                                       weighted=False)
            scores = scores.to_sparse_csr() if scores.layout != torch.sparse_csr else scores
            cptr = scores.crow_indices().cpu().numpy().astype(np.int64)
            cidx = scores.col_indices().cpu().numpy().astype(np.int64)
            cval = scores.values().cpu().numpy().astype(np.float64)
            pos, _ = kern(seeds, np.arange(seeds.shape[0], dtype=np.int64), cptr, cidx, cval, self.ppr_sample,
                          crow, col, used, perm, ptr, out, pos, n_plan, b, consumed + 1, state, labels, stamp,
                          gemb, max_sim, _HOPS2, self.scan_limit, counters)
        self._count(counters)
        return out

    def __repr__(self) -> str:
        return (f"RWRBatchSampler(num_nodes={self.num_nodes}, batch_size={self.batch_size}, k={self.k}, "
                f"candidates={self.candidates}, restart_prob={self.restart_prob!r}, "
                f"refresh_every={self.refresh_every}, mode={self.mode!r}, drop_last={self.drop_last}, "
                f"seed={self.seed})")
