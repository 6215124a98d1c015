"""course_lib.viz.ssl, chapter 08's figures: the cross-correlation C of Barlow Twins and the collapse curves.

C is checked against the loss it is made for (the loss computed from C by its formula equals
``barlow_twins_loss``) and against a loop over the entries; the figures are checked for what they
draw (the matrix shown, its colour scale centred at 0, labelled axes, one curve per run, the 1/√d line).
"""
import math

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib import viz  # noqa: E402
from course_lib.losses import barlow_twins_loss  # noqa: E402

pytestmark = pytest.mark.usefixtures("headless_plots")


def _views(n=64, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = 3.0 * torch.randn(n, d, generator=g, dtype=torch.float64) + 2.0     # not centred, not unit variance
    z2 = z1 + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)      # a correlated second view
    return z1, z2


def test_cross_correlation_matches_a_loop_over_the_entries():
    z1, z2 = _views()
    c = viz.cross_correlation(z1, z2)
    n, d = z1.shape
    expected = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d):
        a = (z1[:, i] - z1[:, i].mean()) / math.sqrt(z1[:, i].var(unbiased=False) + 1e-5)
        for j in range(d):
            b = (z2[:, j] - z2[:, j].mean()) / math.sqrt(z2[:, j].var(unbiased=False) + 1e-5)
            expected[i, j] = (a * b).sum() / n
    assert c.shape == (d, d) and c.dtype == torch.float32
    torch.testing.assert_close(c.double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lambd", [5e-3, 0.1, 1.0])
def test_the_barlow_loss_written_with_this_c_is_the_library_loss(lambd):
    z1, z2 = _views(seed=1)
    c = viz.cross_correlation(z1, z2).double()
    off = ~torch.eye(len(c), dtype=torch.bool)
    by_formula = ((1 - c.diagonal()) ** 2).sum() + lambd * (c[off] ** 2).sum()
    torch.testing.assert_close(by_formula, barlow_twins_loss(z1, z2, lambd=lambd).double(), atol=1e-4, rtol=1e-4)


def test_cross_correlation_of_identical_views_has_a_unit_diagonal():
    z1, _ = _views(n=500, d=6, seed=2)
    stats = viz.cross_correlation_stats(viz.cross_correlation(z1, z1))
    assert stats["diagonal_mean"] == pytest.approx(1.0, abs=1e-5)


def test_stats_of_the_identity_and_of_a_known_matrix():
    assert viz.cross_correlation_stats(np.eye(5)) == {"diagonal_mean": 1.0, "off_diagonal_abs_mean": 0.0}
    c = np.array([[0.5, -0.2], [0.4, 0.7]])
    stats = viz.cross_correlation_stats(c)
    assert stats["diagonal_mean"] == pytest.approx(0.6) and stats["off_diagonal_abs_mean"] == pytest.approx(0.3)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        viz.cross_correlation(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="N >= 2"):
        viz.cross_correlation(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"\(D, D\)"):
        viz.cross_correlation_stats(np.zeros((3, 4)))


def test_heat_map_shows_the_top_left_block_on_a_scale_centred_at_zero():
    c = np.random.default_rng(0).uniform(-1, 1, (100, 100))
    np.fill_diagonal(c, 1.0)
    fig = viz.plot_cross_correlation(c, dims=40, title="start")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    image = ax.get_images()[0]
    np.testing.assert_array_equal(image.get_array(), c[:40, :40])
    low, high = image.get_clim()
    assert low == -high == -1.0 and image.get_cmap().name == "RdBu_r"
    stats = viz.cross_correlation_stats(c)
    assert ax.get_xlabel() and ax.get_ylabel()
    assert "start" in ax.get_title() and f"{stats['diagonal_mean']:.2f}" in ax.get_title()
    assert "first 40 of 100" in ax.get_title()
    assert len(fig.axes) == 2  # the heat map and its colour bar
    plt.close(fig)


def test_heat_map_into_a_given_axes_without_colour_bar():
    fig, axes = plt.subplots(1, 2)
    out = viz.plot_cross_correlation(np.eye(8), ax=axes[1], dims=None, colorbar=False)
    assert out is fig and len(fig.axes) == 2
    np.testing.assert_array_equal(axes[1].get_images()[0].get_array(), np.eye(8))
    plt.close(fig)


def test_collapse_curves_one_per_run_and_the_reference_line():
    d = 64
    histories = {
        "full": {"epoch": [1, 2, 3], "feature_std": [0.08, 0.09, 0.1], "feature_std_ref": [1 / 8] * 3},
        "collapsed": {"epoch": [1, 2, 3], "feature_std": [0.01, 1e-3, float("nan")], "feature_std_ref": [1 / 8] * 3},
    }
    fig = viz.plot_collapse(histories, d=d)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == 3 and ax.get_yscale() == "log"
    np.testing.assert_allclose(lines[0].get_ydata(), [0.08, 0.09, 0.1])
    np.testing.assert_allclose(lines[1].get_ydata(), [0.01, 1e-3])  # the NaN epoch is skipped
    np.testing.assert_allclose(lines[2].get_ydata(), [1 / math.sqrt(d)] * 2)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("full") and labels[1].startswith("collapsed") and "1/√d" in labels[2]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel()
    plt.close(fig)
    # without d, the reference comes from the histories' feature_std_ref
    fig = viz.plot_collapse(histories)
    np.testing.assert_allclose(fig.axes[0].get_lines()[-1].get_ydata(), [1 / 8] * 2)
    plt.close(fig)


def test_collapse_needs_histories_and_a_reference():
    with pytest.raises(ValueError, match="empty"):
        viz.plot_collapse({})
    with pytest.raises(ValueError, match="pass d"):
        viz.plot_collapse({"run": {"epoch": [1], "feature_std": [0.1]}})


def test_model_cross_correlation_uses_batch_statistics_and_leaves_the_model_alone():
    import copy

    from course_lib.methods import build_method
    from course_lib.models import SmallConvNet

    torch.manual_seed(0)
    model = build_method("barlow", SmallConvNet((4, 8)), projector_hidden=16, projector_dim=16).eval()
    x_a, x_b = torch.randn(32, 3, 16, 16), torch.randn(32, 3, 16, 16)
    before = copy.deepcopy(model.state_dict())
    c = viz.model_cross_correlation(model, x_a, x_b)
    assert not model.training  # its mode is given back
    for name, value in model.state_dict().items():  # running statistics untouched
        torch.testing.assert_close(value, before[name])
    reference = copy.deepcopy(model).train()  # what the loss sees: BatchNorm with the batch's statistics
    with torch.no_grad():
        expected = viz.cross_correlation(reference.projector(reference.backbone(x_a)),
                                         reference.projector(reference.backbone(x_b)))
    torch.testing.assert_close(c, expected)
    assert c.shape == (16, 16)
