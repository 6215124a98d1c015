"""course_lib.losses.margins (SphereFace, adaptive margins, margin warm-up) against independent computations.

Each function is checked against a slow Python loop written from the paper's formula (or a closed
form), plus gradcheck in float64, half precision, shapes and the ValueErrors that name them.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import losses
from course_lib.losses import margins as Mg

SEEDS = (0, 1, 2)


def randn(*shape, seed=0, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(requires_grad)


def labels_for(n, c, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    return torch.randint(0, c, (n,), generator=g)


# ------------------------------------------------------------------------ slow references
def psi_loop(theta, m):
    """ψ(θ) = (−1)^k cos(mθ) − 2k on θ ∈ [kπ/m, (k+1)π/m], the piece found by a loop over k."""
    for k in range(m):
        if k * math.pi / m <= theta <= (k + 1) * math.pi / m:
            return (-1) ** k * math.cos(m * theta) - 2 * k
    raise AssertionError(theta)


def sphereface_loop(x, W, y, m, s=None, lam=0.0):
    """Liu et al. (2017), eq. for A-Softmax, one logit at a time: ‖x‖ cos θ_j, target ‖x‖ ψ(θ_y)."""
    out = torch.zeros(len(x), len(W), dtype=torch.float64)
    for n in range(len(x)):
        xn = [float(v) for v in x[n]]
        norm = math.sqrt(sum(v * v for v in xn))
        scale = norm if s is None else s
        for c in range(len(W)):
            wc = [float(v) for v in W[c]]
            cos = sum(a * b for a, b in zip(xn, wc)) / (norm * math.sqrt(sum(v * v for v in wc)))
            cos = min(1.0, max(-1.0, cos))
            if y is not None and c == int(y[n]):
                theta = math.acos(cos)
                out[n, c] = scale * (lam * cos + psi_loop(theta, m)) / (1 + lam)
            else:
                out[n, c] = scale * cos
    return out


def adaptive_arcface_loop(x, W, y, margins, s):
    """ArcFace with the margin of the sample's class, one logit at a time (fallback cos α − m sin m)."""
    out = torch.zeros(len(x), len(W), dtype=torch.float64)
    for n in range(len(x)):
        for c in range(len(W)):
            cos = float(F.cosine_similarity(x[n], W[c], dim=0))
            if c == int(y[n]):
                m = float(margins[c])
                alpha = math.acos(min(1.0, max(-1.0, cos)))
                out[n, c] = s * (math.cos(alpha + m) if alpha + m <= math.pi else cos - m * math.sin(m))
            else:
                out[n, c] = s * cos
    return out


