r"""Metric-learning losses of chapters 02-04 (slides 000 UTD, 001 HSE, 002 Chierchia).

Pair and triplet losses (contrastive, triplet, batch-all, batch-hard, hard-cluster, lifted
structured), softmax-style losses (N-pair, InfoNCE, CLIP), and classification-style losses
(center loss, CosFace, ArcFace with sub-centres, AdaCos scale, prototypical networks).

Conventions (COURSE.md, "Conventions the API settles"):

* Shapes: ``N`` batch, ``D`` embedding dimension, ``C`` classes. Each loss returns a 0-dim tensor,
  the mean over the terms the paper averages over (each docstring says which).
* Where a batch has no valid term (no positive pair, no valid triplet) the loss is ``0.0``, still
  connected to the graph (``backward()`` works and gives zero gradients), never NaN.
* Wrong shapes or dtypes raise ``ValueError`` naming the expected shape.
* Nothing is L2-normalised unless the method does it (said in the docstring).
* float16/bfloat16 inputs are computed in float32, and the loss (or logits) is returned in
  float32: at ``s = 64`` or ``τ = 0.01`` a half-precision logit would be too coarse.
* Euclidean distances come from :mod:`course_lib.distances`, whose square root has gradient 0
  (not NaN) where two embeddings coincide.
* Softmax losses go through ``F.cross_entropy`` / ``torch.logsumexp``, never ``exp`` then ``log``.
* No Python loop over the batch: masks, gathers and matrix products only.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..distances import pairwise_distances, safe_sqrt
from ..mining import batch_hard_pairs, negative_mask, positive_mask

_HALF = (torch.float16, torch.bfloat16)
_REDUCTIONS = ("mean", "sum", "none", "mean_nonzero")


# ------------------------------------------------------------------------------ validation
def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x)


def _work_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype to compute in: the promoted dtype, float32 when that is float16/bfloat16."""
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    return torch.float32 if dtype in _HALF else dtype


def _floats(names: str, *tensors, shape: str = "(N, D)", same_shape: bool = True):
    """Check that each tensor is floating with ``ndim == shape.count(',') + 1`` (and, if asked, that
    all shapes are equal); return them in the common dtype to compute in."""
    ts = [_as_tensor(t) for t in tensors]
    ndim = shape.count(",") + 1
    got = " and ".join(str(tuple(t.shape)) for t in ts)
    if any(t.ndim != ndim for t in ts) or (same_shape and any(t.shape != ts[0].shape for t in ts)):
        raise ValueError(f"expected {names} of shape {shape}, got {got}")
    if any(not t.dtype.is_floating_point for t in ts):
        raise ValueError(f"expected {names} of shape {shape} with a floating dtype, got "
                         + " and ".join(str(t.dtype) for t in ts))
    dtype = _work_dtype(*ts)
    return [t.to(dtype) for t in ts]


