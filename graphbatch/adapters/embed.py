"""Embed every node of an adapter with a model, in dataset order (the bank a sampler starts from).

:func:`embed_dataset` runs the model over ``dataset.for_embedding()`` (no augmentation) in eval
mode under ``torch.no_grad()``, restores the model's mode, places each batch's rows by the batch's
node index and checks that every node received a row.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import torch
from torch.utils.data import DataLoader
from torch.utils.data import default_collate as _default_collate

from .._validation import check_int
from .base import batch_index

__all__ = ["embed_dataset"]


def _model_device(model: Any) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return torch.device("cpu")


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_device(v, device) for v in obj)
    if hasattr(obj, "to") and callable(obj.to) and not isinstance(obj, (str, bytes)):
        return obj.to(device)
    return obj


def _default_forward(model: Callable, batch: Any) -> Any:
    if isinstance(batch, dict):
        if "views" not in batch:
            raise TypeError(f"cannot find model inputs in a batch with keys {sorted(batch)}; pass "
                            f"forward=lambda model, batch: ...")
        view = batch["views"][0]
        if isinstance(view, (list, tuple)) and view and all(isinstance(t, str) for t in view):
            texts = list(view)
            if hasattr(model, "encode") and callable(model.encode):  # sentence-transformers style
                return model.encode(texts, convert_to_tensor=True, show_progress_bar=False)
            return model(texts)
        return model(view)
    if isinstance(batch, (list, tuple)):
        return model(batch[0])
    return model(batch)


def _embed_batch(fwd: Callable, model: Callable, batch: Any, dev: torch.device,
                 start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(node indices, embeddings (B, d))`` of one batch; without an index, positions from ``start``."""
    try:
        idx = batch_index(batch).cpu()
    except TypeError:
        idx = None
    z = fwd(model, _to_device(batch, dev))
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"the model/forward returned {type(z).__name__}; it must return a tensor "
                        f"(B, d) (pass forward=lambda model, batch: ...)")
    if z.dim() == 1:
        z = z.unsqueeze(1)
    if z.dim() != 2:
        raise TypeError(f"the model/forward returned shape {tuple(z.shape)}; it must be (B, d)")
    if idx is None:
        idx = torch.arange(start, start + z.shape[0])
    if z.shape[0] != idx.numel():
        raise ValueError(f"the model/forward returned {z.shape[0]} rows for a batch of {idx.numel()} items")
    return idx, z


def embed_dataset(model: Callable, dataset: Any, *, batch_size: int = 256, collate_fn: Callable | None = None,
                  device: Union[str, torch.device, None] = None, progress: bool = True,
                  forward: Callable[[Any, Any], torch.Tensor] | None = None, num_workers: int = 0,
                  plain: bool = True, output_device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """Embed all nodes of ``dataset`` with ``model``; returns ``(N, d)`` in dataset order.

    Runs under ``torch.no_grad()`` with ``model.eval()`` (the previous
    train/eval mode is restored afterwards), moving each batch to the model's
    device (or ``device``). With ``plain=True`` the adapter's
    ``for_embedding()`` view is used (no augmentation, one view), so the
    embeddings describe the instances themselves.

    The default forward is ``model(batch["views"][0])`` for image/sentence
    batches (a list of strings for sentences; ``model.encode(texts,
    convert_to_tensor=True)`` when the model has ``encode``, as a
    ``SentenceTransformer`` does) and ``model(batch)`` for PyG batches; pass ``forward(model, batch)
    -> Tensor (B, d)`` for anything else, e.g. ``lambda m, b: m(b.x,
    b.edge_index, b.batch)`` for a GNN or ``lambda m, b: m.encode(b["views"][0],
    convert_to_tensor=True)`` for a sentence-transformers model. Rows are
    placed by the batch's node index, so any order of loading is safe.

    Args:
        model: a ``torch.nn.Module`` (or any callable).
        dataset: a graphbatch adapter, or any map-style dataset whose batches
            ``forward`` understands.
        batch_size: items per forward pass.
        collate_fn: overrides ``dataset.collate_fn`` / torch's default collate.
        device: where batches go (default: the model's device).
        progress: show a tqdm progress bar.
        forward: ``(model, batch) -> Tensor (B, d)``.
        num_workers: DataLoader workers.
        plain: embed ``dataset.for_embedding()`` when the dataset has it.
        output_device: where the result lives (default: where ``forward`` returns it).

    Returns:
        A ``(N, d)`` tensor; row ``i`` embeds node ``i``.

    Raises:
        TypeError: ``forward`` (or the model) returns something other than a 2-D tensor.
        ValueError: bad ``batch_size``, or rows do not match the batch.

    Example:
        >>> import torch
        >>> from graphbatch.adapters import ImageDataset, embed_dataset
        >>> ds = ImageDataset(torch.rand(10, 1, 4, 4))
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        >>> embed_dataset(model, ds, batch_size=4, progress=False).shape
        torch.Size([10, 3])
    """
    from tqdm.auto import tqdm

    batch_size = check_int("batch_size", batch_size, low=1)
    num_workers = check_int("num_workers", num_workers, low=0)
    if forward is not None and not callable(forward):
        raise TypeError(f"forward must be callable(model, batch) or None, got {type(forward).__name__}")
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    ds = dataset.for_embedding() if plain and hasattr(dataset, "for_embedding") else dataset
    try:
        n = len(ds)
    except TypeError:
        raise TypeError(f"dataset must have a length (map-style dataset), got {type(dataset).__name__}") from None
    dev = torch.device(device) if device is not None else _model_device(model)
    out_dev = torch.device(output_device) if output_device is not None else None
    collate = collate_fn or getattr(ds, "collate_fn", None) or _default_collate
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers)
    fwd = forward or _default_forward

    was_training = model.training if isinstance(model, torch.nn.Module) else None
    result: torch.Tensor | None = None
    filled = torch.zeros(n, dtype=torch.bool)
    start = 0
    try:
        if isinstance(model, torch.nn.Module):
            model.eval()
        with torch.no_grad(), tqdm(total=n, disable=not progress, desc="embedding", unit="item") as bar:
            for batch in loader:
                idx, z = _embed_batch(fwd, model, batch, dev, start)
                if result is None:
                    result = torch.empty(n, z.shape[1], dtype=z.dtype, device=out_dev or z.device)
                result[idx.to(result.device)] = z.to(result.device)
                filled[idx] = True
                start += z.shape[0]
                bar.update(z.shape[0])
    finally:
        if was_training is not None:
            model.train(was_training)
    if result is None:
        raise ValueError("dataset is empty")
    if not bool(filled.all()):
        missing = int((~filled).sum())
        raise ValueError(f"{missing} of {n} nodes received no embedding (the batches' index does not cover the "
                         f"dataset)")
    return result
