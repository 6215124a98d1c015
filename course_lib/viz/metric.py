"""Metric-learning figures: which pairs a contrastive margin pulls or pushes (chapter 02), and which
class wins where on the unit circle under a cosine / angular margin (chapter 04)."""
from __future__ import annotations

from typing import Optional

import matplotlib
import numpy as np
import torch

from .. import _checks as check
from .style import IDLE_COLOR, PULL_COLOR, PUSH_COLOR, _name, _style


def _margin_terms(distances, same, margin: float, squared_hinge: bool):
    """(D, y, N·∂J/∂D, active) as NumPy arrays, the gradient from the library's closed form."""
    from ..losses import contrastive_loss_grad

    d = torch.as_tensor(check.to_numpy(distances), dtype=torch.float64).reshape(-1)  # (N,)
    y = check.flags(check.to_numpy(same).reshape(-1), len(d), "same")  # (N,) like the distances
    if len(d) and bool((d < 0).any()):
        raise ValueError("distances must be >= 0")
    y = y.bool() if y.dtype == torch.bool else y != 0
    # D_i is the distance between z1_i = (D_i) and z2_i = (0): the library's gradient of J wrt D_i
    grad = contrastive_loss_grad(d[:, None], torch.zeros_like(d)[:, None], y, margin, squared_hinge)  # (N,)
    return d.numpy(), y.numpy(), (grad * len(d)).numpy(), (grad != 0).numpy()


def margin_summary(distances, same, margin: float = 1.0, squared_hinge: bool = False) -> dict:
    """How many pairs give gradient at margin α: ``{"pairs", "active", "positives",
    "active_positives", "negatives", "active_negatives"}`` (counts), where *active* means
    ∂J/∂D ≠ 0 by :func:`course_lib.losses.contrastive_loss_grad`."""
    _, y, _, active = _margin_terms(distances, same, margin, squared_hinge)
    return {"pairs": int(len(y)), "active": int(active.sum()),
            "positives": int(y.sum()), "active_positives": int((active & y).sum()),
            "negatives": int((~y).sum()), "active_negatives": int((active & ~y).sum())}


def _margin_title(s: dict, margin: float, squared_hinge: bool) -> str:
    variant = "squared hinge [α − D]₊²" if squared_hinge else "hinge [α − D]₊"
    frac = s["active"] / max(s["pairs"], 1)
    return (f"{variant}, α = {margin:.2f}: {s['active']} of {s['pairs']} pairs give gradient ({frac:.0%})\n"
            f"positives {s['active_positives']}/{s['positives']} pulled, "
            f"negatives {s['active_negatives']}/{s['negatives']} pushed")


