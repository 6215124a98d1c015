"""The embedding explorer of chapter 09 (ipywidgets): one encoder's 2-D map at a time, a selection rectangle,
a query point and its nearest neighbours in feature space.

Built only from the core widgets that Colab (ipywidgets 7), JupyterLab and Notebook (ipywidgets 8) render
without a custom widget manager or a CDN: the figures are PNG images drawn by matplotlib into ``Image``
widgets. Every map and neighbour list is computed once (:class:`~course_lib.viz.explorer_data.ExplorerData`),
so a control that returns to a setting already seen only redraws. Displayed where no kernel runs (an
executed copy, nbconvert, GitHub), the explorer shows a still PNG of its first view instead.
"""
from __future__ import annotations

import base64
import functools
import io
import time
from typing import Mapping, Optional, Sequence

import matplotlib
import numpy as np

from .. import _checks as check
from .explorer_data import PROJECTIONS, ExplorerData, mosaic, neighbour_frames, png, points_in, rectangle
from .style import OTHER_COLOR, SAME_COLOR, _name

LABELS = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def draw_map(coords, labels, classes=None, correct=None, rect=None, query=None, neighbours=(), title="",
             size=(5.6, 4.4), dpi=80) -> bytes:
    """PNG of one map: points coloured by class (or green/red by ``correct``), the selection ``rect``
    ``(x0, x1, y0, y1)`` dashed, the ``query`` as a star and its feature-space ``neighbours`` ringed.

    Drawn on a bare Agg figure with one scatter and a legend of proxies, so a redraw takes tens of ms."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.01, 0.01, 0.71, 0.92))
    if correct is not None:
        right = np.asarray(correct, bool)
        colors = np.where(right[:, None], matplotlib.colors.to_rgba_array(SAME_COLOR), matplotlib.colors.to_rgba_array(OTHER_COLOR))
        legend = [(SAME_COLOR, "kNN right"), (OTHER_COLOR, "kNN wrong")]
    else:
        values, index = np.unique(labels, return_inverse=True)
        cmap = matplotlib.colormaps["tab10" if len(values) <= 10 else "tab20"]
        colors = cmap(index % cmap.N)
        legend = [(cmap(i % cmap.N), _name(c, classes)) for i, c in enumerate(values)][:20]
    ax.scatter(coords[:, 0], coords[:, 1], s=9, c=colors, linewidths=0, alpha=0.75)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=name) for c, name in legend]
    if rect is not None:
        x0, x1, y0, y1 = rect
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, linestyle="--", linewidth=1.2, edgecolor="black"))
    if len(neighbours):
        nb = coords[np.asarray(neighbours)]
        ax.scatter(nb[:, 0], nb[:, 1], s=70, facecolors="none", edgecolors="black", linewidths=1.2)
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="black", label="neighbours"))
    if query is not None:
        ax.scatter(*coords[query], s=260, marker="*", color="gold", edgecolors="black", linewidths=1.2)
        handles.append(Line2D([], [], marker="*", linestyle="", markersize=12, color="gold", markeredgecolor="black", label="query"))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.73, 0.5), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches=None)
    return buffer.getvalue()


def _widgets():
    import ipywidgets

    return ipywidgets


class _Controls:
    """The explorer's controls, one attribute each (built lazily: ipywidgets is imported only here)."""

    def __init__(self, names: Sequence[str], n: int, has_correct: bool):
        w = _widgets()
        wide = w.Layout(width="330px")
        self.encoder = w.Dropdown(options=list(names), description="encoder", layout=wide)
        self.projection = w.ToggleButtons(options=[(LABELS[m], m) for m in PROJECTIONS], description="projection",
                                          style={"button_width": "70px"})
        self.param = w.IntSlider(value=PROJECTIONS["tsne"][1], min=5, max=50, step=1, description="perplexity",
                                 continuous_update=False, layout=wide)
        self.colour = w.ToggleButtons(options=[("class", "class"), ("kNN right/wrong", "correct")], description="colour by",
                                      disabled=not has_correct, style={"button_width": "135px"})
        self.x_range = w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.01, description="select x",
                                          continuous_update=False, layout=wide)
        self.y_range = w.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.01, description="select y",
                                          continuous_update=False, layout=wide)
        self.random = w.Button(description="random point", icon="random")
        self.next = w.Button(description="next in selection", icon="step-forward")
        self.query = w.BoundedIntText(value=0, min=0, max=n - 1, description="query #", layout=w.Layout(width="170px"))
        self.status = w.HTML()
        self.map = w.Image(format="png")
        self.strip = w.Image(format="png")
        self.selection = w.Image(format="png")

    def layout(self):
        w = _widgets()
        left = w.VBox([self.map, self.x_range, self.y_range])
        right = w.VBox([w.HTML("<b>query and its nearest neighbours in feature space</b> (green: same class)"), self.strip,
                        w.HBox([self.random, self.next, self.query]),
                        w.HTML("<b>in the selection rectangle</b>"), self.selection])
        return [w.HBox([self.encoder, self.param]), w.HBox([self.projection, self.colour]), self.status, w.HBox([left, right])]


