"""course_lib.viz, chapter 02 figures: margin plot and slider, ROC curves, 2-D snapshots, live display.

Headless (MPLBACKEND=Agg from conftest) and fast: a few hundred points each.
"""
import re

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib import viz  # noqa: E402
from course_lib.evaluate import verification_roc  # noqa: E402
from course_lib.losses import contrastive_loss_grad  # noqa: E402


pytestmark = pytest.mark.usefixtures("headless_plots")


def _pairs(n=400, seed=0):
    """Distances of n pairs: positives near 0.5, negatives spread around 1.2; one positive at D = 0
    (no gradient) and one negative exactly at the margin (no gradient either)."""
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.4
    d = np.where(same, rng.gamma(2.0, 0.25, n), rng.gamma(4.0, 0.3, n))
    same[0], d[0] = True, 0.0
    same[1], d[1] = False, 1.0
    return d, same


def _expected_active(d, same, margin, squared):
    z1 = torch.as_tensor(d, dtype=torch.float64)[:, None]
    grad = contrastive_loss_grad(z1, torch.zeros_like(z1), torch.as_tensor(same), margin, squared)
    return (grad != 0).numpy()


def _offsets(ax, gid):
    found = [c for c in ax.collections if c.get_gid() == gid]
    return np.concatenate([c.get_offsets() for c in found]) if found else np.zeros((0, 2))


# ------------------------------------------------------------------------------ margin plot
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("margin", [0.6, 1.0, 1.7])
def test_plot_margin_highlights_exactly_the_pairs_with_gradient(margin, squared):
    d, same = _pairs()
    active = _expected_active(d, same, margin, squared)
    fig = viz.plot_margin(d, same, margin=margin, squared_hinge=squared)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    top, bottom = fig.axes
    counts = {gid: len(_offsets(top, gid)) for gid in ("active-positive", "idle-positive", "active-negative", "idle-negative")}
    assert counts["active-positive"] == int((active & same).sum())
    assert counts["active-negative"] == int((active & ~same).sum())
    assert counts["idle-positive"] == int((~active & same).sum()) == 1  # the pair at D = 0
    assert counts["idle-negative"] == int((~active & ~same).sum())
    assert sum(counts.values()) == len(d)
    # the highlighted dots are exactly the active pairs' distances
    np.testing.assert_allclose(np.sort(_offsets(top, "active-negative")[:, 0]), np.sort(d[active & ~same]))
    assert (_offsets(top, "active-negative")[:, 0] < margin).all()
    assert (_offsets(top, "idle-negative")[:, 0] >= margin).all()
    # colours: pulled green, pushed red, idle grey
    colour = {c.get_gid(): to_hex(c.get_facecolor()[0]) for c in top.collections if c.get_gid()}
    assert colour["active-positive"] == to_hex(viz.PULL_COLOR)
    assert colour["active-negative"] == to_hex(viz.PUSH_COLOR)
    assert colour["idle-negative"] == to_hex(viz.IDLE_COLOR)
    # the title counts them
    title = top.get_title()
    n_active = int(active.sum())
    assert f"{n_active} of {len(d)} pairs give gradient" in title
    assert f"negatives {int((active & ~same).sum())}/{int((~same).sum())}" in title
    assert ("squared" in title) == squared
    # the margin line sits at α
    (line,) = [l for l in top.lines if l.get_gid() == "margin"]
    assert line.get_xdata()[0] == pytest.approx(margin)
    # bottom: N · dJ/dD per pair, from the library's gradient
    force = np.concatenate([_offsets(bottom, g) for g in ("active-positive", "idle-positive", "active-negative", "idle-negative")])
    z1 = torch.as_tensor(d, dtype=torch.float64)[:, None]
    expected = contrastive_loss_grad(z1, torch.zeros_like(z1), torch.as_tensor(same), margin, squared).numpy() * len(d)
    np.testing.assert_allclose(np.sort(force[:, 1]), np.sort(expected), atol=1e-9)


def test_plot_margin_into_one_axes_and_counts_shrink_with_the_margin():
    d, same = _pairs()
    fig, ax = plt.subplots()
    assert viz.plot_margin(d, same, margin=0.8, ax=ax) is fig and len(fig.axes) == 1
    pushed = [viz.margin_summary(d, same, m)["active_negatives"] for m in (2.0, 1.0, 0.5, 0.0)]
    assert pushed == sorted(pushed, reverse=True) and pushed[-1] == 0
    s = viz.margin_summary(torch.as_tensor(d), torch.as_tensor(same).int(), 1.0)
    assert s["pairs"] == len(d) and s["positives"] + s["negatives"] == len(d)
    assert s["active"] == s["active_positives"] + s["active_negatives"]
    with pytest.raises(ValueError, match="same must have shape"):
        viz.plot_margin(d, same[:-1])
    with pytest.raises(ValueError, match=">= 0"):
        viz.plot_margin(-d, same)


