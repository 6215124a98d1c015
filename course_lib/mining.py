r"""Triplet mining: distances -> boolean masks -> index triples (chapter 03; UTD CS 6384, HSE and Chierchia slides).

A *valid* triplet :math:`(a, p, n)` has :math:`y_a = y_p`, :math:`a \ne p` and :math:`y_n \ne y_a`.
With :math:`D_{ap}` the anchor-positive and :math:`D_{an}` the anchor-negative distance, the slides
(002, "Triplet mining"; FaceNet, Schroff et al. 2015) sort the valid triplets by difficulty:

* hard:      :math:`D_{an} < D_{ap}`
* semi-hard: :math:`D_{ap} < D_{an} < D_{ap} + m`
* easy:      :math:`D_{an} > D_{ap} + m`

All inequalities are strict, so a tie (:math:`D_{an} = D_{ap}` or :math:`D_{an} = D_{ap} + m`)
belongs to none of the three; strategy ``"all"`` is every valid triplet, whatever its difficulty
(unlike pytorch-metric-learning, whose ``"all"`` means every triplet that is not easy).

Everything here is a small function that can be tested alone: :func:`positive_mask` and
:func:`negative_mask` are (N, N) boolean masks, :func:`valid_triplet_mask` their (N, N, N)
product, :func:`exact_distances` the distance matrix (exact ties), and :func:`mine_triplets`
(:func:`mine_triplets_from_distances` on a given matrix) turns masks over it into ``(a, p, n)`` index
tensors that a loss consumes (:func:`course_lib.losses.triplet_loss_from_indices`), and
:func:`batch_hard_pairs` is the batch-hard selection of Hermans et al. (2017). No Python loop runs
over the batch. Mining returns indices only, so it runs under ``torch.no_grad()``.
"""
from __future__ import annotations

import torch

from . import _checks as check

STRATEGIES = ("all", "hard", "semihard", "easy")


# ----------------------------------------------------------------------------------- masks
def positive_mask(labels) -> torch.Tensor:
    r""":math:`P_{ij} = [y_i = y_j] \wedge [i \ne j]`: (N,) -> (N, N) bool, the positive pairs."""
    labels = check.labels(labels)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)  # (N, N)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)  # (N, N)
    return same & ~eye


def negative_mask(labels) -> torch.Tensor:
    r""":math:`N_{ij} = [y_i \ne y_j]`: (N,) -> (N, N) bool, the negative pairs."""
    labels = check.labels(labels)
    return labels.unsqueeze(0) != labels.unsqueeze(1)  # (N, N)


def valid_triplet_mask(labels) -> torch.Tensor:
    r""":math:`T_{apn} = P_{ap} \wedge N_{an}`: (N,) -> (N, N, N) bool, indexed ``[a, p, n]``.

    N³ booleans: fine for teaching and tests; :func:`mine_triplets` never builds it (it works on
    the (P, N) rows of the positive pairs instead, P = number of positive pairs).
    """
    return positive_mask(labels).unsqueeze(2) & negative_mask(labels).unsqueeze(1)  # (N, N, N)


