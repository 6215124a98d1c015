r"""Pair losses (chapter 02): the contrastive loss of Siamese networks, and its gradient by hand.

Chopra, Hadsell & LeCun 2005; Hadsell, Chopra & LeCun 2006 (UTD CS 6384, HSE and
Chierchia slides). Conventions as in :mod:`course_lib.losses.metric`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _checks as check
from ._ops import _row_distances


def contrastive_loss_from_distances(distances, same, margin: float = 1.0, squared_hinge: bool = False):
    r""":math:`J = \frac{1}{m}\sum_{(i,j)}^{m/2} y_{ij} D_{ij}^2 + (1 - y_{ij})[\alpha - D_{ij}]_+` from the distances.

    Chopra, Hadsell & LeCun 2005 (UTD CS 6384 slides). ``distances`` :math:`D` (N,), one per pair;
    ``same`` :math:`y` (N,) bool or 0/1; ``margin`` :math:`\alpha`. With :math:`m = 2N` images,
    :math:`J = \tfrac12` · mean over the N pairs. ``squared_hinge=True`` uses
    :math:`[\alpha - D_{ij}]_+^2` (the variant whose gradient the UTD CS 6384 slides derive). The distance
    form lets a notebook show which pairs give gradient as the margin moves.
    """
    (D,) = check.floats("distances", distances, shape="(N,)")  # (N,)
    y = check.flags(same, len(D)).to(device=D.device, dtype=D.dtype)  # (N,)
    m = 2 * len(D)  # images in the batch
    hinge = F.relu(margin - D)  # (N,) [α − D]₊
    if squared_hinge:
        hinge = hinge.pow(2)
    return (y * D.pow(2) + (1 - y) * hinge).sum() / max(m, 2)


def _pair_distances(z1, z2):
    z1, z2 = check.floats("z1 and z2", z1, z2)  # (N, D), (N, D)
    return _row_distances(z1, z2, squared=False)  # (N,) D_ij = ||f(x_i) − f(x_j)||₂


def contrastive_loss(z1, z2, same, margin: float = 1.0, squared_hinge: bool = False):
    r""":math:`J = \frac{1}{m}\sum_{(i,j)}^{m/2} y_{ij} D_{ij}^2 + (1 - y_{ij})[\alpha - D_{ij}]_+`, :math:`D_{ij} = \|f(x_i) - f(x_j)\|_2`.

    Contrastive loss, Chopra, Hadsell & LeCun 2005 (UTD CS 6384, HSE and Chierchia slides). ``z1``, ``z2`` (N, D):
    row i of each is one pair; ``same`` (N,) bool or 0/1 (:math:`y_{ij}`); ``margin``
    :math:`\alpha`. Reduction: :math:`m = 2N` images, so :math:`J = \tfrac12` · mean over the N
    pairs. ``squared_hinge=True`` uses :math:`[\alpha - D_{ij}]_+^2`. Not normalised. The gradient
    with respect to the distances is :func:`contrastive_loss_grad`.
    """
    return contrastive_loss_from_distances(_pair_distances(z1, z2), same, margin, squared_hinge)


def contrastive_loss_grad(z1, z2, same, margin: float = 1.0, squared_hinge: bool = False):
    r""":math:`\frac{\partial J}{\partial D_{ij}} = \frac{2}{m}\big(y_{ij} D_{ij} - (1 - y_{ij})[\alpha - D_{ij}]_+\big)` (squared hinge, UTD CS 6384 slides).

    The closed-form gradient of :func:`contrastive_loss` with respect to each pair's distance:
    (N,), :math:`m = 2N`. For the plain hinge the negative term is
    :math:`\tfrac12 (1 - y_{ij})\,\mathbb{1}[D_{ij} < \alpha]` instead (the derivative of
    :math:`[\alpha - D]_+` is :math:`-1` inside the margin, 0 outside and, as autograd takes it,
    at :math:`D = \alpha`). Returned detached: it is the hand derivation, not a graph.
    """
    with torch.no_grad():
        D = _pair_distances(z1, z2)  # (N,)
        y = check.flags(same, len(D)).to(device=D.device, dtype=D.dtype)  # (N,)
        m = 2 * len(D)
        if squared_hinge:
            neg = F.relu(margin - D)  # (N,) [α − D]₊
        else:
            neg = 0.5 * (D < margin).to(D.dtype)  # (N,) ½·1[D < α]
        return (2.0 / max(m, 2)) * (y * D - (1 - y) * neg)  # (N,)


__all__ = ["contrastive_loss", "contrastive_loss_from_distances", "contrastive_loss_grad"]
