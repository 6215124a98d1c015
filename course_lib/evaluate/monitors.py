"""Monitors for :func:`course_lib.train.fit`: ``monitor(model) -> {name: value}`` on held-out images."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from torch import nn

from .. import _checks as check
from .features import ArrayLike, _module_device, extract_features
from .probes import knn_accuracy
from .retrieval import map_at_r, recall_at_k


class KNNMonitor:
    """monitor(model) → {"knn_acc": weighted kNN accuracy (Wu et al., 2018)} of the model's encoder.

    Extracts features of ``train_images`` (the bank) and ``test_images`` (uint8 ``(N, H, W, 3)``)
    with ``model.backbone`` if the model has one, else the model itself; ``feature_fn(model, x)``
    (``x`` the normalised float batch ``(B, 3, H, W)``, returning ``(B, D)``) chooses other features,
    e.g. ``lambda m, x: m.projector(m.backbone(x))`` for those after the projection head.
    Use it as ``fit(..., monitor=KNNMonitor(...))``; it is deterministic and draws no random numbers.
    """

    def __init__(
        self,
        train_images: ArrayLike,
        train_labels: ArrayLike,
        test_images: ArrayLike,
        test_labels: ArrayLike,
        k: int = 200,
        temperature: float = 0.1,
        feature_fn: Optional[Callable] = None,
        batch_size: int = 512,
        name: str = "knn_acc",
    ):
        self.train_images = check.images(train_images, "train_images")  # (N, H, W, 3)
        self.test_images = check.images(test_images, "test_images")  # (M, H, W, 3)
        self.train_labels = check.labels(train_labels, len(self.train_images), "train_labels").long()
        self.test_labels = check.labels(test_labels, len(self.test_images), "test_labels").long()
        self.k, self.temperature, self.feature_fn = k, temperature, feature_fn
        self.batch_size, self.name = batch_size, name

    def __call__(self, model: nn.Module) -> dict:
        device = _module_device(model)
        if self.feature_fn is None:
            encoder = getattr(model, "backbone", model)
        else:
            encoder = lambda x: self.feature_fn(model, x)  # noqa: E731
        was_training = model.training
        model.eval()
        try:
            bank = extract_features(encoder, self.train_images, self.batch_size, device=device)  # (N, D)
            test = extract_features(encoder, self.test_images, self.batch_size, device=device)  # (M, D)
        finally:
            model.train(was_training)
        acc = knn_accuracy(bank, self.train_labels, test, self.test_labels, self.k, self.temperature, device=device)
        return {self.name: acc}


def knn_monitor(train_images, train_labels, test_images, test_labels, k=200, temperature=0.1, feature_fn=None, **kwargs) -> KNNMonitor:
    """The monitor ``model -> {"knn_acc": ...}`` for :func:`course_lib.train.fit`; see :class:`KNNMonitor`."""
    return KNNMonitor(train_images, train_labels, test_images, test_labels, k, temperature, feature_fn, **kwargs)


class RetrievalMonitor:
    """monitor(model) → {"recall@1": …, "map@r": …} of the model's embeddings of a held-out set.

    The metric-learning chapters' monitor for :func:`course_lib.train.fit`: embeds ``images``
    (uint8 ``(N, H, W, 3)``) with the whole model (its output is the embedding), then
    :func:`recall_at_k` at ``ks`` and :func:`map_at_r` (Musgrave et al., 2020) with ``metric``
    (``"l2"`` or ``"cosine"``).
    """

    def __init__(self, images: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1,),
                 metric: str = "l2", batch_size: int = 512):
        self.images = check.images(images, "images")
        self.labels = check.labels(labels, len(self.images), "labels").long()
        self.ks, self.metric, self.batch_size = tuple(ks), metric, batch_size

    def __call__(self, model: nn.Module) -> dict:
        z = extract_features(model, self.images, self.batch_size, device=_module_device(model))  # (N, D)
        out = {f"recall@{k}": v for k, v in recall_at_k(z, self.labels, self.ks, metric=self.metric).items()}
        out["map@r"] = map_at_r(z, self.labels, metric=self.metric)
        return out


__all__ = ["KNNMonitor", "knn_monitor", "RetrievalMonitor"]
