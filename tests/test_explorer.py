"""The embedding explorer of chapter 09: its neighbour lists equal a brute-force search, its selection is the
rectangle it draws, its maps are cached, and its controls redraw what they say (from Python; the browser test
in tests/test_browser.py clicks the same controls in JupyterLab)."""
import base64

import numpy as np
import pytest
import torch

from course_lib.viz import embedding_explorer
from course_lib.viz.explorer_data import ExplorerData, mosaic, neighbour_frames, points_in, rectangle


def _data(n=60, d=12, c=4, seed=0, encoders=("a", "b")):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    feats = {name: torch.randn(c, d, generator=g)[y] * 2 + torch.randn(n, d, generator=g) for name in encoders}
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)
    return feats, y, images


def _brute_force_neighbours(f: np.ndarray, k: int) -> np.ndarray:
    """For each row, the k other rows of largest cosine similarity, found by sorting one row at a time."""
    f = f.astype(np.float64)
    out = []
    for i in range(len(f)):
        sims = [(float(f[i] @ f[j] / np.linalg.norm(f[i]) / np.linalg.norm(f[j])), j) for j in range(len(f)) if j != i]
        out.append([j for _, j in sorted(sims, key=lambda t: -t[0])[:k]])
    return np.array(out)


@pytest.fixture
def explorer(headless_plots):
    feats, y, images = _data()
    correct = {name: (torch.arange(60) % 3 != 0) for name in feats}
    return embedding_explorer(feats, y, images, classes=["w", "x", "y", "z"], correct=correct, k=5)


# ------------------------------------------------------------------------------------ numbers
def test_neighbour_lists_equal_a_brute_force_search():
    feats, _, _ = _data(n=50)
    data = ExplorerData(feats, k=7)
    for name, f in feats.items():
        assert np.array_equal(data.neighbours(name), _brute_force_neighbours(f.numpy(), 7))


def test_neighbours_never_include_the_point_itself_and_k_is_capped():
    feats, _, _ = _data(n=6)
    data = ExplorerData(feats, k=50)
    nb = data.neighbours("a")
    assert nb.shape == (6, 5)
    assert not np.any(nb == np.arange(6)[:, None])


def test_every_map_is_computed_once_and_returned_from_the_cache():
    feats, _, _ = _data(n=40)
    data = ExplorerData(feats)
    first = data.coordinates("a", "pca")
    assert data.coordinates("a", "pca") is first and data.computed == 1
    data.coordinates("a", "tsne", 10)
    data.coordinates("a", "tsne", 10)
    data.coordinates("a", "tsne", 12)
    assert data.computed == 3
    again = ExplorerData(feats).coordinates("a", "tsne", 10)   # deterministic for the seed
    assert np.allclose(again, data.coordinates("a", "tsne", 10))


def test_the_selection_is_exactly_the_points_inside_the_rectangle():
    g = np.random.default_rng(0)
    coords = g.normal(size=(300, 2)) * [3.0, 0.5] + [10.0, -4.0]
    assert np.array_equal(points_in(coords, (0, 1), (0, 1)), np.arange(300))
    x0, x1, y0, y1 = rectangle(coords, (0.25, 0.5), (0.1, 0.9))
    assert np.isclose(x0, coords[:, 0].min() + 0.25 * np.ptp(coords[:, 0]))
    inside = [i for i, (x, y) in enumerate(coords) if x0 <= x <= x1 and y0 <= y <= y1]
    assert points_in(coords, (0.25, 0.5), (0.1, 0.9)).tolist() == inside and 0 < len(inside) < 300
    assert len(points_in(coords, (0.4, 0.4), (0.0, 0.0))) <= 1


