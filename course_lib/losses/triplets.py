r"""Triplet losses (chapters 03-04): FaceNet's triplet loss, mined triplets, batch-all, batch-hard,
hard-cluster, triplet + cross-entropy, and the lifted structured loss over all pairs of a batch.

Schroff et al. 2015; Hermans, Beyer & Leibe 2017; Alex et al. 2018; Song et al. 2016 (UTD CS 6384, HSE and
Chierchia slides). Distance -> miner -> loss -> reduction: the miners are in
:mod:`course_lib.mining`. Conventions as in :mod:`course_lib.losses.metric`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _checks as check
from ..distances import pairwise_distances
from ..mining import batch_hard_pairs, negative_mask, positive_mask
from ._ops import _distance_matrix, _masked_mean, _mm, _row_distances

_REDUCTIONS = ("mean", "sum", "none", "mean_nonzero")


def triplet_loss(anchor, positive, negative, margin: float = 0.2, squared: bool = True):
    r""":math:`J = \frac{3}{2m}\sum_i^{m/3} [D_{ia,ip}^2 - D_{ia,in}^2 + \alpha]_+`.

    FaceNet triplet loss, Schroff, Kalenichenko & Philbin 2015 (UTD CS 6384, HSE and Chierchia slides).
    ``anchor``, ``positive``, ``negative`` (N, D): row i is one triplet. Returns the mean over
    the N triplets of :math:`[d(a,p) - d(a,n) + \alpha]_+` (FaceNet's sum divided by N), with
    :math:`d` the squared Euclidean distance (``squared=True``, FaceNet) or the Euclidean one.
    The UTD CS 6384 slides' :math:`J` above, with :math:`m = 3N` images, is :math:`\frac{1}{2N}` times the
    sum, i.e. half of this mean: a constant factor, which only rescales the learning rate.
    Not normalised (FaceNet normalises in the network, before the loss).
    """
    a, p, n = check.floats("anchor, positive and negative", anchor, positive, negative)  # (N, D) each
    d_ap = _row_distances(a, p, squared)  # (N,) D²_{ia,ip} (or D)
    d_an = _row_distances(a, n, squared)  # (N,) D²_{ia,in} (or D)
    return F.relu(d_ap - d_an + margin).sum() / max(len(a), 1)


def triplet_loss_from_indices(embeddings, a, p, n, margin: float = 0.2, squared: bool = False,
                              reduction: str = "mean"):
    r""":math:`\ell_{apn} = [D_{ap} - D_{an} + \alpha]_+` for the mined triplets ``(a, p, n)``.

    The loss end of distance -> miner -> loss -> reduction (e.g. with
    :func:`course_lib.mining.mine_triplets`). ``embeddings`` (N, D); ``a``, ``p``, ``n`` (T,) integer
    indices into it; :math:`D` Euclidean (squared if ``squared=True``), gathered from one (N, N)
    matrix (:func:`course_lib.distances.pairwise_distances`). ``reduction``: ``"mean"`` over the
    T triplets, ``"sum"``, ``"none"`` ((T,) per-triplet losses) or ``"mean_nonzero"`` (mean over
    the triplets with loss > 0, Hermans et al.'s "BA≠0"). No triplet: 0.0, still in the graph.
    Not normalised.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}: expected one of {', '.join(_REDUCTIONS)}")
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    a, p, n = check.indices("a, p and n", a, p, n)  # (T,) each
    D = _distance_matrix(x, squared)  # (N, N)
    a, p, n = (i.to(device=x.device, dtype=torch.long) for i in (a, p, n))
    loss = F.relu(D[a, p] - D[a, n] + margin)  # (T,)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / max(len(loss), 1)
    return _masked_mean(loss, loss > 0)


def batch_all_triplet_loss(embeddings, labels, margin: float = 0.2, squared: bool = False):
    r""":math:`\mathcal{L}_{BA} = \sum_{i=1}^{P}\sum_{a=1}^{K}\sum_{p \ne a}\sum_{j \ne i}\sum_{n=1}^{K} [m + D(f(x^i_a), f(x^i_p)) - D(f(x^i_a), f(x^j_n))]_+`.

    Batch-all triplet loss, Hermans, Beyer & Leibe 2017 ("In Defense of the Triplet Loss"; HSE
    slides), over every valid triplet of the batch. ``embeddings`` (N, D), ``labels`` (N,) integer.
    Reduction: mean over the valid triplets whose loss is > 0 (Hermans' "BA≠0"); 0.0 when there is
    none. :math:`D` Euclidean (``squared=False``, as Hermans) or squared. Not normalised.
    Vectorised over the (P, N) rows of the P positive pairs, never the N³ triplet cube.
    """
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    labels = check.labels(labels, len(x), device=x.device)
    D = _distance_matrix(x, squared)  # (N, N)
    a, p = positive_mask(labels).nonzero(as_tuple=True)  # (P,) positive pairs (a, p)
    is_negative = negative_mask(labels)[a]  # (P, N): n is a negative of a
    loss = F.relu(margin + D[a, p].unsqueeze(1) - D[a])  # (P, N): [m + D_ap − D_an]₊
    loss = loss.masked_fill(~is_negative, 0.0)  # (P, N)
    return _masked_mean(loss, loss > 0)


def batch_hard_triplet_loss(embeddings, labels, margin: float = 0.2, squared: bool = False):
    r""":math:`\mathcal{L}_{BH} = \sum_{i=1}^{P}\sum_{a=1}^{K} [m + \max_{p} D(f(x^i_a), f(x^i_p)) - \min_{j \ne i,\, n} D(f(x^i_a), f(x^j_n))]_+`.

    Batch-hard triplet loss, Hermans, Beyer & Leibe 2017 (HSE and Chierchia slides): for each anchor the
    farthest positive and the nearest negative (:func:`course_lib.mining.batch_hard_pairs`).
    ``embeddings`` (N, D), ``labels`` (N,) integer. Reduction: mean over the anchors that have at
    least one positive and one negative; 0.0 when there is none. :math:`D` Euclidean
    (``squared=False``, as Hermans) or squared. Not normalised. Distance -> miner -> loss: the
    (N, N) matrix is only used to pick the pairs (no gradient); the loss then differentiates the
    2N picked distances, computed row by row.
    """
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    labels = check.labels(labels, len(x), device=x.device)
    with torch.no_grad():  # mining: farthest positive, nearest negative (D² ranks like D)
        hardest_p, hardest_n, valid = batch_hard_pairs(_distance_matrix(x, squared=True), labels)  # (N,) x 3
    d_ap = _row_distances(x, x[hardest_p], squared)  # (N,) max_p D_ap
    d_an = _row_distances(x, x[hardest_n], squared)  # (N,) min_n D_an
    return _masked_mean(F.relu(margin + d_ap - d_an), valid)


def hard_cluster_triplet_loss(embeddings, labels, margin: float = 0.2):
    r""":math:`Lb_c = \sum_i^P \max(d_i^{intra} - d_i^{inter} + \alpha, 0)`, :math:`d_i^{intra} = \max_K \|f(x) - f_i^m\|_2^2`, :math:`d_i^{inter} = \min_{i_d \ne i} \|f_i^m - f_{i_d}^m\|_2^2`.

    Hard-cluster (batch-hard cluster) loss, Alex, Sami, Banerjee & Panda 2018 ("Cluster Loss for
    Person Re-Identification"; HSE slides, "Hard Cluster Sampling"). The definition implemented is
    the slide's, term for term: :math:`f_i^m` is the mean embedding of class i in the batch; the
    intra term is the *farthest member of class i from its own centre*; the inter term is the
    *nearest other class centre* (centre to centre, not sample to centre), both squared
    Euclidean. It is chosen over per-sample variants because it is the one the slide states and
    it makes the loss a statement about whole clusters: the worst-spread sample of a class must
    stay closer to its centre than any other centre is, by :math:`\alpha`.

    ``embeddings`` (N, D), ``labels`` (N,) integer (any ids). Reduction: mean over the P classes
    present (the slide writes a sum; the mean keeps the scale independent of P, like the other
    losses here). Fewer than two classes: 0.0, still in the graph. Gradients flow through the
    centres. Not normalised.
    """
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    labels = check.labels(labels, len(x), device=x.device)
    classes, y = torch.unique(labels, sorted=True, return_inverse=True)  # (P,), (N,)
    P = len(classes)
    member = F.one_hot(y, P).to(x.dtype)  # (N, P)
    f_m = _mm(member.T, x) / member.sum(dim=0).unsqueeze(1)  # (P, D) class centres f_i^m
    to_centre = (x - f_m[y]).pow(2).sum(dim=1)  # (N,) ||f(x) − f_{y}^m||²
    d_intra = to_centre.unsqueeze(1).masked_fill(member == 0, float("-inf")).amax(dim=0)  # (P,)
    between = pairwise_distances(f_m, metric="squared_l2")  # (P, P) ||f_i^m − f_j^m||²
    eye = torch.eye(P, dtype=torch.bool, device=x.device)
    d_inter = between.masked_fill(eye, float("inf")).amin(dim=1)  # (P,): +inf for a lone class
    return F.relu(d_intra - d_inter + margin).mean()  # [−inf]₊ = 0, with gradient 0


def triplet_ce_loss(embeddings, logits, labels, margin: float = 0.2, weight: float = 1.0,
                    squared: bool = False):
    r""":math:`L = L_{\text{triplet}} + L_{\text{CE}}` (HSE slides, "Triplet Loss + Classification").

    Batch-hard triplet loss on ``embeddings`` (N, D) (Hermans et al. 2017,
    :func:`batch_hard_triplet_loss`, mean over anchors) plus ``weight`` times the cross-entropy of
    ``logits`` (N, C) (mean over the batch); ``labels`` (N,) are class indices 0..C-1 for both.
    ``weight`` scales the classification term: :math:`L = L_{BH} + w\,L_{CE}`. Not normalised.
    """
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    (z,) = check.floats("logits", logits, shape="(N, C)")  # (N, C)
    check.rows_of("logits", z, len(x))
    labels = check.class_ids(check.labels(labels, len(x), device=x.device), z.shape[1])
    return batch_hard_triplet_loss(x, labels, margin, squared) + weight * F.cross_entropy(z, labels)


# ----------------------------------------------------------- lifted structured (chapter 04)
def _lifted_pairs(x, labels):
    D = _distance_matrix(x, squared=False)  # (N, N) D_ij Euclidean
    pos = positive_mask(labels)  # (N, N)
    P_hat = torch.triu(pos, diagonal=1)  # (N, N) unordered positive pairs i < j
    return D, P_hat, negative_mask(labels)


def lifted_structured_loss(embeddings, labels, margin: float = 1.0):
    r""":math:`J = \frac{1}{2|\hat{\mathcal{P}}|}\sum_{(i,j)\in\hat{\mathcal{P}}} [\tilde J_{ij}]_+^2`, :math:`\tilde J_{ij} = \log\big(\sum_{(i,k)\in\mathcal{N}} e^{\alpha - D_{ik}} + \sum_{(j,l)\in\mathcal{N}} e^{\alpha - D_{jl}}\big) + D_{ij}`.

    Lifted structured loss, smooth (relaxed) version, Song, Xiang, Jegelka & Savarese 2016
    (UTD CS 6384 slides). ``embeddings`` (N, D), ``labels`` (N,) integer; :math:`D` Euclidean, not
    normalised. :math:`\hat{\mathcal{P}}` is the set of unordered positive pairs (i < j);
    :math:`\mathcal{N}` the negative pairs; a negative shared by i and j counts in both sums, as in
    the formula. Computed as ``logaddexp`` of two per-row ``logsumexp``. Reduction:
    :math:`1/(2|\hat{\mathcal{P}}|)` times the sum; 0.0 with no positive pair, or no negative.
    The hard version is :func:`lifted_structured_loss_hard`.
    """
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    labels = check.labels(labels, len(x), device=x.device)
    D, P_hat, neg = _lifted_pairs(x, labels)
    lowest = torch.finfo(D.dtype).min  # log 0 without the NaN gradient of −inf
    r = torch.logsumexp((margin - D).masked_fill(~neg, lowest), dim=1)  # (N,) log Σ_k e^{α − D_ik}
    J = torch.logaddexp(r.unsqueeze(1), r.unsqueeze(0)) + D  # (N, N) J̃_ij
    terms = F.relu(J).pow(2)  # (N, N)
    return terms.masked_fill(~P_hat, 0.0).sum() / (2 * P_hat.sum().clamp(min=1))


def lifted_structured_loss_hard(embeddings, labels, margin: float = 1.0):
    r""":math:`J = \frac{1}{2|\hat{\mathcal{P}}|}\sum_{(i,j)\in\hat{\mathcal{P}}} \max(0, J_{ij})^2`, :math:`J_{ij} = \max\big(\max_{(i,k)\in\mathcal{N}} \alpha - D_{ik}, \max_{(j,l)\in\mathcal{N}} \alpha - D_{jl}\big) + D_{ij}`.

    Lifted structured loss with the hard maxima, Song et al. 2016 (UTD CS 6384 slides), for comparison
    with the smooth :func:`lifted_structured_loss` (which upper-bounds it). Same shapes,
    distance and reduction.
    """
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    labels = check.labels(labels, len(x), device=x.device)
    D, P_hat, neg = _lifted_pairs(x, labels)
    lowest = torch.finfo(D.dtype).min
    r = (margin - D).masked_fill(~neg, lowest).amax(dim=1)  # (N,) max_k α − D_ik
    J = torch.maximum(r.unsqueeze(1), r.unsqueeze(0)) + D  # (N, N) J_ij
    terms = F.relu(J).pow(2)  # (N, N)
    return terms.masked_fill(~P_hat, 0.0).sum() / (2 * P_hat.sum().clamp(min=1))


__all__ = [
    "triplet_loss", "triplet_loss_from_indices", "batch_all_triplet_loss", "batch_hard_triplet_loss",
    "hard_cluster_triplet_loss", "triplet_ce_loss", "lifted_structured_loss", "lifted_structured_loss_hard",
]
