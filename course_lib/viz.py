"""Figures for the course: image grids, 2-D maps of embeddings, retrievals, training curves, bars.

Every function draws with matplotlib and returns the :class:`~matplotlib.figure.Figure`, so a
notebook shows it and a test or script saves it (``fig.savefig(...)``); none calls ``plt.show()``.
Functions that take ``ax=`` draw into that axes instead of a new figure (and return its figure).

Images come as the data module keeps them, ``uint8 (N, H, W, 3)``, or as models see them,
``float (N, 3, H, W)`` in [0, 1]; pass ``denormalize=True`` for batches normalised with the
CIFAR-10 statistics. Tensors may live on any device.

Heavy optional libraries (UMAP) are imported only when a function needs them.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Mapping, Optional, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from .data import CIFAR10_MEAN, CIFAR10_STD, class_examples
from .distances import nearest_neighbours

#: The course's look: a few rcParams, applied inside every function here and globally by
#: :func:`use_course_style`.
COURSE_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "axes.prop_cycle": matplotlib.cycler(color=matplotlib.colormaps["tab10"].colors),
    "legend.frameon": False,
    "legend.fontsize": 9,
    "lines.linewidth": 1.8,
    "image.interpolation": "nearest",
}
SAME_COLOR = "#2ca02c"  # green: a neighbour of the query's class
OTHER_COLOR = "#d62728"  # red: a neighbour of another class
METHODS = ("tsne", "umap", "pca")


def use_course_style() -> None:
    """Apply :data:`COURSE_STYLE` to matplotlib's global rcParams (call once in a notebook)."""
    matplotlib.rcParams.update(COURSE_STYLE)


@contextlib.contextmanager
def _style():
    """Draw with :data:`COURSE_STYLE`, then put back only those keys.

    Not ``matplotlib.rc_context``: it restores *every* rcParam on exit, including ``interactive``,
    which Jupyter's inline backend switches on while the first figure is drawn; restoring it would
    silently stop every later figure of the notebook from being shown.
    """
    saved = {k: matplotlib.rcParams[k] for k in COURSE_STYLE}
    matplotlib.rcParams.update(COURSE_STYLE)
    try:
        yield
    finally:
        matplotlib.rcParams.update(saved)


# ------------------------------------------------------------------------------------ inputs
def _numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        a = a.float() if a.dtype in (torch.float16, torch.bfloat16) else a
        return a.numpy()
    return np.asarray(a)


def to_display(images, denormalize: bool = False) -> np.ndarray:
    """Images as matplotlib shows them: float (N, H, W, 3) in [0, 1].

    Accepts ``uint8 (N, H, W, 3)``, ``float (N, 3, H, W)`` in [0, 1] (or CIFAR-normalised with
    ``denormalize=True``), float ``(N, H, W, 3)``, one channel instead of three, or a single image.
    """
    x = _numpy(images)
    if x.ndim in (2, 3) and (x.ndim == 2 or x.shape[-1] in (1, 3) or x.shape[0] in (1, 3)):
        x = x[None] if x.ndim == 3 else x[None, ..., None]  # one image
    if x.ndim != 4:
        raise ValueError(
            f"images must be uint8 (N, H, W, 3) or float (N, 3, H, W), got shape {x.shape}"
        )
    channels_first = x.shape[1] in (1, 3) and (x.shape[-1] not in (1, 3) or x.dtype != np.uint8)
    if channels_first:
        x = x.transpose(0, 2, 3, 1)  # (N, H, W, C)
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 (N, H, W, 3) or float (N, 3, H, W), got shape {x.shape}")
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


def _labels(labels, n: Optional[int] = None) -> Optional[np.ndarray]:
    if labels is None:
        return None
    labels = _numpy(labels).reshape(-1)
    if n is not None and len(labels) != n:
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    return labels


def _name(label, classes) -> str:
    if classes is not None and not isinstance(label, str):
        return str(classes[int(label)])
    return str(label)


# ------------------------------------------------------------------------------------- tiles
_GAP = 0.08  # space between tiles, in tile widths
_CAPTION = 0.32  # extra space under a tile that has a caption


