"""Context prediction (Doersch, Gupta & Efros, 2015): where is this patch relative to that one?

A centre patch and one of its 8 neighbours are cut from a 3×3 grid; the network sees both and
names the neighbour's position. A gap between the patches and a random jitter of each keep it from
continuing edges and textures across the border (the paper's 48-px gap and 7-px jitter on 96-px
patches), so it has to recognise the parts of objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks as check
from .common import PretextTask

__all__ = ["context_pairs", "ContextConfig", "ContextTask", "NEIGHBOURS"]

#: (row, column) offset in grid cells of each position label, raster order without the centre:
#: 0 1 2 / 3 · 4 / 5 6 7, the paper's figure 2.
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def patch_layout(size: int, gap: int, jitter: int, patch: Optional[int] = None):
    """Patch size p (default the largest with 3p + 2·gap + 2·jitter ≤ size) and the grid origin o
    (the centred grid's top-left): patch (i, j) nominally starts at o + (p + gap)·(i, j)."""
    if gap < 0 or jitter < 0:
        raise ValueError(f"gap and jitter must be >= 0, got {gap} and {jitter}")
    p = (size - 2 * gap - 2 * jitter) // 3 if patch is None else patch
    if p < 1 or 3 * p + 2 * gap + 2 * jitter > size:
        raise ValueError(f"a 3x3 grid of {p}-px patches with gap {gap} and jitter {jitter} needs "
                         f"{3 * p + 2 * gap + 2 * jitter} px, the images have {size}")
    return p, (size - 3 * p - 2 * gap) // 2


def context_pairs(x: torch.Tensor, gap: int = 2, jitter: int = 1, patch: Optional[int] = None, generator=None):
    """Centre patch, one random neighbour, and the neighbour's position (Doersch et al., 2015).

    ``x`` ``(B, C, S, S)`` -> ``(centre (B, C, p, p), neighbour (B, C, p, p), position (B,))``;
    ``position`` in 0..7 indexes :data:`NEIGHBOURS`. The patches lie on a centred 3×3 grid with
    ``gap`` px between them (:func:`patch_layout`); each is shifted by its own uniform integer
    jitter in [-jitter, jitter] on each axis. 32×32 CIFAR with the defaults: p = 8.
    """
    check.image_batch(x, x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 4 else 3)
    B, C, H, W = x.shape
    if H != W:
        raise ValueError(f"expected square images (B, C, S, S) for context pairs, got {tuple(x.shape)}")
    p, o = patch_layout(H, gap, jitter, patch)
    position = torch.randint(0, 8, (B,), generator=generator).to(x.device)  # (B,)
    shift = torch.randint(-jitter, jitter + 1, (2, B, 2), generator=generator).to(x.device)  # (patch, B, yx)
    cell = torch.tensor(NEIGHBOURS, device=x.device)[position] + 1  # (B, 2) grid cell of the neighbour
    corners = torch.stack([torch.ones_like(cell), cell]) * (p + gap) + o + shift  # (2, B, 2) top-left
    ar = torch.arange(p, device=x.device)
    rows = (corners[..., 0, None] + ar)[..., :, None]  # (2, B, p, 1)
    cols = (corners[..., 1, None] + ar)[..., None, :]  # (2, B, 1, p)
    b = torch.arange(B, device=x.device)[None, :, None, None]
    patches = x.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 1, 4, 2, 3)  # (2, B, C, p, p)
    return patches[0], patches[1], position


@dataclass
class ContextConfig:
    """Context prediction's settings, scaled to 32×32 CIFAR.

    * ``gap`` = 2, ``jitter`` = 1: 8-px patches 2 px apart, each shifted by up to 1 px (the paper:
      96-px patches, 48-px gap, 7-px jitter; 32 px leave no room for half-patch gaps).
    * ``hidden`` = 512: the head after the two concatenated embeddings (paper: fc6-fc7-fc8, 4096).
    """

    gap: int = 2
    jitter: int = 1
    hidden: int = 512


class ContextTask(PretextTask):
    """L = CE(h([f(centre), f(neighbour)]), position): Doersch et al. (2015).

    Parts: ``backbone`` f shared by both patches (one pass over ``(2B, 3, p, p)``), ``head`` h
    (Linear(2D, hidden)-ReLU-Linear(hidden, 8)) on the concatenated ``(B, 2D)`` embeddings.
    ``forward(x)`` returns ``{"loss", "acc"}``; ``encode(x)`` embeds whole images.
    """

    def __init__(self, backbone: nn.Module, config: Optional[ContextConfig] = None):
        super().__init__(backbone)
        self.config = c = config or ContextConfig()
        d = backbone.out_dim
        self.head = nn.Sequential(nn.Linear(2 * d, c.hidden), nn.ReLU(inplace=True), nn.Linear(c.hidden, 8))

    def extra_repr(self) -> str:
        return repr(self.config)

    def forward(self, x: torch.Tensor) -> dict:
        check.image_batch(x, 3, floating=True)
        centre, neighbour, y = context_pairs(x, self.config.gap, self.config.jitter)  # (B, 3, p, p) x2, (B,)
        h = self.backbone(self.prepare(torch.cat([centre, neighbour])))  # (2B, D)
        logits = self.head(torch.cat(h.chunk(2), dim=1))  # (B, 8)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}
