"""Seeded, tensor-only image augmentations (the SimCLR set; no torchvision needed).

Image transforms take a float tensor ``(C, H, W)`` with values in ``[0, 1]`` and return one
of the same dtype (``RandomResizedCrop`` changes ``H, W``). They also accept a leading batch
dimension ``(B, C, H, W)``; the random parameters are then drawn once and shared by the
whole batch.

Example:
    >>> import torch
    >>> from graphbatch.adapters import augment as A
    >>> t = A.Compose([A.RandomResizedCrop(8, scale=(0.5, 1.0)), A.RandomHorizontalFlip(),
    ...                A.ColorJitter(brightness=0.4, contrast=0.4), A.GaussianNoise(0.05)])
    >>> x = torch.rand(3, 12, 12)
    >>> g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    >>> torch.equal(t(x, generator=g1), t(x, generator=g2))
    True
    >>> t(x).shape
    torch.Size([3, 8, 8])
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F

from ..._validation import check_bool, check_int, check_probability, check_real
from .base import Compose, RandomApply, Transform, rand, uniform

__all__ = ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale", "GaussianNoise",
           "GaussianBlur", "Normalize", "simclr_augment"]


def _check_image(x: Any, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor image (C, H, W), got {type(x).__name__}")
    if x.dim() not in (3, 4):
        raise ValueError(f"{who} expects an image of shape (C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a floating-point image in [0, 1], got dtype {x.dtype}")
    return x


def _pair(name: str, value: Any, *, positive: bool = True) -> tuple[float, float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value), float(value)
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a pair of numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a > b or (positive and a <= 0):
        raise ValueError(f"{name} must be a pair (low, high) with {'0 < ' if positive else ''}low <= high, "
                         f"got {value!r}")
    return a, b


def _jitter_range(name: str, value: Any) -> tuple[float, float] | None:
    """Factor range: a number s means [max(0, 1-s), 1+s]; a pair is taken as is."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        return (max(0.0, 1.0 - v), 1.0 + v) if v > 0 else None
    lo, hi = _pair(name, value, positive=False)
    if lo < 0:
        raise ValueError(f"{name} must be non-negative, got {value!r}")
    return lo, hi


class RandomResizedCrop(Transform):
    """Crop a random area/aspect-ratio patch and resize it to ``size`` (bilinear).

    Args:
        size: output ``(h, w)`` or an int for a square.
        scale: range of the crop's area as a fraction of the image.
        ratio: range of the crop's aspect ratio ``w / h``.
        seed: seeds the transform's own generator.

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import RandomResizedCrop
        >>> RandomResizedCrop(4, seed=0)(torch.rand(1, 8, 8)).shape
        torch.Size([1, 4, 4])
    """

    def __init__(self, size: Union[int, tuple[int, int]], scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), seed: int | None = None) -> None:
        super().__init__(seed)
        if isinstance(size, (tuple, list)):
            if len(size) != 2:
                raise ValueError(f"size must be an int or a pair (h, w), got {size!r}")
            self.size = (check_int("size", size[0], low=1), check_int("size", size[1], low=1))
        else:
            s = check_int("size", size, low=1)
            self.size = (s, s)
        self.scale = _pair("scale", scale)
        if self.scale[1] > 1.0:
            raise ValueError(f"scale must lie in (0, 1], got {scale!r}")
        self.ratio = _pair("ratio", ratio)

    def _params(self, h: int, w: int, generator: torch.Generator | None) -> tuple[int, int, int, int]:
        area = h * w
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * uniform(generator, *self.scale)
            ar = math.exp(uniform(generator, *log_r))
            cw = int(round(math.sqrt(target * ar)))
            ch = int(round(math.sqrt(target / ar)))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
                left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
                return top, left, ch, cw
        # fallback: central crop with the aspect ratio clamped into range
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            cw, ch = w, h
        ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = _check_image(x, "RandomResizedCrop")
        h, w = x.shape[-2:]
        top, left, ch, cw = self._params(int(h), int(w), generator)
        crop = x[..., top:top + ch, left:left + cw]
        batched = crop.dim() == 4
        out = F.interpolate(crop if batched else crop.unsqueeze(0), size=self.size, mode="bilinear",
                            align_corners=False, antialias=True)
        return out if batched else out.squeeze(0)


