"""Embeddings in two dimensions: t-SNE / UMAP / PCA maps coloured by class, and snapshots while training."""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Optional

import matplotlib
import numpy as np

from .. import _checks as check
from .style import _name, _style

METHODS = ("tsne", "umap", "pca")


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
    x = check.to_numpy(check.features(features, "features"))  # (N, D) float32
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
    import matplotlib.pyplot as plt

    already_2d = np.shape(features)[-1] == 2
    coords = embed_2d(features, method=method, seed=seed, **kwargs)
    y = check.label_array(labels, len(coords))
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
    import matplotlib.pyplot as plt

    if not snapshots:
        raise ValueError("snapshots must map at least one epoch to an (N, 2) embedding")
    keys = list(snapshots)
    coords = [check.to_numpy(snapshots[k]).astype(np.float32) for k in keys]
    n = len(coords[0])
    if any(c.ndim != 2 or c.shape != (n, 2) for c in coords):
        raise ValueError(f"every snapshot must have shape (N, 2) with the same N, got {[c.shape for c in coords]}")
    y = check.label_array(labels, n)
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


__all__ = ["METHODS", "embed_2d", "plot_embedding_2d", "plot_embedding_snapshots"]
