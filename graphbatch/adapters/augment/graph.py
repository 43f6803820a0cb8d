"""GraphCL graph augmentations as seeded PyG-style transforms (``Data -> Data``).

The four augmentations of GraphCL (You et al., NeurIPS 2020), written with
torch ops. Each is a :class:`graphbatch.adapters.augment.Transform`: call it as
``aug(data, generator=None)``; it never modifies ``data`` in place and returns
a new ``Data`` of the same class. ``ratio`` is always the fraction of the graph
that is perturbed (nodes dropped / edges perturbed / nodes masked / nodes left
out of the subgraph). Node- and edge-level attributes are carried along by PyG's
``Data.subgraph`` / ``Data.edge_subgraph`` (``x``, ``pos``, ``edge_attr``, ...).

Combine them with :class:`graphbatch.adapters.augment.RandomChoice` (GraphCL's random
augmentation per view) or :class:`graphbatch.adapters.augment.Compose`.

Example:
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> from graphbatch.adapters.augment import (RandomChoice, NodeDropping, EdgePerturbation, AttributeMasking,
    ...                                       RandomSubgraph)
    >>> g = Data(x=torch.randn(10, 4), edge_index=torch.randint(0, 10, (2, 30)))
    >>> aug = RandomChoice([NodeDropping(0.2), EdgePerturbation(0.2), AttributeMasking(0.2), RandomSubgraph(0.2)])
    >>> out = aug(g, generator=torch.Generator().manual_seed(0))
    >>> out.num_nodes <= 10
    True
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from ..._validation import check_bool, check_probability, check_real
from .base import Transform

__all__ = ["NodeDropping", "EdgePerturbation", "AttributeMasking", "RandomSubgraph"]


def _check_data(data: Any, who: str):
    from torch_geometric.data import Data
    if not isinstance(data, Data):
        raise TypeError(f"{who} expects a torch_geometric.data.Data, got {type(data).__name__}")
    n = data.num_nodes
    if n is None:
        raise ValueError(f"{who}: cannot infer the number of nodes; set data.num_nodes")
    return int(n)


def _ratio(value: Any) -> float:
    return check_probability("ratio", value, open_low=False, closed_high=False)


def _count(ratio: float, n: int) -> int:
    return int(round(ratio * n))


def _edge_index(data: Any) -> torch.Tensor:
    ei = getattr(data, "edge_index", None)
    if ei is None:
        return torch.empty(2, 0, dtype=torch.long)
    return ei


class NodeDropping(Transform):
    """Drop ``round(ratio * N)`` nodes chosen uniformly (at least one node stays) with their edges.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> from graphbatch.adapters.augment import NodeDropping
        >>> g = Data(x=torch.arange(10.0)[:, None], edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
        >>> NodeDropping(0.3, seed=0)(g).num_nodes
        7
    """

    def __init__(self, ratio: float = 0.2, seed: int | None = None) -> None:
        super().__init__(seed)
        self.ratio = _ratio(ratio)

    def apply(self, data: Any, generator: torch.Generator | None) -> Any:
        n = _check_data(data, "NodeDropping")
        drop = min(_count(self.ratio, n), max(n - 1, 0))
        if drop == 0:
            return copy.copy(data)
        keep = torch.randperm(n, generator=generator)[drop:].sort().values
        dev = _edge_index(data).device
        return data.subgraph(keep.to(dev))


def _canonical_keys(ei: torch.Tensor, n: int, undirected: bool) -> torch.Tensor:
    if undirected:
        lo, hi = torch.minimum(ei[0], ei[1]), torch.maximum(ei[0], ei[1])
        return lo * n + hi
    return ei[0] * n + ei[1]


class EdgePerturbation(Transform):
    """Remove ``round(ratio * E)`` edges at random and add as many new random edges (GraphCL).

    ``E`` counts undirected edges (pairs) when the graph is undirected, and the
    graph stays undirected (both directions are removed/added together).
    ``undirected=None`` detects it. Added edges join two distinct nodes that were
    not linked; their edge-level attributes (``edge_attr``, ...) are copied from
    randomly chosen existing edges (no new edges are added to an edgeless graph
    that has edge attributes). With ``add=False`` edges are only removed.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> from graphbatch.adapters.augment import EdgePerturbation
        >>> ei = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
        >>> out = EdgePerturbation(0.34, seed=0)(Data(edge_index=ei, num_nodes=4))
        >>> out.edge_index.shape
        torch.Size([2, 6])
    """

    def __init__(self, ratio: float = 0.2, *, add: bool = True, undirected: bool | None = None,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        self.ratio = _ratio(ratio)
        self.add = check_bool("add", add)
        self.undirected = None if undirected is None else check_bool("undirected", undirected)

    def apply(self, data: Any, generator: torch.Generator | None) -> Any:
        from torch_geometric.utils import is_undirected
        n = _check_data(data, "EdgePerturbation")
        ei = _edge_index(data)
        dev = ei.device
        ei_cpu = ei.cpu()
        undirected = self.undirected
        if undirected is None:
            undirected = ei.numel() > 0 and bool(is_undirected(ei_cpu, num_nodes=n))
        keys = _canonical_keys(ei_cpu, n, undirected)
        uniq = torch.unique(keys)
        m = int(uniq.numel())
        k = _count(self.ratio, m)
        out = copy.copy(data)
        if k > 0:
            removed = uniq[torch.randperm(m, generator=generator)[:k]]
            keep_mask = ~torch.isin(keys, removed)
            out = data.edge_subgraph(keep_mask.to(dev)) if "edge_index" in data else out
        if not self.add or k == 0 or n < 2:
            return out
        # draw k new pairs that are not edges (before removal) and not self-loops
        existing = set(uniq.tolist())
        new: list = []
        seen = set()
        for _ in range(8):
            need = k - len(new)
            if need <= 0:
                break
            draw = 2 * need + 8
            u = torch.randint(0, n, (draw,), generator=generator)
            v = torch.randint(0, n, (draw,), generator=generator)
            for a, b in zip(u.tolist(), v.tolist()):
                if a == b:
                    continue
                if undirected and a > b:
                    a, b = b, a
                key = a * n + b
                if key in existing or key in seen:
                    continue
                seen.add(key)
                new.append((a, b))
                if len(new) == k:
                    break
        if not new:
            return out
        add = torch.tensor(new, dtype=torch.long).t()
        if undirected:
            add = torch.cat([add, add.flip(0)], dim=1)
            per_pair = 2
        else:
            per_pair = 1
        edge_keys = [key for key, _ in data if key != "edge_index" and data.is_edge_attr(key)]
        src_edges = None
        if edge_keys:
            e = int(ei.shape[1])
            if e == 0:
                return out
            pick = torch.randint(0, e, (len(new),), generator=generator)
            src_edges = pick.repeat(per_pair)
        base = out.edge_index if "edge_index" in out else torch.empty(2, 0, dtype=torch.long, device=dev)
        out.edge_index = torch.cat([base, add.to(dev)], dim=1)
        for key in edge_keys:
            val = data[key]
            dim = data.__cat_dim__(key, val)
            extra = val.index_select(dim, src_edges.to(val.device))
            out[key] = torch.cat([out[key], extra], dim=dim)
        return out


class AttributeMasking(Transform):
    """Replace the features of ``round(ratio * N)`` random nodes by ``fill`` (GraphCL attribute masking).

    Args:
        ratio: fraction of nodes whose feature row is masked.
        fill: the replacement value (cast to the feature dtype).
        key: the node feature attribute (default ``"x"``).

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> from graphbatch.adapters.augment import AttributeMasking
        >>> out = AttributeMasking(0.5, seed=0)(Data(x=torch.ones(4, 2)))
        >>> int((out.x == 0).all(dim=1).sum())
        2
    """

    def __init__(self, ratio: float = 0.2, *, fill: float = 0.0, key: str = "x", seed: int | None = None) -> None:
        super().__init__(seed)
        self.ratio = _ratio(ratio)
        self.fill = check_real("fill", fill)
        self.key = key

    def apply(self, data: Any, generator: torch.Generator | None) -> Any:
        n = _check_data(data, "AttributeMasking")
        x = getattr(data, self.key, None)
        if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[0] != n:
            raise ValueError(f"AttributeMasking needs node features data.{self.key} of shape (num_nodes, ...); "
                             f"got {None if x is None else tuple(getattr(x, 'shape', ()))}")
        out = copy.copy(data)
        k = _count(self.ratio, n)
        if k == 0:
            return out
        idx = torch.randperm(n, generator=generator)[:k].to(x.device)
        x = x.clone()
        x[idx] = torch.as_tensor(self.fill, dtype=x.dtype, device=x.device)
        out[self.key] = x
        return out


class RandomSubgraph(Transform):
    """Keep a connected-looking subgraph of ``N - round(ratio * N)`` nodes grown by random BFS (GraphCL subgraph).

    Starts at a random node and adds the whole frontier (neighbours, ignoring
    edge direction) layer by layer; the last layer is subsampled uniformly to
    hit the target size exactly. If the component runs out, growth jumps to a
    random unvisited node.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> from graphbatch.adapters.augment import RandomSubgraph
        >>> path = Data(edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]), num_nodes=5)
        >>> RandomSubgraph(0.4, seed=0)(path).num_nodes
        3
    """

    def __init__(self, ratio: float = 0.2, seed: int | None = None) -> None:
        super().__init__(seed)
        self.ratio = _ratio(ratio)

    def select(self, data: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """The sorted node ids the subgraph keeps (without building it)."""
        n = _check_data(data, "RandomSubgraph")
        target = max(1, n - _count(self.ratio, n))
        ei = _edge_index(data).cpu()
        row = torch.cat([ei[0], ei[1]])
        col = torch.cat([ei[1], ei[0]])
        in_set = torch.zeros(n, dtype=torch.bool)
        in_set[int(torch.randint(0, n, (1,), generator=generator))] = True
        count = 1
        while count < target:
            frontier = torch.unique(col[in_set[row] & ~in_set[col]])
            need = target - count
            if frontier.numel() == 0:
                rest = (~in_set).nonzero().view(-1)
                frontier = rest[torch.randint(0, rest.numel(), (1,), generator=generator)]
            elif frontier.numel() > need:
                frontier = frontier[torch.randperm(frontier.numel(), generator=generator)[:need]]
            in_set[frontier] = True
            count += int(frontier.numel())
        return in_set.nonzero().view(-1)

    def apply(self, data: Any, generator: torch.Generator | None) -> Any:
        keep = self.select(data, generator)
        if keep.numel() == data.num_nodes:
            return copy.copy(data)
        return data.subgraph(keep.to(_edge_index(data).device))
