"""BYOL (Grill et al., 2020): an online network predicts a slowly moving target network's projection."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..losses import byol_loss
from ..models import PredictionHead, ProjectionHead
from .common import check_views, cosine_momentum, momentum_update, target_copy

__all__ = ["BYOLConfig", "BYOL"]


@dataclass
class BYOLConfig:
    """BYOL's settings, CIFAR-10 defaults.

    * ``base_momentum`` τ_base = 0.99, the CIFAR choice of lightly and solo-learn (whose CIFAR runs
      are hundreds of epochs, not the paper's 1000 ImageNet epochs); the paper's ImageNet value is
      0.996. τ rises from τ_base to 1 along :func:`cosine_momentum`.
    * ``projector_hidden`` = 4096, ``projector_dim`` = 256, ``predictor_hidden`` = 4096: the paper's
      MLPs Linear-BN-ReLU-Linear (4096 → 256) for both the projector g and the predictor q.
    * Ablations: ``predictor=False`` drops q (it becomes the identity); ``ema=False`` makes the
      target the online network itself, detached: momentum 0, the target is copied from the online
      network at every :meth:`BYOL.update_target`. The BYOL paper (Table 5) and SimSiam report that
      removing the predictor, with the target equal to the online network, collapses.
    """

    base_momentum: float = 0.99
    projector_hidden: int = 4096
    projector_dim: int = 256
    predictor_hidden: int = 4096
    predictor: bool = True
    ema: bool = True


class BYOL(nn.Module):
    """L = ‖q̄_θ(z_θ) − z̄′_ξ‖² + ‖q̄_θ(z′_θ) − z̄_ξ‖²: BYOL's symmetric loss (Grill et al., 2020;
    IIT Hyderabad deck), ξ ← τ ξ + (1 − τ) θ after every step.

    Parts: online θ = ``backbone`` f_θ, ``projector`` g_θ, ``predictor`` q_θ; target ξ =
    ``target_backbone`` f_ξ, ``target_projector`` g_ξ (:func:`target_copy`: no gradient; they move
    only through :meth:`update_target`, which ``fit(..., on_step=target_update(total_steps))`` calls;
    without it the target stays at its initialisation). ``forward(x1, x2)`` encodes each view
    separately (as the reference code: BatchNorm statistics per view), computes the target
    projections z′ under ``no_grad`` and returns the 0-dim loss
    ``byol_loss(q(z₁), z′₂) + byol_loss(q(z₂), z′₁)``, each term the batch mean of 2 − 2 cos.

    Under ``torchrun`` every BatchNorm (backbone, projector, predictor, target) runs over the global
    batch (``global_batchnorm``), as BYOL's synchronised BN; the loss is a mean over images, so no gather.
    """

    global_batchnorm = True

    def __init__(self, backbone: nn.Module, config: Optional[BYOLConfig] = None):
        super().__init__()
        self.config = c = config or BYOLConfig()
        self.backbone = backbone
        self.projector = ProjectionHead(backbone.out_dim, c.projector_hidden, c.projector_dim, num_layers=2)
        self.predictor = (PredictionHead(c.projector_dim, c.predictor_hidden, c.projector_dim) if c.predictor
                          else nn.Identity())
        self.target_backbone = target_copy(self.backbone)
        self.target_projector = target_copy(self.projector)

    def extra_repr(self) -> str:
        return repr(self.config)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """h = f_θ(x): the representation kept, ``(B, 3, H, W)`` → ``(B, backbone.out_dim)``."""
        return self.backbone(x)

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        """z′ = g_ξ(f_ξ(x)), ``(B, projector_dim)``, no gradient."""
        return self.target_projector(self.target_backbone(x))

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        check_views(x1, x2)
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))  # (B, d) each
        t1, t2 = self.target(x1), self.target(x2)  # (B, d) each, from the target network
        return byol_loss(self.predictor(z1), t2) + byol_loss(self.predictor(z2), t1)

    def momentum(self, step: Optional[int] = None, total_steps: Optional[int] = None) -> float:
        """τ at ``step``: 0 when ``ema=False``; τ_base without ``total_steps``; else :func:`cosine_momentum`."""
        c = self.config
        if not c.ema:
            return 0.0
        if step is None or total_steps is None:
            return c.base_momentum
        return cosine_momentum(step, total_steps, c.base_momentum)

    def update_target(self, step: Optional[int] = None, total_steps: Optional[int] = None) -> None:
        """ξ ← τ ξ + (1 − τ) θ for (backbone, projector) → (target_backbone, target_projector)."""
        tau = self.momentum(step, total_steps)
        momentum_update(self.backbone, self.target_backbone, tau)
        momentum_update(self.projector, self.target_projector, tau)
