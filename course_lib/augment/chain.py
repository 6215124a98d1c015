"""The whole SimCLR chain for a batch: :class:`SimCLRAugment` (Chen et al. 2020, appendix A).

crop + flip -> colour jitter -> grayscale -> blur, each image with its own random parameters,
no Python loop over images, on whatever device the batch is.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Optional

import torch
from torch import Tensor, nn

from .. import _checks as check
from .blur import gaussian_blur
from .colour import _per_image, color_jitter, rgb_to_grayscale
from .config import JITTER_OPS, AugmentParams, SimCLRAugmentConfig, _bernoulli, _jitter_range, _uniform
from .geometry import crop_and_flip, random_resized_crop_params


def select(mask: Tensor, if_true: Tensor, if_false: Tensor) -> Tensor:
    """Per image, ``if_true`` where ``mask`` else ``if_false``: ``(B,)``, ``(B, C, H, W)`` × 2 → ``(B, C, H, W)``.

    ``torch.where(mask.view(-1, 1, 1, 1), if_true, if_false)`` written as ``lerp`` with a 0/1
    weight, which is exact at 0 and 1 and several times faster on CPU.
    """
    return torch.lerp(if_false, if_true, _per_image(mask, if_false))


def check_batch(x) -> Tensor:
    """Raise ``ValueError`` unless ``x`` is a floating-point tensor of shape (B, 3, H, W)."""
    hint = " (values in [0, 1]: for uint8 images use x.float() / 255; for (B, H, W, 3) use x.permute(0, 3, 1, 2))"
    return check.image_batch(x, 3, "SimCLRAugment's input", floating=True, hint=hint)


class SimCLRAugment(nn.Module):
    """SimCLR's augmentation (Chen et al. 2020, appendix A) for a whole batch at once.

    ``forward(x)``: x float ``(B, 3, H, W)`` in [0, 1] on any device → ``(B, 3, size, size)`` in
    [0, 1], same device and dtype. Every image gets independent random parameters:

    crop + flip (one affine grid per image) → colour jitter with prob. ``jitter_p`` → grayscale
    with prob. ``gray_p`` → Gaussian blur with prob. ``blur_p``.

    Colour-jitter order: torchvision's ``ColorJitter`` draws a new order of its four operations
    for every image; here one random order is drawn per *batch* (a fresh one at every call), so
    the images of a batch share it. Everything else is per image.

    ``SimCLRAugment(config)`` or ``SimCLRAugment(size=32, blur_p=0.5, ...)`` (keyword arguments
    override the config's fields). ``forward(x, generator=None, return_params=False)``:
    ``generator`` replaces torch's global generator; ``return_params=True`` also returns the
    :class:`AugmentParams` drawn. :meth:`sample_params` and :meth:`apply` are the two halves.
    """

    def __init__(self, config: Optional[SimCLRAugmentConfig] = None, **overrides):
        super().__init__()
        config = config or SimCLRAugmentConfig()
        unknown = set(overrides) - {f.name for f in fields(SimCLRAugmentConfig)}
        if unknown:
            raise TypeError(f"unknown SimCLRAugmentConfig field(s): {sorted(unknown)}")
        self.config = replace(config, **overrides)

    def extra_repr(self) -> str:
        return repr(self.config)

    def sample_params(
        self, batch: int, height: int, width: int, device=None, generator: Optional[torch.Generator] = None
    ) -> AugmentParams:
        """Draw every random choice for ``batch`` images of ``height × width`` pixels."""
        c, dev, g = self.config, device, generator
        boxes = random_resized_crop_params(batch, height, width, c.scale, c.ratio, device=dev, generator=g)
        order_keys = _uniform((len(JITTER_OPS),), 0.0, 1.0, "cpu" if g is None else g.device, g)
        order = tuple(JITTER_OPS[i] for i in order_keys.argsort().tolist())  # a random permutation
        return AugmentParams(
            boxes=boxes,  # (B, 4)
            flip=_bernoulli(batch, c.flip_p, dev, g),  # (B,)
            jitter=_bernoulli(batch, c.jitter_p, dev, g),  # (B,)
            brightness=_uniform((batch,), *_jitter_range(c.brightness), dev, g),  # (B,)
            contrast=_uniform((batch,), *_jitter_range(c.contrast), dev, g),  # (B,)
            saturation=_uniform((batch,), *_jitter_range(c.saturation), dev, g),  # (B,)
            hue=_uniform((batch,), -c.hue, c.hue, dev, g),  # (B,)
            order=order,
            gray=_bernoulli(batch, c.gray_p, dev, g),  # (B,)
            blur=_bernoulli(batch, c.blur_p, dev, g),  # (B,)
            sigma=_uniform((batch,), *c.blur_sigma, dev, g),  # (B,)
        )

    def apply(self, x: Tensor, params: AugmentParams) -> Tensor:
        """Apply drawn parameters: ``(B, 3, H, W)`` in [0, 1] → ``(B, 3, size, size)`` in [0, 1].

        A stage whose probability is 0 in the config is skipped; otherwise it is computed for the
        whole batch and kept only where the image's mask is True (:func:`select`; no indexing by
        the mask, so no host-device synchronisation).
        """
        c = self.config
        check_batch(x)
        dtype = x.dtype
        if dtype in (torch.float16, torch.bfloat16):  # grid_sample / HSV maths in float32
            x = x.float()
        x = crop_and_flip(x, params.boxes, params.flip, c.size)  # (B, 3, size, size)
        if c.jitter_p > 0 and c.jitter_strength > 0:
            jittered = color_jitter(x, params.factors, params.order)  # (B, 3, size, size)
            x = select(params.jitter, jittered, x)
        if c.gray_p > 0:
            x = select(params.gray, rgb_to_grayscale(x).expand_as(x), x)  # (B, 3, size, size)
        if c.blur_p > 0:
            blurred = gaussian_blur(x, params.sigma, c.kernel_size)  # (B, 3, size, size)
            x = select(params.blur, blurred, x)
        return x.to(dtype)

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None, return_params: bool = False):
        check_batch(x)
        params = self.sample_params(x.shape[0], x.shape[2], x.shape[3], device=x.device, generator=generator)
        out = self.apply(x, params)
        return (out, params) if return_params else out


__all__ = ["SimCLRAugment", "select", "check_batch"]
