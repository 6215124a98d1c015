"""SimCLR (Chen et al., 2020): two views, one encoder, a projection head, NT-Xent over the batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..losses import nt_xent_loss
from ..models import ProjectionHead
from ..distributed import gather_with_grad
from .common import check_views

__all__ = ["SimCLRConfig", "SimCLR", "projection_head"]


@dataclass
class SimCLRConfig:
    """SimCLR's settings, CIFAR-10 defaults.

    * ``temperature`` τ = 0.5: SimCLR's CIFAR-10 experiments (App. B.9) pick 0.5 from {0.1, 0.5, 1.0}
      for their batch sizes and the LARS optimizer; solo-learn's CIFAR recipe uses 0.2 with LARS at a
      larger learning rate and a 2048-wide head. The course trains with Adam at lr 1e-3 and small
      batches, where 0.5 is the paper's own CIFAR choice (and the one the reference runs used).
    * ``projector_hidden``: width of g's hidden layer; None = the backbone's feature width, as in the
      paper (2048 → 2048 → 128 on ResNet-50).
    * ``projector_dim`` = 128: the output z the loss sees.
    * ``projector_layers``: 2 = the non-linear head g(h) = W₂ ReLU(BN(W₁ h)); 1 = linear, g(h) = W h;
      0 = none, z = h (``projector_dim`` unused). The paper's figure 8 compares the three.
    """

    temperature: float = 0.5
    projector_hidden: Optional[int] = None
    projector_dim: int = 128
    projector_layers: int = 2


def projection_head(in_dim: int, hidden_dim: Optional[int], out_dim: int, num_layers: int) -> nn.Module:
    """g: ``(B, in_dim)`` → ``(B, out_dim)``; 0 layers = identity (out_dim = in_dim), 1 = linear,
    ≥ 2 = :class:`~course_lib.models.ProjectionHead` (Linear-BN-ReLU blocks, then Linear)."""
    if num_layers < 0:
        raise ValueError(f"projector_layers must be 0 (no head), 1 (linear) or more, got {num_layers}")
    if num_layers == 0:
        return nn.Identity()
    return ProjectionHead(in_dim, hidden_dim or in_dim, out_dim, num_layers)


class SimCLR(nn.Module):
    """L = NT-Xent(g(f(x̃₁)), g(f(x̃₂)); τ): SimCLR (Chen et al., 2020; IIT Hyderabad and HSE decks).

    Parts: ``backbone`` f (images ``(B, 3, H, W)`` → h ``(B, D)``), ``projector`` g (h → z
    ``(B, projector_dim)``). ``forward(x1, x2)`` encodes both views in **one** pass over
    ``torch.cat([x1, x2])`` ``(2B, 3, H, W)``, so BatchNorm normalises with the statistics of all 2B
    views (as the paper's global BN across devices), and returns the 0-dim loss
    :func:`~course_lib.losses.nt_xent_loss`. :meth:`embed` gives h, the representation kept after
    training; z is only for the loss.

    Under ``torchrun`` (W processes) z₁ and z₂ are gathered from every process before the loss, so each
    image meets the 2N − 2 negatives of the global batch, and BatchNorm runs over the global batch
    (``global_batchnorm``: ``fit(..., distributed=True)`` converts it), as the paper's global BN.
    """

    global_batchnorm = True

    def __init__(self, backbone: nn.Module, config: Optional[SimCLRConfig] = None):
        super().__init__()
        self.config = config or SimCLRConfig()
        c = self.config
        self.backbone = backbone
        self.projector = projection_head(backbone.out_dim, c.projector_hidden, c.projector_dim, c.projector_layers)

    def extra_repr(self) -> str:
        return repr(self.config)  # part of the run's description: another τ is another run

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """h = f(x): ``(B, 3, H, W)`` → ``(B, D)``."""
        return self.backbone(x)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        check_views(x1, x2)
        z = self.projector(self.backbone(torch.cat([x1, x2])))  # (2B, projector_dim)
        z1, z2 = z.chunk(2)  # (B, projector_dim) each
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)  # (W·B, projector_dim): the global batch
        return nt_xent_loss(z1, z2, temperature=self.config.temperature)