def _new_axes(ax, width: float, height: float, tile_inches: float, title=None, figsize=None):
    """The axes to draw tiles into: ``ax`` itself, or a new figure sized for the tile layout
    (``width`` x ``height`` tiles of ``tile_inches``, plus room for a title)."""
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
    names = _labels(labels, n)
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
    y = _labels(labels, len(x)).astype(np.int64)
    idx = _numpy(class_examples(torch.as_tensor(y), per_class, seed=seed))
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
    nn_idx = _numpy(neighbour_indices).astype(np.int64)  # (Q, k)
    if nn_idx.ndim != 2 or len(nn_idx) != len(q):
        raise ValueError(f"neighbour_indices must have shape (Q, k) with Q={len(q)} queries, got {nn_idx.shape}")
    qy, gy = _labels(query_labels, len(q)), _labels(gallery_labels, len(g))
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


# -------------------------------------------------------------------------------- embeddings
def embed_2d(features, method: str = "tsne", seed: int = 0, **kwargs) -> np.ndarray:
    """(N, D) features -> (N, 2) coordinates by t-SNE, UMAP or PCA; 2-D features pass through.

    * ``"tsne"``: ``sklearn.manifold.TSNE(init="pca")``; perplexity (default 30) capped at
      (N - 1) / 3 so that small sets work; features wider than 50 are first reduced to 50 by PCA
      (van der Maaten & Hinton, 2008);
    * ``"umap"``: ``umap.UMAP(random_state=seed)`` (McInnes et al., 2018); ``n_neighbors``
      (default 15) capped at N - 1;
    * ``"pca"``: the first two principal components.

    ``kwargs`` go to the estimator.
    """
    x = _numpy(features).astype(np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {x.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    n, d = x.shape
    if d == 2:
        return x
    if d < 2 or n < 3:
        raise ValueError(f"need at least 3 points of dimension >= 2 for a 2-D map, got shape {x.shape}")
    from sklearn.decomposition import PCA

    if method == "pca":
        return PCA(n_components=2, random_state=seed, **kwargs).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        if d > 50 and n > 50:
            x = PCA(n_components=50, random_state=seed).fit_transform(x)
        kwargs["perplexity"] = min(float(kwargs.get("perplexity", 30.0)), (n - 1) / 3)
        kwargs.setdefault("init", "pca")
        return TSNE(n_components=2, random_state=seed, **kwargs).fit_transform(x)
    import umap  # lazy: slow to import, and only this path needs it

    kwargs["n_neighbors"] = int(min(kwargs.get("n_neighbors", 15), n - 1))
    with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state": expected
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        return umap.UMAP(n_components=2, random_state=seed, **kwargs).fit_transform(x)


def plot_embedding_2d(
    features, labels=None, method: str = "tsne", classes=None, ax=None, seed: int = 0,
    title: Optional[str] = None, return_coords: bool = False, point_size: Optional[float] = None,
    **kwargs,
):
    """A 2-D map of (N, D) features coloured by class, with a legend (see :func:`embed_2d`).

    Features that are already (N, 2), e.g. a live 2-D embedding during training, are drawn as they
    are. Returns the figure, or ``(figure, coords)`` with ``coords`` (N, 2) when ``return_coords``.
    """
    already_2d = np.shape(features)[-1] == 2
    coords = embed_2d(features, method=method, seed=seed, **kwargs)
    y = _labels(labels, len(coords))
    size = point_size if point_size is not None else float(np.clip(6000 / max(len(coords), 1), 4, 40))
    with _style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(6.5, 5), layout="constrained")
        fig = ax.figure
        if y is None:
            ax.scatter(coords[:, 0], coords[:, 1], s=size, alpha=0.8, linewidths=0)
        else:
            values = np.unique(y)
            cmap = matplotlib.colormaps["tab10" if len(values) <= 10 else "tab20"]
            for i, c in enumerate(values):
                m = y == c
                color = cmap(i % cmap.N) if len(values) <= 20 else matplotlib.colormaps["turbo"](i / (len(values) - 1))
                ax.scatter(coords[m, 0], coords[m, 1], s=size, alpha=0.8, linewidths=0,
                           color=color, label=_name(c, classes))
            if len(values) <= 20:
                ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=max(1.0, 30 / size) ** 0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        ax.spines[:].set_visible(False)
        method_name = "2-D features" if already_2d else {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}[method]
        ax.set_title(title if title is not None else method_name)
    return (fig, coords) if return_coords else fig


# -------------------------------------------------------------------------------- curves, bars
def _history_columns(history) -> dict:
    """``{name: list}`` from a mapping of lists, or from a list of per-epoch dicts."""
    if isinstance(history, Mapping) or hasattr(history, "items"):
        return {k: list(v) for k, v in history.items()}
    rows = list(history)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k) for row in rows] for k in keys}


