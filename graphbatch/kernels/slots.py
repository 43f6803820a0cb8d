"""Names shared by the compiled kernels and their Python callers (plain Python: importing this compiles nothing).

Counter slots: every planner kernel adds to an ``int64`` array of ``len(COUNTERS)``
entries; slot ``i`` is the sampler statistic ``COUNTERS[i]``.

Argument bundles (tuples that travel together through the kernels):

* ``graph = (crow, col, deg)``: the host CSR (int32 or int64) and its regular degree
  (``deg > 0``: every row has exactly ``deg`` entries, so row ``x`` starts at ``x * deg``);
* ``order = (perm, ptr, state)``: a shuffled order of the nodes (the random fallback and
  seed source), the read position in it (``(1,)`` int64) and the xorshift64* state
  (``(1,)`` uint64);
* ``guard = (labels, stamp, gemb, max_sim, scan_limit)``: the false-negative guard: group ids
  (``-1`` none; empty: no group guard), per-group batch stamps, guard embeddings (rows of
  ``(0, 1)``: no similarity guard), the similarity threshold, and how many unused nodes a
  guarded random fallback examines;
* ``scratch = (res, x, inq, mark, queue, touched)``: ``N``-sized push scratch arrays
  (float64, float64, bool, bool, int64, int64), zero/False between calls.

Example:
    >>> from graphbatch.kernels import slots
    >>> slots.COUNTERS[slots.NEAR_JUMPS]
    'near_jumps'
"""
from __future__ import annotations

__all__ = ["COUNTERS", "STEPS", "NEAR_JUMPS", "RANDOM_JUMPS", "GUARD_DEFERRALS", "GUARD_VIOLATIONS",
           "SKIPPED_SEEDS", "HOPS2"]

STEPS = 0             # walk steps (mode="walk") or pushes (mode="ppr")
NEAR_JUMPS = 1        # stall fallbacks to an unused node near the walker (1-2 hops)
RANDOM_JUMPS = 2      # stall fallbacks to a random unused node
GUARD_DEFERRALS = 3   # nodes skipped because the guard refused them for this batch
GUARD_VIOLATIONS = 4  # nodes placed although the guard refused them (no admissible node left)
SKIPPED_SEEDS = 5     # seeds already used when their turn came (batched ppr seeds)
COUNTERS = ("walk_steps", "near_jumps", "random_jumps", "guard_deferrals", "guard_violations", "skipped_seeds")

#: A stalled walk looks for an unused node among its out-neighbours, then among those of this
#: many of them (2 hops); each look costs up to ``(1 + HOPS2) * max_degree`` lookups.
HOPS2 = 4
