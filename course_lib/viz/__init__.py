"""Figures for the course: image grids, 2-D maps of embeddings, retrievals, training curves, bars.

Every function draws with matplotlib and returns the :class:`~matplotlib.figure.Figure`, so a
notebook shows it and a test or script saves it (``fig.savefig(...)``); none calls ``plt.show()``.
Functions that take ``ax=`` draw into that axes instead of a new figure (and return its figure).

Images come as the data module keeps them, ``uint8 (N, H, W, 3)``, or as models see them,
``float (N, 3, H, W)`` in [0, 1]; pass ``denormalize=True`` for batches normalised with the
CIFAR-10 statistics. Tensors may live on any device.

Modules by topic: :mod:`~course_lib.viz.style` (the course's look), :mod:`~course_lib.viz.images`
(grids, retrievals), :mod:`~course_lib.viz.embeddings` (2-D maps, snapshots while training),
:mod:`~course_lib.viz.curves` (training curves, bars, ROC), :mod:`~course_lib.viz.pretext` and
:mod:`~course_lib.viz.reconstruction` (chapter 05's tasks), :mod:`~course_lib.viz.metric` (margins,
angular decision regions), :mod:`~course_lib.viz.widgets` (sliders, live figures) and
:mod:`~course_lib.viz.source` (:func:`show_source`: a library function's code in a notebook).

Nothing heavy is imported with the package: pyplot when a figure is drawn, scikit-learn and UMAP
when a map needs them, ipywidgets and IPython when a widget or display does.
"""
from __future__ import annotations

from ..distances import nearest_neighbours
from . import curves, embeddings, images, metric, source, style, widgets
from .curves import plot_bars, plot_history, plot_roc
from .embeddings import METHODS, embed_2d, plot_embedding_2d, plot_embedding_snapshots
from .images import show_class_grid, show_images, show_retrievals, to_display
from .metric import margin_summary, plot_circle_regions, plot_margin
from .source import show_source
from .style import (
    COURSE_STYLE, IDLE_COLOR, OTHER_COLOR, PULL_COLOR, PUSH_COLOR, SAME_COLOR, _style, use_course_style,
)
from .widgets import margin_explorer, show_live
from .ssl import cross_correlation, cross_correlation_stats, model_cross_correlation, plot_collapse, plot_cross_correlation  # noqa: E402,F401  (chapter 08)
from .augmentations import augmentation_stages, gallery_views, show_augmentation_gallery  # noqa: E402,F401  (chapter 06)
from .pretext import show_clusters, show_context_pair, show_jigsaw, show_rotations  # noqa: E402,F401  (chapter 05)
from .reconstruction import show_ab_bins, show_reconstructions  # noqa: E402,F401  (chapter 05)
from .compare import map_coordinates, plot_confusions, plot_maps  # noqa: E402,F401  (chapter 09)

__all__ = [
    "COURSE_STYLE", "use_course_style", "to_display", "show_images", "show_class_grid",
    "show_retrievals", "nearest_neighbours", "embed_2d", "plot_embedding_2d", "plot_history",
    "plot_bars", "plot_circle_regions", "show_live", "plot_embedding_snapshots", "plot_roc",
    "margin_summary", "plot_margin", "margin_explorer", "show_source", "embedding_explorer",
]
from .explorer import embedding_explorer  # noqa: E402,F401  (chapter 09)
