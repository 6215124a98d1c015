"""Rotation prediction (Gidaris, Singh & Komodakis, 2018): which of 0°, 90°, 180°, 270° was applied?

To say which way is up, a network must know what the object is and where its parts are, so the
four-way classification is a label made from the image alone. The paper feeds all four rotations
of every image in the same mini-batch (better than one random rotation per image, its Table 2 in
spirit): ``RotationConfig.all_rotations``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks as check
from .common import PretextTask

__all__ = ["rotate_batch", "RotationConfig", "RotationTask"]

#: The rotations, label y ↦ y · 90° counter-clockwise (``torch.rot90(x, y, dims=(2, 3))``).
ANGLES = (0, 90, 180, 270)


def rotate_batch(x: torch.Tensor):
    """g(x, y) = rot90(x, y) for y = 0, 1, 2, 3 (0°, 90°, 180°, 270° counter-clockwise).

    ``x`` ``(B, C, H, W)`` with H = W -> ``(x_rot (4B, C, H, W), labels (4B,))``, ordered by rotation
    first: rows ``y·B … y·B + B - 1`` are the B images rotated by ``y · 90°`` (label ``y``), so
    ``torch.rot90(x_rot[y·B + i], -y, dims=(1, 2)) == x[i]`` exactly.
    """
    check.image_batch(x, x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 4 else 3)
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"expected square images (B, C, H, W) with H = W to rotate, got {tuple(x.shape)}")
    x_rot = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])  # (4B, C, H, W)
    labels = torch.arange(4, device=x.device).repeat_interleave(len(x))  # (4B,)
    return x_rot, labels


@dataclass
class RotationConfig:
    """Rotation prediction's settings.

    * ``all_rotations`` = True: the paper's choice, all four rotations of each image in one batch
      (4B images a step); False: one random rotation per image (B images a step, 4x cheaper, weaker).
    """

    all_rotations: bool = True


class RotationTask(PretextTask):
    """L = CE(W f(rot(x, y)), y), y ∈ {0, 1, 2, 3}: Gidaris et al. (2018).

    Parts: ``backbone`` f (``(B, 3, H, W)`` -> ``(B, D)``), ``head`` W: ``Linear(D, 4)``.
    ``forward(x)`` with x ``(B, 3, H, W)`` in [0, 1] returns ``{"loss", "acc"}`` (rotation accuracy).
    """

    def __init__(self, backbone: nn.Module, config: Optional[RotationConfig] = None):
        super().__init__(backbone)
        self.config = config or RotationConfig()
        self.head = nn.Linear(backbone.out_dim, 4)

    def extra_repr(self) -> str:
        return repr(self.config)

    def forward(self, x: torch.Tensor) -> dict:
        check.image_batch(x, 3, floating=True)
        x_rot, y = rotate_batch(x)  # (4B, 3, H, W), (4B,)
        if not self.config.all_rotations:  # one random rotation per image
            pick = torch.randint(0, 4, (len(x),), device=x.device) * len(x) + torch.arange(len(x), device=x.device)
            x_rot, y = x_rot[pick], y[pick]  # (B, 3, H, W), (B,)
        logits = self.head(self.backbone(self.prepare(x_rot)))  # (4B, 4)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}
