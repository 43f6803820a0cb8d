"""Restart-probability schedules for :class:`~graphbatch.RWRBatchSampler`.

Example:
    >>> from graphbatch import linear_decay
    >>> [round(linear_decay(0.2, 0.05, 3)(e), 3) for e in range(5)]
    [0.2, 0.15, 0.1, 0.05, 0.05]
"""
from __future__ import annotations

from .._validation import check_int, check_probability

__all__ = ["linear_decay"]


class linear_decay:  # noqa: N801 - used like a function
    """Restart-probability schedule: linear from ``start`` (epoch 0) to ``end`` (epoch ``epochs``), then flat.

    The paper decays the restart probability towards 0.05 as training goes, so
    walks reach further once the embeddings are good.

    Args:
        start: value at epoch 0, in (0, 1].
        end: value from epoch ``epochs`` on, in (0, 1].
        epochs: number of epochs the decay takes (>= 1).

    Example:
        >>> sched = linear_decay(0.2, 0.05, 3)
        >>> [round(sched(e), 3) for e in range(5)]
        [0.2, 0.15, 0.1, 0.05, 0.05]
    """

    def __init__(self, start: float, end: float, epochs: int) -> None:
        self.start = check_probability("start", start)
        self.end = check_probability("end", end)
        self.epochs = check_int("epochs", epochs, low=1)

    def __call__(self, epoch: int) -> float:
        t = min(max(int(epoch), 0), self.epochs) / self.epochs
        return self.start + (self.end - self.start) * t

    def __repr__(self) -> str:
        return f"linear_decay({self.start}, {self.end}, {self.epochs})"