class RandomHorizontalFlip(Transform):
    """Mirror the image left-right with probability ``p``.

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import RandomHorizontalFlip
        >>> RandomHorizontalFlip(p=1.0)(torch.tensor([[[1.0, 2.0]]]))
        tensor([[[2., 1.]]])
    """

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__(seed)
        self.p = check_probability("p", p, open_low=False)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = _check_image(x, "RandomHorizontalFlip")
        return x.flip(-1) if float(rand(generator)[0]) < self.p else x


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-3] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * w).sum(dim=-3, keepdim=True)
    return x.mean(dim=-3, keepdim=True)


class ColorJitter(Transform):
    """Random brightness, contrast and saturation changes (in that order), clamped to [0, 1].

    A number ``s`` means a factor drawn from ``[max(0, 1 - s), 1 + s]``; a pair is
    the factor range itself. Brightness multiplies the image, contrast blends it
    with its mean grey level, saturation with its grey-scale version (a no-op for
    one-channel images).

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import ColorJitter
        >>> x = torch.rand(3, 4, 4)
        >>> y = ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, seed=0)(x)
        >>> y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
        True
    """

    def __init__(self, brightness: Any = 0.0, contrast: Any = 0.0, saturation: Any = 0.0,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        self.brightness = _jitter_range("brightness", brightness)
        self.contrast = _jitter_range("contrast", contrast)
        self.saturation = _jitter_range("saturation", saturation)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = _check_image(x, "ColorJitter")
        if self.brightness is not None:
            x = (x * uniform(generator, *self.brightness)).clamp(0, 1)
        if self.contrast is not None:
            f = uniform(generator, *self.contrast)
            mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)
            x = (f * x + (1 - f) * mean).clamp(0, 1)
        if self.saturation is not None:
            f = uniform(generator, *self.saturation)
            if x.shape[-3] > 1:
                x = (f * x + (1 - f) * _gray(x)).clamp(0, 1)
        return x


class RandomGrayscale(Transform):
    """Replace every channel by the grey-scale image with probability ``p``.

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import RandomGrayscale
        >>> y = RandomGrayscale(p=1.0)(torch.rand(3, 2, 2))
        >>> torch.equal(y[0], y[1]) and torch.equal(y[1], y[2])
        True
    """

    def __init__(self, p: float = 0.2, seed: int | None = None) -> None:
        super().__init__(seed)
        self.p = check_probability("p", p, open_low=False)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = _check_image(x, "RandomGrayscale")
        if float(rand(generator)[0]) < self.p:
            return _gray(x).expand_as(x).clone()
        return x


class GaussianNoise(Transform):
    """Add i.i.d. Gaussian noise with standard deviation ``std`` (optionally clamped to [0, 1]).

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import GaussianNoise
        >>> y = GaussianNoise(0.1, clamp=False, seed=0)(torch.zeros(1, 64, 64))
        >>> 0.08 < float(y.std()) < 0.12
        True
    """

    def __init__(self, std: float = 0.05, clamp: bool = True, seed: int | None = None) -> None:
        super().__init__(seed)
        self.std = check_real("std", std, low=0.0)
        self.clamp = bool(clamp)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = _check_image(x, "GaussianNoise")
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        y = x + self.std * noise
        return y.clamp(0, 1) if self.clamp else y


