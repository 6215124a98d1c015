"""The SimCLR augmentation's settings (the paper's defaults) and the random parameters of one batch.

Chen, Kornblith, Norouzi & Hinton 2020, appendix A. Random numbers come from torch's global
generator or an explicit ``generator=``, on the images' device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

#: the four colour-jitter operations, in torchvision's ``ColorJitter`` naming
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class SimCLRAugmentConfig:
    """The SimCLR augmentation's settings; the defaults are the paper's CIFAR-10 ones (appendix A/B.9).

    ``jitter_strength`` is the paper's colour strength ``s``: brightness, contrast and saturation
    jitter ``0.8·s``, hue jitter ``0.2·s``. ``blur_kernel_size=None`` means about 10 % of ``size``,
    made odd (3 for 32 px, 23 for 224 px), as in the paper's code.
    """

    size: int = 32
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_strength: float = 0.5
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_size: Optional[int] = None

    def __post_init__(self):
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        for name in ("scale", "ratio", "blur_sigma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if self.scale[1] > 1:
            raise ValueError(f"scale is a fraction of the image area, at most 1, got {self.scale}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(
                f"jitter_strength must be in [0, 2.5] (hue jitter 0.2·s <= 0.5), got {self.jitter_strength}"
            )
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if self.blur_kernel_size is not None and (self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0):
            raise ValueError(f"blur_kernel_size must be odd and positive, got {self.blur_kernel_size}")

    # the four ColorJitter arguments, derived from the strength s
    @property
    def brightness(self) -> float:
        return 0.8 * self.jitter_strength

    @property
    def contrast(self) -> float:
        return 0.8 * self.jitter_strength

    @property
    def saturation(self) -> float:
        return 0.8 * self.jitter_strength

    @property
    def hue(self) -> float:
        return 0.2 * self.jitter_strength

    @property
    def kernel_size(self) -> int:
        """The blur kernel's side: ``blur_kernel_size`` or ``2·((size // 10) // 2) + 1``, at least 3."""
        if self.blur_kernel_size is not None:
            return self.blur_kernel_size
        return max(3, 2 * ((self.size // 10) // 2) + 1)


# ------------------------------------------------------------------- one batch of parameters
@dataclass
class AugmentParams:
    """Everything random about one batch of views; each tensor has one entry per image.

    ``boxes`` (B, 4) crop (top, left, h, w) in input pixels; ``flip`` (B,) bool; ``jitter`` (B,)
    bool, whether colour jitter applies; ``brightness``, ``contrast``, ``saturation`` (B,) factors,
    ``hue`` (B,) shift; ``order`` the jitter operations' order for the batch; ``gray`` (B,) bool;
    ``blur`` (B,) bool and ``sigma`` (B,) its standard deviation in output pixels.
    """

    boxes: Tensor
    flip: Tensor
    jitter: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor
    order: tuple
    gray: Tensor
    blur: Tensor
    sigma: Tensor

    @property
    def factors(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in JITTER_OPS}


# ---------------------------------------------------------------------------- random numbers
def _uniform(shape, low, high, device, generator: Optional[torch.Generator] = None) -> Tensor:
    """``U(low, high)`` of ``shape`` on ``device``, from ``generator`` or torch's global one."""
    if generator is None:
        u = torch.rand(shape, device=device)
    else:  # a generator draws on its own device; move the numbers where the images are
        u = torch.rand(shape, device=generator.device, generator=generator).to(device)
    return low + (high - low) * u


def _bernoulli(n: int, p: float, device, generator=None) -> Tensor:
    """``n`` independent coin flips, each True with probability ``p``: ``(n,)`` bool."""
    return _uniform((n,), 0.0, 1.0, device, generator) < p


def _jitter_range(amount: float) -> tuple[float, float]:
    """torchvision's ``ColorJitter`` factor range for a multiplicative jitter: ``[max(0, 1-a), 1+a]``."""
    return max(0.0, 1.0 - amount), 1.0 + amount


__all__ = ["JITTER_OPS", "SimCLRAugmentConfig", "AugmentParams"]
