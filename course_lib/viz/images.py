"""Images on a grid: a batch, a grid per class, and query -> nearest-neighbour retrievals."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from .. import _checks as check
from ..data import CIFAR10_MEAN, CIFAR10_STD, class_examples
from .style import OTHER_COLOR, SAME_COLOR, _name, _style


def to_display(images, denormalize: bool = False) -> np.ndarray:
    """Images as matplotlib shows them: float (N, H, W, 3) in [0, 1].

    Accepts ``uint8 (N, H, W, 3)``, ``float (N, 3, H, W)`` in [0, 1] (or CIFAR-normalised with
    ``denormalize=True``), float ``(N, H, W, 3)``, one channel instead of three, or a single image.
    """
    x = check.to_numpy(images)
    if x.ndim in (2, 3) and (x.ndim == 2 or x.shape[-1] in (1, 3) or x.shape[0] in (1, 3)):
        x = x[None] if x.ndim == 3 else x[None, ..., None]  # one image
    if x.ndim != 4:
        raise ValueError(f"expected images uint8 of shape (N, H, W, 3) or float of shape (N, 3, H, W), got {x.shape}")
    channels_first = x.shape[1] in (1, 3) and (x.shape[-1] not in (1, 3) or x.dtype != np.uint8)
    if channels_first:
        x = x.transpose(0, 2, 3, 1)  # (N, H, W, C)
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"expected images uint8 of shape (N, H, W, 3) or float of shape (N, 3, H, W), got {x.shape}")
    if x.dtype == np.uint8:
        if denormalize:
            raise ValueError("denormalize=True expects float images normalised with the CIFAR-10 mean/std, got uint8")
        x = x.astype(np.float32) / 255.0
    else:
        x = x.astype(np.float32)
        if denormalize:
            x = x * np.asarray(CIFAR10_STD, np.float32) + np.asarray(CIFAR10_MEAN, np.float32)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.clip(x, 0.0, 1.0)


# ------------------------------------------------------------------------------------- tiles
_GAP = 0.08  # space between tiles, in tile widths
_CAPTION = 0.32  # extra space under a tile that has a caption


def _new_axes(ax, width: float, height: float, tile_inches: float, title=None, figsize=None):
    """The axes to draw tiles into: ``ax`` itself, or a new figure sized for the tile layout
    (``width`` x ``height`` tiles of ``tile_inches``, plus room for a title)."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    title_in = 0.4 if title else 0.0
    if figsize is None:
        figsize = (max(2.0, width * tile_inches + 0.2), max(1.0, height * tile_inches + 0.2 + title_in))
    fig, ax = plt.subplots(figsize=figsize)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.99 - title_in / figsize[1])
    return fig, ax


def _tile_font(ax, width_in_tiles: float) -> float:
    """A caption font size (points) that fits under one tile of this axes."""
    fig = ax.figure
    tile_in = ax.get_position().width * fig.get_figwidth() / max(width_in_tiles, 1e-6)
    return float(np.clip(7.5 * tile_in, 5.0, 9.0))


def _draw_tile(ax, image, x: float, y: float, caption=None, edgecolor=None, fontsize=8.0, gid=None):
    """One image in the unit square at (x, y) (top-left, y downwards), a border, a caption."""
    from matplotlib.patches import Rectangle

    ax.imshow(image, extent=(x, x + 1, y + 1, y), interpolation="nearest")
    if edgecolor is not None:
        ax.add_patch(Rectangle((x, y), 1, 1, fill=False, edgecolor=edgecolor, linewidth=3, gid=gid))
    if caption:
        ax.text(x + 0.5, y + 1.04, caption, ha="center", va="top", fontsize=fontsize, clip_on=False)


def _frame(ax, width: float, height: float, left: float = 0.0) -> None:
    ax.set_xlim(-left - 0.02, width + 0.02)
    ax.set_ylim(height + 0.02, -0.02)
    ax.set_aspect("equal")
    ax.axis("off")


# ------------------------------------------------------------------------------------ images
def show_images(
    images, labels=None, classes=None, nrow: int = 8, title: Optional[str] = None,
    figsize=None, ax=None, denormalize: bool = False,
):
    """A grid of images, ``nrow`` per row, each captioned with its class name when labels are given.

    ``images``: ``uint8 (N, H, W, 3)`` or ``float (N, 3, H, W)`` (see :func:`to_display`);
    ``labels``: (N,) class ids (names taken from ``classes``) or strings. Returns the figure.
    """
    x = to_display(images, denormalize)  # (N, H, W, 3)
    n = len(x)
    names = check.label_array(labels, n)
    ncol = max(1, min(nrow, n))
    nrows = max(1, math.ceil(n / ncol))
    row_h = 1 + _GAP + (_CAPTION if names is not None else 0.0)
    width, height = ncol * (1 + _GAP) - _GAP, nrows * row_h - _GAP
    with _style():
        fig, ax = _new_axes(ax, width, height, min(1.2, 12 / ncol), title, figsize)
        font = _tile_font(ax, width)
        for i in range(n):
            r, c = divmod(i, ncol)
            caption = _name(names[i], classes) if names is not None else None
            _draw_tile(ax, x[i], c * (1 + _GAP), r * row_h, caption, fontsize=font)
        _frame(ax, width, height)
        if title:
            ax.set_title(title)
    return fig


