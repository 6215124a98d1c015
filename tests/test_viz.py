"""course_lib.viz: every function returns a Figure with the expected content; drawn headless."""
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib import viz  # noqa: E402
from course_lib.data import normalize_batch  # noqa: E402
from course_lib.distances import nearest_neighbours  # noqa: E402

CLASSES = ("airplane", "automobile", "bird")


pytestmark = pytest.mark.usefixtures("headless_plots")


def _images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 8, 8, 3), generator=g, dtype=torch.uint8)


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def _clusters(n_per=20, dim=10, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.eye(3, dim) * 20.0
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(3), n_per)


# ------------------------------------------------------------------------------------ images
def test_show_images_uint8_grid_with_captions():
    fig = viz.show_images(_images(10), labels=torch.tensor([0, 1, 2] * 3 + [0]), classes=CLASSES, nrow=4, title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.images) == 10
    assert _texts(ax) == [CLASSES[i] for i in [0, 1, 2] * 3 + [0]]
    assert ax.get_title() == "t"
    extents = np.array([im.get_extent() for im in ax.images])
    assert len(np.unique(extents[:, 0])) == 4  # 4 columns
    assert len(np.unique(extents[:, 3])) == 3  # 3 rows


def test_show_images_float_nchw_and_denormalize_round_trip():
    x = torch.rand(6, 3, 8, 8)
    shown = viz.to_display(normalize_batch(x), denormalize=True)  # (N, H, W, 3)
    np.testing.assert_allclose(shown, x.permute(0, 2, 3, 1).numpy(), atol=1e-5)
    fig = viz.show_images(x, labels=["a", "b", "c", "d", "e", "f"])
    assert len(fig.axes[0].images) == 6 and _texts(fig.axes[0]) == list("abcdef")
    np.testing.assert_allclose(viz.to_display(_images(2))[0], _images(2)[0].numpy() / 255.0)


def test_show_images_into_given_axes_and_bad_shape():
    fig, (a, b) = plt.subplots(1, 2)
    assert viz.show_images(_images(4), ax=b) is fig
    assert len(b.images) == 4 and len(a.images) == 0
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        viz.show_images(torch.rand(4, 5, 8, 8))
    with pytest.raises(ValueError, match="denormalize"):
        viz.show_images(_images(2), denormalize=True)


def test_show_class_grid_one_row_per_class():
    labels = torch.arange(30) % 3
    fig = viz.show_class_grid(_images(30), labels, CLASSES, per_class=4)
    ax = fig.axes[0]
    assert len(ax.images) == 12
    assert _texts(ax) == list(CLASSES)
    rows = np.array([im.get_extent()[3] for im in ax.images])
    assert [int((rows == r).sum()) for r in np.unique(rows)] == [4, 4, 4]


# -------------------------------------------------------------------------------- retrievals
def test_show_retrievals_borders_match_labels():
    gallery_labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    query_labels = torch.tensor([0, 2])
    nn = torch.tensor([[0, 1, 3], [2, 6, 4]])
    fig = viz.show_retrievals(_images(2, 1), _images(7), nn, query_labels, gallery_labels, CLASSES, title="pixels")
    ax = fig.axes[0]
    assert len(ax.images) == 2 * (1 + 3)
    borders = {p.get_gid(): to_hex(p.get_edgecolor()) for p in ax.patches if p.get_gid()}
    green, red = to_hex(viz.SAME_COLOR), to_hex(viz.OTHER_COLOR)
    assert green != red
    for q in range(2):
        for j in range(3):
            same = gallery_labels[nn[q, j]] == query_labels[q]
            assert borders[f"neighbour-{q}-{j}"] == (green if same else red)
    assert "2/3" in _texts(ax) and "1/3" in _texts(ax)  # same-class neighbours per query


def test_show_retrievals_without_labels_has_no_borders():
    feats = torch.randn(9, 4)
    nn = nearest_neighbours(feats[:3], feats, k=2, exclude_self=True)
    fig = viz.show_retrievals(_images(3), _images(9), nn)
    assert len(fig.axes[0].images) == 3 * 3 and not fig.axes[0].patches
    with pytest.raises(ValueError, match=r"\(Q, k\)"):
        viz.show_retrievals(_images(3), _images(9), nn[:2])


# -------------------------------------------------------------------------------- embeddings
def test_plot_embedding_pca_separates_clusters():
    x, y = _clusters()
    fig, coords = viz.plot_embedding_2d(x, y, method="pca", classes=CLASSES, return_coords=True)
    assert isinstance(fig, Figure) and coords.shape == (60, 2)
    centres = np.stack([coords[y == c].mean(0) for c in range(3)])
    spread = max(coords[y == c].std(0).max() for c in range(3))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 5 * spread
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(CLASSES)
    assert len(fig.axes[0].collections) == 3