class EmbeddingExplorer:
    """Mixin holding the explorer's state and drawing; :func:`embedding_explorer` makes it a ``VBox``."""

    def _setup(self, data: ExplorerData, labels, images, classes, correct, seed):
        self.data, self.labels, self.images, self.classes = data, labels, images, classes
        self.correct = correct
        self.rng = np.random.default_rng(seed)
        self.params = {m: d for m, (_, d, _, _) in PROJECTIONS.items()}  # each projection keeps its own value
        self.c = _Controls(data.names, data.n, correct is not None)
        self._quiet = False
        for control in (self.c.encoder, self.c.projection, self.c.param, self.c.colour, self.c.x_range,
                        self.c.y_range, self.c.query):
            control.observe(self._changed, names="value")
        self.c.random.on_click(lambda _: self.pick(int(self.rng.integers(self.data.n))))
        self.c.next.on_click(lambda _: self.next_in_selection())
        self.children = self.c.layout()
        self.redraw()

    # ---------------------------------------------------------------------------------- state
    @property
    def encoder(self) -> str:
        return self.c.encoder.value

    @property
    def coords(self) -> np.ndarray:
        """(N, 2) coordinates of the map on screen (from the cache after its first visit)."""
        method = self.c.projection.value
        return self.data.coordinates(self.encoder, method, self.params[method] if PROJECTIONS[method][0] else None)

    @property
    def selected(self) -> np.ndarray:
        """Indices of the points inside the selection rectangle (ascending)."""
        return points_in(self.coords, self.c.x_range.value, self.c.y_range.value)

    @property
    def neighbours(self) -> np.ndarray:
        """(k,) the query's nearest other points in the current encoder's feature space, nearest first."""
        return self.data.neighbours(self.encoder)[self.c.query.value]

    def pick(self, index: int) -> None:
        """Make point ``index`` the query (the same as typing it into the query box)."""
        self.c.query.value = int(index)

    def next_in_selection(self) -> None:
        """The next selected point after the current query (wrapping round), or a note when none is selected."""
        selected = self.selected
        if len(selected) == 0:
            self.c.status.value = "<i>no point in the selection rectangle: widen the select x / select y sliders</i>"
            return
        after = selected[selected > self.c.query.value]
        self.pick(after[0] if len(after) else selected[0])

    # -------------------------------------------------------------------------------- drawing
    def _changed(self, change) -> None:
        if self._quiet:
            return
        if change["owner"] is self.c.projection:
            self._quiet = True  # switching the projection also switches the slider: one redraw, not two
            name, value, _, _ = PROJECTIONS[change["new"]]
            self.c.param.disabled = name is None
            self.c.param.description = name or "(no parameter)"
            self.c.param.value = value if name is None else self.params[change["new"]]
            self._quiet = False
        elif change["owner"] is self.c.param and PROJECTIONS[self.c.projection.value][0]:
            self.params[self.c.projection.value] = int(change["new"])
        self.redraw()

    def redraw(self) -> None:
        """Draw the map, the neighbour strip, the selection and the status line for the current controls."""
        coords, query, neighbours = self.coords, self.c.query.value, self.neighbours
        method = self.c.projection.value
        param = PROJECTIONS[method][0]
        title = f"{self.encoder}: {LABELS[method]}" + (f" ({param} {self.params[method]})" if param else "")
        correct = self.correct[self.encoder] if self.correct is not None and self.c.colour.value == "correct" else None
        full = tuple(self.c.x_range.value) == (0.0, 1.0) and tuple(self.c.y_range.value) == (0.0, 1.0)
        rect = None if full else rectangle(coords, self.c.x_range.value, self.c.y_range.value)
        self.c.map.value = draw_map(coords, self.labels, self.classes, correct, rect, query, neighbours, title)
        strip = np.concatenate([[query], neighbours])
        self.c.strip.value = png(mosaic(self.images[strip], neighbour_frames(self.labels, query, neighbours)))
        selected = self.selected
        shown = selected[:24]
        cmap = matplotlib.colormaps["tab10"]
        frames = [cmap(int(np.searchsorted(np.unique(self.labels), self.labels[i])) % 10) for i in shown]
        blank = np.full((1, *self.images.shape[1:]), 255, np.uint8)
        self.c.selection.value = png(mosaic(self.images[shown] if len(shown) else blank, frames or ["white"], cols=8, scale=1))
        same = int(np.sum(self.labels[neighbours] == self.labels[query]))
        self.c.status.value = (f"query #{query} ({_name(self.labels[query], self.classes)}): <b>{same} of {len(neighbours)}</b> "
                               f"nearest neighbours in feature space share its class · {len(selected)} of {self.data.n} "
                               f"points in the selection{' (first 24 shown)' if len(selected) > 24 else ''}")

    # ------------------------------------------------------------------------- without kernel
    def snapshot(self) -> bytes:
        """PNG of the current view (map and neighbour strip), for copies of the notebook without a kernel."""
        from PIL import Image

        parts = [Image.open(io.BytesIO(bytes(v))).convert("RGB") for v in (self.c.map.value, self.c.strip.value)]
        width = max(p.width for p in parts)
        canvas = Image.new("RGB", (width, sum(p.height for p in parts) + 8), "white")
        canvas.paste(parts[0], (0, 0))
        canvas.paste(parts[1], (0, parts[0].height + 8))
        buffer = io.BytesIO()
        canvas.save(buffer, format="png")
        return buffer.getvalue()

    def _repr_mimebundle_(self, **kwargs):
        parent = getattr(super(), "_repr_mimebundle_", None)  # ipywidgets 8; 7 displays in _ipython_display_
        if parent is not None:
            data = dict(parent(**kwargs) or {})
        else:
            data = {"text/plain": "EmbeddingExplorer", WIDGET_VIEW: {"version_major": 2, "version_minor": 0,
                                                                     "model_id": self._model_id}}
            self._handle_displayed(**kwargs)
        data["image/png"] = base64.b64encode(self.snapshot()).decode("ascii")  # what a page without a kernel shows
        return data

    def _ipython_display_(self, **kwargs):
        from IPython.display import display

        display(self._repr_mimebundle_(**kwargs), raw=True)

    # ------------------------------------------------------------------------------- latency
    def measure_latency(self, repeats: int = 5, seed: int = 0) -> dict:
        """Move every control ``repeats`` times and return ``{what: median milliseconds}`` from the change to the
        redrawn images. The encoder switches between the current one and the next, whose maps are computed
        first, so what is timed is a visit to a cached map (the first visit of a t-SNE map takes seconds)."""
        rng = np.random.default_rng(seed)
        start = (self.encoder, self.c.projection.value, self.c.query.value)
        names = self.data.names
        pair = [start[0], names[(names.index(start[0]) + 1) % len(names)]]  # switch between two encoders
        for name in pair:  # warm the cache: the first visit of a map computes it (seconds for t-SNE)
            self.data.coordinates(name, self.c.projection.value, self.params[self.c.projection.value] or None)
            self.data.neighbours(name)
        moves = {
            "encoder (map cached)": lambda i: setattr(self.c.encoder, "value", pair[(i + 1) % 2]),
            "colour by": lambda i: setattr(self.c.colour, "value", ("class", "correct")[i % 2]),
            "selection rectangle": lambda i: setattr(self.c.x_range, "value", tuple(sorted(rng.uniform(0, 1, 2).round(2)))),
            "query (random point)": lambda i: self.c.random.click(),
        }
        out = {}
        for what, move in moves.items():
            times = []
            for i in range(repeats):
                t0 = time.perf_counter()
                move(i)
                times.append((time.perf_counter() - t0) * 1e3)
            out[what] = float(np.median(times))
        self.c.encoder.value, self.c.x_range.value, self.c.colour.value = start[0], (0.0, 1.0), "class"
        self.c.query.value = start[2]
        return out


