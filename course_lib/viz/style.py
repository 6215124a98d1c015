"""The course's look: a few rcParams, the colours every figure shares, and class names for labels.

Only ``matplotlib`` itself is imported here (for its colour maps); pyplot waits for a figure.
"""
from __future__ import annotations

import contextlib

import matplotlib

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
#: Colours of :func:`~course_lib.viz.plot_margin`: pairs that give gradient, and those that do not.
PULL_COLOR = SAME_COLOR  # a positive pair, pulled together
PUSH_COLOR = OTHER_COLOR  # a negative pair inside the margin, pushed apart
IDLE_COLOR = "#b0b0b0"  # a pair whose gradient is zero


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


def _name(label, classes) -> str:
    if classes is not None and not isinstance(label, str):
        return str(classes[int(label)])
    return str(label)


__all__ = ["COURSE_STYLE", "SAME_COLOR", "OTHER_COLOR", "PULL_COLOR", "PUSH_COLOR", "IDLE_COLOR", "use_course_style"]
