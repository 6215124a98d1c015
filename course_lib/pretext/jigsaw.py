"""Jigsaw puzzles (Noroozi & Favaro, 2016): which permutation shuffled the 3×3 tiles of an image?

Solving the puzzle needs the parts of objects and their layout. The tiles are cut with a gap and a
random jitter, so that edges and lines cannot be continued from tile to tile (a shortcut), and the
task classifies among a fixed set of ``n`` permutations chosen far apart in Hamming distance: the
paper finds that a larger minimum distance between the permutations helps the features.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks as check
from .common import PretextTask

__all__ = ["jigsaw_permutations", "min_hamming", "make_jigsaw", "JigsawConfig", "JigsawTask"]

STRATEGIES = ("max", "random", "min")


@functools.lru_cache(maxsize=1)
def _all_permutations() -> torch.Tensor:
    return torch.tensor(list(itertools.permutations(range(9))), dtype=torch.int8)  # (9!, 9)


def jigsaw_permutations(n: int, seed: int = 0, strategy: str = "max") -> torch.Tensor:
    """n permutations of the 9 tiles, ``(n, 9)`` int64 (row p: shuffled position i shows tile p[i]).

    Candidates: all 9! = 362 880 permutations. Start from a seeded random one, then repeatedly add
    the candidate whose minimum Hamming distance d(p, q) = #{i : p_i ≠ q_i} to the chosen set is
    ``strategy``:

    * ``"max"``: the largest (farthest-point greedy; Noroozi & Favaro's Algorithm 1 ranks by the
      *sum* of distances instead, the maximin variant directly targets the minimum distance it reports);
    * ``"min"``: the smallest non-zero (a tight set: every new permutation one swap from the set);
    * ``"random"``: no greedy step, n distinct permutations drawn uniformly.

    Minimum pairwise Hamming distance reached with seed 0 (the tests check it): ``"max"``: 8 for
    n = 10, 7 for n = 30, 6 for n = 100 (also seeds 1-3), 5 for n = 1000; ``"min"``: 2 for every n;
    ``"random"``: 3 for n = 100 (2 to 4 over seeds), 2 for n = 1000. 9 is the most possible (every
    tile moves). n = 1000 takes a few seconds on one core; n = 100 under one.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    cands = _all_permutations()
    if not 1 <= n <= len(cands):
        raise ValueError(f"n must be in [1, 9!] = [1, {len(cands)}], got {n}")
    g = torch.Generator().manual_seed(seed)
    if strategy == "random":
        return cands[torch.randperm(len(cands), generator=g)[:n]].long()
    chosen = [int(torch.randint(len(cands), (1,), generator=g))]
    dmin = (cands != cands[chosen[0]]).sum(1)  # (9!,) min distance of each candidate to the set
    for _ in range(n - 1):
        j = int(dmin.argmax()) if strategy == "max" else int(dmin.masked_fill(dmin == 0, 10).argmin())
        chosen.append(j)
        dmin = torch.minimum(dmin, (cands != cands[j]).sum(1))
    return cands[chosen].long()


def min_hamming(perms) -> int:
    """min_{p ≠ q} d(p, q) over the rows of ``perms`` ``(n, 9)``; 0 if a row repeats (n ≥ 2)."""
    p = check.matrix(check.tensor(perms), "perms", "n", 9)
    if len(p) < 2:
        raise ValueError(f"expected perms of shape (n, 9) with n >= 2, got {tuple(p.shape)}")
    d = (p[:, None, :] != p[None, :, :]).sum(-1)  # (n, n)
    return int(d.masked_fill(torch.eye(len(p), dtype=torch.bool), 10).min())


def grid_layout(size: int, gap: int):
    """Cell size c = ⌊size / 3⌋ and tile size t = c - gap of a 3×3 grid cut from a size×size image
    (the central 3c pixels); ValueError where no tile fits."""
    cell = size // 3
    if gap < 0 or cell - gap < 1:
        raise ValueError(f"a 3x3 jigsaw of {size}x{size} images has cells of {cell} px: gap must be in "
                         f"[0, {cell - 1}], got {gap}")
    return cell, cell - gap


