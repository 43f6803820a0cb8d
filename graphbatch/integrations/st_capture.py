"""Capture mode for the sentence-transformers integration: the training loss feeds the embedding bank.

In capture mode (``GraphBatchSampler.with_model(model, capture=True, ...)``) a refresh re-encodes
nothing: :class:`CaptureLoss` wraps the training loss and hands the sentence embeddings that the
loss computes anyway to the sampler, so the bank stays fresh from training itself and a refresh only
rebuilds the graph.

The mapping rule (content addressing): a training step's embeddings reach the bank by their
**token ids**, not by batch position. When the sampler is created it tokenizes its text column once
(``model.preprocess``, as the trainer's collator does) and keeps a 64-bit key of every row's token
ids (:func:`token_keys`, :class:`TokenIndex`). While the wrapped loss runs with the model in training
mode, a forward hook on the model records every forward call's ``input_ids`` / ``attention_mask``
and ``sentence_embedding``; each embedded row whose key equals the key of sampler rows is written to
those rows (to all of them when several rows share the text: the model sees only token ids, so it is
their embedding too). Nothing depends on the order or the timing of batches, so the mapping holds
with dataloader workers and prefetching (``dataloader_prefetch_factor``, accelerate's look-ahead),
gradient accumulation (each micro-batch's loss call writes its own rows), resumed runs that skip
batches, and sharded DDP batches (each rank's rows are all-gathered, so every rank's bank stays the
same). Evaluation never writes: the hook records only forward calls made in training mode
(``SentenceTransformerTrainer`` switches the model to eval mode for evaluation).

Limits (each reported, not silent):

* A text is matched only if the training step tokenized it exactly as the sampler did: a prompt
  added to the column (``args.prompts``), a router/task mapping that changes the tokenization, or a
  changed ``max_seq_length`` give no match; a training call that embeds rows of which none match
  warns once (``RuntimeWarning``) and the bank keeps its rows.
* Rows not captured since the last refresh keep their previous bank row (the initial encode, or
  their last capture): the graph is rebuilt from a bank whose rows have different ages. Captured rows
  are train-mode embeddings (with dropout) computed before that step's optimizer update.
* Within one loss call the first forward of a text wins (wrapper losses that re-embed with a
  truncated model, e.g. ``AdaptiveLayerLoss``, embed the full model first); forwards whose width is
  not the bank's (``MatryoshkaLoss`` truncations) are skipped and counted.
* Forwards that bypass the model's ``__call__`` (hooks do not fire, e.g. some ``torch.compile``
  set-ups) and losses that embed only in ``backward`` (the ``Cached*`` losses embed once in the
  forward, which is captured) write nothing; ``CaptureLoss.stats`` shows it.
* Keys are 64-bit hashes: two different token sequences collide with probability about
  ``n**2 / 2**65`` for ``n`` distinct texts (about 3e-8 for a million).
* DDP: every rank must call the loss the same number of times in training mode (as DDP itself
  requires); the rows are gathered once per call.

Example (needs the optional packages and a model, so it is not run as a doctest)::

    from graphbatch.integrations.sentence_transformers import CaptureLoss, GraphBatchSampler
    bound = GraphBatchSampler.with_model(model, k=20, candidates=200, refresh_every=100, capture=True)
    loss = CaptureLoss(MultipleNegativesRankingLoss(model), bound)
    args = SentenceTransformerTrainingArguments(output_dir="out", batch_sampler=bound)
    SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=loss).train()
"""
from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .._validation import describe, warn_user
from ..samplers.distributed import all_gather_rows, is_distributed

__all__ = ["CaptureLoss", "TokenIndex", "token_keys"]

_OFFSET = np.uint64(0xCBF29CE484222325)
_STEP = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LEN = np.uint64(0xD6E8FEB86659FD93)


def _shift(x: np.ndarray, s: int) -> np.ndarray:
    return x >> np.uint64(s)


