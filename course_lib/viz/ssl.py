"""Chapter 08's figures: collapse of a non-contrastive method, and Barlow Twins' cross-correlation.

* :func:`plot_collapse`: the collapse measure (:func:`~course_lib.evaluate.feature_std`, SimSiam's
  std of ℓ2-normalised features) over training, one curve per run, beside the 1/√d of spread-out
  features;
* :func:`cross_correlation`, :func:`model_cross_correlation`, :func:`cross_correlation_stats`: the
  matrix C that Barlow Twins drives to the identity (of two embeddings, or of a model's projections of
  two views, as its loss sees them), and how far from it a C is;
* :func:`plot_cross_correlation`: C as a heat map, a diverging colour map centred at 0.
"""
from __future__ import annotations

import copy
import math
from typing import Mapping, Optional

import numpy as np
import torch

from .. import _checks as check
from .style import _style

__all__ = ["cross_correlation", "model_cross_correlation", "cross_correlation_stats", "plot_cross_correlation", "plot_collapse"]


def cross_correlation(z1, z2, eps: float = 1e-5) -> torch.Tensor:
    """C_ij = Σ_b ẑ^A_bi ẑ^B_bj / N, ẑ = (z − mean_b z) / √(var_b z + eps): Barlow Twins' C (Zbontar et al., 2021).

    ``z1``, ``z2`` ``(N, D)``, N ≥ 2: the two views' embeddings. Each dimension is standardised over the
    batch with the biased variance, as :func:`~course_lib.losses.barlow_twins_loss` does (BatchNorm
    without affine). Returns C ``(D, D)`` float32 on the CPU, no gradient; C_ii = 1 when the two views
    agree in dimension i, C_ij = 0 (i ≠ j) when dimensions i and j are decorrelated.
    """
    z1, z2 = check.floats("z1 and z2", z1, z2, shape="(N, D)")  # (N, D), (N, D)
    if len(z1) < 2:
        raise ValueError(f"expected z1 and z2 of shape (N, D) with N >= 2, got {tuple(z1.shape)}")
    z1, z2 = z1.detach().float().cpu(), z2.detach().float().cpu()
    standardise = lambda z: (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)  # noqa: E731
    return standardise(z1).T @ standardise(z2) / len(z1)  # (D, D)


def model_cross_correlation(model, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
    """C of z^A = g(f(x^A)) and z^B = g(f(x^B)) as the loss sees it: ``model.projector(model.backbone(x))``
    of each view ``(B, 3, H, W)`` in training mode (BatchNorm with the batch's statistics, each view
    separately, as :class:`~course_lib.methods.BarlowTwins` encodes them), without gradient.

    Runs on a copy of ``model``, so its running BatchNorm statistics and its mode stay as they were
    (measuring C before training does not change the run). Returns C ``(D, D)``, see :func:`cross_correlation`.
    """
    probe = copy.deepcopy(model).train()
    with torch.no_grad():
        z_a, z_b = probe.projector(probe.backbone(view_a)), probe.projector(probe.backbone(view_b))  # (B, D) each
    return cross_correlation(z_a, z_b)


def cross_correlation_stats(c) -> dict:
    """``{"diagonal_mean": mean_i C_ii, "off_diagonal_abs_mean": mean_{i≠j} |C_ij|}`` of a square C ``(D, D)``:
    1 and 0 for the identity that Barlow Twins aims at."""
    c = torch.as_tensor(check.to_numpy(c), dtype=torch.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or len(c) < 2:
        raise ValueError(f"expected a square matrix C of shape (D, D) with D >= 2, got {tuple(c.shape)}")
    off = ~torch.eye(len(c), dtype=torch.bool)
    return {"diagonal_mean": float(c.diagonal().mean()), "off_diagonal_abs_mean": float(c[off].abs().mean())}


def plot_cross_correlation(c, ax=None, title: Optional[str] = None, dims: Optional[int] = 64, colorbar: bool = True):
    """C as a heat map: colour map ``RdBu_r`` from −1 (blue) through 0 (white) to +1 (red).

    ``c`` ``(D, D)``; ``dims`` shows its top-left ``dims × dims`` block (None: all of it), so that the
    diagonal stays visible when D is in the thousands; the title gives the statistics of the whole
    matrix (:func:`cross_correlation_stats`). Returns the figure.
    """
    import matplotlib.pyplot as plt

    c = np.asarray(check.to_numpy(c), dtype=float)
    stats = cross_correlation_stats(c)
    shown = c if dims is None else c[:dims, :dims]
    with _style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(4.6, 4), layout="constrained")
        fig = ax.figure
        image = ax.imshow(shown, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
        ax.grid(False)
        part = f"first {len(shown)} of {len(c)} dimensions" if len(shown) < len(c) else f"{len(c)} dimensions"
        ax.set(xlabel="dimension j of $z^B$", ylabel="dimension i of $z^A$",
               title=(f"{title}\n" if title else "") + f"mean $C_{{ii}}$ = {stats['diagonal_mean']:.2f}, "
               f"mean $|C_{{ij}}|$ = {stats['off_diagonal_abs_mean']:.3f}  ({part})")
        if colorbar:
            fig.colorbar(image, ax=ax, shrink=0.8, label="$C_{ij}$")
    return fig


def plot_collapse(histories: Mapping[str, Mapping], d: Optional[int] = None, ax=None, key: str = "feature_std",
                  title: Optional[str] = None):
    """The collapse measure over training: one curve ``history[key]`` per run, a dashed line at 1/√d.

    ``histories`` ``{run name: history}`` (``fit``'s :class:`~course_lib.train.History`, or any mapping
    with ``"epoch"`` and ``key`` lists; NaN epochs are skipped). ``d``: the feature width; None takes 1/√d
    from the histories' ``f"{key}_ref"`` (what :class:`~course_lib.evaluate.CollapseMonitor` logs). The y
    axis is logarithmic: collapsed features sit orders of magnitude below 1/√d. Returns the figure.
    """
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("histories is empty: pass {run name: history}")
    if d is None:
        refs = [v for h in histories.values() for v in h.get(f"{key}_ref", []) if v == v]
        if not refs:
            raise ValueError(f"no {key}_ref in the histories: pass d, the feature width")
        ref = float(refs[0])
    else:
        ref = 1.0 / math.sqrt(d)
    with _style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
        fig = ax.figure
        for name, history in histories.items():
            if key not in history:
                raise ValueError(f"history of {name!r} has no {key!r}; it has {list(history)}")
            y = np.asarray(history[key], dtype=float)
            x = np.asarray(history.get("epoch", range(1, len(y) + 1)), dtype=float)[: len(y)]
            ok = np.isfinite(y) & (y > 0)
            ax.plot(x[ok], y[ok], marker="o", markersize=3, label=f"{name} ({y[ok][-1]:.3g})" if ok.any() else name)
        ax.axhline(ref, color="0.3", linestyle="--", linewidth=1, label=f"1/√d = {ref:.3f} (spread out)")
        ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel="std of ℓ2-normalised features", title=title or "collapse measure over training")
        ax.legend()
    return fig
