"""Chapter 04's additions: N-way K-shot episodes and accuracy (evaluate), angular decision regions (viz)."""
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from course_lib.evaluate import few_shot_accuracy, few_shot_episodes  # noqa: E402
from course_lib.viz import plot_circle_regions  # noqa: E402


# ------------------------------------------------------------------------ slow references
def nearest_prototype_loop(x, y, support, query):
    """Snell et al. (2017) written out: class means of the support, each query to the nearest one."""
    x, y = np.asarray(x, np.float64), np.asarray(y)
    protos = {}
    for i in support:
        protos.setdefault(int(y[i]), []).append(x[i])
    protos = {c: np.mean(v, axis=0) for c, v in sorted(protos.items())}
    correct = 0
    for i in query:
        dists = [(float(((x[i] - p) ** 2).sum()), c) for c, p in protos.items()]
        best = min(d for d, _ in dists)
        predicted = min(c for d, c in dists if d == best)  # ties: the smallest class id, as argmax
        correct += predicted == int(y[i])
    return correct / len(query)


def clustered(n_classes=8, per_class=30, dim=6, spread=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(n_classes, dim, generator=g)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=g)
    return x, y


# ------------------------------------------------------------------------------- episodes
def test_episodes_have_n_way_classes_k_shots_and_disjoint_queries():
    y = torch.tensor([0] * 7 + [1] * 9 + [2] * 3 + [3] * 8 + [4] * 10)  # class 2 is too small for 2+4
    episodes = list(few_shot_episodes(y, n_way=3, k_shot=2, n_query=4, episodes=50, seed=1))
    assert len(episodes) == 50
    seen = set()
    for support, query in episodes:
        assert support.shape == (6,) and query.shape == (12,)
        assert support.dtype == torch.int64 and query.dtype == torch.int64
        assert not set(support.tolist()) & set(query.tolist())
        s_classes, q_classes = y[support].view(3, 2), y[query].view(3, 4)  # grouped class by class
        assert (s_classes == s_classes[:, :1]).all() and (q_classes == q_classes[:, :1]).all()
        assert torch.equal(s_classes[:, 0], q_classes[:, 0])
        assert len(set(s_classes[:, 0].tolist())) == 3 and 2 not in s_classes[:, 0].tolist()
        seen |= set(s_classes[:, 0].tolist())
    assert seen == {0, 1, 3, 4}  # every eligible class shows up


def test_episodes_repeat_with_the_seed_and_leave_global_rng_alone():
    y = torch.arange(5).repeat_interleave(10)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = [torch.cat(e) for e in few_shot_episodes(y, 5, 1, 3, 5, seed=7)]
    after = torch.rand(3)
    b = [torch.cat(e) for e in few_shot_episodes(y, 5, 1, 3, 5, seed=7)]
    c = [torch.cat(e) for e in few_shot_episodes(y, 5, 1, 3, 5, seed=8)]
    assert torch.equal(before, after)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))


def test_episodes_errors():
    y = torch.arange(4).repeat_interleave(5)
    with pytest.raises(ValueError, match="5-way"):
        next(few_shot_episodes(y, n_way=5, k_shot=1, n_query=2, episodes=1))
    with pytest.raises(ValueError, match=">= 6 items"):
        next(few_shot_episodes(y, n_way=2, k_shot=1, n_query=5, episodes=1))
    with pytest.raises(ValueError, match=">= 1"):
        next(few_shot_episodes(y, n_way=2, k_shot=0, n_query=2, episodes=1))
    with pytest.raises(ValueError, match="integers"):
        next(few_shot_episodes(y.float(), n_way=2, k_shot=1, n_query=2, episodes=1))


# ------------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("k_shot", [1, 3])
def test_few_shot_accuracy_matches_slow_loop(k_shot):
    x, y = clustered(spread=2.5, seed=k_shot)  # overlapping classes: accuracy well below 1
    out = few_shot_accuracy(x, y, n_way=4, k_shot=k_shot, n_query=5, episodes=40, seed=3)
    accs = [nearest_prototype_loop(x, y, s.tolist(), q.tolist())
            for s, q in few_shot_episodes(y, 4, k_shot, 5, 40, seed=3)]
    assert 0.3 < out["accuracy"] < 0.99
    assert out["accuracy"] == pytest.approx(np.mean(accs), abs=1e-6)
    assert out["ci95"] == pytest.approx(1.96 * np.std(accs, ddof=1) / math.sqrt(40), rel=1e-6)


def test_few_shot_accuracy_separated_and_random():
    x, y = clustered(spread=0.01)
    assert few_shot_accuracy(x, y, 5, 1, 10, episodes=20)["accuracy"] == 1.0
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(len(y), 16, generator=g)  # features that know nothing: chance = 1 / n_way
    out = few_shot_accuracy(noise.numpy(), y.numpy(), n_way=5, k_shot=1, n_query=10, episodes=400)
    assert abs(out["accuracy"] - 0.2) < 3 * out["ci95"] + 0.01


def test_few_shot_accuracy_normalize_uses_directions():
    x, y = clustered(spread=0.01)
    scales = torch.rand(len(x), 1) * 10 + 0.1  # scale every vector: directions unchanged
    a = few_shot_accuracy(x * scales, y, 4, 2, 5, episodes=30, normalize=True)
    b = few_shot_accuracy(torch.nn.functional.normalize(x, dim=1), y, 4, 2, 5, episodes=30)
    assert a == b


def test_few_shot_accuracy_shape_errors():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        few_shot_accuracy(torch.zeros(10), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        few_shot_accuracy(torch.zeros(10, 2), torch.zeros(9, dtype=torch.long))


# -------------------------------------------------------------------------------- viz
def test_plot_circle_regions_draws_one_wedge_pair_per_run():
    from matplotlib.patches import Wedge

    theta = torch.linspace(-math.pi, math.pi, 13)
    winner = torch.tensor([0, 0, -1, 1, 1, 1, -1, -1, 2, 2, 0, 0, 0])  # 6 runs
    fig = plot_circle_regions(theta, winner, weight_angles=[0.0, 2.0, 4.0], title="t")
    ax = fig.axes[0]
    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    assert len(wedges) == 2 * 6  # a filled sector and an arc per run
    assert ax.get_title() == "t"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["class 0", "class 1", "class 2", "no class wins"]
    plt.close(fig)


def test_plot_circle_regions_into_axes_with_names_and_no_gap():
    fig, ax = plt.subplots()
    theta = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    out = plot_circle_regions(theta, (theta > np.pi).astype(int), classes=["cat", "dog"], ax=ax)
    assert out is fig
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cat", "dog"]
    plt.close(fig)


def test_plot_circle_regions_errors():
    with pytest.raises(ValueError, match="same shape"):
        plot_circle_regions(np.linspace(0, 1, 5), np.zeros(4, int))
    with pytest.raises(ValueError, match="increasing"):
        plot_circle_regions(np.array([0.0, 1.0, 0.5]), np.zeros(3, int))
