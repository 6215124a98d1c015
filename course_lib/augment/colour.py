"""Steps 3-4 of the SimCLR chain: colour jitter (brightness, contrast, saturation, hue) and grayscale,
each a function of the batch and one factor per image, as torchvision's ``ColorJitter`` defines them."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from .config import JITTER_OPS

#: ITU-R BT.601 luma weights for R, G, B (as PIL's ``convert("L")``; torchvision uses 0.2989 for R).
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_grayscale(x: Tensor) -> Tensor:
    """Luma ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601): ``(B, 3, H, W)`` → ``(B, 1, H, W)``."""
    weights = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)  # (B, 1, H, W)


def _per_image(factor: Tensor, x: Tensor) -> Tensor:
    """A per-image factor ``(B,)`` shaped to broadcast over ``(B, C, H, W)``."""
    return factor.to(x.dtype).view(-1, 1, 1, 1)


def blend(x: Tensor, y: Tensor, factor: Tensor) -> Tensor:
    """``clamp(f·x + (1 − f)·y, 0, 1)`` per image: f = 0 gives y, f = 1 gives x, f > 1 goes past x.

    x ``(B, 3, H, W)``, y broadcastable to it, factor ``(B,)`` → ``(B, 3, H, W)``.
    """
    return torch.lerp(y, x, _per_image(factor, x)).clamp_(0, 1)  # y + f·(x − y)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """Scale every pixel by ``factor`` (blend with black): ``(B, 3, H, W)``, ``(B,)`` → ``(B, 3, H, W)``."""
    return (x * _per_image(factor, x)).clamp_(0, 1)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend each image with its mean gray level: ``(B, 3, H, W)``, ``(B,)`` → ``(B, 3, H, W)``."""
    weights = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype)  # (3,)
    mean = x.mean(dim=(2, 3)) @ weights  # (B,) the mean of the gray image (the map is linear)
    return blend(x, mean.view(-1, 1, 1, 1), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend each pixel with its own gray level: ``(B, 3, H, W)``, ``(B,)`` → ``(B, 3, H, W)``."""
    return blend(x, rgb_to_grayscale(x), factor)


def _hue_chroma_value(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue (in sixths of a turn, not wrapped), chroma ``C = max − min`` and value ``V = max``.

    The largest channel picks the sector of the colour hexagon (R 0, G 2, B 4 sixths) and the
    difference of the other two, over C, the position within ±1 of it: for R that is
    ``(G − B) / C``, for G ``2 + (B − R) / C``, for B ``4 + (R − G) / C``. Ties go to R, then G
    (both sides give the same hue); gray pixels (C = 0) get hue 0.
    x ``(B, 3, H, W)`` → three ``(B, 1, H, W)`` tensors.
    """
    r, g, b = x.split(1, dim=1)  # (B, 1, H, W) each
    value = x.amax(dim=1, keepdim=True)  # (B, 1, H, W)
    chroma = value - x.amin(dim=1, keepdim=True)  # (B, 1, H, W)
    # one-hot of the largest channel as 0/1 floats (arithmetic is faster than torch.where on CPU)
    red = (r == value).to(x.dtype)
    green = (g == value).to(x.dtype) * (1 - red)
    blue = 1 - red - green
    # in-place steps (the trailing _) save allocating a new batch-sized tensor at each step
    offset = (g - b).mul_(red).add_((b - r).mul_(green)).add_((r - g).mul_(blue))  # C·(position)
    offset = offset.div_(chroma.clamp_min(1e-12))  # in [-1, 1]; gray pixels: 0 / tiny = 0
    hue6 = offset.add_(2 * green).add_(4 * blue)  # (B, 1, H, W) sector + position
    return hue6, chroma, value


def _from_hue_chroma(hue6: Tensor, chroma: Tensor, value: Tensor) -> Tensor:
    """RGB from hue (sixths, any real), chroma and value: ``C_n = V − C·clamp(min(k, 4 − k), 0, 1)``
    with ``k = (n + hue6) mod 6`` and ``n = 5, 3, 1`` for R, G, B (each ``(B, 1, H, W)``)."""
    n = torch.tensor([5.0, 3.0, 1.0], device=hue6.device, dtype=hue6.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + hue6, 6.0)  # (B, 3, H, W)
    ramp = k.sub_(2).abs_().neg_().add_(2).clamp_(0, 1)  # min(k, 4 − k) = 2 − |k − 2|, in place
    return ramp.mul_(chroma).neg_().add_(value)  # V − C·ramp: (B, 3, H, W)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate every pixel's hue by ``shift`` turns (in [-0.5, 0.5]), keeping S and V:
    ``(B, 3, H, W)``, ``(B,)`` → ``(B, 3, H, W)``.

    The same as ``color.hsv_to_rgb`` of ``color.rgb_to_hsv(x)`` with ``H ← (H + shift) mod 1``; as the rotation
    keeps V and the chroma C = S·V, RGB is rebuilt from (H + shift, C, V) directly.
    """
    hue6, chroma, value = _hue_chroma_value(x)  # (B, 1, H, W) each
    return _from_hue_chroma(hue6 + 6.0 * _per_image(shift, x), chroma, value)


_ADJUST: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "brightness": adjust_brightness, "contrast": adjust_contrast,
    "saturation": adjust_saturation, "hue": adjust_hue,
}


def color_jitter(x: Tensor, factors: dict[str, Tensor], order: Sequence[str] = JITTER_OPS) -> Tensor:
    """Apply the four jitter operations in ``order``, each with its per-image factor ``(B,)``.

    x ``(B, 3, H, W)`` → ``(B, 3, H, W)``; ``factors`` maps ``"brightness"``, ``"contrast"``,
    ``"saturation"`` (multiplicative, 1 = unchanged) and ``"hue"`` (a shift, 0 = unchanged).
    """
    for name in order:
        x = _ADJUST[name](x, factors[name])
    return x


__all__ = ["GRAY_WEIGHTS", "rgb_to_grayscale", "blend", "adjust_brightness", "adjust_contrast",
           "adjust_saturation", "adjust_hue", "color_jitter"]
