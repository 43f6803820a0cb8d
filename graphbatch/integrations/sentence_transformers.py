"""sentence-transformers integration: hard-negative batches for ``SentenceTransformerTrainer``.

:class:`GraphBatchSampler` is a sentence-transformers ``DefaultBatchSampler`` subclass, so the
trainer accepts it as ``batch_sampler``; bind the model being trained (and any
:class:`graphbatch.RWRBatchSampler` options) with :meth:`GraphBatchSampler.with_model`. It
encodes the training texts and builds the graph before the first batch, re-encodes every
``refresh_every`` batches, and keeps rows that share a text out of one batch. The details
(distributed training, evaluation loaders, train/eval mode) are in ``docs/concepts.md``
(section 7). ``sentence-transformers`` is optional (``pip install 'graphbatch[sentence]'``):
this module imports without it, and the class is created on first access.

Example (needs the optional packages and a model, so it is not run as a doctest)::

    from graphbatch.integrations.sentence_transformers import GraphBatchSampler
    args = SentenceTransformerTrainingArguments(
        output_dir="out", per_device_train_batch_size=32,
        batch_sampler=GraphBatchSampler.with_model(model, k=20, candidates=200, refresh_every=100))
    SentenceTransformerTrainer(model=model, args=args, train_dataset=train,
                               loss=MultipleNegativesRankingLoss(model)).train()
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import backend
from .._validation import check_int

__all__ = ["GraphBatchSampler",  # noqa: F822 - created on first access (module __getattr__)
           "text_columns", "duplicate_groups", "encode_texts"]

_EXCLUDED_COLUMNS = {"dataset_name"}


def text_columns(dataset: Any, valid_label_columns: Sequence[str] | None = None) -> list[str]:
    """The columns of a ``datasets.Dataset`` that hold strings (label columns excluded), in order.

    Example:
        >>> class Toy:  # anything with column_names and column access
        ...     column_names = ["anchor", "positive", "label"]
        ...     def __getitem__(self, key):
        ...         return {"anchor": ["a"], "positive": ["b"], "label": [1]}[key] if isinstance(key, str) \\
        ...             else {"anchor": "a", "positive": "b", "label": 1}
        ...     def __len__(self):
        ...         return 1
        >>> text_columns(Toy(), ["label"])
        ['anchor', 'positive']
    """
    names = getattr(dataset, "column_names", None)
    if names is None:
        raise TypeError(f"dataset must be a datasets.Dataset (with column_names), got {type(dataset).__name__}")
    skip = set(valid_label_columns or ()) | _EXCLUDED_COLUMNS
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    first = dataset[0]
    return [c for c in names if c not in skip and isinstance(first[c], str)]


def duplicate_groups(columns: Sequence[Sequence[str]]) -> np.ndarray:
    """Group ids (``-1`` = unique row) joining rows that share any text value in any column.

    Rows ``i`` and ``j`` are in one group when a string appears in both (in any
    of the columns), transitively (union-find).

    Example:
        >>> duplicate_groups([["a", "b", "a", "c"], ["x", "y", "z", "y"]]).tolist()
        [0, 1, 0, 1]
    """
    n = len(columns[0]) if columns else 0
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for col in columns:
        for i, s in enumerate(col):
            j = owner.setdefault(s, i)
            if j != i:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    counts = np.bincount(roots, minlength=n) if n else np.zeros(0, dtype=np.int64)
    out = np.full(n, -1, dtype=np.int64)
    shared = counts[roots] > 1
    _, ids = np.unique(roots[shared], return_inverse=True)
    out[shared] = ids
    return out


def encode_texts(model: Any, texts: Sequence[str], *, batch_size: int = 64) -> torch.Tensor:
    """``model.encode(texts)`` as a tensor, under ``no_grad``, restoring the model's train/eval mode."""
    was_training = getattr(model, "training", None)
    try:
        with torch.no_grad():
            emb = model.encode(list(texts), batch_size=batch_size, convert_to_tensor=True,
                               show_progress_bar=False)
    finally:
        if was_training is not None:
            model.train(was_training)
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or emb.shape[0] != len(texts):
        raise TypeError(f"model.encode must return a (N, d) tensor for N={len(texts)} texts, got "
                        f"{type(emb).__name__} {tuple(getattr(emb, 'shape', ()))}")
    return emb.detach().float()


