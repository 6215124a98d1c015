"""How good is a representation? Features of a frozen encoder, scored the way the papers score them.

* :func:`extract_features`: images → features ``(N, D)`` of a frozen model (eval mode, no grad);
* :func:`knn_predict`, :func:`knn_accuracy`: weighted kNN classification (Wu et al., 2018), the SSL papers' monitor;
* :func:`linear_probe`: logistic regression on frozen features (the "linear evaluation protocol");
* :func:`frozen_scores`: both of them for one encoder, as every chapter's table reports them;
* :func:`recall_at_k`, :func:`map_at_r`: retrieval, as in metric learning (Musgrave et al., 2020);
* :func:`verification_roc`: same/different pairs scored by distance (ROC, AUC);
* :func:`invariance_ratio`, :func:`cluster_scores`, :func:`pixel_features`: chapter 01's measures;
* :class:`KNNMonitor`: ``monitor(model) -> {"knn_acc": ...}`` for :func:`course_lib.train.fit`.

Modules by topic: :mod:`~course_lib.evaluate.features` (extract and pixel features),
:mod:`~course_lib.evaluate.probes` (kNN, linear probe), :mod:`~course_lib.evaluate.monitors`
(training-time monitors), :mod:`~course_lib.evaluate.retrieval` (Recall@k, MAP@R, ROC),
:mod:`~course_lib.evaluate.quality` (invariance, clustering), :mod:`~course_lib.evaluate.fewshot`
(N-way K-shot episodes). Distances are named as in :mod:`course_lib.distances`: ``"l2"`` (the default;
``"euclidean"`` is accepted for it) or ``"cosine"``.

Features and labels may be torch tensors or NumPy arrays; wrong shapes raise ``ValueError`` naming
the expected shape.
"""
from __future__ import annotations

from . import features, fewshot, monitors, probes, quality, retrieval
from .features import extract_features, pixel_features
from .fewshot import few_shot_accuracy, few_shot_episodes
from .monitors import KNNMonitor, RetrievalMonitor, knn_monitor
from .probes import frozen_scores, knn_accuracy, knn_predict, linear_probe
from .quality import cluster_scores, invariance_ratio
from .retrieval import map_at_r, recall_at_k, verification_roc
from .collapse import CollapseMonitor, feature_std  # chapter 08: the collapse measure (SimSiam)

__all__ = [
    "extract_features", "pixel_features", "frozen_scores", "knn_accuracy", "knn_predict", "linear_probe", "recall_at_k", "map_at_r",
    "verification_roc", "invariance_ratio", "cluster_scores", "KNNMonitor", "knn_monitor",
    "RetrievalMonitor", "few_shot_episodes", "few_shot_accuracy", "feature_std", "CollapseMonitor",
]
