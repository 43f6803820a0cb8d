"""Graph adapter: a PyG dataset of graphs -> ``Data`` carrying ``node_index`` (optionally two augmented views).

Each *graph* of the dataset is one node of graphbatch's proximity graph; its
position in the dataset travels as a 1-element long tensor ``node_index``.

PyG increments every attribute whose name contains ``"index"`` by the number of
nodes when it batches graphs (that is what keeps ``edge_index`` valid), which
would corrupt ``node_index``. The adapter therefore re-classes each returned
graph as a thin subclass of its own class (``IndexedData`` for plain ``Data``)
that tells PyG to concatenate ``node_index`` without increment. Everything else
about the graph is unchanged, and the subclass pickles (DataLoader workers).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Union

import torch

from .augment import Transform
from .base import IndexedDataset

__all__ = ["GraphDataset", "IndexedData", "attach_node_index"]  # noqa: F822 - IndexedData: module __getattr__


def _data_cls():
    from torch_geometric.data import Data  # core dependency, imported lazily to keep import light
    return Data


class _NodeIndexMixin:
    """Batch ``node_index`` by plain concatenation (no per-graph increment)."""

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "node_index":
            return 0
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "node_index":
            return 0
        return super().__cat_dim__(key, value, *args, **kwargs)

    def __reduce__(self):
        base = type(self).__mro__[2]
        # (callable, args, state): the object exists (and is memoised) before its state, which refers
        # back to it through the storage's parent link, is unpickled
        return _new_indexed, (base,), self.__getstate__()


_INDEXED: dict[type, type] = {}


def _indexed_class(base: type) -> type:
    """The subclass of ``base`` that batches ``node_index`` without increment (created once per class)."""
    if issubclass(base, _NodeIndexMixin):
        return base
    cls = _INDEXED.get(base)
    if cls is None:
        doc = f"A ``{base.__name__}`` whose ``node_index`` batches to shape ``(B,)`` (no per-graph increment)."
        cls = type(f"Indexed{base.__name__}", (_NodeIndexMixin, base), {"__module__": __name__, "__doc__": doc})
        _INDEXED[base] = cls
    return cls


def _new_indexed(base: type) -> Any:
    cls = _indexed_class(base)
    return cls.__new__(cls)


def __getattr__(name: str) -> Any:
    # IndexedData is created on first use so that importing graphbatch does not import torch_geometric
    if name == "IndexedData":
        return _indexed_class(_data_cls())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def attach_node_index(data: Any, index: int) -> Any:
    """A shallow copy of ``data`` with ``node_index = tensor([index])`` that PyG batches to ``(B,)``.

    Args:
        data: a ``torch_geometric.data.Data`` (or subclass) graph; not modified.
        index: the graph's node index.

    Raises:
        TypeError: ``data`` is not a PyG ``Data`` (``HeteroData`` is not supported).

    Example:
        >>> import torch
        >>> from torch_geometric.data import Batch, Data
        >>> from graphbatch.adapters import attach_node_index
        >>> g = Data(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
        >>> Batch.from_data_list([attach_node_index(g, 7), attach_node_index(g, 2)]).node_index
        tensor([7, 2])
    """
    Data = _data_cls()
    if not isinstance(data, Data):
        raise TypeError(f"graph {index} must be a torch_geometric.data.Data, got {type(data).__name__}")
    out = copy.copy(data)
    object.__setattr__(out, "__class__", _indexed_class(type(data)))
    out.node_index = torch.tensor([int(index)], dtype=torch.long)
    return out


def _pyg_collater():
    from torch_geometric.loader.dataloader import Collater
    return Collater(None)


class GraphDataset(IndexedDataset):
    """Graphs as nodes: item ``i`` is graph ``i`` carrying ``node_index = tensor([i])``.

    Without ``augment`` an item is one ``Data``; a batch from
    ``torch_geometric.loader.DataLoader(ds, batch_sampler=sampler)`` is a
    ``Batch`` with ``batch.node_index`` of shape ``(B,)``. With ``augment`` an
    item is a tuple of two augmented views (each carrying ``node_index``), and
    PyG's collater turns a batch into a list of two ``Batch`` objects
    ``[view1, view2]`` aligned graph by graph.

    ``augment`` is one callable ``Data -> Data`` applied independently for each
    view, or a pair ``(aug1, aug2)``; graphbatch's GraphCL augmentations
    (:mod:`graphbatch.adapters.augment`) and PyG transforms both work.
    With ``seed``, view ``v`` of graph ``i`` in epoch ``e`` draws from a
    generator seeded from ``(seed, e, i, v)`` (other callables run under a
    seeded ``torch.random.fork_rng``), so views are reproducible.

    Args:
        dataset: an indexable of PyG ``Data`` graphs (``TUDataset``, a list, ...).
        augment: ``None``, a callable, or a pair of callables.
        seed: per-item augmentation seed.

    Raises:
        TypeError: an item is not a ``Data``, or an augmentation returns something else.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> from torch_geometric.loader import DataLoader
        >>> from graphbatch.adapters import GraphDataset
        >>> from graphbatch.adapters.augment import NodeDropping
        >>> graphs = [Data(x=torch.randn(4, 3), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]])) for _ in range(5)]
        >>> ds = GraphDataset(graphs, augment=NodeDropping(0.25), seed=0)
        >>> v1, v2 = next(iter(DataLoader(ds, batch_sampler=[[4, 1, 3]])))
        >>> v1.node_index.tolist(), v2.num_graphs, v1.num_nodes
        ([4, 1, 3], 3, 9)
    """

    def __init__(self, dataset: Any, augment: Union[None, Callable, tuple[Callable, Callable]] = None, *,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        if isinstance(dataset, (str, bytes)) or not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(f"dataset must be an indexable collection of torch_geometric Data graphs, got "
                            f"{type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("dataset must hold at least one graph")
        self.dataset = dataset
        self.augment = self._check_augment(augment)

    @staticmethod
    def _check_augment(augment: Any) -> tuple[Callable, Callable] | None:
        if augment is None:
            return None
        if isinstance(augment, (tuple, list)):
            if len(augment) != 2 or not all(callable(a) for a in augment):
                raise TypeError(f"augment must be a callable or a pair of callables, got {augment!r}")
            return (augment[0], augment[1])
        if not callable(augment):
            raise TypeError(f"augment must be a callable or a pair of callables, got {type(augment).__name__}")
        return (augment, augment)

    @property
    def collate_fn(self) -> Callable:  # type: ignore[override]
        """PyG's collater (``Batch`` for graphs, a list of ``Batch`` for view tuples)."""
        return _pyg_collater()

    @property
    def views(self) -> int:
        """1 without augmentation, else 2."""
        return 1 if self.augment is None else 2

    def __len__(self) -> int:
        return len(self.dataset)

    def graph(self, i: int) -> Any:
        """Graph ``i`` as stored (no copy, no ``node_index``)."""
        i = self._norm_index(i)
        data = self.dataset[i]
        if not isinstance(data, _data_cls()):
            raise TypeError(f"graph {i} must be a torch_geometric.data.Data, got {type(data).__name__}")
        return data

    def _view(self, data: Any, i: int, v: int) -> Any:
        aug = self.augment[v]
        g = self._generator(i, v)
        src = copy.copy(data)
        if isinstance(aug, Transform):
            out = aug(src, generator=g)
        elif g is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
                out = aug(src)
        else:
            out = aug(src)
        if not isinstance(out, _data_cls()):
            raise TypeError(f"augment returned {type(out).__name__} for graph {i}; it must return a "
                            f"torch_geometric.data.Data")
        return attach_node_index(out, i)

    def _get(self, i: int) -> Any:
        data = self.dataset[i]
        if not isinstance(data, _data_cls()):
            raise TypeError(f"graph {i} must be a torch_geometric.data.Data, got {type(data).__name__}")
        if self.augment is None:
            return attach_node_index(data, i)
        return tuple(self._view(data, i, v) for v in range(2))

    def with_augment(self, augment: Union[None, Callable, tuple[Callable, Callable]]) -> GraphDataset:
        """A shallow copy with another ``augment`` (sharing the graphs)."""
        other = copy.copy(self)
        other.augment = self._check_augment(augment)
        return other

    def for_embedding(self) -> GraphDataset:
        """The graphs without augmentation, for embedding."""
        return self.with_augment(None)

    def __repr__(self) -> str:
        return f"GraphDataset({type(self.dataset).__name__}, {len(self)} graphs, augment={self.augment!r})"

