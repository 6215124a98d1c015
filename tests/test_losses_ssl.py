"""The self-supervised losses (course_lib.losses.ssl) against slow loops written from the papers, closed
forms, gradcheck, half precision, input checks, and lightly as an independent implementation."""
import ast
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import BarlowTwinsLoss, NegativeCosineSimilarity, NTXentLoss

from course_lib import losses
from course_lib.losses import softmax, ssl
from course_lib.losses.ssl import barlow_twins_loss, byol_loss, clip_loss, info_nce_loss, moco_loss, nt_xent_loss

ROOT = Path(__file__).resolve().parents[1]
EPS = 1e-5  # BatchNorm's eps, which Barlow Twins' standardisation uses


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def hadamard(n):
    """Sylvester's Hadamard matrix (n a power of 2): ±1 entries, orthogonal columns; every column but
    the first sums to 0, so columns 1.. are zero-mean with biased variance exactly 1."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while len(h) < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    return h


# ------------------------------------------------------------------ slow references (pure Python)
def _cos(u, v):
    return sum(a * b for a, b in zip(u, v)) / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def nt_xent_slow(z1, z2, tau):
    """SimCLR's Algorithm 1: views interleaved (z_{2k-1}, z_{2k} from image k),
    l(i, j) = -log exp(s_ij/τ) / Σ_{k≠i} exp(s_ik/τ), L = 1/(2N) Σ_k [l(2k-1, 2k) + l(2k, 2k-1)]."""
    z = [row for pair in zip(z1.tolist(), z2.tolist()) for row in pair]
    s = [[_cos(a, b) for b in z] for a in z]

    def ell(i, j):
        return -math.log(math.exp(s[i][j] / tau) / sum(math.exp(s[i][k] / tau) for k in range(len(z)) if k != i))

    n = len(z1)
    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


def moco_slow(q, k, queue, tau):
    """MoCo's Algorithm 1, one query at a time: -log exp(q·k₊/τ) / (exp(q·k₊/τ) + Σ_i exp(q·k_i/τ))."""
    total = 0.0
    for qi, ki in zip(q.tolist(), k.tolist()):
        pos = math.exp(_cos(qi, ki) / tau)
        neg = sum(math.exp(_cos(qi, kj) / tau) for kj in queue.tolist())
        total += -math.log(pos / (pos + neg))
    return total / len(q)


def byol_slow(p, z):
    """BYOL as the slides write it: ‖p/‖p‖ − z/‖z‖‖², mean over the batch."""
    total = 0.0
    for pi, zi in zip(p.tolist(), z.tolist()):
        npi, nzi = math.sqrt(sum(a * a for a in pi)), math.sqrt(sum(b * b for b in zi))
        total += sum((a / npi - b / nzi) ** 2 for a, b in zip(pi, zi))
    return total / len(p)


def barlow_slow(z1, z2, lambd, eps=EPS):
    """Barlow Twins entry by entry: z standardised per dimension (mean 0, biased variance + eps), then
    C_ij = 1/N Σ_b ẑ^A_{b,i} ẑ^B_{b,j}; Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij². eps=0 with centred inputs
    is the paper's (and the slides') normalised cross-correlation."""
    a, b = z1.tolist(), z2.tolist()
    n, d = len(a), len(a[0])

    def standardise(z):
        cols = []
        for i in range(d):
            col = [z[r][i] for r in range(n)]
            mu = sum(col) / n
            sd = math.sqrt(sum((x - mu) ** 2 for x in col) / n + eps)
            cols.append([(x - mu) / sd for x in col])
        return cols

    za, zb = standardise(a), standardise(b)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(za[i][r] * zb[j][r] for r in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c ** 2
    return loss


# ------------------------------------------------------------------------- against the loops
@pytest.mark.parametrize("seed,n,d,tau", [(0, 1, 3, 0.5), (1, 2, 4, 0.5), (2, 5, 3, 0.1), (3, 8, 16, 0.2),
                                          (4, 16, 8, 1.0)])
def test_nt_xent_matches_simclr_pseudocode(seed, n, d, tau):
    z1, z2 = randn(n, d, seed=seed), randn(n, d, seed=seed + 100) * 3.0
    assert nt_xent_loss(z1, z2, tau).item() == pytest.approx(nt_xent_slow(z1, z2, tau), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed,n,k,d,tau", [(0, 1, 1, 3, 0.2), (1, 4, 7, 5, 0.2), (2, 8, 32, 16, 0.07),
                                            (3, 3, 0, 4, 0.5)])