def test_the_strip_frames_the_query_black_and_its_neighbours_by_class():
    labels = np.array([0, 1, 0, 2])
    assert neighbour_frames(labels, 0, np.array([2, 1, 3])) == ["black", "#2ca02c", "#d62728", "#d62728"]
    images = np.zeros((3, 4, 4, 3), np.uint8)
    picture = mosaic(images, ["red", "green", "blue"], cols=2, scale=2, border=1, gap=1)
    assert picture.shape == (2 * 10 + 1, 2 * 10 + 1, 3)
    assert tuple(picture[0, 0]) == (255, 0, 0) and tuple(picture[0, 11]) == (0, 128, 0)
    assert tuple(picture[11, 0]) == (0, 0, 255) and tuple(picture[-1, -1]) == (255, 255, 255)


def test_bad_inputs_are_named():
    feats, y, images = _data(n=20)
    with pytest.raises(ValueError, match="same N points"):
        ExplorerData({"a": feats["a"], "b": feats["b"][:10]})
    with pytest.raises(ValueError, match="images must hold the N = 20"):
        embedding_explorer(feats, y, images[:5])
    with pytest.raises(ValueError, match="unknown projection"):
        ExplorerData(feats).coordinates("a", "mds")


# ------------------------------------------------------------------------------------ widget
def test_every_control_redraws_the_map(explorer):
    c = explorer.c
    seen = [bytes(c.map.value)]
    for move in (lambda: setattr(c.encoder, "value", "b"), lambda: setattr(c.colour, "value", "correct"),
                 lambda: setattr(c.x_range, "value", (0.2, 0.7)), lambda: c.random.click(),
                 lambda: setattr(c.projection, "value", "pca")):
        before = bytes(c.map.value)
        for _ in range(5):                     # a random click may land on the same point: try again
            move()
            if bytes(c.map.value) != before:
                break
        assert bytes(c.map.value) != before
        seen.append(bytes(c.map.value))
    assert seen[0][:8] == b"\x89PNG\r\n\x1a\n"


def test_the_projection_switches_its_parameter_and_remembers_each(explorer):
    c = explorer.c
    c.param.value = 12
    c.projection.value = "umap"
    assert (c.param.description, c.param.value, c.param.disabled) == ("n_neighbors", 15, False)
    c.param.value = 8
    c.projection.value = "pca"
    assert c.param.disabled
    c.projection.value = "tsne"
    assert (c.param.description, c.param.value) == ("perplexity", 12)
    assert explorer.data.coordinates("a", "umap", 8) is not None and ("a", "umap", 8) in explorer.data._maps


def test_the_query_shows_its_feature_space_neighbours(explorer):
    explorer.pick(17)
    expected = _brute_force_neighbours(explorer.data.features["a"].numpy(), 5)[17]
    assert np.array_equal(explorer.neighbours, expected)
    same = int(np.sum(explorer.labels[expected] == explorer.labels[17]))
    assert f"query #17 (x): <b>{same} of 5</b>" in explorer.c.status.value


def test_next_in_selection_walks_the_selected_points_in_order(explorer):
    c = explorer.c
    c.x_range.value, c.y_range.value = (0.0, 0.5), (0.0, 1.0)
    selected = explorer.selected
    assert 0 < len(selected) < 60
    explorer.pick(selected[0])
    visited = [c.query.value]
    for _ in range(len(selected)):
        c.next.click()
        visited.append(c.query.value)
    assert visited == [*selected.tolist(), selected[0]]
    c.x_range.value = (0.3, 0.3)
    c.y_range.value = (0.0, 0.0)
    if len(explorer.selected) == 0:
        c.next.click()
        assert "no point in the selection" in c.status.value


def test_without_a_kernel_it_shows_a_still_image_of_its_view(explorer):
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_is_measured_for_every_control_and_the_view_restored(explorer):
    before = (explorer.c.encoder.value, explorer.c.query.value, tuple(explorer.c.x_range.value))
    latency = explorer.measure_latency(repeats=2)
    assert set(latency) == {"encoder (map cached)", "colour by", "selection rectangle", "query (random point)"}
    assert all(v > 0 for v in latency.values())
    assert (explorer.c.encoder.value, explorer.c.query.value, tuple(explorer.c.x_range.value)) == before
