"""GraphCL-style graph contrastive training on generated graphs with hard-negative batches.

    python examples/train_graphs.py --steps 30

Each *graph* is a node of graphbatch's proximity graph. ``GraphDataset`` gives
every graph a ``node_index`` and two GraphCL-augmented views; PyG's loader
collates a batch into two ``Batch`` objects whose ``node_index`` is the batch the
sampler chose.
"""
from __future__ import annotations

import argparse
import time

import networkx as nx
import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GINConv, global_add_pool

from graphbatch import RWRBatchSampler
from graphbatch.adapters import (
    AttributeMasking,
    EdgePerturbation,
    GraphDataset,
    NodeDropping,
    RandomSubgraph,
    embed_dataset,
)
from graphbatch.adapters import augment as A
from graphbatch.losses import info_nce


def make_graphs(n: int, seed: int) -> list:
    """A mix of cycles, trees, grids and random graphs; node features = one-hot degree (capped at 5)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        size = int(torch.randint(6, 20, (1,), generator=g))
        kind = i % 4
        s = int(torch.randint(1 << 30, (1,), generator=g))
        if kind == 0:
            G = nx.cycle_graph(size)
        elif kind == 1:
            tree = getattr(nx, "random_labeled_tree", None) or nx.random_tree
            G = tree(size, seed=s)
        elif kind == 2:
            G = nx.convert_node_labels_to_integers(nx.grid_2d_graph(2, max(size // 2, 2)))
        else:
            G = nx.gnp_random_graph(size, 0.3, seed=s)
        edges = [(u, v) for u, v in G.edges()] + [(v, u) for u, v in G.edges()]
        ei = torch.tensor(edges, dtype=torch.long).t() if edges else torch.zeros(2, 0, dtype=torch.long)
        deg = torch.tensor([min(d, 5) for _, d in sorted(G.degree())])
        out.append(Data(x=F.one_hot(deg, 6).float(), edge_index=ei, y=torch.tensor([kind])))
    return out


class GIN(torch.nn.Module):
    def __init__(self, in_dim: int = 6, hidden: int = 32, layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * layers
        self.convs = torch.nn.ModuleList(
            GINConv(torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.ReLU(), torch.nn.Linear(b, b)))
            for a, b in zip(dims, dims[1:]))
        self.head = torch.nn.Linear(hidden, hidden)

    def forward(self, batch) -> torch.Tensor:
        x = batch.x
        for conv in self.convs:
            x = F.relu(conv(x, batch.edge_index))
        return self.head(global_add_pool(x, batch.batch, size=batch.num_graphs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--num-graphs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    aug = A.RandomChoice([NodeDropping(0.2), EdgePerturbation(0.2), AttributeMasking(0.2), RandomSubgraph(0.2)])
    dataset = GraphDataset(make_graphs(args.num_graphs, args.seed), augment=aug, seed=args.seed)
    model = GIN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = RWRBatchSampler(len(dataset), args.batch_size, k=10, candidates=100, refresh_every=10,
                              embeddings=embed_dataset(model, dataset, progress=False), seed=args.seed)
    loader = DataLoader(dataset, batch_sampler=sampler)  # PyG loader: a batch is [view1, view2]

    step, epoch, t0 = 0, 0, time.perf_counter()
    while step < args.steps:
        sampler.set_epoch(epoch)  # batches (and, through them, the augmentations) follow the epoch
        epoch += 1
        for view1, view2 in loader:
            z1, z2 = model(view1), model(view2)
            loss = info_nce(z1, z2, temperature=0.2)  # NT-Xent (GraphCL)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sampler.update(view1.node_index, z1.detach())
            step += 1
            if step % 10 == 0 or step == args.steps:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break
    print(f"done in {time.perf_counter() - t0:.1f}s; sampler refreshes: {sampler.stats['refreshes']}")


if __name__ == "__main__":
    main()
