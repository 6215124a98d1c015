"""Every encoder scored the same way: features, kNN / linear probe / Recall@1 / MAP@R, and what each confuses.

The four numbers are the ones the course's chapters report: kNN accuracy (k = 200, τ = 0.1; Wu et al. 2018)
and a linear probe, with the training images as bank and probe set, for the self-supervised and pretext
chapters; Recall@1 and MAP@R (Musgrave et al. 2020) within the test set, for the metric-learning ones.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import torch

from .. import _checks as check
from ..evaluate import extract_features, knn_predict, linear_probe, map_at_r, recall_at_k

METRICS = ("kNN", "linear probe", "Recall@1", "MAP@R")


def encoder_features(encoders: Mapping[str, torch.nn.Module], images, device=None, progress: bool = True) -> dict:
    """``{name: (N, D) features}`` of uint8 ``images`` (N, H, W, 3) through each frozen encoder
    (a :class:`~course_lib.zoo.FrozenEncoder`: images in [0, 1], prepared by the encoder itself)."""
    items = list(encoders.items())
    if progress and len(items) > 1:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="features", leave=False)
    return {name: extract_features(enc, images, device=device, normalize_input=False) for name, enc in items}


def score_features(train_features, train_labels, test_features, test_labels, k: int = 200,
                   temperature: float = 0.1) -> dict:
    """``{"kNN", "linear probe", "Recall@1", "MAP@R"}`` of one encoder's features: train ``(N, D)``, ``(N,)``;
    test ``(M, D)``, ``(M,)``. Retrieval ranks the test set by cosine (queries leave themselves out)."""
    test_y = check.labels(test_labels, len(test_features), "test_labels")
    predicted = knn_predict(train_features, train_labels, test_features, k=k, temperature=temperature)
    return {"kNN": (predicted == test_y.cpu().long()).double().mean().item(),
            "linear probe": linear_probe(train_features, train_labels, test_features, test_labels),
            "Recall@1": recall_at_k(test_features, test_labels, ks=(1,), metric="cosine")[1],
            "MAP@R": map_at_r(test_features, test_labels, metric="cosine")}


def score_all(train_features: Mapping, train_labels, test_features: Mapping, test_labels, progress: bool = True) -> dict:
    """``{name: score_features(...)}`` for every encoder of ``test_features`` (same keys in both)."""
    names = list(test_features)
    if progress and len(names) > 1:
        from tqdm.auto import tqdm

        names = tqdm(names, desc="scores", leave=False)
    return {n: score_features(train_features[n], train_labels, test_features[n], test_labels) for n in names}


def confusion_matrix(predicted, labels, n_classes: Optional[int] = None) -> np.ndarray:
    """M[i, j] = the fraction of class-i examples predicted as j (rows sum to 1): ``(N,), (N,) -> (C, C)``."""
    p, y = check.to_numpy(predicted).astype(np.int64).ravel(), check.to_numpy(labels).astype(np.int64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"predicted and labels must both have shape (N,), got {p.shape} and {y.shape}")
    c = int(n_classes or max(p.max(initial=0), y.max(initial=0)) + 1)
    counts = np.zeros((c, c))
    np.add.at(counts, (y, p), 1.0)
    return counts / np.maximum(counts.sum(1, keepdims=True), 1.0)


def most_confused(confusion, classes=None, top: int = 3) -> list[tuple[str, str, float]]:
    """The ``top`` largest off-diagonal entries of a confusion matrix: ``[(true, predicted, fraction)]``."""
    m = np.array(confusion, dtype=np.float64, copy=True)
    np.fill_diagonal(m, -1.0)
    order = np.argsort(-m, axis=None, kind="stable")[:top]
    name = (lambda i: classes[i]) if classes is not None else str
    return [(name(i), name(j), float(m[i, j])) for i, j in zip(*np.unravel_index(order, m.shape))]


# CIFAR-10's two super-classes: a coarse semantic split that pixels alone do not give
SUPERCLASSES = {"vehicle": ("airplane", "automobile", "ship", "truck"),
                "animal": ("bird", "cat", "deer", "dog", "frog", "horse")}


def within_superclass(confusion, classes, superclasses: Mapping = SUPERCLASSES) -> Optional[dict]:
    """Of the mistakes, the fraction that stays in the true class's super-class, and that fraction if each
    mistake went to one of the other C - 1 classes uniformly (chance): ``{"within", "chance"}``, each true
    class weighted by its number of mistakes in the confusion ``(C, C)``. None when ``classes`` are not all in a super-class."""
    group = {c: g for g, members in superclasses.items() for c in members}
    if classes is None or any(c not in group for c in classes):
        return None
    m = np.array(confusion, dtype=np.float64)
    same = np.array([[group[a] == group[b] and a != b for b in classes] for a in classes])  # (C, C)
    wrong = m.sum(1) - np.diag(m)  # (C,) mistakes per true class
    if wrong.sum() <= 0:
        return {"within": float("nan"), "chance": float("nan")}
    chance = (wrong * same.sum(1) / (len(classes) - 1)).sum() / wrong.sum()
    return {"within": float((m * same).sum() / wrong.sum()), "chance": float(chance)}


def spearman(a, b) -> float:
    """Spearman's rank correlation ρ of two equally long sequences (average ranks for ties)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 3:
        raise ValueError(f"need two sequences of the same length >= 3, got shapes {a.shape} and {b.shape}")
    return float(spearmanr(a, b)[0])


__all__ = ["METRICS", "SUPERCLASSES", "encoder_features", "score_features", "score_all", "confusion_matrix",
           "most_confused", "within_superclass", "spearman"]
