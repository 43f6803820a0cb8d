"""The epoch machinery every sampler shares: exact epochs, determinism, resume, distributed shares, refresh.

:class:`EpochBatchSampler` turns a *model* (an object that builds a state from the
embedding bank, prepares it for planning and plans epochs: see
:class:`graphbatch.samplers.models.Model`) into a ``torch.utils.data.Sampler`` of
batches. Samplers are thin: they validate their arguments, create their model and hand
it to this base (composition; the base calls no overridable hook). Without a model
batches are uniformly random. The guarantees (exact epochs, determinism, live refresh,
warm-up, distributed shares) are specified in ``docs/concepts.md``.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from .._validation import as_embedding_rows, as_index_tensor, check_bool, check_dtype, check_int, check_seed, warn_user
from ..kernels.slots import COUNTERS
from .bank import EmbeddingBank
from .distributed import agree, all_gather_rows, is_distributed, world_default
from .models import PendingBuild
from .state import STATE_VERSION, dump, restore

__all__ = ["parse_refresh_every", "EpochBatchSampler", "EpochBatch", "STATE_VERSION"]
_REFRESH_ERRORS = (RuntimeError, ValueError, MemoryError)


class EpochBatch(list):
    """A batch of node indices (a ``list`` of ints) that knows the epoch it belongs to (``.epoch``).

    The dataset adapters read it (``IndexedDataset.__getitems__``), so augmentations follow the
    sampler's epoch without a ``dataset.set_epoch`` call, in the main process and in workers.
    """

    __slots__ = ("epoch",)

    def __reduce__(self):
        return _epoch_batch, (list(self), self.epoch)


def parse_refresh_every(value: Any) -> float | None:
    """Validate ``refresh_every``: an int of batches (returns ``None``) or ``"epoch"`` / ``"X epoch(s)"`` (returns X).

    Example:
        >>> parse_refresh_every(100), parse_refresh_every("epoch"), parse_refresh_every("0.5 epoch")
        (None, 1.0, 0.5)
    """
    if isinstance(value, str):
        parts = value.strip().lower().split()
        if parts and parts[-1] in ("epoch", "epochs") and len(parts) <= 2:
            try:
                x = float(parts[0]) if len(parts) == 2 else 1.0
            except ValueError:
                x = float("nan")
            if math.isfinite(x) and x > 0:
                return x
        raise ValueError(f"refresh_every must be a number of batches (int >= 1) or 'epoch', '0.5 epoch', "
                         f"'2 epochs', got {value!r}")
    if isinstance(value, float):
        raise TypeError(f"refresh_every must be an int number of batches (or '{value:g} epoch' for a share of "
                        f"an epoch), got the float {value!r}")
    check_int("refresh_every", value, low=1)
    return None


def _epoch_batch(items: list[int], epoch: int) -> EpochBatch:
    b = EpochBatch(items)
    b.epoch = epoch
    return b


class EpochBatchSampler(Sampler[list[int]]):
    """Exact epochs of batches planned by a model, with refresh from an embedding bank, resume and DDP shares.

    Args:
        num_nodes: dataset size ``N``.
        batch_size: ``B``, in ``[1, N]``.
        drop_last: drop the last, short batch (and, distributed, the batches that do not split evenly).
        seed: base seed of every generator.
        embeddings: ``(N, d)`` initial embeddings; the model is built at construction and warm-up skipped.
        refresh_every: rebuild the model every this many batches (per replica) when embeddings changed;
            or a cadence in epochs: ``"epoch"`` (before each epoch is planned), ``"0.25 epoch"``,
            ``"2 epochs"`` (that share of this rank's batches per epoch, rounded, at least 1).
        warmup_epochs: epochs of random batches before the model is built automatically.
        num_replicas: number of distributed ranks (default: ``torch.distributed`` world size, else 1).
        rank: this rank (default: ``torch.distributed`` rank, else 0).
        model: the :class:`~graphbatch.samplers.models.Model` that plans batches (``None``: random batches).
        initial_state: a model state to start from (e.g. a prebuilt graph); skips warm-up.
        bank_dtype: dtype of the embedding bank: ``None`` (float32, or float64 for float64 rows),
            ``torch.float16`` or ``torch.bfloat16`` (half the memory; graph builds score the half rows
            in float32, rows given twice in one update are averaged in float32 and rounded once).

    Example:
        >>> from graphbatch.samplers import EpochBatchSampler
        >>> s = EpochBatchSampler(10, 4, seed=0)  # no model: random batches with all the machinery
        >>> s.set_epoch(3); [len(b) for b in s]
        [4, 4, 2]

    Attributes:
        stats: running counters (over the sampler's life, restored by :meth:`load_state_dict`):
            ``epochs``, ``batches`` (handed out by this rank), ``plans`` / ``replans`` (epoch plans and
            mid-epoch re-plans after a refresh), ``random_epochs`` (planned without a model),
            ``refreshes``, ``full_refreshes``, ``incremental_refreshes``, ``refresh_failures``,
            ``last_refresh_error``, ``graph_waits`` (epochs that wanted a graph but had unseen rows),
            ``rows_scored`` (anchors whose neighbours this rank computed in its builds: about
            ``1 / W`` of them per build under ``torch.distributed`` with ``W`` ranks),
            and the planner counters ``walk_steps``, ``near_jumps`` / ``random_jumps`` (stall
            fallbacks), ``guard_deferrals``, ``guard_violations``, ``skipped_seeds``.
    """

    def __init__(self, num_nodes: int, batch_size: int, *, drop_last: bool = False, seed: int = 0,
                 embeddings: Any = None, refresh_every: int | str = 100, warmup_epochs: int = 1,
                 num_replicas: int | None = None, rank: int | None = None, model: Any = None,
                 initial_state: Any = None, bank_dtype: torch.dtype | None = None) -> None:
        self.num_nodes = check_int("num_nodes", num_nodes, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1, high=self.num_nodes)
        self.drop_last = check_bool("drop_last", drop_last)
        self.seed = check_seed("seed", seed)
        self.refresh_every = refresh_every
        self._refresh_epochs = parse_refresh_every(refresh_every)  # None: a number of batches
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs, low=0)
        self.num_replicas, self.rank = world_default(num_replicas, rank)
        self.stats: dict[str, Any] = {
            "epochs": 0, "batches": 0, "plans": 0, "replans": 0, "random_epochs": 0,
            "refreshes": 0, "full_refreshes": 0, "incremental_refreshes": 0, "refresh_failures": 0,
            "last_refresh_error": None, "graph_waits": 0, "rows_scored": 0,
            **{name: 0 for name in COUNTERS},
        }
        self._model = model
        self.bank_dtype = None if bank_dtype is None else check_dtype(
            "bank_dtype", bank_dtype, (torch.float32, torch.float64, torch.float16, torch.bfloat16))
        self._bank = EmbeddingBank(self.num_nodes, self.bank_dtype)
        self._state: Any = None       # what the model built (e.g. the graph)
        self._prepared: Any = None    # the state prepared for planning (e.g. host arrays)
        self._spare: Any = None       # the previously prepared state: its buffers are reused by the next one
        self._version = 0             # number of states installed
        self._next_epoch = 0
        self._epoch = -1
        self._in_progress = False
        self._yielded = 0  # batches handed out by this rank in the current epoch
        self._step = 0  # batches handed out by this rank over all epochs
        self._last_refresh_step = 0
        self._plan_arr: np.ndarray | None = None
        self._plan_list: list[int] | None = None  # the plan as Python ints (built on first use)
        self._plan_version = -1  # state version the current plan was made with
        self._warned_no_graph = False
        if embeddings is not None:
            emb = as_embedding_rows("embeddings", embeddings)
            if emb.shape[0] != self.num_nodes:
                raise ValueError(f"embeddings must have num_nodes={self.num_nodes} rows, got {emb.shape[0]}")
            if not bool(torch.isfinite(emb).all()):
                raise ValueError("embeddings must be finite, got NaN or infinite values")
            if model is not None:
                if initial_state is not None:
                    raise ValueError("pass either graph= or embeddings=, not both")
                self._bank.fill(emb)
                self.warmup_epochs = 0
                built, failure = self._agreed_build("the graph build failed on another rank")
                if failure is not None:
                    raise failure
                self._commit(*built)
        if initial_state is not None:
            self.warmup_epochs = 0
            self._install(initial_state, None)
        if len(self) == 0:
            warnings.warn(f"{type(self).__name__}: with drop_last=True, {self._num_plan_batches} full batches of "
                          f"{self.batch_size} and {self.num_replicas} ranks, every rank gets 0 batches per epoch",
                          RuntimeWarning, stacklevel=2)

    @property
    def refresh_batches(self) -> int:
        """The refresh cadence in batches of this rank (``refresh_every`` resolved against ``len(self)``)."""
        if self._refresh_epochs is None:
            return self.refresh_every
        return max(1, round(self._refresh_epochs * len(self)))

    def refresh_description(self) -> str:
        """``refresh_every`` in both units, e.g. ``"100 batches (~7.7 epochs)"``, for ``repr``."""
        per_epoch = max(1, len(self))
        every = self.refresh_batches
        return f"{self.refresh_every!r} ({every} batches, ~{every / per_epoch:.3g} epochs)"

    @property
    def learns(self) -> bool:
        """Whether this sampler builds a model from embeddings (``False``: random batches)."""
        return self._model is not None

    # ------------------------------------------------------------------ lengths
    @property
    def _num_plan_batches(self) -> int:
        n, b = self.num_nodes, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __len__(self) -> int:
        nb, w = self._num_plan_batches, self.num_replicas
        return nb // w if self.drop_last else -(-nb // w)

    def _global_index(self, j: int) -> int:
        """Plan batch index of this rank's j-th batch (wrapping around when padded)."""
        return (j * self.num_replicas + self.rank) % self._num_plan_batches

    # ------------------------------------------------------------------ epochs
    @property
    def epoch(self) -> int:
        """The current (or, before the first pass, the next) epoch number."""
        return self._epoch if self._in_progress else self._next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next pass produces (its batches depend on ``(seed, epoch)``).

        Setting the epoch that is in progress (e.g. after :meth:`load_state_dict`)
        keeps the progress, so the pass resumes. An epoch stays in progress until its
        iterator is exhausted: a consumer that stops after exactly ``len(self)`` batches
        (Lightning does) and saves the state then resumes into that epoch with no batch
        left, as a resumed training loop expects; set the next epoch to go on.
        """
        epoch = check_int("epoch", epoch, low=0)
        if self._in_progress and epoch == self._epoch:
            return
        self._in_progress = False
        self._next_epoch = epoch

    def _rng(self, *parts: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *[int(p) for p in parts]])

    def _begin_epoch(self) -> None:
        """Plan the next epoch, then mark it in progress (a plan that fails leaves the sampler as it was)."""
        epoch = self._next_epoch
        waits = 0
        if self._state is None and self.learns and epoch >= self.warmup_epochs:
            if self._bank.complete:
                self.refresh()
            else:
                waits = 1
                self._warn_no_graph(epoch)
        elif self._refresh_epochs is not None and self._step > self._last_refresh_step \
                and self._step % self.refresh_batches == 0:
            # a cadence in epochs refreshes before the epoch is planned, not after its first plan
            self._last_refresh_step = self._step
            self._periodic_refresh()
        plan, counters = self._compute_plan(epoch, consumed=0)
        self._epoch, self._next_epoch = epoch, epoch + 1
        self._yielded = 0
        self._in_progress = True
        self.stats["epochs"] += 1
        self.stats["graph_waits"] += waits
        self._install_plan(plan, counters, replan=False)

    def _warn_no_graph(self, epoch: int) -> None:
        """Once per sampler: an epoch past warm-up starts without a graph because rows were never embedded."""
        missing = self._bank.missing
        # drop_last leaves out a few rows per epoch (others in the next): not a mistake, unless it persists
        dropped = self.num_nodes - len(self) * self.num_replicas * self.batch_size if self.drop_last else 0
        if self._warned_no_graph or (missing <= dropped and epoch == self.warmup_epochs):
            return
        self._warned_no_graph = True
        warn_user(f"{type(self).__name__}: epoch {epoch} is past warm-up (warmup_epochs={self.warmup_epochs}) "
                  f"but {missing} of {self.num_nodes} rows were never passed to update(), so its batches are "
                  "random, as every epoch's will be until they are. Call sampler.update(indices, embeddings) "
                  "after each training step (every rank, every batch), or pass embeddings= at construction.",
                  RuntimeWarning)

    def _make_plan(self, consumed: int, replan: bool) -> None:
        """(Re)plan every node not in the first ``consumed`` plan batches of the current epoch."""
        plan, counters = self._compute_plan(self._epoch, consumed)
        self._install_plan(plan, counters, replan)

    def _compute_plan(self, epoch: int, consumed: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The plan of ``epoch`` whose first ``consumed`` batches are the current plan's; changes nothing."""
        n, b = self.num_nodes, self.batch_size
        keep = min(consumed * b, n)
        used = np.zeros(n, dtype=bool)
        if keep:
            used[self._plan_arr[:keep]] = True
        rng = self._rng(epoch, consumed, self._version)
        n_plan = n - keep
        counters = None
        if not n_plan:
            part = np.empty(0, dtype=np.int64)
        elif self._model is None:
            rest = np.flatnonzero(~used)
            part = rest[rng.permutation(rest.shape[0])]
        else:
            prepared = self._prepared if self._state is not None else None
            part, counters = self._model.plan(prepared, used, n_plan, rng, consumed, epoch)
        if part.shape[0] != n_plan:
            raise RuntimeError(f"internal error: planner returned {part.shape[0]} nodes, expected {n_plan}")
        plan = np.concatenate([self._plan_arr[:keep], part]) if keep else part.astype(np.int64)
        return plan, counters

    def _install_plan(self, plan: np.ndarray, counters: np.ndarray | None, replan: bool) -> None:
        self._plan_arr = plan
        self._plan_list = None
        self._plan_version = self._version
        if counters is not None:
            for i, name in enumerate(COUNTERS):
                self.stats[name] += int(counters[i])
        self.stats["replans" if replan else "plans"] += 1
        if self._state is None and not replan:
            self.stats["random_epochs"] += 1

    def __iter__(self) -> Iterator[list[int]]:
        if not self._in_progress:
            self._begin_epoch()
        length, b, n = len(self), self.batch_size, self.num_nodes
        every = self.refresh_batches
        while self._yielded < length:
            if self._step > self._last_refresh_step and self._step % every == 0:
                self._last_refresh_step = self._step
                self._periodic_refresh()
            if self._plan_version != self._version:
                consumed = min(self._yielded * self.num_replicas, self._num_plan_batches)
                self._make_plan(consumed=consumed, replan=True)
            if self._plan_list is None:  # one conversion per plan; slicing a list is cheap
                self._plan_list = self._plan_arr.tolist()
            g = self._global_index(self._yielded)
            batch = EpochBatch(self._plan_list[g * b: min((g + 1) * b, n)])
            batch.epoch = self._epoch
            self._yielded += 1
            self._step += 1
            self.stats["batches"] += 1
            yield batch
        self._in_progress = False

    # ------------------------------------------------------------------ embeddings / refresh
    @property
    def bank(self) -> torch.Tensor | None:
        """The ``(N, d)`` embedding bank (``None`` before the first :meth:`update`). Do not modify."""
        return self._bank.rows

    def update(self, indices: Any, embeddings: Any, *, gather: bool | None = None) -> None:
        """Store fresh embeddings of some instances (typically the batch just trained on).

        Args:
            indices: ``(n,)`` instance indices in ``[0, N)``.
            embeddings: ``(n, d)`` float tensor/array; detached and copied into the bank (NaN is stored,
                and makes the next refresh fail and keep the previous graph).
            gather: all-gather ``(indices, embeddings)`` from every rank first (default: when
                ``torch.distributed`` is initialised with more than one rank). Must be called on all ranks.

        Raises:
            ValueError: indices out of range, row count or width disagreeing.
            TypeError: wrong types or non-float embeddings.

        Example:
            >>> import torch
            >>> from graphbatch import RWRBatchSampler
            >>> s = RWRBatchSampler(10, 5, k=3, candidates=9)
            >>> s.update([0, 1], torch.randn(2, 4))
            >>> s.bank.shape
            torch.Size([10, 4])
        """
        width = None if self._bank.rows is None else self._bank.rows.shape[1]
        emb = as_embedding_rows("embeddings", embeddings, width=width).detach()
        idx = as_index_tensor("indices", indices, num_nodes=self.num_nodes, allow_empty=True)
        if idx.numel() != emb.shape[0]:
            raise ValueError(f"embeddings must have one row per index: got {emb.shape[0]} rows for "
                             f"{idx.numel()} indices")
        if not self.learns:
            return
        if is_distributed() if gather is None else check_bool("gather", gather):
            idx, emb = all_gather_rows(idx, emb)
        self._bank.write(idx, emb)

    def _periodic_refresh(self) -> None:
        if not self.learns or not self._bank.dirty.any() or not self._bank.complete:
            return
        if self._state is None and self._epoch < self.warmup_epochs:
            return
        self.refresh()

    def refresh(self) -> bool:
        """Rebuild the model (graph) from the embedding bank now.

        Incremental when a model exists and at most ``incremental_fraction`` of the
        rows changed since the last build; full otherwise. The new model is built and
        prepared completely before it replaces the old one: on failure the previous
        model stays in use, untouched, a warning is issued and ``stats["refresh_failures"]``
        grows (the changed rows stay marked, so the next refresh retries). Under
        ``torch.distributed`` a refresh is collective: every rank must call it (the periodic
        refreshes do, at the same batch on every rank), and the new model is installed only
        if every rank built it.

        Returns:
            True when a new model was installed.

        Raises:
            RuntimeError: the bank is missing rows that were never passed to :meth:`update`
                (the model needs every row once).

        Example:
            >>> import torch
            >>> from graphbatch import RWRBatchSampler
            >>> emb = torch.randn(30, 4)
            >>> s = RWRBatchSampler(30, 5, k=3, candidates=20, embeddings=emb)
            >>> s.update([0, 1], emb[:2] + 1.0)
            >>> s.refresh(), s.stats["incremental_refreshes"]
            (True, 1)
        """
        if not self.learns:
            return False
        if self._bank.rows is None or not self._bank.complete:
            raise RuntimeError(f"cannot build the graph yet: {self._bank.missing} of {self.num_nodes} rows were "
                               "never passed to update() (finish a warm-up epoch, or pass embeddings=)")
        built, failure = self._agreed_build("the refresh failed on another rank")
        if failure is not None:
            self.stats["refresh_failures"] += 1
            self.stats["last_refresh_error"] = f"{type(failure).__name__}: {failure}"
            warnings.warn(f"{type(self).__name__}: refresh failed, keeping the previous "
                          f"{'graph' if self._state is not None else 'random batches'} "
                          f"({type(failure).__name__}: {failure})", RuntimeWarning, stacklevel=2)
            return False
        self._commit(*built)
        return True

    def _agreed_build(self, elsewhere: str) -> tuple[tuple[Any, Any, str] | None, BaseException | None]:
        """A new model built and prepared, the ranks agreeing: ``((state, prepared, kind), None)`` or ``(None, error)``.

        Phase 1 is local (the bank check and this rank's share of a sharded build); the ranks agree
        that it succeeded everywhere; phase 2 finishes the build (a sharded build gathers its table:
        every rank is there) and prepares it; the ranks agree again. The collectives sit at these
        points whatever failed where, so no rank waits for another. ``elsewhere``: the error of a rank
        whose own work succeeded while another's failed.
        """
        job = built = failure = None
        try:
            rows = self._bank.rows
            if not bool(torch.isfinite(rows).all()):
                bad = int((~torch.isfinite(rows).all(dim=1)).sum())
                raise ValueError(f"embedding bank has {bad} rows with NaN or infinite values")
            job = self._begin_build()
        except _REFRESH_ERRORS as exc:
            failure = exc
        if not agree(failure is None) and failure is None:
            failure = RuntimeError(elsewhere)
        if failure is None:
            try:
                state, kind = job.finish()
                built = (state, self._model.prepare(state, self._bank, self._spare), kind)
            except _REFRESH_ERRORS as exc:
                failure = exc
            if not agree(failure is None) and failure is None:
                failure = RuntimeError(elsewhere)
        if failure is not None:
            return None, failure
        self.stats["rows_scored"] = self.stats.get("rows_scored", 0) + job.rows_scored
        return built, None

    def _begin_build(self) -> Any:
        """The model's build, begun: local work now, ``finish()`` later (it may be a collective).

        Under ``torch.distributed`` a model that can shard its build (``begin``) computes this
        rank's share here; ``finish()`` gathers the shares. Other models build here at once.
        """
        begin = getattr(self._model, "begin", None)
        if begin is not None:
            world, rank = 1, 0
            # shard only a sampler shared by the whole group (its bank is the same on every rank)
            if is_distributed() and self.num_replicas == torch.distributed.get_world_size():
                world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
            return begin(self._bank, self._state, self.seed, rank=rank, world=world)
        result = self._model.build(self._bank, self._state, self.seed)
        return PendingBuild(lambda: result, 0)

    def _install(self, state: Any, kind: str | None) -> None:
        """Prepare and commit a state outside :meth:`refresh` (construction); errors propagate."""
        self._commit(state, self._model.prepare(state, self._bank, self._spare), kind)

    def _commit(self, state: Any, prepared: Any, kind: str | None) -> None:
        self._spare, self._prepared, self._state = self._prepared, prepared, state
        self._version += 1
        self._bank.dirty[:] = False
        self.stats["refreshes"] += 1
        if kind is not None:
            self.stats[f"{kind}_refreshes"] += 1

    # ------------------------------------------------------------------ state
    def config(self) -> dict[str, Any]:
        """Every setting that decides the batches (a resumed state must have been saved with the same)."""
        out: dict[str, Any] = {"num_nodes": self.num_nodes, "batch_size": self.batch_size,
                               "drop_last": self.drop_last, "seed": self.seed, "refresh_every": self.refresh_every,
                               "num_replicas": self.num_replicas, "rank": self.rank}
        if self._model is not None:
            out.update(self._model.config())
        return out

    def state_dict(self, *, include_bank: bool = True) -> dict[str, Any]:
        """Everything needed to resume mid-epoch and to keep refreshing identically.

        The dict holds only tensors, numbers, strings, bools, ``None`` and dicts, so
        ``torch.load(path, weights_only=True)`` reads a saved one.

        Args:
            include_bank: store the embedding bank (needed for identical future refreshes; it is
                ``N x d`` and moved to CPU). Without it the restored sampler keeps the graph and the
                plan, and builds again only once every row has been passed to :meth:`update` anew.

        Example:
            >>> from graphbatch import RWRBatchSampler
            >>> s = RWRBatchSampler(20, 4, k=3, candidates=19)
            >>> it = iter(s); first = [next(it) for _ in range(2)]
            >>> t = RWRBatchSampler(20, 4, k=3, candidates=19); t.load_state_dict(s.state_dict())
            >>> list(t) == list(it)
            True
        """
        return dump(self, check_bool("include_bank", include_bank))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next pass continues the interrupted epoch.

        Everything is checked before anything changes: a state that fails leaves the sampler as it was.

        Raises:
            ValueError: the state comes from a sampler of another kind or configuration (the message
                names every setting that differs), or holds an invalid plan, counters, bank or model.
        """
        restore(self, state)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_nodes={self.num_nodes}, batch_size={self.batch_size}, "
                f"drop_last={self.drop_last}, seed={self.seed}, num_replicas={self.num_replicas}, "
                f"rank={self.rank})")