def test_moco_matches_moco_pseudocode(seed, n, k, d, tau):
    q, key = randn(n, d, seed=seed), randn(n, d, seed=seed + 1)
    queue = randn(k, d, seed=seed + 2) * 5.0  # not normalised: the loss normalises it
    assert moco_loss(q, key, queue, tau).item() == pytest.approx(moco_slow(q, key, queue, tau), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed,n,d", [(0, 1, 2), (1, 6, 5), (2, 32, 64)])
def test_byol_matches_the_squared_distance_of_normalised_vectors(seed, n, d):
    p, z = randn(n, d, seed=seed), randn(n, d, seed=seed + 1) * 0.1
    assert byol_loss(p, z).item() == pytest.approx(byol_slow(p, z), rel=1e-10)


@pytest.mark.parametrize("seed,n,d,lambd", [(0, 2, 2, 5e-3), (1, 7, 4, 5e-3), (2, 16, 8, 0.1), (3, 5, 9, 1.0)])
def test_barlow_twins_matches_the_entrywise_formula(seed, n, d, lambd):
    z1 = randn(n, d, seed=seed) * 2.0 + 1.0
    z2 = z1 + randn(n, d, seed=seed + 1)
    assert barlow_twins_loss(z1, z2, lambd).item() == pytest.approx(barlow_slow(z1, z2, lambd), rel=1e-10)


def test_barlow_twins_is_the_slides_cross_correlation_once_the_inputs_are_centred():
    z1, z2 = randn(64, 6, seed=5), randn(64, 6, seed=6)
    z1, z2 = z1 - z1.mean(0), z2 - z2.mean(0)  # the paper centres z; the slides' C_ij omits it
    assert barlow_twins_loss(z1, z2).item() == pytest.approx(barlow_slow(z1, z2, 5e-3, eps=0.0), rel=1e-4)


# ------------------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("n,d,tau", [(2, 2, 0.5), (3, 5, 0.5), (4, 4, 0.1), (8, 12, 1.0), (5, 5, 0.01)])
def test_nt_xent_for_identical_views_of_orthogonal_vectors(n, d, tau):
    # each anchor: its copy at cosine 1 (the positive), the 2N − 2 others at cosine 0
    basis, _ = torch.linalg.qr(randn(d, d, seed=n))
    z = basis[:n] * torch.linspace(0.5, 4.0, n, dtype=torch.float64)[:, None]  # lengths do not matter
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + (2 * n - 2)))
    assert nt_xent_loss(z, z.clone(), tau).item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_nt_xent_with_one_pair_is_zero_and_an_empty_batch_is_zero_in_the_graph():
    z1 = randn(1, 6, seed=1).requires_grad_(True)
    assert nt_xent_loss(z1, randn(1, 6, seed=2)).item() == 0.0
    empty = torch.zeros(0, 4, requires_grad=True)
    loss = nt_xent_loss(empty, empty)
    loss.backward()
    assert loss.item() == 0.0 and empty.grad is not None


@pytest.mark.parametrize("k,tau", [(1, 0.2), (6, 0.2), (6, 0.05), (9, 1.0)])
def test_moco_with_an_orthogonal_queue(k, tau):
    eye = torch.eye(k + 2, dtype=torch.float64)
    q, key, queue = 3.0 * eye[:1], 0.5 * eye[:1], 2.0 * eye[2:]  # q ∥ k₊, every queued key ⟂ q
    assert moco_loss(q, key, queue, tau).item() == pytest.approx(math.log(1 + k * math.exp(-1 / tau)), rel=1e-10)
    other = eye[1:2]  # k₊ ⟂ q too: all 1 + K logits are 0
    assert moco_loss(q, other, queue, tau).item() == pytest.approx(math.log(1 + k), rel=1e-12)


def test_byol_is_zero_for_aligned_four_for_opposite_two_for_orthogonal():
    z = randn(10, 8, seed=3)
    scale = torch.rand(10, 1, generator=gen(4), dtype=torch.float64) + 0.1
    assert byol_loss(scale * z, z).item() == pytest.approx(0.0, abs=1e-12)
    assert byol_loss(-z, z).item() == pytest.approx(4.0, rel=1e-12)
    eye = torch.eye(4, dtype=torch.float64)
    assert byol_loss(eye[:2], eye[2:]).item() == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("n,d", [(8, 4), (16, 7), (32, 12)])
