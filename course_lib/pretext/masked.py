"""Masked reconstruction, MAE-style (He, Chen, Xie, Li, Dollár & Girshick, 2022).

The modern descendant of the context encoder: cut the image into patches, hide most of them at
random (75 %), reconstruct the hidden ones, score only those. MAE's ViT encoder drops the hidden
patches; a convolutional encoder cannot, so here they are set to 0 (the dataset mean after
normalisation) as the context encoder does with its hole, and the inpainting encoder-decoder
(:func:`~course_lib.pretext.inpainting.feature_map` + a
:class:`~course_lib.pretext.inpainting.Decoder`) is reused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .. import _checks as check
from .common import PretextTask
from .inpainting import build_decoder, feature_map, masked_mse

__all__ = ["random_patch_mask", "patch_normalize", "MaskedReconstructionConfig", "MaskedReconstructionTask",
           "reconstruct"]


def random_patch_mask(x: torch.Tensor, patch: int, ratio: float, generator=None) -> torch.Tensor:
    """MAE's random masking: exactly ``round(ratio · n)`` of the ``n`` patches of each image hidden.

    ``x`` ``(B, C, H, W)`` with H, W multiples of ``patch`` -> mask ``(B, 1, H, W)`` float,
    1 = masked, constant on every ``patch`` x ``patch`` patch. As MAE, a uniform noise per patch
    is sorted and the lowest ranks are kept visible (no Python loop over images).
    """
    check.image_batch(x, x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 4 else 3)
    B, _, H, W = x.shape
    if patch < 1 or H % patch or W % patch:
        raise ValueError(f"patch must divide the image size (H, W) = ({H}, {W}), got {patch}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    gh, gw = H // patch, W // patch
    n_masked = round(ratio * gh * gw)
    noise = torch.rand(B, gh * gw, device=x.device, generator=generator)  # (B, n)
    rank = noise.argsort(dim=1).argsort(dim=1)  # (B, n): each patch's rank in its image
    grid = (rank >= gh * gw - n_masked).to(x.dtype).view(B, 1, gh, gw)  # the n_masked largest
    return grid.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)  # (B, 1, H, W)


def patch_normalize(x: torch.Tensor, patch: int, eps: float = 1e-6):
    """MAE's normalised targets: each patch's pixels (all channels) minus their mean, over their std.

    ``x`` ``(B, C, H, W)`` -> ``(x̂, mean, std)``: x̂ ``(B, C, H, W)``, mean and std ``(B, 1, H, W)``
    (constant on each patch), so ``x = x̂ · std + mean``. std = sqrt(var + eps), as MAE.
    """
    B, C, H, W = x.shape
    p = x.view(B, C, H // patch, patch, W // patch, patch)
    mean = p.mean(dim=(1, 3, 5), keepdim=True)  # (B, 1, gh, 1, gw, 1)
    std = (p.var(dim=(1, 3, 5), keepdim=True, unbiased=False) + eps).sqrt()
    expand = lambda t: t.expand(B, 1, H // patch, patch, W // patch, patch).reshape(B, 1, H, W)  # noqa: E731
    mean, std = expand(mean), expand(std)
    return (x - mean) / std, mean, std


@dataclass
class MaskedReconstructionConfig:
    """MAE's settings, scaled to 32x32 CIFAR.

    * ``patch`` = 4: MAE's 16x16 patches of 224x224 images make a 14x14 grid; 4x4 patches of a
      32x32 image make 8x8 = 64 patches (the usual CIFAR choice for ViTs too).
    * ``ratio`` = 0.75: MAE's masking ratio (its Fig. 5: 75 % is best for both fine-tuning and
      linear probing).
    * ``norm_pix_loss`` = False: True predicts each patch normalised by its own mean and std (MAE's
      Table 1d: better features); the prediction is then in normalised units.
    """

    patch: int = 4
    ratio: float = 0.75
    norm_pix_loss: bool = False
    image_size: int = 32


class MaskedReconstructionTask(PretextTask):
    """L = Σ_masked (x̂ − x)² / |masked pixels|: MAE's loss (He et al., 2022) on a CNN encoder-decoder.

    Parts: ``backbone`` (fed the normalised image with the masked patches set to 0), ``decoder``
    (feature map -> RGB: in [0, 1] via a sigmoid, or unbounded normalised-patch units with
    ``norm_pix_loss``). ``forward(x)`` -> ``{"loss": L}``.
    """

    def __init__(self, backbone: nn.Module, config: Optional[MaskedReconstructionConfig] = None):
        super().__init__(backbone)
        self.config = config or MaskedReconstructionConfig()
        self.decoder = build_decoder(backbone, 3, image_size=self.config.image_size)

    def extra_repr(self) -> str:
        return repr(self.config)

    def make_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The task's random patch mask ``(B, 1, H, W)``, 1 = masked."""
        return random_patch_mask(x, self.config.patch, self.config.ratio)

    def predict(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The decoder's output for the masked image: ``(B, 3, H, W)``."""
        h = feature_map(self.backbone, self.prepare(x) * (1 - mask))  # (B, D, h, w)
        y = self.decoder(h, size=x.shape[-2:])  # (B, 3, H, W)
        return y if self.config.norm_pix_loss else torch.sigmoid(y)

    def loss(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The MSE over the masked patches of ``x`` ``(B, 3, H, W)`` for ``mask`` ``(B, 1, H, W)``."""
        target = patch_normalize(x, self.config.patch)[0] if self.config.norm_pix_loss else x
        return masked_mse(self.predict(x, mask), target, mask)

    def forward(self, x: torch.Tensor) -> dict:
        check.image_batch(x, 3, floating=True)
        return {"loss": self.loss(x, self.make_mask(x))}


@torch.no_grad()
def reconstruct(task: MaskedReconstructionTask, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Visible patches kept, masked ones predicted: ``(B, 3, H, W)`` in [0, 1].

    ``mask`` ``(B, 1, H, W)`` (None: a fresh random one). With ``norm_pix_loss`` the prediction is
    mapped back with each patch's true mean and std (as MAE's figures do). Eval mode, mode restored.
    """
    check.image_batch(x, 3, floating=True)
    mask = task.make_mask(x) if mask is None else mask.to(x)
    was_training = task.training
    task.eval()
    pred = task.predict(x, mask)
    task.train(was_training)
    if task.config.norm_pix_loss:
        _, mean, std = patch_normalize(x, task.config.patch)
        pred = pred * std + mean
    return (mask * pred + (1 - mask) * x).clamp(0.0, 1.0)
