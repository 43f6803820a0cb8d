"""Image adapter: ``(image, label)`` datasets or arrays -> augmented views + node index.

:class:`ImageDataset` wraps a tensor/array of images, a torchvision-style dataset of ``(image,
label)`` pairs or dicts, and returns ``{"index", "views", "label"}`` items; views come from a
transform (e.g. :func:`graphbatch.adapters.augment.simclr_augment`), seeded per item and epoch.
"""
from __future__ import annotations

import copy
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._validation import check_int
from .augment import Transform
from .base import IndexedDataset

__all__ = ["ImageDataset"]


def _to_image_tensor(img: Any, *, channels_last: bool, where: str) -> torch.Tensor:
    """PIL image / numpy array / tensor -> float tensor (C, H, W), uint8 scaled to [0, 1]."""
    moved = False
    if isinstance(img, torch.Tensor):
        t = img
    elif isinstance(img, np.ndarray) or hasattr(img, "__array_interface__") or hasattr(img, "__array__"):
        arr = np.asarray(img)
        if arr.dtype == object:
            raise TypeError(f"{where}: image converts to an object array, not numbers")
        # PIL and numpy images are channel-last (H, W, C) when 3-D
        if arr.ndim == 3 and not isinstance(img, np.ndarray):
            arr = np.ascontiguousarray(np.moveaxis(arr, -1, 0))
            moved = True
        t = torch.from_numpy(np.array(arr, copy=True))
    else:
        raise TypeError(f"{where}: image must be a torch.Tensor, numpy array or PIL image, got {type(img).__name__}")
    if channels_last and t.dim() == 3 and not moved:
        t = t.movedim(-1, 0)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"{where}: image must have shape (H, W) or (C, H, W), got {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.to(torch.float32) / 255.0
    elif t.dtype == torch.float64:  # numpy's default; models expect float32
        t = t.to(torch.float32)
    elif t.dtype == torch.bool:
        t = t.to(torch.float32)
    elif not t.is_floating_point():
        if t.is_complex():
            raise TypeError(f"{where}: image must be real-valued, got dtype {t.dtype}")
        t = t.to(torch.float32)
    return t


