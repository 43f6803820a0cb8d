"""Random walks with restart (RWR, personalised PageRank) on a :class:`~graphbatch.ProximityGraph`.

All solvers share one convention. With restart probability ``p`` and the row-stochastic
transition matrix ``P`` (:meth:`ProximityGraph.transition_matrix`), the RWR vector of a
seed ``s`` is the fixed point of ``r = p e_s + (1 - p) (P^T r + (d . r) e_s)``, where ``d``
marks *dangling* nodes (no out-edges, or zero total weight): a walker there jumps back to
its seed. This is ``networkx.pagerank(G, alpha=1 - p, personalization={s: 1})``.

* :mod:`.power` -- :func:`rwr`: exact, power iteration over many seeds at once (SpMM;
  torch, scipy or CuPy behind one seam);
* :mod:`.push` -- :func:`rwr_truncated`: sparse forward push with an exact L1 error
  (vectorised torch engine, or the compiled kernel on CPU);
* :mod:`.monte_carlo` -- :func:`sample_neighbors` (one walk step) and :func:`rwr_monte_carlo`.

Example:
    >>> import torch
    >>> from graphbatch import ProximityGraph
    >>> from graphbatch.solvers import rwr
    >>> g = ProximityGraph.from_neighbors(torch.tensor([[1, 2], [2, 0], [0, 1]]))
    >>> r = rwr(g, [0, 1], 0.5)
    >>> r.shape, bool(torch.allclose(r.sum(1), torch.ones(2, dtype=r.dtype)))
    (torch.Size([2, 3]), True)
"""
from ._common import RWRInfo
from .monte_carlo import rwr_monte_carlo, sample_neighbors
from .power import BACKENDS, rwr
from .push import rwr_truncated

__all__ = ["RWRInfo", "rwr", "rwr_truncated", "rwr_monte_carlo", "sample_neighbors", "BACKENDS"]