# ---------------------------------------------------------------------------------- mining
def exact_distances(x: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Euclidean (or squared) distance matrix (N, D) -> (N, N) computed from the differences
    :math:`x_i - x_j`, not from :math:`\\|x_i\\|^2 + \\|x_j\\|^2 - 2 x_i \\cdot x_j`.

    Mining compares distances with strict inequalities, so ties must be exact: two copies of one
    embedding (a duplicate image, or a collapsed network early in training) must be at exactly
    the same distance from every anchor, and at distance 0 from each other. The matrix-product
    expansion behind :func:`course_lib.distances.pairwise_distances` (fast, and what the losses
    differentiate) leaves rounding noise of ~1e-6 that would sort such ties into "hard" or
    "semi-hard" at random; ``torch.cdist`` without the matrix product does not. ``squared=True``
    squares that matrix: equal distances stay equal, but a boundary such as
    :math:`D^2_{an} = D^2_{ap} + m` is then exact only up to rounding. No gradient.
    """
    with torch.no_grad():
        D = torch.cdist(x, x, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")  # (N, N)
        return D.pow(2) if squared else D


@torch.no_grad()
def mine_triplets_from_distances(dist, labels, strategy: str = "all", margin: float = 0.2):
    r"""The masks -> indices step of :func:`mine_triplets`, on a given distance matrix (N, N).

    Returns ``(a, p, n)``, (T,) int64 each, sorted by ``(a, p, n)``: the positive pairs
    :math:`(a_k, p_k)` are the nonzeros of :func:`positive_mask`; for each, one row of a (P, N)
    boolean mask over row :math:`a_k` of ``dist`` keeps the negatives that meet the strategy's
    strict inequalities. Memory O(P·N), never the N³ cube.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    D = check.distance_matrix(dist).detach()
    labels = check.labels(labels, len(D)).to(D.device)
    a, p = positive_mask(labels).nonzero(as_tuple=True)  # (P,), (P,)
    d_ap = D[a, p].unsqueeze(1)  # (P, 1)
    d_an = D[a]  # (P, N): row a_k, every candidate negative n
    keep = negative_mask(labels)[a]  # (P, N): valid negatives of a_k
    if strategy == "hard":
        keep = keep & (d_an < d_ap)
    elif strategy == "semihard":
        keep = keep & (d_ap < d_an) & (d_an < d_ap + margin)
    elif strategy == "easy":
        keep = keep & (d_an > d_ap + margin)
    k, n = keep.nonzero(as_tuple=True)  # (T,), (T,)
    return a[k], p[k], n


@torch.no_grad()
def mine_triplets(embeddings, labels, strategy: str = "all", margin: float = 0.2, squared: bool = False):
    r"""Index triples :math:`(a, p, n)` of the valid triplets of one difficulty: ``(T,)`` int64 each.

    ``strategy`` (strict inequalities, :math:`D` Euclidean, squared when ``squared=True``):

    * ``"all"``: every valid triplet (:math:`y_a = y_p`, :math:`a \ne p`, :math:`y_n \ne y_a`);
    * ``"hard"``: :math:`D_{an} < D_{ap}`;
    * ``"semihard"``: :math:`D_{ap} < D_{an} < D_{ap} + m` (FaceNet, Schroff et al. 2015);
    * ``"easy"``: :math:`D_{an} > D_{ap} + m`.

    ``embeddings`` (N, D), ``labels`` (N,) integer. Distances by :func:`exact_distances` (exact
    ties), masks and indices by :func:`mine_triplets_from_distances`; the triples come sorted by
    ``(a, p, n)``, the order of a brute-force loop. Indices only (``no_grad``); feed them to
    :func:`course_lib.losses.triplet_loss_from_indices` to get a loss.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    x = check.embeddings(embeddings).detach()  # (N, D)
    labels = check.labels(labels, len(x)).to(x.device)
    return mine_triplets_from_distances(exact_distances(x, squared), labels, strategy, margin)


def batch_hard_pairs(dist, labels):
    r"""Batch-hard selection (Hermans et al. 2017): for each anchor :math:`a`,
    :math:`p^*(a) = \arg\max_{p: P_{ap}} D_{ap}` and :math:`n^*(a) = \arg\min_{n: N_{an}} D_{an}`.

    ``dist`` (N, N) distance matrix, ``labels`` (N,). Returns ``(hardest_positive, hardest_negative,
    valid)``: two (N,) int64 index tensors and an (N,) bool mask of the anchors that have at least
    one positive and one negative (for the others the indices are meaningless). Ties go to the
    lowest index. Indices only: nothing here carries gradient; gather ``dist`` with them.
    """
    D = check.distance_matrix(dist).detach()
    labels = check.labels(labels, len(D)).to(D.device)
    pos, neg = positive_mask(labels), negative_mask(labels)  # (N, N), (N, N)
    hardest_positive = D.masked_fill(~pos, float("-inf")).argmax(dim=1)  # (N,)
    hardest_negative = D.masked_fill(~neg, float("inf")).argmin(dim=1)  # (N,)
    valid = pos.any(dim=1) & neg.any(dim=1)  # (N,)
    return hardest_positive, hardest_negative, valid


def random_triplets(labels, n: int, generator: torch.Generator | None = None):
    r"""``n`` valid triplets drawn at random: the "random triplets" baseline of chapter 03.

    An anchor is drawn uniformly among those with at least one positive and one negative, then a
    positive uniformly among its positives and a negative uniformly among its negatives
    (with replacement throughout). ``labels`` (N,). Returns ``(a, p, n)``, (n,) int64 each, on the
    labels' device; empty tensors when the batch has no valid triplet.
    """
    labels = check.labels(labels)
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    pos, neg = positive_mask(labels), negative_mask(labels)  # (N, N)
    anchors = (pos.any(dim=1) & neg.any(dim=1)).nonzero(as_tuple=True)[0]  # (A,)
    if len(anchors) == 0 or int(n) == 0:
        empty = torch.empty(0, dtype=torch.int64, device=labels.device)
        return empty, empty.clone(), empty.clone()
    dev = generator.device if generator is not None else labels.device  # draw where the generator lives
    pos, neg, anchors = pos.to(dev), neg.to(dev), anchors.to(dev)
    a = anchors[torch.randint(len(anchors), (int(n),), generator=generator, device=dev)]  # (n,)
    p = torch.multinomial(pos[a].float(), 1, generator=generator).squeeze(1)  # (n,)
    q = torch.multinomial(neg[a].float(), 1, generator=generator).squeeze(1)  # (n,)
    a, p, q = a.to(labels.device), p.to(labels.device), q.to(labels.device)
    return a, p, q


__all__ = [
    "STRATEGIES", "positive_mask", "negative_mask", "valid_triplet_mask", "exact_distances",
    "mine_triplets", "mine_triplets_from_distances", "batch_hard_pairs", "random_triplets",
]
