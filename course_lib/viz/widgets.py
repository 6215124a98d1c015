"""Interactive pieces for notebooks: a figure that updates in place, a margin slider (ipywidgets)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _checks as check
from .metric import margin_summary, plot_margin


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
    import matplotlib.pyplot as plt
    from IPython.display import display

    if handle is None:
        handle = display(fig, display_id=True)
    else:
        handle.update(fig)
    plt.close(fig)
    return handle


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
    import matplotlib.pyplot as plt

    d = check.to_numpy(distances).astype(np.float64).reshape(-1)
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


__all__ = ["show_live", "margin_explorer"]