def test_barlow_twins_closed_forms_on_hadamard_columns(n, d):
    h = hadamard(n)  # columns 1.. have mean 0, biased variance 1, and are mutually uncorrelated
    z = h[:, 1:1 + d]
    c = 1 / (1 + EPS)  # standardising divides by sqrt(1 + eps): C = c · I for identical views
    assert barlow_twins_loss(z, z.clone()).item() == pytest.approx(d * (1 - c) ** 2, abs=1e-12)
    assert barlow_twins_loss(3.0 * z + 7.0, z).item() == pytest.approx(0.0, abs=1e-8)  # affine per dim: invariant
    assert barlow_twins_loss(z, -z).item() == pytest.approx(d * (1 + c) ** 2, rel=1e-12)  # C = −c · I
    shifted = z.roll(1, dims=1)  # C is a permutation without fixed points: diagonal 0, D off-diagonal c's
    assert barlow_twins_loss(z, shifted, 0.3).item() == pytest.approx(d + 0.3 * d * c ** 2, rel=1e-12)
    if 2 * d < n:  # disjoint columns: every C_ij = 0, so the loss is D
        assert barlow_twins_loss(z, h[:, 1 + d:1 + 2 * d]).item() == pytest.approx(d, abs=1e-12)


# -------------------------------------------------------------------------------- gradients
def test_gradcheck_float64():
    z1, z2 = randn(5, 4, seed=1).requires_grad_(True), randn(5, 4, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent_loss(a, b, 0.3), (z1, z2))
    assert torch.autograd.gradcheck(lambda a, b: nt_xent_loss(a, b, 0.3), (z1[:1].detach().requires_grad_(True),
                                                                          z2[:1].detach().requires_grad_(True)))
    queue = randn(7, 4, seed=3)
    assert torch.autograd.gradcheck(lambda q: moco_loss(q, z2.detach(), queue, 0.2), (z1,))
    assert torch.autograd.gradcheck(lambda p: byol_loss(p, z2.detach()), (z1,))
    assert torch.autograd.gradcheck(lambda a, b: barlow_twins_loss(a, b, 0.1), (z1, z2))


def test_moco_gradient_reaches_q_only():
    q, k, queue = (randn(4, 6, seed=s).requires_grad_(True) for s in (1, 2, 3))
    moco_loss(q, k, queue).backward()
    assert k.grad is None and queue.grad is None
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


def test_byol_target_gets_no_gradient():
    p, z = randn(4, 6, seed=1).requires_grad_(True), randn(4, 6, seed=2).requires_grad_(True)
    byol_loss(p, z).backward()
    assert z.grad is None and p.grad.abs().sum() > 0


# -------------------------------------------------------------------------- half precision
def _cases(dtype):
    """(name, loss of (tensors in dtype)) at τ = 0.01 where a temperature exists."""
    a, b, c = (randn(16, 32, seed=s, dtype=torch.float32).to(dtype) for s in (1, 2, 3))
    b = (a.float() + 0.05 * b.float()).to(dtype)  # near positives: large logits at τ = 0.01
    return [("nt_xent", lambda x, y, _: nt_xent_loss(x, y, 0.01), (a, b, c)),
            ("moco", lambda x, y, z: moco_loss(x, y, z, 0.01), (a, b, c)),
            ("byol", lambda x, y, _: byol_loss(x, y), (a, b, c)),
            ("barlow", lambda x, y, _: barlow_twins_loss(x, y), (a, b, c))]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_give_a_finite_float32_loss_close_to_float32(dtype):
    for name, fn, inputs in _cases(dtype):
        half = [t.clone().requires_grad_(True) for t in inputs]
        loss = fn(*half)
        want = fn(*[t.float() for t in inputs])  # the same rounded inputs, in float32
        assert loss.dtype == torch.float32 and torch.isfinite(loss), name
        assert loss.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6), name
        loss.backward()
        assert half[0].grad.dtype == dtype and torch.isfinite(half[0].grad.float()).all(), name


def test_under_autocast_the_losses_stay_float32_and_finite():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for name, fn, inputs in _cases(torch.float32):
            loss = fn(*inputs)
            assert loss.dtype == torch.float32 and torch.isfinite(loss), name


