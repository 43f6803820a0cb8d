"""The compiled (numba) kernels: forward push, and the batch planners built on it and on random walks.

Importing this module imports numba; functions compile on first call and are cached on
disk (``cache=True``). All kernels live in this one module on purpose: numba's cache is
invalidated only by changes to the *file* holding a function, not to the functions it
calls, so kernels that call each other must share a file.
Argument bundles and counter slots are defined in :mod:`graphbatch.kernels.slots`.

PRNG: xorshift64* (deterministic across platforms and numba versions); one draw per walk
step (low 32 bits decide the restart, high 32 bits pick the neighbour).

**The PPR ranking rule** (both :func:`ppr_plan` and :func:`push_many` in candidate mode,
i.e. both ``RWRBatchSampler(mode="ppr")`` engines on CPU): forward push from the seed
(:func:`push_seed`); every node the push reached is a candidate, scored by estimate plus
residual ``x + r`` (the mass that has reached it, settled or not); candidates are taken in
decreasing score, ties in the order the push first reached them (FIFO discovery order).
"""
from __future__ import annotations

import numba
import numpy as np

from . import slots

# The constants the kernels use are spelled out here, not imported: numba freezes globals into the
# compiled code and keys its on-disk cache on this file only. They must equal slots.py's.
STEPS, NEAR_JUMPS, RANDOM_JUMPS, GUARD_DEFERRALS, GUARD_VIOLATIONS, SKIPPED_SEEDS = 0, 1, 2, 3, 4, 5
HOPS2 = 4
if (STEPS, NEAR_JUMPS, RANDOM_JUMPS, GUARD_DEFERRALS, GUARD_VIOLATIONS, SKIPPED_SEEDS, HOPS2) != (
        slots.STEPS, slots.NEAR_JUMPS, slots.RANDOM_JUMPS, slots.GUARD_DEFERRALS, slots.GUARD_VIOLATIONS,
        slots.SKIPPED_SEEDS, slots.HOPS2):
    raise ImportError("graphbatch.kernels.compiled and graphbatch.kernels.slots disagree on a constant")

_jit = numba.njit(cache=True, nogil=True)
_NO_CAP = 1 << 62  # max_rounds for a push that runs to convergence


# ============================================================================ random numbers
@_jit
def rand(state):
    """Next xorshift64* output of ``state`` (a ``(1,)`` uint64 array, advanced in place)."""
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    return x * np.uint64(2685821657736338717)


