"""SimCLR data augmentation, batched: every image of a batch gets its own random view, on any device.

SimCLR (Chen, Kornblith, Norouzi & Hinton, 2020, "A Simple Framework for Contrastive Learning of
Visual Representations", appendix A) makes two views of each image with this chain:

1. random resized crop: area fraction ``a ~ U(0.08, 1)``, aspect ratio ``r ~ logU(3/4, 4/3)``,
   resized back to ``size × size`` (bilinear);
2. horizontal flip with probability 0.5;
3. colour jitter with probability 0.8: brightness, contrast and saturation factors
   ``~ U(1 - 0.8·s, 1 + 0.8·s)``, hue shift ``~ U(-0.2·s, 0.2·s)`` (``s`` the colour strength,
   0.5 for CIFAR-10 in the paper, 1.0 for ImageNet);
4. grayscale with probability 0.2;
5. Gaussian blur with probability 0.5, ``σ ~ U(0.1, 2.0)``, kernel ≈ 10 % of the image side
   (ImageNet only: the paper leaves it out for CIFAR-10, so ``blur_p = 0`` here by default).

Two implementations of the same chain live here:

* :class:`SimCLRAugment` works on a float batch ``(B, 3, H, W)`` in [0, 1] where it already is
  (CPU, CUDA, MPS). Each stage is a small function of the batch and one parameter per image
  (:func:`random_resized_crop_params`, :func:`crop_and_flip`, :func:`adjust_brightness`, ...);
  there is no Python loop over images. Crop and flip are one affine sampling grid per image
  (the grid ``F.affine_grid`` would build, then ``F.grid_sample``), a "probability p" is a boolean
  mask per image. One difference from torchvision: the order of the four colour-jitter
  operations is drawn once per batch (torchvision draws it per image).
* :func:`simclr_reference_transform` is the per-image torchvision composition: the readable
  reference, and the baseline ``benchmarks/augment.py`` measures the batched version against.

Modules by topic: :mod:`~course_lib.augment.config` (settings, the random parameters of a batch),
:mod:`~course_lib.augment.geometry` (crop and flip), :mod:`~course_lib.augment.colour` (jitter and
grayscale), :mod:`~course_lib.augment.blur`, :mod:`~course_lib.augment.chain` (:class:`SimCLRAugment`)
and :mod:`~course_lib.augment.reference` (the per-image torchvision version); all importable from here.

Random numbers come from torch's global generator (or an explicit ``generator=``), so
``torch.manual_seed`` makes a batch of views repeat.

Example::

    augment = SimCLRAugment()                      # the paper's CIFAR-10 settings
    x = images.float().div(255)                    # (B, 3, 32, 32) in [0, 1], e.g. on "cuda"
    x1, x2 = augment(x), augment(x)                # two independent views of every image
"""
from __future__ import annotations

from . import blur, chain, colour, config, geometry, reference
from .blur import gaussian_blur
from .chain import SimCLRAugment, check_batch, select
from .colour import (
    GRAY_WEIGHTS, adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, blend, color_jitter,
    rgb_to_grayscale,
)
from .config import JITTER_OPS, AugmentParams, SimCLRAugmentConfig
from .geometry import crop_and_flip, crop_grid, random_resized_crop_params
from .reference import TwoViews, simclr_reference_transform

__all__ = [
    "SimCLRAugmentConfig", "SimCLRAugment", "AugmentParams", "simclr_reference_transform", "TwoViews",
    "random_resized_crop_params", "crop_grid", "crop_and_flip", "rgb_to_grayscale", "blend",
    "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue",
    "color_jitter", "gaussian_blur", "select", "check_batch", "GRAY_WEIGHTS", "JITTER_OPS",
]
