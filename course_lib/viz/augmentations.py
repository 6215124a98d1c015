"""Chapter 06's gallery: one image under each stage of SimCLR's augmentation, then under the whole chain.

* :func:`augmentation_stages`: one :class:`~course_lib.augment.SimCLRAugmentConfig` per stage of the
  chain (crop + resize, flip, colour jitter, grayscale, Gaussian blur), each switching that stage
  alone on, and the full chain last;
* :func:`show_augmentation_gallery`: a grid, one row per stage, a few random draws of each.

Every view comes from :class:`~course_lib.augment.SimCLRAugment` itself, so the gallery shows what
training sees (Chen et al. 2020, appendix A; the UTD CS 6384 and HSE decks show the same stages).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch

from ..augment import SimCLRAugment, SimCLRAugmentConfig
from .images import to_display
from .style import _style

__all__ = ["augmentation_stages", "show_augmentation_gallery"]

_NOTHING = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0)


def augmentation_stages(config: Optional[SimCLRAugmentConfig] = None) -> dict:
    """``{stage name: SimCLRAugmentConfig}``: each stage of ``config``'s chain alone, always applied
    (probability 1, the stage's own ranges from ``config``), then ``"full chain"`` = ``config`` itself.

    A stage alone keeps the whole image (crop scale and ratio 1) unless it is the crop. Blur uses
    ``config.blur_sigma`` even where ``config.blur_p = 0`` (the paper's CIFAR-10 chain has no blur).
    """
    base = config or SimCLRAugmentConfig()
    alone = replace(base, **_NOTHING)
    return {
        "crop + resize": replace(alone, scale=base.scale, ratio=base.ratio),
        "horizontal flip": replace(alone, flip_p=1.0),
        "colour jitter": replace(alone, jitter_p=1.0),
        "grayscale": replace(alone, gray_p=1.0),
        "Gaussian blur": replace(alone, blur_p=1.0),
        "full chain": base,
    }


def _as_batch(image) -> torch.Tensor:
    """One image, uint8 ``(H, W, 3)`` or float ``(3, H, W)`` in [0, 1] → float ``(1, 3, H, W)`` in [0, 1]."""
    x = torch.as_tensor(to_display(image)[:1])  # (1, H, W, 3) float in [0, 1]
    return x.permute(0, 3, 1, 2).contiguous()  # (1, 3, H, W)


def gallery_views(image, n: int = 5, config: Optional[SimCLRAugmentConfig] = None, seed: int = 0) -> dict:
    """``{stage: (n, 3, size, size)}``: ``n`` random views of ``image`` under each stage of
    :func:`augmentation_stages` ``(config)``, drawn from a generator seeded ``seed`` (repeatable)."""
    x = _as_batch(image).expand(n, -1, -1, -1)  # (n, 3, H, W): the same image n times
    g = torch.Generator().manual_seed(seed)
    return {name: SimCLRAugment(c)(x, generator=g) for name, c in augmentation_stages(config).items()}


def show_augmentation_gallery(image, n: int = 5, config: Optional[SimCLRAugmentConfig] = None, seed: int = 0,
                              title: Optional[str] = None, tile: float = 1.25):
    """One row per stage of SimCLR's chain (:func:`augmentation_stages`), ``n`` random views each,
    the original image first. ``image``: uint8 ``(H, W, 3)`` or float ``(3, H, W)`` in [0, 1];
    ``config``: the chain (default the paper's CIFAR-10 one); ``seed`` makes the views repeat.
    Returns the figure."""
    import matplotlib.pyplot as plt

    rows = {"original": _as_batch(image), **gallery_views(image, n, config, seed)}
    with _style():
        fig, axes = plt.subplots(len(rows), n, figsize=(tile * n + 1.4, tile * len(rows)), squeeze=False,
                                 layout="constrained")
        for r, (name, views) in enumerate(rows.items()):
            shown = to_display(views)  # (k, H, W, 3)
            for c, ax in enumerate(axes[r]):
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if c < len(shown):
                    ax.imshow(shown[c], interpolation="nearest")
                else:
                    ax.axis("off")
            axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        if title:
            fig.suptitle(title)
    return fig