def plot_margin(distances, same, margin: float = 1.0, squared_hinge: bool = False, ax=None,
                seed: int = 0, point_size: Optional[float] = None):
    r"""Which pairs give gradient under the contrastive loss with margin α (UTD CS 6384 slides)?

    ``distances`` :math:`D_{ij}` (N,) of N pairs, ``same`` :math:`y_{ij}` (N,) bool or 0/1. A pair is
    *active* when :math:`\partial J/\partial D_{ij} \neq 0`
    (:func:`course_lib.losses.contrastive_loss_grad`): every positive pair with D > 0 (pulled), and
    the negative pairs inside the margin, D < α (pushed); negatives beyond the margin are grey.

    Top: each pair as a dot at its distance, positives and negatives on two jittered rows, the
    margin as a dashed line. Bottom: each pair's :math:`N\,\partial J/\partial D` (> 0 pulls,
    < 0 pushes) on the curves of the loss variant: the plain hinge pushes every negative inside the
    margin equally hard, the squared hinge :math:`[\alpha - D]_+^2` less and less as D nears α.
    The title counts the active pairs. ``ax``: one Axes (the top plot only) or two (both).
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    d, y, force, active = _margin_terms(distances, same, margin, squared_hinge)
    summary = margin_summary(distances, same, margin, squared_hinge)
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-0.32, 0.32, len(d))
    size = point_size if point_size is not None else float(np.clip(3000 / max(len(d), 1), 3, 30))
    groups = [  # (gid, mask, colour, label)
        ("active-positive", active & y, PULL_COLOR, "positive pair: pulled together"),
        ("idle-positive", ~active & y, IDLE_COLOR, "positive pair at D = 0: no gradient"),
        ("active-negative", active & ~y, PUSH_COLOR, "negative pair, D < α: pushed apart"),
        ("idle-negative", ~active & ~y, IDLE_COLOR, "negative pair, D ≥ α: no gradient"),
    ]
    x_max = 1.05 * max(float(d.max()) if len(d) else 0.0, margin, 1e-6)
    with _style():
        if ax is None:
            fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.2), sharex=True, layout="constrained",
                                              gridspec_kw={"height_ratios": [1, 1.1]})
        elif isinstance(ax, (list, tuple, np.ndarray)):
            top, bottom = ax
            fig = top.figure
        else:
            top, bottom, fig = ax, None, ax.figure
        top.axvspan(0, margin, color=PUSH_COLOR, alpha=0.06, linewidth=0)
        for gid, mask, color, label in groups:
            if mask.any() or gid != "idle-positive":
                top.scatter(d[mask], y[mask].astype(float) + jitter[mask], s=size, color=color, alpha=0.7,
                            linewidths=0, label=f"{label} ({int(mask.sum())})", gid=gid)
        top.axvline(margin, color="black", linestyle="--", linewidth=1.2, label=f"margin α = {margin:.2f}", gid="margin")
        top.set_yticks([0, 1], ["negative\npairs", "positive\npairs"])
        top.set(xlim=(0, x_max), ylim=(-0.5, 1.5), xlabel="distance D between the two embeddings")
        top.grid(axis="y", visible=False)
        top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, markerscale=max(1.0, 25 / size) ** 0.5)
        top.set_title(_margin_title(summary, margin, squared_hinge), fontsize=10)
        if bottom is not None:
            grid = np.linspace(0, x_max, 400)
            push = -np.clip(margin - grid, 0, None) if squared_hinge else -0.5 * (grid < margin)
            bottom.axhline(0, color="0.5", linewidth=0.8)
            bottom.plot(grid, grid, color=PULL_COLOR, linewidth=1, alpha=0.6, label="positive (y = 1): D")
            bottom.plot(grid, push, color=PUSH_COLOR, linewidth=1, alpha=0.6,
                        label="negative (y = 0): −[α − D]₊" if squared_hinge else "negative (y = 0): −½·1[D < α]")
            for gid, mask, color, _ in groups:
                if mask.any():
                    bottom.scatter(d[mask], force[mask], s=size, color=color, alpha=0.7, linewidths=0, gid=gid)
            bottom.axvline(margin, color="black", linestyle="--", linewidth=1.2)
            bottom.set(xlim=(0, x_max), xlabel="distance D between the two embeddings",
                       ylabel="N · ∂J/∂D\n(> 0 pulls, < 0 pushes)")
            bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
            top.set_xlabel("")
    return fig


# ------------------------------------------------------------------------ angular decisions
def plot_circle_regions(
    theta, winner, weight_angles=None, classes=None, ax=None, title: Optional[str] = None,
    gap_label: str = "no class wins",
):
    """Which class wins where on the unit circle of a 2-D normalised feature space.

    ``theta`` ``(T,)`` increasing angles in radians of points ẑ = (cos θ, sin θ) on the circle,
    ``winner`` ``(T,)`` the class each point is assigned to, or ``-1`` where none is (e.g. the
    margin gap of CosFace/ArcFace, where no class wins with its margin). Each run of equal winners
    is drawn as a pie wedge coloured by class (grey for ``-1``, hatched), the circle itself as a
    thick coloured arc; ``weight_angles`` ``(C,)`` draws the class weight vectors w_c as arrows.
    ``classes`` names the classes in the legend. Returns the figure.
    """
    import matplotlib.pyplot as plt

    from matplotlib.patches import Patch, Wedge

    t = check.to_numpy(theta).astype(float).reshape(-1)
    w = check.to_numpy(winner).astype(int).reshape(-1)
    if len(t) != len(w) or len(t) < 2:
        raise ValueError(f"theta and winner must have the same shape (T,) with T >= 2, got {t.shape} and {w.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("theta must be strictly increasing (radians)")
    angles = None if weight_angles is None else check.to_numpy(weight_angles).astype(float).reshape(-1)
    n_classes = len(angles) if angles is not None else int(max(w.max(), -1)) + 1
    cmap = matplotlib.colormaps["tab10"]
    edges = np.concatenate([[t[0]], (t[1:] + t[:-1]) / 2, [t[-1]]])  # (T+1,) each point owns a small arc
    starts = np.flatnonzero(np.concatenate([[True], w[1:] != w[:-1]]))  # first point of every run
    stops = np.concatenate([starts[1:], [len(w)]])
    with _style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(4.2, 4.2), layout="constrained")
        fig = ax.figure
        for a, b in zip(starts, stops):
            c = int(w[a])
            color = cmap(c % 10) if c >= 0 else "0.8"
            lo, hi = np.degrees(edges[a]), np.degrees(edges[b])
            ax.add_patch(Wedge((0, 0), 1.0, lo, hi, facecolor=color, alpha=0.35 if c >= 0 else 0.6,
                               hatch=None if c >= 0 else "///", edgecolor="none"))
            ax.add_patch(Wedge((0, 0), 1.06, lo, hi, width=0.12, facecolor=color, edgecolor="none"))
        if angles is not None:
            for c, angle in enumerate(angles):
                ax.annotate("", xy=(0.9 * np.cos(angle), 0.9 * np.sin(angle)), xytext=(0, 0),
                            arrowprops=dict(arrowstyle="-|>", color=cmap(c % 10), lw=2, shrinkA=0, shrinkB=0))
                ax.text(1.24 * np.cos(angle), 1.24 * np.sin(angle), f"$w_{c}$", ha="center", va="center")
        handles = [Patch(color=cmap(c % 10), alpha=0.6, label=_name(c, classes) if classes is not None else f"class {c}")
                   for c in range(n_classes)]
        if np.any(w < 0):
            handles.append(Patch(facecolor="0.8", hatch="///", label=gap_label))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=min(4, len(handles)))
        ax.set_xlim(-1.35, 1.35)
        ax.set_ylim(-1.35, 1.35)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        ax.spines[:].set_visible(False)
        if title:
            ax.set_title(title)
    return fig


__all__ = ["margin_summary", "plot_margin", "plot_circle_regions"]
