"""course_lib.distances against independent computations: Python loops, SciPy, torch.cdist."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist as scipy_cdist

from course_lib import distances as dist
from course_lib.distances import (
    cosine_distance, cosine_similarity, l1_distance, l2_distance, nearest_neighbours,
    pairwise_distances, squared_l2_distance,
)

METRICS = ["l2", "squared_l2", "l1", "cosine"]
SCIPY_NAME = {"l2": "euclidean", "squared_l2": "sqeuclidean", "l1": "cityblock", "cosine": "cosine"}


def _loop_distance(a, b, metric):
    """One pair, written from the slide formulas with plain Python floats."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if metric == "l1":
        return sum(abs(p - q) for p, q in zip(a, b))
    sq = sum((p - q) ** 2 for p, q in zip(a, b))
    if metric == "squared_l2":
        return sq
    if metric == "l2":
        return math.sqrt(sq)
    dot = sum(p * q for p, q in zip(a, b))
    return 1.0 - dot / (math.sqrt(sum(p * p for p in a)) * math.sqrt(sum(q * q for q in b)))


@pytest.fixture
def xy():
    g = torch.Generator().manual_seed(0)
    return torch.randn(7, 5, generator=g), torch.randn(4, 5, generator=g)


# ------------------------------------------------------------------------------- row-wise
ROWWISE = {
    "l1": l1_distance, "l2": l2_distance, "squared_l2": squared_l2_distance, "cosine": cosine_distance,
}


@pytest.mark.parametrize("metric", METRICS)
def test_rowwise_matches_loop(metric):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    got = ROWWISE[metric](x, y)
    assert got.shape == (6,) and got.dtype == torch.float64
    want = torch.tensor([_loop_distance(a, b, metric) for a, b in zip(x, y)], dtype=torch.float64)
    torch.testing.assert_close(got, want)


def test_cosine_similarity_matches_torch_and_distance():
    x, y = torch.randn(9, 6), torch.randn(9, 6)
    torch.testing.assert_close(cosine_similarity(x, y), torch.nn.functional.cosine_similarity(x, y, dim=1))
    torch.testing.assert_close(cosine_distance(x, y), 1 - cosine_similarity(x, y))
    torch.testing.assert_close(cosine_similarity(x, 3 * x), torch.ones(9), atol=1e-6, rtol=0)


def test_rowwise_is_the_diagonal_of_pairwise(xy):
    x, _ = xy
    y = torch.randn_like(x)
    for metric, fn in ROWWISE.items():
        torch.testing.assert_close(fn(x, y), pairwise_distances(x, y, metric).diagonal(), atol=1e-5, rtol=1e-5)


def test_rowwise_l2_identical_rows_have_finite_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    d = l2_distance(x, x.detach().clone())
    assert torch.equal(d, torch.zeros(3))
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


# ------------------------------------------------------------------------------- pairwise
@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_matches_loop(metric, xy):
    x, y = xy
    got = pairwise_distances(x, y, metric=metric)
    assert got.shape == (7, 4) and got.dtype == torch.float32
    want = torch.tensor([[_loop_distance(a, b, metric) for b in y] for a in x])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_matches_scipy_float64(metric):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 16)), rng.normal(size=(20, 16))
    got = pairwise_distances(torch.from_numpy(x), torch.from_numpy(y), metric=metric)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), scipy_cdist(x, y, SCIPY_NAME[metric]), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("metric,p", [("l2", 2.0), ("l1", 1.0)])
def test_pairwise_matches_torch_cdist(metric, p):
    x, y = torch.randn(50, 32), torch.randn(40, 32)
    want = torch.cdist(x, y, p=p, compute_mode="donot_use_mm_for_euclid_dist")
    torch.testing.assert_close(pairwise_distances(x, y, metric), want, atol=1e-4, rtol=1e-4)


def test_euclidean_alias_and_numpy_input(xy):
    x, y = xy
    torch.testing.assert_close(pairwise_distances(x, y, "euclidean"), pairwise_distances(x, y, "l2"))
    torch.testing.assert_close(pairwise_distances(x.numpy(), y.numpy()), pairwise_distances(x, y))


@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_self_is_symmetric_with_zero_diagonal(metric):
    x = torch.randn(12, 8) * 10 + 5  # large offset: the expansion's rounding would show up
    d = pairwise_distances(x, metric=metric)
    assert d.shape == (12, 12)
    torch.testing.assert_close(d, d.T)
    assert torch.equal(d.diagonal(), torch.zeros(12))
    assert (d >= 0).all()
    off = ~torch.eye(12, dtype=torch.bool)  # with y given, the expansion leaves rounding on the diagonal
    torch.testing.assert_close(d[off], pairwise_distances(x, x, metric=metric)[off], atol=1e-3, rtol=1e-4)


def test_l2_accurate_for_features_far_from_the_origin():
    x, y = torch.rand(200, 256) + 5, torch.rand(100, 256) + 5  # like post-ReLU features
    want = torch.cdist(x.double(), y.double(), compute_mode="donot_use_mm_for_euclid_dist")
    torch.testing.assert_close(pairwise_distances(x, y).double(), want, atol=1e-5, rtol=1e-5)


