"""Distances between embeddings: L1, L2 and cosine (UTD CS 6384 and Chierchia slides).

For vectors :math:`\\mathbf{x}, \\mathbf{y} \\in \\mathbb{R}^D`:

* L1 distance      :math:`D(\\mathbf{x}, \\mathbf{y}) = \\sum_i |x_i - y_i|`
* L2 distance      :math:`D(\\mathbf{x}, \\mathbf{y}) = \\sqrt{\\sum_i (x_i - y_i)^2}`
* cosine distance  :math:`D(\\mathbf{x}, \\mathbf{y}) = 1 - \\frac{\\mathbf{x} \\cdot \\mathbf{y}}{\\|\\mathbf{x}\\| \\|\\mathbf{y}\\|}`

Two shapes of question:

* row-wise, ``l2_distance(x, y)``: row i of ``x`` against row i of ``y``, (N, D), (N, D) -> (N,);
* pairwise, ``pairwise_distances(x, y)``: every row of ``x`` against every row of ``y``,
  (N, D), (M, D) -> (N, M), without a Python loop.

Every function is differentiable and safe where it is usually not: the L2 distance of a point to
itself has gradient 0, not NaN, and float16/bfloat16 inputs are computed in float32 and returned
in their own dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _checks as check
from ._checks import METRICS

EPS = 1e-8  # floor on norms in the cosine


# ------------------------------------------------------------------------------------ helpers
def safe_sqrt(d2: torch.Tensor) -> torch.Tensor:
    """:math:`\\sqrt{d^2}` whose gradient is 0 (not NaN) where ``d2 == 0``.

    ``sqrt`` has an infinite derivative at 0, and inf · 0 = NaN poisons the whole backward pass
    for two identical points. The double ``torch.where`` keeps 0 out of the ``sqrt`` entirely.
    """
    zero = d2 <= 0
    return torch.where(zero, torch.zeros_like(d2), torch.where(zero, torch.ones_like(d2), d2).sqrt())


# ----------------------------------------------------------------------------------- row-wise
def squared_l2_distance(x, y) -> torch.Tensor:
    """:math:`D(\\mathbf{x}, \\mathbf{y}) = \\sum_i (x_i - y_i)^2`, row by row: (N, D), (N, D) -> (N,)."""
    x, y, dtype = check.matching_rows(x, y)
    return (x - y).pow(2).sum(dim=1).to(dtype)  # (N,)


def l2_distance(x, y) -> torch.Tensor:
    """:math:`D(\\mathbf{x}, \\mathbf{y}) = \\sqrt{\\sum_i (x_i - y_i)^2}`, row by row: (N, D), (N, D) -> (N,).

    Gradient 0 (not NaN) for identical rows.
    """
    x, y, dtype = check.matching_rows(x, y)
    return safe_sqrt((x - y).pow(2).sum(dim=1)).to(dtype)  # (N,)


def l1_distance(x, y) -> torch.Tensor:
    """:math:`D(\\mathbf{x}, \\mathbf{y}) = \\sum_i |x_i - y_i|`, row by row: (N, D), (N, D) -> (N,)."""
    x, y, dtype = check.matching_rows(x, y)
    return (x - y).abs().sum(dim=1).to(dtype)  # (N,)


def cosine_similarity(x, y, eps: float = EPS) -> torch.Tensor:
    """:math:`\\cos(\\mathbf{x}, \\mathbf{y}) = \\frac{\\mathbf{x} \\cdot \\mathbf{y}}{\\|\\mathbf{x}\\| \\|\\mathbf{y}\\|}`,
    row by row: (N, D), (N, D) -> (N,).

    Norms are floored at ``eps``, so a zero row has similarity 0 to everything.
    """
    x, y, dtype = check.matching_rows(x, y)
    x, y = F.normalize(x, dim=1, eps=eps), F.normalize(y, dim=1, eps=eps)
    return (x * y).sum(dim=1).clamp(-1.0, 1.0).to(dtype)  # (N,)


def cosine_distance(x, y, eps: float = EPS) -> torch.Tensor:
    """:math:`D(\\mathbf{x}, \\mathbf{y}) = 1 - \\cos(\\mathbf{x}, \\mathbf{y})`, row by row:
    (N, D), (N, D) -> (N,), values in [0, 2]."""
    return 1.0 - cosine_similarity(x, y, eps=eps)


# ----------------------------------------------------------------------------------- pairwise
def _pairwise_squared_l2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:math:`\\|x_i\\|^2 + \\|y_j\\|^2 - 2\\, x_i \\cdot y_j`, clamped at 0: (N, D), (M, D) -> (N, M).

    Both sets are first shifted by the same constant (the mean of ``x``, detached): distances do not
    change, but the norms shrink, and with them the cancellation error of the expansion (features
    after a ReLU all sit far from the origin).
    """
    c = x.detach().mean(dim=0)  # (D,)
    x, y = x - c, y - c
    xx = x.pow(2).sum(dim=1, keepdim=True)  # (N, 1)
    yy = y.pow(2).sum(dim=1, keepdim=True)  # (M, 1)
    return (xx + yy.T - 2.0 * x @ y.T).clamp(min=0.0)  # (N, M); rounding can dip below 0


