"""course_lib.losses.metric against independent computations.

Each loss is checked against (1) a slow Python loop written from the paper's / slide's formula,
(2) pytorch-metric-learning (pml) where its convention can be matched (each test says how), plus
gradcheck in float64, the no-valid-term / duplicate / tie edge cases, half precision at extreme
scales, shape errors, and an AST check that no Python loop runs over the batch.
"""
import ast
import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from course_lib import losses
from course_lib.losses import metric as M

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
from pytorch_metric_learning.distances import (  # noqa: E402
    CosineSimilarity, DotProductSimilarity, LpDistance,
)
from pytorch_metric_learning.miners import BatchHardMiner  # noqa: E402
from pytorch_metric_learning.reducers import AvgNonZeroReducer, MeanReducer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


# --------------------------------------------------------------------------------- helpers
def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=torch.float64, requires_grad=False):
    return torch.randn(*shape, generator=gen(seed), dtype=dtype).requires_grad_(requires_grad)


def pk_labels(p, k, seed=0):
    """P classes x K samples, shuffled, with non-contiguous ids."""
    labels = torch.arange(p).repeat_interleave(k) * 3 + 5
    return labels[torch.randperm(p * k, generator=gen(seed))]


def d(u, v, squared=False):
    """Euclidean distance of two vectors, the slow way."""
    s = sum((float(a) - float(b)) ** 2 for a, b in zip(u, v))
    return s if squared else math.sqrt(s)


def relu(v):
    return max(v, 0.0)


def check_zero_and_connected(loss, x):
    assert loss.ndim == 0 and loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and (x.grad == 0).all()


def lp(power=1):
    """pml Euclidean distance with our convention: no normalisation, power 1 (or 2 = squared)."""
    return LpDistance(normalize_embeddings=False, p=2, power=power)


# ------------------------------------------------------------------------------ contrastive
def loop_contrastive(z1, z2, same, margin, squared_hinge):
    m = 2 * len(z1)  # images in the batch (slide 000)
    total = 0.0
    for i in range(len(z1)):
        D = d(z1[i], z2[i])
        hinge = relu(margin - D) ** (2 if squared_hinge else 1)
        total += float(same[i]) * D ** 2 + (1 - float(same[i])) * hinge
    return total / m


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("squared_hinge", [False, True])
def test_contrastive_loop(seed, squared_hinge):
    z1, z2 = randn(10, 3, seed=seed), randn(10, 3, seed=seed + 10)
    same = torch.rand(10, generator=gen(seed)) < 0.5
    for margin in (0.5, 2.0, 4.0):
        got = losses.contrastive_loss(z1, z2, same, margin, squared_hinge)
        assert got.ndim == 0
        assert got.item() == pytest.approx(loop_contrastive(z1, z2, same, margin, squared_hinge), rel=1e-10)
    # 0/1 integer `same` means the same as bool
    assert losses.contrastive_loss(z1, z2, same.long(), 2.0).item() == pytest.approx(
        losses.contrastive_loss(z1, z2, same, 2.0).item())


