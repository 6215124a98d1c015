"""Retrieval and verification: Recall@k, MAP@R (Musgrave et al., 2020) and the verification ROC.

Distances by their names in :mod:`course_lib.distances`: ``"l2"`` (Euclidean, the default; the alias
``"euclidean"`` is accepted) or ``"cosine"``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .. import _checks as check
from .features import ArrayLike

_METRICS = ("l2", "cosine")


def _ranked_neighbours(x: torch.Tensor, n: int, metric: str, batch_size: int):
    """For each row of x, the indices of its n nearest other rows, nearest first: yields (start, (B, n))."""
    metric = check.metric(metric, _METRICS)
    if metric == "cosine":
        x = F.normalize(x, dim=1)
    for start in range(0, len(x), batch_size):
        q = x[start : start + batch_size]  # (B, D)
        d = -(q @ x.T) if metric == "cosine" else torch.cdist(q, x)  # (B, N), smaller = nearer
        rows = torch.arange(len(q), device=x.device)
        d[rows, start + rows] = math.inf  # the query is not its own neighbour
        yield start, d.topk(n, dim=1, largest=False).indices  # (B, n)


def _retrieval_inputs(embeddings, labels):
    x = check.features(embeddings, "embeddings")
    y = check.labels(labels, len(x), "labels").long()
    _, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
    return x, y, counts[inverse] - 1  # (N, D), (N,), same-class others per query (N,)


def recall_at_k(
    embeddings: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1, 2, 4, 8), metric: str = "l2", batch_size: int = 1024
) -> dict:
    """R@k = fraction of queries with at least one same-class item among their k nearest neighbours.

    The retrieval metric of Song et al. (2016) and the metric-learning literature: every item is a
    query against all the others (itself left out); queries whose class has no other member are
    skipped. Ranked by Euclidean distance (``metric="l2"``), or cosine similarity with ``metric="cosine"``.
    Shapes: embeddings ``(N, D)``, labels ``(N,)``. Returns ``{k: fraction}`` (NaN if no query counts).
    """
    x, y, others = _retrieval_inputs(embeddings, labels)
    ks = [int(k) for k in ks]
    if min(ks, default=0) < 1:
        raise ValueError(f"every k must be >= 1, got {ks}")
    n = min(max(ks), len(x) - 1)
    if n < 1 or not (others > 0).any():
        return {k: math.nan for k in ks}
    hit = torch.zeros(len(x), n, dtype=torch.bool, device=x.device)  # hit[i, j]: a match within the first j+1
    for start, nn_idx in _ranked_neighbours(x, n, metric, batch_size):
        match = y[nn_idx] == y[start : start + len(nn_idx), None]  # (B, n)
        hit[start : start + len(nn_idx)] = match.cummax(dim=1).values
    valid = others > 0
    return {k: hit[valid, min(k, n) - 1].float().mean().item() for k in ks}


def map_at_r(embeddings: ArrayLike, labels: ArrayLike, metric: str = "l2", batch_size: int = 1024) -> float:
    """MAP@R = mean_i 1/R_i Σ_{j ≤ R_i} P@j · rel_j (Musgrave et al., 2020, "A metric learning reality check").

    R_i is the number of other items of query i's class; rel_j = 1 if the j-th nearest neighbour
    shares the class, P@j the precision among the first j. Query left out, singleton classes skipped,
    Euclidean (``"l2"``) unless ``metric="cosine"``. Shapes: ``(N, D)``, ``(N,)``. Returns a fraction (NaN if no query counts).
    """
    x, y, others = _retrieval_inputs(embeddings, labels)
    if not (others > 0).any():
        return math.nan
    n = int(others.max())
    ap = torch.zeros(len(x), device=x.device)
    for start, nn_idx in _ranked_neighbours(x, n, metric, batch_size):
        r = others[start : start + len(nn_idx), None]  # (B, 1)
        rel = (y[nn_idx] == y[start : start + len(nn_idx), None]).float()  # (B, n)
        rel = rel * (torch.arange(1, n + 1, device=x.device) <= r)  # only the first R_i count
        precision = rel.cumsum(1) / torch.arange(1, n + 1, device=x.device)  # (B, n) P@j
        ap[start : start + len(nn_idx)] = (precision * rel).sum(1) / r.squeeze(1).clamp_min(1)
    return ap[others > 0].mean().item()


def verification_roc(x1: ArrayLike, x2: ArrayLike, same: ArrayLike, metric: str = "l2") -> dict:
    """Pairs (x1_i, x2_i) called "same" when d(x1_i, x2_i) ≤ t, for every threshold t: the ROC curve.

    As in face verification (Chopra et al., 2005; Schroff et al., 2015). Shapes: ``(N, D)``,
    ``(N, D)``, ``same`` bool/0-1 ``(N,)``. Returns ``{"fpr", "tpr", "thresholds", "auc"}``:
    NumPy arrays of the curve (thresholds are distances, increasing) and the area under it.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    metric = check.metric(metric, _METRICS)
    a = check.features(x1, "x1")
    b = check.features(x2, "x2", dim=a.shape[1], n=len(a))  # (N, D) like x1
    same = check.flags(same, len(a))  # (N,)
    if metric == "cosine":
        d = 1 - F.cosine_similarity(a, b, dim=1)  # (N,)
    else:
        d = (a - b).norm(dim=1)  # (N,)
    score, truth = (-d).cpu().numpy(), same.cpu().numpy().astype(bool)
    fpr, tpr, thr = roc_curve(truth, score)
    return {"fpr": fpr, "tpr": tpr, "thresholds": -thr, "auc": float(roc_auc_score(truth, score))}


__all__ = ["recall_at_k", "map_at_r", "verification_roc"]
