"""Inpainting: the context encoder (Pathak, Krähenbühl, Donahue, Darrell & Efros, 2016).

Cut a block out of the image, ask an encoder-decoder to paint it back from the context around it.
L2 alone fills the hole with a blurry average of the plausible contents; an adversarial term
(a small discriminator that tells painted images from real ones) makes the fill sharp. The paper
weighs them λ_rec = 0.999, λ_adv = 0.001.

One optimizer trains both players (``fit`` has one): ``forward`` returns
``loss = L_G + L_D`` where

* ``L_G = λ_rec L_rec + λ_adv L_adv`` reaches the generator (backbone + decoder) only: the
  discriminator scores the painted image through a copy of its parameters that is detached
  (:func:`torch.func.functional_call`), so the gradient flows into the image but not into D;
* ``L_D`` (D's binary cross-entropy, real vs painted) reaches D only: it sees the painted image
  detached.

Each parameter therefore gets the gradient of its own player's loss, exactly as two optimizers
stepping in turn would give (with both players seeing the same batch). The backbone's features
are *spatial* maps: :func:`feature_map` runs the backbone without its global pooling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .. import _checks as check
from ..data import normalize_batch
from .common import PretextTask

__all__ = ["feature_map", "Decoder", "random_block_mask", "masked_mse", "InpaintingConfig",
           "InpaintingTask", "inpaint"]


# --------------------------------------------------------------------- encoder-decoder parts
def feature_map(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The backbone's last feature map, before global pooling: ``(B, C, H, W)`` -> ``(B, D, h, w)``.

    :class:`~course_lib.models.SmallConvNet`: its ``blocks`` (``(B, 256, H/8, W/8)``);
    torchvision ResNets (:func:`~course_lib.models.resnet18_cifar`): the stem and ``layer1..4``
    (``(B, 512, H/8, W/8)``); any other backbone: its pooled vector as a 1x1 map ``(B, D, 1, 1)``.
    """
    if hasattr(backbone, "blocks"):
        check.image_batch(x, backbone.in_channels)
        return backbone.blocks(x)
    if all(hasattr(backbone, n) for n in ("conv1", "layer4")):
        b = backbone
        h = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        return b.layer4(b.layer3(b.layer2(b.layer1(h))))
    return backbone(x)[:, :, None, None]