def _sampler_kwargs_check(sampler_cls: type, kwargs: dict[str, Any]) -> None:
    reserved = {"num_nodes", "batch_size", "drop_last", "seed", "embeddings", "refresh_every"}
    bad = reserved & set(kwargs)
    if bad:
        raise ValueError(f"{sorted(bad)} are set by the trainer / the sampler itself; do not pass them")
    params = {}
    for klass in sampler_cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        params.update(sig.parameters)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            break
    named = {k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    unknown = sorted(set(kwargs) - named)
    if unknown:
        raise TypeError(f"{sampler_cls.__name__} has no argument(s) {unknown}")


def _default_sampler() -> type:
    from ..samplers import RWRBatchSampler

    return RWRBatchSampler


class _GraphBatchSampler:
    """A sentence-transformers batch sampler that composes hard-negative batches with graphbatch.

    Create the class for the trainer with :meth:`with_model`; the trainer
    then builds it with its own ``batch_size``, ``drop_last`` and ``seed``.

    Args:
        dataset: the training ``datasets.Dataset``.
        batch_size, drop_last, valid_label_columns, generator, seed: as passed by the trainer.
        model: the ``SentenceTransformer`` being trained (bound by :meth:`with_model`).
        text_column: column whose texts are embedded (default: the first text column).
        refresh_every: re-encode all texts every this many batches (``None``: at epoch starts only).
        encode_batch_size: batch size of ``model.encode``.
        avoid_duplicates: never batch rows sharing a text (passed as ``labels`` to the sampler).
        sampler_cls: the graphbatch sampler class (default :class:`graphbatch.RWRBatchSampler`).
        **sampler_kwargs: options of ``sampler_cls`` (``k``, ``candidates``, ``restart_prob``, ...).

    Attributes:
        sampler: the inner graphbatch sampler (``.graph``, ``.stats``).
        texts: the embedded texts, in row order.

    Example (see the module docstring for the trainer side)::

        sampler_cls = GraphBatchSampler.with_model(model, k=10, candidates=50)
        args = SentenceTransformerTrainingArguments(output_dir="out", batch_sampler=sampler_cls)
    """

    model: Any = None
    default_kwargs: dict[str, Any] = {}

    def __init__(self, dataset: Any, batch_size: int, drop_last: bool,
                 valid_label_columns: list[str] | None = None, generator: torch.Generator | None = None,
                 seed: int = 0, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        opts = {**type(self).default_kwargs, **kwargs}
        model = opts.pop("model", None) or type(self).model
        text_column = opts.pop("text_column", None)
        refresh_every = opts.pop("refresh_every", 100)
        encode_batch_size = opts.pop("encode_batch_size", 64)
        avoid_duplicates = opts.pop("avoid_duplicates", True)
        sampler_cls = opts.pop("sampler_cls", None) or _default_sampler()
        if model is None or not hasattr(model, "encode"):
            raise ValueError("GraphBatchSampler needs the model being trained to embed the texts: pass "
                             "batch_sampler=GraphBatchSampler.with_model(model, ...) to the training arguments "
                             f"(got model={type(model).__name__})")
        if refresh_every is not None:
            refresh_every = check_int("refresh_every", refresh_every, low=1)
        _sampler_kwargs_check(sampler_cls, opts)
        # accelerate shards the batch sampler's output over processes itself, so the inner
        # sampler must produce the whole epoch on every rank
        params = inspect.signature(sampler_cls).parameters
        if "num_replicas" in params:
            opts.setdefault("num_replicas", 1)
        if "rank" in params:
            opts.setdefault("rank", 0)
        cols = text_columns(dataset, valid_label_columns)
        if not cols:
            raise ValueError(f"the dataset has no text column (columns: {list(dataset.column_names)}, label "
                             f"columns: {valid_label_columns})")
        if text_column is None:
            text_column = cols[0]
        elif text_column not in cols:
            raise ValueError(f"text_column {text_column!r} is not a text column of the dataset (text "
                             f"columns: {cols})")
        self.model = model
        self.text_column = text_column
        self.texts: list[str] = list(dataset[text_column])
        self.refresh_every = refresh_every
        self.encode_batch_size = int(encode_batch_size)
        n = len(self.texts)
        if avoid_duplicates:
            groups = duplicate_groups([list(dataset[c]) for c in cols])
            if (groups >= 0).any():
                opts.setdefault("labels", groups)
        emb = encode_texts(model, self.texts, batch_size=self.encode_batch_size)
        self.sampler = sampler_cls(n, min(int(batch_size), n), drop_last=bool(drop_last), seed=int(seed),
                                   embeddings=emb, **opts)
        self._since_refresh = 0
        self._epochs_started = 0

    @classmethod
    def with_model(cls, model: Any, **kwargs: Any) -> type:
        """A subclass bound to ``model`` and options, to pass as ``batch_sampler=`` to the trainer.

        Args:
            model: the ``SentenceTransformer`` being trained.
            **kwargs: ``text_column``, ``refresh_every``, ``encode_batch_size``, ``avoid_duplicates``,
                ``sampler_cls``, and the inner sampler's options (``k``, ``candidates``, ...).

        Raises:
            TypeError: an option the inner sampler does not have.
            ValueError: ``model`` has no ``encode`` method.
        """
        if model is None or not hasattr(model, "encode"):
            raise ValueError(f"model must be a SentenceTransformer (with .encode), got {type(model).__name__}")
        sampler_cls = kwargs.get("sampler_cls") or _default_sampler()
        own = {"text_column", "refresh_every", "encode_batch_size", "avoid_duplicates", "sampler_cls"}
        _sampler_kwargs_check(sampler_cls, {k: v for k, v in kwargs.items() if k not in own})
        return type(cls.__name__, (cls,), {"model": model, "default_kwargs": dict(kwargs),
                                          "__module__": cls.__module__, "__doc__": cls.__doc__})

    def reembed(self) -> bool:
        """Re-encode every text with the current model and rebuild the inner sampler's graph now.

        Batches not yet handed out in this epoch are re-planned on the new graph.

        Returns:
            True when the new graph was installed (see the inner sampler's ``refresh``).
        """
        emb = encode_texts(self.model, self.texts, batch_size=self.encode_batch_size)
        self.sampler.update(torch.arange(len(self.texts)), emb)
        self._since_refresh = 0
        return bool(self.sampler.refresh())

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        if self._epochs_started > 0 and self._since_refresh > 0:
            self.reembed()
        self._epochs_started += 1
        for batch in self.sampler:
            yield batch
            self._since_refresh += 1
            if self.refresh_every is not None and self._since_refresh >= self.refresh_every:
                self.reembed()

    @property
    def graph(self):
        """The inner sampler's current proximity graph."""
        return self.sampler.graph

    @property
    def stats(self) -> dict[str, Any]:
        """The inner sampler's counters (refreshes, ...)."""
        return self.sampler.stats


def _build_class() -> type:
    """``GraphBatchSampler``: the methods above on top of sentence-transformers' ``DefaultBatchSampler``."""
    backend.require("sentence_transformers", "graphbatch.integrations.sentence_transformers")
    try:  # sentence-transformers >= 6 keeps the samplers in base/
        from sentence_transformers.base.sampler import DefaultBatchSampler
    except ImportError:  # earlier layout
        from sentence_transformers.sampler import DefaultBatchSampler

    return type("GraphBatchSampler", (_GraphBatchSampler, DefaultBatchSampler),
                {"__module__": __name__, "__qualname__": "GraphBatchSampler", "__doc__": _GraphBatchSampler.__doc__})


_CACHE: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name == "GraphBatchSampler":
        if name not in _CACHE:
            _CACHE[name] = _build_class()
        return _CACHE[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
