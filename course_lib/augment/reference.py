"""The per-image torchvision composition of the same chain: the readable reference and the baseline
that ``benchmarks/augment.py`` measures :class:`~course_lib.augment.SimCLRAugment` against."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from .config import SimCLRAugmentConfig


def simclr_reference_transform(config: Optional[SimCLRAugmentConfig] = None, api: Optional[str] = None):
    """The same SimCLR chain as a per-image torchvision composition (the readable reference).

    Takes a PIL image or a uint8 tensor ``(3, H, W)`` and returns a float32 tensor
    ``(3, size, size)`` in [0, 1]. ``api="v2"`` (the default when available, torchvision ≥ 0.16)
    uses ``torchvision.transforms.v2``; ``api="v1"`` the classic ``torchvision.transforms``.
    It draws from the same distributions as :class:`SimCLRAugment`; the differences: resizing is
    antialiased (matters only when a crop shrinks), the jitter order is drawn per image, and
    torchvision's grayscale uses 0.2989 for red on tensors (PIL and BT.601: 0.299).
    """
    c = config or SimCLRAugmentConfig()
    if api is None:
        try:
            from torchvision.transforms import v2  # noqa: F401
            api = "v2"
        except ImportError:
            api = "v1"
    if api == "v2":
        from torchvision.transforms import v2 as T
    elif api == "v1":
        import torchvision.transforms as T
    else:
        raise ValueError(f"api must be 'v2', 'v1' or None, got {api!r}")

    steps = [
        T.RandomResizedCrop(c.size, scale=tuple(c.scale), ratio=tuple(c.ratio), antialias=True),
        T.RandomHorizontalFlip(p=c.flip_p),
        T.RandomApply([T.ColorJitter(c.brightness, c.contrast, c.saturation, c.hue)], p=c.jitter_p),
        T.RandomGrayscale(p=c.gray_p),
    ]
    if c.blur_p > 0:
        steps.append(T.RandomApply([T.GaussianBlur(c.kernel_size, sigma=tuple(c.blur_sigma))], p=c.blur_p))
    if api == "v2":  # PIL or uint8 tensor in, uint8 through the chain, float at the end
        steps = [T.ToImage(), *steps, T.ToDtype(torch.float32, scale=True)]
        if hasattr(T, "ToPureTensor"):
            steps.append(T.ToPureTensor())
    else:
        steps = [_V1ToTensor(), *steps, T.ConvertImageDtype(torch.float32)]
    return T.Compose(steps)


class _V1ToTensor:
    """PIL image → uint8 tensor (3, H, W); a tensor passes through (for the v1 pipeline)."""

    def __call__(self, img):
        if isinstance(img, Tensor):
            return img
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(img)


class TwoViews:
    """Wrap a transform so that each call returns two independent views: ``(t(x), t(x))``.

    For a per-image ``Dataset`` (``transform=TwoViews(simclr_reference_transform())``) or a batch
    (``x1, x2 = TwoViews(SimCLRAugment())(x)``).
    """

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, x):
        return self.transform(x), self.transform(x)

    def __repr__(self) -> str:
        return f"TwoViews({self.transform!r})"


__all__ = ["simclr_reference_transform", "TwoViews"]
