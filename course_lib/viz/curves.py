"""Numbers over training and between models: training curves, labelled bars, ROC curves."""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import matplotlib
import numpy as np

from .. import _checks as check
from .style import _style


def _history_columns(history) -> dict:
    """``{name: list}`` from a mapping of lists, or from a list of per-epoch dicts."""
    if isinstance(history, Mapping) or hasattr(history, "items"):
        return {k: list(v) for k, v in history.items()}
    rows = list(history)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k) for row in rows] for k in keys}


def _values(values) -> np.ndarray:
    """Per-epoch values as floats, ``None`` (a metric not computed that epoch) as NaN."""
    return np.array([np.nan if v is None else float(check.to_numpy(v)) for v in values], dtype=float)


def plot_history(history, keys: Optional[Sequence] = None, ax=None, title: Optional[str] = None):
    """Training curves: one subplot per metric against ``history["epoch"]``.

    ``history``: ``{"epoch": [...], "loss": [...], "knn_acc": [...], ...}`` (or a list of per-epoch
    dicts). ``None``/NaN values, metrics not computed in an epoch, are skipped. ``keys`` picks
    and orders the metrics (default: all but ``epoch``); a tuple of names shares one subplot.
    With ``ax``, every metric goes on that one axes. Returns the figure.
    """
    import matplotlib.pyplot as plt

    cols = _history_columns(history)
    n = max((len(v) for v in cols.values()), default=0)
    epochs = _values(cols["epoch"]) if "epoch" in cols else np.arange(1, n + 1, dtype=float)
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
                v = _values(cols[key])
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
    import matplotlib.pyplot as plt

    names = [str(k) for k in values]
    heights = [float(check.to_numpy(v)) for v in values.values()]
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
    import matplotlib.pyplot as plt

    curves = _roc_curves(rocs)
    with _style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(4.8, 4.4), layout="constrained")
        fig = ax.figure
        if chance:
            ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance (AUC 0.5)", gid="chance")
        for name, roc in curves.items():
            fpr, tpr = check.to_numpy(roc["fpr"]).astype(float), check.to_numpy(roc["tpr"]).astype(float)
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


__all__ = ["plot_history", "plot_bars", "plot_roc"]