@pytest.mark.parametrize("seed", SEEDS)
def test_contrastive_vs_pml(seed):
    # pml ContrastiveLoss is pos: [D - pos_margin]_+, neg: [neg_margin - D]_+, each reduced on its own.
    # Aligned: pairs given explicitly as indices into cat(z1, z2); pos part with LpDistance(power=2)
    # (our D^2) and pos_margin=0; neg part with LpDistance(power=1, no normalisation), neg_margin=m;
    # MeanReducer on each; ours = (n_pos * mean_pos + n_neg * mean_neg) / (2N). Only the plain hinge
    # can be matched (pml has no squared hinge): the squared variant is checked by the loop above.
    N, margin = 12, 2.5
    z1, z2 = randn(N, 4, seed=seed), randn(N, 4, seed=seed + 10)
    same = torch.zeros(N, dtype=torch.bool)
    same[torch.randperm(N, generator=gen(seed))[: N // 2]] = True
    emb = torch.cat([z1, z2])
    i = torch.arange(N)
    pos, neg = i[same], i[~same]
    empty = torch.empty(0, dtype=torch.long)
    pml_pos = pml_losses.ContrastiveLoss(pos_margin=0, neg_margin=margin, distance=lp(2), reducer=MeanReducer())
    pml_neg = pml_losses.ContrastiveLoss(pos_margin=0, neg_margin=margin, distance=lp(1), reducer=MeanReducer())
    mean_pos = pml_pos(emb, indices_tuple=(pos, pos + N, empty, empty))
    mean_neg = pml_neg(emb, indices_tuple=(empty, empty, neg, neg + N))
    expected = (len(pos) * mean_pos + len(neg) * mean_neg) / (2 * N)
    assert losses.contrastive_loss(z1, z2, same, margin).item() == pytest.approx(expected.item(), rel=1e-9)


@pytest.mark.parametrize("squared_hinge", [False, True])
def test_contrastive_grad_closed_form_equals_autograd(squared_hinge):
    z1, z2 = randn(16, 5, seed=3), randn(16, 5, seed=4)
    same = torch.arange(16) % 2 == 0
    margin = 3.0  # some negatives inside the margin, some outside
    g = losses.contrastive_loss_grad(z1, z2, same, margin, squared_hinge)
    assert g.shape == (16,) and not g.requires_grad
    D = (z1 - z2).norm(dim=1).detach().requires_grad_(True)
    assert ((D < margin) & ~same).any() and ((D > margin) & ~same).any()
    (auto,) = torch.autograd.grad(losses.contrastive_loss_from_distances(D, same, margin, squared_hinge), D)
    torch.testing.assert_close(g, auto, rtol=1e-12, atol=1e-14)
    # and through the chain rule to the embeddings: dJ/dz1_i = dJ/dD_i * (z1_i - z2_i) / D_i
    z1g = z1.clone().requires_grad_(True)
    (dz1,) = torch.autograd.grad(losses.contrastive_loss(z1g, z2, same, margin, squared_hinge), z1g)
    torch.testing.assert_close(dz1, g.unsqueeze(1) * (z1 - z2) / D.detach().unsqueeze(1))
    if squared_hinge:  # slide 000 verbatim: 2/m (y D - (1-y)[a - D]_+), m = 2N
        m = 2 * 16
        slide = [2 / m * (float(y) * float(Di) - (1 - float(y)) * relu(margin - float(Di))) for y, Di in zip(same, D.detach())]
        assert g.tolist() == pytest.approx(slide, rel=1e-12)


def test_contrastive_grad_at_the_margin_matches_autograd():
    # D exactly = margin: [a - D]_+ has derivative 0 there in autograd, and in the closed form.
    z1 = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    z2 = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    same = torch.tensor([False, False])
    D = torch.tensor([2.0, 1.0], dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(losses.contrastive_loss_from_distances(D, same, 2.0), D)
    torch.testing.assert_close(losses.contrastive_loss_grad(z1, z2, same, 2.0), auto)


# ---------------------------------------------------------------------------------- triplet
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_triplet_loss_loop_and_pml(seed, squared):
    a, p, n = randn(9, 4, seed=seed), randn(9, 4, seed=seed + 10), randn(9, 4, seed=seed + 20)
    margin = 1.0
    expected = sum(relu(d(a[i], p[i], squared) - d(a[i], n[i], squared) + margin) for i in range(9)) / 9
    got = losses.triplet_loss(a, p, n, margin, squared)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    # pml TripletMarginLoss, aligned: triplets given as indices into cat(a, p, n); LpDistance without
    # normalisation, power=2 for FaceNet's squared distance; MeanReducer (mean over all triplets,
    # where pml's default AvgNonZeroReducer would skip the zero ones).
    emb = torch.cat([a, p, n])
    i = torch.arange(9)
    ref = pml_losses.TripletMarginLoss(margin=margin, distance=lp(2 if squared else 1), reducer=MeanReducer())
    assert got.item() == pytest.approx(ref(emb, indices_tuple=(i, i + 9, i + 18)).item(), rel=1e-9)


def test_triplet_loss_is_the_mean_and_twice_slide_000_J():
    """The docstring's claim: the mean over the N triplets (FaceNet's sum / N), which is twice
    slide 000's J = 3/(2m) Σ [D²_ap − D²_an + α]₊ with m = 3N images (not equal to it)."""
    a, p, n = randn(6, 3, seed=3), randn(6, 3, seed=4), randn(6, 3, seed=5)
    hinge = F.relu((a - p).pow(2).sum(1) - (a - n).pow(2).sum(1) + 0.5)  # (N,)
    m = 3 * len(a)
    slide_J = 3 / (2 * m) * hinge.sum()
    got = losses.triplet_loss(a, p, n, margin=0.5, squared=True)
    assert got.item() == pytest.approx(hinge.mean().item(), rel=1e-12)
    assert got.item() == pytest.approx(2 * slide_J.item(), rel=1e-12)


def loop_batch_all(x, labels, margin, squared=False):
    terms = []
    N = len(x)
    for a, p, n in itertools.product(range(N), repeat=3):
        if a != p and labels[a] == labels[p] and labels[n] != labels[a]:
            terms.append(relu(margin + d(x[a], x[p], squared) - d(x[a], x[n], squared)))
    positive = [t for t in terms if t > 0]
    return sum(positive) / len(positive) if positive else 0.0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("squared", [False, True])
def test_batch_all_loop_and_pml(seed, squared):
    x, labels = randn(12, 3, seed=seed), pk_labels(4, 3, seed)
    margin = 0.5
    got = losses.batch_all_triplet_loss(x, labels, margin, squared)
    assert got.item() == pytest.approx(loop_batch_all(x, labels, margin, squared), rel=1e-9)
    # pml TripletMarginLoss with its defaults *is* "BA != 0": all triplets from labels, and the
    # AvgNonZeroReducer (mean over triplets with loss > 0). Aligned: LpDistance without
    # normalisation (power 2 when squared).
    ref = pml_losses.TripletMarginLoss(margin=margin, distance=lp(2 if squared else 1), reducer=AvgNonZeroReducer())
    assert got.item() == pytest.approx(ref(x, labels).item(), rel=1e-9)


def loop_batch_hard(x, labels, margin, squared=False):
    terms = []
    N = len(x)
    for a in range(N):
        pos = [d(x[a], x[p], squared) for p in range(N) if p != a and labels[p] == labels[a]]
        neg = [d(x[a], x[n], squared) for n in range(N) if labels[n] != labels[a]]
        if pos and neg:
            terms.append(relu(margin + max(pos) - min(neg)))
    return sum(terms) / len(terms) if terms else 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_hard_loop_and_pml(seed):
    x, labels = randn(15, 3, seed=seed), pk_labels(5, 3, seed)
    labels[0] = 1000  # an anchor with no positive: left out of the mean
    margin = 0.5
    got = losses.batch_hard_triplet_loss(x, labels, margin)
    assert got.item() == pytest.approx(loop_batch_hard(x, labels, margin), rel=1e-9)
    assert losses.batch_hard_triplet_loss(x, labels, margin, squared=True).item() == pytest.approx(
        loop_batch_hard(x, labels, margin, squared=True), rel=1e-9)
    # pml BatchHardMiner (farthest positive, nearest negative, anchors with both) feeding
    # TripletMarginLoss; aligned: LpDistance without normalisation for both, MeanReducer (mean over
    # the mined anchors, zero losses included).
    miner = BatchHardMiner(distance=lp())
    ref = pml_losses.TripletMarginLoss(margin=margin, distance=lp(), reducer=MeanReducer())
    assert got.item() == pytest.approx(ref(x, labels, miner(x, labels)).item(), rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_triplet_loss_from_indices_composes_miner_and_loss(seed):
    from course_lib.mining import mine_triplets

    x, labels = randn(12, 3, seed=seed), pk_labels(4, 3, seed)
    # distance -> miner ("all") -> loss -> reduction "mean_nonzero" is batch-all
    a, p, n = mine_triplets(x, labels, "all")
    torch.testing.assert_close(
        losses.triplet_loss_from_indices(x, a, p, n, margin=0.5, reduction="mean_nonzero"),
        losses.batch_all_triplet_loss(x, labels, margin=0.5))
    # the other reductions, against the loop over the same triplets
    a, p, n = mine_triplets(x, labels, "semihard", margin=0.5)
    per = [relu(d(x[i], x[j]) - d(x[i], x[k]) + 0.5) for i, j, k in zip(a, p, n)]
    none = losses.triplet_loss_from_indices(x, a, p, n, margin=0.5, reduction="none")
    assert none.tolist() == pytest.approx(per, rel=1e-9)
    assert losses.triplet_loss_from_indices(x, a, p, n, 0.5, reduction="sum").item() == pytest.approx(sum(per))
    assert losses.triplet_loss_from_indices(x, a, p, n, 0.5).item() == pytest.approx(sum(per) / max(len(per), 1))
    with pytest.raises(ValueError, match="reduction"):
        losses.triplet_loss_from_indices(x, a, p, n, reduction="avg")


def loop_hard_cluster(x, labels, margin):
    classes = sorted(set(labels.tolist()))
    centres = {c: [sum(float(x[i][k]) for i in range(len(x)) if labels[i] == c) / int((labels == c).sum())
                   for k in range(x.shape[1])] for c in classes}
    if len(classes) < 2:
        return 0.0
    total = 0.0
    for c in classes:
        intra = max(d(x[i], centres[c], True) for i in range(len(x)) if labels[i] == c)
        inter = min(d(centres[c], centres[o], True) for o in classes if o != c)
        total += relu(intra - inter + margin)
    return total / len(classes)


@pytest.mark.parametrize("seed", SEEDS)
def test_hard_cluster_loop(seed):
    x, labels = randn(14, 3, seed=seed), pk_labels(4, 3, seed)
    labels = torch.cat([labels, torch.tensor([99, 99])])  # uneven class sizes
    for margin in (0.2, 3.0):
        got = losses.hard_cluster_triplet_loss(x, labels, margin)
        assert got.item() == pytest.approx(loop_hard_cluster(x, labels, margin), rel=1e-9)


def test_triplet_ce_is_batch_hard_plus_weighted_ce():
    x, labels = randn(12, 3, seed=0), torch.arange(4).repeat_interleave(3)
    logits = randn(12, 4, seed=1)
    ce = sum(-float(torch.log_softmax(logits[i], 0)[labels[i]]) for i in range(12)) / 12
    for w in (1.0, 0.3):
        got = losses.triplet_ce_loss(x, logits, labels, margin=0.5, weight=w)
        assert got.item() == pytest.approx(loop_batch_hard(x, labels, 0.5) + w * ce, rel=1e-9)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        losses.triplet_ce_loss(x, logits[:5], labels)


# ------------------------------------------------------------------------- lifted, N-pair
def loop_lifted(x, labels, margin, hard=False):
    N = len(x)
    total, count = 0.0, 0
    for i in range(N):
        for j in range(i + 1, N):
            if labels[i] != labels[j]:
                continue
            count += 1
            neg_i = [margin - d(x[i], x[k]) for k in range(N) if labels[k] != labels[i]]
            neg_j = [margin - d(x[j], x[l]) for l in range(N) if labels[l] != labels[j]]
            if not neg_i:
                continue
            if hard:
                J = max(max(neg_i), max(neg_j)) + d(x[i], x[j])
            else:
                J = math.log(sum(math.exp(v) for v in neg_i) + sum(math.exp(v) for v in neg_j)) + d(x[i], x[j])
            total += relu(J) ** 2
    return total / (2 * count) if count else 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_lifted_loop_and_pml(seed):
    x, labels = randn(12, 3, seed=seed), pk_labels(4, 3, seed)
    for margin in (1.0, 3.0):
        got = losses.lifted_structured_loss(x, labels, margin)
        assert got.item() == pytest.approx(loop_lifted(x, labels, margin), rel=1e-9)
        hard = losses.lifted_structured_loss_hard(x, labels, margin)
        assert hard.item() == pytest.approx(loop_lifted(x, labels, margin, hard=True), rel=1e-9)
        assert hard.item() <= got.item() + 1e-12  # logsumexp >= max: the smooth one bounds the hard one
    # pml LiftedStructureLoss: per *ordered* positive pair [J_ij]_+^2 / 2, where J_ij sums the
    # negatives of both i and j (the same formula). Aligned: neg_margin=m, pos_margin=0, LpDistance
    # without normalisation, MeanReducer over the 2|P| ordered pairs -> sum_{i<j} [J]^2 / (2|P|).
    ref = pml_losses.LiftedStructureLoss(neg_margin=1.0, pos_margin=0, distance=lp(), reducer=MeanReducer())
    assert losses.lifted_structured_loss(x, labels, 1.0).item() == pytest.approx(ref(x, labels).item(), rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_npair_loop_and_pml(seed):
    f_a, f_p = randn(7, 4, seed=seed), randn(7, 4, seed=seed + 10)
    expected = 0.0
    for i in range(7):
        pos = float(f_a[i] @ f_p[i])
        expected += math.log(1 + sum(math.exp(float(f_a[i] @ f_p[j]) - pos) for j in range(7) if j != i))
    got = losses.npair_loss(f_a, f_p)
    assert got.item() == pytest.approx(expected / 7, rel=1e-10)
    # pml NPairsLoss on cat(anchors, positives) with labels (0..N-1, 0..N-1): it keeps one positive
    # pair per label, (i, N+i), and cross-entropies the dot products. Aligned: DotProductSimilarity
    # without normalisation (pml normalises by default), default MeanReducer.
    ref = pml_losses.NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False))
    labels = torch.arange(7).repeat(2)
    assert got.item() == pytest.approx(ref(torch.cat([f_a, f_p]), labels).item(), rel=1e-9)


# ------------------------------------------------------------------------ InfoNCE and CLIP
def unit(v):
    n = math.sqrt(sum(float(a) ** 2 for a in v))
    return [float(a) / n for a in v]


def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def loop_info_nce(q, k, negs, tau, per_query):
    total = 0.0
    for i in range(len(q)):
        qi = unit(q[i])
        keys = [unit(k[i])] + [unit(v) for v in (negs[i] if per_query else negs)]
        logits = [dot(qi, kk) / tau for kk in keys]
        mx = max(logits)
        total += -(logits[0] - mx - math.log(sum(math.exp(v - mx) for v in logits)))
    return total / len(q)


@pytest.mark.parametrize("seed", SEEDS)
def test_info_nce_loop_and_pml(seed):
    q, k = randn(6, 4, seed=seed), randn(6, 4, seed=seed + 10)
    shared, per = randn(5, 4, seed=seed + 20), randn(6, 5, 4, seed=seed + 30)
    for tau in (0.1, 0.5):
        got = losses.info_nce_loss(q, k, shared, tau)
        assert got.item() == pytest.approx(loop_info_nce(q, k, shared, tau, False), rel=1e-9)
        got_per = losses.info_nce_loss(q, k, per, tau)
        assert got_per.item() == pytest.approx(loop_info_nce(q, k, per, tau, True), rel=1e-9)
    # in-batch negatives (None): the other queries' positive keys
    assert losses.info_nce_loss(q, k, None, 0.1).item() == pytest.approx(
        loop_info_nce(q, k, [[k[j] for j in range(6) if j != i] for i in range(6)], 0.1, True), rel=1e-9)
    # pml NTXentLoss with shared negatives: embeddings cat(q, k, negatives); positive pairs (i, N+i),
    # negative pairs (i, 2N+j) for every query i and negative j. Aligned: its default
    # CosineSimilarity (normalises, as we do), the same temperature, default MeanReducer over the
    # N positive pairs.
    ref = pml_losses.NTXentLoss(temperature=0.1)
    N, Mn = 6, 5
    emb = torch.cat([q, k, shared])
    i = torch.arange(N)
    a2, nn_ = torch.arange(N).repeat_interleave(Mn), 2 * N + torch.arange(Mn).repeat(N)
    expected = ref(emb, indices_tuple=(i, i + N, a2, nn_))
    assert losses.info_nce_loss(q, k, shared, 0.1).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_clip_loop(seed):
    img, txt = randn(5, 4, seed=seed), randn(5, 4, seed=seed + 10)
    tau = 0.07
    I, T = [unit(v) for v in img], [unit(v) for v in txt]
    logits = [[dot(I[i], T[j]) / tau for j in range(5)] for i in range(5)]

    def ce_rows(rows):
        return sum(-(r[i] - math.log(sum(math.exp(v) for v in r))) for i, r in enumerate(rows)) / len(rows)

    expected = 0.5 * (ce_rows(logits) + ce_rows([list(col) for col in zip(*logits)]))
    assert losses.clip_loss(img, txt, tau).item() == pytest.approx(expected, rel=1e-9)
    assert losses.clip_loss(img, txt, tau).item() == pytest.approx(losses.clip_loss(txt, img, tau).item())


# --------------------------------------------------------------------------- center loss
def test_center_loss_loop_and_module():
    x, labels, centres = randn(8, 3, seed=0), torch.tensor([0, 2, 1, 2, 0, 0, 1, 2]), randn(3, 3, seed=1)
    expected = 0.5 * sum(d(x[i], centres[labels[i]], True) for i in range(8)) / 8
    assert losses.center_loss(x, labels, centres).item() == pytest.approx(expected, rel=1e-10)
    module = losses.CenterLoss(num_classes=3, embedding_dim=3).double()
    assert isinstance(module.centers, torch.nn.Parameter) and module.centers.shape == (3, 3)
    loss = module(x, labels)
    loss.backward()
    # dL/dc_k = -(1/N) sum_{i: y_i = k} (x_i - c_k); class 1 has members, so its centre moves
    g = -(x[labels == 1] - module.centers.detach()[1]).sum(0) / 8
    torch.testing.assert_close(module.centers.grad[1], g)
    with pytest.raises(ValueError, match=r"\[0, C\)"):
        losses.center_loss(x, labels + 1, centres)
    with pytest.raises(ValueError, match=r"\(C, D\)"):
        losses.center_loss(x, labels, centres[:, :2])


# ----------------------------------------------------------------------- CosFace, ArcFace
def loop_margin_logits(x, W, labels, s, m, kind, K=1):
    C = len(W) // K
    out = []
    for i in range(len(x)):
        xi = unit(x[i])
        row = []
        for c in range(C):
            cos = max(dot(xi, unit(W[c * K + k])) for k in range(K))
            if c == int(labels[i]):
                if kind == "cosface":
                    cos = cos - m
                else:
                    theta = math.acos(cos)
                    cos = math.cos(theta + m) if theta + m <= math.pi else cos - m * math.sin(m)
            row.append(s * cos)
        out.append(row)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("seed", SEEDS)
def test_cosface_loop_and_pml(seed):
    x, W, labels = randn(8, 5, seed=seed), randn(4, 5, seed=seed + 1), torch.randint(4, (8,), generator=gen(seed))
    got = losses.cosface_logits(x, W, labels, s=30.0, m=0.35)
    torch.testing.assert_close(got, loop_margin_logits(x, W, labels, 30.0, 0.35, "cosface"))
    # pml CosFaceLoss: W is (D, C) there; aligned by W = weight.T, same margin and scale, MeanReducer
    # (mean cross-entropy over the batch); its default CosineSimilarity normalises both sides.
    ref = pml_losses.CosFaceLoss(num_classes=4, embedding_size=5, margin=0.35, scale=30.0, reducer=MeanReducer())
    ref.W.data = W.T.clone()
    assert F.cross_entropy(got, labels).item() == pytest.approx(ref(x, labels).item(), rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("K", [1, 3])
def test_arcface_loop_and_pml(seed, K):
    C, m, s = 4, 0.5, 30.0
    x, W, labels = randn(8, 5, seed=seed), randn(C * K, 5, seed=seed + 1), torch.randint(C, (8,), generator=gen(seed))
    # make one target angle > pi - m, to exercise the fallback cos(theta) - m sin(m)
    x[0] = -W[labels[0] * K: labels[0] * K + K].sum(0) + 0.01 * x[0]
    got = losses.arcface_logits(x, W, labels, s=s, m=m, subcenters=K)
    torch.testing.assert_close(got, loop_margin_logits(x, W, labels, s, m, "arcface", K), rtol=1e-7, atol=1e-6)
    # pml ArcFaceLoss / SubCenterArcFaceLoss: margin in *degrees*, W (D, C*K) with column c*K + k for
    # sub-centre k of class c (the same layout as our rows). Aligned: margin=degrees(m), W=weight.T,
    # MeanReducer. pml clamps the cosine to [-1, 1], we to (-1+eps, 1-eps): equal here.
    kw = dict(num_classes=C, embedding_size=5, margin=math.degrees(m), scale=s, reducer=MeanReducer())
    ref = pml_losses.ArcFaceLoss(**kw) if K == 1 else pml_losses.SubCenterArcFaceLoss(sub_centers=K, **kw)
    ref.W.data = W.T.clone()
    assert F.cross_entropy(got, labels).item() == pytest.approx(ref(x, labels).item(), rel=1e-7)


def test_arcface_target_logit_monotonic_and_gradient_safe():
    # target logit as a function of theta in [0, pi]: decreasing everywhere (fallback past pi - m)
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    x = torch.stack([torch.cos(theta), torch.sin(theta)], 1)  # (T, 2) at angle theta from w
    W = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    labels = torch.zeros(len(x), dtype=torch.long)
    target = losses.arcface_logits(x, W, labels, s=1.0, m=0.5)[:, 0]
    assert (target.diff() < 0).all()
    # at cos = +-1 exactly (embedding parallel / antiparallel to its class row) the gradient is finite
    xs = torch.tensor([[2.0, 0.0], [-3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    F.cross_entropy(losses.arcface_logits(xs, W, torch.tensor([0, 0]), s=64.0), torch.tensor([0, 0])).backward()
    assert torch.isfinite(xs.grad).all()


def test_angular_margin_head():
    x, labels = randn(6, 5, seed=0, dtype=torch.float32), torch.tensor([0, 1, 2, 0, 1, 2])
    for kind, fn in (("arcface", losses.arcface_logits), ("cosface", losses.cosface_logits)):
        head = losses.AngularMarginHead(5, 3, kind=kind)
        torch.testing.assert_close(head(x, labels), fn(x, head.weight, labels))
        torch.testing.assert_close(head(x), 30.0 * F.normalize(x) @ F.normalize(head.weight).T)
    head = losses.AngularMarginHead(5, 3, kind="arcface", subcenters=2, s="adacos")
    assert head.weight.shape == (6, 5) and head.s == pytest.approx(losses.adacos_scale(3))
    soft = losses.AngularMarginHead(5, 3, kind="softmax")
    torch.testing.assert_close(soft(x, labels), x @ soft.weight.T)
    with pytest.raises(ValueError, match="kind"):
        losses.AngularMarginHead(5, 3, kind="sphereface")


def test_adacos_scale():
    assert losses.adacos_scale(10) == pytest.approx(math.sqrt(2) * math.log(9))
    assert losses.adacos_scale(3) == pytest.approx(math.sqrt(2) * math.log(2))
    for bad in (0, 1, 2):
        with pytest.raises(ValueError, match="C >= 3"):
            losses.adacos_scale(bad)


# ------------------------------------------------------------------------------ prototypes
def test_prototypical_loop_any_ids_and_accuracy():
    support, s_labels = randn(9, 3, seed=0), torch.tensor([42, 7, 3, 42, 7, 3, 42, 7, 3])
    query, q_labels = randn(5, 3, seed=1), torch.tensor([3, 42, 7, 7, 3])
    classes = [3, 7, 42]  # prototypes in sorted id order
    protos = [[sum(float(support[i][k]) for i in range(9) if s_labels[i] == c) / 3 for k in range(3)] for c in classes]
    expected = 0.0
    for i in range(5):
        logits = [-d(query[i], pc, True) for pc in protos]
        expected += -(logits[classes.index(int(q_labels[i]))] - math.log(sum(math.exp(v) for v in logits)))
    assert losses.prototypical_loss(support, s_labels, query, q_labels).item() == pytest.approx(expected / 5, rel=1e-10)
    logits, ids = losses.prototype_logits(support, s_labels, query)
    assert ids.tolist() == classes and logits.shape == (5, 3)
    correct = sum(classes[int(logits[i].argmax())] == int(q_labels[i]) for i in range(5))
    assert losses.prototypical_accuracy(support, s_labels, query, q_labels) == pytest.approx(correct / 5)
    # well-separated episode: 100 %
    centres = torch.tensor([[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0]])
    sup = centres.repeat_interleave(2, 0) + 0.1 * torch.randn(6, 2, generator=gen(0))
    assert losses.prototypical_accuracy(sup, torch.tensor([5, 5, 1, 1, 9, 9]), centres, torch.tensor([5, 1, 9])) == 1.0
    with pytest.raises(ValueError, match="support_labels"):
        losses.prototypical_loss(support, s_labels, query, torch.tensor([3, 42, 7, 7, 8]))


# -------------------------------------------------------------------------------- gradcheck
def _labels12():
    return torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])


GRADCHECK = {
    "contrastive": (lambda a, b: losses.contrastive_loss(a, b, torch.tensor([1, 0, 1, 0, 0, 1]), 2.0), (6, 6)),
    "contrastive_sq": (lambda a, b: losses.contrastive_loss(a, b, torch.tensor([1, 0, 1, 0, 0, 1]), 2.0, True), (6, 6)),
    "triplet": (lambda a, b, c: losses.triplet_loss(a, b, c, 1.0), (6, 6, 6)),
    "triplet_l2": (lambda a, b, c: losses.triplet_loss(a, b, c, 1.0, squared=False), (6, 6, 6)),
    "batch_all": (lambda x: losses.batch_all_triplet_loss(x, _labels12(), 0.5), (12,)),
    "batch_hard": (lambda x: losses.batch_hard_triplet_loss(x, _labels12(), 0.5), (12,)),
    "hard_cluster": (lambda x: losses.hard_cluster_triplet_loss(x, _labels12(), 2.0), (12,)),
    "lifted": (lambda x: losses.lifted_structured_loss(x, _labels12()), (12,)),
    "lifted_hard": (lambda x: losses.lifted_structured_loss_hard(x, _labels12(), 2.0), (12,)),
    "npair": (lambda a, b: losses.npair_loss(a, b), (6, 6)),
    "info_nce_shared": (lambda a, b, c: losses.info_nce_loss(a, b, c, 0.5), (6, 6, 4)),
    "info_nce_per_query": (lambda a, b, c: losses.info_nce_loss(a, b, c.view(6, 2, 3), 0.5), (6, 6, 12)),
    "clip": (lambda a, b: losses.clip_loss(a, b, 0.5), (6, 6)),
    "center": (lambda x, c: losses.center_loss(x, torch.tensor([0, 1, 2, 0, 1, 2]), c), (6, 3)),
    "cosface": (lambda x, w: F.cross_entropy(losses.cosface_logits(x, w, torch.tensor([0, 1, 2, 0, 1, 2]), s=4.0),
                                             torch.tensor([0, 1, 2, 0, 1, 2])), (6, 3)),
    "arcface_K2": (lambda x, w: F.cross_entropy(
        losses.arcface_logits(x, w, torch.tensor([0, 1, 2, 0, 1, 2]), s=4.0, subcenters=2),
        torch.tensor([0, 1, 2, 0, 1, 2])), (6, 6)),
    "prototypical": (lambda s, q: losses.prototypical_loss(s, torch.tensor([4, 4, 9, 9, 1, 1]), q,
                                                           torch.tensor([9, 1, 4, 4, 1, 9])), (6, 6)),
}


@pytest.mark.parametrize("name", sorted(GRADCHECK))
def test_gradcheck_float64(name):
    fn, rows = GRADCHECK[name]
    inputs = [randn(r, 3, seed=10 * i + 1, requires_grad=True) for i, r in enumerate(rows)]
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------ edge cases
LABEL_LOSSES = {
    "batch_all": losses.batch_all_triplet_loss,
    "batch_hard": losses.batch_hard_triplet_loss,
    "hard_cluster": losses.hard_cluster_triplet_loss,
    "lifted": losses.lifted_structured_loss,
    "lifted_hard": losses.lifted_structured_loss_hard,
}


@pytest.mark.parametrize("name", sorted(LABEL_LOSSES))
def test_one_class_in_batch_is_zero_and_connected(name):
    x = randn(6, 3, seed=0, dtype=torch.float32, requires_grad=True)
    check_zero_and_connected(LABEL_LOSSES[name](x, torch.full((6,), 4)), x)


@pytest.mark.parametrize("name", ["batch_all", "batch_hard", "lifted", "lifted_hard"])
def test_no_positive_pair_is_zero_and_connected(name):
    x = randn(5, 3, seed=0, dtype=torch.float32, requires_grad=True)
    check_zero_and_connected(LABEL_LOSSES[name](x, torch.arange(5)), x)


def test_no_triplet_from_indices_and_empty_batches():
    x = randn(5, 3, seed=0, dtype=torch.float32, requires_grad=True)
    e = torch.empty(0, dtype=torch.long)
    for reduction in ("mean", "sum", "mean_nonzero"):
        check_zero_and_connected(losses.triplet_loss_from_indices(x, e, e, e, reduction=reduction), x)
        x.grad = None
    # batch-all where every triplet is already satisfied (loss 0 for all): 0, not 0/0
    far = torch.tensor([[0.0, 0], [0, 0.1], [100, 0], [100, 0.1]], requires_grad=True)
    check_zero_and_connected(losses.batch_all_triplet_loss(far, torch.tensor([0, 0, 1, 1])), far)


@pytest.mark.parametrize("name", sorted(LABEL_LOSSES))
def test_duplicate_embeddings_have_finite_gradients(name):
    base = randn(3, 4, seed=1, dtype=torch.float32)
    x = base.repeat_interleave(3, 0).clone().requires_grad_(True)  # zero distances within each class
    labels = torch.arange(3).repeat_interleave(3)
    labels[0] = 1  # and a duplicate across classes: a zero-distance negative
    loss = LABEL_LOSSES[name](x, labels, 0.5) if name != "lifted" else LABEL_LOSSES[name](x, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    all_same = torch.zeros(6, 4, requires_grad=True)  # every distance 0
    LABEL_LOSSES[name](all_same, torch.tensor([0, 0, 1, 1, 2, 2])).backward()
    assert torch.isfinite(all_same.grad).all()


def test_pair_losses_with_identical_inputs_have_finite_gradients():
    z = randn(4, 3, seed=0, dtype=torch.float32, requires_grad=True)
    same = torch.tensor([1, 0, 1, 0])
    for sq in (False, True):
        z.grad = None
        loss = losses.contrastive_loss(z, z, same, 1.0, sq)  # D = 0 for every pair
        loss.backward()
        assert loss.item() == pytest.approx(0.5 * 2 * 1.0 / 4) and torch.isfinite(z.grad).all()
        assert torch.isfinite(losses.contrastive_loss_grad(z, z, same, 1.0, sq)).all()
    z.grad = None
    losses.triplet_loss(z, z, z, 0.2, squared=False).backward()
    assert torch.isfinite(z.grad).all()


def test_all_distances_equal():
    # vertices of a regular simplex: every pairwise distance is sqrt(2)
    x = torch.eye(6, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    m = 0.3
    assert losses.batch_all_triplet_loss(x, labels, m).item() == pytest.approx(m)  # every triplet: [m]_+ = m
    assert losses.batch_hard_triplet_loss(x, labels, m).item() == pytest.approx(m)
    assert losses.hard_cluster_triplet_loss(x, labels, m).item() == pytest.approx(loop_hard_cluster(x.detach(), labels, m))
    assert losses.lifted_structured_loss(x, labels, 1.0).item() == pytest.approx(loop_lifted(x.detach(), labels, 1.0), rel=1e-6)
    losses.batch_hard_triplet_loss(x, labels, m).backward()
    assert torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------- half precision
HALF = [torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", HALF)
def test_half_precision_extreme_scales(dtype):
    q, k, negs = (randn(32, 16, seed=s, dtype=torch.float32) for s in (0, 1, 2))
    labels = torch.arange(32) % 8
    W = randn(8, 16, seed=3, dtype=torch.float32)
    cases = {
        "info_nce tau=0.01": lambda a, b, c: losses.info_nce_loss(a, b, c, temperature=0.01),
        "info_nce per-query tau=0.01": lambda a, b, c: losses.info_nce_loss(a, b, c.view(32, 1, 16).expand(32, 4, 16), 0.01),
        "clip tau=0.01": lambda a, b, c: losses.clip_loss(a, b, temperature=0.01),
        "arcface s=64": lambda a, b, c: F.cross_entropy(losses.arcface_logits(a, W.to(a.dtype), labels, s=64.0), labels),
        "arcface s=64 K=2": lambda a, b, c: F.cross_entropy(
            losses.arcface_logits(a, torch.cat([W, c[:8]]).to(a.dtype), labels, s=64.0, subcenters=2), labels),
        "cosface s=64": lambda a, b, c: F.cross_entropy(losses.cosface_logits(a, W.to(a.dtype), labels, s=64.0), labels),
        "npair": lambda a, b, c: losses.npair_loss(a, b),
        "contrastive": lambda a, b, c: losses.contrastive_loss(a, b, labels % 2, 8.0),
        "triplet": lambda a, b, c: losses.triplet_loss(a, b, c, 1.0),
        "batch_all": lambda a, b, c: losses.batch_all_triplet_loss(a, labels, 0.5),
        "batch_hard": lambda a, b, c: losses.batch_hard_triplet_loss(a, labels, 0.5),
        "lifted": lambda a, b, c: losses.lifted_structured_loss(a, labels),
        "hard_cluster": lambda a, b, c: losses.hard_cluster_triplet_loss(a, labels),
        "center": lambda a, b, c: losses.center_loss(a, labels, c[:8]),
        "prototypical": lambda a, b, c: losses.prototypical_loss(a, labels, b, labels),
    }
    for name, fn in cases.items():
        ref = fn(q, k, negs)
        a, b, c = (t.to(dtype).requires_grad_(True) for t in (q, k, negs))
        got = fn(a, b, c)
        assert got.dtype == torch.float32 and torch.isfinite(got), name
        got.backward()
        assert all(t.grad is None or torch.isfinite(t.grad).all() for t in (a, b, c)), name
        assert got.item() == pytest.approx(ref.item(), rel=0.05, abs=0.05), name


# ------------------------------------------------------------------------------ shapes
def test_wrong_shapes_raise_value_error_naming_the_shape():
    x2, x3 = torch.randn(4, 3), torch.randn(4, 3, 2)
    labels = torch.arange(4)
    with pytest.raises(ValueError, match=r"expected z1 and z2 of shape \(N, D\)"):
        losses.contrastive_loss(x2, torch.randn(5, 3), torch.ones(4))
    with pytest.raises(ValueError, match=r"expected same of shape \(N,\)"):
        losses.contrastive_loss(x2, x2, torch.ones(3))
    with pytest.raises(ValueError, match=r"expected anchor, positive and negative of shape \(N, D\)"):
        losses.triplet_loss(x2, x2, x3)
    for fn in (losses.batch_all_triplet_loss, losses.batch_hard_triplet_loss, losses.lifted_structured_loss,
               losses.hard_cluster_triplet_loss):
        with pytest.raises(ValueError, match=r"expected embeddings of shape \(N, D\)"):
            fn(x3, labels)
        with pytest.raises(ValueError, match=r"expected labels of shape \(N,\)"):
            fn(x2, torch.arange(5))
        with pytest.raises(ValueError, match=r"integer dtype"):
            fn(x2, labels.float())
    with pytest.raises(ValueError, match=r"expected embeddings of shape \(N, D\) with a floating dtype"):
        losses.batch_all_triplet_loss(torch.ones(4, 3, dtype=torch.long), labels)
    with pytest.raises(ValueError, match=r"expected anchors and positives of shape \(N, D\)"):
        losses.npair_loss(x2, torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"expected negative_keys of shape \(M, D\) or \(N, M, D\)"):
        losses.info_nce_loss(x2, x2, torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"expected negative_keys of shape \(M, D\) or \(N, M, D\)"):
        losses.info_nce_loss(x2, x2, torch.randn(3, 5, 3))
    with pytest.raises(ValueError, match=r"expected image_embeddings and text_embeddings of shape \(N, D\)"):
        losses.clip_loss(x2, torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"expected weight of shape \(C\*K, D\)"):
        losses.arcface_logits(x2, torch.randn(5, 3), labels % 2, subcenters=2)
    with pytest.raises(ValueError, match=r"expected weight of shape \(C\*K, D\)"):
        losses.cosface_logits(x2, torch.randn(5, 2), labels % 2)
    with pytest.raises(ValueError, match=r"\[0, C\)"):
        losses.cosface_logits(x2, torch.randn(2, 3), labels)
    with pytest.raises(ValueError, match=r"expected support and query of shape \(N, D\)"):
        losses.prototypical_loss(x3, labels, x2, labels)
    with pytest.raises(ValueError, match=r"same D"):
        losses.prototypical_loss(x2, labels, torch.randn(2, 5), labels[:2])
    with pytest.raises(ValueError, match=r"expected a, p and n of shape \(T,\)"):
        losses.triplet_loss_from_indices(x2, labels, labels[:2], labels)


def test_losses_are_scalars_and_reexported():
    import course_lib.losses.metric as metric

    for name in metric.__all__:
        assert getattr(losses, name) is getattr(metric, name)
    x, labels = torch.randn(8, 3), torch.arange(8) % 2
    for fn in (losses.batch_all_triplet_loss, losses.batch_hard_triplet_loss, losses.lifted_structured_loss,
               losses.lifted_structured_loss_hard, losses.hard_cluster_triplet_loss):
        assert fn(x, labels).shape == ()


# ------------------------------------------------------------------------ vectorisation
def _loops(path):
    """(line, what) for every for/while statement, and every comprehension that does not iterate
    over a literal tuple/list or the variadic inputs of a validation helper (a fixed, small number)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            found.append((node.lineno, type(node).__name__))
        if isinstance(node, ast.comprehension):
            it = node.iter
            fixed = isinstance(it, (ast.Tuple, ast.List)) or (isinstance(it, ast.Name) and it.id in {"tensors", "ts"})
            if not fixed:
                found.append((it.lineno, "comprehension over " + ast.unparse(it)))
    return found


@pytest.mark.parametrize("path", ["course_lib/losses/metric.py", "course_lib/mining.py", "course_lib/losses/pairs.py",
                                  "course_lib/losses/triplets.py", "course_lib/losses/softmax.py",
                                  "course_lib/losses/classification.py", "course_lib/losses/_ops.py"])
def test_no_python_loop_over_the_batch(path):
    assert _loops(ROOT / path) == []


def test_under_autocast_logits_stay_float32_and_arcface_gradient_is_finite():
    # CPU autocast runs matmuls in bfloat16; the margin, clamp and scale must still happen in float32,
    # or 1 - eps rounds to 1 and acos has an infinite derivative at an embedding on its class row.
    W = torch.randn(4, 8, generator=gen(0))
    x = torch.cat([W[:2] * 3.0, torch.randn(2, 8, generator=gen(1))]).requires_grad_(True)
    labels = torch.tensor([0, 1, 2, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = losses.arcface_logits(x, W, labels, s=64.0)
        loss = F.cross_entropy(logits, labels)
        others = [losses.clip_loss(x, x.flip(0), 0.01), losses.info_nce_loss(x, x.flip(0), W, 0.01),
                  losses.npair_loss(x, x.flip(0)), losses.prototypical_loss(x, labels, x, labels)]
    assert logits.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in others)