def token_keys(input_ids: Any, attention_mask: Any = None) -> np.ndarray:
    """A 64-bit key per row of a padded token batch, from the tokens the mask keeps, in order.

    The key does not depend on the padding (amount or side), so a text gets the same key in every
    batch it is tokenized in.

    Args:
        input_ids: ``(n, L)`` integer tensor or array.
        attention_mask: ``(n, L)`` 0/1 mask (``None``: every position is a token).

    Returns:
        ``(n,)`` int64 array.

    Raises:
        ValueError: not 2-D, or the mask's shape differs.

    Example:
        >>> import torch
        >>> a = token_keys(torch.tensor([[101, 7, 102, 0]]), torch.tensor([[1, 1, 1, 0]]))
        >>> b = token_keys(torch.tensor([[0, 101, 7, 102]]), torch.tensor([[0, 1, 1, 1]]))
        >>> bool(a[0] == b[0]), bool(a[0] == token_keys(torch.tensor([[101, 8, 102]]))[0])
        (True, False)
    """
    ids = input_ids.detach().cpu().numpy() if isinstance(input_ids, torch.Tensor) else np.asarray(input_ids)
    if ids.ndim != 2:
        raise ValueError(f"input_ids must be 2-D (rows x tokens), got shape {ids.shape}")
    ids = ids.astype(np.int64).view(np.uint64)
    if attention_mask is None:
        mask = np.ones(ids.shape, dtype=bool)
    else:
        mask = (attention_mask.detach().cpu().numpy() if isinstance(attention_mask, torch.Tensor)
                else np.asarray(attention_mask)) != 0
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask must have the shape of input_ids {ids.shape}, got {mask.shape}")
    h = np.full(ids.shape[0], _OFFSET, dtype=np.uint64)
    for t in range(ids.shape[1]):  # one vectorised step per position, only where the mask keeps a token
        keep = mask[:, t]
        x = (h ^ ids[:, t]) * _STEP
        h = np.where(keep, x ^ _shift(x, 32), h)
    h = h ^ (mask.sum(axis=1).astype(np.uint64) * _LEN)
    h = (h ^ _shift(h, 30)) * _M1  # splitmix64 finaliser
    h = (h ^ _shift(h, 27)) * _M2
    return (h ^ _shift(h, 31)).view(np.int64)


class TokenIndex:
    """The rows of a text column by token key: ``lookup(keys)`` gives every row whose tokens have that key.

    Args:
        keys: ``(N,)`` int64 key of each row (:func:`token_keys`).

    Example:
        >>> idx = TokenIndex(np.array([5, 9, 5], dtype=np.int64))
        >>> rows, which = idx.lookup(np.array([5, 7], dtype=np.int64))
        >>> rows.tolist(), which.tolist()
        ([0, 2], [0, 0])
    """

    def __init__(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        self.num_rows = int(keys.shape[0])
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]

    @classmethod
    def from_texts(cls, model: Any, texts: Sequence[str], *, batch_size: int = 1024) -> TokenIndex:
        """Tokenize ``texts`` with ``model.preprocess`` (as the trainer's collator does) and index them.

        Raises:
            TypeError: the model has no ``preprocess`` or it returns no ``input_ids``.
        """
        prep = getattr(model, "preprocess", None)
        if prep is None:
            raise TypeError(f"capture mode needs a model with .preprocess (sentence-transformers >= 5), got "
                            f"{type(model).__name__}")
        parts = []
        for start in range(0, len(texts), batch_size):
            feats = prep(list(texts[start:start + batch_size]))
            ids = feats.get("input_ids") if isinstance(feats, Mapping) else None
            if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
                raise TypeError("capture mode matches rows by token ids, but model.preprocess returned no 2-D "
                                f"input_ids (keys: {sorted(feats) if isinstance(feats, Mapping) else describe(feats)})")
            parts.append(token_keys(ids, feats.get("attention_mask")))
        return cls(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, which)``: the rows whose key is ``keys[which[j]]``, for every matching row ``rows[j]``."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        lo = np.searchsorted(self._sorted, keys, side="left")
        hi = np.searchsorted(self._sorted, keys, side="right")
        counts = hi - lo
        total = int(counts.sum())
        which = np.repeat(np.arange(keys.shape[0]), counts)
        starts = np.cumsum(counts) - counts
        offsets = np.arange(total) - np.repeat(starts, counts)
        return self._order[np.repeat(lo, counts) + offsets], which


def _unwrap(model: Any) -> Any:
    """The module under DDP / ``torch.compile`` wrappers."""
    for _ in range(4):
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            break
        model = inner
    return model


def _max_over_ranks(value: int, device: torch.device) -> int:
    dist = torch.distributed
    if dist.get_backend() == "nccl" and device.type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


