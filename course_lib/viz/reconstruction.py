"""Pretext outputs (chapter 05): input / prediction / ground-truth grids, and the a*b* bins of colorization."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from .. import _checks as check
from .images import _GAP, _draw_tile, _frame, _new_axes, _tile_font, to_display
from .style import _style

__all__ = ["show_reconstructions", "show_ab_bins"]

_LABEL_W = 1.6  # room left of the grid for the row labels, in tile widths


def show_reconstructions(
    inputs, predictions, targets, n: int = 8,
    row_labels: Sequence[str] = ("input", "prediction", "ground truth"),
    title: Optional[str] = None, figsize=None, ax=None,
):
    """Three rows of ``n`` images: what the task saw, what it produced, what it should have produced.

    Colorization: the L channel (``(N, 1, H, W)`` is shown grey), the colorized and the original
    images; inpainting and masked reconstruction: the masked, the painted and the original images.
    Each of ``inputs``, ``predictions``, ``targets``: ``uint8 (N, H, W, 3)`` or ``float (N, C, H, W)``
    in [0, 1] (see :func:`~course_lib.viz.to_display`), the first ``n`` shown. Returns the figure.
    """
    rows = [to_display(a) for a in (inputs, predictions, targets)]  # each (N, H, W, 3)
    if len({len(r) for r in rows}) != 1 or len(row_labels) != 3:
        raise ValueError(f"expected inputs, predictions and targets of one length N and 3 row labels, got "
                         f"{[len(r) for r in rows]} and {len(row_labels)} labels")
    n = max(1, min(n, len(rows[0])))
    width, height = n * (1 + _GAP) - _GAP, 3 * (1 + _GAP) - _GAP
    with _style():
        fig, ax = _new_axes(ax, width + _LABEL_W, height, min(1.2, 12 / n), title, figsize)
        font = _tile_font(ax, width + _LABEL_W)
        for r, (images, label) in enumerate(zip(rows, row_labels)):
            for i in range(n):
                _draw_tile(ax, images[i], i * (1 + _GAP), r * (1 + _GAP))
            ax.text(-0.15, r * (1 + _GAP) + 0.5, label, ha="right", va="center", fontsize=font)
        _frame(ax, width, height, left=_LABEL_W)
        if title:
            ax.set_title(title)
    return fig


def show_ab_bins(bins, weights=None, grid: float = 10.0, lightness: float = 50.0, title: Optional[str] = None,
                 ax=None):
    """The quantized a*b* plane: one square per bin, coloured by its colour at L* = ``lightness``.

    ``bins`` ``(Q, 2)`` a*b* centres (:func:`course_lib.pretext.colorization.ab_bins`). With
    ``weights`` ``(Q,)`` (e.g. the rebalancing weights) each square's area is proportional to its
    weight (the largest fills a ``grid`` cell) and the title gives the weights' range. Colours outside the gamut at that L* are clipped into it. Returns the figure.
    """
    import matplotlib.pyplot as plt

    from ..color import lab_to_rgb

    ab = check.matrix(check.tensor(bins), "bins", cols=2).double()
    lab = torch.cat([torch.full((len(ab), 1), float(lightness), dtype=torch.float64), ab], 1)  # (Q, 3)
    colours = lab_to_rgb(lab.T.reshape(1, 3, 1, -1))[0, :, 0].T.numpy()  # (Q, 3)
    w = None if weights is None else check.to_numpy(weights).astype(np.float64).reshape(-1)
    if w is not None and (len(w) != len(ab) or (w < 0).any()):
        raise ValueError(f"expected weights of shape (Q,) with Q = {len(ab)}, non-negative, got {w.shape}")
    with _style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 5))
        fig = ax.figure
        ax.set_aspect("equal")
        a, b = ab[:, 0].numpy(), ab[:, 1].numpy()
        ax.set_xlim(a.min() - grid, a.max() + grid)
        ax.set_ylim(b.min() - grid, b.max() + grid)
        fig.canvas.draw()  # so that data units convert to points
        cell_pts = ax.transData.transform((grid, 0))[0] - ax.transData.transform((0, 0))[0]
        cell_pts *= 72.0 / fig.dpi
        scale = np.ones(len(ab)) if w is None else w / max(w.max(), 1e-12)
        ax.scatter(a, b, s=(cell_pts**2) * scale, c=colours, marker="s", linewidths=0)
        ax.set_xlabel("a*  (green − / red +)")
        ax.set_ylabel("b*  (blue − / yellow +)")
        extra = "" if w is None else f", area ∝ weight ({w.min():.2g}–{w.max():.2g})"
        ax.set_title(title or f"{len(ab)} a*b* bins at L* = {lightness:g}{extra}")
    return fig