def _map_shape(backbone: nn.Module, channels: int, image_size: int) -> tuple:
    """(D, h) of :func:`feature_map` for an image of ``image_size``: one forward pass of zeros,
    in eval mode and without gradients (BatchNorm statistics are left as they were)."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        p = next(backbone.parameters())
        h = feature_map(backbone, torch.zeros(1, channels, image_size, image_size, device=p.device, dtype=p.dtype))
    backbone.train(was_training)
    return h.shape[1], h.shape[-1]


class Decoder(nn.Module):
    """(B, D, h, w) -> (B, out_channels, H, W): ``log2(H/h)`` up-convolutions (ConvTranspose 4x4,
    stride 2, + BN-ReLU; channels halved each stage, at least ``min_width``), then a 1x1 convolution.

    The context encoder's decoder is such a stack of up-convolutions (Pathak et al., 2016, Fig. 9);
    a 4x4 kernel moved by 2 covers every output pixel equally often, so no checkerboard pattern is
    built in (Odena et al., 2016); it needs under half the multiply-adds of 2x upsampling + 3x3 conv.
    Colorization's decoder predicts at 1/4 resolution then upsamples (Zhang et al., 2016); at 32x32
    both predict at full resolution. The output is resized to the input's size if the stages miss it.
    """

    def __init__(self, in_channels: int, out_channels: int, upsample: int, min_width: int = 32):
        super().__init__()
        layers, c = [], in_channels
        for _ in range(max(0, round(math.log2(max(upsample, 1))))):
            c_out = max(min_width, c // 2)
            layers += [nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c = c_out
        self.stages = nn.Sequential(*layers)
        self.out = nn.Conv2d(c, out_channels, 1)

    def forward(self, h: torch.Tensor, size: Optional[tuple] = None) -> torch.Tensor:
        y = self.out(self.stages(h))  # (B, out_channels, h·2^k, w·2^k)
        if size is not None and tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


def build_decoder(backbone: nn.Module, out_channels: int, in_channels: int = 3, image_size: int = 32,
                  out_size: Optional[int] = None) -> Decoder:
    """A :class:`Decoder` from the feature map of an ``image_size`` image to ``out_size`` pixels
    (default ``image_size``)."""
    d, h = _map_shape(backbone, in_channels, image_size)
    return Decoder(d, out_channels, max(1, (out_size or image_size) // h))


# --------------------------------------------------------------------------------- the masks
def random_block_mask(x: torch.Tensor, size: int, mode: str = "random", generator=None) -> torch.Tensor:
    """M: a ``size`` x ``size`` block per image, 1 = missing (Pathak et al., 2016, Sec. 3.3).

    ``x`` ``(B, C, H, W)`` (only its shape and device are used) -> mask ``(B, 1, H, W)`` float.
    ``mode="center"``: the paper's central block (rows/cols ``(H - size)//2 …``); ``"random"``: a
    block at a uniformly random position per image, fully inside the image (the paper's random
    block, one per image). ``generator``: a ``torch.Generator`` on ``x``'s device, for repeatable masks.
    """
    check.image_batch(x, x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 4 else 3)
    B, _, H, W = x.shape
    if not 0 < size <= min(H, W):
        raise ValueError(f"block size must be in [1, min(H, W)] = [1, {min(H, W)}], got {size}")
    if mode == "center":
        top = torch.full((B, 1), (H - size) // 2, device=x.device)
        left = torch.full((B, 1), (W - size) // 2, device=x.device)
    elif mode == "random":
        top = torch.randint(0, H - size + 1, (B, 1), device=x.device, generator=generator)
        left = torch.randint(0, W - size + 1, (B, 1), device=x.device, generator=generator)
    else:
        raise ValueError(f"mode must be 'center' or 'random', got {mode!r}")
    rows = torch.arange(H, device=x.device)[None, :]  # (1, H)
    cols = torch.arange(W, device=x.device)[None, :]  # (1, W)
    in_rows = (rows >= top) & (rows < top + size)  # (B, H)
    in_cols = (cols >= left) & (cols < left + size)  # (B, W)
    return (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1).to(x.dtype)  # (B, 1, H, W)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_rec = ‖M ⊙ (x − F((1 − M) ⊙ x))‖² / (C Σ M): the mean squared error over missing pixels.

    ``pred``, ``target`` ``(B, C, H, W)``, ``mask`` ``(B, 1, H, W)`` (1 = missing) -> 0-dim.
    Visible pixels do not enter it (MAE's loss too).
    """
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != pred.shape[-2:] or pred.shape != target.shape:
        raise ValueError(f"expected pred and target (B, C, H, W) and mask (B, 1, H, W), got "
                         f"{tuple(pred.shape)}, {tuple(target.shape)} and {tuple(mask.shape)}")
    se = (mask * (pred - target) ** 2).sum()
    return se / (mask.sum() * pred.shape[1]).clamp_min(1.0)


# ---------------------------------------------------------------------------------- the task
@dataclass
class InpaintingConfig:
    """The context encoder's settings, scaled to 32x32 CIFAR.

    * ``block`` = 16: the paper cuts a 64x64 block out of 128x128 images (a quarter of the area):
      16x16 out of 32x32 keeps that fraction.
    * ``mode`` = "center": the paper's central block ("random": a block anywhere in the image).
    * ``adversarial`` = True: L2 + adversarial loss; False: L2 alone (the paper's blurry baseline).
    * ``lambda_rec`` = 0.999, ``lambda_adv`` = 0.001: the paper's weights.
    * ``image_size`` = 32: the size the decoder is built for.
    """

    block: int = 16
    mode: str = "center"
    adversarial: bool = True
    lambda_rec: float = 0.999
    lambda_adv: float = 0.001
    image_size: int = 32