def _floats(values) -> np.ndarray:
    """Per-epoch values as floats, ``None`` (a metric not computed that epoch) as NaN."""
    return np.array([np.nan if v is None else float(_numpy(v)) for v in values], dtype=float)


def plot_history(history, keys: Optional[Sequence] = None, ax=None, title: Optional[str] = None):
    """Training curves: one subplot per metric against ``history["epoch"]``.

    ``history``: ``{"epoch": [...], "loss": [...], "knn_acc": [...], ...}`` (or a list of per-epoch
    dicts). ``None``/NaN values, metrics not computed in an epoch, are skipped. ``keys`` picks
    and orders the metrics (default: all but ``epoch``); a tuple of names shares one subplot.
    With ``ax``, every metric goes on that one axes. Returns the figure.
    """
    cols = _history_columns(history)
    n = max((len(v) for v in cols.values()), default=0)
    epochs = _floats(cols["epoch"]) if "epoch" in cols else np.arange(1, n + 1, dtype=float)
    if keys is None:
        keys = [k for k in cols if k != "epoch"]
    groups = [tuple(k) if isinstance(k, (tuple, list)) else (k,) for k in keys]
    missing = [k for g in groups for k in g if k not in cols]
    if missing:
        raise ValueError(f"history has no {missing}; it has {list(cols)}")
    with _style():
        if ax is None:
            ncol = min(3, max(1, len(groups)))
            nrows = max(1, math.ceil(len(groups) / ncol))
            fig, axes = plt.subplots(nrows, ncol, figsize=(4.2 * ncol, 3.0 * nrows), squeeze=False,
                                     layout="constrained")
            axes = axes.ravel()
            for extra in axes[len(groups):]:
                fig.delaxes(extra)
        else:
            fig, axes = ax.figure, [ax] * len(groups)
        for a, group in zip(axes, groups):
            for key in group:
                v = _floats(cols[key])
                x = epochs[: len(v)]
                ok = np.isfinite(v) & np.isfinite(x)
                last = f" ({v[ok][-1]:.4g})" if ok.any() else ""
                a.plot(x[ok], v[ok], marker="o" if ok.sum() <= 30 else None, markersize=3, label=f"{key}{last}")
                positive = v[ok][v[ok] > 0]
                if len(group) == 1 and "lr" in key.lower() and len(positive) == ok.sum() > 1 \
                        and positive.max() / positive.min() > 100:  # a learning-rate schedule
                    a.set_yscale("log")
            a.set_xlabel("epoch")
            if len(group) > 1 or ax is not None:
                a.legend()
            else:
                a.set_title(a.get_lines()[0].get_label())
        if title:
            fig.suptitle(title)
    return fig


def plot_bars(
    values: Mapping[str, float], title: Optional[str] = None, ylabel: Optional[str] = None,
    ax=None, fmt: str = "{:.3g}", colors=None,
):
    """A labelled bar chart with each value written on its bar, e.g. linear-probe accuracy of
    pixels vs a random CNN vs a supervised CNN. Returns the figure."""
    names = [str(k) for k in values]
    heights = [float(_numpy(v)) for v in values.values()]
    with _style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 1.5), 3.6), layout="constrained")
        fig = ax.figure
        if colors is None:
            colors = [matplotlib.colormaps["tab10"](i % 10) for i in range(len(names))]
        bars = ax.bar(names, heights, color=colors, width=0.65)
        ax.bar_label(bars, labels=[fmt.format(h) for h in heights], padding=2, fontsize=9)
        ax.margins(y=0.12)
        ax.grid(axis="x", visible=False)
        if max((len(s) for s in names), default=0) * len(names) > 60:
            plt.setp(ax.get_xticklabels(), rotation=25, ha="right")
        if ylabel:
            ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
    return fig


__all__ = [
    "COURSE_STYLE", "use_course_style", "to_display", "show_images", "show_class_grid",
    "show_retrievals", "nearest_neighbours", "embed_2d", "plot_embedding_2d", "plot_history",
    "plot_bars",
]