class ImageDataset(IndexedDataset):
    """Images as graph nodes: each item is ``{"index": i, "views": (v1, ..., vV), "label": y}``.

    Wraps either a map-style dataset whose items are ``(image, label)`` tuples
    (torchvision style, no ``transform`` set on it), bare images, or dicts
    (``image_key``/``label_key``); or an array/tensor of images ``(N, H, W)`` /
    ``(N, C, H, W)`` (``(N, H, W, C)`` with ``channels_last=True``) with optional
    ``labels``. Images become float tensors ``(C, H, W)`` (``uint8`` scaled to
    ``[0, 1]``, ``float64`` cast to ``float32``), then ``transform`` makes each of the ``views`` views. torchvision
    is not needed: see :mod:`graphbatch.adapters.augment`.

    With ``seed`` set, view ``v`` of item ``i`` in epoch ``e`` is computed with a
    generator seeded from ``(seed, e, i, v)``: graphbatch transforms receive it
    directly, other callables run under ``torch.random.fork_rng`` seeded from it,
    so both are reproducible. Without ``seed`` the transforms use torch's global
    RNG (which DataLoader seeds differently per worker). Give the seed to the
    dataset rather than to the transform when loading with several workers:
    a transform's own generator is copied into every worker, so the workers
    would repeat each other's random draws.

    Default collate gives ``batch["index"]`` ``(B,)``, ``batch["views"]`` a list
    of ``V`` tensors ``(B, C, H, W)``, ``batch["label"]`` ``(B,)``.

    Args:
        data: the dataset or the image array/tensor.
        transform: ``(C, H, W) -> (C', H', W')`` tensor callable; ``None``: the
            views are copies of the image.
        views: number of views per item (1 for embedding, 2 for contrastive pairs).
        labels: labels for array input (length ``N``); ignored for datasets.
        image_key, label_key: keys for dict-valued dataset items.
        channels_last: the array / images are ``(..., H, W, C)``.
        seed: per-item augmentation seed (see above).

    Raises:
        TypeError: an argument, an item or a transform output has the wrong type.
        ValueError: shapes or lengths disagree.

    Example:
        >>> import torch
        >>> from graphbatch.adapters import ImageDataset
        >>> from graphbatch.adapters import augment as A
        >>> ds = ImageDataset(torch.rand(10, 8, 8), A.RandomResizedCrop(6), labels=torch.arange(10), seed=0)
        >>> item = ds[3]
        >>> item["index"], [v.shape for v in item["views"]], int(item["label"])
        (3, [torch.Size([1, 6, 6]), torch.Size([1, 6, 6])], 3)
    """

    def __init__(self, data: Any, transform: Callable | None = None, *, views: int = 2,
                 labels: Any | None = None, image_key: str = "image", label_key: str = "label",
                 channels_last: bool = False, seed: int | None = None) -> None:
        super().__init__(seed)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        self.transform = transform
        self.views = check_int("views", views, low=1)
        self.image_key = image_key
        self.label_key = label_key
        self.channels_last = bool(channels_last)
        self._array: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._dataset: Any = None

        if isinstance(data, (np.ndarray, torch.Tensor)):
            t = torch.from_numpy(np.asarray(data)) if isinstance(data, np.ndarray) else data
            if t.dim() not in (3, 4):
                raise ValueError(f"data array must have shape (N, H, W) or (N, C, H, W), got {tuple(t.shape)}")
            if t.shape[0] == 0:
                raise ValueError("data must hold at least one image")
            if t.is_complex() or (t.dtype == torch.bool):
                raise TypeError(f"data must hold real-valued pixels, got dtype {t.dtype}")
            self._array = t
            if labels is not None:
                lab = torch.as_tensor(np.asarray(labels)) if not isinstance(labels, torch.Tensor) else labels
                if lab.dim() == 0 or lab.shape[0] != t.shape[0]:
                    raise ValueError(f"labels must have one entry per image ({t.shape[0]}), got shape "
                                     f"{tuple(lab.shape)}")
                self._labels = lab
        elif isinstance(data, (str, bytes)) or not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
            raise TypeError(f"data must be an array/tensor of images or a map-style dataset of (image, label) "
                            f"items, got {type(data).__name__}")
        else:
            if labels is not None:
                raise ValueError("labels applies to array input only; a dataset's items carry their own labels")
            if len(data) == 0:
                raise ValueError("data must hold at least one image")
            self._dataset = data

    def __len__(self) -> int:
        return int(self._array.shape[0]) if self._array is not None else len(self._dataset)

    def _raw(self, i: int):
        """(image tensor (C, H, W), label or None) for node i, before augmentation."""
        where = f"item {i}"
        if self._array is not None:
            img = _to_image_tensor(self._array[i], channels_last=self.channels_last, where=where)
            return img, (self._labels[i] if self._labels is not None else None)
        item = self._dataset[i]
        label = None
        if isinstance(item, dict):
            if self.image_key not in item:
                raise TypeError(f"{where} is a dict without the image key {self.image_key!r} (keys: "
                                f"{sorted(map(str, item))}); pass image_key=")
            img, label = item[self.image_key], item.get(self.label_key)
        elif isinstance(item, (tuple, list)):
            if len(item) == 0:
                raise TypeError(f"{where} is an empty {type(item).__name__}; expected (image, label)")
            img = item[0]
            label = item[1] if len(item) > 1 else None
        else:
            img = item
        return _to_image_tensor(img, channels_last=self.channels_last, where=where), label

    def image(self, i: int) -> torch.Tensor:
        """The un-augmented image of node ``i`` as a float tensor ``(C, H, W)``."""
        return self._raw(self._norm_index(i))[0]

    def _view(self, img: torch.Tensor, i: int, v: int) -> torch.Tensor:
        if self.transform is None:
            return img.clone()
        g = self._generator(i, v)
        if isinstance(self.transform, Transform):
            out = self.transform(img, generator=g)
        elif g is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
                out = self.transform(img)
        else:
            out = self.transform(img)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"transform returned {type(out).__name__} for item {i}; it must return a torch.Tensor "
                            f"image (C, H, W) (torchvision users: end the pipeline with a tensor conversion)")
        if out.dim() != 3:
            raise TypeError(f"transform returned a tensor of shape {tuple(out.shape)} for item {i}; it must return "
                            f"one image (C, H, W)")
        return out

    def _get(self, i: int) -> dict:
        img, label = self._raw(i)
        item = {"index": i, "views": tuple(self._view(img, i, v) for v in range(self.views))}
        if label is not None:
            if isinstance(label, numbers.Number) and not isinstance(label, torch.Tensor):
                label = torch.as_tensor(label)
            elif isinstance(label, np.ndarray) or isinstance(label, np.generic):
                label = torch.as_tensor(np.asarray(label))
            item["label"] = label
        return item

    def with_transform(self, transform: Callable | None, *, views: int | None = None) -> ImageDataset:
        """A shallow copy with another ``transform`` (and ``views``), sharing the data.

        Example:
            >>> import torch
            >>> from graphbatch.adapters import ImageDataset
            >>> ImageDataset(torch.rand(4, 5, 5)).with_transform(None, views=1)[0]["views"][0].shape
            torch.Size([1, 5, 5])
        """
        other = copy.copy(self)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        other.transform = transform
        if views is not None:
            other.views = check_int("views", views, low=1)
        return other

    def for_embedding(self, transform: Callable | None = None) -> ImageDataset:
        """One un-augmented view per node (or ``transform``, e.g. a resize/normalise), for embedding."""
        return self.with_transform(transform, views=1)

    def __repr__(self) -> str:
        src = f"array{tuple(self._array.shape)}" if self._array is not None else type(self._dataset).__name__
        return f"ImageDataset({src}, views={self.views}, transform={self.transform!r}, seed={self.seed})"