# ----------------------------------------------------------------------------- input checks
def test_bad_shapes_and_dtypes_raise_naming_the_expected_shape():
    x, y = torch.randn(4, 3), torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"z1 and z2 of shape \(N, D\)"):
        nt_xent_loss(x, y)
    with pytest.raises(ValueError, match=r"z1 and z2 of shape \(N, D\)"):
        nt_xent_loss(x[0], x[1])
    with pytest.raises(ValueError, match=r"of shape \(N, D\) with a floating dtype"):
        nt_xent_loss(torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"q and k of shape \(N, D\)"):
        moco_loss(x, y, x)
    with pytest.raises(ValueError, match=r"queue of shape \(K, D\) with D = 3"):
        moco_loss(x, x, torch.randn(8, 4))
    with pytest.raises(ValueError, match=r"queue of shape \(K, D\)"):
        moco_loss(x, x, torch.randn(8))
    with pytest.raises(ValueError, match=r"queue of shape \(K, D\) with a floating dtype"):
        moco_loss(x, x, torch.ones(8, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"online_prediction and target_projection of shape \(N, D\)"):
        byol_loss(x, y)
    with pytest.raises(ValueError, match=r"z1 and z2 of shape \(N, D\)"):
        barlow_twins_loss(x, torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"z1 and z2 of shape \(N, D\) with N >= 2"):
        barlow_twins_loss(x[:1], x[:1])


# ------------------------------------------------------------ lightly, an independent implementation
# Conventions that align: lightly's NTXentLoss(memory_bank_size=0) is SimCLR's loss over the same 2N
# anchors with 2N − 1 candidates each (its logits are ordered differently, which a cross-entropy does
# not see); with a memory bank it is MoCo's loss, the bank used as the queue as it is (not normalised,
# so we hand it normalised keys). BarlowTwinsLoss(lambda_param) standardises with F.batch_norm (biased
# variance, eps 1e-5), as we do. NegativeCosineSimilarity is −mean cos, so byol_loss = 2 + 2 · it.
@pytest.mark.parametrize("seed,n,d,tau", [(0, 1, 4, 0.5), (1, 8, 16, 0.5), (2, 32, 8, 0.1), (3, 5, 3, 0.01)])
def test_nt_xent_matches_lightly(seed, n, d, tau):
    z1, z2 = randn(n, d, seed=seed), randn(n, d, seed=seed + 1)
    want = NTXentLoss(temperature=tau, memory_bank_size=0)(z1, z2)
    assert nt_xent_loss(z1, z2, tau).item() == pytest.approx(want.item(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed,n,k,d,tau", [(0, 4, 16, 8, 0.2), (1, 16, 64, 32, 0.07)])
def test_moco_matches_lightly_with_a_memory_bank(seed, n, k, d, tau):
    q, key, queue = randn(n, d, seed=seed), randn(n, d, seed=seed + 1), randn(k, d, seed=seed + 2)
    lightly_loss = NTXentLoss(temperature=tau, memory_bank_size=(k, d)).double()
    lightly_loss.memory_bank.bank = F.normalize(queue, dim=1).clone()  # (K, D): lightly does not normalise it
    want = lightly_loss(q, key)  # q has no grad, so the bank is not updated
    assert moco_loss(q, key, queue, tau).item() == pytest.approx(want.item(), rel=1e-9)


@pytest.mark.parametrize("seed,n,d,lambd", [(0, 4, 3, 5e-3), (1, 32, 16, 5e-3), (2, 9, 5, 0.5)])
def test_barlow_twins_matches_lightly(seed, n, d, lambd):
    z1, z2 = randn(n, d, seed=seed) * 2 + 1, randn(n, d, seed=seed + 1)
    want = BarlowTwinsLoss(lambda_param=lambd)(z1, z2)
    assert barlow_twins_loss(z1, z2, lambd).item() == pytest.approx(want.item(), rel=1e-9)


def test_byol_matches_lightly_negative_cosine_similarity():
    p, z = randn(12, 7, seed=1), randn(12, 7, seed=2)
    assert byol_loss(p, z).item() == pytest.approx(2 + 2 * NegativeCosineSimilarity()(p, z).item(), rel=1e-12)


# ------------------------------------------------------------------------------- the module
def test_exports_are_one_object_wherever_imported_from():
    assert ssl.info_nce_loss is softmax.info_nce_loss and ssl.clip_loss is softmax.clip_loss
    for name in ssl.__all__:
        assert getattr(losses, name) is getattr(ssl, name)
    assert len(losses.__all__) == len(set(losses.__all__))
    for fn in (nt_xent_loss, moco_loss, byol_loss, barlow_twins_loss):
        assert fn.__doc__.lstrip().startswith(":math:"), fn.__name__  # the formula is the first line


def test_no_python_loop_in_the_losses():
    tree = ast.parse((ROOT / "course_lib/losses/ssl.py").read_text())
    loops = [node.lineno for node in ast.walk(tree)
             if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.comprehension))]
    assert loops == []


@pytest.mark.parametrize("loss", ["info_nce_in_batch", "info_nce_queue", "clip"])
def test_softmax_losses_give_zero_on_an_empty_batch(loss):
    q = torch.zeros(0, 4, requires_grad=True)
    k = torch.zeros(0, 4)
    value = {"info_nce_in_batch": lambda: info_nce_loss(q, k),
             "info_nce_queue": lambda: info_nce_loss(q, k, torch.randn(5, 4)),
             "clip": lambda: clip_loss(q, k)}[loss]()
    assert value.ndim == 0 and value.item() == 0.0 and value.requires_grad