def show_class_grid(
    images, labels, classes=None, per_class: int = 8, seed: int = 0,
    title: Optional[str] = None, denormalize: bool = False, ax=None,
):
    """One row per class, ``per_class`` random examples each, the class name on the left.

    Examples are picked by :func:`course_lib.data.class_examples` (seeded). Returns the figure.
    """
    x = to_display(images, denormalize)
    y = check.label_array(labels, len(x)).astype(np.int64)
    idx = check.to_numpy(class_examples(torch.as_tensor(y), per_class, seed=seed))
    rows = sorted(set(y[idx].tolist()))
    width, height = per_class * (1 + _GAP) - _GAP, len(rows) * (1 + _GAP) - _GAP
    left = 1.6  # room for the class names, in tile widths
    with _style():
        fig, ax = _new_axes(ax, width + left, height, min(0.9, 12 / (per_class + 2)), title)
        font = _tile_font(ax, width + left) * 1.2
        for r, c in enumerate(rows):
            members = idx[y[idx] == c]
            for j, i in enumerate(members):
                _draw_tile(ax, x[i], j * (1 + _GAP), r * (1 + _GAP))
            ax.text(-0.15, r * (1 + _GAP) + 0.5, _name(c, classes), ha="right", va="center", fontsize=font)
        _frame(ax, width, height, left=left)
        if title:
            ax.set_title(title)
    return fig


def show_retrievals(
    query_images, gallery_images, neighbour_indices, query_labels=None, gallery_labels=None,
    classes=None, title: Optional[str] = None, denormalize: bool = False, ax=None,
):
    """One row per query: the query, then its k nearest gallery images, nearest first.

    ``neighbour_indices``: (Q, k) gallery indices, e.g. from
    :func:`course_lib.distances.nearest_neighbours`. With both label sets, a neighbour's border is
    green when it shares the query's class and red otherwise, and each row ends with the fraction
    of same-class neighbours. Returns the figure.
    """
    q = to_display(query_images, denormalize)
    g = to_display(gallery_images, denormalize)
    nn_idx = check.to_numpy(neighbour_indices).astype(np.int64)  # (Q, k)
    if nn_idx.ndim != 2 or len(nn_idx) != len(q):
        raise ValueError(f"neighbour_indices must have shape (Q, k) with Q={len(q)} queries, got {nn_idx.shape}")
    qy, gy = check.label_array(query_labels, len(q)), check.label_array(gallery_labels, len(g))
    n_q, k = nn_idx.shape
    captions = classes is not None or qy is not None
    row_h = 1 + _GAP + (_CAPTION if captions else 0.0)
    sep = 0.35  # extra space between the query and its neighbours
    width = (k + 1) * (1 + _GAP) + sep + (0.9 if qy is not None and gy is not None else 0.0)
    height = n_q * row_h - _GAP + 0.35
    with _style():
        fig, ax = _new_axes(ax, width, height + 0.3, min(1.1, 13 / (k + 2)), title)
        font = _tile_font(ax, width)
        ax.text(0.5, -0.05, "query", ha="center", va="bottom", fontsize=font * 1.1, weight="bold")
        ax.text(1 + _GAP + sep + k * (1 + _GAP) / 2, -0.05, f"{k} nearest neighbours",
                ha="center", va="bottom", fontsize=font * 1.1, weight="bold")
        for r in range(n_q):
            y0 = 0.3 + r * row_h
            _draw_tile(ax, q[r], 0.0, y0, _name(qy[r], classes) if qy is not None else None, fontsize=font)
            same = []
            for j, gi in enumerate(nn_idx[r]):
                color = None
                if qy is not None and gy is not None:
                    same.append(gy[gi] == qy[r])
                    color = SAME_COLOR if same[-1] else OTHER_COLOR
                caption = _name(gy[gi], classes) if gy is not None and captions else None
                _draw_tile(ax, g[gi], (j + 1) * (1 + _GAP) + sep, y0, caption, color, font, gid=f"neighbour-{r}-{j}")
            if same:
                ax.text((k + 1) * (1 + _GAP) + sep, y0 + 0.5, f"{sum(same)}/{k}", ha="left", va="center",
                        fontsize=font * 1.2, color=SAME_COLOR if 2 * sum(same) >= k else OTHER_COLOR)
        _frame(ax, width, height)
        ax.set_ylim(height + 0.02, -0.3)
        if title:
            ax.set_title(title)
    return fig


__all__ = ["to_display", "show_images", "show_class_grid", "show_retrievals"]