def _labels(labels, n: int, name: str = "labels", device=None) -> torch.Tensor:
    labels = _as_tensor(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"expected {name} of shape (N,) with N = {n}, got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"expected {name} of shape (N,) with an integer dtype, got {labels.dtype}")
    return labels if device is None else labels.to(device)


def _class_ids(labels: torch.Tensor, num_classes: int, name: str = "labels") -> torch.Tensor:
    """``labels`` must index rows 0..C-1 of a (C, D) weight or centre matrix."""
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"expected {name} in [0, C) with C = {num_classes}, got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels.long()


def _distance_matrix(x: torch.Tensor, squared: bool) -> torch.Tensor:
    """:math:`D_{ij}` Euclidean (squared if asked): (N, D) -> (N, N), exact zeros on the diagonal."""
    return pairwise_distances(x, metric="squared_l2" if squared else "l2")  # (N, N)


def _row_distances(u: torch.Tensor, v: torch.Tensor, squared: bool) -> torch.Tensor:
    """:math:`\\|u_i - v_i\\|_2` (squared if asked), row by row: (N, D), (N, D) -> (N,)."""
    d2 = (u - v).pow(2).sum(dim=1)  # (N,)
    return d2 if squared else safe_sqrt(d2)


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` returned in the inputs' dtype: under ``torch.autocast`` the product itself runs in
    half precision, and this puts the result back in float32 before margins, clamps and scales."""
    return (a @ b).to(torch.promote_types(a.dtype, b.dtype))


def _masked_mean(terms: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``terms`` where ``mask``; 0.0 (still in the graph) where nothing is selected."""
    return terms.masked_fill(~mask, 0.0).sum() / mask.sum().clamp(min=1)


# ------------------------------------------------------------------------- contrastive (02)
def contrastive_loss_from_distances(distances, same, margin: float = 1.0, squared_hinge: bool = False):
    r""":math:`J = \frac{1}{m}\sum_{(i,j)}^{m/2} y_{ij} D_{ij}^2 + (1 - y_{ij})[\alpha - D_{ij}]_+` from the distances.

    Chopra, Hadsell & LeCun 2005 (slide 000). ``distances`` :math:`D` (N,), one per pair;
    ``same`` :math:`y` (N,) bool or 0/1; ``margin`` :math:`\alpha`. With :math:`m = 2N` images,
    :math:`J = \tfrac12` · mean over the N pairs. ``squared_hinge=True`` uses
    :math:`[\alpha - D_{ij}]_+^2` (the variant whose gradient slide 000 derives). The distance
    form lets a notebook show which pairs give gradient as the margin moves.
    """
    D = _as_tensor(distances)
    if D.ndim != 1 or not D.dtype.is_floating_point:
        raise ValueError(f"expected distances of shape (N,) with a floating dtype, got {tuple(D.shape)} {D.dtype}")
    D = D.to(_work_dtype(D))
    y = _same(same, len(D)).to(device=D.device, dtype=D.dtype)  # (N,)
    m = 2 * len(D)  # images in the batch
    hinge = F.relu(margin - D)  # (N,) [α − D]₊
    if squared_hinge:
        hinge = hinge.pow(2)
    return (y * D.pow(2) + (1 - y) * hinge).sum() / max(m, 2)


def _same(same, n: int) -> torch.Tensor:
    y = _as_tensor(same)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"expected same of shape (N,) with N = {n} (bool or 0/1), got {tuple(y.shape)}")
    return y


def _pair_distances(z1, z2):
    z1, z2 = _floats("z1 and z2", z1, z2)  # (N, D), (N, D)
    return _row_distances(z1, z2, squared=False)  # (N,) D_ij = ||f(x_i) − f(x_j)||₂


def contrastive_loss(z1, z2, same, margin: float = 1.0, squared_hinge: bool = False):
    r""":math:`J = \frac{1}{m}\sum_{(i,j)}^{m/2} y_{ij} D_{ij}^2 + (1 - y_{ij})[\alpha - D_{ij}]_+`, :math:`D_{ij} = \|f(x_i) - f(x_j)\|_2`.

    Contrastive loss, Chopra, Hadsell & LeCun 2005 (slides 000, 001, 002). ``z1``, ``z2`` (N, D):
    row i of each is one pair; ``same`` (N,) bool or 0/1 (:math:`y_{ij}`); ``margin``
    :math:`\alpha`. Reduction: :math:`m = 2N` images, so :math:`J = \tfrac12` · mean over the N
    pairs. ``squared_hinge=True`` uses :math:`[\alpha - D_{ij}]_+^2`. Not normalised. The gradient
    with respect to the distances is :func:`contrastive_loss_grad`.
    """
    return contrastive_loss_from_distances(_pair_distances(z1, z2), same, margin, squared_hinge)


def contrastive_loss_grad(z1, z2, same, margin: float = 1.0, squared_hinge: bool = False):
    r""":math:`\frac{\partial J}{\partial D_{ij}} = \frac{2}{m}\big(y_{ij} D_{ij} - (1 - y_{ij})[\alpha - D_{ij}]_+\big)` (squared hinge, slide 000).

    The closed-form gradient of :func:`contrastive_loss` with respect to each pair's distance:
    (N,), :math:`m = 2N`. For the plain hinge the negative term is
    :math:`\tfrac12 (1 - y_{ij})\,\mathbb{1}[D_{ij} < \alpha]` instead (the derivative of
    :math:`[\alpha - D]_+` is :math:`-1` inside the margin, 0 outside and, as autograd takes it,
    at :math:`D = \alpha`). Returned detached: it is the hand derivation, not a graph.
    """
    with torch.no_grad():
        D = _pair_distances(z1, z2)  # (N,)
        y = _same(same, len(D)).to(device=D.device, dtype=D.dtype)  # (N,)
        m = 2 * len(D)
        if squared_hinge:
            neg = F.relu(margin - D)  # (N,) [α − D]₊
        else:
            neg = 0.5 * (D < margin).to(D.dtype)  # (N,) ½·1[D < α]
        return (2.0 / max(m, 2)) * (y * D - (1 - y) * neg)  # (N,)


# ----------------------------------------------------------------------------- triplets (03)
def triplet_loss(anchor, positive, negative, margin: float = 0.2, squared: bool = True):
    r""":math:`J = \frac{3}{2m}\sum_i^{m/3} [D_{ia,ip}^2 - D_{ia,in}^2 + \alpha]_+`.

    FaceNet triplet loss, Schroff, Kalenichenko & Philbin 2015 (slides 000, 001, 002).
    ``anchor``, ``positive``, ``negative`` (N, D): row i is one triplet. Returns the mean over
    the N triplets of :math:`[d(a,p) - d(a,n) + \alpha]_+` (FaceNet's sum divided by N), with
    :math:`d` the squared Euclidean distance (``squared=True``, FaceNet) or the Euclidean one.
    Slide 000's :math:`J` above, with :math:`m = 3N` images, is :math:`\frac{1}{2N}` times the
    sum, i.e. half of this mean: a constant factor, which only rescales the learning rate.
    Not normalised (FaceNet normalises in the network, before the loss).
    """
    a, p, n = _floats("anchor, positive and negative", anchor, positive, negative)  # (N, D) each
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
    (x,) = _floats("embeddings", embeddings)  # (N, D)
    a, p, n = (_as_tensor(i) for i in (a, p, n))
    if any(i.ndim != 1 or len(i) != len(a) or i.dtype.is_floating_point or i.dtype == torch.bool for i in (a, p, n)):
        raise ValueError("expected a, p and n of shape (T,) with an integer dtype, got "
                         f"{tuple(a.shape)}, {tuple(p.shape)} and {tuple(n.shape)}")
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

    Batch-all triplet loss, Hermans, Beyer & Leibe 2017 ("In Defense of the Triplet Loss", slide
    001), over every valid triplet of the batch. ``embeddings`` (N, D), ``labels`` (N,) integer.
    Reduction: mean over the valid triplets whose loss is > 0 (Hermans' "BA≠0"); 0.0 when there is
    none. :math:`D` Euclidean (``squared=False``, as Hermans) or squared. Not normalised.
    Vectorised over the (P, N) rows of the P positive pairs, never the N³ triplet cube.
    """
    (x,) = _floats("embeddings", embeddings)  # (N, D)
    labels = _labels(labels, len(x), device=x.device)
    D = _distance_matrix(x, squared)  # (N, N)
    a, p = positive_mask(labels).nonzero(as_tuple=True)  # (P,) positive pairs (a, p)
    is_negative = negative_mask(labels)[a]  # (P, N): n is a negative of a
    loss = F.relu(margin + D[a, p].unsqueeze(1) - D[a])  # (P, N): [m + D_ap − D_an]₊
    loss = loss.masked_fill(~is_negative, 0.0)  # (P, N)
    return _masked_mean(loss, loss > 0)


def batch_hard_triplet_loss(embeddings, labels, margin: float = 0.2, squared: bool = False):
    r""":math:`\mathcal{L}_{BH} = \sum_{i=1}^{P}\sum_{a=1}^{K} [m + \max_{p} D(f(x^i_a), f(x^i_p)) - \min_{j \ne i,\, n} D(f(x^i_a), f(x^j_n))]_+`.

    Batch-hard triplet loss, Hermans, Beyer & Leibe 2017 (slides 001, 002): for each anchor the
    farthest positive and the nearest negative (:func:`course_lib.mining.batch_hard_pairs`).
    ``embeddings`` (N, D), ``labels`` (N,) integer. Reduction: mean over the anchors that have at
    least one positive and one negative; 0.0 when there is none. :math:`D` Euclidean
    (``squared=False``, as Hermans) or squared. Not normalised. Distance -> miner -> loss: the
    (N, N) matrix is only used to pick the pairs (no gradient); the loss then differentiates the
    2N picked distances, computed row by row.
    """
    (x,) = _floats("embeddings", embeddings)  # (N, D)
    labels = _labels(labels, len(x), device=x.device)
    with torch.no_grad():  # mining: farthest positive, nearest negative (D² ranks like D)
        hardest_p, hardest_n, valid = batch_hard_pairs(_distance_matrix(x, squared=True), labels)  # (N,) x 3
    d_ap = _row_distances(x, x[hardest_p], squared)  # (N,) max_p D_ap
    d_an = _row_distances(x, x[hardest_n], squared)  # (N,) min_n D_an
    return _masked_mean(F.relu(margin + d_ap - d_an), valid)


def hard_cluster_triplet_loss(embeddings, labels, margin: float = 0.2):
    r""":math:`Lb_c = \sum_i^P \max(d_i^{intra} - d_i^{inter} + \alpha, 0)`, :math:`d_i^{intra} = \max_K \|f(x) - f_i^m\|_2^2`, :math:`d_i^{inter} = \min_{i_d \ne i} \|f_i^m - f_{i_d}^m\|_2^2`.

    Hard-cluster (batch-hard cluster) loss, Alex, Sami, Banerjee & Panda 2018 ("Cluster Loss for
    Person Re-Identification"; slide 001, "Hard Cluster Sampling"). The definition implemented is
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
    (x,) = _floats("embeddings", embeddings)  # (N, D)
    labels = _labels(labels, len(x), device=x.device)
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
    r""":math:`L = L_{\text{triplet}} + L_{\text{CE}}` (slide 001, "Triplet Loss + Classification").

    Batch-hard triplet loss on ``embeddings`` (N, D) (Hermans et al. 2017,
    :func:`batch_hard_triplet_loss`, mean over anchors) plus ``weight`` times the cross-entropy of
    ``logits`` (N, C) (mean over the batch); ``labels`` (N,) are class indices 0..C-1 for both.
    ``weight`` scales the classification term: :math:`L = L_{BH} + w\,L_{CE}`. Not normalised.
    """
    (x,) = _floats("embeddings", embeddings)  # (N, D)
    (z,) = _floats("logits", logits, shape="(N, C)")  # (N, C)
    if len(z) != len(x):
        raise ValueError(f"expected logits of shape (N, C) with N = {len(x)}, got {tuple(z.shape)}")
    labels = _class_ids(_labels(labels, len(x), device=x.device), z.shape[1])
    return batch_hard_triplet_loss(x, labels, margin, squared) + weight * F.cross_entropy(z, labels)


# ---------------------------------------------------------------------- beyond triplets (04)
def _lifted_pairs(x, labels):
    D = _distance_matrix(x, squared=False)  # (N, N) D_ij Euclidean
    pos = positive_mask(labels)  # (N, N)
    P_hat = torch.triu(pos, diagonal=1)  # (N, N) unordered positive pairs i < j
    return D, P_hat, negative_mask(labels)


def lifted_structured_loss(embeddings, labels, margin: float = 1.0):
    r""":math:`J = \frac{1}{2|\hat{\mathcal{P}}|}\sum_{(i,j)\in\hat{\mathcal{P}}} [\tilde J_{ij}]_+^2`, :math:`\tilde J_{ij} = \log\big(\sum_{(i,k)\in\mathcal{N}} e^{\alpha - D_{ik}} + \sum_{(j,l)\in\mathcal{N}} e^{\alpha - D_{jl}}\big) + D_{ij}`.

    Lifted structured loss, smooth (relaxed) version, Song, Xiang, Jegelka & Savarese 2016
    (slide 000). ``embeddings`` (N, D), ``labels`` (N,) integer; :math:`D` Euclidean, not
    normalised. :math:`\hat{\mathcal{P}}` is the set of unordered positive pairs (i < j);
    :math:`\mathcal{N}` the negative pairs; a negative shared by i and j counts in both sums, as in
    the formula. Computed as ``logaddexp`` of two per-row ``logsumexp``. Reduction:
    :math:`1/(2|\hat{\mathcal{P}}|)` times the sum; 0.0 with no positive pair, or no negative.
    The hard version is :func:`lifted_structured_loss_hard`.
    """
    (x,) = _floats("embeddings", embeddings)  # (N, D)
    labels = _labels(labels, len(x), device=x.device)
    D, P_hat, neg = _lifted_pairs(x, labels)
    lowest = torch.finfo(D.dtype).min  # log 0 without the NaN gradient of −inf
    r = torch.logsumexp((margin - D).masked_fill(~neg, lowest), dim=1)  # (N,) log Σ_k e^{α − D_ik}
    J = torch.logaddexp(r.unsqueeze(1), r.unsqueeze(0)) + D  # (N, N) J̃_ij
    terms = F.relu(J).pow(2)  # (N, N)
    return terms.masked_fill(~P_hat, 0.0).sum() / (2 * P_hat.sum().clamp(min=1))


def lifted_structured_loss_hard(embeddings, labels, margin: float = 1.0):
    r""":math:`J = \frac{1}{2|\hat{\mathcal{P}}|}\sum_{(i,j)\in\hat{\mathcal{P}}} \max(0, J_{ij})^2`, :math:`J_{ij} = \max\big(\max_{(i,k)\in\mathcal{N}} \alpha - D_{ik}, \max_{(j,l)\in\mathcal{N}} \alpha - D_{jl}\big) + D_{ij}`.

    Lifted structured loss with the hard maxima, Song et al. 2016 (slide 000), for comparison
    with the smooth :func:`lifted_structured_loss` (which upper-bounds it). Same shapes,
    distance and reduction.
    """
    (x,) = _floats("embeddings", embeddings)  # (N, D)
    labels = _labels(labels, len(x), device=x.device)
    D, P_hat, neg = _lifted_pairs(x, labels)
    lowest = torch.finfo(D.dtype).min
    r = (margin - D).masked_fill(~neg, lowest).amax(dim=1)  # (N,) max_k α − D_ik
    J = torch.maximum(r.unsqueeze(1), r.unsqueeze(0)) + D  # (N, N) J_ij
    terms = F.relu(J).pow(2)  # (N, N)
    return terms.masked_fill(~P_hat, 0.0).sum() / (2 * P_hat.sum().clamp(min=1))


def npair_loss(anchors, positives):
    r""":math:`\mathcal{L}_{N\text{-pair}} = -\log \frac{\exp(f(x)^\top f(x^+))}{\exp(f(x)^\top f(x^+)) + \sum_{i=1}^{N-1}\exp(f(x)^\top f(x_i^-))}`.

    Multi-class N-pair loss, Sohn 2016 (slide 000). ``anchors``, ``positives`` (N, D): row i of
    each shares a class, and the N classes differ, so the other rows' positives are anchor i's
    N-1 negatives. Cross-entropy over the logits ``anchors @ positives.T`` (N, N) with the diagonal
    as target; mean over the N anchors. Not normalised; Sohn's L2 penalty on the embeddings is left
    to the caller.
    """
    f_x, f_pos = _floats("anchors and positives", anchors, positives)  # (N, D), (N, D)
    logits = _mm(f_x, f_pos.T)  # (N, N) f(x_i)ᵀ f(x_j⁺)
    target = torch.arange(len(f_x), device=f_x.device)  # (N,)
    return F.cross_entropy(logits, target) if len(f_x) else logits.sum()


def info_nce_loss(query, positive_key, negative_keys=None, temperature: float = 0.1):
    r""":math:`\mathcal{L}_q = -\log \frac{\exp(q \cdot k_+ / \tau)}{\sum_{i=0}^{K} \exp(q \cdot k_i / \tau)}`.

    InfoNCE, van den Oord, Li & Vinyals 2018 (slides 000, 002): a (K+1)-way softmax
    classification where the positive key is class 0. ``query`` :math:`q` (N, D), ``positive_key``
    :math:`k_+` (N, D), ``negative_keys`` (M, D) shared by every query or (N, M, D) one set per
    query; ``None`` uses the other queries' positive keys as negatives (in-batch, target the
    diagonal). q, keys and negatives are L2-normalised inside; ``temperature`` :math:`\tau` divides
    the logits. Mean over the N queries.
    """
    q, k = _floats("query and positive_key", query, positive_key)  # (N, D), (N, D)
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    if negative_keys is None:
        logits = _mm(q, k.T) / temperature  # (N, N): positives on the diagonal
        return F.cross_entropy(logits, torch.arange(len(q), device=q.device))
    neg = _as_tensor(negative_keys)
    if not (neg.ndim == 2 and neg.shape[1] == q.shape[1]) and not (
            neg.ndim == 3 and neg.shape[0] == q.shape[0] and neg.shape[2] == q.shape[1]):
        raise ValueError(f"expected negative_keys of shape (M, D) or (N, M, D) with N, D = "
                         f"{tuple(q.shape)}, got {tuple(neg.shape)}")
    (neg,) = _floats("negative_keys", neg, shape="(M, D)" if neg.ndim == 2 else "(N, M, D)")
    neg = F.normalize(neg.to(q.dtype), dim=-1)
    l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1) q·k₊
    if neg.ndim == 2:
        l_neg = _mm(q, neg.T)  # (N, M) q·k_i, shared negatives
    else:
        l_neg = torch.einsum("nd,nmd->nm", q, neg).to(q.dtype)  # (N, M) q·k_i, per-query negatives
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1 + M)
    target = torch.zeros(len(q), dtype=torch.long, device=q.device)  # the positive is class 0
    return F.cross_entropy(logits, target)


def clip_loss(image_embeddings, text_embeddings, temperature: float = 0.07):
    r""":math:`L = \tfrac12\big(\mathrm{CE}(\text{logits}, \text{labels}, \text{axis}=0) + \mathrm{CE}(\text{logits}, \text{labels}, \text{axis}=1)\big)`, :math:`\text{logits} = \hat I \hat T^\top / \tau`.

    CLIP's symmetric contrastive loss, Radford et al. 2021 (slide 001). ``image_embeddings``,
    ``text_embeddings`` (N, D): row i of each is a matching pair. Both are L2-normalised inside;
    ``temperature`` :math:`\tau` divides the cosine logits (CLIP learns :math:`\log(1/\tau)`; pass
    the current value). Mean over the N images (image -> text) and the N texts (text -> image),
    averaged.
    """
    img, txt = _floats("image_embeddings and text_embeddings", image_embeddings, text_embeddings)
    img, txt = F.normalize(img, dim=1), F.normalize(txt, dim=1)  # (N, D), (N, D)
    logits = _mm(img, txt.T) / temperature  # (N, N)
    labels = torch.arange(len(img), device=img.device)  # (N,)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def center_loss(embeddings, labels, centers):
    r""":math:`\mathcal{L}_C = \frac{1}{2}\sum_{n=1}^{N} \|f_\theta(x_n) - c_{y_n}\|^2`, averaged over the batch.

    Center loss, Wen, Zhang, Li & Qiao 2016 (slide 002); used as
    :math:`\mathcal{L}_{CE} + \lambda\,\mathcal{L}_C`. ``embeddings`` (N, D), ``labels`` (N,) in
    0..C-1, ``centers`` (C, D). Reduction: :math:`\tfrac12` · mean over the batch of
    :math:`\|x_i - c_{y_i}\|^2`. The centres get gradient (learned by SGD rather than Wen's
    moving-average update); :class:`CenterLoss` holds them as a parameter. Not normalised.
    """
    (x,) = _floats("embeddings", embeddings)  # (N, D)
    (c,) = _floats("centers", centers, shape="(C, D)")  # (C, D)
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"expected centers of shape (C, D) with D = {x.shape[1]}, got {tuple(c.shape)}")
    dtype = _work_dtype(x, c)
    x, c = x.to(dtype), c.to(dtype)
    y = _class_ids(_labels(labels, len(x), device=x.device), len(c))  # (N,)
    return 0.5 * (x - c[y]).pow(2).sum(dim=1).sum() / max(len(x), 1)


class CenterLoss(nn.Module):
    r"""Center loss with learnable centres :math:`c_1..c_C` (C, D) (Wen et al. 2016).

    ``CenterLoss(num_classes, embedding_dim)(embeddings, labels)`` is
    :func:`center_loss` with ``self.centers``; give the module's parameters to the optimiser.
    """

    def __init__(self, num_classes: int, embedding_dim: int):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, embedding_dim))  # (C, D)

    def forward(self, embeddings, labels):
        return center_loss(embeddings, labels, self.centers)


def _cosines(embeddings, weight, labels, subcenters: int = 1):
    """:math:`\\cos\\alpha_{n,c}` (N, C) between normalised embeddings and normalised class rows
    (max over each class's K sub-centre rows), and the checked labels (or None)."""
    (x,) = _floats("embeddings", embeddings)  # (N, D)
    (W,) = _floats("weight", weight, shape="(C*K, D)")  # (C·K, D)
    if W.shape[1] != x.shape[1] or subcenters < 1 or W.shape[0] % subcenters:
        raise ValueError(f"expected weight of shape (C*K, D) with D = {x.shape[1]} and K = "
                         f"subcenters = {subcenters}, got {tuple(W.shape)}")
    dtype = _work_dtype(x, W)
    z_hat, W_hat = F.normalize(x.to(dtype), dim=1), F.normalize(W.to(dtype), dim=1)
    C = W.shape[0] // subcenters
    cos = _mm(z_hat, W_hat.T)  # (N, C·K)
    if subcenters > 1:
        cos = cos.view(len(x), C, subcenters).amax(dim=2)  # (N, C): max_k w_c^(k)ᵀ ẑ_n
    if labels is None:
        return cos, None
    return cos, _class_ids(_labels(labels, len(x), device=x.device), C)


def cosface_logits(embeddings, weight, labels, s: float = 30.0, m: float = 0.35):
    r""":math:`t_{n,c} = s(\cos\alpha_{n,c} - m)` if :math:`c = y_n`, else :math:`s\cos\alpha_{n,c}`.

    CosFace (large margin cosine loss), Wang et al. 2018 (slide 002, "cosine loss"). ``embeddings``
    (N, D) and the rows of ``weight`` (C, D) (as ``nn.Linear``, no bias) are L2-normalised inside;
    ``labels`` (N,) in 0..C-1 (``None``: no margin, for inference). Returns the logits (N, C),
    float32 for half inputs; the loss is ``F.cross_entropy(logits, labels)`` (mean over the batch).
    """
    cos, y = _cosines(embeddings, weight, labels)  # (N, C)
    if y is None:
        return s * cos
    margin = m * F.one_hot(y, cos.shape[1]).to(cos.dtype)  # (N, C): m on the target class
    return s * (cos - margin)


def arcface_logits(embeddings, weight, labels, s: float = 30.0, m: float = 0.5, subcenters: int = 1,
                   eps: float = 1e-7):
    r""":math:`t_{n,c} = s\cos(\alpha_{n,c} + m)` if :math:`c = y_n`, else :math:`s\cos\alpha_{n,c}`; sub-centres :math:`\tilde\alpha_{n,c} = \arccos(\max_k \mathbf{w}_c^{(k)\top}\hat{\mathbf{z}}_n)`.

    ArcFace (additive angular margin), Deng, Guo, Xue & Zafeiriou 2019; sub-center ArcFace, Deng
    et al. 2020 (slide 002). ``embeddings`` (N, D) and the rows of ``weight`` are L2-normalised
    inside. ``subcenters=K``: ``weight`` is (C·K, D), row ``c·K + k`` is sub-centre k of class c,
    and a class's cosine is the max over its K rows (K = 1: ``weight`` (C, D) as ``nn.Linear``).
    ``labels`` (N,) in 0..C-1 (``None``: no margin, for inference).

    Where :math:`\alpha + m > \pi` the target logit uses :math:`\cos\alpha - m\sin m` instead, so
    it keeps decreasing as :math:`\alpha` grows (insightface's rule). The cosine is clamped to
    :math:`(-1+\epsilon, 1-\epsilon)` before ``acos``, whose derivative is infinite at ±1.
    Returns the logits (N, C), float32 for half inputs; loss ``F.cross_entropy(logits, labels)``.
    """
    cos, y = _cosines(embeddings, weight, labels, subcenters)  # (N, C)
    if y is None:
        return s * cos
    cos_y = cos.gather(1, y.unsqueeze(1)).clamp(-1 + eps, 1 - eps)  # (N, 1) cos α_{n,y_n}
    alpha = torch.acos(cos_y)  # (N, 1)
    target = torch.where(alpha + m <= math.pi, torch.cos(alpha + m), cos_y - m * math.sin(m))  # (N, 1)
    return s * cos.scatter(1, y.unsqueeze(1), target)  # (N, C)


def adacos_scale(num_classes: int) -> float:
    r""":math:`s = \sqrt{2}\cdot\log(C - 1)`: the fixed AdaCos scale, Zhang et al. 2019 (slide 002).

    The scale at which a cosine-softmax over C classes is neither saturated nor flat. C < 3 raises
    ``ValueError`` (the log is ≤ 0 there).
    """
    C = int(num_classes)
    if C < 3:
        raise ValueError(f"adacos_scale needs num_classes C >= 3 (sqrt(2)·log(C − 1) > 0), got {num_classes}")
    return math.sqrt(2.0) * math.log(C - 1)


class AngularMarginHead(nn.Module):
    r"""Training head: normalise, ``weight`` (C·K, D), margin on the target logit (slide 002).

    ``kind="arcface"`` (:func:`arcface_logits`, defaults s=30, m=0.5, ``subcenters`` K),
    ``"cosface"`` (:func:`cosface_logits`, s=30, m=0.35) or ``"softmax"`` (plain ``x @ Wᵀ``, no
    normalisation, no margin: the baseline). ``forward(embeddings, labels=None)`` -> logits (N, C)
    for ``F.cross_entropy``; without labels, no margin (inference). ``s="adacos"`` uses
    :func:`adacos_scale`.
    """

    KINDS = ("arcface", "cosface", "softmax")

    def __init__(self, embedding_dim: int, num_classes: int, kind: str = "arcface", s=30.0,
                 m: float | None = None, subcenters: int = 1):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(self.KINDS)}")
        if subcenters != 1 and kind != "arcface":
            raise ValueError("subcenters > 1 is defined for kind='arcface' only")
        self.kind, self.subcenters, self.num_classes = kind, int(subcenters), int(num_classes)
        self.s = adacos_scale(num_classes) if s == "adacos" else float(s)
        self.m = {"arcface": 0.5, "cosface": 0.35, "softmax": 0.0}[kind] if m is None else float(m)
        self.weight = nn.Parameter(torch.empty(num_classes * self.subcenters, embedding_dim))  # (C·K, D)
        nn.init.xavier_uniform_(self.weight)

    def forward(self, embeddings, labels=None):
        if self.kind == "softmax":
            (x,) = _floats("embeddings", embeddings)
            return _mm(x, self.weight.to(x.dtype).T)  # (N, C)
        if self.kind == "cosface":
            return cosface_logits(embeddings, self.weight, labels, s=self.s, m=self.m)
        return arcface_logits(embeddings, self.weight, labels, s=self.s, m=self.m, subcenters=self.subcenters)

    def extra_repr(self) -> str:
        return (f"kind={self.kind!r}, classes={self.num_classes}, dim={self.weight.shape[1]}, "
                f"s={self.s:.3g}, m={self.m:.3g}, subcenters={self.subcenters}")


# ------------------------------------------------------------------- prototypical networks
def prototype_logits(support, support_labels, query):
    r""":math:`\log p_\phi(y = k \mid x) + \text{const} = -d(f_\phi(x), c_k)`, :math:`c_k = \frac{1}{|S_k|}\sum_{(x_i, y_i)\in S_k} f_\phi(x_i)`.

    Prototypical networks, Snell, Swersky & Zemel 2017 (slides 001, 003): ``support`` (N_s, D)
    with ``support_labels`` (N_s,), ``query`` (N_q, D). Returns ``(logits, classes)``: logits
    (N_q, C) = minus the squared Euclidean distance to each class mean, columns in sorted class-id
    order, and those ids (C,). Not normalised.
    """
    s, q = _floats("support and query", support, query, shape="(N, D)", same_shape=False)
    if s.shape[1] != q.shape[1]:
        raise ValueError(f"expected support (N_s, D) and query (N_q, D) with the same D, got "
                         f"{tuple(s.shape)} and {tuple(q.shape)}")
    support_labels = _labels(support_labels, len(s), "support_labels", device=s.device)
    classes, k = torch.unique(support_labels, sorted=True, return_inverse=True)  # (C,), (N_s,)
    member = F.one_hot(k, len(classes)).to(s.dtype)  # (N_s, C)
    c_k = _mm(member.T, s) / member.sum(dim=0).unsqueeze(1)  # (C, D) prototypes
    return -pairwise_distances(q, c_k, metric="squared_l2"), classes  # (N_q, C)


def _query_targets(classes, query_labels, n_q, device):
    query_labels = _labels(query_labels, n_q, "query_labels", device=device)
    target = torch.searchsorted(classes, query_labels).clamp(max=max(len(classes) - 1, 0))  # (N_q,)
    if len(classes) == 0 or not bool((classes[target] == query_labels).all()):
        raise ValueError("every query label must appear in support_labels (the prototypes are its "
                         f"classes {classes.tolist()})")
    return target


def prototypical_loss(support, support_labels, query, query_labels):
    r""":math:`J = -\frac{1}{N_q}\sum_{x \in Q} \log \frac{\exp(-d(f_\phi(x), c_{y}))}{\sum_{k'} \exp(-d(f_\phi(x), c_{k'}))}`, :math:`d` squared Euclidean.

    Prototypical networks, Snell, Swersky & Zemel 2017 (slide 001): cross-entropy of the query
    set against the class means of the support set (:func:`prototype_logits`). ``support``
    (N_s, D), ``support_labels`` (N_s,), ``query`` (N_q, D), ``query_labels`` (N_q,). Class ids need
    not be 0..C-1 (prototypes in sorted id order); a query label absent from the support raises
    ``ValueError``. Mean over the N_q queries. Not normalised.
    """
    logits, classes = prototype_logits(support, support_labels, query)  # (N_q, C)
    target = _query_targets(classes, query_labels, len(logits), logits.device)  # (N_q,)
    return F.cross_entropy(logits, target) if len(logits) else logits.sum()


@torch.no_grad()
def prototypical_accuracy(support, support_labels, query, query_labels) -> float:
    """N-way K-shot accuracy: the fraction of queries whose nearest prototype is their class."""
    logits, classes = prototype_logits(support, support_labels, query)  # (N_q, C)
    target = _query_targets(classes, query_labels, len(logits), logits.device)
    return float((logits.argmax(dim=1) == target).float().mean()) if len(logits) else float("nan")


__all__ = [
    "contrastive_loss", "contrastive_loss_from_distances", "contrastive_loss_grad",
    "triplet_loss", "triplet_loss_from_indices", "batch_all_triplet_loss", "batch_hard_triplet_loss",
    "hard_cluster_triplet_loss", "triplet_ce_loss", "lifted_structured_loss",
    "lifted_structured_loss_hard", "npair_loss", "info_nce_loss", "clip_loss", "center_loss",
    "CenterLoss", "cosface_logits", "arcface_logits", "adacos_scale", "AngularMarginHead",
    "prototype_logits", "prototypical_loss", "prototypical_accuracy",
]