def _count(text, what):
    return int(re.search(rf"(\d+)/\d+ {what}", text).group(1))


def test_margin_explorer_builds_and_redraws_on_the_slider():
    widgets = pytest.importorskip("ipywidgets")
    d, same = _pairs(300)
    w = viz.margin_explorer(d, same, margin=1.0)
    assert isinstance(w, widgets.Widget)
    assert isinstance(w.slider, widgets.FloatSlider) and w.slider.value == 1.0 and w.slider.max >= 2.0
    first = w.image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    active = _expected_active(d, same, 1.0, False)
    assert f"{int(active.sum())} of {len(d)} pairs give gradient" in w.summary.value
    assert _count(w.summary.value, "negatives") == int((active & ~same).sum())
    w.slider.value = 0.4  # fewer negatives inside the margin
    assert w.image.value != first
    assert _count(w.summary.value, "negatives") == int((_expected_active(d, same, 0.4, False) & ~same).sum())
    w.squared.value = True  # the same pairs are active with the squared hinge (only the force changes)
    assert _count(w.summary.value, "negatives") == int((_expected_active(d, same, 0.4, True) & ~same).sum())
    assert not plt.get_fignums()  # each redraw closed its figure


# ------------------------------------------------------------------------------------- ROC
def test_plot_roc_draws_each_curve_with_its_auc():
    g = torch.Generator().manual_seed(0)
    same = torch.rand(200, generator=g) < 0.5
    x1 = torch.randn(200, 4, generator=g)
    x2 = x1 + torch.where(same, 0.3, 1.5)[:, None] * torch.randn(200, 4, generator=g)
    good = verification_roc(x1, x2, same)
    bad = verification_roc(x1, torch.randn(200, 4, generator=g), same)
    fig = viz.plot_roc({"trained": good, "random": bad})
    ax = fig.axes[0]
    curves = {l.get_gid(): l for l in ax.lines}
    assert {"chance", "roc-trained", "roc-random"} <= set(curves)
    np.testing.assert_allclose(curves["roc-trained"].get_xdata(), good["fpr"])
    np.testing.assert_allclose(curves["roc-trained"].get_ydata(), good["tpr"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"trained (AUC {good['auc']:.3f})" in labels and f"random (AUC {bad['auc']:.3f})" in labels
    assert good["auc"] > 0.8 > bad["auc"]
    one = viz.plot_roc(good, title=None)  # a single dict works too
    assert [l.get_gid() for l in one.axes[0].lines] == ["chance", "roc"]
    with pytest.raises(ValueError, match="verification_roc"):
        viz.plot_roc({})


# ---------------------------------------------------------------------------- 2-D snapshots
def test_plot_embedding_snapshots_one_panel_per_epoch():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    snaps = {e: torch.rand(60, 2, generator=g) * s for e, s in ((0, 0.35), (1, 1.0), (5, 10.0))}
    for e, s in ((0, 0.35), (1, 1.0), (5, 10.0)):
        snaps[e][0], snaps[e][1] = 0.0, s  # each panel exactly s wide
    fig = viz.plot_embedding_snapshots(snaps, labels, classes=["a", "b", "c"], ncols=2, margin=1.0, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 3  # the empty 4th cell is removed
    assert [ax.get_title() for ax in fig.axes] == ["epoch 0", "epoch 1", "epoch 5"]
    for ax, (length, name) in zip(fig.axes, [(0.125, "α/8"), (0.25, "α/4"), (1.0, "α")]):
        assert sum(len(c.get_offsets()) for c in ax.collections) == 60
        assert ax.get_legend() is None
        (bar,) = [l for l in ax.lines if l.get_gid() == "margin-bar"]  # the margin, halved until it fits
        assert np.ptp(bar.get_xdata()) == pytest.approx(length)
        assert [t.get_text() for t in ax.texts if t.get_gid() == "margin-label"] == [name]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        viz.plot_embedding_snapshots({0: torch.randn(60, 3)}, labels)


def test_show_live_displays_then_updates_and_closes(monkeypatch):
    import IPython.display

    calls = []

    class Handle:
        def update(self, obj):
            calls.append(("update", obj))

    def display(obj, display_id=False):
        calls.append(("display", obj))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    first, second = plt.figure(), plt.figure()
    handle = viz.show_live(first)
    assert viz.show_live(second, handle) is handle
    assert calls == [("display", first), ("update", second)]
    assert not plt.get_fignums()
