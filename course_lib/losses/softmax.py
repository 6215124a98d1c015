r"""Softmax losses over a batch (chapter 04): multi-class N-pair, InfoNCE, and CLIP's symmetric loss.

Each is a cross-entropy over similarity logits with the positive as the target class: Sohn 2016;
van den Oord, Li & Vinyals 2018; Radford et al. 2021 (UTD CS 6384, HSE and Chierchia slides).
Conventions as in :mod:`course_lib.losses.metric`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _checks as check
from ._ops import _mm


def npair_loss(anchors, positives):
    r""":math:`\mathcal{L}_{N\text{-pair}} = -\log \frac{\exp(f(x)^\top f(x^+))}{\exp(f(x)^\top f(x^+)) + \sum_{i=1}^{N-1}\exp(f(x)^\top f(x_i^-))}`.

    Multi-class N-pair loss, Sohn 2016 (UTD CS 6384 slides). ``anchors``, ``positives`` (N, D): row i of
    each shares a class, and the N classes differ, so the other rows' positives are anchor i's
    N-1 negatives. Cross-entropy over the logits ``anchors @ positives.T`` (N, N) with the diagonal
    as target; mean over the N anchors. Not normalised; Sohn's L2 penalty on the embeddings is left
    to the caller.
    """
    f_x, f_pos = check.floats("anchors and positives", anchors, positives)  # (N, D), (N, D)
    logits = _mm(f_x, f_pos.T)  # (N, N) f(x_i)ᵀ f(x_j⁺)
    target = torch.arange(len(f_x), device=f_x.device)  # (N,)
    return F.cross_entropy(logits, target) if len(f_x) else logits.sum()


def info_nce_loss(query, positive_key, negative_keys=None, temperature: float = 0.1):
    r""":math:`\mathcal{L}_q = -\log \frac{\exp(q \cdot k_+ / \tau)}{\sum_{i=0}^{K} \exp(q \cdot k_i / \tau)}`.

    InfoNCE, van den Oord, Li & Vinyals 2018 (UTD CS 6384 and Chierchia slides): a (K+1)-way softmax
    classification where the positive key is class 0. ``query`` :math:`q` (N, D), ``positive_key``
    :math:`k_+` (N, D), ``negative_keys`` (M, D) shared by every query or (N, M, D) one set per
    query; ``None`` uses the other queries' positive keys as negatives (in-batch, target the
    diagonal). q, keys and negatives are L2-normalised inside; ``temperature`` :math:`\tau` divides
    the logits. Mean over the N queries.
    """
    q, k = check.floats("query and positive_key", query, positive_key)  # (N, D), (N, D)
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    if negative_keys is None:
        logits = _mm(q, k.T) / temperature  # (N, N): positives on the diagonal
        return F.cross_entropy(logits, torch.arange(len(q), device=q.device)) if len(q) else logits.sum()
    neg = check.negative_keys(negative_keys, *q.shape)  # (M, D) or (N, M, D)
    neg = F.normalize(neg.to(q.dtype), dim=-1)
    l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1) q·k₊
    if neg.ndim == 2:
        l_neg = _mm(q, neg.T)  # (N, M) q·k_i, shared negatives
    else:
        l_neg = torch.einsum("nd,nmd->nm", q, neg).to(q.dtype)  # (N, M) q·k_i, per-query negatives
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1 + M)
    target = torch.zeros(len(q), dtype=torch.long, device=q.device)  # the positive is class 0
    return F.cross_entropy(logits, target) if len(q) else logits.sum()  # empty batch: 0, in the graph


def clip_loss(image_embeddings, text_embeddings, temperature: float = 0.07):
    r""":math:`L = \tfrac12\big(\mathrm{CE}(\text{logits}, \text{labels}, \text{axis}=0) + \mathrm{CE}(\text{logits}, \text{labels}, \text{axis}=1)\big)`, :math:`\text{logits} = \hat I \hat T^\top / \tau`.

    CLIP's symmetric contrastive loss, Radford et al. 2021 (HSE slides). ``image_embeddings``,
    ``text_embeddings`` (N, D): row i of each is a matching pair. Both are L2-normalised inside;
    ``temperature`` :math:`\tau` divides the cosine logits (CLIP learns :math:`\log(1/\tau)`; pass
    the current value). Mean over the N images (image -> text) and the N texts (text -> image),
    averaged.
    """
    img, txt = check.floats("image_embeddings and text_embeddings", image_embeddings, text_embeddings)
    img, txt = F.normalize(img, dim=1), F.normalize(txt, dim=1)  # (N, D), (N, D)
    logits = _mm(img, txt.T) / temperature  # (N, N)
    labels = torch.arange(len(img), device=img.device)  # (N,)
    if not len(img):
        return logits.sum()  # empty batch: 0, still in the graph
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


__all__ = ["npair_loss", "info_nce_loss", "clip_loss"]
