"""PyTorch Lightning integration: drive a graphbatch sampler from a ``Trainer``.

:class:`GraphBatchCallback` is a Lightning ``Callback`` that does the three things a graphbatch
sampler needs from the training loop: ``set_epoch`` at each epoch start, ``update`` with the
embeddings each ``training_step`` returns, and the sampler's state inside Lightning's checkpoints,
so ``trainer.fit(..., ckpt_path=...)`` resumes it, mid-epoch included. Lightning is optional
(``pip install 'graphbatch[lightning]'``): this module imports without it, and the class is
created on first access from ``lightning.pytorch`` (or, when only that is installed, from
``pytorch_lightning``).

Example (needs Lightning, so it is not run as a doctest)::

    from graphbatch.integrations.lightning import GraphBatchCallback
    sampler = RWRBatchSampler(len(ds), 256, k=20, candidates=200, refresh_every="epoch")
    trainer = Trainer(callbacks=[GraphBatchCallback(sampler)], use_distributed_sampler=False)
    trainer.fit(model, DataLoader(ds, batch_sampler=sampler))

    # in the LightningModule: return the embeddings with the loss (the one line it costs)
    def training_step(self, batch, batch_idx):
        z1, z2 = self.encoder(batch["views"][0]), self.encoder(batch["views"][1])
        return {"loss": info_nce(z1, z2), "embeddings": (z1, z2)}  # index: batch["index"]
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .. import backend
from ..samplers.base import EpochBatchSampler

__all__ = ["GraphBatchCallback"]  # noqa: F822 - created on first access (module __getattr__)

_STATE_VERSION = 1


def _flatten_loaders(obj: Any) -> list[Any]:
    """The dataloaders in ``trainer.train_dataloader`` (a loader, or dicts/lists of them)."""
    if isinstance(obj, Mapping):
        return [dl for v in obj.values() for dl in _flatten_loaders(v)]
    if isinstance(obj, (list, tuple)):
        return [dl for v in obj for dl in _flatten_loaders(v)]
    return [] if obj is None else [obj]


def _describe_loaders(loaders: list[Any]) -> str:
    if not loaders:
        return "the trainer has no train dataloader"
    parts = []
    for dl in loaders:
        bs = getattr(dl, "batch_sampler", None)
        inner = getattr(bs, "sampler", None)
        parts.append(f"{type(dl).__name__} with batch_sampler={type(bs).__name__}"
                     + (f" (of {type(inner).__name__})" if inner is not None else ""))
    return "; ".join(parts)


def _as_views(emb: Any, key: str) -> list[torch.Tensor]:
    """The embedding tensors of one step: one tensor, or a tuple/list of views (one row per index each)."""
    views = list(emb) if isinstance(emb, (tuple, list)) else [emb]
    if not views or not all(isinstance(v, torch.Tensor) for v in views):
        raise TypeError(f"the step output's {key!r} must be a tensor (n, d) or a tuple/list of view tensors, got "
                        f"{type(emb).__name__}" + (f" of {[type(v).__name__ for v in views]}" if views else ""))
    return [v.detach() for v in views]


class _GraphBatchCallback:
    """Feed, step and checkpoint a graphbatch sampler from a Lightning ``Trainer``.

    **Contract with the LightningModule.** ``training_step`` returns a dict (Lightning's usual
    ``{"loss": ...}``) that also holds the batch's embeddings under ``embeddings_key``: a tensor
    ``(n, d)``, one row per index, or a tuple/list of views ``(z1, z2)`` (each ``(n, d)``; the
    index is repeated per view and the bank averages the duplicate rows). The node indices come
    from the output's ``index_key`` or, when absent, from the batch itself (a dict with
    ``index_key``, as graphbatch's dataset adapters produce, or a PyG batch with ``node_index``).
    The embeddings are detached (returning ``z`` or ``z.detach()`` is the same). With
    ``extract`` any layout works: ``extract(outputs, batch) -> (index, embeddings)``. After each
    training batch, on every rank, the callback calls ``sampler.update(index, embeddings)``
    (under DDP it all-gathers, so every rank keeps the same bank and graph).

    **Epochs.** ``sampler.set_epoch(trainer.current_epoch)`` at train start and at each epoch
    start (Lightning's own ``set_epoch`` call reaches ``batch_sampler.sampler`` only, not a
    batch sampler; and after a checkpoint taken at an epoch's last batch Lightning resumes
    without ``on_train_epoch_start`` for the next epoch, hence the call at train start).

    **Checkpoints and mid-epoch resume.** The sampler's ``state_dict`` (plan, progress, bank,
    graph, counters) is the callback's state in every checkpoint Lightning writes. Lightning 2.x
    restarts a mid-epoch fit by restoring its batch counters and iterating the dataloader *anew*,
    stopping after the batches the epoch has left: it does not skip batches, and without help it
    would replay the epoch's first batches. A restored graphbatch sampler resumes itself: its new
    iterator yields exactly the batches the interrupted epoch had not handed out, which are the
    ones Lightning expects, with the same ``batch_idx``; so the resumed run sees exactly the
    batches of the uninterrupted one. Lightning's warning that the dataloader "is not resumable"
    is expected and does not apply. This holds when the checkpoint is written after this
    callback's ``on_train_batch_end`` (``ModelCheckpoint`` always is: Lightning runs checkpoint
    callbacks last) and when the sampler does not run ahead of training: use ``num_workers=0``
    for exact mid-epoch resume (workers prefetch batches from the batch sampler, so its state
    is ahead by those batches and a resume skips them; a warning says so at save time);
    checkpoints at epoch ends are exact with workers too. The resumed run must build its sampler
    with the same settings (``load_state_dict`` names any that differ). A sampler found in the
    dataloader is restored when training starts (the dataloader is built after checkpoint
    loading); an explicitly passed one is restored with the checkpoint.

    **DDP.** Build the sampler where the process group exists, i.e. inside ``train_dataloader()``
    of the module or datamodule (``num_replicas``/``rank`` then default to the group's; a
    sampler built before ``trainer.fit`` under ``ddp_spawn`` would be ``num_replicas=1``), and
    pass ``Trainer(use_distributed_sampler=False)``: graphbatch samplers shard the batches across
    ranks themselves. The callback raises a ``ValueError`` otherwise. Each rank gets the same
    number of batches (see ``docs/concepts.md``, Distributed). The checkpoint holds rank 0's
    state, which is valid on every rank (ranks differ only in which batches they take); resuming
    needs the same world size.

    Args:
        sampler: the graphbatch sampler; default: the train dataloader's ``batch_sampler``.
        index_key: key of the node indices in the step output (or the batch).
        embeddings_key: key of the embeddings in the step output.
        extract: ``extract(outputs, batch) -> (index, embeddings)`` instead of the keys
            (under ``ddp_spawn`` it must be picklable: a module-level function).
        update: call ``sampler.update`` after each training batch (``False``: you do it).
        checkpoint: keep the sampler's state in checkpoints (``False``, e.g. with a
            ``StatefulDataLoader`` that already saves its batch sampler).

    Raises:
        TypeError: ``sampler`` is not a graphbatch sampler, or an output/extract value has the
            wrong type.
        ValueError: no sampler in the train dataloader, ``use_distributed_sampler`` left on under
            DDP, a sampler not sharded for this world, or a step output without the embeddings
            or the indices (the messages name what is missing and what was found).

    Example (needs Lightning, so it is not run as a doctest)::

        class Module(LightningModule):
            def train_dataloader(self):  # under DDP: built on each rank
                self.sampler = RWRBatchSampler(len(ds), 64, k=10, candidates=100)
                return DataLoader(ds, batch_sampler=self.sampler)
            def training_step(self, batch, batch_idx):
                z = self.encoder(batch["x"])
                return {"loss": loss_fn(z), "index": batch["index"], "embeddings": z}

        checkpoints = ModelCheckpoint(every_n_train_steps=100, save_last=True)
        Trainer(callbacks=[GraphBatchCallback(), checkpoints], strategy="ddp",
                use_distributed_sampler=False).fit(Module(), ckpt_path="last")
    """

    def __init__(self, sampler: EpochBatchSampler | None = None, *, index_key: str = "index",
                 embeddings_key: str = "embeddings",
                 extract: Callable[[Any, Any], tuple[Any, Any]] | None = None,
                 update: bool = True, checkpoint: bool = True) -> None:
        super().__init__()
        if sampler is not None and not isinstance(sampler, EpochBatchSampler):
            raise TypeError(f"sampler must be a graphbatch sampler (an EpochBatchSampler such as RWRBatchSampler) "
                            f"or None to take the train dataloader's batch_sampler, got {type(sampler).__name__}")
        for name, key in (("index_key", index_key), ("embeddings_key", embeddings_key)):
            if not isinstance(key, str):
                raise TypeError(f"{name} must be a str, got {type(key).__name__}")
        if extract is not None and not callable(extract):
            raise TypeError(f"extract must be a callable (outputs, batch) -> (index, embeddings), got "
                            f"{type(extract).__name__}")
        for name, flag in (("update", update), ("checkpoint", checkpoint)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        self.sampler = sampler
        self.index_key, self.embeddings_key, self.extract = index_key, embeddings_key, extract
        self.update, self.checkpoint = update, checkpoint
        self._explicit = sampler is not None
        self._pending: dict[str, Any] | None = None  # a checkpoint state waiting for the sampler to be found
        self._in_step = False
        self._loaded = False  # a checkpoint state was loaded (for the warning when resuming without one)
        self._progress: tuple[int, int, float] | None = None  # (epoch, batches done, batches per epoch)

    # ------------------------------------------------------------------ finding and checking the sampler
    def _find_sampler(self, trainer: Any) -> EpochBatchSampler:
        loaders = _flatten_loaders(trainer.train_dataloader)
        for dl in loaders:
            if isinstance(getattr(dl, "sampler", None), EpochBatchSampler):
                raise ValueError("the graphbatch sampler is the DataLoader's sampler=; it yields whole batches, so "
                                 "pass it as DataLoader(dataset, batch_sampler=sampler)")
        found = list({id(bs): bs for dl in loaders
                      if isinstance(bs := getattr(dl, "batch_sampler", None), EpochBatchSampler)}.values())
        if self._explicit:
            if found and all(s is not self.sampler for s in found):
                raise ValueError(f"the train dataloader's batch_sampler is another graphbatch sampler than the one "
                                 f"passed to GraphBatchCallback ({found[0]!r}): the callback would feed and restore "
                                 "the wrong one. Pass the dataloader's sampler, or GraphBatchCallback() to use it")
            return self.sampler
        if len(found) > 1:
            raise ValueError(f"the train dataloaders hold {len(found)} graphbatch samplers; pass the one to drive "
                             "explicitly: GraphBatchCallback(sampler)")
        if not found:
            raise ValueError("GraphBatchCallback found no graphbatch sampler: the train dataloader's batch_sampler "
                             f"must be one ({_describe_loaders(loaders)}). Build the loader as DataLoader(dataset, "
                             "batch_sampler=sampler), pass GraphBatchCallback(sampler), and under DDP "
                             "Trainer(use_distributed_sampler=False) so that Lightning does not replace it")
        return found[0]

    @staticmethod
    def _check_world(trainer: Any, sampler: EpochBatchSampler) -> None:
        world, rank = int(trainer.world_size), int(trainer.global_rank)
        if (sampler.num_replicas, sampler.rank) != (world, rank):
            raise ValueError(f"the sampler is sharded for num_replicas={sampler.num_replicas}, rank={sampler.rank} "
                             f"but this is rank {rank} of a world of {world}: build the sampler inside "
                             "train_dataloader() (its defaults then come from the process group) or pass "
                             "num_replicas=trainer.world_size, rank=trainer.global_rank")

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Refuse DDP with ``use_distributed_sampler=True`` before Lightning tries to rebuild the sampler."""
        conn = getattr(trainer, "_accelerator_connector", None)
        if stage == "fit" and getattr(conn, "use_distributed_sampler", False) and getattr(conn, "is_distributed",
                                                                                          False):
            raise ValueError("GraphBatchCallback under a distributed strategy needs "
                             "Trainer(use_distributed_sampler=False): graphbatch samplers shard the batches "
                             "across ranks themselves (num_replicas/rank), and Lightning would replace them")

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Find the sampler, restore a pending checkpoint state into it, check its sharding, set the epoch."""
        self._attach(trainer)
        # also here: Lightning does not call on_train_epoch_start for the epoch after a checkpoint taken at
        # the last batch of an epoch, and the restored sampler would otherwise finish the old one (no batches)
        self.sampler.set_epoch(trainer.current_epoch)
        self._progress = None
        if self.checkpoint and getattr(trainer, "ckpt_path", None) and not self._loaded and self.sampler.rank == 0:
            warnings.warn("GraphBatchCallback: resuming from a checkpoint that holds no GraphBatchCallback state "
                          "(saved without the callback, or with checkpoint=False): the sampler starts afresh, so "
                          "the resumed run does not see the batches the interrupted one would have",
                          RuntimeWarning, stacklevel=2)

    def _attach(self, trainer: Any) -> None:
        sampler = self._find_sampler(trainer)
        self._check_world(trainer, sampler)
        self.sampler = sampler
        if self._pending is not None:
            state, self._pending = self._pending, None
            self._restore(state)
            # the dataloader iterator exists already; with workers it has pulled batches from the sampler
            # before its state was restored, so it is created again on the restored sampler
            if any(getattr(dl, "num_workers", 0) > 0 for dl in _flatten_loaders(trainer.train_dataloader)):
                fetcher = getattr(getattr(trainer, "fit_loop", None), "_data_fetcher", None)
                if fetcher is None or not hasattr(fetcher, "combined_loader"):
                    raise RuntimeError("cannot resume a sampler found in a dataloader with num_workers > 0 in this "
                                       "Lightning version: pass the sampler explicitly, GraphBatchCallback(sampler)")
                iter(fetcher)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """``set_epoch(trainer.current_epoch)`` (after a dataloader reload, on the reloaded sampler)."""
        if not self._explicit:
            self._attach(trainer)
        self.sampler.set_epoch(trainer.current_epoch)
        self._progress = (trainer.current_epoch, 0, trainer.num_training_batches)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._in_step = True

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """``sampler.update(index, embeddings)`` from the step's output (every rank, every batch)."""
        if self.update:
            index, emb = self.embeddings_of(outputs, batch)
            self.sampler.update(index, emb)
        self._in_step = False
        self._progress = (trainer.current_epoch, batch_idx + 1, trainer.num_training_batches)

    def embeddings_of(self, outputs: Any, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index, embeddings)`` of one training step, as passed to ``sampler.update`` (see the class docs).

        Raises:
            TypeError: ``outputs`` is not a dict (without ``extract``), or values of the wrong type.
            ValueError: the embeddings or the indices are missing, or their counts disagree.
        """
        if self.extract is not None:
            got = self.extract(outputs, batch)
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise TypeError(f"extract must return (index, embeddings), got {type(got).__name__}")
            index, emb = got
        else:
            index, emb = self._lookup(outputs, batch)
        views = _as_views(emb, self.embeddings_key)
        index = torch.as_tensor(index.detach() if isinstance(index, torch.Tensor) else index)
        n = index.numel()
        if any(v.dim() != 2 or v.shape[0] != n for v in views):
            shapes = [tuple(v.shape) for v in views]
            twice = len(views) == 1 and views[0].dim() == 2 and n > 0 and views[0].shape[0] % n == 0
            raise ValueError(f"the embeddings must have one row per index ({n} indices), got shapes {shapes}"
                             + ("; for several views return a tuple (z1, z2) rather than torch.cat" if twice else ""))
        if len(views) > 1:
            return index.reshape(-1).repeat(len(views)), torch.cat(views)
        return index, views[0]

    def _lookup(self, outputs: Any, batch: Any) -> tuple[Any, Any]:
        ek, ik = self.embeddings_key, self.index_key
        if not isinstance(outputs, Mapping):
            raise TypeError(f"training_step must return a dict holding the embeddings under {ek!r}, e.g. "
                            f"{{'loss': loss, {ek!r}: z}}, got {type(outputs).__name__}; or pass extract=")
        if ek not in outputs:
            raise ValueError(f"training_step's output has no {ek!r} (keys: {sorted(map(str, outputs))}): return "
                             f"{{'loss': loss, {ek!r}: z, ...}}, or set embeddings_key= / extract=")
        if ik in outputs:
            return outputs[ik], outputs[ek]
        if isinstance(batch, Mapping) and ik in batch:
            return batch[ik], outputs[ek]
        if ik == "index" and hasattr(batch, "node_index") and not isinstance(batch, torch.Tensor):
            from ..adapters import batch_index

            return batch_index(batch), outputs[ek]
        where = f"keys: {sorted(map(str, batch))}" if isinstance(batch, Mapping) else type(batch).__name__
        raise ValueError(f"no node indices: training_step's output has no {ik!r} (keys: "
                         f"{sorted(map(str, outputs))}) and neither has the batch ({where}); return "
                         f"{{'loss': loss, {ik!r}: index, {ek!r}: z}}, or set index_key= / extract=")

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._in_step = self._loaded = False

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The sampler's ``state_dict`` (called by Lightning on every rank when it writes a checkpoint)."""
        if not self.checkpoint:
            return {}
        if self.sampler is None:  # not found yet: keep a loaded state that was not applied
            return self._pending or {}
        state = self.sampler.state_dict()
        self._warn_if_inexact(state)
        return {"version": _STATE_VERSION, "sampler": state}

    def _warn_if_inexact(self, state: dict[str, Any]) -> None:
        if self.sampler.rank != 0:
            return
        if self._in_step:
            warnings.warn("GraphBatchCallback: a checkpoint is being saved inside a training step, before this "
                          "batch's embeddings reached the sampler; resuming from it will not repeat the "
                          "uninterrupted run exactly (save in or after on_train_batch_end)", RuntimeWarning,
                          stacklevel=3)
        elif self._progress is not None:
            epoch, done, total = self._progress
            if state["epoch"] == epoch and done < total and state["yielded"] > done:
                warnings.warn(f"GraphBatchCallback: the sampler has handed out {state['yielded'] - done} batches "
                              f"more than were trained ({done} of epoch {epoch}): DataLoader workers prefetch from "
                              "the batch sampler, so resuming from this mid-epoch checkpoint skips those batches. "
                              "Use num_workers=0 for exact mid-epoch resume, or checkpoint at epoch ends",
                              RuntimeWarning, stacklevel=3)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the sampler's state now (explicit sampler) or when training starts (found in the dataloader)."""
        if not self.checkpoint or not state_dict:
            return
        self._loaded = True
        if not isinstance(state_dict, Mapping) or state_dict.get("version") != _STATE_VERSION \
                or not isinstance(state_dict.get("sampler"), Mapping):
            raise ValueError(f"the checkpoint's GraphBatchCallback state is not a version-{_STATE_VERSION} state "
                             f"(got keys {sorted(state_dict) if isinstance(state_dict, Mapping) else state_dict!r})")
        if self._explicit:
            self._restore(dict(state_dict))
        else:
            self._pending = dict(state_dict)

    def _restore(self, state: dict[str, Any]) -> None:
        sampler_state = dict(state["sampler"])
        config = sampler_state.get("config")
        # every rank holds the same state but for its rank (same plan, bank, graph, counters), and only
        # rank 0's is written: take it as this rank's when the world size agrees
        if isinstance(config, Mapping) and config.get("num_replicas") == self.sampler.num_replicas:
            sampler_state["config"] = {**config, "rank": self.sampler.rank}
        try:
            self.sampler.load_state_dict(sampler_state)
        except ValueError as exc:
            raise ValueError(f"GraphBatchCallback: the checkpoint's sampler state does not fit this sampler: "
                             f"{exc}") from exc


def _lightning_callback_base() -> type:
    """``lightning.pytorch.Callback``, else ``pytorch_lightning.Callback``."""
    try:
        return backend.require("lightning.pytorch", "graphbatch.integrations.lightning").Callback
    except backend.MissingDependencyError:
        if not backend._installed("pytorch_lightning"):
            raise
    return backend.require("pytorch_lightning", "graphbatch.integrations.lightning").Callback


_CACHE: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name == "GraphBatchCallback":
        if name not in _CACHE:
            _CACHE[name] = type("GraphBatchCallback", (_GraphBatchCallback, _lightning_callback_base()),
                                {"__module__": __name__, "__qualname__": "GraphBatchCallback",
                                 "__doc__": _GraphBatchCallback.__doc__})
        return _CACHE[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