def test_plot_embedding_tsne_caps_perplexity_on_a_small_set():
    x, y = _clusters(n_per=4)  # 12 points: the default perplexity 30 would be refused by sklearn
    fig, coords = viz.plot_embedding_2d(torch.from_numpy(x), torch.from_numpy(y), method="tsne", return_coords=True)
    assert coords.shape == (12, 2) and np.isfinite(coords).all()
    assert fig.axes[0].get_title() == "t-SNE"


def test_plot_embedding_umap_small_input():
    pytest.importorskip("umap")
    x, y = _clusters(n_per=10)
    fig, coords = viz.plot_embedding_2d(x, y, method="umap", n_neighbors=5, return_coords=True)
    assert coords.shape == (30, 2) and np.isfinite(coords).all()


def test_plot_embedding_2d_features_drawn_as_they_are_into_given_axes():
    z = torch.randn(20, 2)
    fig, ax = plt.subplots()
    out, coords = viz.plot_embedding_2d(z, torch.arange(20) % 4, ax=ax, return_coords=True)
    assert out is fig
    np.testing.assert_allclose(coords, z.numpy())
    assert len(ax.collections) == 4


def test_plot_embedding_errors():
    with pytest.raises(ValueError, match="tsne, umap, pca"):
        viz.plot_embedding_2d(np.zeros((5, 3)), np.zeros(5, dtype=int), method="lle")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        viz.plot_embedding_2d(np.zeros(5), np.zeros(5, dtype=int))


# ------------------------------------------------------------------------------ curves, bars
def test_plot_history_skips_missing_points():
    history = {
        "epoch": [1, 2, 3, 4],
        "loss": [2.0, 1.5, 1.2, 1.0],
        "knn_acc": [None, 0.3, float("nan"), torch.tensor(0.5)],
        "lr": [0.1, 0.1, 0.01, 0.001],
    }
    fig = viz.plot_history(history)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    knn_ax = fig.axes[1]
    line = knn_ax.get_lines()[0]
    assert list(line.get_xdata()) == [2, 4] and list(line.get_ydata()) == [0.3, 0.5]
    assert knn_ax.get_title().startswith("knn_acc")


def test_plot_history_groups_keys_and_accepts_records():
    records = [{"epoch": e, "loss": 1 / e, "knn_acc": 0.1 * e, "linear_acc": None} for e in range(1, 5)]
    fig = viz.plot_history(records, keys=["loss", ("knn_acc", "linear_acc")])
    assert len(fig.axes) == 2 and len(fig.axes[1].get_lines()) == 2
    assert len(fig.axes[1].get_lines()[1].get_xdata()) == 0  # never computed: nothing drawn
    with pytest.raises(ValueError, match="no"):
        viz.plot_history(records, keys=["acc"])
    fig, ax = plt.subplots()
    assert viz.plot_history(records, keys=["loss", "knn_acc"], ax=ax) is fig and len(ax.get_lines()) == 2


def test_plot_bars_writes_values_on_bars():
    values = {"pixels": 0.391, "random CNN": torch.tensor(0.476), "supervised CNN": 0.688}
    fig = viz.plot_bars(values, title="linear probe", ylabel="accuracy")
    ax = fig.axes[0]
    assert len(ax.patches) == 3
    assert [t.get_text() for t in ax.get_xticklabels()] == list(values)
    written = [t.get_text() for t in ax.texts]
    assert written == ["0.391", "0.476", "0.688"]
    assert ax.get_title() == "linear probe" and ax.get_ylabel() == "accuracy"


def test_use_course_style_sets_rcparams():
    with matplotlib.rc_context():
        viz.use_course_style()
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["image.interpolation"] == "nearest"


def test_import_is_light():
    code = "import sys, course_lib.viz; assert 'umap' not in sys.modules, 'umap imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_style_context_leaves_other_rcparams_alone():
    """The inline backend turns `interactive` on while a first figure is drawn; the course style
    must not undo that (it would hide every later figure in a notebook)."""
    import matplotlib

    from course_lib import viz

    before = matplotlib.rcParams["lines.linewidth"]
    with viz._style():
        matplotlib.rcParams["interactive"] = not matplotlib.rcParams["interactive"]
        flipped = matplotlib.rcParams["interactive"]
        assert matplotlib.rcParams["lines.linewidth"] == viz.COURSE_STYLE["lines.linewidth"]
    assert matplotlib.rcParams["interactive"] == flipped
    assert matplotlib.rcParams["lines.linewidth"] == before
    matplotlib.rcParams["interactive"] = not flipped
