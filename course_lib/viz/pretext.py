"""Chapter 05's figures: what each pretext task shows the network, and what it must predict.

:func:`show_rotations` (an image under the four rotations, the label under each),
:func:`show_jigsaw` (the 3×3 tiles, shuffled, and the permutation's index), :func:`show_context_pair`
(the centre and neighbour patches where they were cut, and the position label) and
:func:`show_clusters` (a few images of each pseudo-class of deep clustering). Each returns the Figure.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .. import _checks as check
from ..pretext.context import context_pairs
from ..pretext.jigsaw import make_jigsaw
from ..pretext.rotation import ANGLES, rotate_batch
from .images import _GAP, _CAPTION, _draw_tile, _frame, _new_axes, _tile_font, to_display
from .style import OTHER_COLOR, SAME_COLOR, _style

__all__ = ["show_rotations", "show_jigsaw", "show_context_pair", "show_clusters"]


def _float_nchw(images) -> torch.Tensor:
    """Images as the tasks take them: float (N, 3, H, W) in [0, 1] (one image -> a batch of one)."""
    x = torch.as_tensor(to_display(images)).permute(0, 3, 1, 2).contiguous()
    return x


def show_rotations(images, n: int = 4, title: Optional[str] = "rotation: predict the label", ax=None):
    """One row per image (the first ``n``), one column per rotation y (y · 90° counter-clockwise),
    captioned with the label y the network must predict. Returns the figure."""
    x = _float_nchw(images)[:n]  # (n, 3, H, W)
    x_rot, y = rotate_batch(x)  # (4n, 3, H, W)
    row_h = 1 + _GAP + _CAPTION
    width, height = 4 * (1 + _GAP) - _GAP, len(x) * row_h - _GAP
    with _style():
        fig, ax = _new_axes(ax, width, height, 1.1, title)
        font = _tile_font(ax, width)
        shown = to_display(x_rot)
        for k in range(4):
            for i in range(len(x)):
                j = k * len(x) + i
                _draw_tile(ax, shown[j], k * (1 + _GAP), i * row_h, f"y={int(y[j])} ({ANGLES[k]}°)", fontsize=font)
        _frame(ax, width, height)
        if title:
            ax.set_title(title)
    return fig


def show_jigsaw(image, perms, index: Optional[int] = None, gap: int = 2, jitter: bool = True, seed: int = 0,
                title: Optional[str] = None, ax=None):
    """The image, then its 9 tiles in the shuffled order the network sees (3×3, tile ``i`` of the
    grid numbered), captioned with the permutation index it must predict. ``index``: which row of
    ``perms`` (default: a seeded random one). Returns the figure."""
    x = _float_nchw(image)[:1]  # (1, 3, S, S)
    perms = check.matrix(check.tensor(perms), "perms", "n", 9).long()
    g = torch.Generator().manual_seed(seed)
    tiles, label = make_jigsaw(x, perms, gap, jitter, generator=g)  # (1, 9, 3, t, t)
    if index is not None:
        if not 0 <= index < len(perms):
            raise ValueError(f"index must be in [0, {len(perms)}), got {index}")
        grid = tiles[0, perms[label[0]].argsort()]  # back to grid order
        tiles, label = grid[perms[index]][None], torch.tensor([index])
    p = perms[int(label[0])]
    shown, step = to_display(tiles[0]), (1 + _GAP) / 3
    width, height = 1 + 0.4 + 1, 1 + _CAPTION
    title = title or "jigsaw: which permutation shuffled the tiles?"
    with _style():
        fig, ax = _new_axes(ax, width, height, 2.0, title)
        font = _tile_font(ax, width / 2)
        _draw_tile(ax, to_display(x)[0], 0, 0, "image")
        for i in range(9):
            r, c = divmod(i, 3)
            ax.imshow(shown[i], extent=(1.4 + c * step, 1.4 + c * step + step * 0.9, r * step + step * 0.9, r * step),
                      interpolation="nearest")
            ax.text(1.4 + c * step + 0.03, r * step + 0.03, str(int(p[i])), color="white", fontsize=font * 0.8,
                    va="top", ha="left", fontweight="bold")
        ax.text(1.4 + 0.5, 1.04 + _GAP, f"label: permutation #{int(label[0])} of {len(perms)}", ha="center",
                va="top", fontsize=font)
        _frame(ax, width + _GAP, height)
        ax.set_title(title)
    return fig


def show_context_pair(image, gap: int = 2, jitter: int = 1, seed: int = 0, title: Optional[str] = None, ax=None):
    """The image with the centre (green) and neighbour (red) patches outlined where they were cut,
    the two patches as the network sees them, and the neighbour's position label (0..7, raster
    order around the centre). Returns the figure."""
    from matplotlib.patches import Rectangle

    x = _float_nchw(image)[:1]  # (1, 3, S, S)
    S = x.shape[-1]
    rows, cols = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij")
    with_coords = torch.cat([x, rows[None, None], cols[None, None]], dim=1)  # (1, 5, S, S): where each pixel was
    centre, neighbour, pos = context_pairs(with_coords, gap, jitter, generator=torch.Generator().manual_seed(seed))
    p = centre.shape[-1]
    width, height = 3 + 2 * _GAP, 1 + _CAPTION
    title = title or "context: where is the neighbour? (0 1 2 / 3 · 4 / 5 6 7)"
    with _style():
        fig, ax = _new_axes(ax, width, height, 1.6, title)
        font = _tile_font(ax, width)
        _draw_tile(ax, to_display(x)[0], 0, 0, "image")
        for patch, color in ((centre, SAME_COLOR), (neighbour, OTHER_COLOR)):
            r0, c0 = float(patch[0, 3, 0, 0]) / S, float(patch[0, 4, 0, 0]) / S
            ax.add_patch(Rectangle((c0, r0), p / S, p / S, fill=False, edgecolor=color, linewidth=2))
        _draw_tile(ax, to_display(centre[:, :3])[0], 1 + _GAP, 0, "centre", edgecolor=SAME_COLOR, fontsize=font)
        _draw_tile(ax, to_display(neighbour[:, :3])[0], 2 * (1 + _GAP), 0, f"neighbour: label {int(pos[0])}",
                   edgecolor=OTHER_COLOR, fontsize=font)
        _frame(ax, width, height)
        ax.set_title(title)
    return fig


def show_clusters(images, pseudo_labels, clusters=None, per_cluster: int = 8, max_clusters: int = 6, seed: int = 0,
                  title: Optional[str] = "deep clustering: images per pseudo-class", ax=None):
    """One row per pseudo-class (``clusters``, default the ``max_clusters`` largest), ``per_cluster``
    random members each (seeded), its id and size on the left. Returns the figure."""
    x = to_display(images)
    y = check.label_array(pseudo_labels, len(x)).astype(np.int64)
    ids, counts = np.unique(y, return_counts=True)
    if clusters is None:
        clusters = ids[np.argsort(-counts, kind="stable")][:max_clusters]
    size = dict(zip(ids.tolist(), counts.tolist()))
    rng = np.random.default_rng(seed)
    left = 1.6
    width, height = per_cluster * (1 + _GAP) - _GAP, len(clusters) * (1 + _GAP) - _GAP
    with _style():
        fig, ax = _new_axes(ax, width + left, height, min(0.9, 12 / (per_cluster + 2)), title)
        font = _tile_font(ax, width + left) * 1.2
        for r, c in enumerate(clusters):
            members = np.flatnonzero(y == c)
            members = rng.choice(members, min(per_cluster, len(members)), replace=False) if len(members) else members
            for j, i in enumerate(members):
                _draw_tile(ax, x[i], j * (1 + _GAP), r * (1 + _GAP))
            ax.text(-0.15, r * (1 + _GAP) + 0.5, f"cluster {int(c)}\n(n={size.get(int(c), 0)})", ha="right",
                    va="center", fontsize=font)
        _frame(ax, width, height, left=left)
        if title:
            ax.set_title(title)
    return fig