def test_squared_l2_never_negative_for_near_duplicates():
    x = torch.randn(20, 64) * 100
    y = x + 1e-6  # the expansion cancels catastrophically here
    assert (pairwise_distances(x, y, "squared_l2") >= 0).all()
    assert torch.isfinite(pairwise_distances(x, y, "l2")).all()


# ------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("metric", METRICS)
def test_gradcheck_pairwise(metric):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: pairwise_distances(a, b, metric), (x, y))
    assert torch.autograd.gradcheck(lambda a: pairwise_distances(a, metric=metric), (x,))


@pytest.mark.parametrize("metric", METRICS)
def test_gradcheck_rowwise(metric):
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ROWWISE[metric], (x, y))


@pytest.mark.parametrize("same_object", [True, False])
def test_l2_identical_points_give_finite_gradient(same_object):
    x = torch.randn(6, 4, requires_grad=True)
    y = torch.cat([x[:3], torch.randn(2, 4)])  # rows 0-2 of y are rows 0-2 of x
    d = pairwise_distances(x) if same_object else pairwise_distances(x, y)
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_safe_sqrt_value_and_gradient_at_zero():
    d2 = torch.tensor([0.0, 4.0], requires_grad=True)
    d = dist.safe_sqrt(d2)
    d.sum().backward()
    assert d.tolist() == [0.0, 2.0]
    assert d2.grad.tolist() == [0.0, 0.25]


# ------------------------------------------------------------------------------- precision
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("metric", METRICS)
def test_low_precision_is_finite_close_and_keeps_dtype(dtype, metric):
    x, y = torch.randn(64, 128) * 4, torch.randn(32, 128) * 4  # ||x||^2 ~ 2000: fp16 products overflow-prone
    want = pairwise_distances(x.to(dtype).float(), y.to(dtype).float(), metric)
    got = pairwise_distances(x.to(dtype), y.to(dtype), metric)
    assert got.dtype == dtype and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2)
    x_low = x.to(dtype).requires_grad_()
    pairwise_distances(x_low, metric=metric).sum().backward()
    assert x_low.grad.dtype == dtype and torch.isfinite(x_low.grad).all()


def test_low_precision_rowwise_keeps_dtype():
    x, y = torch.randn(8, 16).half(), torch.randn(8, 16).half()
    for fn in [*ROWWISE.values(), cosine_similarity]:
        out = fn(x, y)
        assert out.dtype == torch.float16 and torch.isfinite(out).all()


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("x,y", [
    (torch.randn(5), torch.randn(4, 5)),
    (torch.randn(5, 3), torch.randn(4, 2)),
    (torch.randn(2, 5, 3), torch.randn(4, 3)),
    (torch.randn(5, 3), torch.randn(4)),
])
def test_pairwise_shape_errors_name_expected_shapes(x, y):
    with pytest.raises(ValueError, match=r"\(N, D\) and \(M, D\)"):
        pairwise_distances(x, y)


def test_pairwise_self_shape_error():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pairwise_distances(torch.randn(5))


@pytest.mark.parametrize("fn", [*ROWWISE.values(), cosine_similarity])
def test_rowwise_shape_errors_name_expected_shape(fn):
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        fn(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        fn(torch.randn(4), torch.randn(4))


def test_unknown_metric_lists_choices(xy):
    with pytest.raises(ValueError, match="l2.*squared_l2.*l1.*cosine"):
        pairwise_distances(*xy, metric="chebyshev")


# ---------------------------------------------------------------------- nearest neighbours
@pytest.mark.parametrize("metric", METRICS)
def test_nearest_neighbours_matches_argsort(metric):
    q, g = torch.randn(30, 8, dtype=torch.float64), torch.randn(50, 8, dtype=torch.float64)
    idx = nearest_neighbours(q, g, k=5, metric=metric, chunk_size=7)  # several chunks
    assert idx.shape == (30, 5) and idx.dtype == torch.int64
    want = np.argsort(scipy_cdist(q.numpy(), g.numpy(), SCIPY_NAME[metric]), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx.numpy(), want)


def test_nearest_neighbours_exclude_self():
    x = torch.randn(20, 4)
    with_self = nearest_neighbours(x, x, k=3, metric="l2")
    assert torch.equal(with_self[:, 0], torch.arange(20))
    without = nearest_neighbours(x, x, k=3, metric="l2", exclude_self=True, chunk_size=6)
    assert not (without == torch.arange(20)[:, None]).any()
    assert torch.equal(without[:, :2], with_self[:, 1:3])


def test_nearest_neighbours_checks_k():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="between 1 and 3"):
        nearest_neighbours(x, x, k=4, exclude_self=True)
    with pytest.raises(ValueError, match=r"\(N, D\) and \(M, D\)"):
        nearest_neighbours(x, torch.randn(4, 3))
