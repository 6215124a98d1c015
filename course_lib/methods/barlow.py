"""Barlow Twins (Zbontar et al., 2021): make the cross-correlation of two views' embeddings the identity."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..losses import barlow_twins_loss
from ..models import ProjectionHead
from ..distributed import gather_with_grad
from .common import check_views

__all__ = ["BarlowTwinsConfig", "BarlowTwins"]


@dataclass
class BarlowTwinsConfig:
    """Barlow Twins' settings, CIFAR-10 defaults.

    * ``lambd`` λ = 0.0051: the paper's ImageNet value is 5e-3 (≈ 1/D for its 8192-d projector) and its
      code's default 0.0051; solo-learn's CIFAR-10 recipe keeps 0.0051 with a 2048-2048-2048 projector.
    * ``projector_hidden`` = ``projector_dim`` = 2048, ``projector_layers`` = 3: the paper's projector
      shape (Linear-BN-ReLU twice, then Linear; 8192 wide on ImageNet) at solo-learn's CIFAR width.
    * ``scale_loss`` = 1.0: the loss exactly as written. solo-learn multiplies it by 0.1 for LARS at
      lr 0.3; with Adam (the course's default optimizer) a constant factor changes next to nothing.
    """

    lambd: float = 0.0051
    projector_hidden: int = 2048
    projector_dim: int = 2048
    projector_layers: int = 3
    scale_loss: float = 1.0


class BarlowTwins(nn.Module):
    """L = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij²: Barlow Twins (Zbontar et al., 2021; HSE deck).

    Parts: ``backbone`` f, ``projector`` g. ``forward(x1, x2)`` embeds each view separately (as the
    paper's code), z^A = g(f(x1)), z^B = g(f(x2)) ``(B, projector_dim)``, and returns the 0-dim
    ``scale_loss · barlow_twins_loss(z^A, z^B, λ)``; C is their cross-correlation over the batch.

    Under ``torchrun`` z_A and z_B are gathered from every process, so C is over the global batch, and
    BatchNorm runs over the global batch too (``global_batchnorm``).
    """

    global_batchnorm = True

    def __init__(self, backbone: nn.Module, config: Optional[BarlowTwinsConfig] = None):
        super().__init__()
        self.config = c = config or BarlowTwinsConfig()
        self.backbone = backbone
        self.projector = ProjectionHead(backbone.out_dim, c.projector_hidden, c.projector_dim, c.projector_layers)

    def extra_repr(self) -> str:
        return repr(self.config)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """h = f(x): the representation kept, ``(B, 3, H, W)`` → ``(B, backbone.out_dim)``."""
        return self.backbone(x)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        check_views(x1, x2)
        z_a, z_b = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))  # (B, d) each
        z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)  # (W·B, d): C over the global batch
        return self.config.scale_loss * barlow_twins_loss(z_a, z_b, lambd=self.config.lambd)
