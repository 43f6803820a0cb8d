"""Dataset adapters: one node-index interface for images, sentences and graphs.

Each instance (image, sentence, graph) is a node of graphbatch's proximity
graph. The adapters make ``len(dataset)`` the number of nodes and let each item
carry its node index, so a batch drawn by a graphbatch sampler can report fresh
embeddings back with ``sampler.update(batch_index(batch), z)``. See
:mod:`graphbatch.adapters.base` for the protocol.

* :class:`ImageDataset` -> ``{"index", "views", "label"}`` with tensor-only
  augmentations from :mod:`graphbatch.adapters.augment`;
* :class:`SentenceDataset` -> ``{"index", "views": (anchor, positive)}``
  (SimCSE or pairs; lists or a Hugging Face dataset);
* :class:`GraphDataset` -> PyG ``Data`` with ``node_index`` (or two augmented
  views) with GraphCL augmentations from :mod:`graphbatch.adapters.augment`;
* :func:`make_loader`, :func:`check_sampler`, :func:`batch_index`,
  :func:`embed_dataset`.

Example:
    >>> import torch
    >>> from graphbatch.adapters import ImageDataset, make_loader, batch_index
    >>> from graphbatch.adapters import augment as A
    >>> ds = ImageDataset(torch.rand(8, 1, 6, 6), A.Compose([A.RandomHorizontalFlip(), A.GaussianNoise(0.1)]))
    >>> batch = next(iter(make_loader(ds, [[5, 2, 7]])))
    >>> batch_index(batch).tolist(), batch["views"][0].shape
    ([5, 2, 7], torch.Size([3, 1, 6, 6]))
"""
from . import augment
from .augment import AttributeMasking, EdgePerturbation, NodeDropping, RandomSubgraph
from .base import IndexedDataset, batch_index, check_sampler, item_generator, make_loader
from .embed import embed_dataset
from .graphs import GraphDataset, attach_node_index
from .images import ImageDataset
from .sentences import SentenceDataset

__all__ = [
    "augment",
    "IndexedDataset",
    "ImageDataset",
    "SentenceDataset",
    "GraphDataset",
    "IndexedData",  # noqa: F822 - created on first access, see __getattr__
    "attach_node_index",
    "NodeDropping",
    "EdgePerturbation",
    "AttributeMasking",
    "RandomSubgraph",
    "make_loader",
    "check_sampler",
    "batch_index",
    "embed_dataset",
    "item_generator",
]


def __getattr__(name: str):
    if name == "IndexedData":  # created lazily: importing it imports torch_geometric
        from . import graphs

        return graphs.IndexedData
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
