"""Seeded augmentations, image and graph side by side (no torchvision needed).

* :mod:`.base` -- :class:`Transform` and the composition helpers :class:`Compose`,
  :class:`RandomApply`, :class:`RandomChoice` (any input type);
* :mod:`.image` -- tensor-only image transforms (the SimCLR set) and :func:`simclr_augment`;
* :mod:`.graph` -- GraphCL's graph augmentations on PyG ``Data`` (node dropping, edge
  perturbation, attribute masking, subgraph).

:class:`~graphbatch.adapters.ImageDataset` and :class:`~graphbatch.adapters.GraphDataset`
pass a per-item generator when given a ``seed``, so views are reproducible item by item,
whatever the order or the number of DataLoader workers. Also available as ``graphbatch.augment``.

Example:
    >>> import torch
    >>> import graphbatch as gb
    >>> t = gb.augment.simclr_augment(8)
    >>> t(torch.rand(3, 12, 12), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 8, 8])
"""
from .base import Compose, RandomApply, RandomChoice, Transform
from .graph import AttributeMasking, EdgePerturbation, NodeDropping, RandomSubgraph
from .image import (
    ColorJitter,
    GaussianBlur,
    GaussianNoise,
    Normalize,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    simclr_augment,
)

__all__ = ["Transform", "Compose", "RandomApply", "RandomChoice", "RandomResizedCrop", "RandomHorizontalFlip",
           "ColorJitter", "RandomGrayscale", "GaussianNoise", "GaussianBlur", "Normalize", "simclr_augment",
           "NodeDropping", "EdgePerturbation", "AttributeMasking", "RandomSubgraph"]