def discriminator(width: int = 32) -> nn.Module:
    """D: (B, 3, 32, 32) in [0, 1] -> (B,) logits; three stride-2 conv4x4-LeakyReLU(0.2) (as DCGAN,
    without BatchNorm so that scoring through detached parameters leaves no running statistics)."""
    return nn.Sequential(
        nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 1), nn.Flatten(0),
    )


class InpaintingTask(PretextTask):
    """L_G = λ_rec ‖M ⊙ (x − F((1−M) ⊙ x))‖² + λ_adv L_adv, and D's own L_D: Pathak et al. (2016).

    Parts: ``backbone`` (the encoder, fed the normalised image with the hole set to 0, the
    dataset mean), ``decoder`` (feature map -> RGB in [0, 1] via a sigmoid), ``discriminator``
    (None when ``adversarial=False``). ``forward(x)`` -> ``{"loss": L_G + L_D, "rec": L_rec,
    "adv": L_adv, "disc": L_D}`` (see the module's docstring for how the two losses stay apart).
    """

    def __init__(self, backbone: nn.Module, config: Optional[InpaintingConfig] = None):
        super().__init__(backbone)
        self.config = config or InpaintingConfig()
        self.decoder = build_decoder(backbone, 3, image_size=self.config.image_size)
        self.discriminator = discriminator() if self.config.adversarial else None

    def extra_repr(self) -> str:
        return repr(self.config)

    def make_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The task's mask for the batch ``x``: ``(B, 1, H, W)``, 1 = missing."""
        return random_block_mask(x, self.config.block, self.config.mode)

    def predict(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """F((1 − M) ⊙ x): ``(B, 3, H, W)`` in [0, 1] and mask ``(B, 1, H, W)`` -> ``(B, 3, H, W)``."""
        h = feature_map(self.backbone, self.prepare(x) * (1 - mask))  # (B, D, h, w)
        return torch.sigmoid(self.decoder(h, size=x.shape[-2:]))  # (B, 3, H, W)

    def forward(self, x: torch.Tensor) -> dict:
        check.image_batch(x, 3, floating=True)
        mask = self.make_mask(x)  # (B, 1, H, W)
        pred = self.predict(x, mask)  # (B, 3, H, W)
        rec = masked_mse(pred, x, mask)
        c = self.config
        if self.discriminator is None:
            return {"loss": rec, "rec": rec}
        painted = mask * pred + (1 - mask) * x  # (B, 3, H, W): the context kept, the hole painted
        frozen = {n: p.detach() for n, p in self.discriminator.named_parameters()}
        adv = F.binary_cross_entropy_with_logits(
            functional_call(self.discriminator, frozen, (painted,)), torch.ones(len(x), device=x.device))
        gen = c.lambda_rec * rec + c.lambda_adv * adv
        d_real, d_fake = self.discriminator(x), self.discriminator(painted.detach())  # (B,) each
        disc = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        return {"loss": gen + disc, "gen": gen, "rec": rec, "adv": adv, "disc": disc}


@torch.no_grad()
def inpaint(task: InpaintingTask, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The painted images ``M ⊙ F((1−M) ⊙ x) + (1 − M) ⊙ x``: ``(B, 3, H, W)`` in [0, 1].

    ``mask`` ``(B, 1, H, W)`` (1 = missing); None: the task's own (its central block by default).
    Runs in eval mode (BatchNorm's running statistics) and restores the task's mode.
    """
    check.image_batch(x, 3, floating=True)
    mask = task.make_mask(x) if mask is None else mask.to(x)
    was_training = task.training
    task.eval()
    pred = task.predict(x, mask)
    task.train(was_training)
    return mask * pred + (1 - mask) * x