# ------------------------------------------------------------------------------------- ψ(θ)
@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_psi_matches_the_piecewise_definition(m):
    theta = torch.linspace(0, math.pi, 181, dtype=torch.float64)
    got = Mg.sphereface_psi(theta, m)
    want = torch.tensor([psi_loop(float(t), m) for t in theta], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_psi_is_monotonic_continuous_from_1_to_1_minus_2m(m):
    theta = torch.linspace(0, math.pi, 20001, dtype=torch.float64)
    psi = Mg.sphereface_psi(theta, m)
    assert psi[0].item() == pytest.approx(1.0) and psi[-1].item() == pytest.approx(1 - 2 * m)
    assert (psi.diff() <= 1e-12).all()  # never rises (cos(mθ) alone would, after π/m)
    assert psi.diff().abs().max() < 1e-3  # no jump at the piece boundaries kπ/m
    if m == 1:
        torch.testing.assert_close(psi, theta.cos())


def test_psi_rejects_a_non_integer_m():
    for m in (0, 2.5, -1, True):
        with pytest.raises(ValueError, match="integer"):
            Mg.sphereface_psi(torch.zeros(3), m)


# ------------------------------------------------------------------------------ SphereFace
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_sphereface_matches_the_loop(seed, m):
    x, W = randn(9, 5, seed=seed), randn(4, 5, seed=seed + 10)
    y = labels_for(9, 4, seed)
    torch.testing.assert_close(Mg.sphereface_logits(x, W, y, m=m), sphereface_loop(x, W, y, m), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(Mg.sphereface_logits(x, W, y, m=m, s=8.0), sphereface_loop(x, W, y, m, s=8.0),
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(Mg.sphereface_logits(x, W, y, m=m, lambda_=5.0), sphereface_loop(x, W, y, m, lam=5.0),
                               rtol=1e-9, atol=1e-9)


def test_sphereface_without_labels_and_with_m1_is_the_normalised_weight_softmax():
    x, W = randn(7, 4, seed=3), randn(3, 4, seed=4)
    plain = x @ F.normalize(W, dim=1).T  # ‖x‖ cos θ_j
    torch.testing.assert_close(Mg.sphereface_logits(x, W, None), plain)
    torch.testing.assert_close(Mg.sphereface_logits(x, W, labels_for(7, 3), m=1), plain)
    torch.testing.assert_close(Mg.sphereface_logits(x, W, None, s=2.0), 2.0 * F.normalize(x, dim=1) @ F.normalize(W, dim=1).T)


def test_sphereface_target_logit_decreases_with_the_angle_and_lies_below_cos():
    alpha = torch.linspace(0, math.pi, 721, dtype=torch.float64)
    z = torch.stack([alpha.cos(), alpha.sin()], dim=1)  # unit features at angle α from w_0
    W = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    t = Mg.sphereface_logits(z, W, torch.zeros(len(z), dtype=torch.long), m=4)[:, 0]
    assert (t.diff() <= 1e-12).all()
    assert (t <= alpha.cos() + 1e-12).all()  # the margin only ever lowers the target logit


def test_sphereface_gradcheck_float64():
    x, W = randn(6, 4, seed=5, requires_grad=True), randn(3, 4, seed=6, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    for kwargs in ({"m": 4}, {"m": 3, "lambda_": 2.0}, {"m": 2, "s": 4.0}):
        fn = lambda a, b: F.cross_entropy(Mg.sphereface_logits(a, b, y, **kwargs), y)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, W), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sphereface_half_inputs_give_float32_logits(dtype):
    x, W = randn(16, 8, seed=7, dtype=torch.float32), randn(5, 8, seed=8, dtype=torch.float32)
    y = labels_for(16, 5)
    got = Mg.sphereface_logits(x.to(dtype), W.to(dtype), y, m=4, s=64.0)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    want = Mg.sphereface_logits(x.to(dtype).float(), W.to(dtype).float(), y, m=4, s=64.0)
    torch.testing.assert_close(got, want)


def test_sphereface_value_errors_name_the_shape():
    x, W, y = torch.randn(4, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"embeddings of shape \(N, D\)"):
        Mg.sphereface_logits(torch.randn(4), W, y)
    with pytest.raises(ValueError, match=r"weight of shape .*D = 3"):
        Mg.sphereface_logits(x, torch.randn(5, 2), y)
    with pytest.raises(ValueError, match=r"labels of shape \(N,\) with N = 4"):
        Mg.sphereface_logits(x, W, y[:3])
    with pytest.raises(ValueError, match=r"labels in \[0, C\) with C = 5"):
        Mg.sphereface_logits(x, W, torch.tensor([0, 1, 2, 5]))
    with pytest.raises(ValueError, match="integer dtype"):
        Mg.sphereface_logits(x, W, y.float())
    with pytest.raises(ValueError, match="floating dtype"):
        Mg.sphereface_logits(x.long(), W, y)
    with pytest.raises(ValueError, match="integer >= 1"):
        Mg.sphereface_logits(x, W, y, m=1.5)
    with pytest.raises(ValueError, match="lambda_"):
        Mg.sphereface_logits(x, W, y, lambda_=-1.0)


# ------------------------------------------------------------------------- adaptive margins
def test_adaptive_margins_closed_form_with_a_and_b():
    n = torch.tensor([1.0, 16.0, 81.0, 10000.0], dtype=torch.float64)
    got = Mg.adaptive_margins(n, a=0.4, b=0.1, lambda_=0.5)
    torch.testing.assert_close(got, 0.4 / n.sqrt() + 0.1)


def test_adaptive_margins_default_is_ha_et_al_range():
    counts = torch.tensor([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
    got = Mg.adaptive_margins(counts)
    t = (1 / counts.double().sqrt()).sqrt()  # Ha et al.'s code: sqrt(1 / sqrt(N_c)) = N_c^(-1/4)
    want = (t - t.min()) / (t.max() - t.min()) * 0.45 + 0.05
    torch.testing.assert_close(got, want.float())
    assert got.dtype == torch.float32
    assert got[0].item() == pytest.approx(0.05) and got[-1].item() == pytest.approx(0.5)
    assert (got.diff() > 0).all()  # the rarer the class, the larger its margin


def test_adaptive_margins_equal_counts_and_errors():
    torch.testing.assert_close(Mg.adaptive_margins([100, 100, 100], m_max=0.4), torch.full((3,), 0.4))
    with pytest.raises(ValueError, match=r"class_counts of shape \(C,\)"):
        Mg.adaptive_margins(torch.ones(2, 3))
    with pytest.raises(ValueError, match="> 0"):
        Mg.adaptive_margins([10, 0, 5])
    with pytest.raises(ValueError, match="both a and b"):
        Mg.adaptive_margins([10, 5], a=0.1)
    with pytest.raises(ValueError, match="lambda_"):
        Mg.adaptive_margins([10, 5], lambda_=0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_adaptive_arcface_matches_the_loop(seed):
    x, W = randn(10, 4, seed=seed), randn(5, 4, seed=seed + 20)
    y = labels_for(10, 5, seed)
    margins = torch.tensor([0.05, 0.2, 0.5, 1.0, 2.5], dtype=torch.float64)  # 2.5: the fallback branch too
    got = Mg.adaptive_arcface_logits(x, W, y, margins, s=16.0)
    torch.testing.assert_close(got, adaptive_arcface_loop(x, W, y, margins, 16.0), rtol=1e-7, atol=1e-6)


@pytest.mark.parametrize("K", [1, 3])
def test_adaptive_arcface_with_equal_margins_is_arcface(K):
    x, W = randn(12, 6, seed=1), randn(4 * K, 6, seed=2)
    y = labels_for(12, 4)
    got = Mg.adaptive_arcface_logits(x, W, y, torch.full((4,), 0.5), s=30.0, subcenters=K)
    torch.testing.assert_close(got, losses.arcface_logits(x, W, y, s=30.0, m=0.5, subcenters=K))
    torch.testing.assert_close(Mg.adaptive_arcface_logits(x, W, None, torch.full((4,), 0.5), subcenters=K),
                               losses.arcface_logits(x, W, None, subcenters=K))


def test_adaptive_arcface_gradcheck_half_and_errors():
    x, W = randn(6, 4, seed=3, requires_grad=True), randn(3, 4, seed=4, requires_grad=True)
    y, margins = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([0.1, 0.3, 0.5], dtype=torch.float64)
    fn = lambda a, b: F.cross_entropy(Mg.adaptive_arcface_logits(a, b, y, margins, s=4.0), y)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, W), eps=1e-6, atol=1e-5, rtol=1e-4)

    for dtype in (torch.float16, torch.bfloat16):
        h = Mg.adaptive_arcface_logits(x.detach().to(dtype), W.detach().to(dtype), y, margins.float(), s=64.0)
        assert h.dtype == torch.float32 and torch.isfinite(h).all()
    with pytest.raises(ValueError, match=r"margins of shape \(C,\) with C = 3"):
        Mg.adaptive_arcface_logits(x, W, y, torch.ones(4))
    with pytest.raises(ValueError, match=r"weight of shape \(C\*K, D\)"):
        Mg.adaptive_arcface_logits(x, torch.randn(4, 4), y, margins, subcenters=3)


def test_everything_is_exported_from_losses():
    for name in Mg.__all__:
        assert getattr(losses, name) is getattr(Mg, name)


# ---------------------------------------------------------------------------- margin warm-up
def test_margin_warmup_ramps_the_head_margin_linearly():
    head = losses.AngularMarginHead(4, 3, kind="arcface", m=0.0)
    model = torch.nn.Module()
    model.head = head
    warm = Mg.MarginWarmup(m=0.5, steps=10)
    for step, want in ((1, 0.05), (5, 0.25), (10, 0.5), (25, 0.5)):
        warm(model, step)
        assert head.m == pytest.approx(want)
    with pytest.raises(ValueError, match="steps"):
        Mg.MarginWarmup(m=0.5, steps=0)
    assert "steps=10" in repr(warm)
