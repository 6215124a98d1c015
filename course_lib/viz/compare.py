"""Many encoders side by side (chapter 09): the same points mapped by each, and the classes each confuses."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from .. import _checks as check
from .embeddings import embed_2d, plot_embedding_2d
from .style import _style

METHOD_NAMES = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}


def _grid(n: int, cols: int, size: float):
    import matplotlib.pyplot as plt

    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), layout="constrained", squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def map_coordinates(features: Mapping[str, object], method: str = "tsne", seed: int = 0,
                    progress: bool = True, **kwargs) -> dict:
    """``{name: (N, 2)}``: every encoder's ``(N, D)`` features mapped by :func:`embed_2d` with the same
    method, seed and parameters (e.g. ``perplexity=30``)."""
    items = list(features.items())
    if progress and len(items) > 1:
        from tqdm.auto import tqdm

        items = tqdm(items, desc=METHOD_NAMES.get(method, method), leave=False)
    return {name: embed_2d(f, method=method, seed=seed, **kwargs) for name, f in items}


def plot_maps(coordinates: Mapping[str, object], labels, classes=None, cols: int = 4, size: float = 3.2,
              method: str = "tsne", titles: Optional[Mapping[str, str]] = None, legend: bool = True):
    """One panel per encoder: the same ``(N,)`` points at the ``(N, 2)`` coordinates of that encoder's map
    (from :func:`map_coordinates`), coloured by class; one legend for all. Returns the figure."""
    names = list(coordinates)
    y = check.label_array(labels, len(next(iter(coordinates.values()))))
    with _style():
        fig, axes = _grid(len(names), cols, size)
        for ax, name in zip(axes, names):
            title = (titles or {}).get(name, name)
            plot_embedding_2d(np.asarray(coordinates[name]), y, classes=classes, ax=ax, title=title,
                              point_size=4.0)
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        if legend and y is not None:
            handles, texts = axes[0].get_legend_handles_labels()
            fig.legend(handles, texts, loc="outside right center", markerscale=2.5, frameon=False)
        fig.suptitle(f"{METHOD_NAMES.get(method, method)} maps of the same {len(y) if y is not None else ''} test images")
    return fig


def plot_confusions(confusions: Mapping[str, np.ndarray], classes: Optional[Sequence[str]] = None,
                    cols: int = 4, size: float = 3.0, title: Optional[str] = None):
    """One heat map per encoder of its row-normalised confusion matrix ``(C, C)`` (rows: true class,
    columns: predicted), diagonal masked so that the mistakes stand out. Returns the figure."""
    names = list(confusions)
    with _style():
        fig, axes = _grid(len(names), cols, size)
        vmax = max(float(np.max(np.where(np.eye(len(m), dtype=bool), 0.0, m))) for m in confusions.values()) or 1.0
        for ax, name in zip(axes, names):
            m = np.array(confusions[name], dtype=np.float64)
            off = np.where(np.eye(len(m), dtype=bool), np.nan, m)
            image = ax.imshow(off, cmap="magma_r", vmin=0.0, vmax=vmax)
            ax.set_title(f"{name}\n(mean class accuracy {np.trace(m) / len(m):.1%})", fontsize=9)
            ticks = np.arange(len(m))
            labels = [c[:4] for c in classes] if classes is not None else [str(t) for t in ticks]
            ax.set_xticks(ticks, labels, rotation=90, fontsize=6)
            ax.set_yticks(ticks, labels, fontsize=6)
            ax.grid(False)
        fig.colorbar(image, ax=list(axes[: len(names)]), shrink=0.6, label="fraction of the true class")
        fig.suptitle(title or "kNN confusions (rows: true class, columns: predicted; diagonal left out)")
    return fig


__all__ = ["map_coordinates", "plot_maps", "plot_confusions"]
