"""What the embedding explorer computes, apart from its widgets: cached maps and neighbour lists, the points
inside a selection rectangle, and the image strips it shows (chapter 09).

Every function here is plain NumPy / torch, so the tests check it without a front end: the neighbour
lists against a brute-force search, the selection against the rectangle, the cache against recomputing.
"""
from __future__ import annotations

import io
from typing import Mapping, Optional, Sequence

import numpy as np

from .. import _checks as check
from .style import OTHER_COLOR, SAME_COLOR

#: The explorer's projections and the parameter each one has (None: PCA has none worth a slider).
PROJECTIONS = {
    "tsne": ("perplexity", 30, 5, 50),       # name, default, min, max (van der Maaten & Hinton 2008)
    "umap": ("n_neighbors", 15, 5, 50),      # McInnes et al. 2018
    "pca": (None, 0, 0, 0),
}


class ExplorerData:
    """The explorer's numbers for ``{name: (N, D)}`` features of the same N points, computed once each.

    * :meth:`coordinates` ``(name, method, param)`` -> ``(N, 2)``, by :func:`~course_lib.viz.embed_2d`,
      cached per (encoder, projection, parameter): a setting visited twice is computed once;
    * :meth:`neighbours` ``(name)`` -> ``(N, k)`` indices of each point's ``k`` nearest *other* points in
      feature space (``metric``, cosine by default, as the kNN classifier ranks them), nearest first.
    """

    def __init__(self, features: Mapping[str, object], k: int = 8, metric: str = "cosine", seed: int = 0):
        if not features:
            raise ValueError("features must map at least one encoder name to its (N, D) features")
        self.features = {name: check.features(f, f"features[{name!r}]") for name, f in features.items()}
        sizes = {name: len(f) for name, f in self.features.items()}
        self.n = next(iter(sizes.values()))
        if any(s != self.n for s in sizes.values()):
            raise ValueError(f"every encoder's features must hold the same N points, got {sizes}")
        if self.n < 3:
            raise ValueError(f"need at least 3 points to explore, got {self.n}")
        self.k = int(min(k, self.n - 1))
        self.metric, self.seed = metric, seed
        self._maps: dict = {}
        self._neighbours: dict = {}
        self.computed = 0  # how many maps were computed (not served from the cache)

    @property
    def names(self) -> list:
        return list(self.features)

    def coordinates(self, name: str, method: str = "tsne", param: Optional[float] = None) -> np.ndarray:
        """``(N, 2)`` map of encoder ``name`` by ``method`` with its parameter (default: :data:`PROJECTIONS`)."""
        from .embeddings import embed_2d

        if method not in PROJECTIONS:
            raise ValueError(f"unknown projection {method!r}: expected one of {', '.join(PROJECTIONS)}")
        key_name, default, _, _ = PROJECTIONS[method]
        param = None if key_name is None else (default if param is None else param)
        key = (name, method, param)
        if key not in self._maps:
            kwargs = {} if key_name is None else {key_name: param}
            self._maps[key] = np.asarray(embed_2d(self.features[name], method=method, seed=self.seed, **kwargs),
                                         dtype=np.float32)
            self.computed += 1
        return self._maps[key]

    def neighbours(self, name: str) -> np.ndarray:
        """``(N, k)`` int64: row i holds the k points nearest to point i in ``name``'s feature space, itself excluded."""
        from ..distances import nearest_neighbours

        if name not in self._neighbours:
            f = self.features[name]
            self._neighbours[name] = nearest_neighbours(f, f, k=self.k, metric=self.metric, exclude_self=True).numpy()
        return self._neighbours[name]


def rectangle(coords: np.ndarray, x_range: Sequence[float], y_range: Sequence[float]) -> tuple:
    """The data-space rectangle ``(x0, x1, y0, y1)`` that covers fractions ``x_range``, ``y_range`` (each in
    [0, 1]) of the map's extent: the selection sliders stay meaningful whatever the map's scale."""
    lo, hi = coords.min(0), coords.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    (fx0, fx1), (fy0, fy1) = x_range, y_range
    return (lo[0] + fx0 * span[0], lo[0] + fx1 * span[0], lo[1] + fy0 * span[1], lo[1] + fy1 * span[1])


def points_in(coords: np.ndarray, x_range: Sequence[float], y_range: Sequence[float]) -> np.ndarray:
    """Indices (ascending) of the points of ``coords`` (N, 2) inside the selection rectangle, borders included."""
    x0, x1, y0, y1 = rectangle(coords, x_range, y_range)
    x, y = coords[:, 0], coords[:, 1]
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def mosaic(images: np.ndarray, frames: Sequence[str], cols: Optional[int] = None, scale: int = 2,
           border: int = 3, gap: int = 4) -> np.ndarray:
    """uint8 images (n, H, W, 3) side by side (``cols`` a row), each enlarged ``scale`` times and framed in
    its colour of ``frames`` (any matplotlib colour): one uint8 (rows·h, cols·w, 3) picture on white."""
    import matplotlib.colors as mcolors

    n = len(images)
    cols = max(1, min(cols or n, n))
    rows = -(-n // cols) if n else 1
    h, w = images.shape[1] * scale + 2 * border, images.shape[2] * scale + 2 * border
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i, (image, frame) in enumerate(zip(images, frames)):
        r, c = divmod(i, cols)
        top, left = r * (h + gap), c * (w + gap)
        out[top : top + h, left : left + w] = (np.asarray(mcolors.to_rgb(frame)) * 255).astype(np.uint8)
        big = image.repeat(scale, axis=0).repeat(scale, axis=1)  # (H*scale, W*scale, 3)
        out[top + border : top + h - border, left + border : left + w - border] = big
    return out


def neighbour_frames(labels: np.ndarray, query: int, neighbours: np.ndarray) -> list:
    """Frame colours of the strip query + neighbours: black for the query, green for its class, red otherwise."""
    return ["black"] + [SAME_COLOR if labels[j] == labels[query] else OTHER_COLOR for j in neighbours]


def png(picture: np.ndarray) -> bytes:
    """A uint8 (H, W, 3) picture as PNG bytes (Pillow: a few ms, no figure)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


__all__ = ["PROJECTIONS", "ExplorerData", "rectangle", "points_in", "mosaic", "neighbour_frames", "png"]