# ------------------------------------------------------------ chapter 04: angular decisions
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
    from matplotlib.patches import Patch, Wedge

    t = _numpy(theta).astype(float).reshape(-1)
    w = _numpy(winner).astype(int).reshape(-1)
    if len(t) != len(w) or len(t) < 2:
        raise ValueError(f"theta and winner must have the same shape (T,) with T >= 2, got {t.shape} and {w.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("theta must be strictly increasing (radians)")
    angles = None if weight_angles is None else _numpy(weight_angles).astype(float).reshape(-1)
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


__all__ += ["plot_circle_regions"]


# ---------------------------------------------------------- chapter 02: Siamese / contrastive
#: Colours of :func:`plot_margin`: pairs that give gradient, and those that do not.
PULL_COLOR = SAME_COLOR  # a positive pair, pulled together
PUSH_COLOR = OTHER_COLOR  # a negative pair inside the margin, pushed apart
IDLE_COLOR = "#b0b0b0"  # a pair whose gradient is zero


def show_live(fig, handle=None):
    """Show ``fig`` in the notebook, or replace the figure shown earlier under ``handle``.

    For figures that change during training (one display updated epoch after epoch instead of one
    new figure per epoch)::

        handle = None
        for epoch in ...:
            handle = show_live(plot_embedding_2d(z, y, title=f"epoch {epoch}"), handle)

    The figure is closed afterwards, so the inline backend does not show it a second time at the
    end of the cell. Returns the IPython ``DisplayHandle`` to pass back in.
    """
    from IPython.display import display

    if handle is None:
        handle = display(fig, display_id=True)
    else:
        handle.update(fig)
    plt.close(fig)
    return handle


def _snapshot_name(key) -> str:
    return f"epoch {key}" if isinstance(key, (int, np.integer)) else str(key)


def plot_embedding_snapshots(
    snapshots: Mapping, labels, classes=None, ncols: int = 4, margin: Optional[float] = None,
    title: Optional[str] = None, point_size: Optional[float] = None,
):
    """A 2-D embedding as it trains: one scatter plot per snapshot, coloured by class, one legend.

    ``snapshots``: ``{epoch: (N, 2) embedding}`` of the same N points (keys that are ints are titled
    "epoch k", others as they are), e.g. the test set's embedding after chosen epochs of a network
    trained with ``dim=2``; ``labels`` (N,). Each panel keeps its own scale (the embedding grows or
    shrinks while it trains) but an equal aspect, so distances read the same in x and y; with
    ``margin`` each panel also gets a scale bar as long as the margin α of the loss, or α/2, α/4, …
    (as labelled) where α is wider than 40 % of the panel. Returns the figure.
    """
    if not snapshots:
        raise ValueError("snapshots must map at least one epoch to an (N, 2) embedding")
    keys = list(snapshots)
    coords = [_numpy(snapshots[k]).astype(np.float32) for k in keys]
    n = len(coords[0])
    if any(c.ndim != 2 or c.shape != (n, 2) for c in coords):
        raise ValueError(f"every snapshot must have shape (N, 2) with the same N, got {[c.shape for c in coords]}")
    y = _labels(labels, n)
    ncols = max(1, min(ncols, len(keys)))
    nrows = math.ceil(len(keys) / ncols)
    with _style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols + 1.4, 3.3 * nrows + (0.4 if title else 0)),
                                 squeeze=False, layout="constrained")
        for ax in axes.ravel()[len(keys):]:
            fig.delaxes(ax)
        for ax, key, c in zip(axes.ravel(), keys, coords):
            plot_embedding_2d(c, y, classes=classes, ax=ax, title=_snapshot_name(key), point_size=point_size)
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            ax.set_aspect("equal", adjustable="datalim")
            if margin is not None and margin > 0:
                length, halvings = float(margin), 0  # α, halved until it fits the panel
                while length > 0.4 * max(float(np.ptp(c, axis=0).max()), 1e-12) and halvings < 30:
                    length, halvings = length / 2, halvings + 1
                x0, y0 = c.min(0) - np.array([0.0, 0.06]) * np.ptp(c, axis=0)  # just below the points
                ax.plot([x0, x0 + length], [y0, y0], color="black", linewidth=2.5, solid_capstyle="butt", gid="margin-bar")
                name = "α" if halvings == 0 else f"α/{2 ** halvings}"
                ax.text(x0 + length / 2, y0, name, ha="center", va="bottom", fontsize=8, gid="margin-label")
        handles, names = axes.ravel()[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, names, loc="outside right center", markerscale=2.0)
        if title:
            fig.suptitle(title)
    return fig


