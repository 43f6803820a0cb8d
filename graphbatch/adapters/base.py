"""The node-index protocol shared by the dataset adapters, and the helpers to use it.

A graphbatch sampler draws node indices ``0 .. N-1``; an adapter (:class:`IndexedDataset`)
maps each index to a training item that carries its index, so the training loop can hand
fresh embeddings back (``sampler.update(batch_index(batch), z)``). The protocol (length,
items, ``collate_fn``, ``for_embedding``) is specified in ``docs/concepts.md`` (section 6).
:func:`make_loader` is the integration point: it checks that dataset and sampler agree on
``N`` (:func:`check_sampler`) and builds a ``DataLoader`` with the right collate function;
:func:`batch_index` pulls the index tensor out of any collated batch.

Example:
    >>> import torch
    >>> from graphbatch.adapters import ImageDataset, make_loader, batch_index
    >>> ds = ImageDataset(torch.rand(6, 1, 4, 4))
    >>> loader = make_loader(ds, [[4, 0, 2], [1, 5, 3]])
    >>> [batch_index(b).tolist() for b in loader]
    [[4, 0, 2], [1, 5, 3]]
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import default_collate as _default_collate

from .._validation import check_int, check_seed

__all__ = ["IndexedDataset", "check_sampler", "make_loader", "batch_index", "item_generator"]


def item_generator(seed: int | None, epoch: int, index: int, view: int) -> torch.Generator | None:
    """A torch generator seeded from ``(seed, epoch, index, view)``; ``None`` when ``seed`` is ``None``.

    Gives every item/view its own reproducible random stream, independent of
    the order items are drawn in and of the number of DataLoader workers.

    Example:
        >>> import torch
        >>> from graphbatch.adapters.base import item_generator
        >>> a = torch.rand(2, generator=item_generator(0, 0, 5, 1))
        >>> torch.equal(a, torch.rand(2, generator=item_generator(0, 0, 5, 1)))
        True
    """
    if seed is None:
        return None
    state = np.random.SeedSequence([int(seed), int(epoch), int(index), int(view)]).generate_state(2, dtype=np.uint32)
    g = torch.Generator()
    g.manual_seed(int(state[0]) << 31 ^ int(state[1]))
    return g


class IndexedDataset(torch.utils.data.Dataset):
    """Base of the adapters: ``len`` = number of nodes, items carry their index.

    Subclasses implement ``__len__``, ``_get(i)`` and ``for_embedding()``; this
    base normalises and range-checks the index (negative indices wrap, like a
    list), holds the augmentation ``seed`` and ``epoch`` and the collate function.
    """

    #: collate function for a ``torch.utils.data.DataLoader`` over this dataset
    collate_fn: Callable = staticmethod(_default_collate)

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None:
            seed = check_seed("seed", seed)
        self.seed = seed
        self.epoch = 0
        self._serving_epoch: int | None = None  # the epoch of the batch being served (see __getitems__)

    def set_epoch(self, epoch: int) -> None:
        """Change the per-item augmentation streams of items fetched outside a graphbatch sampler's batches.

        A batch from a graphbatch sampler carries its epoch and overrides this (see
        :meth:`__getitems__`): with graphbatch samplers there is no need to call it. With another
        sampler and ``persistent_workers=True`` the workers hold their own copy of the dataset, so
        call this before the loader's workers start.
        """
        self.epoch = check_int("epoch", epoch, low=0)

    def _norm_index(self, i: Any) -> int:
        if isinstance(i, torch.Tensor) and i.numel() == 1 and not i.is_floating_point():
            i = int(i.item())
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(i).__name__} ({i!r})")
        n = len(self)
        i = int(i)
        if i < -n or i >= n:
            raise IndexError(f"index {i} is out of range for {type(self).__name__} of length {n}")
        return i % n

    def __getitem__(self, i: Any) -> Any:
        return self._get(self._norm_index(i))

    def _get(self, i: int) -> Any:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not implement _get(i)")

    def __getitems__(self, indices: Any) -> list:
        """The items of a batch. A batch from a graphbatch sampler carries its epoch (``indices.epoch``):
        the augmentations then follow that epoch, whatever ``self.epoch`` is (in every DataLoader worker)."""
        epoch = getattr(indices, "epoch", None)
        if epoch is None or epoch < 0:
            return [self[i] for i in indices]
        self._serving_epoch = int(epoch)
        try:
            return [self[i] for i in indices]
        finally:
            self._serving_epoch = None

    def _generator(self, index: int, view: int) -> torch.Generator | None:
        epoch = self.epoch if self._serving_epoch is None else self._serving_epoch
        return item_generator(self.seed, epoch, index, view)


def _sampler_num_nodes(sampler: Any) -> int | None:
    for name in ("num_nodes", "num_samples"):
        v = getattr(sampler, name, None)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return int(v)
    return None


def check_sampler(dataset: Any, sampler: Any) -> int:
    """Check that ``dataset`` and a (batch) ``sampler`` agree on the number of nodes.

    A graphbatch sampler is sized by ``num_nodes``; if the dataset is longer,
    some items are never drawn, if shorter, the loader fails mid-epoch. For a
    sampler with a ``num_nodes`` attribute that value must equal
    ``len(dataset)``; a plain list of index lists is checked index by index.

    Args:
        dataset: a map-style dataset (anything with ``__len__``).
        sampler: a graphbatch sampler (``num_nodes``), or an iterable of index lists.

    Returns:
        ``len(dataset)``.

    Raises:
        TypeError: ``dataset`` has no length.
        ValueError: the sizes disagree (the message gives both numbers).

    Example:
        >>> from graphbatch.adapters import SentenceDataset, check_sampler
        >>> check_sampler(SentenceDataset(["a b", "c d"]), [[1, 0]])
        2
    """
    try:
        n = len(dataset)
    except TypeError:
        raise TypeError(f"dataset must have a length (map-style dataset), got {type(dataset).__name__}") from None
    m = _sampler_num_nodes(sampler)
    if m is not None:
        if m != n:
            raise ValueError(f"sampler has num_nodes={m} but the dataset has {n} items; build the sampler with "
                             f"num_nodes=len(dataset)")
        return n
    if isinstance(sampler, (list, tuple)):
        for b, batch in enumerate(sampler):
            for i in batch:
                if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < n:
                    raise ValueError(f"sampler batch {b} holds index {i!r}, outside [0, {n}) for a dataset of "
                                     f"{n} items")
    return n


def make_loader(dataset: Any, batch_sampler: Iterable, **loader_kwargs: Any) -> DataLoader:
    """A ``DataLoader`` over an adapter driven by a batch sampler, after :func:`check_sampler`.

    Uses ``dataset.collate_fn`` unless ``collate_fn`` is given (PyG's collater
    for :class:`~graphbatch.adapters.GraphDataset`, torch's default otherwise).
    Equivalent to ``DataLoader(dataset, batch_sampler=batch_sampler,
    collate_fn=dataset.collate_fn, **loader_kwargs)`` for the adapters; for
    graphs, ``torch_geometric.loader.DataLoader(dataset, batch_sampler=...)``
    works as well.

    Args:
        dataset: an adapter (or any map-style dataset).
        batch_sampler: yields lists of indices (a graphbatch sampler).
        **loader_kwargs: passed to ``torch.utils.data.DataLoader`` (``num_workers``, ...).

    Example:
        >>> from graphbatch.adapters import SentenceDataset, make_loader
        >>> ds = SentenceDataset(["a cat", "a dog", "a cow"])
        >>> list(next(iter(make_loader(ds, [[2, 0]])))["views"][0])
        ['a cow', 'a cat']
    """
    for bad in ("batch_size", "shuffle", "sampler", "drop_last"):
        if bad in loader_kwargs:
            raise ValueError(f"{bad} conflicts with batch_sampler; set it on the sampler instead")
    check_sampler(dataset, batch_sampler)
    collate = loader_kwargs.pop("collate_fn", None) or getattr(dataset, "collate_fn", None) or _default_collate
    return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate, **loader_kwargs)


def _check_not_incremented(batch: Any, idx: Any) -> None:
    """Refuse a collated PyG ``Batch`` whose graphs' class increments ``node_index`` (plain ``Data``)."""
    if not (hasattr(batch, "ptr") and hasattr(batch, "num_graphs") and hasattr(batch, "__inc__")):
        return  # not a PyG Batch (e.g. a single Data): nothing was collated
    try:
        inc = batch.__inc__("node_index", idx)
    except Exception:  # noqa: BLE001 - a custom __inc__ that needs more: trust it
        return
    if bool(torch.as_tensor(inc).ne(0).any()):
        raise ValueError("batch.node_index was offset by PyG's collation (it adds each graph's node offset to "
                         "attributes whose name contains 'index': [3, 7, 11] becomes [3, 12, 21]); build the items "
                         "with graphbatch.GraphDataset or graphbatch.adapters.attach_node_index(data, i), whose "
                         "graphs batch node_index without the offset")


def batch_index(batch: Any) -> torch.Tensor:
    """The node indices of a collated batch as a LongTensor ``(B,)``.

    Accepts the adapters' batches: a dict with ``"index"``, a PyG ``Batch``
    with ``node_index``, a list/tuple of views (the first view's index), or a
    plain index tensor / list of ints.

    A PyG ``Batch`` must come from graphs whose class batches ``node_index`` without an
    increment (:class:`~graphbatch.GraphDataset` or :func:`~graphbatch.adapters.attach_node_index`):
    PyG adds each graph's node offset to every attribute whose name contains ``index``, so a
    hand-made ``node_index`` on plain ``Data`` turns ``[3, 7, 11]`` into ``[3, 12, 21]``.

    Raises:
        TypeError: the batch carries no index (the message says what it got).
        ValueError: a PyG ``Batch`` whose ``node_index`` PyG offset while collating.

    Example:
        >>> import torch
        >>> from graphbatch.adapters import batch_index
        >>> batch_index({"index": torch.tensor([3, 1])})
        tensor([3, 1])
    """
    if isinstance(batch, dict):
        if "index" not in batch:
            raise TypeError(f"batch has no 'index' entry (keys: {sorted(batch)}); build items with a "
                            f"graphbatch adapter or add the index to each item")
        idx = batch["index"]
    elif hasattr(batch, "node_index") and not isinstance(batch, torch.Tensor):
        idx = batch.node_index
        _check_not_incremented(batch, idx)
    elif isinstance(batch, (list, tuple)) and len(batch) > 0 and not isinstance(batch[0], (int, np.integer)):
        return batch_index(batch[0])
    elif isinstance(batch, (list, tuple)) and all(isinstance(i, (int, np.integer)) for i in batch):
        idx = torch.as_tensor([int(i) for i in batch], dtype=torch.long)
    elif isinstance(batch, torch.Tensor):
        idx = batch
    else:
        raise TypeError(f"cannot find node indices in a batch of type {type(batch).__name__}: expected a dict "
                        f"with 'index' or a PyG Batch with 'node_index'")
    idx = torch.as_tensor(idx)
    if idx.is_floating_point() or idx.dim() != 1:
        raise TypeError(f"batch index must be a 1-D integer tensor, got dtype {idx.dtype}, shape {tuple(idx.shape)}")
    return idx.long()
