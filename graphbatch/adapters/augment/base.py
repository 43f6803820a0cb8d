"""Seeded transforms and their composition helpers (shared by the image and graph augmentations).

Every augmentation is a :class:`Transform`: a callable ``t(x, generator=None)``. The random
draws come from, in order of precedence, the ``generator`` passed to the call, the
transform's own generator (made from ``seed=`` at construction), or torch's global RNG.
:class:`Compose`, :class:`RandomApply` and :class:`RandomChoice` work for any input type.

Example:
    >>> import torch
    >>> from graphbatch.adapters.augment import Compose, GaussianNoise
    >>> t = Compose([GaussianNoise(0.1)])
    >>> g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    >>> x = torch.rand(1, 4, 4)
    >>> torch.equal(t(x, generator=g1), t(x, generator=g2))
    True
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..._validation import check_generator, check_int, check_probability

__all__ = ["Transform", "Compose", "RandomApply", "RandomChoice", "call", "rand", "uniform"]



def _make_generator(seed: int | None, name: str = "seed") -> torch.Generator | None:
    if seed is None:
        return None
    seed = check_int(name, seed, low=0)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


class Transform(ABC):
    """Base class of the seeded augmentations.

    Subclasses implement :meth:`apply` ``(x, generator) -> x'``; ``generator``
    is a ``torch.Generator`` or ``None`` (torch's global RNG). Random numbers are
    drawn on the CPU with that generator, so results do not depend on the
    device of ``x``.

    Args:
        seed: seeds the transform's own generator, used when a call passes no
            ``generator``. ``None``: use torch's global RNG.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.generator = _make_generator(seed)

    def __call__(self, x: Any, generator: torch.Generator | None = None) -> Any:
        g = check_generator("generator", generator)
        return self.apply(x, g if g is not None else self.generator)

    @abstractmethod
    def apply(self, x: Any, generator: torch.Generator | None) -> Any:
        """Transform ``x`` with random draws from ``generator`` (``None``: torch's global RNG)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({fields})"


def call(t: Callable, x: Any, generator: torch.Generator | None) -> Any:
    """Call a transform, handing the generator only to graphbatch transforms."""
    if isinstance(t, Transform):
        return t(x, generator=generator)
    return t(x)


def rand(generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand(shape if shape else (1,), generator=generator)


def uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    return float(low + (high - low) * rand(generator)[0])


class Compose(Transform):
    """Apply transforms in sequence (any input type).

    Plain callables (not :class:`Transform`) are called as ``t(x)`` and draw
    from torch's global RNG.

    Args:
        transforms: the transforms, applied first to last.
        seed: seeds the composed pipeline's own generator.

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import Compose, RandomHorizontalFlip, GaussianNoise
        >>> Compose([RandomHorizontalFlip(p=1.0), GaussianNoise(0.0)])(torch.eye(2)[None]).squeeze(0)
        tensor([[0., 1.],
                [1., 0.]])
    """

    def __init__(self, transforms: Sequence[Callable], seed: int | None = None) -> None:
        super().__init__(seed)
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            raise TypeError(f"transforms must be a sequence of callables, got {type(transforms).__name__}")
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] must be callable, got {type(t).__name__}")
        self.transforms = list(transforms)

    def apply(self, x: Any, generator: torch.Generator | None) -> Any:
        for t in self.transforms:
            x = call(t, x, generator)
        return x


class RandomApply(Transform):
    """Apply ``transform`` with probability ``p`` (any input type).

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import RandomApply, RandomHorizontalFlip
        >>> x = torch.arange(4.0).reshape(1, 2, 2)
        >>> torch.equal(RandomApply(RandomHorizontalFlip(p=1.0), p=1.0)(x), x.flip(-1))
        True
    """

    def __init__(self, transform: Callable, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__(seed)
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.transform = transform
        self.p = check_probability("p", p, open_low=False)

    def apply(self, x: Any, generator: torch.Generator | None) -> Any:
        if float(rand(generator)[0]) < self.p:
            return call(self.transform, x, generator)
        return x


class RandomChoice(Transform):
    """Apply one transform drawn at random from ``transforms`` (any input type).

    Args:
        transforms: the candidates.
        weights: optional non-negative weights (default uniform).

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import RandomChoice, GaussianNoise
        >>> RandomChoice([GaussianNoise(0.0)])(torch.zeros(1, 2, 2)).abs().sum().item()
        0.0
    """

    def __init__(self, transforms: Sequence[Callable], weights: Sequence[float] | None = None,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence) or len(transforms) == 0:
            raise ValueError("transforms must be a non-empty sequence of callables")
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] must be callable, got {type(t).__name__}")
        self.transforms = list(transforms)
        if weights is None:
            w = torch.ones(len(self.transforms), dtype=torch.float64)
        else:
            w = torch.as_tensor(list(weights), dtype=torch.float64)
            if w.shape != (len(self.transforms),) or bool((w < 0).any()) or not bool(torch.isfinite(w).all()) \
                    or float(w.sum()) <= 0:
                raise ValueError(f"weights must be {len(self.transforms)} finite non-negative numbers with a "
                                 f"positive sum, got {list(weights)}")
        self.weights = w / w.sum()

    def apply(self, x: Any, generator: torch.Generator | None) -> Any:
        i = int(torch.multinomial(self.weights, 1, generator=generator)[0])
        return call(self.transforms[i], x, generator)