def _roc_curves(rocs) -> dict:
    if isinstance(rocs, Mapping) and "fpr" in rocs and "tpr" in rocs:
        return {None: rocs}
    if not isinstance(rocs, Mapping) or not rocs:
        raise ValueError("rocs must be a dict {'fpr', 'tpr', 'auc'} from verification_roc, or {name: such dict}")
    return dict(rocs)


def plot_roc(rocs, ax=None, title: Optional[str] = "verification ROC", chance: bool = True):
    """ROC curves of a verification task: true- against false-positive rate, the AUC in the legend.

    ``rocs``: the dict :func:`course_lib.evaluate.verification_roc` returns (``fpr``, ``tpr``,
    ``auc``), or ``{name: such dict}`` for several models on one plot. The dashed diagonal is
    chance (a random distance). Returns the figure.
    """
    curves = _roc_curves(rocs)
    with _style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(4.8, 4.4), layout="constrained")
        fig = ax.figure
        if chance:
            ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance (AUC 0.5)", gid="chance")
        for name, roc in curves.items():
            fpr, tpr = _numpy(roc["fpr"]).astype(float), _numpy(roc["tpr"]).astype(float)
            auc = roc.get("auc")
            if auc is None:
                auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
            label = f"AUC {float(auc):.3f}" if name is None else f"{name} (AUC {float(auc):.3f})"
            ax.plot(fpr, tpr, label=label, gid=f"roc-{name}" if name is not None else "roc")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (different pairs called same)",
               ylabel="true positive rate (same pairs called same)")
        ax.set_aspect("equal")
        ax.legend(loc="lower right")
        if title:
            ax.set_title(title)
    return fig


def _margin_terms(distances, same, margin: float, squared_hinge: bool):
    """(D, y, N·∂J/∂D, active) as NumPy arrays, the gradient from the library's closed form."""
    from .losses import contrastive_loss_grad

    d = torch.as_tensor(_numpy(distances), dtype=torch.float64).reshape(-1)  # (N,)
    y = torch.as_tensor(_numpy(same)).reshape(-1)
    if len(y) != len(d):
        raise ValueError(f"same must have shape ({len(d)},) like distances, got {tuple(y.shape)}")
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
    r"""Which pairs give gradient under the contrastive loss with margin α (slide 000)?

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


def margin_explorer(distances, same, margin: float = 1.0, squared_hinge: bool = False,
                    max_margin: Optional[float] = None, step: Optional[float] = None):
    """An ipywidgets slider for the margin α over :func:`plot_margin`: move it and watch which pairs
    still give gradient (and how many, in the text above the plot).

    ``distances`` (N,) and ``same`` (N,) as for :func:`plot_margin`; the slider runs from 0 to
    ``max_margin`` (default: the larger of 2α and the 99th percentile of the distances), a check box
    switches to the squared hinge. The plot is redrawn as a PNG when the slider is released.
    Returns the widget (display it, or make it a cell's last expression); its ``slider``,
    ``squared``, ``summary`` and ``image`` attributes are the parts.
    """
    import io

    import ipywidgets as widgets

    d = _numpy(distances).astype(np.float64).reshape(-1)
    if max_margin is None:
        top = float(np.quantile(d, 0.99)) if len(d) else 1.0
        max_margin = max(2.0 * margin, top, 1e-3)
    step = step if step is not None else float(max_margin) / 200
    slider = widgets.FloatSlider(value=margin, min=0.0, max=float(max_margin), step=step, description="margin α",
                                 continuous_update=False, readout_format=".2f",
                                 layout=widgets.Layout(width="420px"))
    squared = widgets.Checkbox(value=squared_hinge, description="squared hinge [α − D]₊²", indent=False)
    summary = widgets.HTML()
    image = widgets.Image(format="png")

    def redraw(change=None):
        s = margin_summary(d, same, slider.value, squared.value)
        summary.value = (f"<b>{s['active']} of {s['pairs']} pairs give gradient</b> at α = {slider.value:.2f}: "
                         f"{s['active_positives']}/{s['positives']} positives, "
                         f"{s['active_negatives']}/{s['negatives']} negatives")
        fig = plot_margin(d, same, slider.value, squared.value)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        image.value = buffer.getvalue()

    slider.observe(redraw, names="value")
    squared.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([slider, squared]), summary, image])
    box.slider, box.squared, box.summary, box.image = slider, squared, summary, image
    return box


__all__ += [
    "show_live", "plot_embedding_snapshots", "plot_roc", "margin_summary", "plot_margin", "margin_explorer",
]