@_jit
def randint(state, n):
    """Uniform in ``[0, n)`` for ``n < 2**32`` (multiply-high, no division)."""
    return np.int64(((rand(state) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@_jit
def uniform(state):
    """Uniform float64 in ``[0, 1)`` (53 bits)."""
    return np.float64(rand(state) >> np.uint64(11)) * 1.1102230246251565e-16


# ============================================================================ guard and claims
@_jit
def _count_group(groups, v, out, bstart, pos, cap):
    """Whether the batch ``out[bstart:pos]`` already holds ``cap`` members of ``v``'s group (-1: none)."""
    g = groups[v]
    if g < 0:
        return False
    c = 0
    for t in range(bstart, pos):
        if groups[out[t]] == g:
            c += 1
            if c >= cap:
                return True
    return False


@_jit
def admissible(v, out, bstart, pos, guard):
    """May node ``v`` join the batch ``out[bstart:pos]`` under the false-negative guard?

    Refused when the batch already holds a member of ``v``'s group, ``cap`` members of its
    community, or a member more similar to it than ``max_sim``.
    """
    labels, comm, cap, gemb, max_sim, _ = guard
    if labels.shape[0] > 0 and _count_group(labels, v, out, bstart, pos, 1):
        return False
    if comm.shape[0] > 0 and _count_group(comm, v, out, bstart, pos, cap):
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


@_jit
def claim(v, out, pos, used):
    """Put ``v`` at ``out[pos]`` and mark it used; return ``pos + 1``."""
    used[v] = True
    out[pos] = v
    return pos + 1


@_jit
def scan_row(b, e, off, col, used, out, bstart, pos, guard):
    """First unused, admissible node of the row ``col[b:b + e]`` scanned from ``off`` (wrapping); -1 if none."""
    for t in range(b + off, b + e):
        v = col[t]
        if not used[v] and admissible(v, out, bstart, pos, guard):
            return v
    for t in range(b, b + off):
        v = col[t]
        if not used[v] and admissible(v, out, bstart, pos, guard):
            return v
    return -1


@_jit
def near(x, graph, used, state, out, bstart, pos, guard):
    """An unused, admissible out-neighbour of ``x``, else one of up to ``HOPS2`` of its neighbours'; -1 if none.

    Each row is scanned from a random offset (wrapping around). The 2-hop rows belong to
    ``min(HOPS2, deg(x))`` neighbours of ``x`` drawn uniformly (with replacement), in the order drawn.
    """
    crow, col = graph[0], graph[1]
    a = crow[x]
    d = crow[x + 1] - a
    if d == 0:
        return -1
    v = scan_row(a, d, randint(state, d), col, used, out, bstart, pos, guard)
    if v >= 0:
        return v
    for _h in range(min(HOPS2, d)):
        y = col[a + randint(state, d)]
        b = crow[y]
        e = crow[y + 1] - b
        if e == 0:
            continue
        v = scan_row(b, e, randint(state, e), col, used, out, bstart, pos, guard)
        if v >= 0:
            return v
    return -1


@_jit
def next_unused(order, used, out, bstart, pos, guard):
    """Next unused node of the shuffled order that the guard admits (bounded scan).

    Returns ``(node, violated)``: ``violated`` when no admissible node was found among
    ``scan_limit`` unused candidates and the first unused one is returned (-1: none left).
    """
    perm, ptr = order[0], order[1]
    scan_limit = guard[5]
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
            if admissible(v, out, bstart, pos, guard):
                return v, False
            seen += 1
        q += 1
    return perm[p], True


@_jit
def fallback(last, root, graph, used, order, out, bstart, pos, guard, counters):
    """The node a stalled batch continues from: near ``last``, near ``root``, else the next unused one."""
    state = order[2]
    v = near(last, graph, used, state, out, bstart, pos, guard)
    if v < 0 and root != last:
        v = near(root, graph, used, state, out, bstart, pos, guard)
    if v >= 0:
        counters[NEAR_JUMPS] += 1
        return v
    v, viol = next_unused(order, used, out, bstart, pos, guard)
    counters[RANDOM_JUMPS] += 1
    if viol:
        counters[GUARD_VIOLATIONS] += 1
    return v


# ============================================================================ forward push
@_jit
def push_seed(crow, col, prob, dangling, s, p, eps, max_rounds, scratch):
    """Forward push (Andersen-Chung-Lang) of one seed; the one push kernel of graphbatch.

    Start ``res = e_s``; pop nodes FIFO; a popped node whose residual exceeds ``eps`` moves
    ``p r`` into its estimate ``x`` and spreads ``(1 - p) r`` over its out-edges: by ``prob``
    (a row of P), or evenly when ``prob`` is empty (uniform transitions); a dangling node
    (``dangling[u]``; with uniform transitions, out-degree 0) sends it back to the seed.
    A node is queued when its residual first exceeds ``eps``. A *round* is one generation
    of the queue; at most ``max_rounds`` run. Every push settles more than ``p eps`` of the
    unit mass, so there are at most ``1 / (p eps)`` pushes.

    On return ``scratch`` holds ``x`` and ``res`` on the ``nt`` touched nodes
    ``touched[:nt]`` (in the order first reached; the caller reads them and clears
    ``x``, ``res`` and ``mark`` there); ``inq`` is all False again.

    Returns:
        ``(nt, rounds, converged, pushes)``.
    """
    res, x, inq, mark, queue, touched = scratch
    n = res.shape[0]
    uniform_walk = prob.shape[0] == 0
    q = 1.0 - p
    touched[0] = s
    mark[s] = True
    nt = 1
    res[s] = 1.0
    queue[0] = s
    inq[s] = True
    head = 0
    qlen = 1
    rounds = 0
    left = 0  # nodes left in the current round
    pushes = 0
    converged = True
    while qlen > 0:
        if left == 0:
            if rounds == max_rounds:
                converged = False
                break
            rounds += 1
            left = qlen
        u = queue[head]
        head = head + 1 if head + 1 < n else 0
        qlen -= 1
        left -= 1
        inq[u] = False
        r = res[u]
        if r <= eps:
            continue
        pushes += 1
        x[u] += p * r
        res[u] = 0.0
        a = crow[u]
        d = crow[u + 1] - a
        if (d == 0) if uniform_walk else dangling[u]:
            res[s] += q * r
            if res[s] > eps and not inq[s]:
                queue[(head + qlen) % n] = s
                qlen += 1
                inq[s] = True
            continue
        share = q * r / d if uniform_walk else 0.0
        for e in range(a, a + d):
            v = col[e]
            if not mark[v]:
                mark[v] = True
                touched[nt] = v
                nt += 1
            if uniform_walk:
                res[v] += share
            else:
                res[v] += q * r * prob[e]
            if res[v] > eps and not inq[v]:
                queue[(head + qlen) % n] = v
                qlen += 1
                inq[v] = True
    if not converged:  # leave the queue empty and inq all False
        for i in range(qlen):
            inq[queue[(head + i) % n]] = False
    return nt, rounds, converged, pushes


@_jit
def _grow(arr, need):
    if need <= arr.shape[0]:
        return arr
    out = np.empty(max(need, 2 * arr.shape[0]), dtype=arr.dtype)
    out[:arr.shape[0]] = arr
    return out


@_jit
def push_many(crow, col, prob, dangling, seeds, p, eps, max_rounds, candidates, scratch):
    """:func:`push_seed` for every seed in turn; returns one sparse row per seed (CSR arrays).

    ``candidates=False``: the estimate ``x`` on its support (nodes pushed at least once),
    sorted by node id, and the exact L1 error ``1 - sum(x)`` per seed (``rwr_truncated``).
    ``candidates=True``: every touched node in discovery order with score ``x + res``
    (the PPR ranking rule of the module docstring).

    Returns:
        ``(ptr, cols, vals, err, rounds_max, converged, pushes)``.
    """
    res, x, inq, mark, queue, touched = scratch
    n_seeds = seeds.shape[0]
    out_col = np.empty(1024, dtype=np.int64)
    out_val = np.empty(1024, dtype=np.float64)
    out_ptr = np.zeros(n_seeds + 1, dtype=np.int64)
    err = np.zeros(n_seeds, dtype=np.float64)
    rounds_max = 0
    all_converged = True
    pushes = 0
    for j in range(n_seeds):
        nt, rounds, converged, npush = push_seed(crow, col, prob, dangling, seeds[j], p, eps, max_rounds, scratch)
        rounds_max = max(rounds_max, rounds)
        all_converged = all_converged and converged
        pushes += npush
        start = out_ptr[j]
        out_col = _grow(out_col, start + nt)
        out_val = _grow(out_val, start + nt)
        m = 0
        total = 0.0
        if candidates:
            for i in range(nt):
                t = touched[i]
                out_col[start + m] = t
                out_val[start + m] = x[t] + res[t]
                m += 1
        else:
            sup = np.empty(nt, dtype=np.int64)
            for i in range(nt):
                t = touched[i]
                if x[t] > 0.0:
                    sup[m] = t
                    m += 1
            sup = np.sort(sup[:m])
            for i in range(m):
                out_col[start + i] = sup[i]
                out_val[start + i] = x[sup[i]]
                total += x[sup[i]]
        out_ptr[j + 1] = start + m
        err[j] = max(1.0 - total, 0.0)
        for i in range(nt):  # sparse clean-up: a seed costs time in the nodes it reaches, not in N
            t = touched[i]
            res[t] = 0.0
            x[t] = 0.0
            mark[t] = False
    nnz = out_ptr[n_seeds]
    return out_ptr, out_col[:nnz], out_val[:nnz], err, rounds_max, all_converged, pushes


# ============================================================================ planners
@_jit
def stall_jump(w, cur, walkers, batch, graph, used, order, out, guard, counters):
    """Walker ``w`` stalled at ``cur``: add a fallback node to its batch and restart from it there.

    Returns True when that completed the walker's batch.
    """
    wj, wpos, wend, wroot, wcur, wstall = walkers
    pos = wpos[w]
    bstart = wj[w] * batch
    v = fallback(cur, wroot[w], graph, used, order, out, bstart, pos, guard, counters)
    pos = claim(v, out, pos, used)
    wpos[w] = pos
    wroot[w] = v
    wcur[w] = v
    wstall[w] = 0
    return pos >= wend[w]


@_jit
def walk_plan(graph, used, order, out, n_plan, batch, p_thr, stall_steps, guard, walkers, counters):
    """Plan ``n_plan`` unused nodes into batches of ``batch`` by random walks with restart.

    Batch ``j`` fills ``out[j * batch : j * batch + size_j]``. ``walkers`` batches are
    built at once, one walk step each per round: their memory accesses are independent,
    so the CPU overlaps the cache misses of one walker with the others' (a single walk is
    latency-bound: each step's column load depends on the previous one). A node goes to
    whichever walker reaches it first (``walkers >= ceil(n_plan / batch)``: every batch at
    once, in rounds). ``p_thr`` is the restart probability scaled to ``2**32``
    (restart when the low 32 bits of the step's random draw fall below it). With
    ``deg > 0`` (every row has ``deg`` entries) the row of ``x`` starts at ``x * deg`` and
    the step skips the row-pointer load (same draw, same move).
    """
    crow, col, deg = graph
    state = order[2]
    labels, comm, _, gemb, _, _ = guard
    nb = (n_plan + batch - 1) // batch
    nw = min(walkers, nb)
    wj = np.full(nw, -2, dtype=np.int64)  # batch of each walker (-2: wants one, -1: done)
    wpos = np.zeros(nw, dtype=np.int64)  # next free slot in out
    wend = np.zeros(nw, dtype=np.int64)
    wroot = np.zeros(nw, dtype=np.int64)
    wcur = np.zeros(nw, dtype=np.int64)
    wstall = np.zeros(nw, dtype=np.int64)
    ws = (wj, wpos, wend, wroot, wcur, wstall)
    wedge = np.zeros(nw, dtype=np.int64)
    live = np.zeros(nw, dtype=np.int64)  # walkers with an unfinished batch
    guarded = labels.shape[0] > 0 or comm.shape[0] > 0 or gemb.shape[0] > 0
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
                        seed, viol = next_unused(order, used, out, bstart, bstart, guard)
                        wj[w] = j
                        wend[w] = min(bstart + batch, n_plan)
                        wpos[w] = claim(seed, out, bstart, used)
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
        # A restart and the move out of the root are one step: visits to the root itself
        # (already in the batch) cannot add a node, so skipping them leaves the sequence of
        # newly collected nodes distributed exactly as in the plain walk.
        x64 = state[0]  # xorshift64* kept in a register for the round (same stream as rand())
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
                # faster than branching on it). Writing out[pos] is harmless when cur is not new
                # (pos stays, the slot is overwritten later).
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
                    if stall_jump(w, cur, ws, batch, graph, used, order, out, guard, counters):
                        refill = True
                continue
            if not used[cur]:
                pos = wpos[w]
                bstart = wj[w] * batch
                if admissible(cur, out, bstart, pos, guard):
                    pos = claim(cur, out, pos, used)
                    wpos[w] = pos
                    wstall[w] = 0
                    if pos >= wend[w]:
                        refill = True
                    continue
                counters[GUARD_DEFERRALS] += 1
            wstall[w] += 1
            if wstall[w] >= stall_steps:
                if stall_jump(w, cur, ws, batch, graph, used, order, out, guard, counters):
                    refill = True
    counters[STEPS] += steps
    return n_plan


@_jit
def rank(score, sample, state):
    """Positions of ``score`` in the order candidates are taken: decreasing score (ties keep the given order),
    or with ``sample`` a draw without replacement proportional to the score (Efraimidis-Spirakis keys
    ``log(u) / score``; non-positive scores last)."""
    m = score.shape[0]
    keys = np.empty(m, dtype=np.float64)
    for t in range(m):
        w = np.float64(score[t])
        if sample:
            if w > 0.0:
                u = uniform(state)
                if u <= 0.0:
                    u = 1e-300
                keys[t] = np.log(u) / w
            else:
                keys[t] = -np.inf
        else:
            keys[t] = w
    return np.argsort(-keys, kind="mergesort")


@_jit
def fill_ranked(s, cand, score, sample, graph, used, order, out, bstart, pos, bend, guard, counters):
    """Fill the batch ``out[bstart:bend]`` (seed ``s`` already in) with the best unused candidates.

    Candidates are taken in the order of :func:`rank`. When they run out, the near / random
    fallbacks finish the batch. Returns the next free position (``bend``).
    """
    last = s
    if cand.shape[0] > 0:
        for t in rank(score, sample, order[2]):
            if pos >= bend:
                break
            v = cand[t]
            if used[v]:
                continue
            if admissible(v, out, bstart, pos, guard):
                pos = claim(v, out, pos, used)
                last = v
            else:
                counters[GUARD_DEFERRALS] += 1
    while pos < bend:
        v = fallback(last, s, graph, used, order, out, bstart, pos, guard, counters)
        pos = claim(v, out, pos, used)
        last = v
    return pos


@_jit
def rounds_plan(cands, sample, graph, used, order, out, n_plan, batch, guard, counters):
    """All the plan's batches grow together, one node each per round, from their seeds' ranked candidate lists.

    The ``ceil(n_plan / batch)`` seeds are the first unused nodes of the shuffled order (so
    they are spread over the graph like the data); batch ``j`` fills ``out[j * batch:]`` with
    the best unused, admissible entries of its seed's row of ``cands = (cptr, cidx, cval)``
    (ranked by :func:`rank`), taking turns with the other batches in snake order (forward,
    then backward, ...), so no batch is left with only what the others did not want. A batch
    whose list runs dry continues with the near / random fallbacks around its last node.
    """
    cptr, cidx, cval = cands
    nb = (n_plan + batch - 1) // batch
    seeds = np.empty(nb, dtype=np.int64)
    wpos = np.empty(nb, dtype=np.int64)
    wend = np.empty(nb, dtype=np.int64)
    wlast = np.empty(nb, dtype=np.int64)
    wptr = np.empty(nb, dtype=np.int64)
    wstop = np.empty(nb, dtype=np.int64)
    total = 0
    for j in range(nb):
        bstart = j * batch
        s, _ = next_unused(order, used, out, bstart, bstart, guard)
        seeds[j] = s
        wlast[j] = s
        wpos[j] = claim(s, out, bstart, used)
        wend[j] = min(bstart + batch, n_plan)
        total += cptr[s + 1] - cptr[s]
    ranked = np.empty(total, dtype=np.int64)  # every seed's row in the order it is taken
    at = 0
    for j in range(nb):
        a, e = cptr[seeds[j]], cptr[seeds[j] + 1]
        wptr[j] = at
        for t in rank(cval[a:e], sample, order[2]):
            ranked[at] = cidx[a + t]
            at += 1
        wstop[j] = at
    live = 0
    for j in range(nb):
        if wpos[j] < wend[j]:
            live += 1
    rnd = 0
    while live > 0:
        for jj in range(nb):
            j = jj if rnd % 2 == 0 else nb - 1 - jj
            pos = wpos[j]
            if pos >= wend[j]:
                continue
            bstart = j * batch
            v = -1
            while wptr[j] < wstop[j]:
                c = ranked[wptr[j]]
                wptr[j] += 1
                if used[c]:
                    continue
                if admissible(c, out, bstart, pos, guard):
                    v = c
                    break
                counters[GUARD_DEFERRALS] += 1
            if v < 0:
                v = fallback(wlast[j], seeds[j], graph, used, order, out, bstart, pos, guard, counters)
            wpos[j] = claim(v, out, pos, used)
            wlast[j] = v
            if wpos[j] >= wend[j]:
                live -= 1
        rnd += 1
    return n_plan


@_jit
def list_plan(seeds, seed_rows, cands, sample, graph, used, order, out, pos0, n_plan, batch, guard, counters):
    """Batches from ranked candidate lists: a batch is a seed plus the best unused entries of its list.

    ``cands = (cptr, cidx, cval)`` is a CSR of candidate lists; seed ``seeds[i]`` uses row
    ``seed_rows[i]``. Seeds already used are skipped (``SKIPPED_SEEDS``). Stops when
    ``n_plan`` nodes are planned or the seeds run out; returns ``(pos, seeds consumed)``.
    A batch whose list runs dry continues with the near / random fallbacks, so it is full.
    """
    cptr, cidx, cval = cands
    pos = pos0
    i = 0
    ns = seeds.shape[0]
    while pos < n_plan and i < ns:
        s = seeds[i]
        r = seed_rows[i]
        i += 1
        if used[s]:
            counters[SKIPPED_SEEDS] += 1
            continue
        bstart = pos
        bend = min(pos + batch, n_plan)
        pos = claim(s, out, pos, used)
        a = cptr[r]
        e = cptr[r + 1]
        pos = fill_ranked(s, cidx[a:e], cval[a:e], sample, graph, used, order, out, bstart, pos, bend, guard,
                          counters)
    return pos, i


@_jit
def ppr_plan(graph, used, order, out, n_plan, batch, p, eps, sample, guard, counters, scratch):
    """Batches by personalized PageRank from the next unused seed: :func:`push_seed`, then the ranking rule.

    Uniform transitions (``prob`` empty). The scratch arrays are cleared where touched.
    """
    crow, col = graph[0], graph[1]
    res, x, _, mark, _, touched = scratch
    no_prob = np.zeros(0, dtype=np.float64)
    no_dangling = np.zeros(0, dtype=np.bool_)
    pos = 0
    pushes = 0
    while pos < n_plan:
        bstart = pos
        bend = min(pos + batch, n_plan)
        s, _ = next_unused(order, used, out, bstart, pos, guard)
        pos = claim(s, out, pos, used)
        nt, _, _, npush = push_seed(crow, col, no_prob, no_dangling, s, p, eps, _NO_CAP, scratch)
        pushes += npush
        cand = touched[:nt].copy()
        score = np.empty(nt, dtype=np.float64)
        for t in range(nt):
            v = cand[t]
            score[t] = x[v] + res[v]
            x[v] = 0.0
            res[v] = 0.0
            mark[v] = False
        pos = fill_ranked(s, cand, score, sample, graph, used, order, out, bstart, pos, bend, guard, counters)
    counters[STEPS] += pushes
    return pos