class GaussianBlur(Transform):
    """Blur with a Gaussian kernel of random width ``sigma ~ U(sigma[0], sigma[1])``.

    Separable depth-wise convolution with reflect padding; ``kernel_size`` must be odd.

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import GaussianBlur
        >>> x = torch.full((1, 5, 5), 0.5)
        >>> torch.allclose(GaussianBlur(3, seed=0)(x), x)   # a constant image stays constant
        True
    """

    def __init__(self, kernel_size: int = 3, sigma: tuple[float, float] = (0.1, 2.0),
                 seed: int | None = None) -> None:
        super().__init__(seed)
        k = check_int("kernel_size", kernel_size, low=1)
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {k}")
        self.kernel_size = k
        self.sigma = _pair("sigma", sigma)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = _check_image(x, "GaussianBlur")
        s = uniform(generator, *self.sigma)
        r = self.kernel_size // 2
        t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        k1 = torch.exp(-0.5 * (t / s) ** 2)
        k1 = k1 / k1.sum()
        batched = x.dim() == 4
        y = x if batched else x.unsqueeze(0)
        c = y.shape[1]
        h, w = y.shape[-2:]
        mode = "reflect" if (r < h and r < w) else "replicate"
        y = F.pad(y, (r, r, r, r), mode=mode)
        y = F.conv2d(y, k1.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        y = F.conv2d(y, k1.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
        return y if batched else y.squeeze(0)


class Normalize(Transform):
    """Deterministic per-channel ``(x - mean) / std``.

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import Normalize
        >>> Normalize([0.5], [0.5])(torch.ones(1, 1, 1))
        tensor([[[1.]]])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__(None)
        self.mean = torch.as_tensor(list(mean), dtype=torch.float32)
        self.std = torch.as_tensor(list(std), dtype=torch.float32)
        if self.mean.dim() != 1 or self.mean.shape != self.std.shape:
            raise ValueError(f"mean and std must be 1-D of equal length, got {list(mean)} and {list(std)}")
        if bool((self.std <= 0).any()):
            raise ValueError(f"std must be positive, got {list(std)}")

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        x = _check_image(x, "Normalize")
        c = x.shape[-3]
        if self.mean.numel() not in (1, c):
            raise ValueError(f"Normalize has {self.mean.numel()} channel statistics but the image has {c} channels")
        m = self.mean.to(x.device, x.dtype).view(-1, 1, 1)
        s = self.std.to(x.device, x.dtype).view(-1, 1, 1)
        return (x - m) / s


def simclr_augment(size: Union[int, tuple[int, int]], *, strength: float = 0.5, blur: bool = False,
                   flip: bool = True, seed: int | None = None) -> Compose:
    """A SimCLR-style pipeline: resized crop, (flip,) colour jitter, grey-scale, (blur,) noise.

    Args:
        size: output size of the crop.
        strength: colour-jitter strength ``s`` (brightness/contrast/saturation ``0.8 s``).
        blur: add a random Gaussian blur (kernel about a tenth of the image side).
        flip: random horizontal flips; turn off where a mirror image is another class or no image
            at all (digits, text, many icons).
        seed: seeds the pipeline's own generator.

    Example:
        >>> import torch
        >>> from graphbatch.adapters.augment import simclr_augment
        >>> simclr_augment(8, seed=0)(torch.rand(3, 8, 8)).shape
        torch.Size([3, 8, 8])
    """
    s = check_real("strength", strength, low=0.0, high=10.0)
    ts: list = [RandomResizedCrop(size, scale=(0.2, 1.0))]
    if check_bool("flip", flip):
        ts.append(RandomHorizontalFlip())
    if s > 0:
        ts.append(RandomApply(ColorJitter(0.8 * s, 0.8 * s, 0.8 * s), p=0.8))
    ts.append(RandomGrayscale(p=0.2))
    if blur:
        side = size if isinstance(size, int) else min(size)
        k = max(3, (int(side) // 10) | 1)
        ts.append(RandomApply(GaussianBlur(k), p=0.5))
    ts.append(GaussianNoise(0.02))
    return Compose(ts, seed=seed)
