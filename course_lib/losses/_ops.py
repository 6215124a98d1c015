"""The arithmetic the metric-learning losses share: distance matrices, row distances, products, means.

Private to :mod:`course_lib.losses`; the validation of inputs lives in :mod:`course_lib._checks`.
"""
from __future__ import annotations

import torch

from ..distances import pairwise_distances, safe_sqrt


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
