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


def _style():
    return matplotlib.rc_context(COURSE_STYLE)


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
