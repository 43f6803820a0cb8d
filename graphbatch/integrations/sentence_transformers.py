"""sentence-transformers integration: hard-negative batches for ``SentenceTransformerTrainer``.

:class:`GraphBatchSampler` is a sentence-transformers ``DefaultBatchSampler`` subclass, so the
trainer accepts it as ``batch_sampler``; bind the model being trained (and any
:class:`graphbatch.RWRBatchSampler` options) with :meth:`GraphBatchSampler.with_model`. It
encodes the training texts and builds the graph before the first batch, re-encodes every
``refresh_every`` batches, and keeps rows that share a text out of one batch. In capture mode
(``with_model(model, capture=True)`` with the loss wrapped in :class:`CaptureLoss`) a refresh
re-encodes nothing: the embeddings the training loss computes refresh the bank (the rule and its
limits are in :mod:`graphbatch.integrations.st_capture`). The details (distributed training,
evaluation loaders, train/eval mode) are in ``docs/concepts.md`` (section 7).
``sentence-transformers`` is optional (``pip install 'graphbatch[sentence]'``): this module
imports without it, and the class is created on first access.

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
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import backend
from .._validation import check_bool, check_int
from .st_capture import CaptureLoss, TokenIndex, token_keys

__all__ = ["GraphBatchSampler",  # noqa: F822 - created on first access (module __getattr__)
           "CaptureLoss", "TokenIndex", "token_keys", "text_columns", "duplicate_groups", "encode_texts"]

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


def _init_params(sampler_cls: type) -> set[str]:
    """The named ``__init__`` arguments of ``sampler_cls`` and of the bases it forwards ``**kwargs`` to."""
    names: set[str] = set()
    for klass in sampler_cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        names.update(k for k, p in sig.parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return names


def _sampler_kwargs_check(sampler_cls: type, kwargs: dict[str, Any]) -> None:
    reserved = {"num_nodes", "batch_size", "drop_last", "seed", "embeddings", "refresh_every"}
    bad = reserved & set(kwargs)
    if bad:
        raise ValueError(f"{sorted(bad)} are set by the trainer / the sampler itself; do not pass them")
    unknown = sorted(set(kwargs) - _init_params(sampler_cls))
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
        refresh_every: re-encode all texts every this many batches (``None``: at epoch starts only);
            in capture mode, rebuild the graph from the bank every this many batches (when rows were
            captured since the last build).
        encode_batch_size: batch size of ``model.encode`` (and of the tokenization in capture mode).
        avoid_duplicates: never batch rows sharing a text (passed as ``groups`` to the sampler).
        capture: capture mode: refreshes re-encode nothing, the bank is fed by the training loss wrapped
            in :class:`~graphbatch.integrations.st_capture.CaptureLoss` (rows matched by token ids;
            the rule and its limits are in :mod:`graphbatch.integrations.st_capture`).
        initial_encode: capture mode only: encode every text once at creation, so the first epoch already
            has a graph (default). ``False`` encodes nothing at all: the first ``warmup_epochs``
            (an option of the inner sampler, default 1) are random batches, and the first graph is built
            at the first epoch start by which every row was captured once.
        sampler_cls: the graphbatch sampler class (default :class:`graphbatch.RWRBatchSampler`).
        **sampler_kwargs: options of ``sampler_cls`` (``k``, ``candidates``, ``restart_prob``, ...).

    Attributes:
        sampler: the inner graphbatch sampler (``.graph``, ``.stats``, ``.bank``).
        texts: the embedded texts, in row order.
        capture: whether the sampler is in capture mode.
        captured: capture mode: ``(N,)`` bool, rows written by the training loss at least once.
        capture_stats: capture mode: ``calls`` (writes), ``rows`` (rows written), ``skipped_width``
            (writes refused because their width is not the bank's).

    Example (see the module docstring for the trainer side)::

        sampler_cls = GraphBatchSampler.with_model(model, k=10, candidates=50)
        args = SentenceTransformerTrainingArguments(output_dir="out", batch_sampler=sampler_cls)
    """

    model: Any = None
    default_kwargs: dict[str, Any] = {}
    _capture_targets: Any = None  # weakref.WeakSet of the live capture-mode instances (set by with_model)

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
        capture = check_bool("capture", opts.pop("capture", False))
        initial_encode = _check_initial_encode(capture, opts.pop("initial_encode", None))
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
        self.capture = capture
        n = len(self.texts)
        if avoid_duplicates:
            groups = duplicate_groups([list(dataset[c]) for c in cols])
            if (groups >= 0).any() and not ({"groups", "labels"} & set(opts)):
                opts["groups" if "groups" in _init_params(sampler_cls) else "labels"] = groups
        emb = encode_texts(model, self.texts, batch_size=self.encode_batch_size) if initial_encode else None
        if capture:
            # the inner sampler refreshes on its own cadence, from whatever the loss captured
            opts["refresh_every"] = refresh_every if refresh_every is not None else "epoch"
            self.token_index = TokenIndex.from_texts(model, self.texts, batch_size=max(self.encode_batch_size, 256))
        self.sampler = sampler_cls(n, min(int(batch_size), n), drop_last=bool(drop_last), seed=int(seed),
                                   embeddings=emb, **opts)
        self.captured = np.zeros(n, dtype=bool)
        self.capture_stats: dict[str, int] = {"calls": 0, "rows": 0, "skipped_width": 0}
        self._warned_width = False
        self._warned_unfed = False
        self._train_yields = 0
        self._since_refresh = 0
        self._epochs_started = 0
        if capture and type(self)._capture_targets is not None:  # CaptureLoss(loss, <class>) feeds every instance
            type(self)._capture_targets.add(self)

    @classmethod
    def with_model(cls, model: Any, **kwargs: Any) -> type:
        """A subclass bound to ``model`` and options, to pass as ``batch_sampler=`` to the trainer.

        Args:
            model: the ``SentenceTransformer`` being trained.
            **kwargs: ``text_column``, ``refresh_every``, ``encode_batch_size``, ``avoid_duplicates``,
                ``capture``, ``initial_encode``, ``sampler_cls``, and the inner sampler's options
                (``k``, ``candidates``, ...).

        Raises:
            TypeError: an option the inner sampler does not have; ``capture`` / ``initial_encode`` not a bool.
            ValueError: ``model`` has no ``encode`` method; ``initial_encode=False`` without ``capture=True``.
        """
        if model is None or not hasattr(model, "encode"):
            raise ValueError(f"model must be a SentenceTransformer (with .encode), got {type(model).__name__}")
        sampler_cls = kwargs.get("sampler_cls") or _default_sampler()
        own = {"text_column", "refresh_every", "encode_batch_size", "avoid_duplicates", "sampler_cls", "capture",
               "initial_encode"}
        _check_initial_encode(check_bool("capture", kwargs.get("capture", False)), kwargs.get("initial_encode"))
        _sampler_kwargs_check(sampler_cls, {k: v for k, v in kwargs.items() if k not in own})
        return type(cls.__name__, (cls,), {"model": model, "default_kwargs": dict(kwargs),
                                          "_capture_targets": weakref.WeakSet(),
                                          "__module__": cls.__module__, "__doc__": cls.__doc__})

    def reembed(self) -> bool:
        """Re-encode every text with the current model and rebuild the inner sampler's graph now.

        Batches not yet handed out in this epoch are re-planned on the new graph. (Capture mode calls it
        never by itself; calling it there is a full re-encode, as in the default mode.)

        Returns:
            True when the new graph was installed (see the inner sampler's ``refresh``).
        """
        emb = encode_texts(self.model, self.texts, batch_size=self.encode_batch_size)
        self.sampler.update(torch.arange(len(self.texts)), emb)
        self._since_refresh = 0
        return bool(self.sampler.refresh())

    def capture_rows(self, keys: np.ndarray, embeddings: torch.Tensor) -> int:
        """Write embeddings computed in training into the bank rows whose token key matches (capture mode).

        Called by :class:`~graphbatch.integrations.st_capture.CaptureLoss` (after it gathered the rows of
        every rank, so this writes locally only). A key matching several rows (a text repeated in the
        column) writes all of them; keys matching no row are ignored.

        Args:
            keys: ``(n,)`` int64 token keys (:func:`~graphbatch.integrations.st_capture.token_keys`), distinct.
            embeddings: ``(n, d)`` embeddings, one per key (detached).

        Returns:
            The number of bank rows written.

        Raises:
            RuntimeError: the sampler is not in capture mode.
            ValueError: ``keys`` and ``embeddings`` disagree in length.
        """
        if not self.capture:
            raise RuntimeError("capture_rows needs a capture-mode sampler (with_model(model, capture=True))")
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2 or embeddings.shape[0] != keys.shape[0]:
            raise ValueError(f"embeddings must be a ({keys.shape[0]}, d) tensor, one row per key, got "
                             f"{type(embeddings).__name__} {tuple(getattr(embeddings, 'shape', ()))}")
        rows, which = self.token_index.lookup(keys)
        if rows.shape[0] == 0:
            return 0
        emb = embeddings.detach()
        truncate = getattr(self.model, "truncate_dim", None)
        if truncate and emb.shape[1] > truncate:  # model.encode truncates its output, the forward does not
            emb = emb[:, :truncate]
        bank = self.sampler.bank
        if bank is not None and emb.shape[1] != bank.shape[1]:
            self.capture_stats["skipped_width"] += 1
            if not self._warned_width:
                self._warned_width = True
                warnings.warn(f"GraphBatchSampler: captured embeddings have width {emb.shape[1]}, the bank "
                              f"{bank.shape[1]}; those rows are not written", RuntimeWarning, stacklevel=2)
            return 0
        emb = emb[torch.as_tensor(which, device=emb.device)]
        self.sampler.update(torch.as_tensor(rows, dtype=torch.int64), emb, gather=False)
        self.captured[rows] = True
        self.capture_stats["calls"] += 1
        self.capture_stats["rows"] += int(rows.shape[0])
        return int(rows.shape[0])

    def _check_fed(self) -> None:
        """Capture mode: warn once when training runs on while no loss call has written a row."""
        if self._warned_unfed or self.capture_stats["calls"] or not getattr(self.model, "training", False):
            return  # evaluation loaders iterate in eval mode, and are not fed unless they share texts
        self._train_yields += 1
        every = self.refresh_every if self.refresh_every is not None else len(self)
        if self._train_yields > 2 * every + 16:  # generous slack for prefetching
            self._warned_unfed = True
            warnings.warn(f"GraphBatchSampler(capture=True): {self._train_yields} batches handed out in training "
                          "mode and no training step has written a row to the bank, so the graph is never rebuilt. "
                          "Wrap the loss: loss=CaptureLoss(loss, <the with_model class>)", RuntimeWarning,
                          stacklevel=3)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        if self.capture:  # the inner sampler refreshes from the captured bank on its own cadence
            for batch in self.sampler:
                yield batch
                self._check_fed()
            return
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


def _check_initial_encode(capture: bool, initial_encode: Any) -> bool:
    if initial_encode is None:
        return True
    initial_encode = check_bool("initial_encode", initial_encode)
    if not initial_encode and not capture:
        raise ValueError("initial_encode=False needs capture=True: without captured rows the sampler would never "
                         "see an embedding")
    return initial_encode


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