@functools.lru_cache(maxsize=None)
def _widget_class():
    """The explorer as a ``VBox`` (made once, when ipywidgets is first needed)."""
    return type("EmbeddingExplorer", (EmbeddingExplorer, _widgets().VBox), {"__module__": __name__})


def embedding_explorer(features: Mapping[str, object], labels, images, classes: Optional[Sequence[str]] = None,
                       correct: Optional[Mapping[str, object]] = None, k: int = 8, metric: str = "cosine", seed: int = 0):
    """An interactive map of ``{name: (N, D)}`` features of the same N points (ipywidgets).

    ``labels`` (N,), ``images`` uint8 (N, H, W, 3) of those points, ``classes`` their names; ``correct``
    ``{name: (N,) bool}`` (e.g. whether the kNN classifier got each point right) enables colouring by it.
    Pick the encoder and the projection (t-SNE perplexity, UMAP neighbours, PCA); select a rectangle of the
    map with the two range sliders to see its images; pick a query (random, next in the selection, or by
    index) to see its ``k`` nearest neighbours in feature space (``metric``), ringed on the map.

    Returns the widget (a ``VBox``: make it a cell's last expression). Its parts are ``explorer.c.<name>``,
    its numbers ``explorer.data`` (cached maps and neighbour lists); ``measure_latency()`` times the updates.
    """
    data = ExplorerData(features, k=k, metric=metric, seed=seed)
    y = check.label_array(labels, data.n)
    pictures = check.to_numpy(check.images(images))
    if len(pictures) != data.n:
        raise ValueError(f"images must hold the N = {data.n} points of the features, got {len(pictures)}")
    flags = None
    if correct is not None:
        flags = {name: check.label_array(correct[name], data.n).astype(bool) for name in data.names}
    explorer = _widget_class()()
    explorer._setup(data, y, pictures, classes, flags, seed)
    return explorer


__all__ = ["EmbeddingExplorer", "embedding_explorer", "draw_map"]
