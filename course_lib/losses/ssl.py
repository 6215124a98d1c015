r"""Self-supervised losses of chapters 06-08: NT-Xent (SimCLR), MoCo, BYOL, Barlow Twins.

Where each comes from in the slides:

* :func:`nt_xent_loss`: SimCLR's loss in the UTD CS 6384 and HSE decks; the Chierchia deck writes it
  as InfoNCE with each view of a pair as the anchor in turn; the IIT Hyderabad deck counts its
  2(N-1) negatives;
* :func:`moco_loss`: the Cornell deck (a queue of earlier keys, a momentum encoder) and the IIT
  Hyderabad deck (MoCo v2);
* :func:`byol_loss`: the IIT Hyderabad deck (online and target networks, normalised squared error);
* :func:`barlow_twins_loss`: the HSE deck (invariance and redundancy-reduction terms).

:func:`info_nce_loss` and :func:`clip_loss` (chapter 04, :mod:`course_lib.losses.softmax`) are
importable from here too: they are the same objects, not copies.

Conventions as in :mod:`course_lib.losses.metric`: each loss returns a 0-dim tensor, wrong shapes
or dtypes raise ``ValueError`` naming the expected shape, float16/bfloat16 inputs are computed in
float32, logits go through ``F.cross_entropy``, and nothing loops over the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _checks as check
from ._ops import _mm
from .softmax import clip_loss, info_nce_loss

#: BatchNorm's default: the variance floor when Barlow Twins standardises a dimension.
BN_EPS = 1e-5


def nt_xent_loss(z1, z2, temperature: float = 0.5):
    r""":math:`\ell_{i,j} = -\log \frac{\exp(\mathrm{sim}(z_i, z_j)/\tau)}{\sum_{k=1}^{2N} \mathbb{1}_{[k \neq i]} \exp(\mathrm{sim}(z_i, z_k)/\tau)}`.

    NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR, Chen et al. 2020.
    ``z1``, ``z2`` (N, D): the projections of the two views, row n of each from image n. The 2N
    vectors are L2-normalised inside, so sim is the cosine; ``temperature`` :math:`\tau`. Each of the
    2N anchors has 2N - 1 candidates (itself left out): its other view, the positive, and
    2N - 2 negatives. Mean of :math:`\ell` over all 2N anchors (both (i, j) and (j, i)). With N = 1
    the only candidate is the positive and the loss is 0.
    """
    z1, z2 = check.floats("z1 and z2", z1, z2)  # (N, D), (N, D)
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D): views 1 then views 2
    logits = _mm(z, z.T) / temperature  # (2N, 2N) sim(z_i, z_k) / τ
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)  # (2N, 2N) k = i
    logits = logits.masked_fill(self_mask, float("-inf"))  # 1[k ≠ i]
    positive = torch.arange(2 * n, device=z.device).roll(n)  # (2N,) j = i + N mod 2N
    return F.cross_entropy(logits, positive) if n else logits.sum()


def moco_loss(q, k, queue, temperature: float = 0.2):
    r""":math:`\mathcal{L}_q = -\log \frac{\exp(q \cdot k_+ / \tau)}{\exp(q \cdot k_+ / \tau) + \sum_{i=1}^{K} \exp(q \cdot k_i / \tau)}`.

    MoCo's InfoNCE against a queue of keys, He et al. 2020 (v2: Chen et al. 2020). ``q`` (N, D):
    the queries (query encoder); ``k`` (N, D): their positive keys :math:`k_+` (momentum encoder, the
    other view); ``queue`` (K, D): the K negative keys :math:`k_i` of earlier batches. q, k and the
    queue are L2-normalised inside; k and the queue are detached (the gradient reaches q only).
    Logits :math:`[q \cdot k_+ \mid q \cdot \text{queue}^\top] / \tau` (N, 1 + K), the positive is
    class 0; mean over the N queries. Updating the queue is the method's business.
    """
    q, k = check.floats("q and k", q, k)  # (N, D), (N, D)
    queue = check.bank("queue", queue, d=q.shape[1])  # (K, D)
    dtype = check.work_dtype(q, queue)
    q = F.normalize(q.to(dtype), dim=1)  # (N, D)
    k = F.normalize(k.detach().to(dtype), dim=1)  # (N, D) no gradient to the key encoder
    queue = F.normalize(queue.detach().to(dtype), dim=1)  # (K, D) no gradient to past keys
    l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1) q·k₊
    l_neg = _mm(q, queue.T)  # (N, K) q·k_i
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1 + K)
    target = torch.zeros(len(q), dtype=torch.long, device=q.device)  # the positive is class 0
    return F.cross_entropy(logits, target) if len(q) else logits.sum()


def byol_loss(online_prediction, target_projection):
    r""":math:`\mathcal{L}^{BYOL}_\theta = \| \bar q_\theta(z_\theta) - \bar z'_\xi \|_2^2 = 2 - 2 \cdot \frac{\langle q_\theta(z_\theta), z'_\xi \rangle}{\|q_\theta(z_\theta)\|_2 \, \|z'_\xi\|_2}`.

    BYOL's regression loss, Grill et al. 2020. ``online_prediction`` :math:`q_\theta(z_\theta)`
    (N, D): the online network's prediction for one view; ``target_projection`` :math:`z'_\xi`
    (N, D): the target network's projection of the other view, detached inside (the target gets
    no gradient; it follows the online network by EMA). The bars are L2 normalisation, so the
    squared distance equals 2 - 2 cos. Mean over the N pairs; the symmetrised loss (the views
    swapped, added) is the method's business (:class:`course_lib.methods.BYOL`).
    """
    p, z = check.floats("online_prediction and target_projection", online_prediction, target_projection)
    p = F.normalize(p, dim=1)  # (N, D) q̄_θ(z_θ)
    z = F.normalize(z.detach(), dim=1)  # (N, D) z̄'_ξ, stop-gradient
    terms = 2 - 2 * (p * z).sum(dim=1)  # (N,) 2 - 2 cos
    return terms.mean() if len(terms) else terms.sum()


def _standardise(z: torch.Tensor) -> torch.Tensor:
    r""":math:`\hat z_{b,i} = (z_{b,i} - \mu_i) / \sqrt{\sigma_i^2 + \epsilon}`, biased variance over the
    batch (BatchNorm in training mode, no affine): (N, D) -> (N, D)."""
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + BN_EPS)


def barlow_twins_loss(z1, z2, lambd: float = 5e-3):
    r""":math:`\mathcal{L}_{BT} = \sum_i (1 - \mathcal{C}_{ii})^2 + \lambda \sum_i \sum_{j \neq i} \mathcal{C}_{ij}^2`.

    Barlow Twins, Zbontar et al. 2021. ``z1``, ``z2`` (N, D): :math:`z^A`, :math:`z^B`, the
    projections of the two views; ``lambd`` :math:`\lambda` weighs the redundancy-reduction term
    against the invariance term. :math:`\mathcal{C}` (D, D) is the cross-correlation of the two
    views' dimensions over the batch: each dimension is standardised over the batch with the biased
    standard deviation (BatchNorm without affine, eps 1e-5), then :math:`\mathcal{C} = \hat z^{A\top}
    \hat z^B / N`. The HSE deck writes :math:`\mathcal{C}_{ij} = \frac{\sum_b z^A_{b,i} z^B_{b,j}}
    {\sqrt{\sum_b (z^A_{b,i})^2} \sqrt{\sum_b (z^B_{b,j})^2}}`, which leaves out the centring: the
    paper's z are mean-centred along the batch first, and for centred z that formula is this C (up
    to eps). Summed over the D² entries, not averaged. Needs N ≥ 2.
    """
    z1, z2 = check.floats("z1 and z2", z1, z2)  # (N, D), (N, D)
    n, d = z1.shape
    if n < 2:
        raise ValueError(f"expected z1 and z2 of shape (N, D) with N >= 2 (a batch to standardise over), "
                         f"got {tuple(z1.shape)}")
    c = _mm(_standardise(z1).T, _standardise(z2)) / n  # (D, D) C_ij
    on_diag = (1 - c.diagonal()).pow(2).sum()  # invariance
    off_diag = c.masked_fill(torch.eye(d, dtype=torch.bool, device=c.device), 0.0).pow(2).sum()  # redundancy
    return on_diag + lambd * off_diag


__all__ = ["nt_xent_loss", "moco_loss", "byol_loss", "barlow_twins_loss", "info_nce_loss", "clip_loss"]
