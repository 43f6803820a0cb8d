"""MVGRL (Hassani & Khasahmadi, ICML 2020), graph level: adjacency and PPR-diffusion views, two GCN encoders.

Used by ``graphs.py`` (``method="mvgrl"``). Each graph gives two fixed views: its adjacency (GCN with
self-loops, symmetric normalisation) and its personalised-PageRank diffusion ``S`` (restart 0.2, MVGRL's
alpha), computed with graphbatch's own RWR engine: :func:`graphbatch.rwr` on a
:class:`graphbatch.ProximityGraph` of the graph's edges, one seed per node, ``S = (R + R^T) / 2`` with
entries below ``DIFF_EPS`` dropped (a PPR row sums to 1; the dropped mass is 0.05 % / 0.3 % of it on average on
MUTAG / PROTEINS, at most 3.4 % for one graph; ~17-21 entries per row), used
as the propagation weights of the diffusion encoder (no further normalisation, as MVGRL).
Encoders: two 3-layer GCNs (hidden 32, PReLU, no normalisation layers, as MVGRL), graph readout =
concatenation of the sum-pooled layer outputs (96-d) per view; a shared 2-layer projection head.
Objective: graph-level cross-view contrast
(adjacency readout of graph i vs the diffusion readout of graph i, the other graphs of the batch as
negatives) with ``graphbatch.losses`` (InfoNCE / DCL / HCL), i.e. MVGRL's global-global variant instead of
its JSD local-global estimator, so that the batch's composition sets the negatives exactly as in the
other methods. Evaluation embedding: the sum of the two views' readouts (MVGRL's ``embed``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

RESTART = 0.2  # MVGRL's PPR alpha
DIFF_EPS = 1e-3
_DIFF_CACHE: dict[tuple, list] = {}


def ppr_diffusion(edge_index: torch.Tensor, n: int, restart: float = RESTART, eps: float = DIFF_EPS):
    """``(2, E)`` edges and weights of the symmetrised PPR matrix of one graph, by ``graphbatch.rwr``."""
    import graphbatch as gb

    if edge_index.numel() == 0:
        r = torch.eye(n, dtype=torch.float64)
    else:
        g = gb.ProximityGraph.from_coo(edge_index[0], edge_index[1], num_nodes=n)
        r = gb.rwr(g, torch.arange(n), restart, weighted=False, tol=1e-10)
    s = 0.5 * (r + r.t())
    keep = s >= eps
    keep.fill_diagonal_(True)
    ei = keep.nonzero().t().contiguous()
    return ei, s[keep].float()


def with_diffusion(graphs: list, key: str) -> list:
    """Copies of ``graphs`` carrying ``diff_edge_index`` / ``diff_weight`` (cached per data set in-process)."""
    from torch_geometric.data import Data

    if key not in _DIFF_CACHE:
        out = []
        for i, g in enumerate(graphs):
            ei, w = ppr_diffusion(g.edge_index, int(g.num_nodes))
            out.append(Data(x=g.x.float(), edge_index=g.edge_index, diff_edge_index=ei, diff_weight=w,
                            y=g.y, num_nodes=int(g.num_nodes), gidx=torch.tensor([i])))
        _DIFF_CACHE[key] = out
    return _DIFF_CACHE[key]


class GCNStack(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int, layers: int, normalize: bool, bn: bool = False) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        dims = [in_dim] + [hidden] * layers
        self.convs = torch.nn.ModuleList(GCNConv(a, b, normalize=normalize, add_self_loops=normalize)
                                         for a, b in zip(dims, dims[1:]))
        self.acts = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.PReLU(b), *([torch.nn.BatchNorm1d(b)] if bn else [])) for b in dims[1:])

    def forward(self, x, edge_index, edge_weight, batch, num_graphs) -> torch.Tensor:
        from torch_geometric.nn import global_add_pool

        pooled = []
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x, edge_index, edge_weight))
            pooled.append(global_add_pool(x, batch, size=num_graphs))
        return torch.cat(pooled, dim=1)


class MVGRL(torch.nn.Module):
    def __init__(self, in_dim: int, hidden: int = 32, layers: int = 3, bn: bool = False) -> None:
        super().__init__()
        self.adj = GCNStack(in_dim, hidden, layers, normalize=True, bn=bn)
        self.diff = GCNStack(in_dim, hidden, layers, normalize=False, bn=bn)
        out = hidden * layers
        self.proj = torch.nn.Sequential(torch.nn.Linear(out, out), torch.nn.PReLU(out), torch.nn.Linear(out, out))

    def readouts(self, b) -> tuple[torch.Tensor, torch.Tensor]:
        ra = self.adj(b.x, b.edge_index, None, b.batch, b.num_graphs)
        rd = self.diff(b.x, b.diff_edge_index, b.diff_weight, b.batch, b.num_graphs)
        return ra, rd

    def forward(self, b) -> tuple[torch.Tensor, torch.Tensor]:
        ra, rd = self.readouts(b)
        return self.proj(ra), self.proj(rd)

    def embed(self, b) -> torch.Tensor:
        ra, rd = self.readouts(b)
        return ra + rd


def batches(graphs: list, sampler):
    """``DataLoader(batch_sampler=sampler)`` without workers: yields PyG batches, one per sampler batch."""
    from torch_geometric.data import Batch

    for idx in sampler:
        yield Batch.from_data_list([graphs[int(i)] for i in idx])


def embed_all(model: MVGRL, graphs: list, device, chunk: int = 256) -> np.ndarray:
    from torch_geometric.data import Batch

    model.eval()
    with torch.no_grad():
        out = [model.embed(Batch.from_data_list(graphs[i:i + chunk]).to(device)).cpu()
               for i in range(0, len(graphs), chunk)]
    return torch.cat(out).double().numpy()


def project_all(model: MVGRL, graphs: list, device, chunk: int = 256) -> torch.Tensor:
    """Normalised adjacency-view projections (what the samplers are built and refreshed from)."""
    from torch_geometric.data import Batch

    with torch.no_grad():
        out = [F.normalize(model(Batch.from_data_list(graphs[i:i + chunk]).to(device))[0], dim=1).cpu()
               for i in range(0, len(graphs), chunk)]
    return torch.cat(out).float()