def make_jigsaw(x: torch.Tensor, perms, gap: int = 2, jitter: bool = True, generator=None):
    """Cut each image into a 3×3 grid of tiles and shuffle them by a random permutation of ``perms``.

    ``x`` ``(B, C, S, S)``; ``perms`` ``(n, 9)``. Cells of c = ⌊S/3⌋ px (the central 3c pixels),
    one t×t tile per cell with t = c - ``gap``; ``jitter``: the tile's offset in its cell is uniform
    in [0, gap] on each axis, per image and tile (the paper's random 64-px tile in each 75-px
    cell), else gap // 2. Returns ``(tiles (B, 9, C, t, t), labels (B,))``: ``labels`` index
    ``perms``, and ``tiles[b, i]`` is grid tile ``perms[labels[b], i]`` (row-major grid order), so
    ``tiles[b, argsort(perms[labels[b]])]`` is the grid in order.
    """
    check.image_batch(x, x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 4 else 3)
    B, C, H, W = x.shape
    if H != W:
        raise ValueError(f"expected square images (B, C, S, S) for a 3x3 jigsaw, got {tuple(x.shape)}")
    perms = check.matrix(check.tensor(perms), "perms", "n", 9).long().to(x.device)
    cell, t = grid_layout(H, gap)
    if jitter:
        off = torch.randint(0, gap + 1, (2, B, 9), generator=generator).to(x.device)  # (2, B, 9)
    else:
        off = torch.full((2, B, 9), gap // 2, device=x.device)
    start = (H - 3 * cell) // 2 + cell * torch.arange(3, device=x.device)  # (3,) cell origins
    top = start.repeat_interleave(3)[None] + off[0]  # (B, 9) row of each tile, row-major grid
    left = start.repeat(3)[None] + off[1]  # (B, 9)
    ar = torch.arange(t, device=x.device)
    rows, cols = (top[..., None] + ar)[..., :, None], (left[..., None] + ar)[..., None, :]  # (B,9,t,1), (B,9,1,t)
    grid = x.permute(0, 2, 3, 1)[torch.arange(B, device=x.device)[:, None, None, None], rows, cols]  # (B,9,t,t,C)
    grid = grid.permute(0, 1, 4, 2, 3)  # (B, 9, C, t, t)
    labels = torch.randint(0, len(perms), (B,), generator=generator).to(x.device)  # (B,)
    tiles = grid.gather(1, perms[labels][:, :, None, None, None].expand_as(grid))  # (B, 9, C, t, t)
    return tiles, labels


@dataclass
class JigsawConfig:
    """Jigsaw's settings, scaled to 32×32 CIFAR.

    * ``num_permutations`` = 100 (the paper's best on ImageNet is 1000 of 9!; CIFAR's 10k images
      and few epochs suit a smaller set), chosen by ``strategy`` ("max": maximal minimum Hamming
      distance, the paper's; "min", "random": the ablation) from ``seed``.
    * ``gap`` = 2, ``jitter`` = True: 10-px cells, 8-px tiles jittered by up to 2 px (the paper:
      75-px cells, 64-px tiles, i.e. the same ~15 % of the cell left as gap).
    * ``hidden`` = 512: the classifier after the 9 concatenated tile embeddings (paper: fc7 4096).
    """

    num_permutations: int = 100
    strategy: str = "max"
    seed: int = 0
    gap: int = 2
    jitter: bool = True
    hidden: int = 512


class JigsawTask(PretextTask):
    """L = CE(h([f(t_p(1)), …, f(t_p(9))]), p): the context-free network (Noroozi & Favaro, 2016).

    One ``backbone`` f (shared weights) embeds each of the 9 tiles ``(B·9, 3, t, t)`` -> ``(B·9, D)``;
    the embeddings are concatenated in the shuffled order ``(B, 9·D)`` and the ``head`` h (Linear-ReLU-
    Linear) classifies which of the ``perms`` buffer's permutations was applied. ``forward(x)``
    returns ``{"loss", "acc"}``; ``encode(x)`` embeds whole images.
    """

    def __init__(self, backbone: nn.Module, config: Optional[JigsawConfig] = None):
        super().__init__(backbone)
        self.config = c = config or JigsawConfig()
        self.register_buffer("perms", jigsaw_permutations(c.num_permutations, c.seed, c.strategy))  # (n, 9)
        d = backbone.out_dim
        self.head = nn.Sequential(nn.Linear(9 * d, c.hidden), nn.ReLU(inplace=True), nn.Linear(c.hidden, c.num_permutations))

    def extra_repr(self) -> str:
        return repr(self.config)

    def forward(self, x: torch.Tensor) -> dict:
        check.image_batch(x, 3, floating=True)
        tiles, y = make_jigsaw(x, self.perms, self.config.gap, self.config.jitter)  # (B, 9, 3, t, t), (B,)
        h = self.backbone(self.prepare(tiles.flatten(0, 1)))  # (B·9, D)
        logits = self.head(h.reshape(len(x), -1))  # (B, n)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}
