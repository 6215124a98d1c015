r"""Classification-style losses (chapter 04): center loss, CosFace / ArcFace (sub-centres), the AdaCos
scale, a margin head, and prototypical networks (few-shot classification by class means).

Wen et al. 2016; Wang et al. 2018; Deng et al. 2019, 2020; Zhang et al. 2019; Snell, Swersky &
Zemel 2017 (HSE, Chierchia and Cornell slides). Heads and centre modules take their sizes
in ``nn.Linear``'s order, ``(embedding_dim, num_classes)``. Conventions as in
:mod:`course_lib.losses.metric`.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import _checks as check
from ..distances import pairwise_distances
from ._ops import _mm


def center_loss(embeddings, labels, centers):
    r""":math:`\mathcal{L}_C = \frac{1}{2}\sum_{n=1}^{N} \|f_\theta(x_n) - c_{y_n}\|^2`, averaged over the batch.

    Center loss, Wen, Zhang, Li & Qiao 2016 (Chierchia slides); used as
    :math:`\mathcal{L}_{CE} + \lambda\,\mathcal{L}_C`. ``embeddings`` (N, D), ``labels`` (N,) in
    0..C-1, ``centers`` (C, D). Reduction: :math:`\tfrac12` · mean over the batch of
    :math:`\|x_i - c_{y_i}\|^2`. The centres get gradient (learned by SGD rather than Wen's
    moving-average update); :class:`CenterLoss` holds them as a parameter. Not normalised.
    """
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    x, c = check.class_matrix(x, centers, "centers", shape="(C, D)")  # (N, D), (C, D)
    y = check.class_ids(check.labels(labels, len(x), device=x.device), len(c))  # (N,)
    return 0.5 * (x - c[y]).pow(2).sum(dim=1).sum() / max(len(x), 1)


class CenterLoss(nn.Module):
    r"""Center loss with learnable centres :math:`c_1..c_C` (C, D) (Wen et al. 2016).

    ``CenterLoss(embedding_dim, num_classes)(embeddings, labels)`` is :func:`center_loss` with
    ``self.centers``; give the module's parameters to the optimiser. The sizes come in
    ``nn.Linear``'s order (in, out), as for :class:`AngularMarginHead`; the keywords
    ``num_classes=``, ``embedding_dim=`` work in any order.
    """

    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, embedding_dim))  # (C, D)

    def forward(self, embeddings, labels):
        return center_loss(embeddings, labels, self.centers)


def _cosines(embeddings, weight, labels, subcenters: int = 1):
    """:math:`\\cos\\alpha_{n,c}` (N, C) between normalised embeddings and normalised class rows
    (max over each class's K sub-centre rows), and the checked labels (or None)."""
    (x,) = check.floats("embeddings", embeddings)  # (N, D)
    x, W = check.class_matrix(x, weight, "weight", k=subcenters)  # (N, D), (C·K, D)
    z_hat, W_hat = F.normalize(x, dim=1), F.normalize(W, dim=1)
    C = W.shape[0] // subcenters
    cos = _mm(z_hat, W_hat.T)  # (N, C·K)
    if subcenters > 1:
        cos = cos.view(len(x), C, subcenters).amax(dim=2)  # (N, C): max_k w_c^(k)ᵀ ẑ_n
    if labels is None:
        return cos, None
    return cos, check.class_ids(check.labels(labels, len(x), device=x.device), C)


def cosface_logits(embeddings, weight, labels, s: float = 30.0, m: float = 0.35):
    r""":math:`t_{n,c} = s(\cos\alpha_{n,c} - m)` if :math:`c = y_n`, else :math:`s\cos\alpha_{n,c}`.

    CosFace (large margin cosine loss), Wang et al. 2018 (Chierchia slides, "cosine loss"). ``embeddings``
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
    et al. 2020 (Chierchia slides). ``embeddings`` (N, D) and the rows of ``weight`` are L2-normalised
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
    r""":math:`s = \sqrt{2}\cdot\log(C - 1)`: the fixed AdaCos scale, Zhang et al. 2019 (Chierchia slides).

    The scale at which a cosine-softmax over C classes is neither saturated nor flat. C < 3 raises
    ``ValueError`` (the log is ≤ 0 there).
    """
    C = int(num_classes)
    if C < 3:
        raise ValueError(f"adacos_scale needs num_classes C >= 3 (sqrt(2)·log(C − 1) > 0), got {num_classes}")
    return math.sqrt(2.0) * math.log(C - 1)


class AngularMarginHead(nn.Module):
    r"""Training head: normalise, ``weight`` (C·K, D), margin on the target logit (Chierchia slides).

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
            (x,) = check.floats("embeddings", embeddings)
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

    Prototypical networks, Snell, Swersky & Zemel 2017 (HSE and Cornell slides): ``support`` (N_s, D)
    with ``support_labels`` (N_s,), ``query`` (N_q, D). Returns ``(logits, classes)``: logits
    (N_q, C) = minus the squared Euclidean distance to each class mean, columns in sorted class-id
    order, and those ids (C,). Not normalised.
    """
    s, q = check.floats("support and query", support, query, same_shape=False, same_dim=True)  # (N_s, D), (N_q, D)
    support_labels = check.labels(support_labels, len(s), "support_labels", device=s.device)
    classes, k = torch.unique(support_labels, sorted=True, return_inverse=True)  # (C,), (N_s,)
    member = F.one_hot(k, len(classes)).to(s.dtype)  # (N_s, C)
    c_k = _mm(member.T, s) / member.sum(dim=0).unsqueeze(1)  # (C, D) prototypes
    return -pairwise_distances(q, c_k, metric="squared_l2"), classes  # (N_q, C)


def _query_targets(classes, query_labels, n_q, device):
    query_labels = check.labels(query_labels, n_q, "query_labels", device=device)
    target = torch.searchsorted(classes, query_labels).clamp(max=max(len(classes) - 1, 0))  # (N_q,)
    if len(classes) == 0 or not bool((classes[target] == query_labels).all()):
        raise ValueError("every query label must appear in support_labels (the prototypes are its "
                         f"classes {classes.tolist()})")
    return target


def prototypical_loss(support, support_labels, query, query_labels):
    r""":math:`J = -\frac{1}{N_q}\sum_{x \in Q} \log \frac{\exp(-d(f_\phi(x), c_{y}))}{\sum_{k'} \exp(-d(f_\phi(x), c_{k'}))}`, :math:`d` squared Euclidean.

    Prototypical networks, Snell, Swersky & Zemel 2017 (HSE slides): cross-entropy of the query
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
    "center_loss", "CenterLoss", "cosface_logits", "arcface_logits", "adacos_scale", "AngularMarginHead",
    "prototype_logits", "prototypical_loss", "prototypical_accuracy",
]