def pairwise_distances(x, y=None, metric: str = "l2") -> torch.Tensor:
    """:math:`D_{ij} = D(\\mathbf{x}_i, \\mathbf{y}_j)` for every pair: (N, D), (M, D) -> (N, M).

    ``y=None`` means ``y = x``; the diagonal is then exactly 0 (the expansion below would leave
    rounding noise there). ``metric``:

    * ``"l2"`` (alias ``"euclidean"``): :math:`\\sqrt{\\|x_i\\|^2 + \\|y_j\\|^2 - 2\\, x_i \\cdot y_j}`,
      one matrix product, clamped at 0 before the root; gradient 0, not NaN, where the
      distance is 0 (:func:`safe_sqrt`);
    * ``"squared_l2"``: the same without the root;
    * ``"l1"``: :math:`\\sum_k |x_{ik} - y_{jk}|` (``torch.cdist`` with ``p=1``);
    * ``"cosine"``: the cosine *distance* :math:`1 - \\cos(x_i, y_j)`, norms floored at 1e-8.

    float16/bfloat16 inputs are computed in float32 and returned in their own dtype.
    """
    metric = check.metric(metric)
    same = y is None
    x, y, dtype = check.pairwise_sets(x, y)
    if metric == "cosine":
        xn = F.normalize(x, dim=1, eps=EPS)  # (N, D)
        yn = xn if same else F.normalize(y, dim=1, eps=EPS)  # (M, D)
        d = 1.0 - (xn @ yn.T).clamp(-1.0, 1.0)  # (N, M)
    elif metric == "l1":
        d = torch.cdist(x, y, p=1.0)  # (N, M)
    else:
        d = _pairwise_squared_l2(x, y)  # (N, M)
        if metric == "l2":
            d = safe_sqrt(d)
    if same:  # exact zeros on the diagonal, and no gradient through a point's distance to itself
        d = d.masked_fill(torch.eye(len(x), dtype=torch.bool, device=x.device), 0.0)
    return d.to(dtype)


def nearest_neighbours(
    query_features, gallery_features, k: int = 5, metric: str = "cosine",
    exclude_self: bool = False, chunk_size: int = 1024,
) -> torch.Tensor:
    """Indices of the ``k`` gallery rows closest to each query row: (Q, D), (M, D) -> (Q, k) int64.

    Row ``i`` is sorted nearest first, by :func:`pairwise_distances` with ``metric``.
    ``exclude_self=True`` says query ``i`` *is* gallery row ``i`` (the same set, e.g. retrieval
    within the test set) and leaves it out of its own neighbours. Queries are processed in chunks
    of ``chunk_size`` so a large gallery never needs a full (Q, M) matrix.
    """
    q, g, _ = check.pairwise_sets(query_features, gallery_features, "query_features and gallery_features")
    n_q, n_g = len(q), len(g)
    if exclude_self and n_q > n_g:
        raise ValueError(f"exclude_self=True needs query i to be gallery row i, but Q={n_q} > M={n_g}")
    k_max = n_g - int(exclude_self)
    if not 1 <= k <= k_max:
        raise ValueError(f"k must be between 1 and {k_max} (the gallery size{' - 1' if exclude_self else ''}), got {k}")
    out = []
    with torch.no_grad():
        for start in range(0, n_q, chunk_size):
            d = pairwise_distances(q[start : start + chunk_size], g, metric=metric).float()  # (B, M)
            if exclude_self:
                rows = torch.arange(len(d), device=d.device)
                d[rows, rows + start] = float("inf")
            out.append(d.topk(k, dim=1, largest=False, sorted=True).indices)  # (B, k)
    return torch.cat(out) if out else torch.empty(0, k, dtype=torch.int64)


__all__ = [
    "METRICS", "l1_distance", "l2_distance", "squared_l2_distance", "cosine_similarity",
    "cosine_distance", "pairwise_distances", "nearest_neighbours", "safe_sqrt",
]