class CaptureLoss(torch.nn.Module):
    """Wrap a sentence-transformers loss so that its training embeddings refresh a capture-mode sampler's bank.

    The loss itself is unchanged (same value, same gradients): while it runs with the model in
    training mode, a forward hook records the sentence embeddings the model computes, and after it
    returns they are written, detached, to the bank rows with the same token ids (the rule and its
    limits are in :mod:`graphbatch.integrations.st_capture`). Calls in eval mode (the trainer's
    evaluation loss) only run the loss.

    Args:
        loss: the loss module, e.g. ``MultipleNegativesRankingLoss(model)``; it must embed with the
            sampler's model.
        sampler: the class from ``GraphBatchSampler.with_model(model, capture=True, ...)`` (the one
            passed as ``batch_sampler=``: every sampler the trainer creates from it is fed, see
            below) or one capture-mode sampler instance.

    Every live sampler created from the class receives the rows it holds: the training sampler,
    and also the evaluation loaders' samplers that the trainer builds from the same class (only
    with embeddings of training steps, for the texts they share with the training set; their graph
    only orders the evaluation batches).

    Attributes:
        loss: the wrapped loss.
        stats: counters: ``train_calls`` / ``eval_calls`` (loss calls by model mode), ``forwards``
            (model forward calls recorded in training calls), ``rows_embedded`` (distinct texts embedded
            in training calls, this rank), ``rows_written`` (bank rows written, summed over samplers),
            ``unmatched_calls`` (training calls that matched no row), ``skipped_forwards`` (forwards
            without token ids or of another width).

    Raises:
        TypeError: ``loss`` is not a ``torch.nn.Module``, or ``sampler`` is neither a bound
            ``GraphBatchSampler`` class nor an instance.
        ValueError: the sampler is not in capture mode, or the loss embeds with another model.

    Example (see the module docstring for the trainer side)::

        bound = GraphBatchSampler.with_model(model, k=20, candidates=200, capture=True)
        loss = CaptureLoss(MultipleNegativesRankingLoss(model), bound)
    """

    def __init__(self, loss: torch.nn.Module, sampler: Any) -> None:
        super().__init__()
        if not isinstance(loss, torch.nn.Module):
            raise TypeError(f"loss must be a torch.nn.Module (a sentence-transformers loss), got {describe(loss)}")
        if isinstance(sampler, type):
            registry = getattr(sampler, "_capture_targets", None)
            model = getattr(sampler, "model", None)
            if registry is None or model is None:
                raise TypeError("sampler must be the class returned by GraphBatchSampler.with_model(model, "
                                f"capture=True, ...) or a capture-mode sampler instance, got the class {sampler!r}")
            if not getattr(sampler, "default_kwargs", {}).get("capture", False):
                raise ValueError("the sampler class is not in capture mode: create it with "
                                 "GraphBatchSampler.with_model(model, capture=True, ...)")
            instance = None
        elif callable(getattr(sampler, "capture_rows", None)):
            if not getattr(sampler, "capture", False):
                raise ValueError("the sampler is not in capture mode: create its class with "
                                 "GraphBatchSampler.with_model(model, capture=True, ...)")
            registry, model, instance = None, sampler.model, sampler
        else:
            raise TypeError("sampler must be the class returned by GraphBatchSampler.with_model(model, "
                            f"capture=True, ...) or a capture-mode sampler instance, got {describe(sampler)}")
        loss_model = getattr(loss, "model", None)
        if loss_model is not None and _unwrap(loss_model) is not model:
            raise ValueError(f"the loss embeds with another model ({type(loss_model).__name__} at "
                             f"{id(loss_model):#x}) than the sampler encodes with ({type(model).__name__} at "
                             f"{id(model):#x}); pass the model being trained to both")
        self.loss = loss
        # plain attributes, not submodules: the model is already the loss's child
        object.__setattr__(self, "_st_model", model)
        object.__setattr__(self, "_registry", registry)
        object.__setattr__(self, "_instance", weakref.ref(instance) if instance is not None else None)
        self.stats: dict[str, int] = {"train_calls": 0, "eval_calls": 0, "forwards": 0, "rows_embedded": 0,
                                      "rows_written": 0, "unmatched_calls": 0, "skipped_forwards": 0}
        self._warned: set[str] = set()

    # the trainer swaps a DDP / compiled wrapper into ``loss.model``: expose the inner loss's
    @property
    def model(self) -> Any:
        """The wrapped loss's ``model`` (the trainer replaces it with its DDP wrapper)."""
        return self.loss.model

    @model.setter
    def model(self, value: Any) -> None:
        self.loss.model = value

    @property
    def citation(self) -> str:
        """The wrapped loss's citation (for the model card)."""
        return self.loss.citation

    def get_config_dict(self) -> dict[str, Any]:
        """The wrapped loss's configuration (for the model card)."""
        get = getattr(self.loss, "get_config_dict", None)
        return dict(get()) if callable(get) else {}

    def targets(self) -> list[Any]:
        """The capture-mode samplers fed by this loss (those alive now)."""
        if self._instance is not None:
            inst = self._instance()
            return [] if inst is None else [inst]
        return list(self._registry)

    def forward(self, features: Any, labels: Any = None) -> Any:
        """The wrapped loss on ``(features, labels)``; in training mode its embeddings also reach the bank."""
        model = self._st_model
        if not model.training:
            self.stats["eval_calls"] += 1
            return self.loss(features, labels)
        self.stats["train_calls"] += 1
        recorded: list[tuple[Any, Any, Any]] = []

        def hook(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            if not module.training:
                return
            inp = args[0] if args else kwargs.get("input")
            ids = inp.get("input_ids") if isinstance(inp, Mapping) else None
            emb = output.get("sentence_embedding") if isinstance(output, Mapping) else None
            recorded.append((ids, inp.get("attention_mask") if ids is not None else None,
                             emb.detach() if isinstance(emb, torch.Tensor) else None))

        handle = model.register_forward_hook(hook, with_kwargs=True)
        try:
            out = self.loss(features, labels)
        finally:
            handle.remove()
        loss_model = getattr(self.loss, "model", None)
        if loss_model is not None and _unwrap(loss_model) is not model:
            self._warn_once("model", "CaptureLoss: the loss now embeds with another model than the sampler (was it "
                            "re-created, e.g. by model_init?); nothing is captured, the bank keeps its rows")
            recorded = []
        self._capture(recorded)
        return out

    def _capture(self, recorded: list[tuple[Any, Any, Any]]) -> None:
        good = []
        for ids, mask, emb in recorded:
            ok = (isinstance(ids, torch.Tensor) and ids.dim() == 2 and isinstance(emb, torch.Tensor)
                  and emb.dim() == 2 and emb.shape[0] == ids.shape[0])
            if ok:
                good.append((ids, mask, emb))
            else:
                self.stats["skipped_forwards"] += 1
        self.stats["forwards"] += len(good)
        width = max((e.shape[1] for _, _, e in good), default=0)
        device = good[0][2].device if good else _model_device(self._st_model)
        distributed = is_distributed()
        if distributed:  # every rank takes part, with the same width, even when it recorded nothing
            width = _max_over_ranks(width, device)
        keys_l, emb_l = [], []
        for ids, mask, emb in good:
            if emb.shape[1] != width:
                self.stats["skipped_forwards"] += 1
                continue
            keys_l.append(token_keys(ids, mask))
            emb_l.append(emb.to(device))
        if width == 0:
            return
        keys = np.concatenate(keys_l) if keys_l else np.zeros(0, dtype=np.int64)
        emb = torch.cat(emb_l) if emb_l else torch.zeros((0, width), device=device)
        keys, emb = _first_per_key(keys, emb)
        self.stats["rows_embedded"] += int(keys.shape[0])
        if distributed:
            k, emb = all_gather_rows(torch.from_numpy(keys).to(device), emb)
            keys, emb = _first_per_key(k.cpu().numpy(), emb)
        if keys.shape[0] == 0:
            return
        targets = self.targets()
        if not targets:
            self._warn_once("targets", "CaptureLoss: no capture-mode sampler of this class exists (the trainer "
                            "creates it when training starts); this training call's embeddings are dropped")
            return
        written = sum(int(t.capture_rows(keys, emb)) for t in targets)
        self.stats["rows_written"] += written
        if written == 0:
            self.stats["unmatched_calls"] += 1
            self._warn_once("match", f"CaptureLoss: a training step embedded {keys.shape[0]} texts but none has the "
                            "token ids of a row of the sampler's text column, so the bank was not updated (rows "
                            "keep their previous embedding). Is a prompt added to that column (args.prompts), a "
                            "router/task mapping or another max_seq_length in use, or is text_column not a column "
                            "this loss embeds?")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warn_user(message, RuntimeWarning)


def _first_per_key(keys: np.ndarray, emb: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """The first row of each key, in order of first appearance."""
    if keys.shape[0] == 0:
        return keys, emb
    _, first = np.unique(keys, return_index=True)
    if first.shape[0] == keys.shape[0]:
        return keys, emb
    first = np.sort(first)
    return keys[first], emb[torch.as_tensor(first, device=emb.device)]


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")
